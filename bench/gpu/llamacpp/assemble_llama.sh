#!/bin/bash
# Completes .llama/ (ignored; carried to the GPU machine) with the Python parts the harness needs from a llama.cpp
# source tree, where they are missing: convert_hf_to_gguf.py, its conversion/ package, gguf-py/gguf (+ LICENSEs).
# With LLAMA_BUILD set (a CMake build dir), also libgomp.so.1 when the binaries need it and .llama/lib lacks it,
# and a BUILD_INFO.txt (commit + the build's main CMake flags) when there is none. Copies, never edits, llama.cpp.
#
#   bench/gpu/llamacpp/assemble_llama.sh [--force]       LLAMA_SRC=/work/llama-src LLAMA_DIR=<repo>/.llama
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
S=${LLAMA_SRC:-/work/llama-src}
D=${LLAMA_DIR:-$repo/.llama}
B=${LLAMA_BUILD:-}
force=0; [ "${1:-}" = "--force" ] && force=1
[ -f "$S/convert_hf_to_gguf.py" ] || { echo "no llama.cpp source at $S (set LLAMA_SRC)"; exit 1; }
mkdir -p "$D"

copy() {  # copy SRC (file or dir) to DST if DST is missing (or --force)
  local src=$1 dst=$2
  if [ ! -e "$src" ]; then echo "  missing in source: $src"; return 0; fi
  if [ -e "$dst" ] && [ $force = 0 ]; then echo "  have  $dst"; return 0; fi
  rm -rf "$dst"; mkdir -p "$(dirname "$dst")"; cp -r "$src" "$dst"; echo "  copied $dst"
}
echo "assemble_llama: $S -> $D"
copy "$S/convert_hf_to_gguf.py" "$D/convert_hf_to_gguf.py"
copy "$S/conversion" "$D/conversion"
copy "$S/gguf-py/gguf" "$D/gguf-py/gguf"
copy "$S/gguf-py/LICENSE" "$D/gguf-py/LICENSE"
copy "$S/LICENSE" "$D/LICENSE.llama.cpp"
find "$D" -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null || true

if [ -n "$B" ]; then
  if [ ! -f "$D/BUILD_INFO.txt" ] || [ $force = 1 ]; then
    commit=$(git -C "$S" rev-parse HEAD 2>/dev/null || cat "$(dirname "$S")/llama-src.COMMIT" 2>/dev/null || echo unknown)
    {
      echo "llama.cpp commit: $commit"
      echo "source: $S"
      echo "build: $B"
      grep -E '^(CMAKE_BUILD_TYPE|BUILD_SHARED_LIBS|GGML_CUDA|GGML_CUDA_[A-Z0-9_]+|CMAKE_CUDA_ARCHITECTURES|GGML_NATIVE|GGML_AVX[A-Z0-9_]*|GGML_OPENMP|GGML_BACKEND_DL|GGML_CPU|LLAMA_CURL|CMAKE_CUDA_COMPILER):' \
        "$B/CMakeCache.txt" 2>/dev/null | sed -E 's/:[A-Z]+=/=/' || true
      [ -x /usr/local/cuda/bin/nvcc ] && /usr/local/cuda/bin/nvcc --version | tail -2 | sed 's/^/nvcc: /'
    } > "$D/BUILD_INFO.txt"
    echo "  wrote $D/BUILD_INFO.txt"
  fi
  if ls "$D"/lib/*.so* >/dev/null 2>&1 && [ ! -e "$D/lib/libgomp.so.1" ]; then
    if LD_LIBRARY_PATH="$D/lib" ldd "$D"/lib/*.so* "$D"/bin/* 2>/dev/null | grep -q 'libgomp.so.1'; then
      g=$(ldconfig -p | awk '/libgomp.so.1 .*x86-64/ {print $NF; exit}')
      [ -n "$g" ] && cp -L "$g" "$D/lib/libgomp.so.1" && echo "  copied $g -> $D/lib/libgomp.so.1"
    fi
  fi
fi

echo "assemble_llama: contents"
for f in bin/llama-quantize bin/llama-bench bin/llama-cli bin/llama-completion BUILD_INFO.txt convert_hf_to_gguf.py conversion/__init__.py gguf-py/gguf/__init__.py; do
  if [ -e "$D/$f" ]; then echo "  ok      $f"; else echo "  MISSING $f"; fi
done
ls "$D/lib" 2>/dev/null | sed 's/^/  lib: /' || echo "  MISSING lib/"
if ls "$D"/bin/* >/dev/null 2>&1; then
  nf=$(LD_LIBRARY_PATH="$D/lib" ldd "$D"/bin/* "$D"/lib/*.so* 2>/dev/null | grep 'not found' | sort -u || true)
  [ -n "$nf" ] && { echo "  libraries not in .llama/lib (must come from the GPU machine: CUDA runtime/cuBLAS, driver):"; echo "$nf" | sed 's/^/   /'; }
fi
du -sh "$D" 2>/dev/null | sed 's/^/  size: /'
