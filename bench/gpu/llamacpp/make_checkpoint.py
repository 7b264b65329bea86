#!/usr/bin/env python3
"""A random-weight Hugging Face checkpoint without torch or transformers, then llama.cpp's own converter on it.

make_gguf.py builds each model with transformers on the GPU machine. This script makes the same kind of input on
any machine with numpy: the tensor list (names, shapes, stored dtypes, quantised layouts such as MXFP4's _blocks
and _scales) comes from llmem's own derivation of the config (bench/tools/hf_checkpoint_tensors, whose names and
shapes a unit test checks against PyTorch's parameter lists for all catalog models), the data is random
(normal * 0.02 for floats, uniform bytes for MXFP4 blocks, exponents near 2^-1 for its scales), and the converter
runs unchanged with make_gguf.py's stand-in vocabulary. transformers is replaced by a stub module whose
AutoConfig/AutoTokenizer raise: the converter reads config.json itself and only falls back to them.

  python3 make_checkpoint.py --tool build/bench/hf_checkpoint_tensors --out-dir DIR \
      NAME=CATALOG_ID[,key=value...] ...                 (values are JSON: num_hidden_layers=2)
Writes DIR/hf/NAME/{config.json,model.safetensors} and DIR/gguf/NAME-base.gguf (--outtype auto), and prints one
JSON line per model: {name, catalog_id, overrides, gguf, converter_log_tail, ok}. CATALOG_ID may instead be a
repo-relative path to a config.json (tests/fixtures/gemma3_4b_vlm_config.json); a dotted key overrides inside a
nested config (vision_config.num_hidden_layers=2, text_config.num_hidden_layers=1). With --mmproj f16,f32 the
multimodal projector is converted too (convert_hf_to_gguf.py --mmproj --outtype T, with a preprocessor_config.json
as the hub ships it), to DIR/gguf/mmproj-NAME-T.gguf, one JSON line each (with "mmproj": T); --no-text skips the
text model. With --work WORK the base GGUF
goes where run_all.sh's stages look for it instead (WORK/gguf/NAME/NAME-base.gguf and its .done.json), so stage 1
skips the model and stage 2 quantises it.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE))
import common  # noqa: E402  (run_all.sh's work directory layout)

ST_DTYPES = {"F32": ("F32", np.float32), "F16": ("F16", np.float16), "BF16": ("BF16", None),
             "U8": ("U8", np.uint8), "I8": ("I8", np.int8), "I32": ("I32", np.int32),
             "F8_E4M3": ("F8_E4M3", None)}

STUB = '''
class _Missing:
    @classmethod
    def from_pretrained(cls, *a, **k):
        raise RuntimeError("transformers is not installed (llmem harness stub)")
AutoConfig = _Missing
AutoTokenizer = _Missing
'''

# Debian's torch (1.13) predates the float8 and unsigned dtypes the converter names in its dtype tables; they get
# stand-in objects (the tables use them as keys; no tensor of these types is written by this harness).
SITECUSTOMIZE = '''
try:
    import torch
    for _n in ("float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "float8_e4m3fnuz", "float8_e5m2fnuz",
               "uint16", "uint32", "uint64"):
        if not hasattr(torch, _n):
            setattr(torch, _n, type(_n, (), {})())
except ImportError:
    pass
'''


def parse_spec(spec):
    name, _, rest = spec.partition("=")
    parts = re.split(r",(?=[A-Za-z_][A-Za-z0-9_.]*=)", rest)  # JSON values may hold commas
    overrides = {}
    for kv in parts[1:]:
        k, _, v = kv.partition("=")
        overrides[k] = json.loads(v)
    return name, parts[0], overrides


def config_path(cat_id):
    """A catalog id (data/catalog/<id>.json), or a repo-relative path to a config.json (tests/fixtures/...)."""
    if cat_id.endswith(".json"):
        return REPO / cat_id
    return REPO / "data" / "catalog" / (cat_id.replace("/", "__") + ".json")


def apply_overrides(cfg, overrides):
    """key=value sets a top-level key; a dotted key (vision_config.num_hidden_layers=2) one of a nested dict."""
    for k, v in overrides.items():
        d = cfg
        *path, last = k.split(".")
        for p in path:
            d = d.setdefault(p, {})
        d[last] = v
    return cfg


# What the hub checkpoints ship beside config.json for their image processors (the fields the converter's
# MmprojModel reads: image_mean, image_std; Gemma3VisionModel: image_seq_length), by model_type. The values are
# those of google/gemma-3-4b-it, Qwen/Qwen2.5-VL-7B-Instruct and mistralai/Mistral-Small-3.1-24B-Instruct-2503.
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
PREPROCESSOR = {
    "gemma3": {"image_processor_type": "Gemma3ImageProcessor", "processor_class": "Gemma3Processor",
               "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "image_seq_length": 256,
               "do_normalize": True, "do_rescale": True, "do_resize": True, "resample": 2,
               "rescale_factor": 0.00392156862745098, "size": {"height": 896, "width": 896}},
    "qwen2_5_vl": {"image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor",
                   "image_mean": _CLIP_MEAN, "image_std": _CLIP_STD, "min_pixels": 3136, "max_pixels": 12845056,
                   "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2},
    "mistral3": {"image_processor_type": "PixtralImageProcessor", "processor_class": "PixtralProcessor",
                 "image_mean": _CLIP_MEAN, "image_std": _CLIP_STD, "patch_size": {"height": 14, "width": 14},
                 "size": {"longest_edge": 1540}, "do_normalize": True, "do_rescale": True, "do_resize": True},
}


def tensor_bytes(rng, t):
    shape = t["shape"]
    n = int(np.prod(shape)) if shape else 1
    dt = t["dtype"]
    name = t["name"]
    if dt == "U8" and name.endswith("_scales"):  # E8M0 exponents around 2^-1 .. 2^-6
        return rng.integers(121, 127, size=n, dtype=np.uint8).tobytes()
    if dt in ("U8", "I8"):
        return rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()
    if dt == "I32":
        return rng.integers(-2**31, 2**31 - 1, size=n, dtype=np.int64).astype(np.int32).tobytes()
    vals = (rng.standard_normal(n, dtype=np.float32) * 0.02)
    if name.endswith("norm.weight") or "layernorm" in name or name.endswith("ln_f.weight") or "norm" in name.split(".")[-2:-1]:
        vals = vals + 1.0
    if dt == "F32":
        return vals.astype(np.float32).tobytes()
    if dt == "F16":
        return vals.astype(np.float16).tobytes()
    if dt == "BF16":
        return (vals.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
    raise ValueError(f"{name}: dtype {dt} not written by this harness")


def add_checkpoint_buffers(derived):
    """Tensors a real checkpoint stores that are PyTorch buffers, not parameters (so not in llmem's list):
    DeepSeek-V3's router score-correction bias, F32 [n_routed_experts], beside every MoE layer's router."""
    if derived["config"].get("model_type") != "deepseek_v3":
        return
    out = []
    for t in derived["tensors"]:
        out.append(t)
        if t["name"].endswith(".mlp.gate.weight"):
            out.append({"name": t["name"][:-len("weight")] + "e_score_correction_bias", "shape": [t["shape"][0]],
                        "dtype": "F32"})
    derived["tensors"] = out


def write_safetensors(path, tensors, seed=0):
    rng = np.random.default_rng(seed)
    header = {}
    blobs = []
    off = 0
    for t in tensors:
        b = tensor_bytes(rng, t)
        header[t["name"]] = {"dtype": ST_DTYPES[t["dtype"]][0], "shape": t["shape"], "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", default=str(REPO / "build/bench/hf_checkpoint_tensors"))
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--llama-src", default=os.environ.get("LLAMA_SRC", "/work/llama-src"))
    ap.add_argument("--outtype", default="auto")
    ap.add_argument("--work", help="run_all.sh's work directory: put each base GGUF there, marked done")
    ap.add_argument("--mmproj", default="", help="also convert the multimodal projector (convert_hf_to_gguf.py "
                    "--mmproj) once per listed outtype (f32,f16,bf16,q8_0): OUT_DIR/gguf/mmproj-NAME-TYPE.gguf")
    ap.add_argument("--no-text", action="store_true", help="convert only the mmproj files")
    ap.add_argument("specs", nargs="+")
    args = ap.parse_args()
    out = Path(args.out_dir)
    stub_dir = Path(tempfile.mkdtemp(prefix="llmem-stub-"))
    (stub_dir / "transformers").mkdir()
    (stub_dir / "transformers" / "__init__.py").write_text(STUB)
    (stub_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    rc = 0
    for spec in args.specs:
        name, cat_id, overrides = parse_spec(spec)
        cfg = apply_overrides(json.loads(config_path(cat_id).read_text()), overrides)
        cfg_file = stub_dir / f"{name}.config.json"
        cfg_file.write_text(json.dumps(cfg))
        derived = json.loads(subprocess.run([args.tool, str(cfg_file)], check=True, capture_output=True,
                                            text=True).stdout)
        add_checkpoint_buffers(derived)
        hf = out / "hf" / name
        hf.mkdir(parents=True, exist_ok=True)
        (hf / "config.json").write_text(json.dumps(derived["config"], indent=1))
        write_safetensors(hf / "model.safetensors", derived["tensors"])
        if args.mmproj and cfg.get("model_type") in PREPROCESSOR:
            (hf / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR[cfg["model_type"]], indent=1))
        if args.work:
            gguf = common.Work(args.work).base(name)
        else:
            (out / "gguf").mkdir(parents=True, exist_ok=True)
            gguf = out / "gguf" / f"{name}-base.gguf"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(stub_dir), str(Path(args.llama_src) / "gguf-py"), args.llama_src,
                                             env.get("PYTHONPATH", "")])
        env["LLAMA_SRC"] = args.llama_src
        conv = [sys.executable, str(HERE / "make_gguf.py"), "_convert", "--vocab-size",
                str(cfg.get("vocab_size") or cfg.get("padded_vocab_size") or cfg.get("text_config", {}).get("vocab_size")),
                "--llama-dir", args.llama_src, "--", str(hf), "--outtype", args.outtype, "--outfile", str(gguf)]
        if not args.no_text:
            p = subprocess.run(conv, capture_output=True, text=True, env=env)
            ok = p.returncode == 0 and gguf.is_file()
            if ok and args.work:
                common.write_sidecar(gguf, {"made_with": "make_checkpoint.py", "catalog_id": cat_id,
                                            "overrides": overrides})
            rc |= 0 if ok else 1
            print(json.dumps({"name": name, "catalog_id": cat_id, "overrides": overrides, "gguf": str(gguf),
                              "ok": ok, "converter_log_tail": (p.stdout + p.stderr)[-3000:]}), flush=True)
        for outtype in [t for t in args.mmproj.split(",") if t]:
            (out / "gguf").mkdir(parents=True, exist_ok=True)
            mm = out / "gguf" / f"mmproj-{name}-{outtype}.gguf"
            mconv = conv[:conv.index("--outtype")] + ["--mmproj", "--outtype", outtype, "--outfile", str(mm)]
            p = subprocess.run(mconv, capture_output=True, text=True, env=env)
            ok = p.returncode == 0 and mm.is_file()
            rc |= 0 if ok else 1
            print(json.dumps({"name": name, "catalog_id": cat_id, "overrides": overrides, "mmproj": outtype,
                              "gguf": str(mm), "ok": ok, "converter_log_tail": (p.stdout + p.stderr)[-3000:]}),
                  flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
