#!/bin/bash
# Issue 19 (the vision models' mmproj file), prepared 2026-12-06: the multimodal projector GGUFs of gemma3
# (google/gemma-3-4b-it's config, SigLIP cut to 2 layers), qwen2.5-vl (Qwen2.5-VL-7B's, 4 vision blocks, window
# attention every 2nd) and mistral3 (Mistral-Small-3.1's pixtral, 2 layers), text models cut to 1 layer with an 8192
# vocabulary, from make_checkpoint.py's random-weight checkpoints, converted by the pinned converter
# (convert_hf_to_gguf.py --mmproj, --outtype f16, f32, bf16, q8_0) and dumped (dump_gguf.py: metadata, tensor list,
# offsets, file size); then llama.cpp's clip loader on each file (.llama/bin/mmproj-measure, bench/peers/
# mmproj_measure.cpp): weights buffer and compute buffer per backend in bytes after the warm-up, on the GPU with -fa
# auto/on/off, qwen2.5-vl also with --image-max-tokens 1024, and on the CPU (--no-mmproj-offload). Everything
# returns as one tarball ($OUT/x.tgz). Expected: ~2-4 min (checkpoints ~30 s, 12 conversions ~10 s each, the
# measurements ~1-3 s each; the first CUDA one JIT-compiles clip's kernels).
#   set -o pipefail; timeout 540 bash bench/gpu/runs/llama_mmproj1.sh
set -o pipefail
R=$(pwd); OUT=${OUT:-/tmp/llamacpp-out}; W=$R/build-llamacpp; mkdir -p "$OUT/x" "$W"
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
python3 bench/gpu/llamacpp/common.py prepare
if [ ! -x .llama/bin/mmproj-measure ] || [ .llama/bin/mmproj-measure.xz -nt .llama/bin/mmproj-measure ]; then
  xz -dc .llama/bin/mmproj-measure.xz > .llama/bin/mmproj-measure && chmod +x .llama/bin/mmproj-measure
fi
eval "$(python3 bench/gpu/llamacpp/common.py env)"
export CUDA_CACHE_PATH=$W/cuda-cache CUDA_CACHE_MAXSIZE=4294967296
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/x/gpu.txt" 2>&1
cp .llama/BUILD_INFO.txt "$OUT/x/" 2>/dev/null
echo "== [t+$(el)] checkpoints and conversions"
timeout 300 python3 bench/gpu/llamacpp/make_checkpoint.py --tool "$R/.gpubin/hf_checkpoint_tensors" --out-dir "$W/mm" \
  --llama-src "$R/.llama" --mmproj f16,f32,bf16,q8_0 \
  'gemma3-2L=tests/fixtures/gemma3_4b_vlm_config.json,vision_config.num_hidden_layers=2,text_config.num_hidden_layers=1,text_config.vocab_size=8192' \
  'qwen25vl-4L=tests/fixtures/qwen2_5_vl_7b_config.json,vision_config.depth=4,vision_config.fullatt_block_indexes=[1,3],vision_config.window_size=112,num_hidden_layers=1,vocab_size=8192' \
  'pixtral-2L=tests/fixtures/mistral_small_3_1_24b_config.json,vision_config.num_hidden_layers=2,text_config.num_hidden_layers=1,text_config.vocab_size=8192' \
  > "$OUT/x/make_checkpoint.jsonl" 2> "$OUT/x/make_checkpoint.err"
echo "make_checkpoint rc=$?"
cp "$W"/mm/hf/*/config.json "$OUT/x/" 2>/dev/null
for d in "$W"/mm/hf/*/; do n=$(basename "$d"); cp "$d/config.json" "$OUT/x/$n.config.json"; \
  cp "$d/preprocessor_config.json" "$OUT/x/$n.preprocessor_config.json" 2>/dev/null; done
rm -f "$OUT/x/config.json"
echo "== [t+$(el)] dumps"
timeout 60 python3 bench/gpu/llamacpp/dump_gguf.py "$W"/mm/gguf/*.gguf --out "$OUT/x/mmproj_dumps.jsonl" 2> "$OUT/x/dump.err"
echo "== [t+$(el)] clip buffers"
M=.llama/bin/mmproj-measure
for f in "$W"/mm/gguf/mmproj-*.gguf; do
  n=$(basename "$f" .gguf)
  for fa in auto on off; do
    timeout 120 "$M" --id "$n/gpu/fa=$fa" --fa $fa "$f" >> "$OUT/x/mmproj_measure.jsonl" 2>> "$OUT/x/mmproj_measure.log"
  done
  timeout 60 "$M" --id "$n/cpu/fa=auto" --cpu "$f" >> "$OUT/x/mmproj_measure.jsonl" 2>> "$OUT/x/mmproj_measure.log"
  case "$n" in *qwen25vl*f16) timeout 60 "$M" --id "$n/gpu/fa=auto/max-tokens=1024" --max-tokens 1024 "$f" \
      >> "$OUT/x/mmproj_measure.jsonl" 2>> "$OUT/x/mmproj_measure.log";; esac
  echo "  [t+$(el)] $n"
done
ls -l "$W"/mm/gguf > "$OUT/x/files.txt"
tar czf "$OUT/x.tgz" -C "$OUT" x
echo "== [t+$(el)] done"
