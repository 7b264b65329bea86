#!/bin/bash
# Fourth device command of the sixth session (2026-12-05): traces of bench/gpu/trace_cases_issue15e.txt (MoE
# generates whose decode peaks above the prefill). From the repository root.
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; } > "$OUT/batch8_env.txt" 2>&1
export LLMEM_CKPT_DIR=/tmp/llmem-ckpt
mkdir -p "$OUT/trace"
TRACE_LIST=bench/gpu/trace_cases_issue15e.txt timeout 520 bash bench/gpu/trace_cases.sh "$OUT/trace" --set issue15 \
  --workers 2 --mem-budget-gib 60 --import-timeout 400 --deadline 420 --hard-stop 500 --timeout 240 > "$OUT/trace/log.txt" 2>&1
tail -8 "$OUT/trace/log.txt"
tar -C "$OUT" -cf /tmp/batch8.tar . && rm -rf "${OUT:?}"/* && mv /tmp/batch8.tar "$OUT/"
ls -la "$OUT"
