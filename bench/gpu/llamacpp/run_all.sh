#!/bin/bash
# llama.cpp ground truth for llmem, on a GPU machine, in stages within a time budget (one device command <= 10 min):
#   1 make_gguf.py      random-weight models -> safetensors -> llama.cpp's converter -> NAME-base.gguf (bf16)
#   2 quantize_all.py   llama-quantize into each scheme (+ the dumps of stage 3 as each file is made; files not
#                       kept for measuring are deleted once dumped)
#   3 dump_gguf.py      any finished GGUF not yet dumped -> $OUT/llamacpp_gguf_tensors.jsonl
#   J measure_llamacpp.py --warmup-only: the CUDA JIT warm-up alone (stage 4 starts with it anyway): a PTX-only
#                       CUDA backend is compiled by the driver on first use, into $WORK/cuda-cache; stage J lets a
#                       call that does not measure fill that cache
#   4 measure_llamacpp.py  llmem measure -- llama-bench over the matrix -> $OUT/llamacpp_memory.jsonl
# Results are JSON lines flushed as they come; the work dir (ignored build-llamacpp/ in the repo by default) keeps
# GGUFs and cumulative records, so a second call on the same machine continues where the first stopped and its
# $OUT files again hold everything done so far.
#
#   bench/gpu/llamacpp/run_all.sh [options]
#     --deadline SEC        start nothing new after SEC seconds (default 540); running work is killed SEC+grace
#     --grace SEC           (default 25)
#     --prep-deadline SEC   stages 1-3 start nothing new after SEC seconds (default: --deadline)
#     --stages 1234         which stages, in the order 1 2 3 J 4 (default 1234)
#     --models SPECS        'default' (6 models), names, or NAME=CATALOG_ID[,key=value...] separated by ';' or space
#     --schemes LIST        stage 2 schemes (default all 13: F32 F16 BF16 Q8_0 Q6_K Q5_K_M Q5_K_S Q4_K_M Q4_K_S
#                           Q4_0 Q3_K_M Q2_K IQ4_XS); 'measure' = Q4_K_M Q8_0 Q2_K
#     --keep LIST           schemes whose files stay for stage 4 (default measure; 'all', 'none')
#     --measure-schemes L   stage 4 schemes (default Q4_K_M,Q8_0,Q2_K)
#     --build-jobs N        stage 1 models at once (default 3)
#     --jobs N --qthreads N stage 2 quantisations at once x threads each (default 4 x 4)
#     --workers N           stage 4 runs at once (default 4)
#     --ctx LIST --fa LIST  stage 4 n_ctx values (default 512,4096,32768) and flash attention (default on,off)
#     --measure-args "..."  more options for measure_llamacpp.py (e.g. "--timeout 300 --no-partial")
#     --work DIR            work dir (default <repo>/build-llamacpp, or $LLAMACPP_WORK)
#     --out DIR             results (default $OUT, else /tmp/llamacpp-out)
#     --keep-hf             keep the safetensors directories
#     --keep-base           keep a model's base GGUF after stage 2 (default: deleted once all its schemes are done)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cd "$repo"

DEADLINE=540; GRACE=25; PREP=""; STAGES=1234; MODELS=default; SCHEMES=all; KEEP=measure
MSCHEMES=Q4_K_M,Q8_0,Q2_K; BUILD_JOBS=3; JOBS=4; QTHREADS=4; WORKERS=4; CTX=512,4096,32768; FA=on,off
MARGS=""; WORK=${LLAMACPP_WORK:-$repo/build-llamacpp}; OUTDIR=${OUT:-/tmp/llamacpp-out}; KEEP_HF=""; DEL_BASE=--delete-base
while [ $# -gt 0 ]; do
  case "$1" in
    --deadline) DEADLINE=$2; shift 2;;
    --grace) GRACE=$2; shift 2;;
    --prep-deadline) PREP=$2; shift 2;;
    --stages) STAGES=$2; shift 2;;
    --models) MODELS=$2; shift 2;;
    --schemes) SCHEMES=$2; shift 2;;
    --keep) KEEP=$2; shift 2;;
    --measure-schemes) MSCHEMES=$2; shift 2;;
    --build-jobs) BUILD_JOBS=$2; shift 2;;
    --jobs) JOBS=$2; shift 2;;
    --qthreads) QTHREADS=$2; shift 2;;
    --workers) WORKERS=$2; shift 2;;
    --ctx) CTX=$2; shift 2;;
    --fa) FA=$2; shift 2;;
    --measure-args) MARGS=$2; shift 2;;
    --work) WORK=$2; shift 2;;
    --out) OUTDIR=$2; shift 2;;
    --keep-hf) KEEP_HF=--keep-hf; shift;;
    --keep-base) DEL_BASE=""; shift;;
    --delete-base) DEL_BASE=--delete-base; shift;;
    -h|--help) sed -n '2,/^set -uo/{/^set -uo/!p}' "$here/$(basename "$0")"; exit 0;;
    *) echo "run_all.sh: unknown option $1" >&2; exit 2;;
  esac
done
mkdir -p "$OUTDIR" "$WORK/state"
exec 3>&1 4>&2
exec > >(tee -a "$OUTDIR/llamacpp_log.txt") 2>&1
TEE_PID=$!
finish() { exec 1>&3 2>&4; wait "$TEE_PID" 2>/dev/null; }   # let tee write the last lines before we return
trap finish EXIT

T0=$(date +%s)
END=$((T0 + DEADLINE)); HARD=$((END + GRACE)); PREP_END=$END
[ -n "$PREP" ] && PREP_END=$((T0 + PREP))
export PYTHONUNBUFFERED=1
export LLAMA_DIR=${LLAMA_DIR:-$repo/.llama}
PY=${PYTHON:-python3}
H=bench/gpu/llamacpp
el() { echo $(( $(date +%s) - T0 )); }
sec() { echo; echo "===== [t+$(el)s] $*"; }

sec "environment"
date -u; uname -r; nproc; free -g | head -2; df -h "$WORK" | tail -1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,driver_version,memory.total,memory.used --format=csv
$PY -c 'import sys; print("python", sys.version.split()[0])'
$PY -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>/dev/null || echo "torch/transformers: not importable"
$PY $H/common.py prepare
export CUDA_CACHE_PATH=${CUDA_CACHE_PATH:-$WORK/cuda-cache} CUDA_CACHE_MAXSIZE=${CUDA_CACHE_MAXSIZE:-4294967295}
mkdir -p "$CUDA_CACHE_PATH"
echo "CUDA JIT cache: $CUDA_CACHE_PATH ($(du -sh "$CUDA_CACHE_PATH" 2>/dev/null | cut -f1)), max $CUDA_CACHE_MAXSIZE bytes"
eval "$($PY $H/common.py env)"
export LD_LIBRARY_PATH PYTHONPATH
$PY $H/common.py env | grep '^#' || true
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
echo "PYTHONPATH=$PYTHONPATH"
echo "--- $LLAMA_DIR/BUILD_INFO.txt"; cat "$LLAMA_DIR/BUILD_INFO.txt" 2>/dev/null || echo "(missing)"
for b in llama-bench llama-quantize; do
  [ -x "$LLAMA_DIR/bin/$b" ] || echo "MISSING $LLAMA_DIR/bin/$b"
done
ldd "$LLAMA_DIR/bin/llama-bench" 2>&1 | grep -E 'not found|cuda|cublas|gomp|ggml|llama' | sed 's/^/  ldd: /'
for f in "$LLAMA_DIR"/lib/libggml-cuda.so* "$LLAMA_DIR"/bin/libggml-cuda*.so; do
  [ -f "$f" ] && { ldd "$f" 2>&1 | grep -E 'not found|cuda|cublas' | sed "s|^|  ldd $(basename "$f"): |"; break; }
done
timeout 60 "$LLAMA_DIR/bin/llama-bench" --list-devices 2>&1 | tail -5 | sed 's/^/  llama-bench --list-devices: /'
LLMEM=$($PY -c "import sys; sys.path.insert(0, '$H'); import common; print(common.llmem_bin())")
echo "llmem: $LLMEM ($("$LLMEM" --version 2>&1 | head -1))"
echo "work: $WORK; out: $OUTDIR; deadline ${DEADLINE}s (prep $((PREP_END - T0))s), stages $STAGES"
echo "models: $($PY $H/common.py specs "$MODELS" | tr '\n' ' ')"

# the out files start as the work dir's cumulative records (earlier calls on this machine)
for pair in models:llamacpp_models quant:llamacpp_quant gguf_tensors:llamacpp_gguf_tensors memory:llamacpp_memory; do
  s=${pair%%:*}; o=${pair##*:}
  [ -f "$WORK/state/$s.jsonl" ] && [ ! -f "$OUTDIR/$o.jsonl" ] && cp "$WORK/state/$s.jsonl" "$OUTDIR/$o.jsonl" \
    && echo "seeded $o.jsonl with $(wc -l < "$OUTDIR/$o.jsonl") earlier record(s)"
done

declare -A TIMES
stage() {  # stage N NAME CMD...
  local n=$1 name=$2; shift 2
  case "$STAGES" in *$n*) ;; *) return 0;; esac
  sec "stage $n: $name"
  local t=$(date +%s)
  "$@"
  local rc=$?
  TIMES[$n]=$(( $(date +%s) - t ))
  echo "===== [t+$(el)s] stage $n ($name) finished with status $rc in ${TIMES[$n]} s"
}

DUMP_FLAG=""
case "$STAGES" in *3*) ;; *) DUMP_FLAG=--no-dump;; esac

NEED=(--schemes "$SCHEMES" --keep "$KEEP" --dump-out "$OUTDIR/llamacpp_gguf_tensors.jsonl" $DUMP_FLAG)
case "$STAGES" in *2*) ;; *) NEED=();; esac
stage 1 "make GGUFs" $PY $H/make_gguf.py --models "$MODELS" --jobs "$BUILD_JOBS" --work "$WORK" "${NEED[@]}" \
  --out "$OUTDIR/llamacpp_models.jsonl" --deadline-at "$PREP_END" --hard-at "$HARD" $KEEP_HF
stage 2 "quantise" $PY $H/quantize_all.py --models "$MODELS" --schemes "$SCHEMES" --keep "$KEEP" --jobs "$JOBS" \
  --threads "$QTHREADS" --work "$WORK" --out "$OUTDIR/llamacpp_quant.jsonl" \
  --dump-out "$OUTDIR/llamacpp_gguf_tensors.jsonl" --deadline-at "$PREP_END" --hard-at "$HARD" $DUMP_FLAG $DEL_BASE
stage 3 "dump GGUFs" $PY $H/dump_gguf.py --work "$WORK" --models "$MODELS" \
  --out "$OUTDIR/llamacpp_gguf_tensors.jsonl" --deadline-at "$PREP_END"
# shellcheck disable=SC2086
stage J "CUDA JIT warm-up" $PY $H/measure_llamacpp.py --warmup-only --models "$MODELS" --schemes "$MSCHEMES" --ctx "$CTX" \
  --fa "$FA" --work "$WORK" --deadline-at "$END" --hard-at "$HARD" $MARGS
# shellcheck disable=SC2086
stage 4 "measure" $PY $H/measure_llamacpp.py --models "$MODELS" --schemes "$MSCHEMES" --ctx "$CTX" --fa "$FA" \
  --workers "$WORKERS" --work "$WORK" --out "$OUTDIR/llamacpp_memory.jsonl" --deadline-at "$END" --hard-at "$HARD" $MARGS

sec "summary"
for n in 1 2 3 J 4; do [ -n "${TIMES[$n]:-}" ] && echo "stage $n: ${TIMES[$n]} s"; done
for f in llamacpp_models llamacpp_quant llamacpp_gguf_tensors llamacpp_memory; do
  [ -f "$OUTDIR/$f.jsonl" ] && echo "$f.jsonl: $(wc -l < "$OUTDIR/$f.jsonl") record(s), $(du -h "$OUTDIR/$f.jsonl" | cut -f1)"
done
$PY - "$OUTDIR" <<'PY'
import json, os, sys
o = sys.argv[1]
def rd(n):
    try:
        return [json.loads(l) for l in open(os.path.join(o, n)) if l.strip()]
    except (OSError, ValueError):
        return []
m = rd("llamacpp_memory.jsonl")
if m:
    ok = [r for r in m if r.get("ok")]
    print(f"measure: {len(ok)} ok of {len(m)}; failed: {[r.get('id') for r in m if not r.get('ok')][:20]}")
q = rd("llamacpp_quant.jsonl")
if q:
    print(f"quantise: {sum(1 for r in q if r.get('ok'))} ok of {len(q)}; "
          f"failed: {[(r.get('model'), r.get('scheme')) for r in q if not r.get('ok')]}")
d = rd("llamacpp_gguf_tensors.jsonl")
if d:
    print(f"dumps: {len(d)} ({sorted({(r.get('model'), r.get('scheme')) for r in d if 'error' in r})} errors)")
PY
df -h "$WORK" | tail -1
du -sh "$WORK"/gguf/* 2>/dev/null
echo "done at t+$(el)s"
