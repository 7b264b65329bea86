#!/usr/bin/env python3
"""The llama.cpp process's own host memory, from measured runs (issue 19): what data/runtime_overheads.json's
llamacpp.host_* figures are and how they were derived. For each run of a host-memory set (llama_host1.sh:
TinyLlama-1.1B Q8_0 at -ngl all, 11, 0; mapped, -mmp 0 and -lm mlock) it takes the peak resident set `llmem
measure` read (ru_maxrss) and llmem's host buffers for the same run (`llmem estimate --json`: host weights,
host KV cache, host compute and output buffers, before any runtime figure is added) and prints:
  run:    resident set - host buffers, runs with every layer on the host (no GPU upload, the mapping kept whole): the
          CUDA runtime, ggml's backends and llama-bench themselves while computing;
  upload: the same for -mmp 0 / --mlock runs with tensors on the GPU, less `run`: the upload path of
          llama-model-loader's load_all_data (4 pinned staging buffers, a second CUDA backend);
  load:   resident set - the file's size, mapped runs with layers on the GPU: the runtime while loading, when
          MAP_POPULATE has made the whole mapping resident (llama-mmap.cpp) and no compute buffer exists yet.
Usage: host_overheads.py LLMEM_BIN RECORDS.jsonl"""
import json
import statistics
import subprocess
import sys

MIB = 2**20


def host_buffers(llmem, r):
    args = [llmem, "estimate", r["catalog_id"].replace("__", "/"), "--engine", "llamacpp", "--quant", r["scheme"],
            "--ctx", str(r["n_ctx"]), "--batch", str(r["n_batch"]), "--ubatch", str(r["n_ubatch"]), "--json"]
    if r["n_gpu_layers"] < 999:
        args += ["--ngl", str(r["n_gpu_layers"])]
    if r.get("no_mmap"):
        args += ["--no-mmap"]
    if r.get("load_mode") == "mlock":
        args += ["--mlock"]
    j = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    return sum(c["bytes"] for c in j["components"] if c.get("device") == "host" and c["name"] != "host runtime")


def main(argv):
    llmem, path = argv[1], argv[2]
    run, upload, load = [], [], []
    for line in open(path):
        r = json.loads(line)
        rss = r.get("host_peak_rss_bytes")
        if not rss or not r.get("ok"):
            continue
        mapped = not r.get("no_mmap") and r.get("load_mode", "") in ("", "mmap")
        hb = host_buffers(llmem, r)
        if r["n_gpu_layers"] == 0:
            run.append(rss - hb)
        elif not mapped:
            upload.append(rss - hb)
        else:
            load.append(rss - r["gguf_file_bytes"])
        print(f"{r['id']}: rss {rss / MIB:.1f} MiB, host buffers {hb / MIB:.1f} MiB", file=sys.stderr)
    base_run = statistics.median(run)
    out = {"host_run_bytes": int(base_run), "host_upload_bytes": int(statistics.median(upload) - base_run),
           "host_load_bytes": int(statistics.median(load)),
           "runs": {"run": [round(x / MIB, 1) for x in run], "upload": [round(x / MIB, 1) for x in upload],
                    "load": [round(x / MIB, 1) for x in load]}}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
