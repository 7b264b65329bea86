#!/usr/bin/env python3
"""Ground truth for llmem's parameter counts: what PyTorch itself counts.

For every config.json given, build the transformers model on the `meta` device (no weights are allocated, so
even DeepSeek-V3 builds in seconds) and record, as one JSON line per model:
  - total_params: sum(p.numel() for p in model.parameters())  (tied parameters counted once)
  - total_params_with_tied: the same over named_parameters(remove_duplicate=False)
  - tied: names that alias an earlier parameter
  - tensors: every parameter's name, shape and dtype
  - the versions of torch and transformers, and the error if the model could not be built

Remote-code models (Qwen-1_8B-Chat's QWenLMHeadModel, LLaMA-MoE) cannot be built here: transformers does not
ship them and nothing can be downloaded. They are reported with an error and checked against published counts.

Usage: python3 count_params.py OUT.jsonl [CONFIG.json...]
With no CONFIG.json, every file of the embedded catalog (data/catalog/*.json, 82 models at this commit) is counted: one command
checks every catalog count, e.g. `python3 bench/gpu/count_params.py bench/data/transformers_params.jsonl`.
Vision-language configs (Gemma3ForConditionalGeneration) build their architectures[0] class, vision tower included;
the gemma3, qwen2_5_vl and mistral3 families are checked on tests/fixtures/*_config.json (pass them explicitly).
"""
import glob
import json
import os
import sys
import traceback

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM


def build(cfg_dict):
    cfg_dict = dict(cfg_dict)
    model_type = cfg_dict.pop("model_type")
    cfg = AutoConfig.for_model(model_type, **cfg_dict)
    archs = cfg_dict.get("architectures") or []
    with torch.device("meta"):
        if archs and hasattr(transformers, archs[0]):
            cls = getattr(transformers, archs[0])
            return cls(cfg), archs[0]
        return AutoModelForCausalLM.from_config(cfg), "AutoModelForCausalLM"


def main():
    out_path = sys.argv[1]
    paths = sys.argv[2:]
    if not paths:
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "catalog")
        paths = sorted(glob.glob(os.path.join(root, "*.json")), key=lambda p: os.path.basename(p).lower())
    with open(out_path, "w") as out:
        for path in paths:
            rec = {"config": path.split("/")[-1], "torch": torch.__version__,
                   "transformers": transformers.__version__}
            try:
                cfg_dict = json.load(open(path))
                model, cls = build(cfg_dict)
                rec["class"] = cls
                rec["total_params"] = sum(p.numel() for p in model.parameters())
                named_all = list(model.named_parameters(remove_duplicate=False))
                rec["total_params_with_tied"] = sum(p.numel() for _, p in named_all)
                seen = {}
                tied = []
                tensors = []
                for name, p in named_all:
                    if id(p) in seen:
                        tied.append({"name": name, "same_as": seen[id(p)]})
                        continue
                    seen[id(p)] = name
                    tensors.append({"name": name, "shape": list(p.shape), "dtype": str(p.dtype)})
                rec["tied"] = tied
                rec["tensors"] = tensors
                rec["buffers"] = [{"name": n, "shape": list(b.shape)} for n, b in model.named_buffers()]
            except Exception as e:  # record and go on: one model must not hide the others
                rec["error"] = f"{type(e).__name__}: {e}"
                rec["traceback"] = traceback.format_exc()[-2000:]
            out.write(json.dumps(rec) + "\n")
            out.flush()
            print(rec["config"], rec.get("total_params"), rec.get("error", ""), flush=True)


if __name__ == "__main__":
    main()
