#!/bin/bash
# Issue 19, 2026-12-06: what was left of the session's device time after an earlier call (a superset of this one,
# with falcon, pythia and i-quants; since removed) was taken back mid-call with nothing returned: llama.cpp's own
# projection for the measured runs and gpt-oss cut to 4 layers (make_checkpoint.py, MXFP4_MOE) on the GPU. Imported
# with import_llama_runs.py.
set -o pipefail
R=$(pwd); OUT=${OUT:-/tmp/llamacpp-out}; mkdir -p "$OUT"; W=$R/build-llamacpp
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
python3 bench/gpu/llamacpp/common.py prepare
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "== [t+$(el)] projection of the rebuilt files"
timeout 100 python3 bench/peers/run_llamacpp_projection.py --sets peers,arch,offload --out "$OUT/llamacpp_projection_rebuilt.jsonl"
LDP=$(cd bench/gpu/llamacpp && python3 -c 'import common; print(common.library_env()[0].get("LD_LIBRARY_PATH", ""))')
for f in TinyLlama-1.1B-Q4_K_M gemma-2-2b-Q8_0 Qwen3-30B-A3B-2L-Q4_K_M; do
  echo "--- $f -c 4096 -fa on -ngl 999" >> "$OUT/fit_print.txt"
  LD_LIBRARY_PATH=$LDP timeout 30 .llama/bin/llama-fit-params --fit-print -m /tmp/projection-ggufs/$f.gguf -c 4096 -fa on \
    -ngl 999 >> "$OUT/fit_print.txt" 2>/dev/null
done
cat "$OUT/fit_print.txt"
echo "== [t+$(el)] make_checkpoint"
mkdir -p "$W/mc"
timeout 100 python3 bench/gpu/llamacpp/make_checkpoint.py --tool "$R/.gpubin/hf_checkpoint_tensors" --out-dir "$W/mc" \
  --llama-src "$R/.llama" \
  'gptoss-s=openai/gpt-oss-20b,num_hidden_layers=4,vocab_size=8192,num_local_experts=8,experts_per_token=2,num_experts_per_tok=2,layer_types=["sliding_attention","full_attention","sliding_attention","full_attention"]' \
  > "$OUT/make_checkpoint.jsonl" 2> "$OUT/make_checkpoint.err"
tail -3 "$OUT/make_checkpoint.err"
n=gptoss-s
if [ -f "$W/mc/gguf/$n-base.gguf" ]; then
  mkdir -p "$W/gguf/$n"; mv "$W/mc/gguf/$n-base.gguf" "$W/gguf/$n/$n-base.gguf"
  echo '{"made_with": "make_checkpoint.py"}' > "$W/gguf/$n/$n-base.gguf.done.json"
else echo "no base for $n"; fi
echo "== [t+$(el)] run_all: gpt-oss"
M="gptoss-s=openai__gpt-oss-20b,num_hidden_layers=4,vocab_size=8192,num_local_experts=8,experts_per_token=2,num_experts_per_tok=2,layer_types=[\"sliding_attention\",\"full_attention\",\"sliding_attention\",\"full_attention\"]"
C="ctx=4096,fa=on,ngl=all;ctx=4096,fa=off,ngl=all;ctx=4096,fa=on,ngl=1;ctx=32768,fa=on,ngl=all"
LEFT=$(( 420 - $(el) ))
timeout $(( LEFT + 15 )) bash bench/gpu/llamacpp/run_all.sh --deadline $(( LEFT - 30 )) --prep-deadline $(( LEFT / 3 )) \
  --stages 1234 --models "$M" --schemes MXFP4_MOE --keep MXFP4_MOE --measure-schemes MXFP4_MOE \
  --ctx 4096,32768 --fa on,off --out "$OUT/a" --measure-args "--configs $C"
echo "== [t+$(el)] projection of the real files"
[ -f "$OUT/a/llamacpp_memory.jsonl" ] && timeout 20 python3 bench/peers/run_llamacpp_projection.py \
  --sets "$OUT/a/llamacpp_memory.jsonl" --gguf-dir "$W/gguf" --out "$OUT/a/llamacpp_projection.jsonl"
echo "== [t+$(el)] done"
