#!/bin/bash
# Device command of 2026-12-05 (one H200): the finetune/finetune_holdout sets (issue 14) on the GPU, and beside them
# on the CPU (meta device) the catalog's parameter counts (issue 15) and accelerate's placements (issue 20).
# Usage on the device machine, from the repository root: bash bench/gpu/runs/batch1.sh   (writes under $OUT)
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
{ nvidia-smi; python3 -c 'import torch, transformers, peft, accelerate; print(torch.__version__, transformers.__version__, peft.__version__, accelerate.__version__)'; } > "$OUT/env.txt" 2>&1
(
  timeout 200 python3 bench/gpu/count_params.py "$OUT/params.jsonl" > "$OUT/cpu.log" 2>&1
  timeout 60 python3 bench/gpu/count_params.py "$OUT/vlm.jsonl" tests/fixtures/gemma3_4b_vlm_config.json \
    tests/fixtures/qwen2_5_vl_7b_config.json tests/fixtures/mistral_small_3_1_24b_config.json >> "$OUT/cpu.log" 2>&1
  timeout 300 python3 bench/gpu/accelerate_placement.py --out "$OUT/placement.jsonl" >> "$OUT/cpu.log" 2>&1
  echo "cpu jobs done rc=$?" >> "$OUT/cpu.log"
) &
timeout 575 python3 bench/gpu/measure_transformers.py --set finetune_all --out "$OUT/finetune_all.jsonl" --workers 8 \
  --deadline 470 --hard-stop 545 --timeout 200 > "$OUT/log.txt" 2>&1
echo "finetune rc=$?" >> "$OUT/log.txt"
wait
