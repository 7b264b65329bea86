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
device_map, and every parameter's and buffer's device (tied aliases included) as runs over the model's tensor
names: the first line of each model, {"model", "dtype", "names"}, lists every parameter and buffer name in order,
and each placement record holds "tensor_device_runs", [[device, count], ...] over that list (a file of full
per-tensor maps was ~1.6 GB for the catalog). fp16 only: bf16 has the same sizes, so the same placement.
tests/unit/test_placement.cpp compares llmem's placement with each record exactly.

    python3 bench/gpu/accelerate_placement.py --out bench/data/accelerate_placement.jsonl   # DEFAULT_MODELS
    python3 bench/gpu/accelerate_placement.py --only all --out /tmp/p.jsonl                 # every catalog model
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


# one model of each family transformers builds (gpt-oss is left out: llmem refuses --gpus for quantised checkpoints)
DEFAULT_MODELS = ("TinyLlama__TinyLlama-1.1B-Chat-v1.0,meta-llama__Llama-3.1-8B,Qwen__Qwen2.5-0.5B,Qwen__Qwen3-0.6B,"
                  "Qwen__Qwen3-30B-A3B.json,google__gemma-2b,google__gemma-2-2b,google__gemma-3-1b-it,"
                  "openai-community__gpt2-medium,EleutherAI__pythia-1.4b,microsoft__phi-2,microsoft__Phi-3-mini-4k,"
                  "facebook__opt-1.3b,bigscience__bloom-560m,tiiuae__falcon-7b,mistralai__Mistral-7B-v0.1,"
                  "mistralai__Mixtral-8x7B,deepseek-ai__DeepSeek-V2-Lite,allenai__OLMo-2-1124-7B,facebook__xglm")


def expand_runs(device_map, names):
    """Each name's device (the longest device_map key that is the name or a dotted prefix of it), as runs."""
    runs = []
    for n in names:
        best, dev = -1, None
        for k, v in device_map.items():
            if (k == "" or n == k or n.startswith(k + ".")) and len(k) > best:
                best, dev = len(k), str(v)
        if runs and runs[-1][0] == dev:
            runs[-1][1] += 1
        else:
            runs.append([dev, 1])
    return runs


def no_split_modules(model, kind):
    """transformers 4's PreTrainedModel._get_no_split_modules where it exists; transformers 5.17 has none: the union
    of `_no_split_modules` over the model and its PreTrainedModel submodules, in the order found."""
    if hasattr(model, "_get_no_split_modules"):
        return list(model._get_no_split_modules(kind))
    out = []
    for m in model.modules():
        for name in getattr(m, "_no_split_modules", None) or []:
            if name not in out:
                out.append(name)
    return out


def run(model_file, dtype_name, torch, transformers, accel_utils, hf_accel):
    cfg = json.load(open(model_file))
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    dtype = getattr(torch, {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}[dtype_name])
    with torch.device("meta"):  # no weights; transformers 5.17's integrations.accelerate has no init_empty_weights
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.tie_weights()
    names = [n for n, _ in model.named_parameters(remove_duplicate=False)] + [n for n, _ in model.named_buffers()]
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    stem = os.path.basename(model_file)[: -len(".json")]
    yield {"model": stem, "dtype": dtype_name, "names": names}
    for mm in settings(model_bytes):
        for kind in ("auto", "balanced", "balanced_low_0", "sequential"):
            no_split = no_split_modules(model, kind)
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
                    rec["tensor_device_runs"] = expand_runs(dm, names)
                    rec["ok"] = True
                except Exception as e:  # a record says what failed; the run goes on
                    rec["ok"] = False
                    rec["error"] = f"{type(e).__name__}: {e}"
                    rec["trace"] = traceback.format_exc()[-1500:]
                yield rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "data", "accelerate_placement.jsonl"))
    ap.add_argument("--only", default=DEFAULT_MODELS,
                    help="comma-separated substrings of catalog file names, or 'all'")
    ap.add_argument("--dtypes", default="fp16")
    args = ap.parse_args()
    import torch
    import transformers
    import accelerate
    import accelerate.utils as accel_utils
    import transformers.integrations.accelerate as hf_accel
    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "accelerate": accelerate.__version__}
    files = sorted(glob.glob(os.path.join(CATALOG, "*.json")))
    if args.only != "all":
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
