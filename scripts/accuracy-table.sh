#!/usr/bin/env bash
# Regenerates the README's accuracy table from the measurements in bench/data (llmem validate --markdown).
set -euo pipefail
cd "$(dirname "$0")/.."
LLMEM=${LLMEM:-build/llmem}
if [ ! -x "$LLMEM" ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build --target llmem_cli >/dev/null
fi
table=$("$LLMEM" validate bench/data/transformers_memory.jsonl bench/data/llamacpp_memory_h200.jsonl --markdown)
holdout=$("$LLMEM" validate bench/data/transformers_holdout.jsonl --markdown)
python3 - "$table" "$holdout" <<'PY'
import re, sys
text = open("README.md").read()
for marker, table in (("accuracy-table", sys.argv[1].strip()), ("accuracy-holdout", sys.argv[2].strip())):
    text = re.sub(r"(<!-- %s:begin -->\n).*?(<!-- %s:end -->)" % (marker, marker),
                  lambda m: m.group(1) + table + "\n" + m.group(2), text, flags=re.S)
open("README.md", "w").write(text)
PY
echo "README.md accuracy table updated"
