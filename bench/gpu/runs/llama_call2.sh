#!/bin/bash
# Issue 19, 2026-12-06 (ninth session), second device call, kept under ~450 s (device time was short): (1) the
# vision models' mmproj files and clip's buffers (llama_mmproj1.sh, from the mmproj branch); (2) llama_host1.sh's
# TinyLlama Q8_0 host-memory set again, now with each run's host resident-set series (mmap and -mmp 0 at -ngl all,
# 11, 0); (3) as time allows, the six i-quants whose files llama_host1.sh made and checked but whose runs its deadline
# cut (the CUDA JIT warm-up of the i-quant kernels took longer than the 35 s left): TinyLlama-1.1B cut to 4 layers at
# IQ1_M, IQ2_XS, IQ2_S (importance matrix), IQ2_M, IQ3_XXS, IQ3_XS; n_ctx 4096, flash attention on and off.
set -o pipefail
R=$(pwd); OUT=${OUT:-/tmp/llamacpp-out}; W=$R/build-llamacpp; mkdir -p "$OUT/x"
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
python3 bench/gpu/llamacpp/common.py prepare
timeout 180 bash bench/gpu/runs/llama_mmproj1.sh > "$OUT/mmproj_run.log" 2>&1; echo "mmproj rc=$? at t+$(el)"
tail -5 "$OUT/mmproj_run.log"; cp "$OUT/mmproj_run.log" "$OUT/x/"
tar czf "$OUT/x.tgz" -C "$OUT" x
C="ctx=4096,ngl=all;ctx=4096,ngl=all,mmap=0;ctx=4096,ngl=11;ctx=4096,ngl=11,mmap=0;ctx=4096,ngl=0;ctx=4096,ngl=0,mmap=0"
timeout 110 bash bench/gpu/llamacpp/run_all.sh --deadline 102 --prep-deadline 55 \
  --stages 1234 --models "TinyLlama-1.1B" --schemes Q8_0 --keep Q8_0 --measure-schemes Q8_0 --ctx 4096 --fa on \
  --out "$OUT/x/c" --measure-args "--configs $C --workers 2" > "$OUT/x/c.log" 2>&1
echo "host set rc=$? at t+$(el)"; tail -4 "$OUT/x/c.log"
tar czf "$OUT/x.tgz" -C "$OUT" x
L=$(( 330 - $(el) ))
S=IQ1_M,IQ2_XS,IQ2_S,IQ2_M,IQ3_XXS,IQ3_XS
C="ctx=4096,fa=on,ngl=all;ctx=4096,fa=off,ngl=all"
[ "$L" -gt 90 ] && timeout $L bash bench/gpu/llamacpp/run_all.sh --deadline $((L - 8)) --prep-deadline 120 --stages 1234 \
  --models "TinyLlama-4L=TinyLlama__TinyLlama-1.1B-Chat-v1.0,num_hidden_layers=4" --schemes $S --keep $S \
  --measure-schemes $S --ctx 4096 --fa on,off --out "$OUT/x/b" --measure-args "--configs $C" > "$OUT/x/b.log" 2>&1
tail -12 "$OUT/x/b.log"
tar czf "$OUT/x.tgz" -C "$OUT" x
echo "== [t+$(el)] done"
