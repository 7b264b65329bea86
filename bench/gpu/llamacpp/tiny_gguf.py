#!/usr/bin/env python3
"""A tiny llama GGUF with random F16 weights, written with gguf-py alone (no torch): the smoke-test model for the
harness's quantise / dump / measure stages on a machine without a GPU or transformers.

  python3 tiny_gguf.py OUT.gguf [n_embd=256 n_layer=2 n_head=4 n_head_kv=2 n_ff=512 n_vocab=512 n_ctx=2048]

Row lengths are multiples of 256 so every K-quant applies without fallbacks.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from vocab import write_vocab  # noqa: E402

DEFAULTS = dict(n_embd=256, n_layer=2, n_head=4, n_head_kv=2, n_ff=512, n_vocab=512, n_ctx=2048, seed=0)


def write_tiny(path, **kw):
    gguf = common.gguf_import()
    p = dict(DEFAULTS)
    p.update({k: int(v) for k, v in kw.items() if k in DEFAULTS})
    rng = np.random.default_rng(p["seed"])
    e, L, h, hkv, ff, V = p["n_embd"], p["n_layer"], p["n_head"], p["n_head_kv"], p["n_ff"], p["n_vocab"]
    hd = e // h

    def w(rows, cols):  # numpy shape (ne1, ne0)
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    def norm(n):
        return np.ones((n,), dtype=np.float32)

    tmp = Path(str(path) + ".tmp")
    wr = gguf.GGUFWriter(str(tmp), "llama")
    wr.add_name("tiny-llama")
    wr.add_context_length(p["n_ctx"])
    wr.add_embedding_length(e)
    wr.add_block_count(L)
    wr.add_feed_forward_length(ff)
    wr.add_head_count(h)
    wr.add_head_count_kv(hkv)
    wr.add_rope_dimension_count(hd)
    wr.add_rope_freq_base(10000.0)
    wr.add_layer_norm_rms_eps(1e-5)
    wr.add_vocab_size(V)
    wr.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    wr.add_quantization_version(gguf.GGML_QUANT_VERSION)
    write_vocab(wr, V)
    wr.add_tensor("token_embd.weight", w(V, e))
    for i in range(L):
        wr.add_tensor(f"blk.{i}.attn_norm.weight", norm(e))
        wr.add_tensor(f"blk.{i}.attn_q.weight", w(e, e))
        wr.add_tensor(f"blk.{i}.attn_k.weight", w(hkv * hd, e))
        wr.add_tensor(f"blk.{i}.attn_v.weight", w(hkv * hd, e))
        wr.add_tensor(f"blk.{i}.attn_output.weight", w(e, e))
        wr.add_tensor(f"blk.{i}.ffn_norm.weight", norm(e))
        wr.add_tensor(f"blk.{i}.ffn_gate.weight", w(ff, e))
        wr.add_tensor(f"blk.{i}.ffn_up.weight", w(ff, e))
        wr.add_tensor(f"blk.{i}.ffn_down.weight", w(e, ff))
    wr.add_tensor("output_norm.weight", norm(e))
    wr.add_tensor("output.weight", w(V, e))
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    tmp.replace(path)
    return p


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    kw = dict(a.split("=", 1) for a in argv[1:])
    print(write_tiny(argv[0], **kw))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
