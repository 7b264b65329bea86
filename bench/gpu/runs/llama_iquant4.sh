#!/bin/bash
# Issue 19, tenth session (2026-12-06): the six i-quants whose files llama_host1.sh made and checked tensor by tensor
# but whose GPU runs its deadline cut (llama_call2.sh's third part, which never ran): TinyLlama-1.1B cut to 4
# layers at IQ1_M, IQ2_XS, IQ2_S (importance matrix), IQ2_M, IQ3_XXS, IQ3_XS; n_ctx 4096, flash attention on and
# off, every layer on the GPU. The CUDA JIT warm-up of the i-quant kernels on a fresh machine takes over a minute,
# so the deadline is longer than llama_call2.sh gave it.
set -o pipefail
R=$(pwd); OUT=${OUT:-/tmp/llamacpp-out}; mkdir -p "$OUT/x"
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
python3 bench/gpu/llamacpp/common.py prepare
S=IQ1_M,IQ2_XS,IQ2_S,IQ2_M,IQ3_XXS,IQ3_XS
C="ctx=4096,fa=on,ngl=all;ctx=4096,fa=off,ngl=all"
timeout 540 bash bench/gpu/llamacpp/run_all.sh --deadline 520 --prep-deadline 300 --stages 1234 \
  --models "TinyLlama-4L=TinyLlama__TinyLlama-1.1B-Chat-v1.0,num_hidden_layers=4" --schemes $S --keep $S \
  --measure-schemes $S --ctx 4096 --fa on,off --out "$OUT/x/b" --measure-args "--configs $C" > "$OUT/x/b.log" 2>&1
echo "rc=$? at t+$(el)"; tail -12 "$OUT/x/b.log"
tar czf "$OUT/x.tgz" -C "$OUT" x && rm -rf "$OUT/x"
