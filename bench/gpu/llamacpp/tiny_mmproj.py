#!/usr/bin/env python3
"""A Gemma 3 mmproj GGUF written with gguf-py alone (no torch), for CPU checks of the clip loader and of llmem's
replay of its compute buffer (bench/peers/mmproj_measure.cpp --cpu) where the converter cannot run.

The layout restates what convert_hf_to_gguf.py --mmproj writes for Gemma3ForConditionalGeneration at 80fb11ac
(conversion/gemma.py Gemma3VisionModel, conversion/base.py MmprojModel and ModelBase.prepare_tensors): the keys of
MmprojModel.set_gguf_parameters and Gemma3VisionModel.set_gguf_parameters, and the tensor types: 1-D tensors F32,
".embeddings." (patch and position embeddings) F32, the input projection F16, other matrices the outtype (Q8_0
falls back to F16 where the row is not whole 32-element blocks). Tensor data is zeros. The real converter's output
is checked on the GPU machine (bench/gpu/runs/llama_mmproj1.sh).

  python3 tiny_mmproj.py CONFIG.json OUT.gguf [--outtype f16|f32|bf16|q8_0] [--layers N]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("LLAMA_SRC", "/work/llama-src"), "gguf-py"))
import numpy as np  # noqa: E402
import gguf  # noqa: E402

FTYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
          "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
QT = gguf.GGMLQuantizationType
OUT_QT = {"f32": QT.F32, "f16": QT.F16, "bf16": QT.BF16, "q8_0": QT.Q8_0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--outtype", default="f16", choices=sorted(FTYPES))
    ap.add_argument("--layers", type=int, default=0, help="vision layers (0: the config's)")
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    v = cfg["vision_config"]
    n_layer = a.layers or v["num_hidden_layers"]
    n_embd, n_ff, patch, image = v["hidden_size"], v["intermediate_size"], v["patch_size"], v["image_size"]
    n_text = cfg.get("text_config", {}).get("hidden_size", cfg.get("hidden_size"))
    w = gguf.GGUFWriter(a.out, "clip")
    w.add_type(gguf.GGUFType.MMPROJ)
    w.add_file_type(FTYPES[a.outtype])
    w.add_clip_has_vision_encoder(True)
    w.add_vision_projection_dim(n_text)
    w.add_vision_image_size(image)
    w.add_vision_patch_size(patch)
    w.add_vision_embedding_length(n_embd)
    w.add_vision_feed_forward_length(n_ff)
    w.add_vision_block_count(n_layer)
    w.add_vision_head_count(v["num_attention_heads"])
    w.add_vision_image_mean([0.5, 0.5, 0.5])
    w.add_vision_image_std([0.5, 0.5, 0.5])
    w.add_clip_projector_type(gguf.VisionProjectorType.GEMMA3)
    w.add_vision_attention_layernorm_eps(v.get("layer_norm_eps", 1e-6))
    w.add_vision_use_gelu(True)
    # Gemma3VisionModel: the pool's factor, written when not 4 (image_seq_length: config.json's mm_tokens_per_image)
    factor = (image // patch) // int(cfg.get("mm_tokens_per_image", 256) ** 0.5)
    if factor > 0 and factor != 4:
        w.add_vision_projector_scale_factor(factor)

    def t(name, shape_torch, qtype):
        ne0 = shape_torch[-1]
        if qtype == QT.Q8_0 and ne0 % 32:
            qtype = QT.F16
        if qtype in (QT.F32,):
            w.add_tensor(name, np.zeros(shape_torch, np.float32), raw_dtype=qtype)
        elif qtype in (QT.F16,):
            w.add_tensor(name, np.zeros(shape_torch, np.float16), raw_dtype=qtype)
        else:
            nbytes = gguf.quant_shape_to_byte_shape(tuple(shape_torch), qtype)
            w.add_tensor(name, np.zeros(nbytes, np.uint8), raw_dtype=qtype)

    out = OUT_QT[a.outtype]
    t("v.patch_embd.weight", [n_embd, 3, patch, patch], QT.F32)
    t("v.patch_embd.bias", [n_embd], QT.F32)
    t("v.position_embd.weight", [(image // patch) ** 2, n_embd], QT.F32)
    for il in range(n_layer):
        for n in ("ln1", "ln2"):
            t(f"v.blk.{il}.{n}.weight", [n_embd], QT.F32)
            t(f"v.blk.{il}.{n}.bias", [n_embd], QT.F32)
        for n in ("attn_q", "attn_k", "attn_v", "attn_out"):
            t(f"v.blk.{il}.{n}.weight", [n_embd, n_embd], out)
            t(f"v.blk.{il}.{n}.bias", [n_embd], QT.F32)
        t(f"v.blk.{il}.ffn_up.weight", [n_ff, n_embd], out)
        t(f"v.blk.{il}.ffn_up.bias", [n_ff], QT.F32)
        t(f"v.blk.{il}.ffn_down.weight", [n_embd, n_ff], out)
        t(f"v.blk.{il}.ffn_down.bias", [n_embd], QT.F32)
    t("v.post_ln.weight", [n_embd], QT.F32)
    t("v.post_ln.bias", [n_embd], QT.F32)
    t("mm.input_projection.weight", [n_embd, n_text], QT.F16)
    t("mm.soft_emb_norm.weight", [n_embd], QT.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
