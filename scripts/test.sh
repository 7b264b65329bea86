#!/usr/bin/env bash
# All the tests: the unit and CLI tests (Release), the web page (WebAssembly build, browser test), the same unit
# and CLI tests under AddressSanitizer + UBSan, and each libFuzzer target for a short fixed time on its seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
JOBS=$(nproc)
FUZZ_SECONDS=${LLMEM_FUZZ_SECONDS:-30}
# A compiler cache where one is installed (it is not needed: a clean machine builds everything).
LAUNCHER=()
if command -v ccache >/dev/null; then LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

echo "== build and test (Release)"
# The tests and benchmarks are asked for by name: build/ may have been configured without them (scripts/study.sh
# used to), and CMake keeps a cached option. A test set that comes out empty fails (ctest alone would pass it).
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLMEM_TESTS=ON -DLLMEM_BENCH=ON "${LAUNCHER[@]}" >/dev/null
cmake --build build -j "$JOBS"
ctest --test-dir build --output-on-failure --no-tests=error -j "$JOBS"

echo "== the web page: the WebAssembly build, run(args) == the native CLI, the page in headless Chromium"
bash tests/web/run.sh

echo "== build and test under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLLMEM_SANITIZE=ON -DLLMEM_TESTS=ON -DLLMEM_BENCH=OFF \
  "${LAUNCHER[@]}" >/dev/null
cmake --build build-asan -j "$JOBS"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure --no-tests=error -j "$JOBS"

echo "== fuzz each parser for ${FUZZ_SECONDS}s"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DLLMEM_FUZZ=ON -DLLMEM_TESTS=OFF -DLLMEM_BENCH=OFF "${LAUNCHER[@]}" >/dev/null
cmake --build build-fuzz -j "$JOBS"
fuzzed=0
for fuzzer in build-fuzz/tests/fuzz/fuzz_*; do
  [ -x "$fuzzer" ] || continue
  fuzzed=$((fuzzed + 1))
  name=$(basename "$fuzzer")
  corpus="tests/fuzz/corpus/${name#fuzz_}"
  work=$(mktemp -d)
  mkdir -p "$work/corpus" "$work/found"
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work/corpus"/
  echo "-- $name"
  # A failure prints the fuzzer's report and the input that caused it (hex), so CI's log alone reproduces it.
  if ! "$fuzzer" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$work/found/" "$work/corpus" > "$work/log" 2>&1; then
    grep -v '^#' "$work/log" | tail -n 80
    for f in "$work"/found/*; do [ -f "$f" ] && { echo "input $(basename "$f"), $(stat -c %s "$f") bytes:"; od -A d -t x1 "$f" | head -n 64; }; done
    echo "$name failed" >&2
    exit 1
  fi
  tail -n 4 "$work/log"
  rm -rf "$work"
done
[ "$fuzzed" -gt 0 ] || { echo "no fuzzer was built" >&2; exit 1; }
echo "all tests passed"
