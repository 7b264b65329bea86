#!/usr/bin/env python3
"""Ground truth for llmem's memory estimates: what transformers (PyTorch) really uses on a GPU.

Driver (default): runs every scenario of scenarios.py in its own fresh Python process
(`measure_transformers.py --run-one '<scenario json>'`), up to --workers at a time on the one GPU, keeping the sum
of the running scenarios' rough memory bounds (`est_gib`) under --mem-budget-gib. Per-process NVML figures and
torch's per-process allocator statistics are independent, so concurrent processes do not disturb each other's
numbers as long as they all fit. A scenario that ran out of memory, or whose allocator had to free its cache and
retry (`num_alloc_retries` > 0), while other scenarios were running is re-run once alone. Each result is written
as one JSON line as soon as it arrives. After --deadline seconds no new scenario starts; at --hard-stop the
remaining children are killed (recorded as failures).

Child (--run-one): builds the model from data/catalog/<model>.json with random weights directly on the GPU and
runs one scenario: generate, forward (one pass, no KV cache) or train (2 optimizer steps). An NVML sampler thread
starts before torch is imported and reads this process's usedGpuMemory every 2 ms. See README.md for the fields.

  python3 measure_transformers.py --out results.jsonl --workers 8
  python3 measure_transformers.py --dry-run --out /tmp/x.jsonl      # no torch: tests scheduling and output
  python3 measure_transformers.py --list                            # print the scenario list
"""
import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenarios as scenario_mod  # noqa: E402

RESULT_MARK = "@@RESULT@@ "
READY_MARK = "@@READY@@"
ENV_KEYS = ("gpu_name", "driver", "torch", "transformers", "cuda")


# ----------------------------------------------------------------------------------------------------------------
# NVML sampler (child side; no torch needed)
# ----------------------------------------------------------------------------------------------------------------
class NvmlSampler:
    """Samples this process's usedGpuMemory (nvmlDeviceGetComputeRunningProcesses) every `interval` seconds.

    Before CUDA is initialised the process is not listed: the reading is 0. If the process's pid never shows up in
    NVML's list (a pid namespace between us and the driver), `source` falls back to the device's used memory minus
    its used memory when the sampler started, which is only meaningful when this process runs alone.
    """

    def __init__(self, interval=0.002, index=0):
        self.interval = interval
        self.index = index
        self.pid = os.getpid()
        self.peak = 0
        self.samples = 0
        self.pid_seen = False
        self.device_peak_delta = 0
        self.error = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.ok = False
        try:
            import pynvml
            self.nv = pynvml
            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self.device_baseline = pynvml.nvmlDeviceGetMemoryInfo(self.handle).used
            self.ok = True
        except Exception as e:  # no NVML: record why, measure the rest
            self.error = f"{type(e).__name__}: {e}"
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def read(self):
        """(this process's usedGpuMemory or 0, device used - baseline)."""
        if not self.ok:
            return 0, 0
        nv = self.nv
        mine = 0
        try:
            procs = nv.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"
            procs = []
        for p in procs:
            if p.pid == self.pid:
                self.pid_seen = True
                mine = p.usedGpuMemory or 0
        try:
            dev = nv.nvmlDeviceGetMemoryInfo(self.handle).used - self.device_baseline
        except Exception:
            dev = 0
        return mine, dev

    def sample(self):
        mine, dev = self.read()
        with self._lock:
            self.samples += 1
            if mine > self.peak:
                self.peak = mine
            if dev > self.device_peak_delta:
                self.device_peak_delta = dev
        return mine, dev

    def _loop(self):
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval)

    def start(self):
        if self.ok:
            try:
                self.device_baseline = self.nv.nvmlDeviceGetMemoryInfo(self.handle).used
            except Exception:
                pass
            self.thread.start()

    def stop(self):
        self._stop.set()
        if self.ok and self.thread.is_alive():
            self.thread.join(timeout=2)
            self.sample()  # the final state, synchronously

    def now(self):
        """A synchronous reading of this process (with the device-delta fallback)."""
        mine, dev = self.sample()
        return mine if self.pid_seen else dev

    def results(self):
        return {
            "nvml_process_peak_bytes": self.peak if self.pid_seen else self.device_peak_delta,
            "nvml_samples": self.samples,
            "nvml_source": "process" if self.pid_seen else ("device_delta" if self.ok else "unavailable"),
            "nvml_error": self.error,
        }


# ----------------------------------------------------------------------------------------------------------------
# Child: one scenario
# ----------------------------------------------------------------------------------------------------------------
class Stages:
    """Per-stage peaks: max_memory_allocated/reserved since the last stage boundary, then reset the peaks.
    The scenario's overall peaks are the maxima over all stages (a reset would otherwise lose them)."""

    def __init__(self, torch):
        self.torch = torch
        self.peaks = {}
        self.reserved_peaks = {}
        self.allocated_after = {}
        self.max_allocated = 0
        self.max_reserved = 0

    def close(self, name):
        cuda = self.torch.cuda
        p = cuda.max_memory_allocated()
        r = cuda.max_memory_reserved()
        self.peaks[name] = p
        self.reserved_peaks[name] = r
        self.allocated_after[name] = cuda.memory_allocated()
        self.max_allocated = max(self.max_allocated, p)
        self.max_reserved = max(self.max_reserved, r)
        cuda.reset_peak_memory_stats()


def tensor_storage_bytes(obj, torch, depth=0, seen=None):
    """Bytes of the distinct CUDA storages reachable from obj (a KV cache object, lists, tuples)."""
    if seen is None:
        seen = set()
    if depth > 6 or obj is None:
        return 0
    if torch.is_tensor(obj):
        if not obj.is_cuda:
            return 0
        st = obj.untyped_storage()
        key = st.data_ptr()
        if key in seen:
            return 0
        seen.add(key)
        return st.nbytes()
    total = 0
    if isinstance(obj, (list, tuple)):
        for x in obj:
            total += tensor_storage_bytes(x, torch, depth + 1, seen)
    elif isinstance(obj, dict):
        for x in obj.values():
            total += tensor_storage_bytes(x, torch, depth + 1, seen)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        for x in vars(obj).values():
            total += tensor_storage_bytes(x, torch, depth + 1, seen)
    return total


def aux(rec, key, fn):
    """An auxiliary measurement: a bug or an API difference in it must not fail the scenario."""
    try:
        rec[key] = fn()
    except Exception as e:
        rec[key] = None
        rec.setdefault("aux_errors", {})[key] = f"{type(e).__name__}: {str(e)[:300]}"


def scenario_config(sc):
    from transformers import AutoConfig
    with open(os.path.join(scenario_mod.CATALOG, sc["model"] + ".json")) as f:
        cfg_dict = json.load(f)
    model_type = cfg_dict.pop("model_type")
    # e.g. an MoE cut to fewer layers; a copy, since building the config may change a nested dict in place (mllama's
    # text_config), which would change the checkpoint folder's name after the checkpoint was written
    cfg_dict.update(copy.deepcopy(sc.get("config_override") or {}))
    return AutoConfig.for_model(model_type, **cfg_dict)


def _quant_tag(sc):
    with open(os.path.join(scenario_mod.CATALOG, sc["model"] + ".json")) as f:
        q = json.load(f).get("quantization_config")
    return q.get("quant_method", "quantised") if q else ""


def checkpoint_dir(sc):
    """Where the random-weight checkpoint of a load=from_pretrained scenario lives: one per model, cut and dtype."""
    def part(k, v):  # a whole sub-config (mllama's cut text_config) by a digest, keeping the name short
        if isinstance(v, dict):
            import hashlib
            return f"-{k}{hashlib.sha1(json.dumps(v, sort_keys=True).encode()).hexdigest()[:12]}"
        return f"-{k}{v}"
    key = sc["model"] + "".join(part(k, v) for k, v in sorted((sc.get("config_override") or {}).items())
                                if k != "layer_types") + "-" + sc["dtype"] + ("-" + quant_tag if (quant_tag := _quant_tag(sc)) else "")
    root = os.environ.get("LLMEM_CKPT_DIR") or os.path.join(os.environ.get("TMPDIR", "/tmp"), "llmem-ckpt")
    return os.path.join(root, key)


def auto_model_class(sc):
    """The Auto class a scenario loads with: AutoModelForCausalLM, or AutoModelForImageTextToText where a scenario
    says so (mllama: AutoModelForCausalLM maps it to the text-only MllamaForCausalLM, without the vision tower that
    users who load the checkpoint get)."""
    import transformers
    if sc.get("auto_class") == "image-text-to-text":
        return transformers.AutoModelForImageTextToText
    if sc.get("auto_class"):
        raise ValueError(f"unknown auto_class {sc['auto_class']}")
    return transformers.AutoModelForCausalLM


def prepare_checkpoint(sc, torch):
    """Before GO (CPU only): from_config on the CPU with random weights, save_pretrained (safetensors), once per
    checkpoint_dir; concurrent children wait on a file lock. The GPU is not touched."""
    import fcntl
    AutoModelForCausalLM = auto_model_class(sc)
    d = checkpoint_dir(sc)
    os.makedirs(os.path.dirname(d), exist_ok=True)
    with open(d + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(d, "done")):
            return d
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[sc["dtype"]]
        cfg = scenario_config(sc)
        quant = getattr(cfg, "quantization_config", None)
        if quant is not None:  # the weights are made unquantised, then stored as the quantised checkpoint
            del cfg.quantization_config
        with torch.device("cpu"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
        linears = {n + ".weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
        model.save_pretrained(d)
        del model
        if quant is not None:
            quantise_checkpoint(d, dict(quant) if isinstance(quant, dict) else quant.to_dict(), linears, torch)
        open(os.path.join(d, "done"), "w").close()
    return d


def checkpoint_tensor_bytes(d):
    """The tensor bytes of a checkpoint's safetensors headers, per dtype (what `llmem params DIR --json` calls
    stored_bytes, summed)."""
    import struct
    out = {}
    for name in sorted(os.listdir(d)):
        if name.endswith(".safetensors"):
            with open(os.path.join(d, name), "rb") as f:
                header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
            for key, t in header.items():
                if key != "__metadata__":
                    out[t["dtype"]] = out.get(t["dtype"], 0) + t["data_offsets"][1] - t["data_offsets"][0]
    return out


def quantise_checkpoint(d, quant, linears, torch):
    """Rewrites the bf16 checkpoint in D as the hub stores a FineGrainedFP8 checkpoint (DeepSeek-V3, Qwen3-*-FP8):
    each quantised linear's weight as float8_e4m3fn in 128x128 blocks with a float32 `weight_scale_inv` per block
    (the dequantisation multiplier, amax / 448), everything else as it was; quantization_config back in
    config.json. Quantised: the weights of nn.Linear modules (LM head excluded, as the quantiser's
    get_modules_to_not_convert adds it) and the per-expert projections save_pretrained writes for the fused experts,
    except modules_to_not_convert (substring match, as transformers' should_convert_module)."""
    import re
    from safetensors.torch import load_file, save_file
    if quant.get("quant_method") != "fp8":
        raise ValueError(f"prepare_checkpoint: quant_method {quant.get('quant_method')} is not written by this harness")
    br, bc = quant.get("weight_block_size") or [128, 128]
    skip = list(quant.get("modules_to_not_convert") or []) + ["lm_head"]
    expert = re.compile(r"\.experts\.\d+\.(gate_proj|up_proj|down_proj|w1|w2|w3)\.weight$")
    fmax = torch.finfo(torch.float8_e4m3fn).max
    for name in sorted(os.listdir(d)):
        if not name.endswith(".safetensors"):
            continue
        path = os.path.join(d, name)
        tensors = load_file(path)
        out = {}
        for key, t in tensors.items():
            module = key[:-len(".weight")] if key.endswith(".weight") else key
            if t.dim() == 2 and (key in linears or expert.search(key)) and not any(x in module for x in skip):
                rows, cols = t.shape
                pr, pc = -rows % br, -cols % bc
                w = torch.nn.functional.pad(t.float(), (0, pc, 0, pr))
                blocks = w.view((rows + pr) // br, br, (cols + pc) // bc, bc)
                scale = blocks.abs().amax(dim=(1, 3)).clamp(min=1e-12) / fmax
                q = (blocks / scale[:, None, :, None]).clamp(-fmax, fmax).view(rows + pr, cols + pc)[:rows, :cols]
                out[key] = q.to(torch.float8_e4m3fn).contiguous()
                out[module + ".weight_scale_inv"] = scale.float().contiguous()
            else:
                out[key] = t
            if t.dim() == 3 and ".experts." in key:
                raise ValueError(f"{key}: save_pretrained wrote fused experts; the hub's per-expert FP8 layout is not "
                                 "made from them here")
        # a new file renamed over the old: the tensors read from it may still map its pages
        save_file(out, path + ".tmp", metadata={"format": "pt"})
        os.replace(path + ".tmp", path)
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):  # the shards' weight_map gains the scales
        with open(index) as f:
            idx = json.load(f)
        from safetensors import safe_open
        wm = {}
        for name in sorted(set(idx["weight_map"].values())):
            with safe_open(os.path.join(d, name), "pt") as f:
                wm.update({key: name for key in f.keys()})
        idx["weight_map"] = dict(sorted(wm.items()))
        idx.setdefault("metadata", {}).pop("total_size", None)  # a size, not read by from_pretrained
        with open(index, "w") as f:
            json.dump(idx, f, indent=2)
    with open(os.path.join(d, "config.json")) as f:
        config = json.load(f)
    config["quantization_config"] = quant
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def build_model(sc, torch, transformers):
    AutoModelForCausalLM = auto_model_class(sc)
    cfg = scenario_config(sc)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[sc["dtype"]]
    kwargs = {}
    if sc.get("attn_requested"):
        kwargs["attn_implementation"] = sc["attn_requested"]
    if sc.get("quant_options"):  # loading options of a quantised checkpoint, e.g. FineGrainedFP8Config(dequantize=True)
        with open(os.path.join(checkpoint_dir(sc), "config.json")) as f:
            method = json.load(f)["quantization_config"]["quant_method"]
        if method != "fp8":
            raise ValueError(f"quant_options for quant_method {method} are not passed by this harness")
        kwargs["quantization_config"] = transformers.FineGrainedFP8Config(**sc["quant_options"])
    if sc.get("load") == "from_pretrained":  # what users run: the saved checkpoint, loaded onto the GPU
        d = checkpoint_dir(sc)
        if not os.path.isfile(os.path.join(d, "config.json")):
            parent = os.path.dirname(d)
            raise FileNotFoundError(f"{d} has no config.json; {parent} holds {sorted(os.listdir(parent)) if os.path.isdir(parent) else 'nothing'}"
                                    + (f"; {d} holds {sorted(os.listdir(d))}" if os.path.isdir(d) else ""))
        model = AutoModelForCausalLM.from_pretrained(d, dtype=dtype, device_map="cuda", **kwargs)
        return model, model.config
    with torch.device("cuda"):
        try:
            model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, **kwargs)
        except TypeError as e:
            if "dtype" not in str(e):
                raise
            model = AutoModelForCausalLM.from_config(cfg, torch_dtype=dtype, **kwargs)
    # insurance: everything must live on the GPU (should a transformers version build elsewhere first)
    if any(not t.is_cuda for t in list(model.parameters()) + list(model.buffers())):
        model.to("cuda")
        model._llmem_moved_to_cuda = True
    return model, cfg


def model_facts(model):
    params = list(model.parameters())
    rec = {
        "param_count": sum(p.numel() for p in params),
        "param_bytes": sum(p.numel() * p.element_size() for p in params),
        "buffer_bytes": sum(b.numel() * b.element_size() for b in model.buffers()),
        "param_dtypes": sorted({str(p.dtype).replace("torch.", "") for p in params}),
        "off_gpu_params": sum(1 for p in params if not p.is_cuda),
    }
    return rec


def wait_for_go():
    """With the driver (LLMEM_WAIT_GO=1): say READY once the CPU-only start-up is done and wait for GO, so that the
    driver counts this scenario's memory only from now on. Returns False if told to quit."""
    if os.environ.get("LLMEM_WAIT_GO") != "1":
        return True
    sys.stdout.write(READY_MARK + "\n")
    sys.stdout.flush()
    line = sys.stdin.readline()
    return line.strip() == "GO"


def run_scenario(sc, rec, sampler):
    t0 = time.time()
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, LogitsProcessor  # noqa: F401 (import cost)
    if sc.get("train") == "lora":
        import peft  # noqa: F401
    rec["t_import_s"] = round(time.time() - t0, 2)
    if sc.get("load") == "from_pretrained":
        t1 = time.time()
        prepare_checkpoint(sc, torch)
        rec["t_checkpoint_s"] = round(time.time() - t1, 2)
        aux(rec, "checkpoint_bytes", lambda: sum(os.path.getsize(os.path.join(checkpoint_dir(sc), f))
                                                 for f in os.listdir(checkpoint_dir(sc)) if f.endswith(".safetensors")))
        aux(rec, "checkpoint_tensor_bytes", lambda: checkpoint_tensor_bytes(checkpoint_dir(sc)))
    if not wait_for_go():
        raise SystemExit(0)
    rec["_t_go"] = time.time()
    sampler.start()  # before CUDA is initialised: readings start at 0
    rec["gpu_name"] = None
    rec["torch"] = torch.__version__
    rec["transformers"] = transformers.__version__
    rec["cuda"] = torch.version.cuda
    try:
        import pynvml
        d = pynvml.nvmlSystemGetDriverVersion()
        rec["driver"] = d.decode() if isinstance(d, bytes) else d
    except Exception:
        rec["driver"] = None
    rec["pytorch_cuda_alloc_conf"] = os.environ.get("PYTORCH_CUDA_ALLOC_CONF")

    # CUDA context + the allocator's first block
    torch.cuda.init()
    trace_dir = os.environ.get("LLMEM_TRACE_DIR")
    if trace_dir:  # every allocator event from here on (see write_trace)
        torch.cuda.memory._record_memory_history(enabled="all", context="alloc", stacks="python",
                                                 max_entries=8_000_000)
    x = torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    rec["gpu_name"] = torch.cuda.get_device_name(0)
    rec["gpu_total_bytes"] = torch.cuda.get_device_properties(0).total_memory
    for _ in range(50):  # the process shows up in NVML's list a moment after its context exists
        if sampler.sample()[0] or not sampler.ok:
            break
        time.sleep(0.01)
    rec["nvml_process_after_init_bytes"] = sampler.now()
    rec["nvml_pid_found"] = sampler.pid_seen
    rec["after_init_allocated_bytes"] = torch.cuda.memory_allocated()
    rec["after_init_reserved_bytes"] = torch.cuda.memory_reserved()
    del x
    torch.cuda.reset_peak_memory_stats()
    st = Stages(torch)
    rec["stage_peaks"] = st.peaks
    rec["stage_reserved_peaks"] = st.reserved_peaks
    rec["stage_allocated_after"] = st.allocated_after

    try:
        _run_body(sc, rec, sampler, torch, transformers, st)
        rec["ok"] = True
    except Exception as e:
        oom = isinstance(e, getattr(torch, "OutOfMemoryError", ())) or "out of memory" in str(e).lower()
        rec["ok"] = False
        rec["oom"] = bool(oom)
        rec["error"] = f"{type(e).__name__}: {str(e)[:1500]}"
        rec["traceback"] = traceback.format_exc()[-3000:]
        try:
            st.close("failed")
        except Exception:
            pass
    finally:
        try:
            torch.cuda.synchronize()
            stats = torch.cuda.memory_stats()
            rec["alloc_retries"] = stats.get("num_alloc_retries", 0)
            rec["alloc_ooms"] = stats.get("num_ooms", 0)
            rec["allocated_end_bytes"] = torch.cuda.memory_allocated()
            rec["reserved_end_bytes"] = torch.cuda.memory_reserved()
            st.close("end")
            rec["nvml_process_end_bytes"] = sampler.now()
        except Exception as e:
            rec.setdefault("error", f"stats: {e}")
        rec["max_allocated_bytes"] = st.max_allocated
        rec["max_reserved_bytes"] = st.max_reserved
        if trace_dir:
            aux(rec, "trace_file", lambda: write_trace(torch, trace_dir, sc["id"]))


# Python frames of an allocation worth keeping in a trace: the innermost ones in model/library code.
TRACE_FRAME_KEYS = ("transformers/", "peft/", "torch/optim", "torch/nn/", "torch/utils/checkpoint",
                    "torch/autograd", "measure_transformers", "torch/_inductor", "torchinductor",
                    "torch/cuda/graphs")


def write_trace(torch, trace_dir, sc_id):
    """Writes the caching allocator's event history (torch.cuda.memory._snapshot()) as xz-compressed JSON lines:
    line 1 a header, then one event per line: [action, address, size, frame_id], where frame_id indexes the
    header's "frames" list written last (a line {"frames": [...]}), the innermost 3 frames in model/library code
    ("file:line:function" joined by " < "). Actions as PyTorch names them: alloc, free_requested, free_completed,
    segment_alloc, segment_free, segment_map, segment_unmap, snapshot, oom."""
    import lzma
    snap = torch.cuda.memory._snapshot()
    torch.cuda.memory._record_memory_history(enabled=None)
    events = snap.get("device_traces", [[]])[0]
    frames, frame_ids = [], {}
    path = os.path.join(trace_dir, sc_id + ".trace.jsonl.xz")
    os.makedirs(trace_dir, exist_ok=True)
    with lzma.open(path, "wt") as f:
        f.write(json.dumps({"id": sc_id, "events": len(events),
                            "segments_at_end": [[sg.get("address"), sg.get("total_size"), sg.get("segment_type")]
                                                for sg in snap.get("segments", [])]}) + "\n")
        for e in events:
            keep = []
            for fr in e.get("frames") or []:
                fn = fr.get("filename", "")
                if any(k in fn for k in TRACE_FRAME_KEYS):
                    short = fn.split("site-packages/")[-1]
                    keep.append(f"{short}:{fr.get('line')}:{fr.get('name')}")
                    if len(keep) == 3:
                        break
            key = " < ".join(keep)
            fid = frame_ids.setdefault(key, len(frames))
            if fid == len(frames):
                frames.append(key)
            f.write(json.dumps([e.get("action"), e.get("addr"), e.get("size"), fid]) + "\n")
        f.write(json.dumps({"frames": frames}) + "\n")
    return os.path.basename(path)


def _run_body(sc, rec, sampler, torch, transformers, st):
    mode = sc["mode"]
    t = time.time()
    model, cfg = build_model(sc, torch, transformers)
    torch.cuda.synchronize()
    rec["t_build_s"] = round(time.time() - t, 2)
    rec["weights_allocated_bytes"] = torch.cuda.memory_allocated()
    rec["model_class"] = type(model).__name__
    rec["moved_to_cuda"] = bool(getattr(model, "_llmem_moved_to_cuda", False))
    aux(rec, "attn", lambda: model.config._attn_implementation)
    aux(rec, "experts_implementation", lambda: getattr(model.config, "_experts_implementation", None))
    facts = {}
    aux(facts, "f", lambda: model_facts(model))
    rec.update(facts["f"] or {})
    vocab = model.config.get_text_config().vocab_size  # a vision-language config keeps it in text_config
    if mode in ("generate", "forward"):
        model.eval()
        st.close("load")
        rec["nvml_after_load_bytes"] = sampler.now()
        B, P = sc["batch"], sc["prompt"]
        ids = torch.randint(0, vocab, (B, P), device="cuda")
        if mode == "forward":
            with torch.inference_mode():
                out = model(ids, use_cache=False)
                torch.cuda.synchronize()
                rec["after_forward_allocated_bytes"] = torch.cuda.memory_allocated()
                aux(rec, "logits_bytes", lambda: out.logits.numel() * out.logits.element_size())
                aux(rec, "logits_dtype", lambda: str(out.logits.dtype).replace("torch.", ""))
                del out
            st.close("forward")
        else:
            _generate(sc, rec, model, ids, torch, st)
    else:
        _train(sc, rec, model, ids_shape=(sc["batch"], sc["seq"]), vocab=vocab, torch=torch, st=st,
               sampler=sampler)


def dynamo_counters():
    """torch._dynamo's counters (frames compiled, graph breaks, inductor, CUDA-graph skips), or None if nothing
    was compiled."""
    import sys
    if "torch._dynamo.utils" not in sys.modules:
        return None
    from torch._dynamo.utils import counters
    return {k: {str(kk): int(vv) for kk, vv in v.items()} for k, v in counters.items() if v} or None


def _generate(sc, rec, model, ids, torch, st):
    from transformers import LogitsProcessor, LogitsProcessorList
    N = sc["new_tokens"]

    class Probe(LogitsProcessor):
        """Called once per generated token, right after that step's forward: closes the 'prefill' stage at the
        first call and records memory_allocated at every step (KV cache growth)."""

        def __init__(self):
            self.alloc = []
            self.reserved = []
            self.peak = []

        def __call__(self, input_ids, scores):
            if not self.alloc:
                st.close("prefill")
            self.alloc.append(torch.cuda.memory_allocated())
            self.reserved.append(torch.cuda.memory_reserved())
            self.peak.append(torch.cuda.max_memory_allocated())  # since the stage began (Stages resets it)
            return scores

    probe = Probe()
    aux(rec, "cache_implementation", lambda: getattr(model.generation_config, "cache_implementation", None))
    aux(rec, "compile_config", lambda: repr(getattr(model.generation_config, "compile_config", None))[:300])
    mask = torch.ones_like(ids)
    extra = {"cache_implementation": sc["cache_impl"]} if sc.get("cache_impl") else {}
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=N, min_new_tokens=N, do_sample=False,
                             pad_token_id=0, logits_processor=LogitsProcessorList([probe]),
                             return_dict_in_generate=True, **extra)
        torch.cuda.synchronize()
        seqs = out.sequences if hasattr(out, "sequences") else out
        rec["generated_tokens"] = int(seqs.shape[1] - ids.shape[1])
        rec["after_generate_allocated_bytes"] = torch.cuda.memory_allocated()  # output + cache still referenced
        pkv = getattr(out, "past_key_values", None)
        rec["kv_cache_class"] = type(pkv).__name__ if pkv is not None else None
        aux(rec, "kv_cache_bytes", lambda: tensor_storage_bytes(pkv, torch) if pkv is not None else None)
        del out, pkv, seqs
    rec["after_generate_freed_allocated_bytes"] = torch.cuda.memory_allocated()
    rec["step_allocated"] = probe.alloc
    rec["step_reserved"] = probe.reserved
    rec["step_max_allocated"] = probe.peak
    # whether generate compiled the decoding step (a static cache does, with mode "reduce-overhead": CUDA graphs)
    aux(rec, "dynamo_counters", dynamo_counters)
    rec["allocated_after_prefill_bytes"] = probe.alloc[0] if probe.alloc else None
    st.close("decode")


def _train(sc, rec, model, ids_shape, vocab, torch, st, sampler):
    model.config.use_cache = False
    if sc.get("grad_ckpt") and not sc.get("hf_trainer"):  # the Trainer enables it itself, with its own kwargs
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if sc["train"] == "lora":
        from peft import LoraConfig, get_peft_model
        import peft
        rec["peft"] = getattr(peft, "__version__", None)
        lcfg = LoraConfig(r=sc["lora_r"], lora_alpha=2 * sc["lora_r"], lora_dropout=0.0,
                          target_modules=list(sc["lora_targets"]), bias="none", task_type="CAUSAL_LM")
        model = get_peft_model(model, lcfg)
        rec["after_lora_allocated_bytes"] = torch.cuda.memory_allocated()
        facts = {}
        aux(facts, "f", lambda: model_facts(model))
        rec.update({k: v for k, v in (facts["f"] or {}).items() if k != "off_gpu_params"})
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    rec["trainable_params"] = sum(p.numel() for p in params)
    rec["trainable_param_bytes"] = sum(p.numel() * p.element_size() for p in params)
    rec["trainable_dtypes"] = sorted({str(p.dtype).replace("torch.", "") for p in params})
    if sc.get("hf_trainer"):
        _train_hf(sc, rec, model, ids_shape, vocab, torch, st, sampler)
        return
    opt = make_optimizer(sc["optimizer"], params, torch)
    aux(rec, "optimizer_defaults", lambda: {k: v for k, v in opt.defaults.items()
                                            if k in ("foreach", "fused", "momentum", "relative_step")})
    st.close("load")
    rec["nvml_after_load_bytes"] = sampler.now()
    amp = sc["precision"] == "amp-bf16"
    ids = torch.randint(0, vocab, ids_shape, device="cuda")
    losses = []
    for step in range(1, sc.get("steps", 2) + 1):
        peaks = []
        if amp:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(input_ids=ids, labels=ids).loss
        else:
            loss = model(input_ids=ids, labels=ids).loss
        torch.cuda.synchronize()
        st.close(f"step_{step}_forward")
        loss.backward()
        losses.append(float(loss.detach()))
        del loss
        torch.cuda.synchronize()
        st.close(f"step_{step}_backward")
        opt.step()
        torch.cuda.synchronize()
        if step == 1:
            aux(rec, "optimizer_state_bytes", lambda: tensor_storage_bytes(list(opt.state.values()), torch))
        st.close(f"step_{step}_optimizer")
        opt.zero_grad(set_to_none=True)
        for ph in ("forward", "backward", "optimizer"):
            peaks.append(st.peaks[f"step_{step}_{ph}"])
        st.peaks[f"step_{step}"] = max(peaks)
    rec["losses"] = losses


def make_optimizer(name, params, torch):
    """The optimizer as user code writes it. "adamw" (the first stored runs) is AdamW(fused=False): passing fused
    turns the foreach default off, so it runs the single-tensor for-loop, like "adamw-forloop"."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-5, fused=False)
    if name == "adamw-default":  # torch.optim.AdamW(params): foreach on CUDA
        return torch.optim.AdamW(params, lr=1e-5)
    if name == "adamw-fused":
        return torch.optim.AdamW(params, lr=1e-5, fused=True)
    if name == "adamw-forloop":
        return torch.optim.AdamW(params, lr=1e-5, foreach=False)
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-5, momentum=0)
    if name == "sgd-momentum":  # foreach by default on CUDA, like AdamW
        return torch.optim.SGD(params, lr=1e-5, momentum=0.9)
    if name == "adafactor":  # transformers' own, with its documented fine-tuning settings' defaults
        from transformers.optimization import Adafactor
        return Adafactor(params, lr=None, relative_step=True, scale_parameter=True, warmup_init=False)
    raise ValueError("unknown optimizer " + name)


class _RandomIds:
    """A map-style dataset of random token ids (input_ids = labels), as a tokenised corpus would give."""

    def __init__(self, n, seq, vocab, seed=0):
        import torch
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, vocab, (n, seq), generator=g)

    def __len__(self):
        return self.ids.shape[0]

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def _train_hf(sc, rec, model, ids_shape, vocab, torch, st, sampler):
    """transformers.Trainer with TrainingArguments defaults except: bf16=True (as every recipe sets), the batch,
    gradient_accumulation_steps, gradient_checkpointing, max_steps, and no logging/saving/reporting (memory-neutral).
    Stages: load (model built, peft), then per optimizer step: step_N_fwd_bwd (from the step's start to the
    optimizer's call: every micro-batch's forward and backward, gradient clipping), step_N_optimizer, step_N_end."""
    import tempfile as _tf
    from transformers import Trainer, TrainingArguments, TrainerCallback
    B, S = ids_shape
    ga = sc.get("grad_accum") or 1
    steps = sc.get("steps", 2)
    kw = dict(output_dir=_tf.mkdtemp(prefix="llmem_hf_"), per_device_train_batch_size=B,
              gradient_accumulation_steps=ga, max_steps=steps, bf16=True, report_to="none",
              save_strategy="no", logging_strategy="no", disable_tqdm=True, remove_unused_columns=False,
              gradient_checkpointing=bool(sc.get("grad_ckpt")))
    if sc.get("hf_optim"):
        kw["optim"] = sc["hf_optim"]
    args = TrainingArguments(**kw)
    rec["hf_optim"] = str(getattr(args, "optim", None))
    aux(rec, "hf_gradient_checkpointing_kwargs", lambda: args.gradient_checkpointing_kwargs)
    aux(rec, "hf_max_grad_norm", lambda: args.max_grad_norm)
    aux(rec, "hf_pin_memory", lambda: args.dataloader_pin_memory)
    counter = {"n": 0}

    class Probe(TrainerCallback):
        def on_train_begin(self, a, state, control, **k):
            torch.cuda.synchronize()
            st.close("trainer_setup")

        def on_step_begin(self, a, state, control, **k):
            counter["n"] += 1

        def on_pre_optimizer_step(self, a, state, control, **k):
            torch.cuda.synchronize()
            st.close(f"step_{counter['n']}_fwd_bwd")

        def on_optimizer_step(self, a, state, control, **k):
            torch.cuda.synchronize()
            st.close(f"step_{counter['n']}_optimizer")

        def on_step_end(self, a, state, control, **k):
            torch.cuda.synchronize()
            st.close(f"step_{counter['n']}_end")

    st.close("load")
    rec["nvml_after_load_bytes"] = sampler.now()
    ds = _RandomIds(B * ga * steps, S, vocab)
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[Probe()])
    out = trainer.train()
    torch.cuda.synchronize()
    st.close("train_end")
    opt = trainer.optimizer
    aux(rec, "hf_optimizer_class", lambda: type(getattr(opt, "optimizer", opt)).__name__)
    aux(rec, "optimizer_defaults", lambda: {k: v for k, v in getattr(opt, "optimizer", opt).defaults.items()
                                            if k in ("foreach", "fused", "momentum", "weight_decay")})
    aux(rec, "optimizer_state_bytes",
        lambda: tensor_storage_bytes(list(getattr(opt, "optimizer", opt).state.values()), torch))
    aux(rec, "hf_train_loss", lambda: float(out.training_loss))
    aux(rec, "hf_autocast_weights_dtype", lambda: sorted({str(p.dtype) for p in model.parameters()}))


def child_main(sc_json, dry_run=False):
    sc = json.loads(sc_json)
    if sc.get("alloc_conf"):  # read by the caching allocator at its first use: set before torch is imported
        os.environ["PYTORCH_CUDA_ALLOC_CONF"] = sc["alloc_conf"]
    rec = {}
    t0 = time.time()
    if dry_run:
        rec.update(_dry_child(sc))
    else:
        sampler = NvmlSampler(interval=0.002)  # its thread starts in run_scenario, after GO
        try:
            run_scenario(sc, rec, sampler)
        except Exception as e:  # setup failed before the body (import, CUDA init)
            rec["ok"] = False
            rec["error"] = f"{type(e).__name__}: {str(e)[:1500]}"
            rec["traceback"] = traceback.format_exc()[-3000:]
        sampler.stop()
        rec.update(sampler.results())
    t_go = rec.pop("_t_go", t0)
    rec["wall_s"] = round(time.time() - t_go, 2)  # from GO (CUDA init) to the end
    sys.stdout.write(RESULT_MARK + json.dumps(rec) + "\n")
    sys.stdout.flush()


def probe_main():
    """Environment description, printed as one JSON line (the driver writes it to the _env.txt file)."""
    env = {}
    sampler = NvmlSampler(interval=0.002)
    sampler.start()
    try:
        import platform
        import torch
        import transformers
        env["python"] = platform.python_version()
        env["torch"] = torch.__version__
        env["transformers"] = transformers.__version__
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
        for name in ("peft", "accelerate"):
            try:
                env[name] = __import__(name).__version__
            except Exception as e:
                env[name] = f"unavailable: {e}"
        try:
            import pynvml
            d = pynvml.nvmlSystemGetDriverVersion()
            env["driver"] = d.decode() if isinstance(d, bytes) else d
            env["nvml"] = getattr(pynvml, "__version__", None)
        except Exception as e:
            env["driver"] = f"unavailable: {e}"
        torch.cuda.init()
        x = torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
        env["gpu_name"] = torch.cuda.get_device_name(0)
        props = torch.cuda.get_device_properties(0)
        env["gpu_total_bytes"] = props.total_memory
        env["gpu_capability"] = f"{props.major}.{props.minor}"
        for _ in range(50):
            if sampler.sample()[0] or not sampler.ok:
                break
            time.sleep(0.01)
        env["nvml_process_after_init_bytes"] = sampler.now()
        env["nvml_pid_found"] = sampler.pid_seen
        env["reserved_after_init_bytes"] = torch.cuda.memory_reserved()
        a = torch.randn(4096, 4096, device="cuda", dtype=torch.float16)
        (a @ a).sum().item()
        torch.cuda.synchronize()
        env["nvml_after_first_matmul_bytes"] = sampler.now()
        env["reserved_after_first_matmul_bytes"] = torch.cuda.memory_reserved()
        env["pytorch_cuda_alloc_conf"] = os.environ.get("PYTORCH_CUDA_ALLOC_CONF")
        env["sdpa_flash_enabled"] = torch.backends.cuda.flash_sdp_enabled()
        env["sdpa_mem_efficient_enabled"] = torch.backends.cuda.mem_efficient_sdp_enabled()
        del x, a
    except Exception as e:
        env["error"] = f"{type(e).__name__}: {e}"
    sampler.stop()
    env.update({k: v for k, v in sampler.results().items() if k in ("nvml_source", "nvml_error")})
    sys.stdout.write(RESULT_MARK + json.dumps(env) + "\n")
    sys.stdout.flush()


def _dry_child(sc):
    """Fake measurement for --dry-run: exercises the driver without torch.
    DRY_FAULTS='hang:ID,crash:ID,oom:ID,importhang:ID'; DRY_SLEEP='import,a,b,scale': sleeps import*scale before
    READY, then (a + b*est_gib)*scale after GO."""
    faults = dict(f.split(":", 1)[::-1] for f in os.environ.get("DRY_FAULTS", "").split(",") if ":" in f)
    kind = faults.get(sc["id"])
    imp, a, b, scale = (float(x) for x in os.environ.get("DRY_SLEEP", "0.02,0.05,0,1").split(","))
    time.sleep(imp * scale)
    if kind == "importhang":
        time.sleep(3600)
    if not wait_for_go():
        raise SystemExit(0)
    rec = {"_t_go": time.time()}
    if kind == "hang":
        time.sleep(3600)
    if kind == "crash":
        sys.stderr.write("simulated crash\n")
        os._exit(3)
    time.sleep((a + b * sc["est_gib"]) * scale)
    est = int(sc["est_gib"] * 2 ** 30)
    rec.update({"gpu_name": "DRY", "driver": "DRY", "torch": "DRY", "transformers": "DRY", "cuda": "DRY",
           "weights_allocated_bytes": est // 2, "max_allocated_bytes": est // 2, "max_reserved_bytes": est // 2,
           "nvml_process_peak_bytes": est, "nvml_process_after_init_bytes": 500 << 20, "nvml_samples": 1,
           "stage_peaks": {"load": est // 2}, "attn": "sdpa", "ok": True})
    if kind == "oom":
        rec.update(ok=False, oom=True, error="OutOfMemoryError: CUDA out of memory (simulated)")
    return rec


# ----------------------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------------------
SCENARIO_OUT_KEYS = ("model", "mode", "dtype", "batch", "prompt", "new_tokens", "train", "precision", "optimizer",
                     "seq", "grad_ckpt", "lora_r", "lora_targets", "steps", "attn_requested", "tier",
                     "hf_trainer", "grad_accum", "alloc_conf", "config_override", "hf_optim", "cache_impl", "load",
                     "quant_options")


class Job:
    def __init__(self, sc, order, exclusive=False, retry_of=None):
        self.sc = sc
        self.order = order
        self.est = sc["est_gib"]
        self.exclusive = exclusive
        self.retry_of = retry_of
        self.proc = None
        self.launched = None  # process started (imports running)
        self.ready = False  # imports done, waiting for GO
        self.go = None  # GO sent: from here on its memory counts
        self.overlap = False  # another scenario held GPU memory at some point while this one did
        self.deadline = None
        self.out_path = None
        self.err_path = None
        self.big = False


def child_env(wait_go):
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    env.setdefault("MKL_NUM_THREADS", "2")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    env["PYTHONUNBUFFERED"] = "1"
    if wait_go:
        env["LLMEM_WAIT_GO"] = "1"
    else:
        env.pop("LLMEM_WAIT_GO", None)
    return env


def spawn(args_list, tmpdir, tag, wait_go):
    out_path = os.path.join(tmpdir, tag + ".out")
    err_path = os.path.join(tmpdir, tag + ".err")
    fo = open(out_path, "w")
    fe = open(err_path, "w")
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__)] + args_list, stdout=fo, stderr=fe,
                            stdin=subprocess.PIPE if wait_go else subprocess.DEVNULL, env=child_env(wait_go),
                            start_new_session=True, cwd=HERE)
    fo.close()
    fe.close()
    return proc, out_path, err_path


def parse_result(out_path):
    try:
        with open(out_path) as f:
            for line in f:
                if line.startswith(RESULT_MARK):
                    return json.loads(line[len(RESULT_MARK):])
    except Exception:
        return None
    return None


def says_ready(out_path):
    try:
        with open(out_path) as f:
            return READY_MARK in f.read(4096)
    except Exception:
        return False


def tell(proc, word):
    try:
        proc.stdin.write((word + "\n").encode())
        proc.stdin.flush()
        proc.stdin.close()
        return True
    except Exception:
        return False


def tail(path, n=1500):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except Exception:
        return ""


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except Exception:
        try:
            proc.kill()
        except Exception:
            pass
    try:
        proc.wait(timeout=10)
    except Exception:
        pass


def gib(x):
    return "-" if x is None else f"{x / 2 ** 30:.3f}"


def driver(args):
    scs = scenario_mod.ordered({"main": scenario_mod.build_scenarios, "holdout": scenario_mod.build_holdout,
                                "holdout2": scenario_mod.build_holdout2,
                                "holdout3": scenario_mod.build_holdout3,
                                "holdout4": scenario_mod.build_holdout4,
                                "gemma_lora": scenario_mod.build_gemma_lora,
                                "finetune": scenario_mod.build_finetune,
                                "finetune_holdout": scenario_mod.build_finetune_holdout,
                                "finetune_all": scenario_mod.build_finetune_all,
                                "issue15": scenario_mod.build_issue15,
                                "issue15_holdout": scenario_mod.build_issue15_holdout,
                                "issue15_all": scenario_mod.build_issue15_all,
                                "issue15_holdout2": scenario_mod.build_issue15_holdout2,
                                "issue15_fp8": scenario_mod.build_issue15_fp8,
                                "issue15_fp8_holdout": scenario_mod.build_issue15_fp8_holdout,
                                "issue15_fp8_dequant": scenario_mod.build_issue15_fp8_dequant,
                                "issue15_fp8_dequant_holdout": scenario_mod.build_issue15_fp8_dequant_holdout,
                                "issue15_fp8_deep": scenario_mod.build_issue15_fp8_deep,
                                "issue15_final": scenario_mod.build_issue15_final,
                                "issue15_final_check": scenario_mod.build_issue15_final_check,
                                "issue15_mllama": scenario_mod.build_issue15_mllama}[args.set]())
    if args.only:
        scs = [s for s in scs if any(o in s["id"] for o in args.only.split(","))]
    if args.max_tier is not None:
        scs = [s for s in scs if s["tier"] <= args.max_tier]
    if args.limit:
        scs = scs[: args.limit]
    if args.list:
        for s in scs:
            print(f"{s['tier']} {s['est_gib']:7.1f} GiB  {s['id']}")
        print(len(scs), "scenarios")
        return 0

    out_path = args.out
    os.makedirs(os.path.dirname(os.path.abspath(out_path)) or ".", exist_ok=True)
    env_path = args.env_out or (out_path[:-6] if out_path.endswith(".jsonl") else out_path) + "_env.txt"
    tmpdir = tempfile.mkdtemp(prefix="llmem_measure_")
    t0 = time.time()
    workers = args.workers
    budget = args.mem_budget_gib
    dry = ["--dry-run"] if args.dry_run else []
    counter = [0]

    def el():
        return time.time() - t0

    def log(msg):
        print(f"[{el():6.1f}s] {msg}", flush=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)

    log(f"{len(scs)} scenarios, {workers} workers (+{args.prewarm} warming), budget {budget} GiB, "
        f"big from {args.big_gib} GiB, deadline {args.deadline}s, hard stop {args.hard_stop}s, "
        f"per-scenario timeout {args.timeout}s")

    def new_tag():
        counter[0] += 1
        return f"{counter[0]:04d}"

    # environment probe, alongside the first scenarios
    if args.dry_run:
        probe_proc, probe_done = None, True
        with open(env_path, "w") as f:
            f.write(json.dumps({"dry_run": True}) + "\n")
    else:
        probe_proc, probe_out, probe_err = spawn(["--probe"], tmpdir, "probe", wait_go=False)
        probe_done = False

    pending = [Job(s, i, exclusive=s["est_gib"] > budget) for i, s in enumerate(scs)]
    for j in pending:
        j.big = j.est >= args.big_gib
    procs = []  # launched jobs (warming or live)
    held = {}  # id -> record waiting for its exclusive re-run
    not_run = []
    counts = {"ok": 0, "fail": 0}
    out = open(out_path, "a" if args.append else "w")

    def write(rec):
        out.write(json.dumps(rec) + "\n")
        out.flush()
        counts["ok" if rec.get("ok") else "fail"] += 1

    def finish(job, rec, rc):
        sc = job.sc
        full = {"id": sc["id"]}
        full.update({k: sc.get(k) for k in SCENARIO_OUT_KEYS})
        for k in ENV_KEYS:
            full[k] = None
        if rec is None:
            rec = {"ok": False, "error": f"child exited with code {rc} and no result; stderr tail: "
                                         f"{tail(job.err_path)}"}
        full.update(rec)
        full["concurrent"] = job.overlap
        full["est_gib"] = sc["est_gib"]
        if job.go is not None:
            full["waited_for_go_s"] = round(job.go - job.launched, 2)
        if job.retry_of is not None:
            full["first_attempt_error"] = job.retry_of.get("error")
            full["first_attempt_alloc_retries"] = job.retry_of.get("alloc_retries")
        contaminated = job.overlap and (rec.get("oom") or (rec.get("alloc_retries") or 0) > 0)
        if contaminated and job.retry_of is None and not args.no_retry:
            held[sc["id"]] = full
            pending.insert(0, Job(sc, -1000 - len(held), exclusive=True, retry_of=full))
            log(f"requeue alone: {sc['id']} (oom={rec.get('oom')}, alloc_retries={rec.get('alloc_retries')})")
            return
        held.pop(sc["id"], None)
        write(full)
        status = "ok  " if full.get("ok") else "FAIL"
        log(f"{status} {sc['id']}  w={gib(full.get('weights_allocated_bytes'))} "
            f"max_alloc={gib(full.get('max_allocated_bytes'))} max_res={gib(full.get('max_reserved_bytes'))} "
            f"nvml={gib(full.get('nvml_process_peak_bytes'))} attn={full.get('attn')} "
            f"wall={full.get('wall_s')}s" + ("" if full.get("ok") else f"  {str(full.get('error'))[:300]}"))

    def launch(job):
        pending.remove(job)
        job.proc, job.out_path, job.err_path = spawn(["--run-one", json.dumps(job.sc)] + dry, tmpdir, new_tag(),
                                                     wait_go=True)
        job.launched = el()
        procs.append(job)

    def send_go(job, live):
        job.go = el()
        job.deadline = min(job.go + args.timeout, args.hard_stop)
        if live:
            job.overlap = True
            for r in live:
                r.overlap = True
        live.append(job)
        if not tell(job.proc, "GO"):
            log(f"could not send GO to {job.sc['id']}")
        log(f"go    {job.sc['id']} (est {job.est} GiB, live {len(live)}, est in use "
            f"{sum(j.est for j in live):.1f} GiB{', alone' if job.exclusive else ''})")

    try:
        while True:
            now = el()
            # --- the environment probe ---
            if not probe_done and probe_proc.poll() is not None:
                probe_done = True
                env = parse_result(probe_out) or {"error": "probe failed: " + tail(probe_err)}
                try:
                    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                          "--format=csv"], capture_output=True, text=True, timeout=30).stdout
                except Exception as e:
                    smi = f"nvidia-smi unavailable: {e}\n"
                with open(env_path, "w") as f:
                    f.write(json.dumps(env) + "\n")
                    f.write(smi)
                log("env: " + json.dumps(env))
                if env.get("nvml_source") == "device_delta" or env.get("nvml_pid_found") is False:
                    log("NVML does not list this process's pid: per-process peaks fall back to the device's used "
                        "memory, which needs one scenario at a time; switching to 1 worker")
                    workers = 1
            elif not probe_done and now > 150:
                kill_group(probe_proc)
                probe_done = True
                log("probe timed out")

            warm = sorted((j for j in procs if j.go is None), key=lambda j: j.order)
            live = [j for j in procs if j.go is not None]

            # --- start processes, in run order (their imports run before their memory counts); at most 2 big
            #     ones wait at a time, so that small ones are always at hand to fill the memory ---
            if now < args.deadline - args.launch_cutoff and pending:
                warm_big = sum(1 for j in warm if j.big)
                for job in list(pending):
                    if len(warm) >= args.prewarm or len(procs) >= workers + args.prewarm:
                        break
                    if job.exclusive and any(j.exclusive for j in procs):
                        continue
                    if job.big and not job.exclusive:
                        if warm_big >= 2:
                            continue
                        warm_big += 1
                    launch(job)
                    warm.append(job)
                warm.sort(key=lambda j: j.order)

            # --- imports done? ---
            for job in warm:
                if not job.ready and says_ready(job.out_path):
                    job.ready = True

            # --- GO. Exclusive jobs (re-runs, or bigger than the budget) run alone and nothing passes them. Big
            #     jobs (est >= --big-gib) go first, at most 2 at once; while the next big one could run beside
            #     the live big ones, its room is kept free, so small jobs cannot starve it. Small jobs fill the
            #     rest, first fit in run order. ---
            if now < args.deadline:
                used = sum(j.est for j in live)
                ready = [j for j in warm if j.ready]
                excl = [j for j in warm if j.exclusive]
                if any(j.exclusive for j in live):
                    ready = []
                elif excl:
                    if not live and excl[0].ready:
                        send_go(excl[0], live)
                    ready = []
                reserve = 0.0
                for job in [j for j in ready if j.big]:
                    live_big = sum(j.est for j in live if j.big)
                    n_big = sum(1 for j in live if j.big)
                    if n_big >= 2 or live_big + job.est > budget:
                        break
                    if used + job.est <= budget and len(live) < workers:
                        send_go(job, live)
                        used += job.est
                    else:
                        reserve = job.est
                        break
                for job in [j for j in ready if not j.big and j.go is None]:
                    if len(live) >= workers:
                        break
                    if used + reserve + job.est <= budget:
                        send_go(job, live)
                        used += job.est

            # --- finished, timed out ---
            for job in list(procs):
                rc = job.proc.poll()
                if rc is not None:
                    procs.remove(job)
                    finish(job, parse_result(job.out_path), rc)
                elif job.go is not None and el() > job.deadline:
                    kill_group(job.proc)
                    procs.remove(job)
                    why = ("killed at the driver's hard stop" if el() >= args.hard_stop
                           else f"timeout after {args.timeout}s")
                    rec = parse_result(job.out_path) or {"ok": False, "error": f"{why}; stderr tail: "
                                                                                f"{tail(job.err_path)}"}
                    rec["timed_out"] = True
                    finish(job, rec, None)
                elif job.go is None and not job.ready and el() - job.launched > args.import_timeout:
                    kill_group(job.proc)
                    procs.remove(job)
                    finish(job, {"ok": False, "timed_out": True,
                                 "error": f"start-up (imports) took over {args.import_timeout}s; stderr tail: "
                                          f"{tail(job.err_path)}"}, None)

            # --- past the deadline: processes that never got GO are told to quit ---
            if el() >= args.deadline:
                for job in [j for j in procs if j.go is None]:
                    tell(job.proc, "QUIT")
                    kill_group(job.proc)
                    procs.remove(job)
                    not_run.append(job.sc["id"])
            if probe_done and not procs and (not pending or el() >= args.deadline - args.launch_cutoff):
                break
            time.sleep(0.05 if not args.dry_run else 0.01)
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}): killing {len(procs)} running scenarios")
    finally:
        for job in procs:
            kill_group(job.proc)
        if not probe_done and probe_proc is not None:
            kill_group(probe_proc)
        for rec in held.values():  # a re-run that never happened: keep the first attempt
            rec["retry_not_run"] = True
            write(rec)
        out.close()
    not_run += [j.sc["id"] for j in pending if j.sc["id"] not in held]
    log(f"done: {counts['ok']} ok, {counts['fail']} failed, {len(not_run)} not run (deadline)")
    for i in not_run:
        log(f"not run: {i}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-one", metavar="JSON", help="child: run one scenario and print its result")
    ap.add_argument("--probe", action="store_true", help="child: print the environment")
    ap.add_argument("--out", help="JSON Lines to write (default: bench/data/transformers_memory.jsonl; with --dry-run, a "
                                   "file in the temporary folder, so that a test of the driver never touches the data)")
    ap.add_argument("--env-out", help="environment file (default: OUT without .jsonl + _env.txt)")
    ap.add_argument("--append", action="store_true", help="append to --out instead of overwriting it")
    ap.add_argument("--workers", type=int, default=8, help="scenarios holding GPU memory at once")
    ap.add_argument("--prewarm", type=int, default=8,
                    help="extra processes doing their imports ahead of time (they hold no GPU memory)")
    ap.add_argument("--launch-cutoff", type=float, default=5.0,
                    help="start no new process in the last this-many seconds before --deadline")
    ap.add_argument("--import-timeout", type=float, default=150.0, help="limit for a child's start-up (s)")
    ap.add_argument("--mem-budget-gib", type=float, default=126.0,
                    help="upper bound of the sum of est_gib of the scenarios running at once")
    ap.add_argument("--timeout", type=float, default=120.0, help="per-scenario wall-clock limit (s)")
    ap.add_argument("--deadline", type=float, default=500.0, help="start no scenario after this many seconds")
    ap.add_argument("--hard-stop", type=float, default=548.0, help="kill whatever still runs at this time (s)")
    ap.add_argument("--big-gib", type=float, default=40.0,
                    help="scenarios with est_gib at least this are 'big': at most 2 run at once, and they get "
                         "their memory before small ones")
    ap.add_argument("--set", choices=("main", "holdout", "holdout2", "holdout3", "holdout4", "gemma_lora",
                                      "finetune", "finetune_holdout", "finetune_all", "issue15", "issue15_holdout",
                                      "issue15_all", "issue15_holdout2", "issue15_fp8", "issue15_fp8_holdout",
                                      "issue15_fp8_dequant", "issue15_fp8_dequant_holdout", "issue15_fp8_deep",
                                      "issue15_final", "issue15_final_check", "issue15_mllama"),
                    default="main",
                    help="scenario set: the main list, or a held-out list (scenarios.build_holdout .. build_holdout4, "
                         "build_gemma_lora)")
    ap.add_argument("--only", help="comma-separated substrings of scenario ids to keep")
    ap.add_argument("--max-tier", type=int, help="keep scenarios of this tier or lower")
    ap.add_argument("--limit", type=int, help="keep the first N scenarios of the run order")
    ap.add_argument("--no-retry", action="store_true", help="never re-run a scenario alone")
    ap.add_argument("--list", action="store_true", help="print the scenarios in run order and exit")
    ap.add_argument("--dry-run", action="store_true", help="no torch: fake children, to test the driver")
    args = ap.parse_args()
    if args.out is None:
        args.out = (os.path.join(tempfile.gettempdir(), "llmem_dry_run.jsonl") if args.dry_run
                    else os.path.join(HERE, "..", "data", "transformers_memory.jsonl"))
    if args.run_one:
        child_main(args.run_one, dry_run=args.dry_run)
        return 0
    if args.probe:
        probe_main()
        return 0
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
