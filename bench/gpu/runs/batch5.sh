#!/bin/bash
# Device command of the sixth session (2026-12-05): issue 15's second held-out set (scenarios.
# build_issue15_holdout2, tier 12; compared with llmem only after the modelling) beside traces of what the first
# held-out set missed (bench/gpu/trace_cases_issue15b.txt: static-cache generate, gpt-oss LoRA, a from_pretrained
# MoE forward). One scenario per fresh process, several processes sharing the GPU. From the repository root.
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
total_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
budget=$(( total_mib * 88 / 100 / 1024 ))  # GiB the scheduling bounds may sum to (126 on an H200, 69 on an H100)
hold_budget=$(( budget * 55 / 100 )); trace_budget=$(( budget - hold_budget ))
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c \
  "import torch, transformers, peft, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__)"; \
  echo "budgets: held-out ${hold_budget} GiB, traces ${trace_budget} GiB"; } > "$OUT/batch5_env.txt" 2>&1
export LLMEM_CKPT_DIR=/tmp/llmem-ckpt
mkdir -p "$OUT/trace"
TRACE_LIST=bench/gpu/trace_cases_issue15b.txt timeout 560 bash bench/gpu/trace_cases.sh "$OUT/trace" --set issue15_all \
  --workers 3 --mem-budget-gib "$trace_budget" --deadline 420 --hard-stop 550 --timeout 240 > "$OUT/trace/log.txt" 2>&1 &
timeout 560 python3 bench/gpu/measure_transformers.py --set issue15_holdout2 --out "$OUT/issue15_holdout2.jsonl" \
  --workers 5 --mem-budget-gib "$hold_budget" --deadline 400 --hard-stop 550 --timeout 240 2>&1 \
  | tee "$OUT/issue15_holdout2_log.txt" | tail -25
wait
tail -12 "$OUT/trace/log.txt"
# $OUT brings back a few files only: one archive
tar -C "$OUT" -cf /tmp/batch5.tar . && rm -rf "${OUT:?}"/* && mv /tmp/batch5.tar "$OUT/"
ls -la "$OUT"
