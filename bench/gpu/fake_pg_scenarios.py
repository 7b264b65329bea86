#!/usr/bin/env python3
"""Rank 0 of a DDP or FSDP2 run, on one real GPU, with PyTorch's fake process group (issue 20).

torch.testing._internal.distributed.fake_pg makes every collective a no-op that returns at once, so rank 0 of a
world of 2-8 allocates exactly what it would in a real run (its shards, DDP's gradient buckets, FSDP2's all-gather
and reduce-scatter buffers) on GPU 0, without the other ranks. Each scenario runs in a fresh process, measured as
measure_transformers.py measures the single-GPU ones: torch.cuda.max_memory_allocated / max_memory_reserved, the
process's NVML figure (nvidia-ml-py), and for FSDP2 torch.distributed._tools.fsdp2_mem_tracker.FSDPMemTracker's
peak by category. Every record carries the llmem command that estimates it.

    python3 bench/gpu/fake_pg_scenarios.py --list
    python3 bench/gpu/fake_pg_scenarios.py --split tune    --out bench/data/fake_pg_memory.jsonl
    python3 bench/gpu/fake_pg_scenarios.py --split holdout --out bench/data/fake_pg_memory_holdout.jsonl
    llmem validate bench/data/fake_pg_memory.jsonl      # rank 0 beside `llmem estimate --gpus N --sharding ...`

The split was fixed before any modelling was compared with a measurement: the "holdout" scenarios
(HOLDOUT_MODELS, and every world size 8 scenario) must not be looked at while tuning the model; compare them once,
at the end. DDP needs a comm hook that returns the bucket as it is (the fake group's allreduce does not complete
the future DDP waits for).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CATALOG = os.path.normpath(os.path.join(HERE, "..", "..", "data", "catalog"))

TUNE_MODELS = ["Qwen__Qwen2.5-0.5B", "TinyLlama__TinyLlama-1.1B-Chat-v1.0", "openai-community__gpt2-medium"]
HOLDOUT_MODELS = ["EleutherAI__pythia-1.4b", "google__gemma-2-2b", "microsoft__phi-2"]


def scenarios():
    out = []
    for model in TUNE_MODELS + HOLDOUT_MODELS:
        for sharding in ("ddp", "fsdp"):
            for world in (2, 4, 8):
                for seq, batch in ((512, 1), (1024, 2)):
                    holdout = model in HOLDOUT_MODELS or world == 8
                    sid = f"{model}-{sharding}-w{world}-s{seq}-b{batch}"
                    # the keys of measure_transformers.py's records, so that `llmem validate` reads these too
                    # ("adamw-default": torch.optim.AdamW(params), the foreach implementation)
                    out.append({"id": sid, "model": model, "mode": "train", "train": "full", "dtype": "bf16",
                                "sharding": sharding, "world": world, "gpus": world, "seq": seq,
                                "batch": batch, "precision": "bf16", "optimizer": "adamw-default", "steps": 2,
                                "split": "holdout" if holdout else "tune",
                                "llmem_args": [model.replace("__", "/"), "--train", "full", "--seq", str(seq),
                                               "--batch", str(batch), "--gpus", str(world), "--sharding", sharding]})
    return out


def nvml_process_bytes():
    try:
        import pynvml
        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h):
            if p.pid == os.getpid():
                return p.usedGpuMemory
    except Exception:
        return None
    return None


def run_one(sc):
    import torch
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore
    from transformers import AutoConfig, AutoModelForCausalLM

    rec = dict(sc)
    dist.init_process_group(backend="fake", rank=0, world_size=sc["world"], store=FakeStore())
    torch.cuda.set_device(0)
    with open(os.path.join(CATALOG, sc["model"] + ".json")) as f:
        cfg_dict = json.load(f)
    cfg = AutoConfig.for_model(cfg_dict.pop("model_type"), **cfg_dict)
    # FSDP2: built on the CPU and sharded, as a user loads a model too big for one GPU (fully_shard moves each
    # rank's shards to the mesh's GPU); building it on the GPU first would put the whole model on rank 0
    with torch.device("cuda" if sc["sharding"] == "ddp" else "cpu"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    tracker = None
    if sc["sharding"] == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        def as_is(state, bucket):  # the bucket, reduced by nobody: the fake group's futures never complete
            fut = torch.futures.Future()
            fut.set_result(bucket.buffer())
            return fut

        model = DDP(model, device_ids=[0])
        model.register_comm_hook(None, as_is)
    else:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
        mesh = init_device_mesh("cuda", (sc["world"],))
        inner = model.model if hasattr(model, "model") else getattr(model, "transformer", getattr(model, "gpt_neox", None))
        layers = getattr(inner, "layers", None) or getattr(inner, "h", None)
        for layer in layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
    opt = torch.optim.AdamW(model.parameters())
    # (FSDPMemTracker, torch 2.11, refuses a second iteration inside one tracking context: the steps run untracked)
    ids = torch.randint(0, cfg.vocab_size, (sc["batch"], sc["seq"]), device="cuda")
    torch.cuda.synchronize()
    rec["setup_allocated_bytes"] = torch.cuda.memory_allocated()
    rec["setup_max_allocated_bytes"] = torch.cuda.max_memory_allocated()

    def steps():
        for _ in range(sc["steps"]):
            out = model(input_ids=ids, labels=ids)
            out.loss.backward()
            opt.step()
            opt.zero_grad()

    if tracker is not None:
        with tracker:
            steps()
        try:
            peak = tracker.get_tracker_snapshot("peak")
            rec["fsdp_tracker_peak"] = {str(dev): {str(k): int(v) for k, v in cats.items()} for dev, cats in peak.items()}
        except Exception as e:
            rec["tracker_error"] = f"{type(e).__name__}: {e}"
    else:
        steps()
    torch.cuda.synchronize()
    rec["max_allocated_bytes"] = torch.cuda.max_memory_allocated()
    rec["max_reserved_bytes"] = torch.cuda.max_memory_reserved()
    # the caching allocator keeps what it reserved (no empty_cache), so the process's NVML figure after the run is
    # its peak: reserved peak + CUDA context
    rec["nvml_process_peak_bytes"] = nvml_process_bytes()
    rec["versions"] = {"torch": torch.__version__}
    rec["ok"] = True
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--split", choices=["tune", "holdout", "all"], default="tune")
    ap.add_argument("--run-one", metavar="JSON")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "data", "fake_pg_memory.jsonl"))
    ap.add_argument("--timeout", type=int, default=180)
    ap.add_argument("--deadline", type=int, default=540, help="start no scenario after this many seconds")
    ap.add_argument("--exclude", metavar="JSONL", action="append", default=[],
                    help="skip the scenarios with an ok record in this file (a run's remainder)")
    ap.add_argument("--shard", default="0/1", metavar="I/N",
                    help="run every N-th scenario from the I-th, so N processes can share one GPU (each allocates"
                         " a few GiB; torch's and NVML's figures are per process)")
    args = ap.parse_args()
    if args.run_one:
        sc = json.loads(args.run_one)
        try:
            rec = run_one(sc)
        except Exception as e:
            import traceback
            rec = dict(sc, ok=False, error=f"{type(e).__name__}: {e}", trace=traceback.format_exc()[-1500:])
        print("@@RESULT@@" + json.dumps(rec))
        return
    todo = [s for s in scenarios() if args.split == "all" or s["split"] == args.split]
    done = set()
    for path in args.exclude:
        with open(path) as f:
            done |= {r["id"] for r in map(json.loads, f) if r.get("ok")}
    todo = [s for s in todo if s["id"] not in done]
    shard, nshards = (int(x) for x in args.shard.split("/"))
    todo = todo[shard::nshards]
    if args.list:
        for s in todo:
            print(s["id"], s["split"], " ".join(s["llmem_args"]))
        return
    start = time.time()
    with open(args.out, "a") as out:
        for sc in todo:
            if time.time() - start > args.deadline:
                print(f"not started (deadline): {sc['id']}", file=sys.stderr)
                continue
            try:  # one scenario per fresh process
                p = subprocess.run([sys.executable, __file__, "--run-one", json.dumps(sc)], capture_output=True,
                                   text=True, timeout=args.timeout)
                line = next((l for l in p.stdout.splitlines() if l.startswith("@@RESULT@@")), None)
                rec = json.loads(line[len("@@RESULT@@"):]) if line else dict(sc, ok=False, error=p.stderr[-1500:])
            except subprocess.TimeoutExpired:
                rec = dict(sc, ok=False, error=f"timeout {args.timeout} s")
            out.write(json.dumps(rec) + "\n")
            out.flush()
            print(sc["id"], "ok" if rec.get("ok") else rec.get("error", "")[:200], file=sys.stderr)


if __name__ == "__main__":
    main()
