#!/usr/bin/python3
"""llama.cpp's own projection (run_llamacpp_projection.py) and llmem, each against what llama.cpp logged and NVML
measured in the same runs.

  /usr/bin/python3 bench/peers/compare_projection.py [--llmem build/llmem] PROJECTION.jsonl ...

Reference 1: llama.cpp's CUDA0 buffers (model + KV + recurrent state + compute) from the run's log (MiB, 2
decimals). Compared: the projection's CUDA0 buffer types (model + context + compute, bytes), and llmem's
framework_peak_bytes (`llmem validate --json` on the same run records: llmem's own prediction from the catalog
config, not from the file).
Reference 2: the NVML process peak of llama-bench. llmem's process_peak_bytes adds its model of the CUDA context,
cuBLAS and ggml-cuda's pool; llama.cpp's projection has no such part (--fit keeps a margin, 1024 MiB by default,
for it), so the projection's buffers are shown against the peak only to size what it leaves out.
Errors are (estimate - reference) / reference. A run's record is found by its set: peers (peer_runs.py), arch and
offload (their bench/data files), or the name of a file in bench/data.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
DATA = os.path.join(ROOT, 'bench', 'data')
sys.path.insert(0, HERE)
from compare import pct  # noqa: E402
from peer_runs import NAMED_SETS, set_records  # noqa: E402

MiB = 1024 * 1024


def records_of(set_name, cache):
    if set_name not in cache:
        # a set named by a path on the GPU machine is the bench/data file of the same name here
        known = set_name == 'peers' or set_name in NAMED_SETS
        cache[set_name] = {r['id']: r for r in set_records(set_name if known else
                                                           os.path.join(DATA, os.path.basename(set_name)))}
    return cache[set_name]


def llmem_rows(llmem, records):
    """llmem validate --json over the records, one row per record (all are successful runs)."""
    with tempfile.NamedTemporaryFile('w', suffix='.jsonl', delete=False) as f:
        for r in records:
            f.write(json.dumps(r) + '\n')
        path = f.name
    try:
        p = subprocess.run([llmem, 'validate', '--json', path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    if p.returncode != 0:
        sys.exit(f'llmem validate failed: {p.stderr.strip()}')
    rows = json.loads(p.stdout)['rows']
    if len(rows) != len(records):
        sys.exit(f'llmem validate gave {len(rows)} rows for {len(records)} records')
    return rows


def stats(xs):
    a = [abs(x) for x in xs]
    return (statistics.median(a), max(a)) if a else (float('nan'), float('nan'))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--llmem', default=os.path.join(ROOT, 'build', 'llmem'))
    ap.add_argument('--worst', type=int, default=8, help='list the N runs with the largest projection error')
    ap.add_argument('--misses', type=float, default=None, metavar='PCT',
                    help="list every run where llmem's GPU buffers differ from the log by more than PCT %%, with the "
                         "logged CUDA0 compute buffer and llmem's (its GPU buffers less the projection's model and "
                         "context buffers, which llmem matches exactly on these runs)")
    ap.add_argument('files', nargs='+')
    a = ap.parse_args()
    cache, rows = {}, []
    for fn in a.files:
        for line in open(fn):
            p = json.loads(line)
            proj = p.get('projection') or {}
            if not proj.get('ok'):
                continue
            rec = records_of(p['set'], cache).get(p['id'])
            if rec is None:
                sys.exit(f"{fn}: no run record for {p['set']} {p['id']}")
            cuda0 = [b for b in proj['buffers'] if b['buft'] == 'CUDA0']
            gpu = sum(b['model'] + b['context'] + b['compute'] for b in cuda0)
            rows.append({'set': p['set'] if p['set'] in ('peers', 'arch', 'offload') else os.path.basename(p['set']),
                         'id': p['id'], 'record': rec, 'proj_gpu': gpu, 'ref_gpu': p['logged_cuda0_mib'] * MiB,
                         'peak': p.get('peak_tree_bytes'),
                         'proj_model_ctx': sum(b['model'] + b['context'] for b in cuda0),
                         'logged_compute_mib': (p.get('logged_cuda0_parts_mib') or {}).get('compute_buffer_mib')})
    for r, v in zip(rows, llmem_rows(a.llmem, [r['record'] for r in rows])):
        r['llmem_gpu'] = v['estimated_framework_peak_bytes']
        r['llmem_proc'] = v['estimated_process_peak_bytes']
        r['llmem_ref_gpu'] = v['measured_framework_peak_bytes']

    def line(label, rs):
        pg = [pct(r['proj_gpu'], r['ref_gpu']) for r in rs]
        lg = [pct(r['llmem_gpu'], r['ref_gpu']) for r in rs]
        withpk = [r for r in rs if r['peak']]
        lp = [pct(r['llmem_proc'], r['peak']) for r in withpk]
        pp = [pct(r['proj_gpu'], r['peak']) for r in withpk]
        (pm, px), (lm, lx), (lpm, lpx), (ppm, _) = stats(pg), stats(lg), stats(lp), stats(pp)
        exact = sum(1 for x in pg if abs(x) < 0.005)
        print(f'| {label} | {len(rs)} | {pm:.2f} % / {px:.2f} % | {lm:.2f} % / {lx:.2f} % | {exact} | '
              f'{lpm:.2f} % / {lpx:.2f} % | {ppm:.1f} % |')

    print('| runs | n | llama.cpp projection vs logged GPU buffers (median / max abs) | llmem vs logged GPU buffers '
          '| projection exact (< 0.005 %) | llmem process vs NVML peak | projection (buffers only) below NVML peak '
          '(median) |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for s in dict.fromkeys(r['set'] for r in rows):
        line(s, [r for r in rows if r['set'] == s])
    line('all', rows)
    print()
    print(f'Largest projection errors ({a.worst}):')
    for r in sorted(rows, key=lambda r: -abs(pct(r['proj_gpu'], r['ref_gpu'])))[:a.worst]:
        print(f"  {r['set']:8s} {r['id']:70s} projection {r['proj_gpu'] / MiB:9.2f} MiB  logged "
              f"{r['ref_gpu'] / MiB:9.2f} MiB ({pct(r['proj_gpu'], r['ref_gpu']):+.2f} %)  llmem "
              f"{r['llmem_gpu'] / MiB:9.2f} MiB ({pct(r['llmem_gpu'], r['ref_gpu']):+.2f} %)")
    if a.misses is not None:
        print_misses(rows, a.misses)


def print_misses(rows, threshold):
    misses = [r for r in rows if abs(pct(r['llmem_gpu'], r['ref_gpu'])) > threshold]
    print()
    print(f"Runs where llmem's GPU buffers differ from the log by more than {threshold} % ({len(misses)} of {len(rows)}):")
    for r in misses:
        lc = r['logged_compute_mib']
        print(f"  {r['set']:8s} {r['id']:70s} llmem {pct(r['llmem_gpu'], r['ref_gpu']):+.2f} %  compute logged "
              f"{lc if lc is not None else float('nan'):8.2f} MiB, llmem {(r['llmem_gpu'] - r['proj_model_ctx']) / MiB:8.2f} MiB")


if __name__ == '__main__':
    main()
