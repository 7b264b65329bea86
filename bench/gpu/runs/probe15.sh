#!/bin/bash
# Thirteenth session (2026-12-06). Issue 15: what transformers 5.17 builds for mllama (bench/gpu/probe/mllama_probe.py).
# Issues 15/17: how much of the CUDA context is the stack reservation (bench/gpu/probe/ctx_stack: built here with
# nvcc as its source says, git-ignored, so a call names it in carry).
set -o pipefail
: "${OUT:?OUT must name a folder}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/ctx_stack.txt" 2>&1
./bench/gpu/probe/ctx_stack >> "$OUT/ctx_stack.txt" 2>&1
python3 -c "import torch;torch.zeros(1).cuda();import subprocess,os;print(subprocess.run(['nvidia-smi','--query-compute-apps=pid,used_memory','--format=csv'],capture_output=True,text=True).stdout)" >> "$OUT/ctx_stack.txt" 2>&1
timeout 400 python3 bench/gpu/probe/mllama_probe.py > "$OUT/mllama_log.txt" 2>&1
tail -n 5 "$OUT/mllama_log.txt"; cat "$OUT/ctx_stack.txt"
