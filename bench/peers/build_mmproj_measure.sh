#!/bin/bash
# Builds .llama/bin/mmproj-measure (bench/peers/mmproj_measure.cpp): llama.cpp's multimodal loader
# (tools/mtmd/clip.cpp, #included, and tools/mtmd/models/*.cpp) from the pinned sources, linked against the carried
# .llama/lib (libggml with GGML_BACKEND_DL, libggml-base), stripped, and compressed to mmproj-measure.xz for the carry
# (the GPU run decompresses it; bench/gpu/runs/llama_mmproj1.sh).
#   LLAMA_SRC=/work/llama-src LLAMA_LIB=.llama/lib bash bench/peers/build_mmproj_measure.sh [OUT_DIR]
set -euo pipefail
S=${LLAMA_SRC:-/work/llama-src}; L=${LLAMA_LIB:-.llama/lib}; OUTD=${1:-.llama/bin}
M=$S/tools/mtmd; B=$(mktemp -d); trap 'rm -rf "$B"' EXIT
FLAGS="-std=c++17 -O2 -I$M -I$S/include -I$S/ggml/include -I$S/vendor"
ls "$M"/models/*.cpp | xargs -P "${JOBS:-2}" -I{} sh -c 'g++ '"$FLAGS"' -c {} -o '"$B"'/$(basename {} .cpp).o'
g++ $FLAGS -c "$(dirname "$0")/mmproj_measure.cpp" -o "$B/main.o"
mkdir -p "$OUTD"
g++ -o "$OUTD/mmproj-measure" "$B"/*.o -L"$L" -l:libggml.cuda.v0.4.0.so -l:libggml-base.so \
  -Wl,-rpath,'$ORIGIN/../lib:$ORIGIN'
strip "$OUTD/mmproj-measure"
xz -9e -k -f "$OUTD/mmproj-measure"
ls -l "$OUTD/mmproj-measure" "$OUTD/mmproj-measure.xz"
