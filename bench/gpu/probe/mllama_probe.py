"""Issue 15 probe (mllama): what transformers 5.17 builds from the catalog's Llama-3.2-11B-Vision config.

Writes to $OUT: mllama_params.json (every named parameter of MllamaForConditionalGeneration built on the meta
device from data/catalog/meta-llama__Llama-3.2-11B-Vision-Instruct.json: name, shape, numel; the total; buffers),
mllama_saved_keys.json (the tensor names and shapes save_pretrained writes, from a 2-text-layer / 2-vision-layer copy
of the same config built on the CPU), and the two transformers source files as text."""
import copy, json, os, shutil, sys
import torch, transformers
from transformers import MllamaConfig, MllamaForConditionalGeneration

out = os.environ["OUT"]
cfg_path = "data/catalog/meta-llama__Llama-3.2-11B-Vision-Instruct.json"
raw = json.load(open(cfg_path))
cfg = MllamaConfig(**{k: v for k, v in raw.items() if k not in ("architectures",)})
with torch.device("meta"):
    model = MllamaForConditionalGeneration(cfg)
params = [{"name": n, "shape": list(p.shape), "numel": p.numel(), "dtype": str(p.dtype)}
          for n, p in model.named_parameters(remove_duplicate=False)]
uniq = sum(p.numel() for p in model.parameters())
buffers = [{"name": n, "shape": list(b.shape), "dtype": str(b.dtype)} for n, b in model.named_buffers()]
json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "total_unique": uniq,
           "total_listed": sum(p["numel"] for p in params), "params": params, "buffers": buffers,
           "text_config_effective": cfg.text_config.to_dict(), "vision_config_effective": cfg.vision_config.to_dict()},
          open(os.path.join(out, "mllama_params.json"), "w"), indent=0)
print("total params", uniq, file=sys.stderr)

small = copy.deepcopy(raw)
small["text_config"]["num_hidden_layers"] = 5
small["text_config"]["cross_attention_layers"] = [3]
small["vision_config"]["num_hidden_layers"] = 2
small["vision_config"]["num_global_layers"] = 1
small["vision_config"]["intermediate_layers_indices"] = [0, 1]
small["vision_config"]["vision_output_dim"] = 1280 * 3
scfg = MllamaConfig(**{k: v for k, v in small.items() if k not in ("architectures",)})
torch.manual_seed(0)
m = MllamaForConditionalGeneration(scfg).to(torch.bfloat16)
d = "/tmp/mllama_small"
shutil.rmtree(d, ignore_errors=True)
m.save_pretrained(d)
from safetensors import safe_open
keys = {}
for f in sorted(os.listdir(d)):
    if f.endswith(".safetensors"):
        with safe_open(os.path.join(d, f), "pt") as s:
            for k in s.keys():
                keys[k] = list(s.get_slice(k).get_shape())
json.dump({"files": sorted(os.listdir(d)), "keys": keys, "config": json.load(open(os.path.join(d, "config.json")))},
          open(os.path.join(out, "mllama_saved_keys.json"), "w"), indent=0)
src = os.path.dirname(transformers.models.mllama.__file__)
for f in ("modeling_mllama.py", "configuration_mllama.py"):
    shutil.copy(os.path.join(src, f), os.path.join(out, f + ".txt"))
print("ok", file=sys.stderr)
