#!/bin/bash
# Issue 19, second llama.cpp call of 2026-12-05: several devices. N rpc-server processes on the one GPU (each under
# its own llmem measure), llama-bench with the GPU hidden and --rpc: every buffer it logs is one device's, and
# RPC devices have async compute and events, so pipeline parallelism is on as with several CUDA GPUs.
# TinyLlama-1.1B (llama), gemma-2-2b (gemma2: sliding window, tied output), Qwen3-30B-A3B cut to 4 layers (qwen3moe);
# Q4_K_M; n_ctx 4096 (and 32768): 2 devices at the default split, 1:1 and 3:1; 3 devices 1:1:1; 2 devices with
# -ngl 2 and with --n-cpu-moe 2 (no pipeline parallelism then).
set -o pipefail
C="ctx=4096,ngl=all,rpc=2;ctx=4096,ngl=all,rpc=2,ts=1/1;ctx=4096,ngl=all,rpc=2,ts=3/1;ctx=4096,ngl=all,rpc=3,ts=1/1/1"
C="$C;ctx=4096,ngl=2,rpc=2,ts=1/1;ctx=4096,ngl=all,rpc=2,ts=1/1,ncmoe=2;ctx=32768,ngl=all,rpc=2,ts=1/1"
timeout 590 bash bench/gpu/llamacpp/run_all.sh --deadline 555 --prep-deadline 250 --stages 123J4 \
  --models "TinyLlama-1.1B gemma-2-2b Qwen3-30B-A3B-4L=Qwen__Qwen3-30B-A3B,num_hidden_layers=4" \
  --schemes Q4_K_M --keep Q4_K_M --measure-schemes Q4_K_M --ctx 4096,32768 --fa on \
  --measure-args "--keep-logs --configs $C"
rc=$?
cd "${OUT:-/tmp/llamacpp-out}" 2>/dev/null && tar cJf /tmp/llama_rpc1.tar.xz -C "$OLDPWD/build-llamacpp" runs 2>/dev/null; mv /tmp/llama_rpc1.tar.xz . 2>/dev/null; exit $rc
