#!/bin/bash
# The harness end to end without a GPU: a tiny llama GGUF (gguf-py), quantised by a CPU build of llama.cpp, dumped,
# and measured by llmem measure -- llama-bench with llmem's fake NVML (peaks are 0 there; the plumbing, the
# commands, n_ctx and the log parsing are what is checked). Then the dump's two readers are compared.
#
#   LLAMA_BUILD_DIR=/work/llama-cpu [LLAMA_SRC=/work/llama-src] bash bench/gpu/llamacpp/selftest_cpu.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
B=${LLAMA_BUILD_DIR:?set LLAMA_BUILD_DIR to a llama.cpp CPU build dir (with bin/llama-quantize, bin/llama-bench)}
S=${LLAMA_SRC:-/work/llama-src}
PY=${PYTHON:-python3}
T=${SELFTEST_DIR:-/tmp/llamacpp-selftest}
rm -rf "$T"; mkdir -p "$T/llama/bin" "$T/llama/gguf-py" "$T/nvml"
for b in llama-quantize llama-bench; do ln -s "$B/bin/$b" "$T/llama/bin/$b"; done
for f in "$B"/bin/lib*.so*; do [ -e "$f" ] && ln -s "$f" "$T/llama/bin/$(basename "$f")"; done
ln -s "$B/bin" "$T/llama/lib"
ln -s "$S/gguf-py/gguf" "$T/llama/gguf-py/gguf"
ln -s "$S/conversion" "$T/llama/conversion"
ln -s "$S/convert_hf_to_gguf.py" "$T/llama/convert_hf_to_gguf.py"
echo "llama.cpp commit: $(cat "$(dirname "$S")/llama-src.COMMIT" 2>/dev/null || echo unknown) (selftest, CPU build $B)" > "$T/llama/BUILD_INFO.txt"

fake=""
for d in build build-nvml build-gguf; do
  [ -f "$repo/$d/tests/fake_nvml/libfake_nvml.so" ] && { fake="$repo/$d/tests/fake_nvml/libfake_nvml.so"; break; }
done
[ -n "$fake" ] || { echo "no libfake_nvml.so (build llmem's tests first)"; exit 1; }
llmem=${LLMEM_BIN:-}
[ -z "$llmem" ] && for c in "$repo/.gpubin/llmem" "$repo/build/llmem"; do [ -x "$c" ] && { llmem=$c; break; }; done
[ -n "$llmem" ] || { echo "no llmem binary"; exit 1; }
export LLMEM_BIN=$llmem LLMEM_NVML_LIBRARY=$fake FAKE_NVML_STATE_DIR=$T/nvml LLAMA_DIR=$T/llama PYTHON=$PY

bash "$here/run_all.sh" --deadline 400 --stages 123J4 --models "tiny-llama=@tiny;tiny-wide=@tiny,n_embd=512,n_ff=1024,n_vocab=1000" \
  --schemes "F32 F16 BF16 Q8_0 Q6_K Q4_K_M Q4_0 Q2_K IQ4_XS" --keep "Q4_K_M Q8_0" --measure-schemes Q4_K_M,Q8_0 \
  --ctx 512,1024 --fa on,off --jobs 3 --qthreads 2 --workers 2 --work "$T/work" --out "$T/out" \
  --measure-args "--timeout 120 --kv-ctx 1024 --partial-ctx 1024"

echo "===== second call: everything must be skipped"
bash "$here/run_all.sh" --deadline 200 --stages 1234 --models "tiny-llama=@tiny;tiny-wide=@tiny,n_embd=512,n_ff=1024,n_vocab=1000" \
  --schemes "F32 F16 BF16 Q8_0 Q6_K Q4_K_M Q4_0 Q2_K IQ4_XS" --keep "Q4_K_M Q8_0" --measure-schemes Q4_K_M,Q8_0 \
  --ctx 512,1024 --fa on,off --workers 2 --work "$T/work" --out "$T/out2" \
  --measure-args "--timeout 120 --kv-ctx 1024 --partial-ctx 1024" | tee "$T/second.txt" | grep -E "job\(s\)|already done|stage [0-9] \(" || true

echo "===== checks"
$PY - "$T" "$here" <<'PY'
import json, sys, os
T, here = sys.argv[1], sys.argv[2]
sys.path.insert(0, here)
import dump_gguf
def rd(p):
    return [json.loads(l) for l in open(p) if l.strip()]
fails = []
def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fails.append(what)
models = rd(f"{T}/out/llamacpp_models.jsonl")
check(len(models) == 2 and all(r["ok"] for r in models), "stage 1: 2 tiny models made")
quant = rd(f"{T}/out/llamacpp_quant.jsonl")
check(len(quant) == 18 and all(r["ok"] for r in quant), f"stage 2: 18 quantisations ok ({len(quant)})")
dumps = rd(f"{T}/out/llamacpp_gguf_tensors.jsonl")
keys = {(r["model"], r["scheme"]) for r in dumps}
check(len(dumps) == 20 and len(keys) == 20, f"stage 3: 20 dumps (9 schemes + base, 2 models) ({len(dumps)})")
q4 = [r for r in dumps if r["scheme"] == "Q4_K_M" and r["model"] == "tiny-llama"][0]
check(q4["type_counts"].get("Q4_K", 0) > 0 and q4["file_bytes"] == q4["tensor_data_offset"] + q4["tensor_region_bytes"],
      f"Q4_K_M dump: types {q4['type_counts']}")
check(all(t[4] % q4["alignment"] == 0 for t in q4["tensors"]), "tensor offsets aligned")
check(q4["metadata"]["tokenizer.ggml.tokens"] == {"array_of": "STRING", "len": 512}, "token array summarised")
for f in sorted(os.listdir(f"{T}/work/gguf/tiny-wide")):
    if f.endswith(".gguf"):
        a = dump_gguf.dump(f"{T}/work/gguf/tiny-wide/{f}", reader="fast")
        b = dump_gguf.dump(f"{T}/work/gguf/tiny-wide/{f}", reader="gguf-py")
        for r in (a, b):
            r.pop("dump_seconds"); r.pop("reader")
        check(a == b, f"fast reader == GGUFReader on {f}")
kept = sorted(os.listdir(f"{T}/work/gguf/tiny-llama"))
check(kept == sorted(["tiny-llama-Q4_K_M.gguf", "tiny-llama-Q4_K_M.gguf.done.json", "tiny-llama-Q8_0.gguf",
                      "tiny-llama-Q8_0.gguf.done.json"]), f"only kept schemes left (base deleted): {kept}")
mem = rd(f"{T}/out/llamacpp_memory.jsonl")
# per model x scheme: fa on/off x {512, 1024} + q8_0 KV + half offload = 6; 2 models x 2 schemes = 24
check(len(mem) == 24, f"stage 4: 24 runs ({len(mem)})")
check(all(r["ok"] for r in mem), "all runs ok: " + str([(r["id"], r.get("error")) for r in mem if not r["ok"]][:3]))
for r in mem:
    L = r["llama_log"]
    if str(r["n_ctx"]) != L["cparams"].get("n_ctx"):
        check(False, f"{r['id']}: n_ctx in log {L['cparams'].get('n_ctx')}")
    if r["bench_result"]["n_prompt"] + r["bench_result"]["n_gen"] != r["n_ctx"] or r["bench_result"]["n_gen"] != 4:
        check(False, f"{r['id']}: llama-bench n_prompt+n_gen != n_ctx")
    if not (L["model_buffer_mib"] and L["kv_buffer_mib"] and L["compute_buffer_mib"]):
        check(False, f"{r['id']}: buffers not parsed {L['buffers']}")
    if L["kv_cache"][0]["type_k"] != r["cache_type_k"] or L["kv_cache"][0]["cells"] != r["n_ctx"]:
        check(False, f"{r['id']}: kv cache line {L['kv_cache']}")
    if r["peak_tree_bytes"] is None or r["llmem"]["exit_status"] != 0:
        check(False, f"{r['id']}: llmem report")
    if (r["flash_attn"] == "on") != (L["cparams"].get("flash_attn") == "enabled"):
        check(False, f"{r['id']}: flash_attn {L['cparams'].get('flash_attn')}")
half = [r for r in mem if r["ngl_label"] == "half"]
check(all(r["n_gpu_layers"] == 1 and r["bench_result"]["n_gpu_layers"] == 1 and
          r["llama_log"]["offloaded_layers"] in (None, [1, 3]) for r in half),
      "half offload: -ngl 1 of 2 layers (a CPU build logs no offload line)")
check(all(len(r["llama_log"]["kv_cache"]) == 1 and r["llama_log"]["contexts_created"] == 1 for r in mem),
      "one context per run")
check(all(r["llama_log"]["compute_buffer_at_free"] and r["llama_log"]["compute_buffer_at_free"][0]["matches"]
          for r in mem), "compute buffer at free parsed")
check(max(len(json.dumps(r)) for r in mem) < 60000, f"record size {max(len(json.dumps(r)) for r in mem)} bytes")
warm = json.load(open(f"{T}/work/state/jit_warmup.json"))
check(any(set(v) == {"tiny-llama", "tiny-wide"} for v in warm.values()), f"JIT warm-up recorded {warm}")
second = open(f"{T}/second.txt").read()
check("0 job(s)" in second and "24 already done, 0 to run" in second, "second call skipped everything")
print(f"{len(fails)} failed" if fails else "selftest: all checks passed")
sys.exit(1 if fails else 0)
PY
