#!/bin/bash
# --parallel without a GPU: llama.cpp's KV cache and compute buffer for N sequences, from a CPU build of the same
# commit, on a tiny random llama GGUF (tiny_gguf.py). The KV cache's size is the same on every backend; the CPU
# compute buffer is not the CUDA one, but how it changes with N is the same graph's (per-sequence streams of
# n_ctx/N cells), which is what tests/unit/test_llamacpp.cpp checks llmem against.
#
#   LLAMA_BUILD_DIR=/work/llama-dl [LLAMA_SRC=/work/llama-src] bash bench/gpu/llamacpp/parallel_cpu.sh > bench/data/llamacpp_parallel_cpu.jsonl
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${LLAMA_BUILD_DIR:?a llama.cpp build dir with bin/llama-completion}
S=${LLAMA_SRC:-/work/llama-src}
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d)
PYTHONPATH=$S/gguf-py $PY "$here/tiny_gguf.py" "$T/tiny.gguf" n_embd=512 n_layer=4 n_head=8 n_head_kv=4 n_ff=1024 \
  n_vocab=1000 n_ctx=8192 >/dev/null
commit=$(git -C "$S" rev-parse HEAD 2>/dev/null || echo unknown)
for fa in on off; do
  for np in 1 2 4 8; do
    log=$(LD_LIBRARY_PATH=$B/bin timeout 120 "$B/bin/llama-completion" -m "$T/tiny.gguf" -np $np -c 8192 -fa $fa -n 1 \
      -p hi --no-warmup -t 2 -v 2>&1)
    kv=$(grep -m1 -oE 'llama_kv_cache: size = +[0-9.]+ MiB' <<<"$log" | grep -oE '[0-9.]+ MiB' | cut -d' ' -f1)
    cells=$(grep -m1 -oE '\( *[0-9]+ cells' <<<"$log" | grep -oE '[0-9]+')
    comp=$(grep -m1 -oE 'CPU compute buffer size = +[0-9.]+ MiB' <<<"$log" | grep -oE '[0-9.]+ MiB' | cut -d' ' -f1)
    out=$(grep -m1 -oE 'CPU +output buffer size = +[0-9.]+ MiB' <<<"$log" | grep -oE '[0-9.]+ MiB' | cut -d' ' -f1)
    printf '{"llama_cpp_commit":"%s","tool":"llama-completion","backend":"CPU","model":"tiny_gguf.py n_embd=512 n_layer=4 n_head=8 n_head_kv=4 n_ff=1024 n_vocab=1000","n_ctx":8192,"n_parallel":%d,"flash_attn":"%s","kv_cells_per_stream":%s,"kv_mib":%s,"cpu_compute_mib":%s,"output_mib":%s}\n' \
      "$commit" "$np" "$fa" "$cells" "$kv" "$comp" "$out"
  done
done
rm -rf "$T"
