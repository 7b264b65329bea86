#!/bin/bash
# NOT RUN YET: prepared 2026-12-06 when the session's device time was spent; the next call for issue 19 (move
# llama-imatrix, llama-fit-params, rpc-server and libggml-rpc.so out of .llama/bin to keep the carry under 64 MiB).
# Issue 19, 2026-12-06: falcon-7b and pythia-1.4b (gpt-neox) cut to 2 layers on the GPU, from make_checkpoint.py's
# checkpoints (transformers 5.17's saved checkpoints of both failed the pinned converter in llama_arch1.sh): Q4_K_M,
# n_ctx 4096 with flash attention on and off, and one layer offloaded; then llama.cpp's own projection of each run.
# Everything returns as one tarball.
set -o pipefail
R=$(pwd); OUT=${OUT:-/tmp/llamacpp-out}; W=$R/build-llamacpp; mkdir -p "$OUT/x"
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
python3 bench/gpu/llamacpp/common.py prepare
timeout 60 python3 bench/gpu/llamacpp/make_checkpoint.py --tool "$R/.gpubin/hf_checkpoint_tensors" --out-dir "$W/mc" \
  --work "$W" --llama-src "$R/.llama" 'falcon7b-2L=tiiuae/falcon-7b,num_hidden_layers=2,vocab_size=8192' \
  'pythia-2L=EleutherAI/pythia-1.4b,num_hidden_layers=2,vocab_size=8192' > "$OUT/x/make_checkpoint.jsonl" 2> "$OUT/x/make_checkpoint.err"
rm -rf "$W/mc/hf"
M="falcon7b-2L=tiiuae__falcon-7b,num_hidden_layers=2,vocab_size=8192 pythia-2L=EleutherAI__pythia-1.4b,num_hidden_layers=2,vocab_size=8192"
C="ctx=4096,fa=on,ngl=all;ctx=4096,fa=off,ngl=all;ctx=4096,fa=on,ngl=1"
timeout 190 bash bench/gpu/llamacpp/run_all.sh --deadline 160 --prep-deadline 60 --stages 1234 --models "$M" \
  --schemes Q4_K_M --keep Q4_K_M --measure-schemes Q4_K_M --ctx 4096 --fa on,off --out "$OUT/x/a" --measure-args "--configs $C"
[ -f "$OUT/x/a/llamacpp_memory.jsonl" ] && timeout 20 python3 bench/peers/run_llamacpp_projection.py \
  --sets "$OUT/x/a/llamacpp_memory.jsonl" --gguf-dir "$W/gguf" --out "$OUT/x/a/llamacpp_projection.jsonl"
tar czf "$OUT/x.tgz" -C "$OUT" x
echo "== [t+$(el)] done"
