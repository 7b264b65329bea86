#!/bin/bash
# Issue 19, first llama.cpp call of 2026-12-05: tensors kept in host memory. A 4-layer Qwen3-30B-A3B (qwen3moe) and
# TinyLlama-1.1B (llama, dense), Q4_K_M and Q8_0, at n_ctx 4096 (and 32768), flash attention on, over: every layer
# on the GPU; --n-cpu-moe 1, 2, 4; --n-cpu-moe 4 with n_ubatch 16 (below op offload's batch of 32); one
# --override-tensor; -ngl 2 and -ngl 0 (op offload with layers on the host); --no-mmap. The .llama kit of this
# date (BUILD_INFO.txt): node-llama-cpp's prebuilt libraries + tools compiled here.
set -o pipefail
C="ctx=4096,ngl=all;ctx=4096,ngl=all,ncmoe=1;ctx=4096,ngl=all,ncmoe=2;ctx=4096,ngl=all,ncmoe=4"
C="$C;ctx=4096,ngl=all,ncmoe=4,ub=16;ctx=4096,ngl=all,ot=ffn_down_exps=CPU;ctx=4096,ngl=2;ctx=4096,ngl=0"
C="$C;ctx=4096,ngl=all,ncmoe=2,mmap=0;ctx=32768,ngl=all,ncmoe=4"
timeout 590 bash bench/gpu/llamacpp/run_all.sh --deadline 555 --prep-deadline 230 --stages 123J4 \
  --models "Qwen3-30B-A3B-4L=Qwen__Qwen3-30B-A3B,num_hidden_layers=4 TinyLlama-1.1B" \
  --schemes Q4_K_M,Q8_0 --keep Q4_K_M,Q8_0 --measure-schemes Q4_K_M,Q8_0 --ctx 4096,32768 --fa on \
  --measure-args "--configs $C"
rc=$?
cd "${OUT:-/tmp/llamacpp-out}" 2>/dev/null && tar cJf /tmp/llama_moe1.tar.xz . && mv /tmp/llama_moe1.tar.xz . ; exit $rc
