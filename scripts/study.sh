#!/usr/bin/env bash
# The main job: build llmem and print the seed study's table for the embedded catalog (no download, no GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# Only the CLI is built; the options keep their values, so a developer's build/ keeps building its tests (turning
# them off here left scripts/test.sh, run next, with an empty test set).
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target llmem_cli >/dev/null
./build/llmem study --chart build/study "$@"
