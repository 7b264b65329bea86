#!/bin/bash
# Issue 15, twelfth session (2026-12-06): scenarios.build_issue15_final, the issue's last held-out set (22
# scenarios across its scope), measured with the code frozen at the commit that adds this script; llmem is
# compared with it once, at that commit (bench/data/transformers_issue15_final_validate_<commit>.txt).
# From the repository root.
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c "import torch, transformers, triton; print(torch.__version__, transformers.__version__, triton.__version__)"; } > "$OUT/batch13_env.txt" 2>&1
export LLMEM_CKPT_DIR=/tmp/llmem-ckpt
mkdir -p "$OUT/held"
timeout 570 python3 bench/gpu/measure_transformers.py --set issue15_final \
  --out "$OUT/held/transformers_issue15_final.jsonl" --no-retry \
  --workers 3 --mem-budget-gib 70 --import-timeout 400 --deadline 480 --hard-stop 555 --timeout 200 \
  > "$OUT/held/log.txt" 2>&1
grep "done:" "$OUT/held/log.txt"; grep -c '"id"' "$OUT/held/transformers_issue15_final.jsonl"
tar -C "$OUT" -cf /tmp/batch13.tar . && rm -rf "${OUT:?}"/* && mv /tmp/batch13.tar "$OUT/"
ls -la "$OUT"
