#!/usr/bin/env python3
"""Stage 4: GPU memory of llama.cpp, measured by `llmem measure` around llama-bench, over a matrix of settings.

One run per (model, scheme, n_ctx, flash attention, K/V cache types, n_gpu_layers), each a fresh process:

  .gpubin/llmem measure --json --output RUN/llmem.json -- \
    .llama/bin/llama-bench -m NAME-SCHEME.gguf -p 0 -n 0 -pg (n_ctx - n_gen),n_gen -d 0 -r 1 --no-warmup \
      -fa on|off -ctk K -ctv V -ngl N -t 4 -b 2048 -ub 512 -o jsonl -v

Why llama-bench: one -pg P,G test makes one context of exactly P + G (+ depth) cells (plain -p P -n G would be two
tests, a P-token context and a G-token one; llama.cpp pads n_ctx to a multiple of 256, and every n_ctx here is
one, so the log's n_ctx equals the request); it never fits parameters to free memory
(its --fit-target / --fit-ctx are off by default, and it does not use common_params, whose `fit` is on by
default in llama-cli / llama-server); it feeds random token ids, so no tokenizer or sampler is involved; with -v
llama.cpp logs its buffer sizes. The prompt fills the context (n_ctx - n_gen tokens in batches of n_batch, each
split into ubatches of n_ubatch: every run except n_ctx = 512 processes full 512-token ubatches, the last ones
against an almost full KV cache), then n_gen tokens are generated one at a time (the last at position
n_ctx - 1). Models with learned absolute positions (a position_embd tensor, e.g. gpt2) get n_ctx capped at
their number of positions, since positions beyond it read outside that table.

Each run writes one JSON line (flushed at once) with the setting, the command, the GGUF's tensor data bytes, the
llmem report (peak_tree_bytes = NVML per-process peak of the tree), llama-bench's own JSON result, and llama.cpp's
log parsed: model / KV / compute / output buffer sizes per buffer type (MiB with two decimals, as logged, plus
byte approximations), the KV cache line, n_ctx / n_batch / n_ubatch / flash_attn, offloaded layers, graph
nodes/splits, with the matched raw lines. Runs already in --out (or the work dir's cumulative record) are
skipped, so a second call continues; --retry-failed re-runs failures.

  python3 measure_llamacpp.py --models default --schemes Q4_K_M,Q8_0,Q2_K --workers 4 --out OUT/llamacpp_memory.jsonl
  python3 measure_llamacpp.py --list                # the matrix in run order, with commands
"""
import argparse
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402
import dump_gguf  # noqa: E402

MIB = 1024 * 1024


# ----------------------------------------------------------------------------------------------------------------
# llama.cpp's log
# ----------------------------------------------------------------------------------------------------------------
RE_BUFFER = re.compile(r"^(?P<fn>[\w:.~]+):\s+(?P<buf>\S+)\s+(?P<kind>model|KV|compute|output|RS|LoRA)\s+buffer size"
                       r"\s*=\s*(?P<mib>-?[\d.]+)\s*MiB")
RE_KV = re.compile(r"size\s*=\s*(?P<mib>[\d.]+) MiB \(\s*(?P<cells>\d+) cells,\s*(?P<layers>\d+) layers,\s*"
                   r"(?P<seqs>\d+)/(?P<seqmax>\d+) seqs\), K \((?P<tk>\w+)\):\s*(?P<kmib>[\d.]+) MiB, "
                   r"V \((?P<tv>\w+)\):\s*(?P<vmib>[\d.]+) MiB")
RE_CPARAM = re.compile(r"^llama_context:\s+(?P<k>n_seq_max|n_ctx|n_ctx_seq|n_ctx_train|n_batch|n_ubatch|causal_attn|"
                       r"flash_attn|kv_unified|freq_base|freq_scale|n_outputs_max|n_swa|swa_full)\s*=\s*(?P<v>.+?)\s*$")
RE_OFFLOAD = re.compile(r"offloaded (?P<n>\d+)/(?P<of>\d+) layers to GPU")
RE_NODES = re.compile(r"graph nodes\s*=\s*(?P<v>.+?)\s*$")
RE_SPLITS = re.compile(r"graph splits\s*=\s*(?P<v>.+?)\s*$")
RE_DEVICE = re.compile(r"Device (?P<i>\d+): (?P<name>.+?), compute capability (?P<cc>[\d.]+), VMM: (?P<vmm>\w+)")
RE_SWA = re.compile(r"creating\s+(?P<which>non-SWA|SWA) KV cache, size = (?P<cells>\d+) cells")
RE_PRINT_INFO = re.compile(r"^print_info:\s+(?P<k>file type|file size|model type|model params|n_layer|n_ctx_train|"
                           r"n_embd|n_head|n_head_kv|n_swa|n_expert|n_expert_used|vocab type|n_vocab|arch)\s*=\s*"
                           r"(?P<v>.+?)\s*$")
RE_ASSIGNED = re.compile(r"layer\s+(?P<il>\d+) assigned to device (?P<dev>[^,\s]+)")
RE_COMPUTE_FINAL = re.compile(r"(?P<buf>\S+) compute buffer size (?:is|of)\s+(?P<act>[\d.]+) MiB, "
                              r"(?P<m>matches|does not match) expectation of\s+(?P<exp>[\d.]+) MiB")
RE_KV_LAYER = re.compile(r"llama_kv_cache: layer\s+(?P<il>\d+): dev = (?P<dev>\S+)")
RE_TYPES = re.compile(r"llama_model_loader: - type\s+(?P<t>\w+):\s+(?P<n>\d+) tensors")
RE_KEEP = re.compile(r"buffer size|KV cache|kv_cache|n_ctx|n_batch|n_ubatch|flash_attn|Flash Attention|offload|"
                     r"graph nodes|graph splits|graph_reserve|sched|cells|file size|file type|model params|"
                     r"- type\s+\w+:|VMM|compute capability|ggml_cuda|CUDA|fit|warn|WARN|error|ERROR|fail|"
                     r"out of memory|assert", re.I)


def parse_llama_log(text):
    out = {
        "buffers": [],              # every "<buft> <kind> buffer size = X MiB" line, in order
        "model_buffer_mib": {}, "kv_buffer_mib": {}, "compute_buffer_mib": {}, "output_buffer_mib": {},
        "rs_buffer_mib": {},
        "kv_cache": [], "swa": [], "cparams": {}, "print_info": {}, "loader_types": {},
        "layer_devices": {}, "kv_layer_devices": {}, "compute_buffer_at_free": [],
        "offloaded_layers": None, "graph_nodes": None, "graph_splits": None, "cuda_devices": [],
        "matched_lines": [],
    }
    kind_key = {"model": "model_buffer_mib", "KV": "kv_buffer_mib", "compute": "compute_buffer_mib",
                "output": "output_buffer_mib", "RS": "rs_buffer_mib"}
    n_contexts = 0
    for raw in text.splitlines():
        line = raw.rstrip()
        m = RE_BUFFER.search(line)
        if m:
            mib = float(m.group("mib"))
            out["buffers"].append({"fn": m.group("fn"), "buffer": m.group("buf"), "kind": m.group("kind"),
                                   "mib": mib, "bytes_approx": int(round(mib * MIB))})
            k = kind_key.get(m.group("kind"))
            if k:
                d = out[k]
                d[m.group("buf")] = round(d.get(m.group("buf"), 0.0) + mib, 2)
        m = RE_KV.search(line)
        if m and "MiB" in line:
            g = m.groupdict()
            out["kv_cache"].append({"mib": float(g["mib"]), "cells": int(g["cells"]), "layers": int(g["layers"]),
                                    "seqs": int(g["seqs"]), "seq_max": int(g["seqmax"]), "type_k": g["tk"],
                                    "k_mib": float(g["kmib"]), "type_v": g["tv"], "v_mib": float(g["vmib"])})
        m = RE_SWA.search(line)
        if m:
            out["swa"].append({"which": m.group("which"), "cells": int(m.group("cells"))})
        m = RE_CPARAM.search(line)
        if m:
            if m.group("k") == "n_ctx":
                n_contexts += 1
            out["cparams"].setdefault(m.group("k"), m.group("v"))
        m = RE_PRINT_INFO.search(line)
        if m:
            out["print_info"].setdefault(m.group("k"), m.group("v"))
        m = RE_TYPES.search(line)
        if m:
            out["loader_types"][m.group("t")] = int(m.group("n"))
        m = RE_COMPUTE_FINAL.search(line)
        if m:
            out["compute_buffer_at_free"].append({"buffer": m.group("buf"), "mib": float(m.group("act")),
                                                  "expected_mib": float(m.group("exp")),
                                                  "matches": m.group("m") == "matches"})
        m = RE_KV_LAYER.search(line)
        if m:
            out["kv_layer_devices"][m.group("dev")] = out["kv_layer_devices"].get(m.group("dev"), 0) + 1
            continue
        m = RE_ASSIGNED.search(line)
        if m:
            out["layer_devices"][m.group("dev")] = out["layer_devices"].get(m.group("dev"), 0) + 1
            continue
        m = RE_OFFLOAD.search(line)
        if m:
            out["offloaded_layers"] = [int(m.group("n")), int(m.group("of"))]
        m = RE_NODES.search(line)
        if m:
            out["graph_nodes"] = m.group("v")
        m = RE_SPLITS.search(line)
        if m:
            out["graph_splits"] = m.group("v")
        m = RE_DEVICE.search(line)
        if m:
            out["cuda_devices"].append({"index": int(m.group("i")), "name": m.group("name"),
                                        "compute_capability": m.group("cc"), "vmm": m.group("vmm")})
        if RE_KEEP.search(line) and len(out["matched_lines"]) < 400:
            out["matched_lines"].append(line)
    out["contexts_created"] = n_contexts

    def gpu(d):
        return round(sum(v for k, v in d.items() if not k.startswith("CPU") and "Host" not in k), 2)

    out["gpu_buffer_mib"] = {
        "model": gpu(out["model_buffer_mib"]), "kv": gpu(out["kv_buffer_mib"]),
        "compute": gpu(out["compute_buffer_mib"]), "output": gpu(out["output_buffer_mib"]),
        "rs": gpu(out["rs_buffer_mib"]),
    }
    out["gpu_buffer_mib"]["total"] = round(sum(out["gpu_buffer_mib"].values()), 2)
    out["gpu_buffer_bytes_approx"] = {k: int(round(v * MIB)) for k, v in out["gpu_buffer_mib"].items()}
    return out


# ----------------------------------------------------------------------------------------------------------------
# the matrix
# ----------------------------------------------------------------------------------------------------------------
def parse_configs(text):
    """'ctx=4096,fa=on,k=f16,v=f16,ngl=all; ...' -> list of dicts"""
    out = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        c = {"fa": "on", "k": "f16", "v": "f16", "ngl": "all"}
        for kv in part.split(","):
            k, v = kv.split("=", 1)
            c[k.strip()] = v.strip()
        c["ctx"] = int(c["ctx"])
        out.append(c)
    return out


def default_configs(ctxs, fas, kv_ctx=4096, partial_ctx=4096, kv_types=("q8_0",), partial=True):
    """Run order: fa on at each n_ctx (4096 first), fa off at each n_ctx, quantised KV, partial offload."""
    order = sorted(ctxs, key=lambda c: (c != 4096, c))
    cfgs = []
    for fa in fas:
        for c in order:
            cfgs.append({"ctx": c, "fa": fa, "k": "f16", "v": "f16", "ngl": "all"})
    for t in kv_types:
        cfgs.append({"ctx": kv_ctx, "fa": "on", "k": t, "v": t, "ngl": "all"})
    if partial:
        cfgs.append({"ctx": partial_ctx, "fa": "on", "k": "f16", "v": "f16", "ngl": "half"})
    return cfgs


def entry_id(e):
    extra = ""  # tensor placement beyond -ngl: only named when set, so earlier records keep their ids
    if e.get("n_cpu_moe"):
        extra += f"|ncmoe-{e['n_cpu_moe']}"
    if e.get("override_tensor"):
        extra += f"|ot-{e['override_tensor']}"
    if e.get("no_mmap"):
        extra += "|no-mmap"
    if e.get("load_mode"):
        extra += f"|lm-{e['load_mode']}"
    if e.get("rpc"):
        extra += f"|rpc{e['rpc']}-ts{e.get('tensor_split') or 'default'}"
    return (f"{e['model']}|{e['scheme']}|ctx{e['n_ctx']}|fa-{e['flash_attn']}|k-{e['cache_type_k']}|"
            f"v-{e['cache_type_v']}|ngl-{e['ngl_label']}|b{e['n_batch']}|ub{e['n_ubatch']}|g{e['n_gen']}|{e['tool']}"
            + extra)


class ModelFacts:
    """Per GGUF: the dump summary (tensor data bytes, n_layer, n_ctx_train) and the learned-position limit."""

    def __init__(self):
        self.cache = {}

    def get(self, path):
        key = (str(path), Path(path).stat().st_size)
        if key not in self.cache:
            rec = dump_gguf.dump(path)
            s = dump_gguf.summary(rec)
            pos = [t for t in rec["tensors"] if t[0] == "position_embd.weight"]
            s["max_positions"] = pos[0][2][1] if pos and len(pos[0][2]) > 1 else None
            s["gguf_tensor_count"] = len(rec["tensors"])
            self.cache[key] = s
        return self.cache[key]


def build_matrix(args, work, facts):
    specs = common.parse_specs(args.models)
    schemes = common.parse_schemes(args.schemes, common.MEASURE_SCHEMES)
    if args.configs:
        cfgs = parse_configs(args.configs)
    else:
        cfgs = default_configs([int(c) for c in common.parse_list(args.ctx)], common.parse_list(args.fa),
                               kv_ctx=args.kv_ctx, partial_ctx=args.partial_ctx,
                               kv_types=common.parse_list(args.kv_types), partial=not args.no_partial)
    entries, missing = [], []
    seen = set()
    for cfg in cfgs:
        for spec in specs:
            for scheme in schemes:
                path = work.gguf(spec.name, scheme)
                if not common.is_done(path):
                    missing.append(f"{spec.name}:{scheme}")
                    continue
                f = facts.get(path)
                n_ctx = cfg["ctx"]
                capped = None
                if f.get("max_positions") and n_ctx > f["max_positions"]:
                    capped, n_ctx = n_ctx, int(f["max_positions"]) // 256 * 256
                n_layer = f.get("n_layer") or 0
                ngl_label = cfg["ngl"]
                if ngl_label == "all":
                    ngl = 999
                elif ngl_label == "half":
                    ngl = max(0, int(n_layer) // 2)
                else:
                    ngl = int(ngl_label)
                e = {
                    "model": spec.name, "catalog_id": spec.catalog, "overrides": spec.overrides,
                    "scheme": scheme, "gguf_path": str(path),
                    "n_ctx": n_ctx, "n_ctx_requested": cfg["ctx"], "n_ctx_capped_by_positions": capped,
                    "flash_attn": cfg["fa"], "cache_type_k": cfg["k"], "cache_type_v": cfg["v"],
                    "ngl_label": ngl_label, "n_gpu_layers": ngl, "n_layer": n_layer,
                    "n_gen": args.n_gen, "n_prompt": n_ctx - args.n_gen, "n_depth": 0,
                    "n_batch": args.n_batch, "n_ubatch": int(cfg.get("ub", args.n_ubatch)), "threads": args.threads,
                    "tool": "llama-bench", "facts": f,
                    # --n-cpu-moe N, --override-tensor PATTERN=BUFFER (one), --no-mmap (llama-bench -mmp 0)
                    "n_cpu_moe": int(cfg.get("ncmoe", 0)), "override_tensor": cfg.get("ot", ""),
                    "no_mmap": cfg.get("mmap", "1") == "0",
                    # lm=mlock|mmap+mlock|none: llama-bench --load-mode (absent: its default, auto = mmap)
                    "load_mode": cfg.get("lm", ""),
                    # several devices: rpc=N rpc-server processes on this GPU, ts=a/b the tensor split
                    "rpc": int(cfg.get("rpc", 0)), "tensor_split": cfg.get("ts", ""),  # llama-bench -ts a/b
                }
                e["id"] = entry_id(e)
                if e["id"] in seen:
                    continue
                seen.add(e["id"])
                entries.append(e)
    return entries, sorted(set(missing))


def bench_command(e, ldir):
    return [str(ldir / "bin" / "llama-bench"), "-m", e["gguf_path"],
            "-p", "0", "-n", "0", "-pg", f"{e['n_prompt']},{e['n_gen']}", "-d", str(e["n_depth"]),
            "-r", "1", "--no-warmup",
            "-fa", e["flash_attn"], "-ctk", e["cache_type_k"], "-ctv", e["cache_type_v"],
            "-ngl", str(e["n_gpu_layers"]), "-t", str(e["threads"]),
            "-b", str(e["n_batch"]), "-ub", str(e["n_ubatch"]), "-o", "jsonl", "-v"] + placement_args(e)


def placement_args(e):
    """llama-bench's flags for tensor placement beyond -ngl (absent from earlier records: none)."""
    out = []
    if e.get("n_cpu_moe"):
        out += ["-ncmoe", str(e["n_cpu_moe"])]
    if e.get("override_tensor"):
        out += ["-ot", e["override_tensor"]]
    if e.get("no_mmap"):
        out += ["-mmp", "0"]
    if e.get("load_mode"):
        out += ["-lm", e["load_mode"]]   # llama-bench --load-mode (mlock: read into pinned memory and locked)
    if e.get("tensor_split"):
        out += ["-ts", e["tensor_split"]]
    return out


# ----------------------------------------------------------------------------------------------------------------
# several devices on one GPU: llama.cpp's RPC backend
# ----------------------------------------------------------------------------------------------------------------
# A run with rpc=N starts N rpc-server processes (each exposing the GPU as one RPC device, each under its own
# `llmem measure`, so NVML gives each device's process peak: its CUDA context, buffers, cuBLAS and pool), then
# llama-bench with --rpc and the GPU hidden (CUDA_VISIBLE_DEVICES=""), so its devices are RPC0..RPC{N-1} and every
# buffer it logs is one device's. RPC devices support async compute and events at this commit, so llama.cpp's
# pipeline parallelism (4 copies of each split input) is on as with several CUDA GPUs; what RPC does not show is
# the peer-to-peer copies and NCCL of real GPUs.
_port_lock = threading.Lock()
_next_port = [50100]


def start_rpc_servers(n, rundir, ctx):
    servers = []
    for i in range(n):
        with _port_lock:
            port = _next_port[0]
            _next_port[0] += 1
        report = rundir / f"rpc{i}.json"
        cmd = [ctx["llmem"], "measure", "--json", "--output", str(report), "--",
               str(ctx["ldir"] / "bin" / "rpc-server"), "-H", "127.0.0.1", "-p", str(port)]
        log = open(rundir / f"rpc{i}.log", "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=ctx["env"], start_new_session=True)
        servers.append({"port": port, "proc": proc, "report": report, "log": log, "index": i})
    # wait until each listens (the CUDA backend loads first)
    import socket
    t0 = time.time()
    for srv in servers:
        while time.time() - t0 < 60:
            try:
                socket.create_connection(("127.0.0.1", srv["port"]), timeout=1).close()
                break
            except OSError:
                if srv["proc"].poll() is not None:
                    break
                time.sleep(0.2)
    return servers


def stop_rpc_servers(servers):
    out = []
    for srv in servers:
        try:
            os.killpg(srv["proc"].pid, signal.SIGTERM)   # llmem forwards it to rpc-server
            srv["proc"].wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            kill_tree(srv["proc"], signal.SIGKILL)
            srv["proc"].wait()
        srv["log"].close()
        rec = {"index": srv["index"], "port": srv["port"]}
        try:
            rep = json.loads(srv["report"].read_text())
            rec["peak_tree_bytes"] = rep.get("peak_tree_bytes")
            g = (rep.get("gpus") or [{}])[0]
            rec["tree_source"] = g.get("tree_source")
        except (OSError, ValueError) as ex:
            rec["error"] = f"no llmem report: {type(ex).__name__}: {ex}"
        try:
            rec["log_tail"] = (srv["report"].parent / f"rpc{srv['index']}.log").read_text(errors="replace").splitlines()[-12:]
        except OSError:
            pass
        out.append(rec)
    return out


# ----------------------------------------------------------------------------------------------------------------
# one run
# ----------------------------------------------------------------------------------------------------------------
def descendants(pid):
    """pids of the processes below pid (from /proc), deepest last."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def kill_tree(proc, sig):
    """The process group of proc (llmem) and every descendant (llama-bench runs in a group of its own)."""
    pids = descendants(proc.pid)
    try:
        os.killpg(proc.pid, sig)
    except OSError:
        pass
    for p in pids:
        try:
            os.kill(p, sig)
        except OSError:
            pass


def safe_name(s):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s)[:180]


def host_series(path, step_mib=2.0, max_points=400):
    """The run's timeline cut to its changes: [time_ms, host_rss_mib, gpu_tree_mib] whenever either moved by
    step_mib or more since the last point kept (the first and the last row always); None without a timeline."""
    try:
        rows = [l.split(",") for l in path.read_text().splitlines()[1:]]
    except OSError:
        return None
    pts, last = [], None
    for i, r in enumerate(rows):
        if len(r) < 6:
            continue
        p = [round(float(r[0]), 1), round(int(r[5]) / 2**20, 1), round(int(r[3]) / 2**20, 1)]
        if last is None or i == len(rows) - 1 or abs(p[1] - last[1]) >= step_mib or abs(p[2] - last[2]) >= step_mib:
            pts.append(p)
            last = p
    if len(pts) > max_points:
        k = len(pts) / max_points
        pts = [pts[int(i * k)] for i in range(max_points)] + [pts[-1]]
    return pts


def run_one(e, ctx):
    rundir = ctx["work"].root / "runs" / safe_name(e["id"])
    rundir.mkdir(parents=True, exist_ok=True)
    for f in rundir.iterdir():
        f.unlink()
    cmd = bench_command(e, ctx["ldir"])
    report = rundir / "llmem.json"
    servers = start_rpc_servers(e["rpc"], rundir, ctx) if e.get("rpc") else []
    env = ctx["env"]
    if servers:
        cmd += ["-rpc", ",".join(f"127.0.0.1:{s['port']}" for s in servers)]
        env = dict(env, CUDA_VISIBLE_DEVICES="")
    if ctx["no_llmem"]:
        full = cmd
    else:
        full = [ctx["llmem"], "measure", "--json", "--output", str(report), "--timeline", str(rundir / "timeline.csv")]
        if ctx["interval"]:
            full += ["--interval", str(ctx["interval"])]
        full += ["--"] + cmd
    rec = {k: v for k, v in e.items() if k not in ("facts", "gguf_path")}
    rec.update(e["facts"])
    rec.update({"llama_cpp_commit": ctx["build"].get("llama_cpp_commit"), "build_flags": ctx["build"].get("build_flags"),
                "build_info_text": ctx["build"].get("build_info_text"),
                "command": cmd, "llmem_command": None if ctx["no_llmem"] else full[:full.index("--")],
                "env_ld_library_path": ctx["env"].get("LD_LIBRARY_PATH"),
                "cuda_cache_path": ctx["env"].get("CUDA_CACHE_PATH"),
                "cuda_module_loading": ctx["env"].get("CUDA_MODULE_LOADING"), "ok": False,
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                "concurrent_workers": ctx["workers"]})
    t0 = time.time()
    timed_out = False
    with open(rundir / "stdout.txt", "w") as so, open(rundir / "stderr.txt", "w") as se:
        proc = subprocess.Popen(full, stdout=so, stderr=se, env=env, start_new_session=True)
        with ctx["lock"]:
            ctx["procs"].add(proc)
        limit = min(ctx["timeout"], max(1.0, ctx["deadline"].hard_left()))
        cut_by_deadline = limit < ctx["timeout"]
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGTERM)   # llmem forwards it to llama-bench's group
                proc.wait(timeout=8)
            except (OSError, subprocess.TimeoutExpired):
                kill_tree(proc, signal.SIGKILL)
                proc.wait()
        with ctx["lock"]:
            ctx["procs"].discard(proc)
    if servers:
        rec["rpc_servers"] = stop_rpc_servers(servers)
    rec["wall_s"] = round(time.time() - t0, 3)
    rec["exit_status"] = proc.returncode
    rec["timed_out"] = timed_out
    rec["cut_by_deadline"] = bool(timed_out and cut_by_deadline)
    stdout = (rundir / "stdout.txt").read_text(errors="replace")
    stderr = (rundir / "stderr.txt").read_text(errors="replace")
    bench = None
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                bench = json.loads(line)
            except ValueError:
                pass
    rec["bench_result"] = bench
    rec["llama_log"] = parse_llama_log(stderr)
    rec["log_tail"] = stderr.splitlines()[-40:]
    rec["log_bytes"] = len(stderr)
    if not ctx["no_llmem"]:
        try:
            rep = json.loads(report.read_text())
        except (OSError, ValueError) as ex:
            rep = None
            rec["llmem_error"] = f"no llmem report: {type(ex).__name__}: {ex}"
        rec["llmem"] = rep
        if rep:
            rec["peak_tree_bytes"] = rep.get("peak_tree_bytes")
            rec["peak_tree_mib"] = rep.get("peak_tree_mib")
            g = (rep.get("gpus") or [{}])[0]
            rec["gpu_name"] = g.get("name")
            rec["tree_source"] = g.get("tree_source")
            rec["peak_device_minus_baseline_bytes"] = g.get("peak_device_minus_baseline_bytes")
            rec["llmem_exit_status"] = rep.get("exit_status")
            # the command's peak resident set (ru_maxrss; llmem 2026-12-06 on, absent before)
            rec["host_peak_rss_bytes"] = rep.get("host_peak_rss_bytes")
            rec["host_sampled_peak_rss_bytes"] = rep.get("host_sampled_peak_rss_bytes")
            rec["host_sampled_peak_rss_time_ms"] = rep.get("host_sampled_peak_rss_time_ms")
            rec["host_series"] = host_series(rundir / "timeline.csv")
            rec["duration_ms"] = rep.get("duration_ms")
    ok = proc.returncode == 0 and not timed_out and bench is not None
    if not ctx["no_llmem"]:
        ok = ok and rec.get("peak_tree_bytes") is not None
    rec["ok"] = bool(ok)
    if not ok:
        err = "timed out" if timed_out else f"exit status {proc.returncode}"
        lines = [l for l in stderr.splitlines() if re.search(r"error|fail|out of memory|assert|abort", l, re.I)]
        rec["error"] = err + ("; " + " | ".join(lines[-6:]) if lines else "")
        rec["oom"] = bool(re.search(r"out of memory|cudaMalloc failed|failed to allocate", stderr, re.I))
    if not ctx["keep_logs"] and ok:
        for f in rundir.iterdir():
            f.unlink()
        rundir.rmdir()
    return rec


# ----------------------------------------------------------------------------------------------------------------
# JIT warm-up
# ----------------------------------------------------------------------------------------------------------------
def backend_identity(ldir):
    """What the driver's JIT cache depends on: the CUDA backend file(s)."""
    ids = []
    for p in sorted(list((ldir / "bin").glob("libggml-cuda*.so*")) + list((ldir / "lib").glob("libggml-cuda*.so*"))):
        if p.suffix != ".xz":
            ids.append(f"{p.name}:{p.stat().st_size}")   # no mtime: the .so is decompressed anew on each call
    return ";".join(ids) or "none"


def warmup(todo, ctx, args):
    """A CUDA backend that carries PTX only is compiled for the GPU by the driver when its kernels are first used
    (minutes for ggml-cuda). Before measuring, one llama-bench per model runs each of its GGUFs briefly
    (-pg 508,4) with every flash-attention / KV-type combination of the matrix, so the kernels are compiled once,
    into the cache (CUDA_CACHE_PATH in the work dir), and the measured runs neither wait for the compiler nor
    compile the same kernels four times at once. Not measured, not recorded (the log has the times)."""
    dl = ctx["deadline"]
    state = ctx["work"].state("jit_warmup.json")
    try:
        done = json.loads(state.read_text())
    except (OSError, ValueError):
        done = {}
    key = backend_identity(ctx["ldir"]) + "|" + ctx["env"].get("CUDA_CACHE_PATH", "")
    done_models = set(done.get(key, {}))
    plan = {}
    for e in todo:
        p = plan.setdefault(e["model"], {"files": [], "fa": set(), "kv": set()})
        if e["facts"]["gguf_file"] not in [Path(f).name for f in p["files"]]:
            p["files"].append(str(ctx["work"].gguf(e["model"], e["scheme"])))
        if e["cache_type_k"] == "f16" and e["cache_type_v"] == "f16":
            p["fa"].add(e["flash_attn"])
        else:
            p["kv"].add((e["cache_type_k"], e["cache_type_v"], e["flash_attn"]))
    jobs = []
    bench = str(ctx["ldir"] / "bin" / "llama-bench")
    for model, p in plan.items():
        if model in done_models:
            continue
        base = [bench, "-m", ",".join(p["files"]), "-p", "0", "-n", "0", "-pg", "508,4", "-d", "0", "-r", "1",
                "--no-warmup", "-ngl", "999", "-t", str(args.threads), "-o", "jsonl"]
        cmds = []
        if p["fa"]:
            cmds.append(base + ["-fa", ",".join(sorted(p["fa"], reverse=True)), "-ctk", "f16", "-ctv", "f16"])
        for k, v, fa in sorted(p["kv"]):
            cmds.append(base + ["-fa", fa, "-ctk", k, "-ctv", v])
        jobs.append((model, cmds))
    if not jobs:
        return
    common.log(f"measure: JIT warm-up for {len(jobs)} model(s): the first alone, then {args.warmup_workers} at once "
               f"(cache {ctx['env'].get('CUDA_CACHE_PATH')})")
    lock = threading.Lock()
    t_all = time.time()

    def run(model, cmds):
        t0 = time.time()
        rcs = []
        for cmd in cmds:
            limit = min(args.warmup_timeout, dl.left())
            if limit <= 5:
                rcs.append("deadline")
                break
            logf = ctx["work"].log(f"warmup-{safe_name(model)}.log")
            with open(logf, "a") as lf:
                lf.write("$ " + " ".join(cmd) + "\n")
                lf.flush()
                proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=ctx["env"],
                                        start_new_session=True)
                try:
                    proc.wait(timeout=limit)
                    rcs.append(proc.returncode)
                except subprocess.TimeoutExpired:
                    kill_tree(proc, signal.SIGKILL)
                    proc.wait()
                    rcs.append("timeout")
        secs = time.time() - t0
        ok = all(rc == 0 for rc in rcs)
        with lock:
            if ok:
                done.setdefault(key, {})[model] = round(secs, 1)
                state.write_text(json.dumps(done))
        common.log(f"measure: warm-up {model}: {'ok' if ok else 'exit ' + str(rcs)} in {secs:.1f} s"
                   + ("" if ok else f" (see {ctx['work'].log('warmup-' + safe_name(model) + '.log')})"))

    # the first model alone: it compiles the kernels every model shares (the quant types' matrix kernels, norms,
    # rope, ...) once; then the others, whose extra kernels (head sizes, MoE) differ, side by side
    run(*jobs[0])
    q = queue.Queue()
    for j in jobs[1:]:
        q.put(j)

    def worker():
        while not dl.passed():
            try:
                model, cmds = q.get_nowait()
            except queue.Empty:
                return
            run(model, cmds)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, args.warmup_workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    common.log(f"measure: JIT warm-up finished in {time.time() - t_all:.1f} s")


# ----------------------------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------------------------
def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="model specs or names (default: the six default models)")
    ap.add_argument("--schemes", default="Q4_K_M,Q8_0,Q2_K")
    ap.add_argument("--ctx", default="512,4096,32768", help="n_ctx values (default 512,4096,32768)")
    ap.add_argument("--fa", default="on,off", help="flash attention values (default on,off)")
    ap.add_argument("--kv-types", default="q8_0", help="extra K=V cache types at --kv-ctx with fa on (default q8_0)")
    ap.add_argument("--kv-ctx", type=int, default=4096)
    ap.add_argument("--partial-ctx", type=int, default=4096, help="n_ctx of the half-offload run (default 4096)")
    ap.add_argument("--no-partial", action="store_true", help="no half-offload runs")
    ap.add_argument("--configs", help="instead of the default matrix: 'ctx=4096,fa=on,k=f16,v=f16,ngl=all;...' "
                                      "(ngl: all | half | a number; optional ncmoe=N, ot=PATTERN=BUFFER, ub=N, "
                                      "mmap=0)")
    ap.add_argument("--n-gen", type=int, default=4, help="tokens generated after the prompt (default 4)")
    ap.add_argument("--n-batch", type=int, default=2048)
    ap.add_argument("--n-ubatch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=4, help="llama-bench -t (default 4)")
    ap.add_argument("--workers", type=int, default=4, help="runs at once (default 4)")
    ap.add_argument("--timeout", type=float, default=240, help="seconds per run (default 240)")
    ap.add_argument("--interval", type=int, default=None, help="llmem measure --interval MS (default llmem's, 5)")
    ap.add_argument("--work", default=str(common.default_work()))
    ap.add_argument("--llama-dir")
    ap.add_argument("--out", help="JSONL of the runs (also appended to WORK/state/memory.jsonl)")
    ap.add_argument("--retry-failed", action="store_true")
    ap.add_argument("--keep-logs", action="store_true", help="keep every run's stdout/stderr under WORK/runs")
    ap.add_argument("--no-llmem", action="store_true", help="run llama-bench without llmem (tests)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the JIT warm-up before the matrix")
    ap.add_argument("--warmup-only", action="store_true", help="only the JIT warm-up (fills the driver's cache)")
    ap.add_argument("--warmup-workers", type=int, default=3, help="models warmed up at once (default 3)")
    ap.add_argument("--warmup-timeout", type=float, default=480, help="seconds per warm-up command (default 480)")
    ap.add_argument("--list", action="store_true", help="print the matrix with commands and exit")
    ap.add_argument("--limit", type=int, default=None, help="run at most N entries")
    common.add_deadline_args(ap)
    args = ap.parse_args(argv)

    dl = common.deadline_from(args)
    work = common.Work(args.work)
    ldir = common.llama_dir(args.llama_dir)
    facts = ModelFacts()
    entries, missing = build_matrix(args, work, facts)
    if missing:
        common.log(f"measure: no GGUF for {missing}: their runs are not in the matrix")
    if args.list:
        for e in entries:
            print(e["id"], " ".join(bench_command(e, ldir)))
        print(f"{len(entries)} runs")
        return 0
    sink = common.JsonlSink(args.out, work.state("memory.jsonl"))
    done = {}
    for r in sink.records():
        if r.get("id"):
            done[r["id"]] = done.get(r["id"], False) or bool(r.get("ok"))
    todo = [e for e in entries if e["id"] not in done or (args.retry_failed and not done[e["id"]])]
    n_done = len(entries) - len(todo)
    if args.limit is not None:
        todo = todo[:args.limit]
    common.log(f"measure: {len(entries)} runs in the matrix, {n_done} already done, "
               f"{len(todo)} to run with {args.workers} workers")
    env_add, notes = common.library_env(ldir)
    for n in notes:
        common.log("measure: " + n)
    for n in common.prepare_llama(ldir):
        common.log("measure: " + n)
    env = dict(os.environ, **env_add)
    env.update(common.cuda_cache_env(work.root))
    os.makedirs(env["CUDA_CACHE_PATH"], exist_ok=True)
    ctx = {
        "work": work, "ldir": ldir, "llmem": common.llmem_bin(), "env": env,
        "build": common.build_info(ldir), "timeout": args.timeout, "deadline": dl, "lock": threading.Lock(),
        "procs": set(), "no_llmem": args.no_llmem, "keep_logs": args.keep_logs, "workers": args.workers,
        "interval": args.interval,
    }
    if todo and not args.no_warmup:
        warmup(todo, ctx, args)
    if args.warmup_only:
        return 0
    q = queue.Queue()
    for e in todo:
        q.put(e)
    stats = {"ok": 0, "failed": 0, "started": 0, "cut": 0}
    t_start = time.time()

    def worker():
        while True:
            if dl.passed():
                return
            try:
                e = q.get_nowait()
            except queue.Empty:
                return
            with ctx["lock"]:
                stats["started"] += 1
            try:
                rec = run_one(e, ctx)
            except Exception as ex:
                rec = {k: v for k, v in e.items() if k not in ("facts",)}
                rec.update({"ok": False, "error": f"harness: {type(ex).__name__}: {ex}"})
            with ctx["lock"]:
                if rec.get("cut_by_deadline"):
                    stats["cut"] += 1   # not recorded: a later call runs it again
                else:
                    sink.write(rec)
                    stats["ok" if rec.get("ok") else "failed"] += 1
                n_done = stats["ok"] + stats["failed"] + stats["cut"]
            peak = rec.get("peak_tree_bytes")
            gb = rec.get("llama_log", {}).get("gpu_buffer_mib", {})
            common.log(f"measure [{n_done}/{len(todo)}] {e['id']}: "
                       + ("ok" if rec.get("ok") else ("CUT by the deadline (not recorded) " if rec.get("cut_by_deadline")
                                                      else "FAILED ") + str(rec.get("error"))[:300])
                       + (f" peak {peak / MIB:.0f} MiB" if peak else "")
                       + (f" (buffers: model {gb.get('model')} kv {gb.get('kv')} compute {gb.get('compute')} MiB)"
                          if gb else "")
                       + f" {rec.get('wall_s')} s")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, args.workers))]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(timeout=1.0)
            if dl.hard_left() < -10:
                with ctx["lock"]:
                    for p in list(ctx["procs"]):
                        kill_tree(p, signal.SIGKILL)
    left = q.qsize()
    common.log(f"measure: {stats['ok']} ok, {stats['failed']} failed, {stats['cut']} cut by the deadline, "
               f"{left} not started"
               + (" (deadline)" if left else "") + f", {time.time() - t_start:.0f} s")
    if left:
        rest = []
        while not q.empty():
            rest.append(q.get_nowait()["id"])
        common.log("measure: not started: " + "; ".join(rest))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
