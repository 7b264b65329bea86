#!/usr/bin/env bash
# The llama.cpp ground truth that needs no GPU (issue 19): for each model below, a random-weight checkpoint from
# llmem's tensor list (make_checkpoint.py), llama.cpp's own converter on it, llama-quantize (a CPU build of the
# pinned commit) to the listed schemes, every file dumped (dump_gguf.py), and CPU runs of each base file
# (cpu_buffers.sh). Writes, under OUT (default bench/data):
#   llamacpp_gguf_tensors_cpu.jsonl  one dump per file, with the model's catalog_id and config overrides; a
#                                    scheme llama-quantize (or the loader) refused is a record with its "error"
#   llamacpp_cpu_buffers.jsonl       the CPU runs
#
#   LLAMA_BUILD_DIR=/work/llama-src/build-cpu LLAMA_SRC=/work/llama-src bash cpu_set.sh [WORK] [OUT]
# Needs: python3 with numpy and torch (Debian's python3-numpy, python3-torch), build/bench/hf_checkpoint_tensors.
# A base GGUF already in WORK is reused. Takes about 30 minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
B=${LLAMA_BUILD_DIR:?a CPU build of llama.cpp with bin/llama-quantize and bin/llama-completion}
S=${LLAMA_SRC:-/work/llama-src}
PY=${PYTHON:-/usr/bin/python3}
WORK=${1:-$repo/build-llamacpp-cpu}
OUT=${2:-$repo/bench/data}
mkdir -p "$WORK/q"
export PYTHONPATH=$S/gguf-py

# name=catalog id,overrides (JSON values) | schemes for llama-quantize
MODELS=(
  'pythia-2L=EleutherAI/pythia-1.4b,num_hidden_layers=2,vocab_size=8192|Q8_0 Q6_K Q5_K_M Q4_K_M Q4_K_S Q4_0 IQ4_XS Q3_K_M Q3_K_L Q2_K'
  'phi2-2L=microsoft/phi-2,num_hidden_layers=2,vocab_size=8192|Q8_0 Q6_K Q5_K_M Q4_K_M Q4_K_S Q4_0 IQ4_XS Q3_K_M Q3_K_L Q2_K'
  'falcon7b-2L=tiiuae/falcon-7b,num_hidden_layers=2,vocab_size=8192|Q8_0 Q6_K Q5_K_M Q5_K_S Q4_K_M Q4_K_S Q4_0 IQ4_XS Q3_K_M Q3_K_L Q2_K'
  'falcon40b-s=tiiuae/falcon-40b,num_hidden_layers=2,vocab_size=8192,hidden_size=2048,num_attention_heads=32|Q8_0 Q6_K Q5_K_M Q4_K_M Q4_K_S Q4_0 IQ4_XS Q3_K_M Q3_K_L Q2_K'
  'bloom-2L=bigscience/bloom-560m,n_layer=2,vocab_size=8192|Q8_0 Q6_K Q5_K_M Q4_K_M Q4_K_S Q4_0 IQ4_XS Q3_K_M Q3_K_L Q2_K'
  'olmo2-s=allenai/OLMo-2-0325-32B,num_hidden_layers=2,vocab_size=8192,hidden_size=1280,num_attention_heads=10,num_key_value_heads=2,intermediate_size=3456|Q8_0 Q6_K Q5_K_M Q4_K_M Q4_K_S Q4_0 IQ4_XS Q3_K_M Q3_K_L Q2_K TQ2_0 TQ1_0 IQ3_S IQ3_M'
  'qwen1-2L=Qwen/Qwen-1_8B-Chat,num_hidden_layers=2,vocab_size=8192|Q4_K_M'
  'dsv2lite-s=deepseek-ai/DeepSeek-V2-Lite,num_hidden_layers=27,vocab_size=8192,hidden_size=512,intermediate_size=1024,moe_intermediate_size=256,n_routed_experts=4,num_experts_per_tok=2|Q4_K_M Q8_0 Q2_K MXFP4_MOE'
  'dsv3-s=deepseek-ai/DeepSeek-V3,num_hidden_layers=3,first_k_dense_replace=1,vocab_size=8192,hidden_size=1024,num_attention_heads=16,num_key_value_heads=16,intermediate_size=2048,moe_intermediate_size=256,n_routed_experts=16,num_experts_per_tok=4,n_group=4,topk_group=2,quantization_config=null|Q8_0 Q6_K Q5_K_M Q4_K_M Q4_K_S Q4_0 IQ4_XS Q3_K_M Q3_K_L Q2_K MXFP4_MOE'
  'gptoss-s=openai/gpt-oss-20b,num_hidden_layers=4,vocab_size=8192,num_local_experts=8,experts_per_token=2,num_experts_per_tok=2,layer_types=["sliding_attention","full_attention","sliding_attention","full_attention"]|MXFP4_MOE Q4_K_M'
  'tinyllama-2L=TinyLlama/TinyLlama-1.1B-Chat-v1.0,num_hidden_layers=2,vocab_size=8192|Q4_K_M'
  'gemma2-2L=google/gemma-2-2b,num_hidden_layers=2,vocab_size=8192|Q4_K_M'
  'phi3-2L=microsoft/Phi-3-mini-4k-instruct,num_hidden_layers=2,vocab_size=8192|Q4_K_M'
  'qwen3-2L=Qwen/Qwen3-0.6B,num_hidden_layers=2,vocab_size=8192|Q4_K_M'
  'qwen3moe-2L=Qwen/Qwen3-30B-A3B,num_hidden_layers=2,vocab_size=8192,num_experts=16,num_experts_per_tok=4|Q4_K_M'
  'gpt2-2L=openai-community/gpt2,n_layer=2,vocab_size=8192|Q4_K_M'
)

tensors=$OUT/llamacpp_gguf_tensors_cpu.jsonl
runs=$OUT/llamacpp_cpu_buffers.jsonl
: > "$tensors.tmp"
run_specs=()
for entry in "${MODELS[@]}"; do
  spec=${entry%%|*}
  schemes=${entry#*|}
  name=${spec%%=*}
  base=$WORK/gguf/$name-base.gguf
  if [ ! -s "$base" ]; then
    "$PY" "$here/make_checkpoint.py" --out-dir "$WORK" --llama-src "$S" --tool "$repo/build/bench/hf_checkpoint_tensors" "$spec" \
      > "$WORK/make-$name.json" || { echo "cpu_set: converting $name failed (see $WORK/make-$name.json)" >&2; continue; }
  fi
  # the spec's catalog id and overrides, attached to every record of the model
  meta=$("$PY" - "$spec" <<'EOF'
import json, re, sys
name, _, rest = sys.argv[1].partition("=")
parts = re.split(r",(?=[A-Za-z_][A-Za-z0-9_]*=)", rest)
over = {k: json.loads(v) for k, _, v in (p.partition("=") for p in parts[1:])}
print(json.dumps({"catalog_id": parts[0], "overrides": over, "made_with": "make_checkpoint.py, convert_hf_to_gguf.py and llama-quantize (CPU build)"}))
EOF
)
  add() {  # append a dump (or a refusal) with the model's meta
    "$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); r.update(json.loads(sys.argv[2])); print(json.dumps(r, separators=(",", ":")))' "$1" "$meta" >> "$tensors.tmp"
  }
  "$PY" "$here/dump_gguf.py" "$base" --model "$name" --scheme base --out "$WORK/dump-one.jsonl" >/dev/null
  add "$(tail -n1 "$WORK/dump-one.jsonl")"
  for s in $schemes; do
    f=$WORK/q/$name-$s.gguf
    if LD_LIBRARY_PATH=$B/bin nice "$B/bin/llama-quantize" "$base" "$f" "$s" 2 > "$WORK/q/$name-$s.log" 2>&1; then
      "$PY" "$here/dump_gguf.py" "$f" --model "$name" --scheme "$s" --out "$WORK/dump-one.jsonl" >/dev/null
      add "$(tail -n1 "$WORK/dump-one.jsonl")"
    else
      err=$(grep -m1 -oE 'failed to quantize: .*' "$WORK/q/$name-$s.log" | cut -c1-200 || echo "llama-quantize failed")
      add "$("$PY" -c 'import json,sys; print(json.dumps({"model": sys.argv[1], "scheme": sys.argv[2], "error": sys.argv[3]}))' "$name" "$s" "$err")"
    fi
    rm -f "$f"
  done
  run_specs+=("$name=$base")
done
mv "$tensors.tmp" "$tensors"
bash "$here/cpu_buffers.sh" "${run_specs[@]}" > "$runs.tmp"
mv "$runs.tmp" "$runs"
echo "cpu_set: $(wc -l < "$tensors") files in $tensors, $(wc -l < "$runs") runs in $runs" >&2
