#!/bin/bash
# The third call: only the from_pretrained scenario, after the override-copy fix. Issue 15, thirteenth session: Llama-3.2-11B-Vision (mllama) measured for the first time
# (scenarios.build_issue15_mllama, tier 20), after the family and the set were committed (53b6efb); and the probe of
# what transformers 5.17 builds for it and of the CUDA context's stack reservation (runs/probe15.sh). From the
# repository root.
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
export LLMEM_CKPT_DIR=/tmp/llmem-ckpt
# (the probe ran in the first call of this script: bench/data/probe15_h100/)
timeout 470 python3 bench/gpu/measure_transformers.py --set issue15_mllama --only pretrained \
  --out "$OUT/transformers_issue15_mllama_pretrained.jsonl" --no-retry \
  --workers 1 --mem-budget-gib 70 --import-timeout 300 --deadline 400 --hard-stop 460 --timeout 240 \
  > "$OUT/log.txt" 2>&1
tail -n 8 "$OUT/log.txt"; ls -la /tmp/llmem-ckpt/* 2>&1 | head -20
