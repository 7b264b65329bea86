#!/usr/bin/env bash
# The schemes llama-quantize refuses without an importance matrix (IQ1_*, IQ2_*, IQ3_XXS, IQ3_XS, Q2_K_S), for base
# GGUFs cpu_set.sh made: llama-imatrix (CPU build) over this repository's README.md as calibration text, then
# llama-quantize --imatrix, every file dumped. Appends to OUT/llamacpp_gguf_tensors_cpu.jsonl (records carry
# "imatrix": true). The tensor types depend on the matrix's presence, not on its values.
#
#   LLAMA_BUILD_DIR=/work/llama-src/build-cpu bash cpu_set_imatrix.sh [WORK] [OUT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
B=${LLAMA_BUILD_DIR:?a CPU build of llama.cpp with bin/llama-imatrix and bin/llama-quantize}
S=${LLAMA_SRC:-/work/llama-src}
PY=${PYTHON:-/usr/bin/python3}
WORK=${1:-$repo/build-llamacpp-cpu}
OUT=${2:-$repo/bench/data}
export PYTHONPATH=$S/gguf-py
SCHEMES="IQ3_XS IQ3_XXS Q2_K_S IQ2_M IQ2_S IQ2_XS IQ2_XXS IQ1_M IQ1_S"
tensors=$OUT/llamacpp_gguf_tensors_cpu.jsonl
for name in pythia-2L falcon40b-s olmo2-s; do
  base=$WORK/gguf/$name-base.gguf
  # the model's catalog id and overrides, from its base record
  meta=$("$PY" -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["model"] == sys.argv[2] and r["scheme"] == "base":
        print(json.dumps({"catalog_id": r["catalog_id"], "overrides": r["overrides"], "made_with": r["made_with"], "imatrix": True}))
        break' "$tensors" "$name")
  [ -n "$meta" ] || { echo "cpu_set_imatrix: no base record of $name in $tensors" >&2; exit 1; }
  imat=$WORK/$name.imatrix.gguf
  LD_LIBRARY_PATH=$B/bin nice "$B/bin/llama-imatrix" -m "$base" -f "$repo/README.md" -o "$imat" -c 512 --chunks 8 -t 2 \
    > "$WORK/imatrix-$name.log" 2>&1
  for s in $SCHEMES; do
    f=$WORK/q/$name-$s.gguf
    if LD_LIBRARY_PATH=$B/bin nice "$B/bin/llama-quantize" --imatrix "$imat" "$base" "$f" "$s" 2 > "$WORK/q/$name-$s.log" 2>&1; then
      "$PY" "$here/dump_gguf.py" "$f" --model "$name" --scheme "$s" --out "$WORK/dump-one.jsonl" >/dev/null
      "$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); r.update(json.loads(sys.argv[2])); print(json.dumps(r, separators=(",", ":")))' \
        "$(tail -n1 "$WORK/dump-one.jsonl")" "$meta" >> "$tensors"
    else
      echo "cpu_set_imatrix: $name $s failed: $(grep -m1 -iE 'error|failed' "$WORK/q/$name-$s.log")" >&2
    fi
    rm -f "$f"
  done
done
