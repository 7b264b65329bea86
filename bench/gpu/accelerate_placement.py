#!/usr/bin/env python3
"""Where from_pretrained(device_map=...) puts each module, from the real functions, for llmem to match exactly.

For every catalog model (data/catalog/*.json) built on the meta device (init_empty_weights + from_config, no
weights, no GPU memory), and for many max_memory settings, runs the placement two ways and writes one JSON line
per (model, dtype, device_map, max_memory, flavor) to bench/data/accelerate_placement.jsonl:

  flavor "transformers": transformers.integrations.accelerate.get_balanced_memory / infer_auto_device_map with the
                         model's own _get_no_split_modules(device_map), as from_pretrained's _get_device_map runs
                         them (max_memory given, so no GPU is queried; the unused reserved memory it adds is 0 in a
                         fresh process);
  flavor "accelerate":   accelerate.utils.get_balanced_memory / infer_auto_device_map, the same arguments.

Each record holds the input max_memory, the balanced max_memory infer_auto_device_map received, the cleaned
device_map, and every parameter's and buffer's device (tied aliases included). tests/unit/test_placement.cpp
compares llmem's placement with each record exactly.

    python3 bench/gpu/accelerate_placement.py --out bench/data/accelerate_placement.jsonl
    python3 bench/gpu/accelerate_placement.py --only TinyLlama --out /tmp/p.jsonl

Needs torch, transformers 5.17 and accelerate 1.15; runs on CPU (a GPU is not needed, but device indices above
the visible GPUs make accelerate warn, which is harmless).
"""
import argparse
import glob
import json
import os
import sys
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
CATALOG = os.path.normpath(os.path.join(HERE, "..", "..", "data", "catalog"))
GIB = 1 << 30


def settings(model_bytes):
    """max_memory dicts (GPU index -> bytes): even splits tight and loose, uneven cards, and one with CPU room."""
    out = []
    for n in (2, 3, 4, 8):
        for f in (0.55, 0.8, 1.0, 1.3, 2.5):
            per = int(model_bytes * f / n) + 1
            out.append({i: per for i in range(n)})
    half = int(model_bytes / 2)
    out.append({0: int(half * 0.5), 1: int(half * 1.7)})
    out.append({0: int(half * 1.7), 1: int(half * 0.5)})
    out.append({0: 24 * GIB, 1: 24 * GIB})
    out.append({0: 80 * GIB, 1: 80 * GIB, 2: 80 * GIB, 3: 80 * GIB})
    out.append({0: int(model_bytes * 0.3), 1: int(model_bytes * 0.3), "cpu": 4 * model_bytes})
    return out


def expand(device_map, names):
    out = {}
    for n in names:
        best, dev = -1, None
        for k, v in device_map.items():
            if (k == "" or n == k or n.startswith(k + ".")) and len(k) > best:
                best, dev = len(k), v
        out[n] = dev
    return out


def run(model_file, dtype_name, torch, transformers, accel_utils, hf_accel):
    cfg = json.load(open(model_file))
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    dtype = getattr(torch, {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}[dtype_name])
    with hf_accel.init_empty_weights():
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.tie_weights()
    names = [n for n, _ in model.named_parameters(remove_duplicate=False)] + [n for n, _ in model.named_buffers()]
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    stem = os.path.basename(model_file)[: -len(".json")]
    for mm in settings(model_bytes):
        for kind in ("auto", "balanced", "balanced_low_0", "sequential"):
            no_split = model._get_no_split_modules(kind)
            for flavor, mod in (("transformers", hf_accel), ("accelerate", accel_utils)):
                rec = {"model": stem, "dtype": dtype_name, "device_map": kind, "flavor": flavor,
                       "max_memory": {str(k): v for k, v in mm.items()}, "no_split_modules": list(no_split)}
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        given = dict(mm)
                        if kind != "sequential":
                            kw = {"low_zero": kind == "balanced_low_0", "no_split_module_classes": no_split}
                            balanced = mod.get_balanced_memory(model, max_memory=given, **kw)
                        else:
                            balanced = accel_utils.get_max_memory(given)
                        dm = mod.infer_auto_device_map(model, max_memory=dict(balanced), no_split_module_classes=no_split)
                    rec["balanced_max_memory"] = {str(k): v for k, v in balanced.items()}
                    rec["device_map_result"] = {k: str(v) for k, v in dm.items()}
                    rec["tensor_device"] = {k: str(v) for k, v in expand(dm, names).items()}
                    rec["ok"] = True
                except Exception as e:  # a record says what failed; the run goes on
                    rec["ok"] = False
                    rec["error"] = f"{type(e).__name__}: {e}"
                    rec["trace"] = traceback.format_exc()[-1500:]
                yield rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "data", "accelerate_placement.jsonl"))
    ap.add_argument("--only", default="", help="comma-separated substrings of catalog file names")
    ap.add_argument("--dtypes", default="fp16,bf16")
    args = ap.parse_args()
    import torch
    import transformers
    import accelerate
    import accelerate.utils as accel_utils
    import transformers.integrations.accelerate as hf_accel
    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "accelerate": accelerate.__version__}
    files = sorted(glob.glob(os.path.join(CATALOG, "*.json")))
    if args.only:
        files = [f for f in files if any(s in f for s in args.only.split(","))]
    n = 0
    with open(args.out, "w") as out:
        for f in files:
            for dt in args.dtypes.split(","):
                try:
                    for rec in run(f, dt, torch, transformers, accel_utils, hf_accel):
                        rec["versions"] = versions
                        out.write(json.dumps(rec) + "\n")
                        n += 1
                except Exception as e:
                    out.write(json.dumps({"model": os.path.basename(f), "dtype": dt, "ok": False,
                                          "error": f"build: {type(e).__name__}: {e}", "versions": versions}) + "\n")
                out.flush()
    print(f"{n} records -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
