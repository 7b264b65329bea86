#!/bin/bash
# Issue 15, tenth session (2026-12-06), third device command: the FP8 checkpoints of batch10.sh loaded with
# FineGrainedFP8Config(dequantize=True) (scenarios.build_issue15_fp8_dequant, traced, and its held-out set
# build_issue15_fp8_dequant_holdout, not), since their FP8 forward needs the `kernels` package the GPU machine lacks.
# From the repository root.
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c "import torch, transformers, triton; print(torch.__version__, transformers.__version__, triton.__version__)"; pip list 2>/dev/null | grep -i -E "^kernels|fbgemm|deep.gemm"; } > "$OUT/batch11_env.txt" 2>&1
export LLMEM_CKPT_DIR=/tmp/llmem-ckpt
mkdir -p "$OUT/trace" "$OUT/held"
COMMON="--workers 3 --mem-budget-gib 36 --import-timeout 380 --deadline 430 --hard-stop 520 --timeout 200"
LLMEM_TRACE_DIR="$OUT/trace/traces" timeout 540 python3 bench/gpu/measure_transformers.py \
  --set issue15_fp8_dequant --out "$OUT/trace/transformers_issue15_fp8_dequant.jsonl" --no-retry $COMMON > "$OUT/trace/log.txt" 2>&1 &
timeout 540 python3 bench/gpu/measure_transformers.py --set issue15_fp8_dequant_holdout \
  --out "$OUT/held/transformers_issue15_fp8_dequant_holdout.jsonl" --no-retry $COMMON > "$OUT/held/log.txt" 2>&1 &
wait
tail -n 8 "$OUT/trace/log.txt"; grep "done:" "$OUT/held/log.txt"  # the held-out numbers stay unread until the modelling is done
tar -C "$OUT" -cf /tmp/batch11.tar . && rm -rf "${OUT:?}"/* && mv /tmp/batch11.tar "$OUT/"
ls -la "$OUT"
