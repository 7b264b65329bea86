#!/bin/bash
# Second device command of the sixth session (2026-12-05): traces of bench/gpu/trace_cases_issue15c.txt, and the
# one scenario of issue 15's second held-out set that did not start in batch5 (DeepSeek-V2-Lite from_pretrained:
# its checkpoint took longer to write than the start-up limit), alone with a longer limit. From the repository root.
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; } > "$OUT/batch6_env.txt" 2>&1
export LLMEM_CKPT_DIR=/tmp/llmem-ckpt
mkdir -p "$OUT/trace"
TRACE_LIST=bench/gpu/trace_cases_issue15c.txt timeout 500 bash bench/gpu/trace_cases.sh "$OUT/trace" --set issue15_all \
  --workers 3 --mem-budget-gib 40 --deadline 300 --hard-stop 480 --timeout 200 > "$OUT/trace/log.txt" 2>&1 &
timeout 500 python3 bench/gpu/measure_transformers.py --set issue15_holdout2 --only DeepSeek-V2-Lite-L6-bf16-b1-p4096-pretrained \
  --out "$OUT/issue15_holdout2_rerun.jsonl" --workers 1 --mem-budget-gib 25 --import-timeout 400 --deadline 420 \
  --hard-stop 480 --timeout 200 > "$OUT/issue15_holdout2_rerun_log.txt" 2>&1
wait
tail -8 "$OUT/trace/log.txt"; tail -3 "$OUT/issue15_holdout2_rerun_log.txt"
tar -C "$OUT" -cf /tmp/batch6.tar . && rm -rf "${OUT:?}"/* && mv /tmp/batch6.tar "$OUT/"
ls -la "$OUT"
