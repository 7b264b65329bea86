#!/bin/bash
# Issue 15, twelfth session (2026-12-06), after set 11 was validated: its one miss (Qwen3-4B generate
# from_pretrained, no KV cache because its config.json sets use_cache false) again with use_cache true in the saved
# config (scenarios.build_issue15_final_check). Not held out. From the repository root.
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
export LLMEM_CKPT_DIR=/tmp/llmem-ckpt
timeout 400 python3 bench/gpu/measure_transformers.py --set issue15_final_check \
  --out "$OUT/transformers_issue15_final_check.jsonl" --no-retry \
  --workers 1 --mem-budget-gib 70 --import-timeout 300 --deadline 330 --hard-stop 390 --timeout 200 \
  > "$OUT/log.txt" 2>&1
tail -n 3 "$OUT/log.txt"
