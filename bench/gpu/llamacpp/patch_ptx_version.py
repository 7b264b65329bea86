#!/usr/bin/env python3
"""Make node-llama-cpp's prebuilt CUDA backend JIT-compilable by an older NVIDIA driver, and trim it for transport.

Why: node-llama-cpp's libggml-cuda.so (llama.cpp 80fb11ac, npm @node-llama-cpp/linux-x64-cuda@3.21.1) was built
with a CUDA toolkit newer than 13.0, so its compute_90 PTX says `.version 9.1`. An H100/H200 (sm_90) has no
matching cubin in it (cubins are sm_86/89/120/121), so the driver must JIT that PTX, and driver 580.x (CUDA 13.0,
PTX ISA up to 9.0) refuses it: "the provided PTX was compiled with an unsupported toolchain". The PTX text targets
sm_90 and (by grep) uses no instruction new in ISA 9.1, so declaring `.version 9.0` is expected to be enough; if
the JIT still fails on some construct, that is where to look.

What, for each fatbin (magic 0xBA55ED50) in the ELF section .nv_fatbin, entry by entry:
  * arch-90 PTX (kind 1). Entry header fields used (little-endian; found by comparing with zstd -d):
      +8  u64 padded payload size     +16 u32 compressed payload size (zstd frame length)
      +24 u16 PTX minor, +26 u16 major (9.1 -> 9.0)     +28 u32 arch     +56 u64 uncompressed size (text + NUL)
    The zstd payload is decompressed, `.version X.Y` > 9.0 becomes `.version 9.0` (nothing else in the text is
    touched), and it is recompressed (no checksum, content size in the frame, like the original). The original
    was made by a better/newer zstd than ours, so the recompressed frame is sometimes larger than the padded
    slot (up to ~3 %). Then the slot grows by borrowing space from the next entry of the same fatbin (the
    sm_120 cubin, whose payload is zeroed anyway): its header moves later and its padded size shrinks by the
    same amount. Every fatbin keeps its header, its size and its place in the file; only entry boundaries inside
    it move. +16, +56 and +24/+26 are updated, slack is zero.
  * every entry whose arch is not 90 (cubins sm_86/89/120/121, PTX compute_75/80): payload zeroed, as in
    trim_fatbin.py, so xz shrinks the library to a size we can carry.
The output is then re-parsed and checked. Usage: patch_ptx_version.py IN OUT
"""
import os
import re
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

FATBIN_MAGIC = 0xBA55ED50
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trim_fatbin import section  # noqa: E402  (the ELF section reader both scripts need)

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
KEEP = 90
TARGET = (9, 0)
VERSION_RE = re.compile(rb"^\.version\s+(\d+)\.(\d+)\s*$", re.M)
TARGET_RE = re.compile(rb"^\.target\s+(.+?)\s*$", re.M)


def fatbins(data, off, size):
    """Yield (fatbin offset, header size, fat size, [(entry offset, kind, entry header size, padded size, arch)])."""
    pos, end = off, off + size
    while pos < end:
        magic, _ver, hsize, fsize = struct.unpack_from("<IHHQ", data, pos)
        if magic != FATBIN_MAGIC:
            pos += 8
            continue
        e, fend, ents = pos + hsize, pos + hsize + fsize, []
        while e < fend:
            kind, _ever, ehsize, psize = struct.unpack_from("<HHIQ", data, e)
            ents.append((e, kind, ehsize, psize, struct.unpack_from("<I", data, e + 28)[0]))
            e += ehsize + psize
        assert e == fend, hex(pos)
        yield pos, hsize, fsize, ents
        pos = fend


def zstd_d(blob):
    return subprocess.run(["zstd", "-d", "-q", "-c"], input=blob, capture_output=True, check=True).stdout


def zstd_c(text, psize):
    """Smallest of a few levels; stops at the first that fits psize. Compresses from a file so the frame
    carries the content size, as the original frames do."""
    fd, tmp = tempfile.mkstemp()
    try:
        os.write(fd, text)
        os.close(fd)
        best = None
        for lv in (["-19"], ["--ultra", "-22"])[: 2 if len(text) < 1_500_000 else 1]:
            c = subprocess.run(["zstd", "-q", "-c", "--no-check", *lv, tmp], capture_output=True, check=True).stdout
            if best is None or len(c) < len(best):
                best = c
            if len(best) <= psize:
                break
        return best
    finally:
        os.unlink(tmp)


def read_ptx(data, e, ehsize, psize):
    csize, = struct.unpack_from("<I", data, e + 16)
    usize, = struct.unpack_from("<Q", data, e + 56)
    p = e + ehsize
    assert csize <= psize and data[p:p + 4] == ZSTD_MAGIC and not any(data[p + csize:p + psize]), hex(e)
    text = zstd_d(bytes(data[p:p + csize]))
    assert len(text) == usize, (hex(e), len(text), usize)
    return text


def patch_text(data, e, ehsize, psize):
    text = read_ptx(data, e, ehsize, psize)
    m = VERSION_RE.search(text)
    assert m, hex(e)
    if (int(m[1]), int(m[2])) <= TARGET:
        return text, None
    text = VERSION_RE.sub(b".version %d.%d" % TARGET, text, count=1)
    new = zstd_c(text, psize)
    assert zstd_d(new) == text, hex(e)
    return text, new


def main():
    src, dst = sys.argv[1], sys.argv[2]
    data = bytearray(open(src, "rb").read())
    off, size = section(src, ".nv_fatbin")
    fbs = list(fatbins(data, off, size))
    jobs = [(e, eh, ps) for _, _, _, ents in fbs for e, kind, eh, ps, arch in ents if arch == KEEP and kind == 1]
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        results = dict(zip([j[0] for j in jobs], pool.map(lambda j: patch_text(data, *j), jobs)))
    kept = zeroed = patched = grown = 0
    targets, old_c, new_c = set(), 0, 0
    for pos, hsize, fsize, ents in fbs:
        # rebuild the fatbin's entry list in place: [header bytes, payload bytes, padded size]
        rows = []
        for e, kind, eh, ps, arch in ents:
            hdr = bytearray(data[e:e + eh])
            if arch != KEEP:
                rows.append([hdr, b"", ps])
                zeroed += ps
                continue
            kept += ps
            payload = bytes(data[e + eh:e + eh + ps])
            if kind == 1:
                text, new = results[e]
                targets.update(TARGET_RE.findall(text))
                if new is not None:
                    old_c += struct.unpack_from("<I", hdr, 16)[0]
                    new_c += len(new)
                    payload = new
                    struct.pack_into("<I", hdr, 16, len(new))
                    struct.pack_into("<Q", hdr, 56, len(text))
                    patched += 1
                struct.pack_into("<HH", hdr, 24, TARGET[1], TARGET[0])
            rows.append([hdr, payload, ps])
        for i, row in enumerate(rows):
            need = len(row[1]) - row[2]
            if need > 0:
                need = (need + 7) // 8 * 8
                nxt = rows[i + 1]  # borrow from the following (zeroed) entry
                assert nxt[1] == b"" and nxt[2] >= need, f"fatbin {pos:#x}: no room for entry {i}"
                nxt[2] -= need
                row[2] += need
                grown += need
        out = bytearray()
        for hdr, payload, ps in rows:
            struct.pack_into("<Q", hdr, 8, ps)
            out += hdr + payload + bytes(ps - len(payload))
        assert len(out) == fsize, hex(pos)
        data[pos + hsize:pos + hsize + fsize] = out
    open(dst, "wb").write(data)
    print(f"{src}: kept {kept / 1e6:.1f} MB of arch {KEEP} device code, zeroed {zeroed / 1e6:.1f} MB; "
          f"patched {patched} PTX entries (compressed {old_c} -> {new_c} B; {grown} B borrowed from zeroed "
          f"neighbours); .target lines: {sorted(t.decode() for t in targets)}")
    verify(dst)


def verify(path):
    data = open(path, "rb").read()
    off, size = section(path, ".nv_fatbin")
    n = nfb = 0
    for _pos, _hsize, _fsize, ents in fatbins(data, off, size):
        nfb += 1
        for e, kind, eh, ps, arch in ents:
            if arch != KEEP:
                assert not any(data[e + eh:e + eh + ps]), hex(e)
                continue
            if kind != 1:
                continue
            assert struct.unpack_from("<HH", data, e + 24) == (TARGET[1], TARGET[0]), hex(e)
            text = read_ptx(data, e, eh, ps)
            assert [m[0] for m in VERSION_RE.finditer(text)] == [b".version %d.%d" % TARGET], hex(e)
            n += 1
    print(f"verified {path}: {nfb} fatbins, {n} arch-{KEEP} PTX entries, all .version {TARGET[0]}.{TARGET[1]}, "
          f"sizes consistent, non-{KEEP} payloads zero")


if __name__ == "__main__":
    main()
