#!/usr/bin/env bash
# Installs the Debian packages llmem builds and tests with. Idempotent: does nothing when all are present.
set -euo pipefail
PACKAGES=(
  cmake ninja-build g++ pkg-config git
  nlohmann-json3-dev libcli11-dev libfmt-dev libcurl4-openssl-dev libcairo2-dev
  libgtest-dev libgmock-dev libbenchmark-dev liblzma-dev
  clang libclang-rt-dev python3 fonts-dejavu-core util-linux
  emscripten chromium  # the web page: the WebAssembly build (brings nodejs and node-acorn) and its browser test
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm installs the browser test's driver from its lockfile; a Node.js from elsewhere may carry its own npm.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
