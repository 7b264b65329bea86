#!/bin/bash
# Issue 19, 2026-12-06, last device call of the session (warm machine after llama_combo2.sh): first the gpt-oss runs'
# records, which llama_combo2.sh wrote but the device's return left out (build-llamacpp/state/memory.jsonl: every run's
# record is appended there too), then i-quants on the GPU as far as the time goes: TinyLlama-1.1B cut to 4 layers,
# IQ2_XXS and IQ1_S with an importance matrix, IQ3_S and IQ4_XS without; n_ctx 4096, flash attention on and off.
# Everything returns as one tarball (the return takes a limited number of files).
set -o pipefail
R=$(pwd); OUT=${OUT:-/tmp/llamacpp-out}; W=$R/build-llamacpp; mkdir -p "$OUT/x"
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
cp "$W/state/memory.jsonl" "$OUT/x/state_memory_before.jsonl" 2>/dev/null
tar czf "$OUT/x.tgz" -C "$OUT" x
S=IQ2_XXS,IQ1_S,IQ3_S,IQ4_XS
C="ctx=4096,fa=on,ngl=all;ctx=4096,fa=off,ngl=all"
timeout 290 bash bench/gpu/llamacpp/run_all.sh --deadline 250 --prep-deadline 170 --stages 1234 \
  --models "TinyLlama-4L=TinyLlama__TinyLlama-1.1B-Chat-v1.0,num_hidden_layers=4" --schemes $S --keep $S \
  --measure-schemes $S --ctx 4096 --fa on,off --out "$OUT/x/b" --measure-args "--configs $C"
[ -f "$OUT/x/b/llamacpp_memory.jsonl" ] && timeout 20 python3 bench/peers/run_llamacpp_projection.py \
  --sets "$OUT/x/b/llamacpp_memory.jsonl" --gguf-dir "$W/gguf" --out "$OUT/x/b/llamacpp_projection.jsonl"
tar czf "$OUT/x.tgz" -C "$OUT" x
echo "== [t+$(el)] done"
