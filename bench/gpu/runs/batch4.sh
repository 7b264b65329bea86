#!/bin/bash
# Device command of 2026-12-05 (fifth session): issue 15's scenario sets (scenarios.build_issue15 and its held-out
# build_issue15_holdout), one scenario per fresh process, several processes sharing the GPU. From the repository
# root. The held-out records are split off by tier (11) afterwards and compared with llmem only after the modelling.
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
total_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
budget=$(( total_mib * 88 / 100 / 1024 ))  # GiB the scheduling bounds may sum to (126 on an H200, 69 on an H100)
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c \
  "import torch, transformers, peft, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__)"; \
  echo "mem budget ${budget} GiB"; } > "$OUT/batch4_env.txt" 2>&1
export LLMEM_CKPT_DIR=/tmp/llmem-ckpt
# the main and held-out sets side by side (each its own driver and share of the memory), so a cut run keeps some of
# both; on a GPU with room a traced copy of three main-set cases beside them
if [ "$total_mib" -gt 100000 ]; then
  main_budget=$(( budget * 48 / 100 )); hold_budget=$(( budget * 35 / 100 )); trace_budget=$(( budget - main_budget - hold_budget ))
  mkdir -p "$OUT/trace"
  TRACE_LIST=bench/gpu/trace_cases_issue15.txt timeout 380 bash bench/gpu/trace_cases.sh "$OUT/trace" --set issue15 \
    --workers 2 --mem-budget-gib "$trace_budget" --deadline 220 --hard-stop 370 --timeout 200 > "$OUT/trace/log.txt" 2>&1 &
else
  main_budget=$(( budget * 52 / 100 )); hold_budget=$(( budget - main_budget ))
fi
echo "budgets: main ${main_budget} held-out ${hold_budget} GiB" >> "$OUT/batch4_env.txt"
timeout 380 python3 bench/gpu/measure_transformers.py --set issue15_holdout --out "$OUT/issue15_holdout.jsonl" \
  --workers 5 --mem-budget-gib "$hold_budget" --deadline 270 --hard-stop 370 --timeout 200 > "$OUT/issue15_holdout_log.txt" 2>&1 &
timeout 380 python3 bench/gpu/measure_transformers.py --set issue15 --out "$OUT/issue15.jsonl" \
  --workers 6 --mem-budget-gib "$main_budget" --deadline 270 --hard-stop 370 --timeout 200 2>&1 | tee "$OUT/issue15_log.txt" | tail -40
wait
tail -5 "$OUT/issue15_holdout_log.txt"
ls -la "$OUT" "$OUT/trace" "$OUT/trace/traces" 2>/dev/null | tail -20
