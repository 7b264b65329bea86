"""The llama.cpp runs the peer comparison covers (shared by run_peers.py, run_gguf_parser.py, compare.py).

Every run that logged llama.cpp's buffer sizes in bench/data/llamacpp_buffers_h200.jsonl or
bench/data/llamacpp_memory_h200.jsonl, one per run id. Where an id is in both files the record of
llamacpp_memory_h200.jsonl is used: it is the later run of the same configuration (llama-bench -pg),
has the NVML process peak (peak_tree_bytes), and its ctx-512 runs really used n_batch = n_ubatch = 512
(the earlier -p 508 runs in llamacpp_buffers_h200.jsonl ran with n_batch = n_ubatch = 508).
"""
import json, os

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, '..', 'data')
FILES = ('llamacpp_buffers_h200.jsonl', 'llamacpp_memory_h200.jsonl')  # later file wins


def has_buffers(r):
    return bool((r.get('llama_log') or {}).get('model_buffer_mib'))


def load_runs():
    """Returns ({id: run record}, {id: source file name}) in file order (first appearance)."""
    runs, src = {}, {}
    for fn in FILES:
        for line in open(os.path.join(DATA, fn)):
            r = json.loads(line)
            if has_buffers(r):
                runs[r['id']] = r
                src[r['id']] = fn
    return runs, src


# The other named sets of measured llama.cpp runs the projection covers (run_llamacpp_projection.py,
# compare_projection.py), by their bench/data file.
NAMED_SETS = {'arch': 'llamacpp_arch_h100.jsonl', 'offload': 'llamacpp_offload_h100.jsonl'}


def set_records(name):
    """The run records of a set: 'peers' (load_runs), a NAMED_SETS name, or a path (its records in file order)."""
    if name == 'peers':
        return list(load_runs()[0].values())
    path = os.path.join(DATA, NAMED_SETS[name]) if name in NAMED_SETS else name
    return [json.loads(line) for line in open(path) if line.strip()]


def logged_cuda0(ll):
    """llama.cpp's CUDA0 buffers in MiB: (model + KV + recurrent state + compute, {part: MiB})."""
    parts = {k: (ll.get(k) or {}).get('CUDA0', 0.0)
             for k in ('model_buffer_mib', 'kv_buffer_mib', 'rs_buffer_mib', 'compute_buffer_mib')}
    return sum(parts.values()), parts
