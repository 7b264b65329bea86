#!/bin/bash
# Re-runs the scenarios listed in trace_cases.txt with PyTorch's allocator history on (LLMEM_TRACE_DIR, see
# write_trace in measure_transformers.py): every cudaMalloc'd segment and every block alloc/free, with the Python
# frames that asked for it. The traces show where llmem's synthetic allocation sequence departs from transformers'
# real one, and let the allocator model (src/estimate/alloc_sim.cpp) be checked on its own: replaying a real trace
# must give the measured max_memory_reserved.
#
#   bash bench/gpu/trace_cases.sh OUTDIR [measure_transformers.py options...]
#   TRACE_LIST=bench/gpu/trace_cases_2.txt bash bench/gpu/trace_cases.sh OUTDIR ...   (another list)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: trace_cases.sh OUTDIR [options]}; shift
mkdir -p "$out/traces"
only=$(grep -v '^#' "${TRACE_LIST:-$here/trace_cases.txt}" | paste -sd, -)
LLMEM_TRACE_DIR="$out/traces" exec python3 "$here/measure_transformers.py" --out "$out/transformers_traces.jsonl" \
  --only "$only" --no-retry "$@"
