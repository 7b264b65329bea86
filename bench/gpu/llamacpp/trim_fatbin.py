#!/usr/bin/env python3
"""Zero the device code a GPU will never use in a CUDA shared library, so it compresses to a size we can carry.

node-llama-cpp's prebuilt CUDA backend for llama.cpp 80fb11ac (npm @node-llama-cpp/linux-x64-cuda@3.21.1,
libggml-cuda.so) is 159 MB: cubins for sm_86/89/120/121 and PTX for compute_75/80/90. An H100/H200 (sm_90) runs
the compute_90 PTX (JIT-compiled by the driver; no other entry matches). This keeps every fatbin header and the
entries for ARCH, and overwrites the payload of every other entry with zeros: the file keeps its layout, the
driver still sees a well-formed fatbin, and xz shrinks the zeros away. Usage: trim_fatbin.py IN OUT [ARCH=90]
"""
import struct
import subprocess
import sys

FATBIN_MAGIC = 0xBA55ED50


def section(path, name):
    out = subprocess.run(["readelf", "-S", "-W", path], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.replace("[ ", "[").split()
        if name in parts:
            i = parts.index(name)
            return int(parts[i + 3], 16), int(parts[i + 4], 16)  # file offset, size
    raise SystemExit(f"{path}: no {name} section")


def main():
    src, dst = sys.argv[1], sys.argv[2]
    keep = int(sys.argv[3]) if len(sys.argv) > 3 else 90
    data = bytearray(open(src, "rb").read())
    off, size = section(src, ".nv_fatbin")
    pos, end = off, off + size
    kept = zeroed = 0
    while pos < end:
        magic, _ver, hsize, fsize = struct.unpack_from("<IHHQ", data, pos)
        if magic != FATBIN_MAGIC:
            pos += 8
            continue
        e, fend = pos + hsize, pos + hsize + fsize
        while e < fend:
            _kind, _ever, ehsize, psize = struct.unpack_from("<HHIQ", data, e)
            arch = struct.unpack_from("<I", data, e + 28)[0]
            if arch == keep:
                kept += psize
            else:
                data[e + ehsize:e + ehsize + psize] = bytes(psize)
                zeroed += psize
            e += ehsize + psize
        pos = fend
    open(dst, "wb").write(data)
    print(f"{src}: kept {kept / 1e6:.1f} MB of arch {keep} device code, zeroed {zeroed / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
