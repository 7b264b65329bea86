#!/usr/bin/env bash
# Builds the web page: llmem compiled to WebAssembly with emscripten, and the page over it.
#   bash scripts/web.sh [OUTDIR]     (default build-web/)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build-web}
BUILD=${LLMEM_WEB_BUILD_DIR:-build-wasm}
JOBS=${LLMEM_JOBS:-$(nproc)}
emcmake cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target llmem_cli -j "$JOBS"
