#!/usr/bin/env python3
"""Stage 1: a bf16 GGUF for each model spec, made the way a user makes one, from random weights.

For a spec NAME=CATALOG_ID[,key=value...] (e.g. Qwen3-30B-A3B-2L=Qwen__Qwen3-30B-A3B,num_hidden_layers=2):
  1. transformers builds the model from data/catalog/CATALOG_ID.json (+ overrides) with random weights directly
     on the GPU in bf16 (AutoConfig.for_model(model_type, **config), AutoModelForCausalLM.from_config, as
     bench/gpu/measure_transformers.py does; tie_word_embeddings as the config says); non-finite values (none
     expected) are redrawn so quantisation cannot trip on them;
  2. save_pretrained writes safetensors to WORK/hf/NAME; config.json there is then the catalog's config with the
     overrides (what the hub checkpoint has; transformers' own copy is kept as config.transformers.json);
  3. llama.cpp's own converter, .llama/convert_hf_to_gguf.py, runs unchanged (`--outtype bf16`), in a child
     process that imports it and replaces only the model class's set_vocab: there is no tokenizer, so the GGUF
     gets a SentencePiece-style vocabulary of exactly vocab_size tokens (vocab.py). Tensor conversion is the
     converter's. Its log is kept (WORK/logs/convert-NAME.log and the record).
Output: WORK/gguf/NAME/NAME-base.gguf (+ .done.json), one JSON record per model.

  python3 make_gguf.py --models "gpt2 Qwen3-30B-A3B-2L" [--jobs 3] [--out OUT.jsonl] [--work DIR]
  python3 make_gguf.py --one 'NAME=CATALOG_ID,num_hidden_layers=2'        # one model, record on stdout
  python3 make_gguf.py _convert --vocab-size N [--llama-dir D] -- HF_DIR --outtype bf16 --outfile F   # internal
The spec '@tiny' (e.g. tiny-llama=@tiny) writes a tiny llama GGUF with gguf-py instead (no torch; self-test).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

RECORD_MARK = "@@RECORD@@ "
MAX_LOG_CHARS = 1_500_000


# ----------------------------------------------------------------------------------------------------------------
# _convert: the converter with a stand-in vocabulary (runs in its own process)
# ----------------------------------------------------------------------------------------------------------------
def convert_main(argv):
    if "--" not in argv:
        print("usage: make_gguf.py _convert --vocab-size N [--llama-dir D] -- CONVERTER ARGS", file=sys.stderr)
        return 2
    i = argv.index("--")
    ap = argparse.ArgumentParser(prog="make_gguf.py _convert")
    ap.add_argument("--vocab-size", type=int, required=True)
    ap.add_argument("--llama-dir")
    args = ap.parse_args(argv[:i])
    rest = argv[i + 1:]
    ld = common.llama_dir(args.llama_dir)
    script = ld / "convert_hf_to_gguf.py"
    if not script.is_file():
        print(f"make_gguf: {script} is missing (run bench/gpu/llamacpp/assemble_llama.sh)", file=sys.stderr)
        return 3
    for p in (str(ld / "gguf-py"), str(ld)):
        if p not in sys.path:
            sys.path.insert(0, p)
    if not (ld / "conversion").is_dir():
        # an older layout had everything in convert_hf_to_gguf.py; a newer one needs the conversion package
        src = os.environ.get("LLAMA_SRC", "/work/llama-src")
        if (Path(src) / "conversion").is_dir():
            sys.path.insert(1, src)
            print(f"make_gguf: WARNING {ld}/conversion missing, using {src}/conversion", file=sys.stderr)
        else:
            print(f"make_gguf: WARNING {ld}/conversion missing (copy llama.cpp's conversion/ package there)",
                  file=sys.stderr)
    import convert_hf_to_gguf as conv  # noqa: E402
    from vocab import write_vocab  # noqa: E402

    n_vocab = args.vocab_size

    def set_vocab(self):
        n = write_vocab(self.gguf_writer, n_vocab)
        conv.logger.info(f"llmem harness: no tokenizer; wrote a SentencePiece-style vocabulary of {n} tokens "
                         f"(<unk> <s> </s>, 256 byte tokens, fillers)")

    patched = []
    if hasattr(conv, "get_model_class"):
        orig = conv.get_model_class

        def get_model_class(name, mmproj=False):
            cls = orig(name, mmproj=mmproj)
            if not mmproj:
                cls.set_vocab = set_vocab
                patched.append(cls.__name__)
            return cls
        conv.get_model_class = get_model_class
    elif hasattr(conv, "ModelBase") and hasattr(conv.ModelBase, "from_model_architecture"):
        # older converters: everything in one module, classes looked up through ModelBase
        orig_fma = conv.ModelBase.from_model_architecture.__func__

        def from_model_architecture(cls_, arch, *a, **kw):
            cls = orig_fma(cls_, arch, *a, **kw)
            cls.set_vocab = set_vocab
            patched.append(cls.__name__)
            return cls
        conv.ModelBase.from_model_architecture = classmethod(from_model_architecture)
    else:
        print("make_gguf: cannot find the converter's model-class lookup to patch", file=sys.stderr)
        return 4
    sys.argv = [str(script)] + rest
    conv.main()
    print(f"make_gguf: set_vocab replaced on {patched}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# build: transformers, random weights, safetensors
# ----------------------------------------------------------------------------------------------------------------
def build_hf(spec, hf_dir):
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    rec = {"torch": torch.__version__, "transformers": transformers.__version__}
    cfg_dict = spec.config()
    d = dict(cfg_dict)
    model_type = d.pop("model_type")
    cfg = AutoConfig.for_model(model_type, **d)
    t0 = time.time()
    with torch.device("cuda"):
        try:
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        except TypeError as e:
            if "dtype" not in str(e):
                raise
            model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    model.eval()
    torch.cuda.synchronize()
    rec["t_build_s"] = round(time.time() - t0, 3)
    fixed = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.is_floating_point() and not bool(torch.isfinite(p).all()):
                p.normal_(0.0, 0.02)
                fixed.append(name)
    params = list(model.parameters())
    rec.update({
        "model_class": type(model).__name__,
        "param_count": sum(p.numel() for p in params),
        "param_bytes": sum(p.numel() * p.element_size() for p in params),
        "param_dtypes": sorted({str(p.dtype).replace("torch.", "") for p in params}),
        "tie_word_embeddings": bool(getattr(model.config, "tie_word_embeddings", False)),
        "params_redrawn_nonfinite": fixed,
        "off_gpu_params": sum(1 for p in params if not p.is_cuda),
    })
    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    hf_dir.mkdir(parents=True)
    t0 = time.time()
    try:
        model.save_pretrained(str(hf_dir), max_shard_size="1000GB")
    except TypeError:
        model.save_pretrained(str(hf_dir))
    rec["t_save_s"] = round(time.time() - t0, 3)
    del model, params
    torch.cuda.empty_cache()
    cfg_path = hf_dir / "config.json"
    if cfg_path.exists():
        cfg_path.rename(hf_dir / "config.transformers.json")
    cfg_path.write_text(json.dumps(cfg_dict, indent=2))
    rec["hf_files"] = {p.name: p.stat().st_size for p in sorted(hf_dir.iterdir())}
    rec["safetensors_bytes"] = sum(v for k, v in rec["hf_files"].items() if k.endswith(".safetensors"))
    (hf_dir / "BUILD_DONE.json").write_text(json.dumps(rec))
    return rec


def vocab_size(cfg):
    for k in ("vocab_size", "n_vocab", "padded_vocab_size"):
        if isinstance(cfg.get(k), int):
            return cfg[k]
    tc = cfg.get("text_config") or {}
    if isinstance(tc.get("vocab_size"), int):
        return tc["vocab_size"]
    raise ValueError("no vocab_size in the config")


def one(spec, work, ldir, keep_hf=False, force=False, converter_config="catalog"):
    rec = dict(spec.to_json())
    rec.update({"stage": "make_gguf", "ok": False, "host": os.uname().nodename})
    t_start = time.time()
    base = work.base(spec.name)
    try:
        if common.is_done(base) and not force:
            rec.update({"ok": True, "cached": True, "base_file": base.name, "base_bytes": base.stat().st_size})
            return rec
        common.remove_gguf(base)
        if spec.kind == "tiny":
            import tiny_gguf
            rec["tiny_params"] = tiny_gguf.write_tiny(base, **spec.overrides)
            rec["base_type"] = "F16"
        else:
            hf = work.hf_dir(spec.name)
            done = hf / "BUILD_DONE.json"
            if done.exists() and not force:
                rec["build"] = json.loads(done.read_text())
                rec["build"]["reused"] = True
            else:
                rec["build"] = build_hf(spec, hf)
            if converter_config == "transformers" and (hf / "config.transformers.json").exists():
                shutil.copyfile(hf / "config.transformers.json", hf / "config.json")
            rec["converter_config"] = converter_config
            n_vocab = vocab_size(spec.config())
            tmp = Path(str(base) + ".partial")
            cmd = [sys.executable, str(HERE / "make_gguf.py"), "_convert", "--vocab-size", str(n_vocab),
                   "--llama-dir", str(ldir), "--", str(hf), "--outtype", "bf16", "--outfile", str(tmp),
                   "--model-name", spec.name]
            rec["convert_command"] = cmd
            logf = work.log(f"convert-{spec.name}.log")
            t0 = time.time()
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            with open(logf, "w") as lf:
                p = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env)
            rec["t_convert_s"] = round(time.time() - t0, 3)
            rec["convert_rc"] = p.returncode
            text = logf.read_text(errors="replace")
            rec["convert_log"] = text if len(text) <= MAX_LOG_CHARS else text[:MAX_LOG_CHARS // 2] + \
                "\n...[cut]...\n" + text[-MAX_LOG_CHARS // 2:]
            if p.returncode != 0 or not tmp.exists():
                raise RuntimeError(f"converter exited with {p.returncode}; last lines:\n" +
                                   "\n".join(text.splitlines()[-15:]))
            tmp.replace(base)
            rec["base_type"] = "BF16"
            rec["vocab_size"] = n_vocab
            if not keep_hf:
                shutil.rmtree(hf, ignore_errors=True)
                rec["hf_dir_removed"] = True
        rec["base_file"] = base.name
        rec["base_bytes"] = base.stat().st_size
        rec["ok"] = True
        common.write_sidecar(base, {k: v for k, v in rec.items() if k != "convert_log"})
    except Exception as e:
        rec["error"] = f"{type(e).__name__}: {e}"
        rec["traceback"] = traceback.format_exc()[-4000:]
    rec["wall_s"] = round(time.time() - t_start, 3)
    return rec


# ----------------------------------------------------------------------------------------------------------------
# driver: several models in parallel child processes
# ----------------------------------------------------------------------------------------------------------------
def drive(args):
    work = common.Work(args.work)
    specs = common.parse_specs(args.models)
    dl = common.deadline_from(args)
    sink = common.JsonlSink(args.out, work.state("models.jsonl"))
    lock = threading.Lock()
    todo = []
    schemes = common.parse_schemes(args.schemes, common.ALL_SCHEMES) if args.schemes else None
    keep = set() if args.keep == "none" else set(common.parse_schemes(args.keep, common.MEASURE_SCHEMES))
    dumped = common.dumped_pairs(args.dump_out, work.state("gguf_tensors.jsonl"))
    for s in specs:
        if common.is_done(work.base(s.name)) and not args.force:
            common.log(f"make_gguf: {s.name}: base GGUF already there ({work.base(s.name).stat().st_size} bytes)")
        elif schemes is not None and not args.force and \
                not common.base_needed(work, s.name, schemes, keep, not args.no_dump, dumped):
            common.log(f"make_gguf: {s.name}: not needed (every scheme's file or dump is there)")
        else:
            todo.append(s)
    results = []

    def run_child(spec):
        cmd = [sys.executable, str(HERE / "make_gguf.py"), "--one", spec.text, "--work", str(work.root),
               "--llama-dir", str(args.llama_dir or common.llama_dir()), "--converter-config", args.converter_config]
        if args.keep_hf:
            cmd.append("--keep-hf")
        if args.force:
            cmd.append("--force")
        common.log(f"make_gguf: {spec.name}: start")
        t0 = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        rec = None
        timer = None
        if dl.hard_at:
            def kill():
                try:
                    os.killpg(proc.pid, 9)
                except OSError:
                    pass
            timer = threading.Timer(max(1.0, dl.hard_left()), kill)
            timer.daemon = True
            timer.start()
        tail = []
        for line in proc.stdout:
            if line.startswith(RECORD_MARK):
                rec = json.loads(line[len(RECORD_MARK):])
            else:
                tail.append(line.rstrip())
                tail[:] = tail[-60:]
        proc.wait()
        if timer:
            timer.cancel()
        if rec is None:
            rec = dict(spec.to_json())
            rec.update({"stage": "make_gguf", "ok": False, "error": f"child exited {proc.returncode} without a record",
                        "child_output_tail": "\n".join(tail)})
        elif tail:
            rec["child_output_tail"] = "\n".join(tail[-20:])
        with lock:
            sink.write(rec)
            results.append(rec)
        common.log(f"make_gguf: {spec.name}: {'ok' if rec.get('ok') else 'FAILED ' + str(rec.get('error'))[:300]}"
                   f" in {time.time() - t0:.1f} s (convert {rec.get('t_convert_s')} s,"
                   f" base {rec.get('base_bytes')} bytes)")

    threads = []
    for spec in todo:
        while True:
            threads = [t for t in threads if t.is_alive()]
            if len(threads) < args.jobs:
                break
            time.sleep(0.2)
        if dl.passed():
            common.log(f"make_gguf: deadline reached; not started: {[s.name for s in todo[todo.index(spec):]]}")
            break
        t = threading.Thread(target=run_child, args=(spec,), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    bad = [r["model"] for r in results if not r.get("ok")]
    return 1 if bad else 0


def main(argv):
    if argv and argv[0] == "_convert":
        return convert_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="model specs (default: the six default models)")
    ap.add_argument("--one", help="build one spec in this process; print its record")
    ap.add_argument("--work", default=str(common.default_work()))
    ap.add_argument("--llama-dir")
    ap.add_argument("--out", help="append the records here too")
    ap.add_argument("--jobs", type=int, default=3, help="models built at once (default 3)")
    ap.add_argument("--keep-hf", action="store_true", help="keep the safetensors directory")
    ap.add_argument("--force", action="store_true", help="rebuild even when the base GGUF exists")
    ap.add_argument("--converter-config", choices=["catalog", "transformers"], default="catalog",
                    help="config.json the converter reads: the catalog's (default) or transformers' save")
    ap.add_argument("--schemes", help="build only models that stage 2 still needs for these schemes "
                                      "(with --keep, --no-dump, --dump-out as quantize_all.py takes them)")
    ap.add_argument("--keep", default="measure")
    ap.add_argument("--no-dump", action="store_true")
    ap.add_argument("--dump-out")
    common.add_deadline_args(ap)
    args = ap.parse_args(argv)
    if args.one:
        spec = common.ModelSpec(args.one) if "=" in args.one.split(",")[0] else common.parse_specs(args.one)[0]
        work = common.Work(args.work)
        rec = one(spec, work, common.llama_dir(args.llama_dir), args.keep_hf, args.force, args.converter_config)
        print(RECORD_MARK + json.dumps(rec, default=str), flush=True)
        return 0 if rec.get("ok") else 1
    return drive(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
