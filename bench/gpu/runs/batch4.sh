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
  echo "mem budget ${budget} GiB"; } > "$OUT/issue15_env.txt" 2>&1
export LLMEM_CKPT_DIR=/tmp/llmem-ckpt
if [ "$total_mib" -gt 100000 ]; then  # room for a traced copy of three main-set cases beside the sets
  budget=$(( budget - 34 ))
  mkdir -p "$OUT/trace"
  TRACE_LIST=bench/gpu/trace_cases_issue15.txt timeout 460 bash bench/gpu/trace_cases.sh "$OUT/trace" --set issue15 \
    --workers 3 --mem-budget-gib 34 --deadline 250 --hard-stop 450 --timeout 240 > "$OUT/trace/log.txt" 2>&1 &
fi
timeout 460 python3 bench/gpu/measure_transformers.py --set issue15_all --out "$OUT/issue15_all.jsonl" \
  --workers 8 --mem-budget-gib "$budget" --deadline 330 --hard-stop 450 --timeout 240 2>&1 | tee "$OUT/issue15_log.txt" | tail -60
wait
ls -la "$OUT" "$OUT/trace" "$OUT/trace/traces" 2>/dev/null | tail -20
