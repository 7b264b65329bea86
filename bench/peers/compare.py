#!/usr/bin/python3
"""Compare llmem, node-llama-cpp (3.21.1) and gguf-parser-go (v0.25.0) with the GPU memory llama.cpp (80fb11ac)
used on an H200.

Runs: peer_runs.py (every run that logged buffer sizes in bench/data/llamacpp_buffers_h200.jsonl or
bench/data/llamacpp_memory_h200.jsonl, one per id). Estimates: bench/peers/node_llama_cpp_estimates.jsonl
(run_peers.py: node-llama-cpp and llmem) and bench/peers/gguf_parser_estimates.jsonl (run_gguf_parser.py).

Reference 1, GPU buffers: llama.cpp's CUDA0 buffers = model + KV (+ recurrent state) + compute, from its log
(MiB, 2 decimals). Compared with
  llmem:   framework_peak_bytes of `llmem estimate --engine llamacpp` (its GPU buffers).
  nlc total: node-llama-cpp's heuristic (GgufInsights.estimateModelResourceRequirements +
    estimateContextResourceRequirements) model VRAM + context VRAM, the "VRAM usage" `inspect estimate`
    prints. It contains no CUDA context/runtime overhead (node-llama-cpp reserves vramPadding =
    min(8% of VRAM, 1.6 GiB) of free VRAM instead), but it does count llama.cpp's output (logits) buffer,
    which llama.cpp allocates in pinned host memory (CUDA_Host), not on the GPU.
  nlc buf: nlc total minus that output buffer = model + KV + compute.
  gp buf:  gguf-parser's VRAM 0 NONUMA with --platform-footprint 0,0 = output buffer + weights + KV +
    computation (its output buffer, (n_embd + n_vocab) x n_ubatch x 4 B, is put on the GPU at full offload).
Reference 2, process: the NVML process peak of the llama-bench process (peak_tree_bytes, everything the
process had on the GPU: buffers + CUDA context + cuBLAS/ggml-cuda pools). Compared with
  llmem proc: process_peak_bytes (llmem adds its model of the CUDA context, cuBLAS and the ggml-cuda pool).
  gp total:   gguf-parser's VRAM 0 NONUMA as it prints it (default --platform-footprint 150,250: + 250 MiB
    for the CUDA runtime).
  node-llama-cpp has no such figure.
Errors are (estimate - reference) / reference.
"""
import json, os, statistics, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peer_runs import load_runs, logged_cuda0  # noqa: E402

NLC = os.path.join(HERE, 'node_llama_cpp_estimates.jsonl')
GP = os.path.join(HERE, 'gguf_parser_estimates.jsonl')
MiB = 1024 * 1024


def pct(est, ref):
    return 100.0 * (est - ref) / ref


def main():
    runs, _ = load_runs()
    gp = {}
    if os.path.exists(GP):
        for line in open(GP):
            g = json.loads(line)
            gp[g['id']] = g
    rows = []
    for line in open(NLC):
        e = json.loads(line)
        r = runs[e['id']]
        ref, parts = logged_cuda0(r['llama_log'])
        h = (e.get('node_llama_cpp') or {}).get('heuristic') or {}
        g = gp.get(e['id']) or {}
        lm = e.get('llmem_framework_peak_bytes')
        peak = r.get('peak_tree_bytes')
        rows.append(dict(
            model=e['model'], scheme=e['scheme'], ctx=e['n_ctx'], fa=e['flash_attn'],
            kv=e['cache_type_k'] if e['cache_type_k'] == e['cache_type_v'] else f"{e['cache_type_k']}/{e['cache_type_v']}",
            ngl='all' if e['n_gpu_layers'] >= 999 else str(e['n_gpu_layers']),
            ref=ref, parts=parts, peak=peak / MiB if peak else None,
            llmem=lm / MiB if lm is not None else None,
            llmem_proc=e.get('llmem_process_peak_bytes', 0) / MiB,
            nlc_total=h['total_vram'] / MiB,
            nlc_buf=(h['total_vram'] - h['output_buffer']) / MiB,
            nlc_model=h['model_vram'] / MiB, nlc_kv=h['kv_vram'] / MiB,
            nlc_compute=(h['context_vram'] - h['kv_vram'] - h['output_buffer']) / MiB,
            nlc_output=h['output_buffer'] / MiB,
            gp_buf=g['gp_vram_nonuma_nofp_bytes'] / MiB if 'gp_vram_nonuma_nofp_bytes' in g else None,
            gp_total=g['gp_vram_nonuma_bytes'] / MiB if 'gp_vram_nonuma_bytes' in g else None,
            gp_comp=(g['gp_vram_nonuma_nofp_bytes'] - g['gp_vram_uma_bytes']) / MiB if 'gp_vram_uma_bytes' in g else None))
    have_gp = any(x['gp_buf'] is not None for x in rows)

    def e(a, b, w=7):
        return f"{pct(a, b):+{w}.1f}" if (a is not None and b) else ' ' * (w - 3) + 'n/a'

    def m(a, w=9):
        return f"{a:{w}.1f}" if a is not None else ' ' * (w - 3) + 'n/a'

    hdr = (f"{'model':16s} {'scheme':6s} {'ctx':>5s} {'fa':3s} {'kv':4s} {'ngl':3s} | {'llama.cpp':>9s} | "
           f"{'llmem':>9s} {'err%':>6s} | {'nlc total':>9s} {'err%':>7s} | {'nlc buf':>9s} {'err%':>7s} | "
           + (f"{'gp buf':>9s} {'err%':>7s} | " if have_gp else '')
           + f"{'NVML peak':>9s} | {'llmem proc':>10s} {'err%':>6s} | "
           + (f"{'gp total':>9s} {'err%':>7s} | " if have_gp else '')
           + 'nlc model/KV/compute err% (vs logged CUDA0 parts)')
    print('MiB. llama.cpp = logged CUDA0 model+KV+compute buffers (llama.cpp 80fb11ac, llama-bench, H200, n_batch 2048,')
    print('n_ubatch 512). llmem = framework_peak_bytes. nlc = node-llama-cpp 3.21.1 heuristic (total = what `inspect')
    print('estimate` calls VRAM usage; buf = total minus the output buffer that llama.cpp keeps in CUDA_Host).')
    if have_gp:
        print('gp = gguf-parser-go v0.25.0, VRAM 0 NONUMA: buf = with --platform-footprint 0,0; total = as printed (+250 MiB).')
    print('NVML peak = peak_tree_bytes of the llama-bench process; llmem proc = process_peak_bytes; gp total are')
    print('compared with it. err% = (estimate - reference) / reference.')
    print()
    print(hdr)
    print('-' * len(hdr))
    for x in rows:
        p = x['parts']
        print(f"{x['model']:16s} {x['scheme']:6s} {x['ctx']:5d} {x['fa']:3s} {x['kv']:4s} {x['ngl']:3s} | {x['ref']:9.1f} | "
              f"{m(x['llmem'])} {e(x['llmem'], x['ref'], 6)} | {x['nlc_total']:9.1f} {e(x['nlc_total'], x['ref'])} | "
              f"{x['nlc_buf']:9.1f} {e(x['nlc_buf'], x['ref'])} | "
              + (f"{m(x['gp_buf'])} {e(x['gp_buf'], x['ref'])} | " if have_gp else '')
              + f"{m(x['peak'])} | {m(x['llmem_proc'], 10)} {e(x['llmem_proc'], x['peak'], 6)} | "
              + (f"{m(x['gp_total'])} {e(x['gp_total'], x['peak'])} | " if have_gp else '')
              + f"{e(x['nlc_model'], p['model_buffer_mib'], 6)} / {e(x['nlc_kv'], p['kv_buffer_mib'], 6)} / "
              f"{e(x['nlc_compute'], p['compute_buffer_mib'], 6)}")
    print()

    def summ(name, vals, unit='%'):
        a = [abs(v) for v in vals]
        return f"{name:52s} n={len(a):3d}  median |err| {statistics.median(a):8.2f}{unit}   max |err| {max(a):8.2f}{unit}"

    def pcts(key, sel, ref='ref'):
        return [pct(x[key], x[ref]) for x in sel if x[key] is not None and x[ref]]

    def block(title, sel):
        print(title)
        print(summ('  llmem GPU buffers', pcts('llmem', sel)))
        print(summ('  node-llama-cpp total (as printed)', pcts('nlc_total', sel)))
        print(summ('  node-llama-cpp buffers only (no output buf)', pcts('nlc_buf', sel)))
        if have_gp:
            print(summ('  gguf-parser VRAM NONUMA, no platform footprint', pcts('gp_buf', sel)))
        print(summ('  llmem process peak vs NVML peak', pcts('llmem_proc', sel, 'peak')))
        if have_gp:
            print(summ('  gguf-parser VRAM NONUMA (as printed) vs NVML peak', pcts('gp_total', sel, 'peak')))

    block('Summary, all runs with logged buffers (GPU buffers vs llama.cpp CUDA0; process vs NVML peak):', rows)
    f16 = [x for x in rows if x['kv'] == 'f16']
    block('Runs with an f16 KV cache only (node-llama-cpp mis-sizes quantized KV caches, see README):', f16)
    by_model = {}
    for x in rows:
        by_model.setdefault(x['model'], []).append(x)
    print('Per model (GPU buffers: llmem / nlc total / nlc buf' + (' / gp buf' if have_gp else '')
          + '; median |err| %, max |err| %):')
    for mod, sel in by_model.items():
        keys = ['llmem', 'nlc_total', 'nlc_buf'] + (['gp_buf'] if have_gp else [])
        med = ' / '.join(f"{statistics.median([abs(v) for v in pcts(k, sel)]):.2f}" for k in keys)
        mx = ' / '.join(f"{max([abs(v) for v in pcts(k, sel)]):.1f}" for k in keys)
        print(f"  {mod:18s} n={len(sel):3d}  median {med:32s} max {mx}")
    print('node-llama-cpp per part (vs logged CUDA0 part):')
    full = [x for x in rows if x['ngl'] == 'all']
    part = [x for x in rows if x['ngl'] != 'all']
    print(summ('  model (full offload)', [pct(x['nlc_model'], x['parts']['model_buffer_mib']) for x in full]))
    print(summ('  model (partial offload)', [pct(x['nlc_model'], x['parts']['model_buffer_mib']) for x in part]))
    print(summ('  KV (f16 runs, KV on CUDA0)', [pct(x['nlc_kv'], x['parts']['kv_buffer_mib']) for x in f16 if x['parts']['kv_buffer_mib']]))
    q = [x for x in rows if x['kv'] != 'f16']
    if q:
        print(summ('  KV (quantized KV runs)', [pct(x['nlc_kv'], x['parts']['kv_buffer_mib']) for x in q]))
    print(summ('  compute', [pct(x['nlc_compute'], x['parts']['compute_buffer_mib']) for x in rows]))
    print(summ('  compute, |error| in MiB', [x['nlc_compute'] - x['parts']['compute_buffer_mib'] for x in rows], ' MiB'))
    if have_gp:
        print('gguf-parser parts:')
        cs = sorted(x['gp_comp'] for x in rows)
        print(f"  {'computation part (NONUMA - UMA with --no-mmap), MiB':50s} n={len(cs):3d}  median {statistics.median(cs):8.1f} MiB   "
              f"min {cs[0]:.1f}   max {cs[-1]:.1f}")
        print(summ('  buf minus computation vs CUDA0 buffers', [pct(x['gp_buf'] - x['gp_comp'], x['ref']) for x in rows]))
        print(summ('  gp buf, full offload', pcts('gp_buf', full)))
        print(summ('  gp buf, partial offload (-ngl n_layer/2)', pcts('gp_buf', part)))
        print(summ('  gp total vs NVML peak, full offload', pcts('gp_total', full, 'peak')))
        print(summ('  gp total vs NVML peak, partial offload', pcts('gp_total', part, 'peak')))


if __name__ == '__main__':
    main()
