#!/bin/bash
# Issue 19, fourth llama.cpp call of 2026-12-05: the i-quants llama-quantize makes without an importance matrix
# (IQ4_NL, IQ4_XS, IQ3_S, IQ3_M) and MXFP4_MOE, on the GPU: the files (dumped tensor by tensor) and the CUDA buffers
# and process peak; TinyLlama-1.1B and Qwen3-30B-A3B cut to 4 layers; n_ctx 4096, flash attention on and off, half
# the layers offloaded.
set -o pipefail
C="ctx=4096,fa=on,ngl=all;ctx=4096,fa=off,ngl=all;ctx=4096,fa=on,ngl=half"
timeout 590 bash bench/gpu/llamacpp/run_all.sh --deadline 560 --prep-deadline 330 --stages 123J4 \
  --models "TinyLlama-1.1B Qwen3-30B-A3B-4L=Qwen__Qwen3-30B-A3B,num_hidden_layers=4" \
  --schemes IQ4_NL,IQ4_XS,IQ3_S,IQ3_M,MXFP4_MOE --keep IQ4_NL,IQ4_XS,IQ3_S,IQ3_M,MXFP4_MOE --measure-schemes IQ4_NL,IQ4_XS,IQ3_S,IQ3_M,MXFP4_MOE \
  --ctx 4096 --fa on,off --measure-args "--configs $C"
