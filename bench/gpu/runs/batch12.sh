#!/bin/bash
# Issue 15, eleventh session (2026-12-06): scenarios.build_issue15_fp8_deep (Qwen3-30B-A3B-FP8 cut to 12 layers,
# loaded dequantised and kept in FP8), traced, to check at three times the measured depth the dequantising load's
# replay of commit d940d6f. llmem's figures were written down before the run
# (bench/data/transformers_issue15_fp8_deep_prediction.txt). From the repository root.
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c "import torch, transformers, triton; print(torch.__version__, transformers.__version__, triton.__version__)"; } > "$OUT/batch12_env.txt" 2>&1
export LLMEM_CKPT_DIR=/tmp/llmem-ckpt
mkdir -p "$OUT/trace"
LLMEM_TRACE_DIR="$OUT/trace/traces" timeout 570 python3 bench/gpu/measure_transformers.py \
  --set issue15_fp8_deep --out "$OUT/trace/transformers_issue15_fp8_deep.jsonl" --no-retry \
  --workers 2 --mem-budget-gib 60 --import-timeout 460 --deadline 540 --hard-stop 565 --timeout 150 \
  > "$OUT/trace/log.txt" 2>&1
tail -n 8 "$OUT/trace/log.txt"
tar -C "$OUT" -cf /tmp/batch12.tar . && rm -rf "${OUT:?}"/* && mv /tmp/batch12.tar "$OUT/"
ls -la "$OUT"
