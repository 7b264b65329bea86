#!/usr/bin/env python3
"""llmem's host peak (`host_peak_bytes` of `llmem estimate --engine llamacpp --json`) beside the peak resident set
`llmem measure` read for each llama-bench run (`host_peak_rss_bytes`, ru_maxrss) in measure_llamacpp.py records.
Each record's model is its catalog config (data/catalog) with the record's overrides.
Usage: /usr/bin/python3 bench/gpu/llamacpp/compare_host.py [--llmem BIN] RECORDS.jsonl ..."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
args = sys.argv[1:]
llmem = os.path.join(REPO, "build", "llmem")
if args[:1] == ["--llmem"]:
    llmem, args = args[1], args[2:]
def est(r):
    cfg = json.load(open(f"{REPO}/data/catalog/{r['catalog_id']}.json"))
    cfg = cfg.get("config", cfg)
    cfg.update(r.get("overrides") or {})
    d = tempfile.mkdtemp(); p = os.path.join(d, "config.json"); json.dump(cfg, open(p, "w"))
    a = [llmem, "estimate", p, "--engine", "llamacpp", "--quant", r["scheme"], "--ctx", str(r["n_ctx"]),
         "--batch", str(r["n_batch"]), "--ubatch", str(r["n_ubatch"]), "--flash-attn", r["flash_attn"], "--json"]
    if r["n_gpu_layers"] < 999: a += ["--ngl", str(r["n_gpu_layers"])]
    if r.get("no_mmap"): a += ["--no-mmap"]
    if r.get("load_mode") == "mlock": a += ["--mlock"]
    j = json.loads(subprocess.run(a, capture_output=True, text=True, check=True).stdout)
    return j
errs = []
for f in args:
    for l in open(f):
        r = json.loads(l)
        if not r.get("host_peak_rss_bytes"): continue
        j = est(r)
        m = r["host_peak_rss_bytes"]; pk = j["host_peak_bytes"]
        e = 100 * (pk - m) / m; errs.append(abs(e))
        print(f"{r['id'][:70]:70s} est {pk/2**20:7.1f} meas {m/2**20:7.1f} MiB {e:+6.1f} %  host_bytes {j['host_bytes']/2**20:7.1f}")
print(f"median |err| {statistics.median(errs):.1f} %, max {max(errs):.1f} % ({len(errs)} runs)")
