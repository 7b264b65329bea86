#!/usr/bin/env python3
"""One JSON line per GGUF file: the ground truth for predicted quant mixes. The header is read by a small struct
parser (FastHeader; GGUFReader takes ~40 s on a 256k-token vocabulary), or with --reader gguf-py by gguf-py's
GGUFReader; both give the same JSON. Tensor sizes use gguf-py's GGML_QUANT_SIZES.

  python3 dump_gguf.py FILE.gguf... [--model NAME] [--scheme S] [--out OUT.jsonl]
  python3 dump_gguf.py --work DIR --out OUT.jsonl [--models SPECS]   every finished GGUF in the work dir not yet
                                                                    in OUT (or the work dir's own record)

Fields: model, scheme (from the options or the file name NAME-SCHEME.gguf; "base" is the converter's output),
file, file_bytes, gguf_version, alignment, tensor_count, kv_count, tensor_data_offset (file offset of the tensor
data section), tensor_data_bytes (sum of the tensors' sizes), tensor_region_bytes (file_bytes - data offset,
i.e. with the alignment padding), n_elements, type_counts / type_bytes / type_elements (per ggml type),
metadata (every key: scalars as values, arrays of at most 64 items as lists, longer arrays as
{"array_of": TYPE, "len": N} -- the tokenizer arrays), and tensors in file order as
[name, ggml type name, [ne0, ne1, ...], n_bytes, offset] with offset relative to the tensor data section (as
the GGUF tensor info stores it).
"""
import argparse
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

MAX_ARRAY = 64


def _decode(b):
    try:
        return bytes(b).decode("utf-8")
    except UnicodeDecodeError:
        return bytes(b).decode("utf-8", errors="replace")


def field_value(field, gguf):
    """A GGUFReader field as JSON (the reference reader; --reader gguf-py)."""
    VT = gguf.GGUFValueType
    types = list(field.types)
    if not types:
        return None
    if types[0] == VT.ARRAY:
        n = len(field.data)
        sub = types[-1]
        if n > MAX_ARRAY:
            return {"array_of": sub.name, "len": n}
        if sub == VT.STRING:
            return [_decode(field.parts[i]) for i in field.data]
        return [v for i in field.data for v in field.parts[i].tolist()]
    if types[0] == VT.STRING:
        return _decode(field.parts[-1])
    v = field.parts[-1].tolist()
    return v[0] if isinstance(v, list) and len(v) == 1 else v


# GGUF value types: fixed sizes and struct codes (little-endian files)
_FIXED = {0: (1, "B"), 1: (1, "b"), 2: (2, "H"), 3: (2, "h"), 4: (4, "I"), 5: (4, "i"), 6: (4, "f"), 7: (1, "?"),
          10: (8, "Q"), 11: (8, "q"), 12: (8, "d")}
_VT_NAMES = {0: "UINT8", 1: "INT8", 2: "UINT16", 3: "INT16", 4: "UINT32", 5: "INT32", 6: "FLOAT32", 7: "BOOL",
             8: "STRING", 9: "ARRAY", 10: "UINT64", 11: "INT64", 12: "FLOAT64"}


class FastHeader:
    """The GGUF header (key/values and tensor infos) parsed with struct over an mmap. GGUFReader builds a numpy
    array per token string, which takes tens of seconds for a 256k-token vocabulary; this skips long arrays.
    Gives the same JSON as the GGUFReader path (checked by the self-test)."""

    def __init__(self, path):
        import mmap
        import struct
        self.struct = struct
        with open(path, "rb") as f:
            self.mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if self.mm[:4] != b"GGUF":
            raise ValueError("not a GGUF file (magic)")
        self.pos = 4
        self.version = self.u("I")
        if self.version < 2:
            raise ValueError(f"GGUF version {self.version} not supported")
        self.tensor_count = self.u("Q")
        self.kv_count = self.u("Q")
        self.meta = {}
        for _ in range(self.kv_count):
            key = self.string()
            vt = self.u("I")
            self.meta[key] = self.value(vt)
        self.tensor_infos = []
        for _ in range(self.tensor_count):
            name = self.string()
            nd = self.u("I")
            dims = [self.u("Q") for _ in range(nd)]
            ttype = self.u("I")
            off = self.u("Q")
            self.tensor_infos.append((name, dims, ttype, off))
        self.alignment = int(self.meta.get("general.alignment", 32))
        pad = self.pos % self.alignment
        self.data_offset = self.pos + (self.alignment - pad if pad else 0)

    def close(self):
        self.mm.close()

    def u(self, code):
        v = self.struct.unpack_from("<" + code, self.mm, self.pos)[0]
        self.pos += self.struct.calcsize(code)
        return v

    def string(self, decode=True):
        n = self.u("Q")
        b = self.mm[self.pos:self.pos + n]
        self.pos += n
        return _decode(b) if decode else None

    def skip_strings(self, count):
        unpack, mm, pos = self.struct.unpack_from, self.mm, self.pos
        for _ in range(count):
            pos += 8 + unpack("<Q", mm, pos)[0]
        self.pos = pos

    def value(self, vt):
        if vt in _FIXED:
            return self.u(_FIXED[vt][1])
        if vt == 8:
            return self.string()
        if vt == 9:
            et = self.u("I")
            n = self.u("Q")
            if n > MAX_ARRAY:
                if et in _FIXED:
                    self.pos += n * _FIXED[et][0]
                elif et == 8:
                    self.skip_strings(n)
                else:
                    for _ in range(n):
                        self.value(et)
                return {"array_of": _VT_NAMES.get(et, str(et)), "len": n}
            return [self.value(et) for _ in range(n)]
        raise ValueError(f"unknown GGUF value type {vt}")


def split_name(path):
    """NAME-SCHEME.gguf -> (NAME, SCHEME); SCHEME is upper-case letters/digits/underscores or 'base'."""
    stem = Path(path).name
    if stem.endswith(".gguf"):
        stem = stem[:-5]
    m = re.match(r"^(.*)-(base|[A-Z0-9_]+)$", stem)
    return (m.group(1), m.group(2)) if m else (stem, None)


def _read_gguf_py(path, gguf):
    """(version, alignment, data_offset, meta, [(name, type_name, ne, n_bytes, n_elements, rel_offset)])"""
    r = gguf.GGUFReader(str(path), "r")
    meta, internal = {}, {}
    for name, field in r.fields.items():
        if name.startswith("GGUF."):
            internal[name[5:]] = field_value(field, gguf)
            continue
        try:
            meta[name] = field_value(field, gguf)
        except Exception as e:  # one odd key must not lose the file
            meta[name] = {"error": f"{type(e).__name__}: {e}"}
    ts = []
    for t in r.tensors:
        ts.append((t.name, t.tensor_type.name, [int(x) for x in t.shape.tolist()], int(t.n_bytes),
                   int(t.n_elements), int(t.data_offset) - int(r.data_offset)))
    return internal.get("version"), int(r.alignment), int(r.data_offset), meta, ts


def _read_fast(path, gguf):
    h = FastHeader(path)
    try:
        ts = []
        for name, dims, ttype, off in h.tensor_infos:
            qt = gguf.GGMLQuantizationType(ttype)
            block, tsize = gguf.GGML_QUANT_SIZES[qt]
            n = 1
            for d in dims:
                n *= int(d)
            ts.append((name, qt.name, [int(d) for d in dims], n // block * tsize, n, int(off)))
        return h.version, h.alignment, h.data_offset, h.meta, ts
    finally:
        h.close()


def dump(path, model=None, scheme=None, reader="fast"):
    gguf = common.gguf_import()
    t0 = time.time()
    path = Path(path)
    version, alignment, data_offset, meta, ts = (_read_gguf_py if reader == "gguf-py" else _read_fast)(path, gguf)
    m, s = split_name(path)
    rec = {
        "model": model or m,
        "scheme": scheme or s,
        "file": path.name,
        "file_bytes": path.stat().st_size,
    }
    tensors = []
    type_counts, type_bytes, type_elems = {}, {}, {}
    total_bytes = total_elems = 0
    for name, tname, ne, nb, nel, off in ts:
        tensors.append([name, tname, ne, nb, off])
        type_counts[tname] = type_counts.get(tname, 0) + 1
        type_bytes[tname] = type_bytes.get(tname, 0) + nb
        type_elems[tname] = type_elems.get(tname, 0) + nel
        total_bytes += nb
        total_elems += nel
    rec.update({
        "gguf_version": version,
        "alignment": alignment,
        "tensor_count": len(tensors),
        "kv_count": len(meta),
        "tensor_data_offset": data_offset,
        "tensor_data_bytes": total_bytes,
        "tensor_region_bytes": rec["file_bytes"] - data_offset,
        "n_elements": total_elems,
        "architecture": meta.get("general.architecture"),
        "file_type": meta.get("general.file_type"),
        "type_counts": type_counts,
        "type_bytes": type_bytes,
        "type_elements": type_elems,
        "metadata": meta,
        "tensors": tensors,
        "reader": reader,
        "dump_seconds": round(time.time() - t0, 3),
    })
    return rec


def summary(rec):
    """The few facts the measurement records carry about their GGUF."""
    meta = rec.get("metadata", {})
    arch = rec.get("architecture")
    return {
        "gguf_file": rec.get("file"),
        "gguf_file_bytes": rec.get("file_bytes"),
        "gguf_tensor_data_bytes": rec.get("tensor_data_bytes"),
        "gguf_tensor_data_offset": rec.get("tensor_data_offset"),
        "gguf_n_elements": rec.get("n_elements"),
        "gguf_type_bytes": rec.get("type_bytes"),
        "architecture": arch,
        "n_layer": meta.get(f"{arch}.block_count"),
        "n_ctx_train": meta.get(f"{arch}.context_length"),
        "file_type": rec.get("file_type"),
    }


def done_keys(records):
    return {(r.get("model"), r.get("scheme"), r.get("file_bytes")) for r in records if r.get("tensors") is not None}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*")
    ap.add_argument("--model")
    ap.add_argument("--scheme")
    ap.add_argument("--out", help="append JSON lines here (default: stdout)")
    ap.add_argument("--work", help="dump every finished GGUF of this work dir not yet dumped")
    ap.add_argument("--models", help="with --work: only these model specs (names)")
    ap.add_argument("--no-state", action="store_true", help="with --work: do not also append to the work dir's record")
    ap.add_argument("--reader", choices=["fast", "gguf-py"], default="fast",
                    help="fast: a struct parser of the header (default); gguf-py: GGUFReader (slow on big vocabularies)")
    common.add_deadline_args(ap)
    args = ap.parse_args(argv)
    dl = common.deadline_from(args)

    files = [(Path(f), args.model, args.scheme) for f in args.files]
    sink_paths = [args.out] if args.out else []
    if args.work:
        work = common.Work(args.work)
        state = work.state("gguf_tensors.jsonl")
        if not args.no_state:
            sink_paths.append(str(state))
        names = {s.name for s in common.parse_specs(args.models)} if args.models else None
        done = done_keys(common.read_jsonl(state)) | (done_keys(common.read_jsonl(args.out)) if args.out else set())
        for d in sorted((work.root / "gguf").glob("*")):
            if names is not None and d.name not in names:
                continue
            for f in sorted(d.glob("*.gguf")):
                if not common.is_done(f):
                    continue
                m, s = split_name(f)
                if (m, s, f.stat().st_size) in done:
                    continue
                files.append((f, m, s))
    sink = common.JsonlSink(*sink_paths) if sink_paths else None
    n_ok = n_fail = 0
    for f, m, s in files:
        if dl.passed():
            print(f"dump_gguf: deadline reached, {len(files) - n_ok - n_fail} file(s) left", file=sys.stderr)
            break
        try:
            rec = dump(f, m, s, args.reader)
            n_ok += 1
        except Exception as e:
            rec = {"model": m, "scheme": s, "file": Path(f).name, "error": f"{type(e).__name__}: {e}"}
            n_fail += 1
        if sink:
            sink.write(rec)
            print(f"dump_gguf: {rec['file']}: {len(rec.get('tensors') or [])} tensors, "
                  f"{rec.get('tensor_data_bytes')} bytes of tensor data ({rec.get('dump_seconds')} s)"
                  + (f" ERROR {rec['error']}" if "error" in rec else ""), flush=True)
        else:
            import json
            print(json.dumps(rec, separators=(",", ":")))
    return 0 if n_fail == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
