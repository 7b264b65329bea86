#!/usr/bin/env bash
# What a CPU build of llama.cpp allocates for a GGUF with every layer on the CPU: the KV cache and the CPU compute
# buffer, from llama-completion's log, one JSON line per run on stdout. The compute buffer comes from the same graph
# builders llmem re-states for CUDA (src/engines/llamacpp/builders.cpp), so these runs check each architecture's
# graph on a machine without a GPU (tests/unit/test_llamacpp.cpp, LlamaCppCpuBuffers).
#
#   LLAMA_BUILD_DIR=/work/llama-src/build-cpu bash cpu_buffers.sh NAME=FILE.gguf ... > runs.jsonl
#
# Each model runs at n_ctx 4096 with flash attention on and off (n_ubatch 512), and at n_ctx 2048 with n_ubatch 256
# and a q8_0 KV cache (flash attention on). The log prints MiB with two decimals; the KV figure sums the caches
# (a sliding-window model has two).
set -euo pipefail
B=${LLAMA_BUILD_DIR:?a llama.cpp build dir with bin/llama-completion}
S=${LLAMA_SRC:-/work/llama-src}
commit=$(git -C "$S" rev-parse HEAD 2>/dev/null || echo unknown)
mib() { grep -m1 -oE "$1 += +[0-9.]+ MiB" <<<"$2" | grep -oE '[0-9.]+ MiB' | cut -d' ' -f1 || true; }
for spec in "$@"; do
  name=${spec%%=*}
  file=${spec#*=}
  for cfg in "4096 on 512 f16" "4096 off 512 f16" "2048 on 256 q8_0"; do
    read -r ctx fa ub kv <<<"$cfg"
    log=$(LD_LIBRARY_PATH=$B/bin timeout 600 "$B/bin/llama-completion" -m "$file" -c "$ctx" -fa "$fa" -b "$ub" -ub "$ub" \
      -ctk "$kv" -ctv "$kv" -n 1 -p hi --no-warmup -t 2 -v 2>&1 || true)
    comp=$(mib 'CPU compute buffer size' "$log")
    # one line per cache (a sliding-window model has two), and the whole set twice: llama-completion first builds
    # a context to fit its parameters to free memory (common_fit_params), then the one it runs; the sum of the
    # second half
    kvmib=$(grep -oE 'llama_kv_cache: size = +[0-9.]+ MiB' <<<"$log" | grep -oE '[0-9.]+ MiB' | cut -d' ' -f1 |
      awk '{v[NR] = $1} END {h = (NR % 2 == 0) ? NR / 2 : 0; for (i = h + 1; i <= NR; i++) s += v[i]; if (NR) printf "%.2f", s}' || true)
    if [ -z "$comp" ]; then
      err=$(grep -m1 -E ' E [a-z_]+: ' <<<"$log" | sed -E 's/^.* E [a-z_]+: //' | tr -d '"\\' | cut -c1-200 || true)
      printf '{"llama_cpp_commit":"%s","tool":"llama-completion","backend":"CPU","model":"%s","n_ctx":%s,"flash_attn":"%s","n_ubatch":%s,"cache_type":"%s","error":"%s"}\n' \
        "$commit" "$name" "$ctx" "$fa" "$ub" "$kv" "$err"
      continue
    fi
    printf '{"llama_cpp_commit":"%s","tool":"llama-completion","backend":"CPU","model":"%s","n_ctx":%s,"flash_attn":"%s","n_ubatch":%s,"cache_type":"%s","kv_mib":%s,"cpu_compute_mib":%s}\n' \
      "$commit" "$name" "$ctx" "$fa" "$ub" "$kv" "${kvmib:-null}" "$comp"
  done
done
