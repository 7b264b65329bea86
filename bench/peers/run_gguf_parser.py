#!/usr/bin/python3
"""Run gguf-parser-go's llama.cpp estimate (`gguf-parser --estimate --json`, built by build_gguf_parser.sh)
on the rebuilt GGUF of every run in peer_runs.py, with the run's options, and write
bench/peers/gguf_parser_estimates.jsonl (one line per run id).

Each run is estimated twice: with the default --platform-footprint (150,250: 150 MiB RAM, 250 MiB VRAM that
gguf-parser adds for the CUDA runtime) and with --platform-footprint 0,0. Recorded per run, for VRAM 0
(the single GPU, "vrams[0]" of the JSON):
  gp_vram_nonuma_bytes      nonuma with the default footprint (= what gguf-parser prints as VRAM 0 NONUMA:
                            platform VRAM footprint + output buffer + weights + KV + computation)
  gp_vram_nonuma_nofp_bytes nonuma with --platform-footprint 0,0 (GPU buffers only)
  gp_vram_uma_bytes         uma (its unified-memory figure; with --no-mmap = output buffer + weights + KV, no
                            computation), so gp_vram_nonuma_nofp_bytes - gp_vram_uma_bytes = its computation part
--no-mmap is passed (llama-bench ran with mmap on): it changes only the RAM and UMA figures, not NONUMA VRAM.

Usage: /usr/bin/python3 bench/peers/run_gguf_parser.py [--ggufs /tmp/peer-ggufs]
                        [--gguf-parser /work/gguf-parser-build/bin/gguf-parser]
"""
import argparse, json, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peer_runs import load_runs  # noqa: E402


def gguf_parser(exe, args):
    p = subprocess.run([exe] + args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError((p.stderr or p.stdout).strip()[-500:])
    return json.loads(p.stdout)['estimate']


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ggufs', default='/tmp/peer-ggufs')
    ap.add_argument('--gguf-parser', default='/work/gguf-parser-build/bin/gguf-parser')
    ap.add_argument('--out', default=os.path.join(HERE, 'gguf_parser_estimates.jsonl'))
    a = ap.parse_args()
    version = subprocess.run([a.gguf_parser, '--version'], capture_output=True, text=True).stdout.split()[-1]
    runs, source = load_runs()
    n_err = 0
    with open(a.out, 'w') as f:
        for r in runs.values():
            # llama-bench's options: -c (n_ctx) -b 2048 -ub 512 -fa -ctk -ctv -ngl; one sequence; one GPU
            # (no --tensor-split: gguf-parser then estimates one device, VRAM 0); --no-mmap so that its UMA
            # VRAM figure keeps the weights (mmap does not change its NONUMA VRAM).
            args = ['--path', os.path.join(a.ggufs, r['gguf_file']),
                    '--ctx-size', str(r['n_ctx']),
                    '--batch-size', str(r['n_batch']), '--ubatch-size', str(r['n_ubatch']),
                    '--flash-attention' if r['flash_attn'] == 'on' else '--no-flash-attention',
                    '--cache-type-k', r['cache_type_k'], '--cache-type-v', r['cache_type_v'],
                    '--gpu-layers', str(r['n_gpu_layers']), '--parallel-size', '1', '--no-mmap',
                    '--estimate', '--json']
            rec = {'id': r['id'], 'run_record_from': source[r['id']], 'model': r['model'], 'scheme': r['scheme'],
                   'gguf_parser_version': version, 'gguf_parser_command': 'gguf-parser ' + ' '.join(args)}
            try:
                e = gguf_parser(a.gguf_parser, args)
                e0 = gguf_parser(a.gguf_parser, args + ['--platform-footprint', '0,0'])
                it, it0 = e['items'][0], e0['items'][0]
                v, v0 = it['vrams'][0], it0['vrams'][0]
                rec.update({
                    'gp_context_size': e['contextSize'], 'gp_flash_attention': e['flashAttention'],
                    'gp_logical_batch': e['logicalBatchSize'], 'gp_physical_batch': e['physicalBatchSize'],
                    'gp_offload_layers': it['offloadLayers'], 'gp_full_offloaded': it['fullOffloaded'],
                    'gp_vram_handle_layers': v['handleLayers'], 'gp_vram_handle_output_layer': v['handleOutputLayer'],
                    'gp_vram_nonuma_bytes': v['nonuma'], 'gp_vram_nonuma_nofp_bytes': v0['nonuma'],
                    'gp_vram_uma_bytes': v['uma'],
                    'gp_ram_nonuma_bytes': it['ram']['nonuma'], 'gp_ram_uma_bytes': it['ram']['uma'],
                    'gp_estimate': e})
            except Exception as ex:  # noqa: BLE001
                rec['gp_error'] = str(ex)
                n_err += 1
            f.write(json.dumps(rec) + '\n')
    print(f'{len(runs)} runs -> {a.out} (gguf-parser {version}; {n_err} errors)')


if __name__ == '__main__':
    main()
