#!/usr/bin/env python3
"""Shared by the llama.cpp ground-truth harness: paths, model specs, JSONL files, deadlines, the environment.

  python3 common.py prepare               decompresses .llama/bin/*.so.xz (a carried CUDA backend) if needed
  python3 common.py env [--llama-dir D]   prints `export ...` lines (LD_LIBRARY_PATH with .llama/lib and the CUDA
                                          libraries llama.cpp needs, PYTHONPATH with gguf-py) for run_all.sh
  python3 common.py specs [SPECS]         prints the model specs as JSON lines
"""
import glob
import json
import os
import re
import shutil
import site
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CATALOG = REPO / "data" / "catalog"

ALL_SCHEMES = "F32 F16 BF16 Q8_0 Q6_K Q5_K_M Q5_K_S Q4_K_M Q4_K_S Q4_0 Q3_K_M Q2_K IQ4_XS".split()
MEASURE_SCHEMES = ["Q4_K_M", "Q8_0", "Q2_K"]

# short name = catalog id [, config override ...]
DEFAULT_MODELS = [
    "TinyLlama-1.1B=TinyLlama__TinyLlama-1.1B-Chat-v1.0",
    "Qwen2.5-0.5B=Qwen__Qwen2.5-0.5B",
    "gemma-2-2b=google__gemma-2-2b",
    "Phi-3-mini-4k=microsoft__Phi-3-mini-4k-instruct",
    "Qwen3-30B-A3B-2L=Qwen__Qwen3-30B-A3B,num_hidden_layers=2",
    "gpt2=openai-community__gpt2",
]
# a tiny llama GGUF written with gguf-py alone (no torch): for smoke tests of stages 2-4 (tiny_gguf.py)
TINY_MODELS = ["tiny-llama=@tiny"]

# Output bytes per input byte of a bf16 base, for the disk-aware quantisation scheduler (generous).
SCHEME_SIZE_FACTOR = {
    "F32": 2.01, "F16": 1.01, "BF16": 1.01, "Q8_0": 0.56, "Q6_K": 0.45, "Q5_K_M": 0.40, "Q5_K_S": 0.38,
    "Q5_0": 0.38, "Q5_1": 0.40, "Q4_K_M": 0.35, "Q4_K_S": 0.33, "Q4_0": 0.32, "Q4_1": 0.34, "IQ4_XS": 0.32,
    "IQ4_NL": 0.33, "Q3_K_L": 0.30, "Q3_K_M": 0.29, "Q3_K_S": 0.27, "Q2_K": 0.25, "Q2_K_S": 0.24,
}


# ----------------------------------------------------------------------------------------------------------------
# model specs
# ----------------------------------------------------------------------------------------------------------------
def _value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _split_top_level(text):
    """Split at the commas outside brackets, so that a JSON list value (layer_types=["a","b"]) stays whole."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


class ModelSpec:
    """NAME=CATALOG_ID[,key=value,...]; CATALOG_ID '@tiny' is the gguf-py-only test model; a value may be JSON
    (a list keeps its commas: layer_types=["sliding_attention","full_attention"])."""

    def __init__(self, text):
        text = text.strip()
        if "=" not in text.split(",")[0]:
            raise ValueError(f"model spec {text!r}: expected NAME=CATALOG_ID[,key=value...]")
        name, rest = text.split("=", 1)
        parts = _split_top_level(rest)
        self.text = text
        self.name = name.strip()
        self.catalog = parts[0].strip()
        self.overrides = {}
        for p in parts[1:]:
            if not p.strip():
                continue
            if "=" not in p:
                raise ValueError(f"model spec {text!r}: override {p!r} is not key=value")
            k, v = p.split("=", 1)
            self.overrides[k.strip()] = _value(v.strip())
        if not re.fullmatch(r"[A-Za-z0-9._+-]+", self.name):
            raise ValueError(f"model spec {text!r}: the short name may only have letters, digits and ._+-")
        self.kind = "tiny" if self.catalog.startswith("@") else "hf"

    def catalog_path(self):
        return CATALOG / f"{self.catalog}.json"

    def config(self):
        """The catalog config with the overrides applied (a copy)."""
        if self.kind == "tiny":
            return {"model_type": "llama", "tiny": True, **self.overrides}
        with open(self.catalog_path()) as f:
            cfg = json.load(f)
        cfg.update(self.overrides)
        return cfg

    def to_json(self):
        return {"model": self.name, "catalog_id": self.catalog, "overrides": self.overrides, "spec": self.text}


def parse_specs(text):
    """Specs separated by ';' or whitespace. A bare name picks a default spec; 'default' (or 'all') is the six
    default models, 'tiny' the test model."""
    if text is None or not text.strip():
        text = "default"
    known = {s.split("=", 1)[0]: s for s in DEFAULT_MODELS + TINY_MODELS}
    out = []
    for tok in re.split(r"[;\s]+", text.strip()):
        if not tok:
            continue
        if tok in ("default", "all"):
            out.extend(ModelSpec(s) for s in DEFAULT_MODELS)
        elif tok in known:
            out.append(ModelSpec(known[tok]))
        elif tok == "tiny":
            out.extend(ModelSpec(s) for s in TINY_MODELS)
        else:
            out.append(ModelSpec(tok))
    seen, uniq = set(), []
    for s in out:
        if s.name in seen:
            continue
        seen.add(s.name)
        uniq.append(s)
    return uniq


def parse_list(text, default=None, upper=False):
    if text is None or text == "":
        return list(default or [])
    if text in ("all",) and default is not None:
        return list(default)
    items = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    return [t.upper() for t in items] if upper else items


def parse_schemes(text, default):
    if text in ("all", "ALL"):
        return list(ALL_SCHEMES)
    if text in ("measure",):
        return list(MEASURE_SCHEMES)
    return parse_list(text, default, upper=True)


# ----------------------------------------------------------------------------------------------------------------
# the work directory
# ----------------------------------------------------------------------------------------------------------------
def default_work():
    return Path(os.environ.get("LLAMACPP_WORK", REPO / "build-llamacpp"))


class Work:
    def __init__(self, root):
        self.root = Path(root)
        for d in ("hf", "gguf", "state", "logs", "runs"):
            (self.root / d).mkdir(parents=True, exist_ok=True)

    def hf_dir(self, name):
        return self.root / "hf" / name

    def gguf_dir(self, name):
        d = self.root / "gguf" / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def base(self, name):
        return self.gguf_dir(name) / f"{name}-base.gguf"

    def quant(self, name, scheme):
        return self.gguf_dir(name) / f"{name}-{scheme}.gguf"

    def gguf(self, name, scheme):
        return self.base(name) if scheme == "base" else self.quant(name, scheme)

    def state(self, fname):
        return self.root / "state" / fname

    def log(self, fname):
        return self.root / "logs" / fname


def sidecar(path):
    """A finished GGUF has PATH.done.json beside it (written last)."""
    return Path(str(path) + ".done.json")


def is_done(path):
    return Path(path).is_file() and sidecar(path).is_file()


def write_sidecar(path, info):
    tmp = Path(str(sidecar(path)) + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, sidecar(path))


def read_sidecar(path):
    try:
        return json.loads(sidecar(path).read_text())
    except (OSError, ValueError):
        return None


def remove_gguf(path):
    for p in (Path(path), sidecar(path)):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def dumped_pairs(*jsonl_paths):
    """(model, scheme) pairs with a successful dump in these files."""
    out = set()
    for p in jsonl_paths:
        if p:
            for r in read_jsonl(p):
                if r.get("tensors") is not None:
                    out.add((r.get("model"), r.get("scheme")))
    return out


def base_needed(work, name, schemes, keep, dumping, dumped):
    """Whether stage 2 still needs NAME's base GGUF: a kept scheme whose file is missing, or (when dumping) a
    scheme or the base itself not yet dumped."""
    for s in schemes:
        if s in keep and not is_done(work.quant(name, s)):
            return True
        if dumping and (name, s) not in dumped:
            return True
    return dumping and (name, "base") not in dumped


# ----------------------------------------------------------------------------------------------------------------
# JSONL
# ----------------------------------------------------------------------------------------------------------------
def append_jsonl(path, obj):
    line = json.dumps(obj, separators=(",", ":"), default=str) + "\n"
    with open(path, "a") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # a line cut by a kill
    except FileNotFoundError:
        pass
    return out


class JsonlSink:
    """Appends each record to the output file and to a cumulative copy in the work dir (so a later call on the
    same machine knows what is done); flushes every line."""

    def __init__(self, *paths):
        self.paths = [Path(p) for p in paths if p]
        for p in self.paths:
            p.parent.mkdir(parents=True, exist_ok=True)

    def write(self, obj):
        for p in self.paths:
            append_jsonl(p, obj)

    def records(self):
        seen, out = set(), []
        for p in self.paths:
            for r in read_jsonl(p):
                key = json.dumps(r, sort_keys=True)[:4000]
                if key not in seen:
                    seen.add(key)
                    out.append(r)
        return out


def seed_output(out_path, state_path):
    """Start OUT's file from the work dir's cumulative copy (results of earlier calls on this machine)."""
    out_path, state_path = Path(out_path), Path(state_path)
    if state_path.is_file() and not out_path.exists():
        shutil.copyfile(state_path, out_path)


# ----------------------------------------------------------------------------------------------------------------
# time
# ----------------------------------------------------------------------------------------------------------------
class Deadline:
    def __init__(self, at=None, hard_at=None):
        self.at = float(at) if at else None
        self.hard_at = float(hard_at) if hard_at else (self.at + 25 if self.at else None)

    def left(self):
        return float("inf") if self.at is None else self.at - time.time()

    def passed(self):
        return self.at is not None and time.time() >= self.at

    def hard_left(self):
        return float("inf") if self.hard_at is None else self.hard_at - time.time()


def add_deadline_args(ap):
    ap.add_argument("--deadline-at", type=float, default=None,
                    help="epoch seconds: start nothing new after this")
    ap.add_argument("--hard-at", type=float, default=None,
                    help="epoch seconds: kill what still runs (default deadline-at + 25)")
    ap.add_argument("--deadline", type=float, default=None,
                    help="seconds from now (instead of --deadline-at)")


def deadline_from(args):
    at = args.deadline_at
    if at is None and args.deadline is not None:
        at = time.time() + args.deadline
    return Deadline(at, args.hard_at)


# ----------------------------------------------------------------------------------------------------------------
# llama.cpp build, binaries, environment
# ----------------------------------------------------------------------------------------------------------------
def llama_dir(arg=None):
    return Path(arg or os.environ.get("LLAMA_DIR") or (REPO / ".llama")).resolve()


def llama_bin(name, ldir=None):
    return llama_dir(ldir) / "bin" / name


def build_info(ldir=None):
    """BUILD_INFO.txt of the llama.cpp build: the raw text, the commit and any KEY=VALUE / KEY: VALUE lines."""
    p = llama_dir(ldir) / "BUILD_INFO.txt"
    info = {"build_info_file": str(p), "build_info_text": None, "llama_cpp_commit": None, "build_flags": {}}
    try:
        text = p.read_text(errors="replace")
    except OSError:
        return info
    info["build_info_text"] = text[:8000]
    m = re.search(r"\b([0-9a-f]{40})\b", text) or re.search(r"commit\W+([0-9a-f]{7,40})\b", text, re.I)
    if m:
        info["llama_cpp_commit"] = m.group(1)
    for line in text.splitlines():
        mm = re.match(r"\s*(-D)?([A-Za-z_][A-Za-z0-9_.]*)\s*[:=]\s*(.*?)\s*$", line)
        if mm and mm.group(3):
            info["build_flags"][mm.group(2)] = mm.group(3)
        for d in re.findall(r"-D([A-Za-z_][A-Za-z0-9_]*)=(\S+)", line):
            info["build_flags"][d[0]] = d[1]
    return info


def prepare_llama(ldir=None):
    """Decompress any .llama/{bin,lib}/*.xz (a CUDA backend carried compressed) and .gpubin/*.xz whose file is not
    there yet. Returns notes."""
    import lzma
    notes = []
    ld = llama_dir(ldir)
    # .gpubin/*.xz too: llmem and hf_checkpoint_tensors are carried compressed when the carry is near its limit
    found = [sorted(glob.glob(str(ld / d / "*.xz"))) for d in ("bin", "lib")] + [sorted(glob.glob(str(REPO / ".gpubin" / "*.xz")))]
    for xz in [f for group in found for f in group]:
        out = xz[:-3]
        if os.path.exists(out) and os.path.getsize(out) > 0:
            continue
        t0 = time.time()
        tmp = out + ".partial"
        with lzma.open(xz, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 16 * 2**20)
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
        notes.append(f"decompressed {xz} -> {os.path.basename(out)} ({os.path.getsize(out)} bytes, "
                     f"{time.time() - t0:.1f} s)")
    return notes


def cuda_cache_env(work_root):
    """The driver's JIT cache (a PTX-only CUDA backend is compiled for the GPU on first use): kept in the work dir,
    so the compiled kernels survive between processes and between calls on the same machine, and large enough for
    all of ggml-cuda."""
    return {
        "CUDA_CACHE_PATH": os.environ.get("CUDA_CACHE_PATH") or str(Path(work_root) / "cuda-cache"),
        "CUDA_CACHE_MAXSIZE": os.environ.get("CUDA_CACHE_MAXSIZE") or str(4 * 2**30 - 1),
    }


def _site_dirs():
    dirs = []
    try:
        dirs += site.getsitepackages()
    except Exception:
        pass
    try:
        dirs.append(site.getusersitepackages())
    except Exception:
        pass
    for p in sys.path:
        if p.endswith(("site-packages", "dist-packages")):
            dirs.append(p)
    out = []
    for d in dirs:
        if d and os.path.isdir(d) and d not in out:
            out.append(d)
    return out


def _missing_libs(files, ld_path):
    env = dict(os.environ, LD_LIBRARY_PATH=ld_path)
    missing = set()
    for f in files:
        if not os.path.isfile(f):
            continue
        try:
            out = subprocess.run(["ldd", f], env=env, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in out.splitlines():
            if "not found" in line:
                missing.add(line.split("=>")[0].strip())
    return missing


def library_env(ldir=None):
    """LD_LIBRARY_PATH for llama.cpp: .llama/lib, then directories that hold the CUDA libraries its binaries and
    backends need (searched in pip's nvidia packages, torch/lib and /usr/local/cuda*), and PYTHONPATH with gguf-py.
    Returns (env dict additions, notes)."""
    ld = llama_dir(ldir)
    paths = [str(ld / "lib")]
    files = sorted(glob.glob(str(ld / "lib" / "*.so*"))) + sorted(glob.glob(str(ld / "bin" / "*")))
    notes = []
    old = os.environ.get("LD_LIBRARY_PATH", "")
    missing = _missing_libs(files, ":".join(paths + ([old] if old else [])))
    if missing:
        cands = []
        for sd in _site_dirs():
            cands += sorted(glob.glob(os.path.join(sd, "nvidia", "*", "lib")))
            cands += sorted(glob.glob(os.path.join(sd, "nvidia", "*", "*", "lib")))
            cands.append(os.path.join(sd, "torch", "lib"))
        cands += sorted(glob.glob("/usr/local/cuda/lib64")) + sorted(glob.glob("/usr/local/cuda/lib"))
        cands += sorted(glob.glob("/usr/local/cuda-*/lib64")) + sorted(glob.glob("/usr/local/cuda-*/targets/*/lib"))
        cands += ["/usr/lib/x86_64-linux-gnu", "/usr/lib64"]
        for lib in sorted(missing):
            for c in cands:
                if os.path.exists(os.path.join(c, lib)):
                    if c not in paths:
                        paths.append(c)
                    break
        still = _missing_libs(files, ":".join(paths + ([old] if old else [])))
        notes.append(f"needed beyond .llama/lib: {sorted(missing)}; added {paths[1:]}")
        if still:
            notes.append(f"STILL MISSING: {sorted(still)}")
    # ggml built with GGML_BACKEND_DL loads its backends (libggml-cpu*.so, libggml-cuda.so) at run time from the
    # executable's directory or the current directory only: they must sit in .llama/bin then.
    bench = ld / "bin" / "llama-bench"
    if bench.is_file():
        try:
            needed = subprocess.run(["ldd", str(bench)], env=dict(os.environ, LD_LIBRARY_PATH=":".join(paths)),
                                    capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            needed = ""
        if "libggml-base" in needed and "libggml-cpu" not in needed and "libggml-cuda" not in needed:
            in_bin = sorted(p.name for p in (ld / "bin").glob("libggml-*.so*"))
            notes.append(f"backends load at run time (GGML_BACKEND_DL); in bin/: {in_bin or 'NONE'}"
                         + ("" if any("cuda" in n for n in in_bin) else " -- no libggml-cuda*.so in bin/: "
                            "llama.cpp will run on the CPU only"))
    if old:
        paths += old.split(":")
    pyp = [str(ld / "gguf-py"), str(ld)] + os.environ.get("PYTHONPATH", "").split(":")

    def uniq(xs):
        out = []
        for x in xs:
            if x and x not in out:
                out.append(x)
        return ":".join(out)
    return {"LD_LIBRARY_PATH": uniq(paths), "PYTHONPATH": uniq(pyp)}, notes


def llmem_bin():
    """.gpubin/llmem, or its glibc-carrying wrapper when the plain one does not start (LLMEM_BIN overrides)."""
    if os.environ.get("LLMEM_BIN"):
        return os.environ["LLMEM_BIN"]
    plain = REPO / ".gpubin" / "llmem"
    try:
        if subprocess.run([str(plain), "--version"], capture_output=True, timeout=30).returncode == 0:
            return str(plain)
    except (OSError, subprocess.TimeoutExpired):
        pass
    alt = REPO / ".gpubin" / "llmem-glibc"
    return str(alt) if alt.exists() else str(plain)


def gguf_import(ldir=None):
    """Import gguf-py from .llama/gguf-py (or what PYTHONPATH already has)."""
    ld = llama_dir(ldir)
    for p in (str(ld / "gguf-py"),):
        if os.path.isdir(p) and p not in sys.path:
            sys.path.insert(0, p)
    import gguf  # noqa: F401
    return gguf


_LOG_LOCK = threading.Lock()


def log(msg, file=None):
    line = time.strftime("%H:%M:%S ") + msg
    with _LOG_LOCK:
        print(line, flush=True)
    if file:
        with open(file, "a") as f:
            f.write(line + "\n")


def main(argv):
    if len(argv) >= 1 and argv[0] == "prepare":
        for n in prepare_llama(argv[2] if len(argv) >= 3 and argv[1] == "--llama-dir" else None):
            print(n)
        return 0
    if len(argv) >= 1 and argv[0] == "env":
        ldir = argv[2] if len(argv) >= 3 and argv[1] == "--llama-dir" else None
        env, notes = library_env(ldir)
        for k, v in env.items():
            print(f"export {k}='{v}'")
        for n in notes:
            print(f"# {n}")
        return 0
    if len(argv) >= 1 and argv[0] == "specs":
        for s in parse_specs(argv[1] if len(argv) > 1 else None):
            print(json.dumps(s.to_json()))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
