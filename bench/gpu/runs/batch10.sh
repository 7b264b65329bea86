#!/bin/bash
# Issue 15, tenth session (2026-12-06), first device command: FP8 checkpoints as the hub stores them (scenarios.
# build_issue15_fp8, with allocator traces, and its held-out set build_issue15_fp8_holdout, without), each written
# before GO by measure_transformers.prepare_checkpoint and loaded with from_pretrained; the two sets run side by side
# (each driver with its own memory budget). Also saves transformers' FP8 sources that the modelling will cite.
# From the repository root.
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c "import torch, transformers, triton; print(torch.__version__, transformers.__version__, triton.__version__)"; pip list 2>/dev/null | grep -i -E "^kernels|fbgemm|deep.gemm"; } > "$OUT/batch10_env.txt" 2>&1
mkdir -p "$OUT/src"
python3 - "$OUT/src" <<'PY' >> "$OUT/batch10_env.txt" 2>&1
import os, shutil, sys, transformers
root = os.path.dirname(transformers.__file__)
for rel in ("integrations/finegrained_fp8.py", "quantizers/quantizer_finegrained_fp8.py", "integrations/moe.py",
            "integrations/hub_kernels.py", "core_model_loading.py", "conversion_mapping.py"):
    p = os.path.join(root, rel)
    if os.path.exists(p):
        shutil.copy(p, os.path.join(sys.argv[1], rel.replace("/", "__")))
    else:
        print("missing", rel)
PY
export LLMEM_CKPT_DIR=/tmp/llmem-ckpt
mkdir -p "$OUT/trace" "$OUT/held"
COMMON="--workers 3 --mem-budget-gib 36 --import-timeout 380 --deadline 430 --hard-stop 520 --timeout 200"
LLMEM_TRACE_DIR="$OUT/trace/traces" timeout 540 python3 bench/gpu/measure_transformers.py \
  --set issue15_fp8 --out "$OUT/trace/transformers_issue15_fp8.jsonl" --no-retry $COMMON > "$OUT/trace/log.txt" 2>&1 &
timeout 540 python3 bench/gpu/measure_transformers.py --set issue15_fp8_holdout \
  --out "$OUT/held/transformers_issue15_fp8_holdout.jsonl" --no-retry $COMMON > "$OUT/held/log.txt" 2>&1 &
wait
tail -6 "$OUT/trace/log.txt" "$OUT/held/log.txt"
tar -C "$OUT" -cf /tmp/batch10.tar . && rm -rf "${OUT:?}"/* && mv /tmp/batch10.tar "$OUT/"
ls -la "$OUT"
