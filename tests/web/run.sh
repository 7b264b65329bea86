#!/usr/bin/env bash
# The web page's tests (a step of scripts/test.sh; needs the native build/llmem to compare with):
#   1. builds the site with emscripten (scripts/web.sh) into build-web-test/site,
#   2. writes the model files the tests drop on the page (sparse: headers only on disk),
#   3. installs playwright-core from tests/web/package-lock.json (no browser download: Debian's chromium is used),
#   4. checks llmem.mjs's run(args) against the native CLI byte for byte (Node),
#   5. checks the page in headless Chromium against the native CLI; screenshots and timings.json go to
#      build-web-test/artifacts.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${LLMEM_WEB_TEST_DIR:-build-web-test}
export LLMEM_NATIVE=${LLMEM_NATIVE:-$PWD/build/llmem}
[ -x "$LLMEM_NATIVE" ] || { echo "tests/web/run.sh: $LLMEM_NATIVE is missing: build the native CLI first (cmake --build build)" >&2; exit 1; }

bash scripts/web.sh "$OUT/site"
rm -rf "$OUT/fixtures" "$OUT/artifacts"
python3 tests/web/make_fixtures.py "$OUT/fixtures" >/dev/null
(cd tests/web && npm ci --no-audit --no-fund --loglevel=error)
node tests/web/run_parity.mjs "$OUT/site" "$OUT/fixtures"
node tests/web/browser_test.mjs "$OUT/site" "$OUT/fixtures" "$OUT/artifacts"
