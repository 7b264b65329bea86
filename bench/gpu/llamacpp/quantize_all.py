#!/usr/bin/env python3
"""Stage 2 (+ the dumps of stage 3): llama-quantize every base GGUF into each scheme, several at once.

  python3 quantize_all.py --models SPECS --schemes "F32 F16 ... IQ4_XS" --keep "Q4_K_M Q8_0 Q2_K" \
      --jobs 4 --threads 4 --out OUT/llamacpp_quant.jsonl --dump-out OUT/llamacpp_gguf_tensors.jsonl

For each model and scheme: `.llama/bin/llama-quantize BASE.gguf OUT.gguf SCHEME THREADS` (log kept in the
record), then -- unless --no-dump -- dump_gguf.py's record of the result, then the file is deleted unless the
scheme is in --keep (disk is 64 GiB: an F32 Phi-3 is 15 GB). The base GGUF itself is dumped too (scheme
"base"). A job starts only when the free disk, less what the running jobs will still write, has room for its
estimated output plus --disk-margin-gib. Work already done (a kept file with its .done.json, or a dump in the
work dir's record) is skipped, so a second call continues. No job starts after the deadline; at --hard-at the
running ones are killed.

Schemes llama-quantize refuses without an importance matrix (--imatrix-schemes, the list llmem predicts as made
with one) get `--imatrix WORK/NAME.imatrix.gguf`, made once per model by `llama-imatrix` on the CPU (the GPU hidden:
a PTX-only CUDA backend would JIT-compile first) over this repository's README.md, 4 chunks of 512 tokens. The
tensor types depend on the matrix's presence, not on its values; records carry "imatrix": true.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402
import dump_gguf  # noqa: E402

MAX_LOG_CHARS = 400_000


def run_quantize(cmd, logf, hard_left, env):
    t0 = time.time()
    with open(logf, "w") as lf:
        proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=max(1.0, hard_left()) if hard_left() != float("inf") else None)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait()
    return proc.returncode, timed_out, time.time() - t0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="model specs (default: the six default models)")
    ap.add_argument("--schemes", default="all", help="schemes (default all 13: " + " ".join(common.ALL_SCHEMES) + ")")
    ap.add_argument("--keep", default="measure",
                    help="schemes whose files are kept for measuring (default Q4_K_M Q8_0 Q2_K); 'all' or 'none'")
    ap.add_argument("--jobs", type=int, default=4, help="quantisations at once (default 4)")
    ap.add_argument("--threads", type=int, default=4, help="threads per llama-quantize (default 4)")
    ap.add_argument("--work", default=str(common.default_work()))
    ap.add_argument("--llama-dir")
    ap.add_argument("--out", help="quantisation records (JSONL)")
    ap.add_argument("--dump-out", help="GGUF dumps (JSONL)")
    ap.add_argument("--no-dump", action="store_true")
    ap.add_argument("--no-base-dump", action="store_true", help="do not dump the base GGUF")
    ap.add_argument("--delete-base", action="store_true",
                    help="delete a model's base GGUF once all its schemes are done")
    ap.add_argument("--disk-margin-gib", type=float, default=3.0)
    ap.add_argument("--imatrix-schemes", default="IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ2_M IQ3_XXS IQ3_XS Q2_K_S",
                    help="schemes quantised with an importance matrix (default: those llama-quantize refuses "
                         "without one)")
    ap.add_argument("--reader", choices=["fast", "gguf-py"], default="fast")
    common.add_deadline_args(ap)
    args = ap.parse_args(argv)

    dl = common.deadline_from(args)
    work = common.Work(args.work)
    ldir = common.llama_dir(args.llama_dir)
    qbin = ldir / "bin" / "llama-quantize"
    specs = common.parse_specs(args.models)
    schemes = common.parse_schemes(args.schemes, common.ALL_SCHEMES)
    keep = set() if args.keep == "none" else set(common.parse_schemes(args.keep, common.MEASURE_SCHEMES))
    env_add, notes = common.library_env(ldir)
    env = dict(os.environ, **env_add)
    for n in notes:
        common.log("quantize_all: " + n)
    qsink = common.JsonlSink(args.out, work.state("quant.jsonl"))
    dsink = common.JsonlSink(args.dump_out, work.state("gguf_tensors.jsonl"))
    dumped_ms = common.dumped_pairs(args.dump_out, work.state("gguf_tensors.jsonl"))
    lock = threading.Lock()

    def is_dumped(name, scheme):
        return args.no_dump or (name, scheme) in dumped_ms

    # the job list: (spec, scheme); scheme 'base' = dump of the converter's output
    jobs = []
    for spec in specs:
        base = work.base(spec.name)
        if not common.is_done(base):
            # files that exist can still be dumped; the rest needs the base
            for s in schemes:
                if common.is_done(work.quant(spec.name, s)) and not is_dumped(spec.name, s):
                    jobs.append((spec, s))
            have = [s for s in schemes if common.is_done(work.quant(spec.name, s)) or
                    (s not in keep and is_dumped(spec.name, s))]
            if len(have) < len(schemes):
                common.log(f"quantize_all: {spec.name}: no base GGUF ({base}); skipped "
                           f"{len(schemes) - len(have)} scheme(s)")
            continue
        if not args.no_dump and not args.no_base_dump and not is_dumped(spec.name, "base"):
            jobs.append((spec, "base"))
        for s in schemes:
            out = work.quant(spec.name, s)
            have_file = common.is_done(out)
            need_file = s in keep and not have_file
            need_dump = not is_dumped(spec.name, s)
            if need_file or need_dump:
                jobs.append((spec, s))
    common.log(f"quantize_all: {len(jobs)} job(s): " + ", ".join(f"{sp.name}:{s}" for sp, s in jobs))
    pending = list(jobs)
    running = {}   # job -> reserved bytes
    results = []
    failed_models = set()

    def reserve_for(spec, scheme):
        if scheme == "base":
            return 0
        base = work.base(spec.name)
        if not base.exists():
            return 0
        return int(base.stat().st_size * common.SCHEME_SIZE_FACTOR.get(scheme, 1.0))

    imatrix_schemes = set(common.parse_list(args.imatrix_schemes, upper=True))
    imatrix_files = {}  # model name -> (path or None, record)
    imatrix_locks = {spec.name: threading.Lock() for spec in specs}

    def imatrix_for(spec):
        """The model's importance matrix, made on first use (None if llama-imatrix failed)."""
        with imatrix_locks[spec.name]:
            if spec.name in imatrix_files:
                return imatrix_files[spec.name][0]
            path = work.root / f"{spec.name}.imatrix.gguf"
            cmd = [str(ldir / "bin" / "llama-imatrix"), "-m", str(work.base(spec.name)),
                   "-f", str(common.REPO / "README.md"), "-o", str(path), "-c", "512", "--chunks", "4",
                   "-ngl", "0", "-t", str(max(1, args.threads))]
            logf = work.log(f"imatrix-{spec.name}.log")
            rc, timed_out, secs = run_quantize(cmd, logf, dl.hard_left, dict(env, CUDA_VISIBLE_DEVICES=""))
            ok = rc == 0 and path.is_file()
            rec = {"model": spec.name, "stage": "imatrix", "command": cmd, "rc": rc, "timed_out": timed_out,
                   "seconds": round(secs, 3), "ok": ok,
                   "log_tail": logf.read_text(errors="replace")[-4000:]}
            with lock:
                qsink.write(rec)
            common.log(f"quantize_all: {spec.name}: importance matrix " + ("made" if ok else "FAILED") +
                       f" in {secs:.1f} s")
            imatrix_files[spec.name] = (path if ok else None, rec)
            return imatrix_files[spec.name][0]

    def do_dump(spec, scheme, path):
        if args.no_dump:
            return None
        try:
            rec = dump_gguf.dump(path, spec.name, scheme, args.reader)
            if scheme in imatrix_schemes:
                rec["imatrix"] = True
        except Exception as e:
            rec = {"model": spec.name, "scheme": scheme, "file": Path(path).name, "error": f"{type(e).__name__}: {e}"}
        with lock:
            dsink.write(rec)
            dumped_ms.add((spec.name, scheme))
        return rec

    def job(spec, scheme):
        t0 = time.time()
        base = work.base(spec.name)
        if scheme == "base":
            rec = do_dump(spec, "base", base)
            common.log(f"quantize_all: {spec.name}: base dumped ({len(rec.get('tensors') or [])} tensors)"
                       if rec else f"quantize_all: {spec.name}: base")
            return
        out = work.quant(spec.name, scheme)
        rec = {"model": spec.name, "scheme": scheme, "stage": "quantize", "base_file": base.name,
               "base_bytes": base.stat().st_size if base.exists() else None, "out_file": out.name,
               "threads": args.threads, "ok": False}
        if common.is_done(out):
            rec.update({"ok": True, "cached": True, "file_bytes": out.stat().st_size})
        else:
            common.remove_gguf(out)
            tmp = Path(str(out) + ".partial")
            cmd = [str(qbin), str(base), str(tmp), scheme, str(args.threads)]
            if scheme in imatrix_schemes:
                imat = imatrix_for(spec)
                rec["imatrix"] = True
                if imat is not None:
                    cmd = [str(qbin), "--imatrix", str(imat), str(base), str(tmp), scheme, str(args.threads)]
            rec["command"] = cmd
            logf = work.log(f"quantize-{spec.name}-{scheme}.log")
            rc, timed_out, secs = run_quantize(cmd, logf, dl.hard_left, env)
            text = logf.read_text(errors="replace")
            rec.update({"rc": rc, "timed_out": timed_out, "seconds": round(secs, 3),
                        "log": text if len(text) <= MAX_LOG_CHARS else text[:MAX_LOG_CHARS // 2] +
                        "\n...[cut]...\n" + text[-MAX_LOG_CHARS // 2:]})
            if rc == 0 and tmp.exists():
                tmp.replace(out)
                rec["ok"] = True
                rec["file_bytes"] = out.stat().st_size
                common.write_sidecar(out, {k: v for k, v in rec.items() if k != "log"})
            else:
                try:
                    tmp.unlink()
                except FileNotFoundError:
                    pass
                rec["error"] = "timed out" if timed_out else f"llama-quantize exited with {rc}: " + \
                    " | ".join(text.strip().splitlines()[-5:])
        dump_info = ""
        if rec["ok"]:
            if not is_dumped(spec.name, scheme):
                d = do_dump(spec, scheme, out)
                dump_info = f", dumped {len(d.get('tensors') or [])} tensors" if d else ""
            if scheme not in keep:
                common.remove_gguf(out)
                rec["deleted_after_dump"] = True
        rec["wall_s"] = round(time.time() - t0, 3)
        with lock:
            if not rec.get("cached"):
                qsink.write(rec)
            results.append(rec)
            if not rec["ok"]:
                failed_models.add(spec.name)
        common.log(f"quantize_all: {spec.name} {scheme}: " + ("ok" if rec["ok"] else "FAILED " + rec.get("error", ""))
                   + f" {rec.get('file_bytes')} bytes in {rec.get('seconds', 0)} s{dump_info}"
                   + (" (kept)" if rec["ok"] and scheme in keep else ""))

    threads = {}
    while pending or threads:
        for jb, th in list(threads.items()):
            if not th.is_alive():
                del threads[jb]
                running.pop(jb, None)
        if pending and not dl.passed() and len(threads) < args.jobs:
            # the first pending job whose output fits on the disk now
            free = shutil.disk_usage(work.root).free - sum(running.values())
            started = False
            for jb in list(pending):
                need = reserve_for(*jb)
                if need + args.disk_margin_gib * 2**30 <= free or (not threads and need <= free):
                    pending.remove(jb)
                    th = threading.Thread(target=job, args=jb, daemon=True)
                    running[jb] = need
                    threads[jb] = th
                    th.start()
                    started = True
                    break
            if not started and not threads:
                common.log(f"quantize_all: not enough disk for any pending job "
                           f"({free / 2**30:.1f} GiB free); giving up on {len(pending)}")
                break
            if started:
                continue
        if pending and dl.passed() and not threads:
            break
        time.sleep(0.2)
        if dl.hard_left() < -5:
            break
    if pending:
        common.log(f"quantize_all: deadline: {len(pending)} job(s) not started: "
                   + ", ".join(f"{sp.name}:{s}" for sp, s in pending))
    if args.delete_base:
        for spec in specs:
            left = [s for sp, s in pending if sp.name == spec.name]
            if not left and spec.name not in failed_models and common.is_done(work.base(spec.name)):
                common.remove_gguf(work.base(spec.name))
                common.log(f"quantize_all: {spec.name}: base GGUF deleted")
    n_bad = sum(1 for r in results if not r["ok"])
    common.log(f"quantize_all: {len(results)} quantisation(s), {n_bad} failed, {len(pending)} not started")
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
