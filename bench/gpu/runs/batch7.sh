#!/bin/bash
# Third device command of the sixth session (2026-12-05): traces of bench/gpu/trace_cases_issue15d.txt (held-out set
# 8's misses, after its blind comparison). From the repository root.
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; } > "$OUT/batch7_env.txt" 2>&1
export LLMEM_CKPT_DIR=/tmp/llmem-ckpt
mkdir -p "$OUT/trace"
TRACE_LIST=bench/gpu/trace_cases_issue15d.txt timeout 520 bash bench/gpu/trace_cases.sh "$OUT/trace" --set issue15_holdout2 \
  --workers 2 --mem-budget-gib 60 --import-timeout 400 --deadline 420 --hard-stop 500 --timeout 240 > "$OUT/trace/log.txt" 2>&1
tail -8 "$OUT/trace/log.txt"
tar -C "$OUT" -cf /tmp/batch7.tar . && rm -rf "${OUT:?}"/* && mv /tmp/batch7.tar "$OUT/"
ls -la "$OUT"
