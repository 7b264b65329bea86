#!/usr/bin/python3
"""Model files for the web page's tests, written as sparse files (headers only on disk; the tensor data is a hole).

  python3 tests/web/make_fixtures.py OUTDIR

OUTDIR/
  gguf/TinyLlama-1.1B-Q4_K_M.gguf   the header llama.cpp's converter + llama-quantize wrote for TinyLlama-1.1B
                                    (recorded in bench/data/llamacpp_gguf_tensors.jsonl, rebuilt by
                                    bench/peers/rebuild_gguf_headers.py), 668 MB
  gguf/Phi-3-mini-4k-F32.gguf       the same for Phi-3-mini in F32: a 15 GB file, for "a big file answers as fast"
  tinyllama/config.json             TinyLlama-1.1B-Chat's config (data/catalog)
  tinyllama/model.safetensors       its 201 tensors in BF16, names and shapes as transformers saves them, 2.2 GB
  sharded/                          the same checkpoint in two shards with model.safetensors.index.json
  bad/corrupt.gguf                  GGUF magic and version, then a tensor count no file can hold
  bad/not_config.json               valid JSON that is no model config
"""
import json
import os
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))


def llama_tensors(cfg):
    """(name, shape) of a LlamaForCausalLM, in the order transformers' save_pretrained writes them."""
    hidden, inter, layers = cfg['hidden_size'], cfg['intermediate_size'], cfg['num_hidden_layers']
    heads, kv_heads, vocab = cfg['num_attention_heads'], cfg['num_key_value_heads'], cfg['vocab_size']
    head_dim = hidden // heads
    out = [('model.embed_tokens.weight', [vocab, hidden])]
    for i in range(layers):
        p = f'model.layers.{i}.'
        out += [(p + 'input_layernorm.weight', [hidden]),
                (p + 'self_attn.q_proj.weight', [heads * head_dim, hidden]),
                (p + 'self_attn.k_proj.weight', [kv_heads * head_dim, hidden]),
                (p + 'self_attn.v_proj.weight', [kv_heads * head_dim, hidden]),
                (p + 'self_attn.o_proj.weight', [hidden, heads * head_dim]),
                (p + 'post_attention_layernorm.weight', [hidden]),
                (p + 'mlp.gate_proj.weight', [inter, hidden]),
                (p + 'mlp.up_proj.weight', [inter, hidden]),
                (p + 'mlp.down_proj.weight', [hidden, inter])]
    out.append(('model.norm.weight', [hidden]))
    if not cfg.get('tie_word_embeddings', False):
        out.append(('lm_head.weight', [vocab, hidden]))
    return out


def write_safetensors(path, tensors, dtype='BF16', itemsize=2):
    header, offset = {'__metadata__': {'format': 'pt'}}, 0
    for name, shape in tensors:
        n = itemsize
        for d in shape:
            n *= d
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(',', ':')).encode()
    blob += b' ' * (-len(blob) % 8)  # safetensors pads the header to 8 bytes
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(blob)))
        f.write(blob)
        f.truncate(8 + len(blob) + offset)  # the tensor data: a hole
    return offset


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'build-web-test', 'fixtures')
    for sub in ('gguf', 'tinyllama', 'sharded', 'bad'):
        os.makedirs(os.path.join(out, sub), exist_ok=True)

    for only in ('TinyLlama-1.1B-Q4_K_M', 'Phi-3-mini-4k-F32'):
        subprocess.run([sys.executable, os.path.join(ROOT, 'bench', 'peers', 'rebuild_gguf_headers.py'),
                        '--out', os.path.join(out, 'gguf'), '--only', only, '--llmem', ''],
                       check=True, stdout=subprocess.DEVNULL)

    config_src = os.path.join(ROOT, 'data', 'catalog', 'TinyLlama__TinyLlama-1.1B-Chat-v1.0.json')
    cfg = json.load(open(config_src))
    tensors = llama_tensors(cfg)
    shutil.copy(config_src, os.path.join(out, 'tinyllama', 'config.json'))
    write_safetensors(os.path.join(out, 'tinyllama', 'model.safetensors'), tensors)

    shutil.copy(config_src, os.path.join(out, 'sharded', 'config.json'))
    half = len(tensors) // 2
    weight_map, total = {}, 0
    for k, part in enumerate((tensors[:half], tensors[half:]), start=1):
        name = f'model-0000{k}-of-00002.safetensors'
        total += write_safetensors(os.path.join(out, 'sharded', name), part)
        weight_map.update({t: name for t, _ in part})
    with open(os.path.join(out, 'sharded', 'model.safetensors.index.json'), 'w') as f:
        json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map}, f, indent=2)

    with open(os.path.join(out, 'bad', 'corrupt.gguf'), 'wb') as f:
        f.write(b'GGUF' + struct.pack('<I', 3) + struct.pack('<Q', 2**62) + struct.pack('<Q', 1) + bytes(range(64)))
    with open(os.path.join(out, 'bad', 'not_config.json'), 'w') as f:
        json.dump({'name': 'a shopping list', 'items': ['bread', 'milk']}, f)
    print(out)


if __name__ == '__main__':
    main()
