#!/usr/bin/env python3
"""Quantised checkpoints as stored and as loaded, measured (transformers 5.17, Triton 3.6, one GPU).

For each scenario: build the catalog model cut to a few layers with random bf16 weights, quantise it as the scheme's
transformers quantiser does (FineGrainedFP8Config, Mxfp4Config), save it with save_pretrained, then in a fresh
process load the saved checkpoint with from_pretrained and record
  - stored_bytes: the sum of the tensor bytes in the saved safetensors headers (what `llmem params DIR --json`
    reports as stored_bytes, and what its derived list must equal),
  - loaded_bytes: torch.cuda.memory_allocated() after from_pretrained (what `llmem estimate DIR` reports as
    weight_bytes), and the dtypes the parameters and buffers ended up in.
Then compare with llmem:  llmem params $DIR --json | jq .stored_bytes ;  llmem estimate $DIR --json | jq .weight_bytes
(--mxfp4-kernels yes for the *-kernels scenarios). The checkpoints are written under --work; nothing is downloaded.

    python3 bench/gpu/measure_quantized.py --list
    python3 bench/gpu/measure_quantized.py --out $OUT/quantized.jsonl --work /tmp/quant
    python3 bench/gpu/measure_quantized.py --run-one fp8-qwen2.5-0.5b --work /tmp/quant   # one, in this process

Not measurable on the GPU machine (not installed there): bitsandbytes, auto-gptq/gptqmodel, AutoAWQ; their load
paths in llmem are modelled from source only (docs/memory-model.md).
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CATALOG = os.path.join(HERE, "..", "..", "data", "catalog")

# id -> (catalog model, layers kept, scheme, load options)
SCENARIOS = {
    "fp8-qwen2.5-0.5b": ("Qwen__Qwen2.5-0.5B", 4, "fp8", {}),
    "fp8-deepseek-v3-2layers": ("deepseek-ai__DeepSeek-V3", 2, "fp8", {}),
    "mxfp4-gpt-oss-20b-2layers-dequant": ("openai__gpt-oss-20b", 2, "mxfp4", {"dequantize": True}),
    "mxfp4-gpt-oss-20b-2layers-kernels": ("openai__gpt-oss-20b", 2, "mxfp4", {"dequantize": False}),
}


def header_bytes(directory):
    import struct
    total, dtypes = 0, {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".safetensors"):
            continue
        with open(os.path.join(directory, name), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        for key, t in header.items():
            if key == "__metadata__":
                continue
            size = t["data_offsets"][1] - t["data_offsets"][0]
            total += size
            dtypes[t["dtype"]] = dtypes.get(t["dtype"], 0) + size
    return total, dtypes


def quant_config(scheme, opts):
    import transformers
    if scheme == "fp8":
        return transformers.FineGrainedFP8Config(weight_block_size=[128, 128])
    return transformers.Mxfp4Config(**opts)


def run_one(sid, work):
    import torch
    import transformers
    model_id, layers, scheme, opts = SCENARIOS[sid]
    with open(os.path.join(CATALOG, model_id + ".json")) as f:
        cfg = json.load(f)
    cfg.pop("quantization_config", None)
    cfg["num_hidden_layers"] = layers
    for key in ("layer_types",):
        if key in cfg:
            cfg[key] = cfg[key][:layers]
    directory = os.path.join(work, sid)
    src = os.path.join(work, sid + "-bf16")
    config = transformers.AutoConfig.for_model(**cfg)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(src)
    del model
    # quantise as transformers does on load, then save the quantised checkpoint
    q = transformers.AutoModelForCausalLM.from_pretrained(src, quantization_config=quant_config(scheme, {}), device_map="cuda")
    q.save_pretrained(directory)
    del q
    torch.cuda.empty_cache()
    stored, stored_dtypes = header_bytes(directory)
    kwargs = {} if scheme == "fp8" else {"quantization_config": quant_config(scheme, opts)}
    before = torch.cuda.memory_allocated()
    m = transformers.AutoModelForCausalLM.from_pretrained(directory, device_map="cuda", **kwargs)
    loaded = torch.cuda.memory_allocated() - before
    dtypes = {}
    for _, t in list(m.named_parameters()) + list(m.named_buffers()):
        dtypes[str(t.dtype)] = dtypes.get(str(t.dtype), 0) + t.numel() * t.element_size()
    return {"id": sid, "model": model_id, "layers": layers, "scheme": scheme, "load_options": opts, "dir": directory,
            "stored_bytes": stored, "stored_dtypes": stored_dtypes, "loaded_bytes": loaded, "loaded_dtypes": dtypes,
            "gpu": torch.cuda.get_device_name(), "capability": list(torch.cuda.get_device_capability()),
            "transformers": transformers.__version__, "torch": torch.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--work", default="/tmp/llmem-quant")
    ap.add_argument("--run-one")
    a = ap.parse_args()
    if a.list:
        for sid, (model, layers, scheme, opts) in SCENARIOS.items():
            print(f"{sid}: {model}, {layers} layers, {scheme} {opts}")
        return
    if a.run_one:
        print(json.dumps(run_one(a.run_one, a.work)))
        return
    if not a.out:
        ap.error("--out is required unless --list or --run-one")
    with open(a.out, "a") as out:
        for sid in SCENARIOS:  # one scenario per fresh process
            p = subprocess.run([sys.executable, __file__, "--run-one", sid, "--work", a.work], capture_output=True, text=True)
            line = p.stdout.strip().splitlines()[-1] if p.returncode == 0 and p.stdout.strip() else json.dumps(
                {"id": sid, "error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"})
            out.write(line + "\n")
            out.flush()
            print(line)


if __name__ == "__main__":
    main()
