#!/bin/bash
# Issue 19, 2026-12-06 (ninth session), first device call, after llmem measure gained the host peak resident set
# (ru_maxrss by wait4; every record now carries host_peak_rss_bytes). Three parts, each its own run_all.sh in the
# one work directory, everything returned as one tarball:
#  a. falcon-7b and pythia-1.4b (gpt-neox) cut to 2 layers, from make_checkpoint.py's checkpoints (what
#     llama_arch3.sh prepared and never ran): Q4_K_M, n_ctx 4096, flash attention on and off, one layer offloaded;
#  b. the i-quants not yet run on the GPU: TinyLlama-1.1B cut to 4 layers at IQ1_M, IQ2_XS, IQ2_S (importance
#     matrix), IQ2_M, IQ3_XXS, IQ3_XS; n_ctx 4096, flash attention on and off;
#  c. host memory: the whole TinyLlama-1.1B at Q8_0 (1.1 GiB file) with every layer, 11 and 0 layers on the GPU,
#     each mapped (llama-bench's default load mode, auto = mmap), not mapped (-mmp 0) and mlock (-lm mlock).
# Then llama.cpp's own projection of every run. The carry must stay under 64 MiB: rpc-server, llama-fit-params and
# libggml-rpc.so are not in .llama/bin for this call (llama-imatrix is: b needs it).
set -o pipefail
R=$(pwd); OUT=${OUT:-/tmp/llamacpp-out}; W=$R/build-llamacpp; mkdir -p "$OUT/x"
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( 570 - $(el) )); }
python3 bench/gpu/llamacpp/common.py prepare
timeout 60 python3 bench/gpu/llamacpp/make_checkpoint.py --tool "$R/.gpubin/hf_checkpoint_tensors" --out-dir "$W/mc" \
  --work "$W" --llama-src "$R/.llama" 'falcon7b-2L=tiiuae/falcon-7b,num_hidden_layers=2,vocab_size=8192' \
  'pythia-2L=EleutherAI/pythia-1.4b,num_hidden_layers=2,vocab_size=8192' > "$OUT/x/make_checkpoint.jsonl" 2> "$OUT/x/make_checkpoint.err"
rm -rf "$W/mc/hf"
echo "== [t+$(el)] a: falcon, gpt-neox"
M="falcon7b-2L=tiiuae__falcon-7b,num_hidden_layers=2,vocab_size=8192 pythia-2L=EleutherAI__pythia-1.4b,num_hidden_layers=2,vocab_size=8192"
C="ctx=4096,fa=on,ngl=all;ctx=4096,fa=off,ngl=all;ctx=4096,fa=on,ngl=1"
timeout 150 bash bench/gpu/llamacpp/run_all.sh --deadline 135 --prep-deadline 60 --stages 1234 --models "$M" \
  --schemes Q4_K_M --keep Q4_K_M --measure-schemes Q4_K_M --ctx 4096 --fa on,off --out "$OUT/x/a" --measure-args "--configs $C"
tar czf "$OUT/x.tgz" -C "$OUT" x
echo "== [t+$(el)] b: i-quants"
S=IQ1_M,IQ2_XS,IQ2_S,IQ2_M,IQ3_XXS,IQ3_XS
C="ctx=4096,fa=on,ngl=all;ctx=4096,fa=off,ngl=all"
timeout 170 bash bench/gpu/llamacpp/run_all.sh --deadline 155 --prep-deadline 100 --stages 1234 \
  --models "TinyLlama-4L=TinyLlama__TinyLlama-1.1B-Chat-v1.0,num_hidden_layers=4" --schemes $S --keep $S \
  --measure-schemes $S --ctx 4096 --fa on,off --out "$OUT/x/b" --measure-args "--configs $C"
tar czf "$OUT/x.tgz" -C "$OUT" x
echo "== [t+$(el)] c: host memory ($(left) s left)"
C="ctx=4096,ngl=all;ctx=4096,ngl=all,mmap=0;ctx=4096,ngl=all,lm=mlock;ctx=4096,ngl=11;ctx=4096,ngl=11,mmap=0"
C="$C;ctx=4096,ngl=11,lm=mlock;ctx=4096,ngl=0;ctx=4096,ngl=0,mmap=0;ctx=4096,ngl=0,lm=mlock"
L=$(left); [ "$L" -gt 60 ] && timeout $L bash bench/gpu/llamacpp/run_all.sh --deadline $((L - 10)) --prep-deadline $((L / 2)) \
  --stages 1234 --models "TinyLlama-1.1B" --schemes Q8_0 --keep Q8_0 --measure-schemes Q8_0 --ctx 4096 --fa on \
  --out "$OUT/x/c" --measure-args "--configs $C --workers 2"
for s in a b c; do
  [ -f "$OUT/x/$s/llamacpp_memory.jsonl" ] && timeout 15 python3 bench/peers/run_llamacpp_projection.py \
    --sets "$OUT/x/$s/llamacpp_memory.jsonl" --gguf-dir "$W/gguf" --out "$OUT/x/$s/llamacpp_projection.jsonl"
done
free -b > "$OUT/x/free.txt"; ulimit -l >> "$OUT/x/free.txt"
tar czf "$OUT/x.tgz" -C "$OUT" x
echo "== [t+$(el)] done"
