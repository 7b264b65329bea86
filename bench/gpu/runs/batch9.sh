#!/bin/bash
# Fifth device command of the sixth session (2026-12-05): the trace of bench/gpu/trace_cases_finetune_b.txt. From the
# repository root.
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; } > "$OUT/batch9_env.txt" 2>&1
mkdir -p "$OUT/trace"
TRACE_LIST=bench/gpu/trace_cases_finetune_b.txt timeout 400 bash bench/gpu/trace_cases.sh "$OUT/trace" --set finetune \
  --workers 1 --mem-budget-gib 60 --deadline 300 --hard-stop 380 --timeout 240 > "$OUT/trace/log.txt" 2>&1
tail -6 "$OUT/trace/log.txt"
tar -C "$OUT" -cf /tmp/batch9.tar . && rm -rf "${OUT:?}"/* && mv /tmp/batch9.tar "$OUT/"
ls -la "$OUT"
