#!/usr/bin/env bash
# Builds the web page: llmem's CLI compiled to WebAssembly by emscripten (Debian's package), and the page over it.
#   bash scripts/web.sh [OUTDIR]        (default build-web/)
# OUTDIR then holds a static site — index.html, llmem.mjs, llmem.wasm and the page's scripts and style — that
# any static host serves (try: python3 -m http.server -d build-web). The wasm build lives in build-wasm/
# (LLMEM_WEB_BUILD_DIR to change it).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build-web}
BUILD=${LLMEM_WEB_BUILD_DIR:-build-wasm}
JOBS=${LLMEM_JOBS:-$(nproc)}

# Debian's emscripten runs its JavaScript optimiser with Debian's node-acorn (in /usr/share/nodejs), which a
# Node.js from elsewhere (nodesource) does not look in.
export NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}
command -v emcmake >/dev/null || { echo "web.sh: emscripten is missing (Debian: apt-get install emscripten)" >&2; exit 1; }

emcmake cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target llmem_cli -j "$JOBS"

mkdir -p "$OUT"
cp "$BUILD/llmem.mjs" "$BUILD/llmem.wasm" "$OUT/"
cp web/index.html web/style.css web/app.js web/engine.js web/worker.js web/charts.js web/format.js "$OUT/"
wasm_bytes=$(stat -c %s "$OUT/llmem.wasm")
wasm_gz=$(gzip -9 -c "$OUT/llmem.wasm" | wc -c)
echo "web site in $OUT: llmem.wasm $wasm_bytes bytes, $wasm_gz bytes gzipped (gzip -9)"
