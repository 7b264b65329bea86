#!/bin/bash
# Issue 19, the one llama.cpp call of 2026-12-06 (device time was short: llama_peers1.sh and llama_iquant2.sh in one
# call, cut down):
#  1. llama.cpp's own projection (bench/peers/llamacpp_projection.cpp: what llama-fit-params/--fit compute) for the
#     measured runs whose files can be rebuilt from their dumps (the 138 peer runs, the 20 architecture runs, the
#     TinyLlama runs of the offload set), and llama-fit-params --fit-print on three of them.
#  2. gpt-oss (MXFP4_MOE), falcon-7b and pythia (gpt-neox) cut to 2-4 layers: random-weight checkpoints from
#     make_checkpoint.py (llmem's tensor list, MXFP4 blocks as the hub stores them; no transformers, whose 5.17
#     checkpoints of falcon and gpt-neox the converter rejected), converted, quantised, llama-bench.
#  3. i-quants on the GPU: TinyLlama-1.1B cut to 4 layers (full width and vocabulary), IQ2_XXS, IQ1_S, IQ3_XXS with
#     an importance matrix (llama-imatrix on the CPU), IQ3_S and IQ4_XS without.
#  4. The projection of every new run from its real file.
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
timeout 150 python3 bench/gpu/llamacpp/make_checkpoint.py --tool "$R/.gpubin/hf_checkpoint_tensors" --out-dir "$W/mc" \
  --llama-src "$R/.llama" \
  'gptoss-s=openai/gpt-oss-20b,num_hidden_layers=4,vocab_size=8192,num_local_experts=8,experts_per_token=2,num_experts_per_tok=2,layer_types=["sliding_attention","full_attention","sliding_attention","full_attention"]' \
  'falcon7b-2L=tiiuae/falcon-7b,num_hidden_layers=2,vocab_size=8192' 'pythia-2L=EleutherAI/pythia-1.4b,num_hidden_layers=2,vocab_size=8192' \
  > "$OUT/make_checkpoint.jsonl" 2> "$OUT/make_checkpoint.err"
tail -3 "$OUT/make_checkpoint.err"
for n in gptoss-s falcon7b-2L pythia-2L; do
  if [ -f "$W/mc/gguf/$n-base.gguf" ]; then
    mkdir -p "$W/gguf/$n"; mv "$W/mc/gguf/$n-base.gguf" "$W/gguf/$n/$n-base.gguf"
    echo '{"made_with": "make_checkpoint.py"}' > "$W/gguf/$n/$n-base.gguf.done.json"
  else echo "no base for $n"; fi
done
rm -rf "$W/mc/hf"
echo "== [t+$(el)] run_all: gpt-oss, falcon, pythia"
M="gptoss-s=openai__gpt-oss-20b,num_hidden_layers=4,vocab_size=8192,num_local_experts=8,experts_per_token=2,num_experts_per_tok=2,layer_types=[\"sliding_attention\",\"full_attention\",\"sliding_attention\",\"full_attention\"]"
M="$M falcon7b-2L=tiiuae__falcon-7b,num_hidden_layers=2,vocab_size=8192 pythia-2L=EleutherAI__pythia-1.4b,num_hidden_layers=2,vocab_size=8192"
C="ctx=4096,fa=on,ngl=all;ctx=4096,fa=off,ngl=all;ctx=4096,fa=on,ngl=1;ctx=32768,fa=on,ngl=all"
LEFT=$(( 330 - $(el) ))
timeout $(( LEFT + 20 )) bash bench/gpu/llamacpp/run_all.sh --deadline $(( LEFT - 40 )) --prep-deadline $(( LEFT / 2 )) \
  --stages 123J4 --models "$M" --schemes MXFP4_MOE,Q4_K_M --keep MXFP4_MOE,Q4_K_M --measure-schemes MXFP4_MOE,Q4_K_M \
  --ctx 4096,32768 --fa on,off --out "$OUT/a" --measure-args "--configs $C"
echo "== [t+$(el)] run_all: i-quants"
S=IQ2_XXS,IQ1_S,IQ3_XXS,IQ3_S,IQ4_XS
C="ctx=4096,fa=on,ngl=all;ctx=4096,fa=off,ngl=all;ctx=4096,fa=on,ngl=half"
LEFT=$(( 545 - $(el) ))
timeout $(( LEFT + 10 )) bash bench/gpu/llamacpp/run_all.sh --deadline $(( LEFT - 40 )) --prep-deadline $(( LEFT / 2 )) \
  --stages 1234 --models "TinyLlama-4L=TinyLlama__TinyLlama-1.1B-Chat-v1.0,num_hidden_layers=4" --schemes $S --keep $S \
  --measure-schemes $S --ctx 4096 --fa on,off --out "$OUT/b" --measure-args "--configs $C"
echo "== [t+$(el)] projection of the real files"
for s in a b; do
  [ -f "$OUT/$s/llamacpp_memory.jsonl" ] && timeout 25 python3 bench/peers/run_llamacpp_projection.py \
    --sets "$OUT/$s/llamacpp_memory.jsonl" --gguf-dir "$W/gguf" --out "$OUT/$s/llamacpp_projection.jsonl"
done
echo "== [t+$(el)] done"
