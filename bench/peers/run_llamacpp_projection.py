#!/usr/bin/python3
"""llama.cpp's own projection of its memory (what `llama-fit-params` and `--fit` compute at the pinned commit) for
measured llama.cpp runs, on a machine with the CUDA backend (the GPU machine): bench/peers/llamacpp_projection.cpp,
built into .llama/bin/llamacpp-projection, one process for all cases.

Sets (--sets, comma-separated):
  peers    the 138 runs of the peer comparison (peer_runs.py), files rebuilt from llamacpp_gguf_tensors.jsonl
  arch     bench/data/llamacpp_arch_h100.jsonl, files rebuilt from llamacpp_arch_h100_gguf_tensors.jsonl
  offload  bench/data/llamacpp_offload_h100.jsonl; its TinyLlama files are the peers' (same tensors: tensor-data
           bytes and tensor count checked); its Qwen3-30B-A3B-4L files only where --gguf-dir holds them
  FILE     any other run records (JSONL); files looked up in --gguf-dir by name
Files are rebuilt with rebuild_gguf_headers.py's --newline-token (sparse: headers only; no_alloc never reads data).
Writes one JSON line per run: the run's id and set, the arguments, the projection per buffer type (bytes), and the
run's reference values (llama.cpp's logged CUDA0 buffers in MiB, the NVML process peak).

  /usr/bin/python3 bench/peers/run_llamacpp_projection.py --out OUT.jsonl [--sets peers,arch,offload]
"""
import argparse, glob, json, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
DATA = os.path.join(ROOT, 'bench', 'data')
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, 'bench', 'gpu', 'llamacpp'))
import common  # noqa: E402  (the harness's library search: LD_LIBRARY_PATH for the CUDA backend)
from peer_runs import logged_cuda0, set_records  # noqa: E402
import rebuild_gguf_headers as rb  # noqa: E402

DUMPS = {'peers': 'llamacpp_gguf_tensors.jsonl', 'arch': 'llamacpp_arch_h100_gguf_tensors.jsonl',
         'offload': 'llamacpp_gguf_tensors.jsonl'}


def args_of(r, path):
    """llama-fit-params arguments for the context llama-bench made in run record r (llama-bench.cpp: n_ctx =
    n_prompt + n_gen + n_depth, swa_full false, one sequence, as common's defaults)."""
    a = ['-m', path, '-c', str(r['n_ctx']), '-b', str(r['n_batch']), '-ub', str(r['n_ubatch']),
         '-fa', r['flash_attn'], '-ctk', r['cache_type_k'], '-ctv', r['cache_type_v'],
         '-ngl', str(r['n_gpu_layers'])]
    if r.get('n_cpu_moe'):
        a += ['-ncmoe', str(r['n_cpu_moe'])]
    if r.get('override_tensor'):
        a += ['-ot', r['override_tensor']]
    if r.get('no_mmap'):
        a += ['--no-mmap']
    return a


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sets', default='peers,arch,offload')
    ap.add_argument('--ggufs', default='/tmp/projection-ggufs', help='where rebuilt headers are written')
    ap.add_argument('--gguf-dir', action='append', default=[], help='directories searched for real files')
    ap.add_argument('--tool', default=os.path.join(ROOT, '.llama', 'bin', 'llamacpp-projection'))
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    os.makedirs(a.ggufs, exist_ok=True)

    headers = {}  # file name -> dump record

    def rebuilt(name):
        d = headers.get(name)
        if d is None:
            return None
        path = os.path.join(a.ggufs, name)
        if not os.path.exists(path):
            rb.rebuild(d, a.ggufs, newline_token=True)
        return path

    def real(name):
        for d in a.gguf_dir:
            hits = glob.glob(os.path.join(d, '**', name), recursive=True)
            if hits:
                return hits[0]
        return None

    cases = []  # (set, run record, path or None)
    for s in a.sets.split(','):
        if s in DUMPS:
            for line in open(os.path.join(DATA, DUMPS[s])):
                d = json.loads(line)
                headers.setdefault(d['file'], d)
        for r in set_records(s):
            if not r.get('ok') and s != 'peers' or r.get('rpc') or not r.get('llama_log'):
                continue
            name = r['gguf_file']
            path = real(name)
            d = headers.get(name)
            # the same tensors (the dump's tensor data and count equal the run's file's; the Phi-3 runs' files
            # had 32 header bytes more than the dumped conversion, which no buffer depends on)
            if path is None and d is not None and d['tensor_data_bytes'] == r['gguf_tensor_data_bytes'] \
                    and d['tensor_count'] == r['gguf_tensor_count']:
                path = rebuilt(name)
            cases.append((s, r, path))

    todo = [(s, r, p) for s, r, p in cases if p]
    inp = ''.join(f"{s}:{r['id']}\t{' '.join(args_of(r, p))}\n" for s, r, p in todo)
    env_add, notes = common.library_env()
    env = dict(os.environ, **env_add)
    for n in notes:
        print('library_env:', n)
    p = subprocess.run([a.tool], input=inp, capture_output=True, text=True, env=env)
    out = {}
    for line in p.stdout.splitlines():
        if line.startswith('{'):
            j = json.loads(line)
            out[j['id']] = j
    with open(a.out, 'w') as f:
        for s, r, path in cases:
            key = f"{s}:{r['id']}"
            ref, parts = logged_cuda0(r['llama_log'])
            rec = {'set': s, 'id': r['id'], 'model': r['model'], 'scheme': r['scheme'],
                   'catalog_id': r.get('catalog_id'), 'overrides': r.get('overrides'),
                   'gguf_file': r['gguf_file'], 'file': 'rebuilt header' if path and path.startswith(a.ggufs)
                   else ('real' if path else None),
                   'args': args_of(r, os.path.basename(path)) if path else None,
                   'logged_cuda0_mib': ref, 'logged_cuda0_parts_mib': parts,
                   'peak_tree_bytes': r.get('peak_tree_bytes'), 'projection': out.get(key)}
            if not path:
                rec['skipped'] = 'no file: neither a real one in --gguf-dir nor a dump of the same header'
            f.write(json.dumps(rec) + '\n')
    n_ok = sum(1 for j in out.values() if j.get('ok'))
    print(f'{len(cases)} runs, {len(todo)} with a file, {n_ok} projected -> {a.out}')
    if p.returncode != 0:
        print(f'projection tool exited {p.returncode}; stderr tail:\n{p.stderr[-3000:]}', file=sys.stderr)
    with open(a.out + '.log', 'w') as f:
        f.write(p.stderr)


if __name__ == '__main__':
    main()
