#!/usr/bin/python3
"""For every llama.cpp run that logged buffer sizes (peer_runs.py: bench/data/llamacpp_buffers_h200.jsonl and
bench/data/llamacpp_memory_h200.jsonl, one record per run id), run
node-llama-cpp's estimate (bench/peers/node_llama_cpp_estimate.mjs) and llmem's estimate on the
rebuilt GGUF (bench/peers/rebuild_gguf_headers.py -> /tmp/peer-ggufs) with the same options, and
write bench/peers/node_llama_cpp_estimates.jsonl (one line per run id).

Usage: /usr/bin/python3 bench/peers/run_peers.py [--ggufs /tmp/peer-ggufs] [--llmem build/llmem]
"""
import argparse, json, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, HERE)
from peer_runs import load_runs  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ggufs', default='/tmp/peer-ggufs')
    ap.add_argument('--llmem', default=os.path.join(ROOT, 'build', 'llmem'))
    ap.add_argument('--node', default='node')
    ap.add_argument('--out', default=os.path.join(HERE, 'node_llama_cpp_estimates.jsonl'))
    a = ap.parse_args()
    runs_by_id, source = load_runs()
    runs = list(runs_by_id.values())
    cases = []
    for r in runs:
        ngl = -1 if r['n_gpu_layers'] >= 999 else r['n_gpu_layers']
        cases.append({'id': r['id'], 'file': os.path.join(a.ggufs, r['gguf_file']), 'n_ctx': r['n_ctx'],
                      'flash_attn': r['flash_attn'] == 'on', 'cache_type_k': r['cache_type_k'],
                      'cache_type_v': r['cache_type_v'], 'ngl': ngl, 'batch': r['n_ubatch']})
    p = subprocess.run([a.node, os.path.join(HERE, 'node_llama_cpp_estimate.mjs')],
                       input=''.join(json.dumps(c) + '\n' for c in cases),
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit('node script failed:\n' + p.stderr)
    nlc = {}
    for line in p.stdout.splitlines():
        if line.startswith('{'):
            d = json.loads(line)
            nlc[d['id']] = d
    node_stderr = sorted(set(p.stderr.splitlines()))
    with open(a.out, 'w') as f:
        for r, c in zip(runs, cases):
            cmd = [a.llmem, 'estimate', c['file'], '--engine', 'llamacpp', '--ctx', str(c['n_ctx']),
                   '--flash-attn', r['flash_attn'], '--cache-type-k', r['cache_type_k'],
                   '--cache-type-v', r['cache_type_v'], '--ngl', str(c['ngl']),
                   '--batch', str(r['n_batch']), '--ubatch', str(r['n_ubatch']), '--json']
            e = subprocess.run(cmd, capture_output=True, text=True)
            rec = {'id': r['id'], 'run_record_from': source[r['id']], 'model': r['model'], 'scheme': r['scheme'], 'n_ctx': r['n_ctx'],
                   'flash_attn': r['flash_attn'], 'cache_type_k': r['cache_type_k'],
                   'cache_type_v': r['cache_type_v'], 'n_gpu_layers': r['n_gpu_layers'],
                   'n_ubatch': r['n_ubatch'], 'n_batch': r['n_batch'], 'gguf_file': r['gguf_file'],
                   'node_llama_cpp_version': '3.21.1', 'node_llama_cpp': nlc.get(r['id'])}
            n = rec['node_llama_cpp'] or {}
            h = n.get('heuristic') or {}
            rec['nlc_model_vram_bytes'] = h.get('model_vram')
            rec['nlc_context_vram_bytes'] = h.get('context_vram')
            rec['nlc_total_vram_bytes'] = h.get('total_vram')
            rec['llmem_command'] = ' '.join(cmd)
            if e.returncode == 0:
                j = json.loads(e.stdout)
                rec['llmem_framework_peak_bytes'] = j['framework_peak_bytes']
                rec['llmem_process_peak_bytes'] = j['process_peak_bytes']
            else:
                rec['llmem_error'] = (e.stderr or e.stdout).strip()[-500:]
            f.write(json.dumps(rec) + '\n')
    print(f'{len(runs)} runs -> {a.out}')
    if node_stderr:
        print('node-llama-cpp stderr (unique lines):', *node_stderr, sep='\n  ')


if __name__ == '__main__':
    main()
