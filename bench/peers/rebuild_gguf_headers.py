#!/usr/bin/python3
"""Recreate the GGUF files dumped in bench/data/llamacpp_gguf_tensors.jsonl as sparse files.

Each rebuilt file has the dumped metadata (scalar KVs as recorded; arrays recorded as
{"array_of": TYPE, "len": N} re-created with N dummy elements: strings "t<i>", numbers 0),
the same tensor infos (names, ggml types, shapes, offsets), the same alignment and the
same tensor_data_offset (the dummy token strings are padded so the header ends where the
original one did), and is extended to file_bytes with truncate (sparse: no tensor data).

Types of scalar KVs are not in the dump; they are written the way llama.cpp's converter
writes them: int -> UINT32 (INT32 if negative, UINT64 if >= 2**32), float -> FLOAT32,
bool -> BOOL, str -> STRING.

Usage: /usr/bin/python3 bench/peers/rebuild_gguf_headers.py [--out /tmp/peer-ggufs] [--verify]
--verify re-reads every rebuilt file with a small independent header reader (tensor names, types,
shapes, offsets, alignment, tensor_data_offset, every KV) and with `llmem params FILE --json`
(tensor_data_bytes, per-type bytes, n_elements); add --gguf-py to also check with gguf-py's
GGUFReader from /work/llama-src/gguf-py (names/types/shapes/n_bytes/offsets; slow, ~1 min a file).
"""
import argparse, json, os, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))
DUMP = os.path.join(HERE, '..', 'data', 'llamacpp_gguf_tensors.jsonl')
GGUF_PY = '/work/llama-src/gguf-py'

# GGUF value types
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
VT_BY_NAME = {'UINT8': UINT8, 'INT8': INT8, 'UINT16': UINT16, 'INT16': INT16, 'UINT32': UINT32,
              'INT32': INT32, 'FLOAT32': FLOAT32, 'BOOL': BOOL, 'STRING': STRING, 'UINT64': UINT64,
              'INT64': INT64, 'FLOAT64': FLOAT64}
PACK = {UINT8: '<B', INT8: '<b', UINT16: '<H', INT16: '<h', UINT32: '<I', INT32: '<i',
        FLOAT32: '<f', BOOL: '<?', UINT64: '<Q', INT64: '<q', FLOAT64: '<d'}

# ggml_type ids (ggml.h at llama.cpp 80fb11ac)
GGML_TYPES = {'F32': 0, 'F16': 1, 'Q4_0': 2, 'Q4_1': 3, 'Q5_0': 6, 'Q5_1': 7, 'Q8_0': 8, 'Q8_1': 9,
              'Q2_K': 10, 'Q3_K': 11, 'Q4_K': 12, 'Q5_K': 13, 'Q6_K': 14, 'Q8_K': 15,
              'IQ2_XXS': 16, 'IQ2_XS': 17, 'IQ3_XXS': 18, 'IQ1_S': 19, 'IQ4_NL': 20, 'IQ3_S': 21,
              'IQ2_S': 22, 'IQ4_XS': 23, 'I8': 24, 'I16': 25, 'I32': 26, 'I64': 27, 'F64': 28,
              'IQ1_M': 29, 'BF16': 30, 'TQ1_0': 34, 'TQ2_0': 35, 'MXFP4': 39}


def gstr(s):
    b = s.encode('utf-8') if isinstance(s, str) else s
    return struct.pack('<Q', len(b)) + b


def scalar_type(v):
    if isinstance(v, bool):
        return BOOL
    if isinstance(v, int):
        if v < 0:
            return INT32 if v >= -2**31 else INT64
        return UINT32 if v < 2**32 else UINT64
    if isinstance(v, float):
        return FLOAT32
    if isinstance(v, str):
        return STRING
    raise TypeError(f'unsupported scalar {v!r}')


def enc_value(vt, v):
    if vt == STRING:
        return gstr(v)
    return struct.pack(PACK[vt], v)


def array_spec(v):
    """Recorded array: {"array_of": TYPE, "len": N} (or a short literal list)."""
    if isinstance(v, dict):
        t = v.get('array_of') or v.get('type')
        n = v.get('len', v.get('n'))
        return VT_BY_NAME[str(t).upper()], int(n), None
    if isinstance(v, list):
        if not v:
            return INT32, 0, []
        return scalar_type(v[0]), len(v), v
    raise TypeError(v)


# token index -> name, for --newline-token (the SentencePiece layout of Llama/Phi-3 vocabularies)
LOADABLE_NAMES = {0: '<unk>', 1: '<s>', 2: '</s>', 13: '<0x0A>', 32000: '<|endoftext|>'}


def build_header(d, token_pad, newline_token=False):
    """Header bytes up to (not including) the alignment padding. token_pad: extra bytes added
    to the dummy string arrays so the header ends where the original did. newline_token: a few dummy tokens of
    tokenizer.ggml.tokens get the names llama.cpp's vocabulary loader looks up (LOADABLE_NAMES), so that
    llama.cpp itself loads the file (llama-vocab.cpp: the SPM newline "<0x0A>", Phi-3's special tokens; a
    dummy vocabulary without them throws _Map_base::at)."""
    md = d['metadata']
    out = [b'GGUF', struct.pack('<I', d['gguf_version']),
           struct.pack('<Q', len(d['tensors'])), struct.pack('<Q', len(md))]
    pad_left = token_pad
    for k, v in md.items():
        out.append(gstr(k))
        if isinstance(v, (dict, list)):
            et, n, lit = array_spec(v)
            out.append(struct.pack('<I', ARRAY) + struct.pack('<I', et) + struct.pack('<Q', n))
            if lit is not None:
                out.extend(enc_value(et, x) for x in lit)
            elif et == STRING:
                # dummy tokens "t0".."tN-1"; the padding is spread over them (<= 64 extra bytes each)
                parts = []
                for i in range(n):
                    s = f't{i}'
                    named = newline_token and k == 'tokenizer.ggml.tokens' and i in LOADABLE_NAMES
                    if named:
                        s = LOADABLE_NAMES[i]
                    elif pad_left:
                        extra = min(pad_left, 64)
                        s += 'x' * extra
                        pad_left -= extra
                    parts.append(gstr(s))
                out.append(b''.join(parts))
            else:
                out.append(b'\0' * (struct.calcsize(PACK[et]) * n))
        else:
            vt = scalar_type(v)
            out.append(struct.pack('<I', vt) + enc_value(vt, v))
    if pad_left:
        raise ValueError('no string array to carry the padding')
    for name, tname, shape, nbytes, off in d['tensors']:
        out.append(gstr(name) + struct.pack('<I', len(shape)) +
                   b''.join(struct.pack('<Q', x) for x in shape) +
                   struct.pack('<I', GGML_TYPES[tname]) + struct.pack('<Q', off))
    return b''.join(out)


def rebuild(d, outdir, newline_token=False):
    align = d['alignment']
    target = d['tensor_data_offset']
    hdr = build_header(d, 0, newline_token)
    if len(hdr) > target:
        raise ValueError(f"{d['file']}: dummy header {len(hdr)} B is longer than the original "
                         f"tensor_data_offset {target}")
    # header end must land in (target - align, target]; pad the dummy strings to end exactly at target
    hdr = build_header(d, target - len(hdr), newline_token)
    assert len(hdr) == target, (len(hdr), target)
    if 'general.alignment' in d['metadata']:
        assert d['metadata']['general.alignment'] == align
    else:
        assert align == 32, 'non-default alignment without general.alignment in the metadata'
    path = os.path.join(outdir, d['file'])
    with open(path, 'wb') as f:
        f.write(hdr)
        f.truncate(d['file_bytes'])
    return path


def read_gguf_header(path):
    """A small independent GGUF header reader (used for --verify): returns
    (version, kvs {key: scalar or ('array', type, n)}, tensors [(name, type_id, shape, offset)],
    data_offset, alignment)."""
    with open(path, 'rb') as f:
        buf = f.read(64 << 20)
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take('<Q')
        s = buf[pos:pos + n].decode('utf-8')
        pos += n
        return s

    assert buf[:4] == b'GGUF'
    pos = 4
    version = take('<I')
    n_t, n_kv = take('<Q'), take('<Q')
    kvs = {}
    for _ in range(n_kv):
        k = string()
        vt = take('<I')
        if vt == ARRAY:
            et, n = take('<I'), take('<Q')
            if et == STRING:
                for _ in range(n):
                    pos += 8 + struct.unpack_from('<Q', buf, pos)[0]
            else:
                pos += struct.calcsize(PACK[et]) * n
            kvs[k] = ('array', et, n)
        elif vt == STRING:
            kvs[k] = string()
        else:
            kvs[k] = take(PACK[vt])
    tensors = []
    for _ in range(n_t):
        name = string()
        nd = take('<I')
        shape = [take('<Q') for _ in range(nd)]
        tensors.append((name, take('<I'), shape, take('<Q')))
    align = kvs.get('general.alignment', 32)
    data_offset = (pos + align - 1) // align * align
    return version, kvs, tensors, data_offset, align


def verify(d, path, use_gguf_py=False, llmem=None):
    """Check a rebuilt file against the dump: own header reader (always), llmem params --json
    (per-type bytes, total params) and optionally gguf-py's GGUFReader (slow for 256k-token vocabularies)."""
    errs = []
    if os.path.getsize(path) != d['file_bytes']:
        errs.append('file size')
    version, kvs, tensors, data_offset, align = read_gguf_header(path)
    if version != d['gguf_version'] or align != d['alignment'] or data_offset != d['tensor_data_offset']:
        errs.append(f'version/alignment/data_offset {version}/{align}/{data_offset}')
    ids = {v: k for k, v in GGML_TYPES.items()}
    got = [(n, ids[t], sh, off) for n, t, sh, off in tensors]
    want = [(n, ty, list(sh), off) for n, ty, sh, nb, off in d['tensors']]
    if got != want:
        errs.append('tensor list differs (own reader)')
    for k, v in d['metadata'].items():
        g = kvs.get(k)
        if isinstance(v, dict):
            ok = isinstance(g, tuple) and g[2] == v['len'] and g[1] == VT_BY_NAME[v['array_of']]
        elif isinstance(v, float):
            ok = isinstance(g, float) and abs(g - v) <= 1e-6 * max(1.0, abs(v))
        else:
            ok = g == v
        if not ok:
            errs.append(f'KV {k}: {g!r} != {v!r}')
    if llmem:
        import subprocess
        p = json.loads(subprocess.run([llmem, 'params', path, '--json'], check=True,
                                      capture_output=True, text=True).stdout)
        if p['total_bytes'] != d['tensor_data_bytes']:
            errs.append(f"llmem total_bytes {p['total_bytes']} != tensor_data_bytes {d['tensor_data_bytes']}")
        if p['total_params'] != d['n_elements']:
            errs.append(f"llmem total_params {p['total_params']} != n_elements {d['n_elements']}")
        tb = {x['dtype']: x['bytes'] for x in p['dtypes']}
        if tb != d['type_bytes']:
            errs.append(f'llmem per-type bytes {tb} != {d["type_bytes"]}')
    if use_gguf_py:
        sys.path.insert(0, GGUF_PY)
        from gguf import GGUFReader
        r = GGUFReader(path)
        if r.alignment != d['alignment'] or r.data_offset != d['tensor_data_offset']:
            errs.append('gguf-py alignment/data_offset')
        got = [(t.name, t.tensor_type.name, [int(x) for x in t.shape], int(t.n_bytes),
                int(t.data_offset) - r.data_offset) for t in r.tensors]
        want = [(n, ty, list(sh), nb, off) for n, ty, sh, nb, off in d['tensors']]
        if got != want:
            errs.append('tensor list differs (gguf-py)')
        if sum(t[3] for t in got) != d['tensor_data_bytes']:
            errs.append('gguf-py tensor_data_bytes')
    return errs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--dump', default=DUMP)
    ap.add_argument('--out', default='/tmp/peer-ggufs')
    ap.add_argument('--verify', action='store_true')
    ap.add_argument('--only', help='substring of the file name')
    ap.add_argument('--newline-token', action='store_true',
                    help='give the dummy tokens llama.cpp looks up their names (LOADABLE_NAMES), so that llama.cpp '
                         'loads SPM vocabularies; the stored node-llama-cpp data was made without it')
    ap.add_argument('--gguf-py', action='store_true', help='--verify also with gguf-py GGUFReader (slow)')
    ap.add_argument('--llmem', default='/work/main/build/llmem', help="llmem binary for --verify ('' to skip)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    nbad = 0
    for line in open(a.dump):
        d = json.loads(line)
        if a.only and a.only not in d['file']:
            continue
        path = rebuild(d, a.out, a.newline_token)
        msg = 'written'
        if a.verify:
            errs = verify(d, path, a.gguf_py, a.llmem if a.llmem and os.path.exists(a.llmem) else None)
            msg = 'OK' if not errs else 'MISMATCH ' + '; '.join(errs)
            nbad += bool(errs)
        print(f"{d['file']:36s} {d['file_bytes']:>12d} B  {len(d['tensors']):4d} tensors  {msg}")
    if nbad:
        print(f'{nbad} file(s) differ from the dump', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
