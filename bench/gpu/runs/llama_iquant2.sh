#!/bin/bash
# Issue 19, second llama.cpp call of 2026-12-06: the i-quants on the GPU. TinyLlama-1.1B cut to 4 layers (its full
# width and vocabulary: the shapes its kernels and pools see), every i-quant scheme llama-quantize makes: IQ1_S,
# IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ2_M, IQ3_XXS, IQ3_XS with an importance matrix (llama-imatrix on the CPU over
# README.md, quantize_all.py), IQ3_S and IQ4_XS without; files dumped tensor by tensor; llama-bench at n_ctx 4096,
# flash attention on and off, and half the layers on the GPU; then llama.cpp's own projection of each run.
set -o pipefail
R=$(pwd); OUT=${OUT:-/tmp/llamacpp-out}; mkdir -p "$OUT"; W=$R/build-llamacpp
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
M="TinyLlama-4L=TinyLlama__TinyLlama-1.1B-Chat-v1.0,num_hidden_layers=4"
S=IQ1_S,IQ1_M,IQ2_XXS,IQ2_XS,IQ2_S,IQ2_M,IQ3_XXS,IQ3_XS,IQ3_S,IQ4_XS
C="ctx=4096,fa=on,ngl=all;ctx=4096,fa=off,ngl=all;ctx=4096,fa=on,ngl=half"
timeout 560 bash bench/gpu/llamacpp/run_all.sh --deadline 470 --prep-deadline 300 --stages 123J4 \
  --models "$M" --schemes $S --keep $S --measure-schemes $S --ctx 4096 --fa on,off --measure-args "--configs $C"
echo "== [t+$(el)] projection of the real files"
timeout 40 python3 bench/peers/run_llamacpp_projection.py --sets "$OUT/llamacpp_memory.jsonl" --gguf-dir "$W/gguf" \
  --out "$OUT/llamacpp_projection_iquant.jsonl"
echo "== [t+$(el)] done"
