#!/usr/bin/env bash
# The main job: build llmem and print the seed study's table for the embedded catalog (no download, no GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLMEM_TESTS=OFF -DLLMEM_BENCH=OFF >/dev/null
cmake --build build --target llmem_cli >/dev/null
./build/llmem study --chart build/study "$@"
