#!/bin/bash
# Issue 19, first llama.cpp call of 2026-12-06 (session eight):
#  1. llama.cpp's own projection (bench/peers/llamacpp_projection.cpp: what llama-fit-params/--fit compute) for the
#     measured runs whose files can be rebuilt from their dumps (the 138 peer runs, the 20 architecture runs, the
#     TinyLlama runs of the offload set), on the CUDA backend.
#  2. Architectures whose checkpoints transformers 5.17 could not convert, and gpt-oss: random-weight checkpoints
#     from make_checkpoint.py (llmem's tensor list, MXFP4 blocks as the hub stores them; no transformers), then
#     llama.cpp's converter, quantiser and llama-bench runs: gpt-oss (MXFP4_MOE, Q4_K_M), falcon-7b and pythia
#     (gpt-neox) cut to 2 layers (Q4_K_M). Qwen3-30B-A3B cut to 4 layers again (transformers, Q4_K_M/Q8_0) so that
#     the offload set's Qwen3 runs can be projected from real files.
#  3. The projection for the offload set and the new runs, from the real files.
set -o pipefail
R=$(pwd); OUT=${OUT:-/tmp/llamacpp-out}; mkdir -p "$OUT"; W=$R/build-llamacpp
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
python3 bench/gpu/llamacpp/common.py prepare
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "== [t+$(el)] projection of the rebuilt files"
timeout 120 python3 bench/peers/run_llamacpp_projection.py --sets peers,arch,offload --out "$OUT/llamacpp_projection_rebuilt.jsonl"
echo "== [t+$(el)] llama-fit-params --fit-print on three of them (whole MiB), beside the projection tool's bytes"
LDP=$(cd bench/gpu/llamacpp && python3 -c 'import common; print(common.library_env()[0].get("LD_LIBRARY_PATH", ""))')
for f in TinyLlama-1.1B-Q4_K_M gemma-2-2b-Q8_0 Qwen3-30B-A3B-2L-Q4_K_M; do
  echo "--- $f -c 4096 -fa on -ngl 999" >> "$OUT/fit_print.txt"
  LD_LIBRARY_PATH=$LDP timeout 30 .llama/bin/llama-fit-params --fit-print -m /tmp/projection-ggufs/$f.gguf -c 4096 -fa on \
    -ngl 999 >> "$OUT/fit_print.txt" 2>/dev/null
done
cat "$OUT/fit_print.txt"
echo "== [t+$(el)] make_checkpoint"
mkdir -p "$W/mc"
GPTOSS='gptoss-s=openai/gpt-oss-20b,num_hidden_layers=4,vocab_size=8192,num_local_experts=8,experts_per_token=2,num_experts_per_tok=2,layer_types=["sliding_attention","full_attention","sliding_attention","full_attention"]'
FALCON='falcon7b-2L=tiiuae/falcon-7b,num_hidden_layers=2,vocab_size=8192'
PYTHIA='pythia-2L=EleutherAI/pythia-1.4b,num_hidden_layers=2,vocab_size=8192'
timeout 200 python3 bench/gpu/llamacpp/make_checkpoint.py --tool "$R/.gpubin/hf_checkpoint_tensors" --out-dir "$W/mc" \
  --llama-src "$R/.llama" "$GPTOSS" "$FALCON" "$PYTHIA" > "$OUT/make_checkpoint.jsonl" 2> "$OUT/make_checkpoint.err"
tail -3 "$OUT/make_checkpoint.err"
for n in gptoss-s falcon7b-2L pythia-2L; do
  if [ -f "$W/mc/gguf/$n-base.gguf" ]; then
    mkdir -p "$W/gguf/$n"; mv "$W/mc/gguf/$n-base.gguf" "$W/gguf/$n/$n-base.gguf"
    echo '{"made_with": "make_checkpoint.py"}' > "$W/gguf/$n/$n-base.gguf.done.json"
  else echo "no base for $n"; fi
done
rm -rf "$W/mc/hf"
echo "== [t+$(el)] run_all"
M="gptoss-s=openai__gpt-oss-20b,num_hidden_layers=4,vocab_size=8192,num_local_experts=8,experts_per_token=2,num_experts_per_tok=2,layer_types=[\"sliding_attention\",\"full_attention\",\"sliding_attention\",\"full_attention\"]"
M="$M falcon7b-2L=tiiuae__falcon-7b,num_hidden_layers=2,vocab_size=8192 pythia-2L=EleutherAI__pythia-1.4b,num_hidden_layers=2,vocab_size=8192"
M="$M Qwen3-30B-A3B-4L=Qwen__Qwen3-30B-A3B,num_hidden_layers=4"
C="ctx=4096,fa=on,ngl=all;ctx=4096,fa=off,ngl=all;ctx=4096,fa=on,ngl=1;ctx=32768,fa=on,ngl=all;ctx=4096,fa=on,ngl=all,ncmoe=2"
LEFT=$(( 545 - $(el) ))
timeout $(( LEFT + 20 )) bash bench/gpu/llamacpp/run_all.sh --deadline $(( LEFT - 75 )) --prep-deadline $(( LEFT / 2 )) --stages 123J4 \
  --models "$M" --schemes MXFP4_MOE,Q4_K_M,Q8_0 --keep MXFP4_MOE,Q4_K_M,Q8_0 --measure-schemes MXFP4_MOE,Q4_K_M \
  --ctx 4096,32768 --fa on,off --measure-args "--configs $C"
echo "== [t+$(el)] projection of the real files"
timeout 60 python3 bench/peers/run_llamacpp_projection.py --sets offload,"$OUT/llamacpp_memory.jsonl" --gguf-dir "$W/gguf" \
  --out "$OUT/llamacpp_projection_real.jsonl"
echo "== [t+$(el)] done"
