#!/usr/bin/python3
"""Compare llmem and node-llama-cpp (3.21.1) with the GPU buffers llama.cpp (80fb11ac) logged on an H200.

Reads bench/data/llamacpp_buffers_h200.jsonl (llama.cpp's logged buffers) and
bench/peers/node_llama_cpp_estimates.jsonl (written by run_peers.py) and prints one row per run.

Reference: llama.cpp's CUDA0 buffers = model + KV (+ recurrent state) + compute, from its log (MiB, 2 decimals).
llmem: framework_peak_bytes of `llmem estimate --engine llamacpp` (its GPU buffers).
node-llama-cpp: its heuristic (GgufInsights.estimateModelResourceRequirements +
estimateContextResourceRequirements), i.e. what it uses when it cannot simulate with a CUDA backend.
  nlc total = model VRAM + context VRAM, the "VRAM usage" `inspect estimate` prints. It contains no CUDA
    context/runtime overhead (node-llama-cpp keeps that out of the estimate and reserves vramPadding =
    min(8% of VRAM, 1.6 GiB) of free VRAM instead), but it does count llama.cpp's output (logits) buffer,
    which llama.cpp allocates in pinned host memory (CUDA_Host), not on the GPU.
  nlc buf = nlc total minus that output buffer = model + KV + compute, like with like with CUDA0.
Errors are (estimate - llama.cpp) / llama.cpp.
"""
import json, os, statistics, sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, '..', 'data', 'llamacpp_buffers_h200.jsonl')
EST = os.path.join(HERE, 'node_llama_cpp_estimates.jsonl')
MiB = 1024 * 1024


def logged_cuda0(ll):
    parts = {k: (ll.get(k) or {}).get('CUDA0', 0.0) for k in ('model_buffer_mib', 'kv_buffer_mib', 'rs_buffer_mib', 'compute_buffer_mib')}
    return sum(parts.values()), parts


def pct(est, ref):
    return 100.0 * (est - ref) / ref


def main():
    runs = {}
    for line in open(RUNS):
        r = json.loads(line)
        runs[r['id']] = r
    rows = []
    for line in open(EST):
        e = json.loads(line)
        r = runs[e['id']]
        ref, parts = logged_cuda0(r['llama_log'])
        h = (e.get('node_llama_cpp') or {}).get('heuristic') or {}
        lm = e.get('llmem_framework_peak_bytes')
        rows.append(dict(
            model=e['model'], scheme=e['scheme'], ctx=e['n_ctx'], fa=e['flash_attn'],
            kv=e['cache_type_k'] if e['cache_type_k'] == e['cache_type_v'] else f"{e['cache_type_k']}/{e['cache_type_v']}",
            ngl='all' if e['n_gpu_layers'] >= 999 else str(e['n_gpu_layers']),
            ref=ref, parts=parts,
            llmem=lm / MiB if lm is not None else None,
            llmem_proc=e.get('llmem_process_peak_bytes', 0) / MiB,
            nlc_total=h['total_vram'] / MiB,
            nlc_buf=(h['total_vram'] - h['output_buffer']) / MiB,
            nlc_model=h['model_vram'] / MiB, nlc_kv=h['kv_vram'] / MiB,
            nlc_compute=(h['context_vram'] - h['kv_vram'] - h['output_buffer']) / MiB,
            nlc_output=h['output_buffer'] / MiB))
    hdr = (f"{'model':15s} {'scheme':6s} {'ctx':>5s} {'fa':3s} {'kv':4s} {'ngl':3s} | {'llama.cpp':>9s} | "
           f"{'llmem':>9s} {'err%':>6s} | {'nlc total':>9s} {'err%':>7s} | {'nlc buf':>9s} {'err%':>7s} | "
           f"{'nlc model/KV/compute err% (vs logged CUDA0 parts)':s}")
    print('GPU buffers in MiB. llama.cpp = logged CUDA0 model+KV+compute (llama.cpp 80fb11ac, llama-bench, H200,')
    print('n_batch 2048, n_ubatch 512). llmem = framework_peak_bytes. nlc = node-llama-cpp 3.21.1 heuristic')
    print('(total = what `inspect estimate` calls VRAM usage; buf = total minus the output buffer that llama.cpp')
    print('keeps in CUDA_Host). err% = (estimate - llama.cpp) / llama.cpp.')
    print()
    print(hdr)
    print('-' * len(hdr))
    for x in rows:
        p = x['parts']
        def e(a, b):
            return f"{pct(a, b):+6.1f}" if b else '   n/a'
        print(f"{x['model']:15s} {x['scheme']:6s} {x['ctx']:5d} {x['fa']:3s} {x['kv']:4s} {x['ngl']:3s} | {x['ref']:9.1f} | "
              f"{x['llmem']:9.1f} {pct(x['llmem'], x['ref']):+6.1f} | {x['nlc_total']:9.1f} {pct(x['nlc_total'], x['ref']):+7.1f} | "
              f"{x['nlc_buf']:9.1f} {pct(x['nlc_buf'], x['ref']):+7.1f} | "
              f"{e(x['nlc_model'], p['model_buffer_mib'])} / {e(x['nlc_kv'], p['kv_buffer_mib'])} / {e(x['nlc_compute'], p['compute_buffer_mib'])}")
    print()

    def summ(name, vals):
        a = [abs(v) for v in vals]
        return f"{name:44s} n={len(a):3d}  median |err| {statistics.median(a):7.2f}%   max |err| {max(a):8.2f}%"

    print('Summary (all runs with logged buffers):')
    print(summ('llmem GPU buffers', [pct(x['llmem'], x['ref']) for x in rows]))
    print(summ('node-llama-cpp total (as printed)', [pct(x['nlc_total'], x['ref']) for x in rows]))
    print(summ('node-llama-cpp buffers only (no output buf)', [pct(x['nlc_buf'], x['ref']) for x in rows]))
    f16 = [x for x in rows if x['kv'] == 'f16']
    print('Runs with an f16 KV cache only (node-llama-cpp mis-sizes quantized KV caches, see README):')
    print(summ('  llmem GPU buffers', [pct(x['llmem'], x['ref']) for x in f16]))
    print(summ('  node-llama-cpp total', [pct(x['nlc_total'], x['ref']) for x in f16]))
    print(summ('  node-llama-cpp buffers only', [pct(x['nlc_buf'], x['ref']) for x in f16]))
    print('node-llama-cpp per part (vs logged CUDA0 part):')
    print(summ('  model', [pct(x['nlc_model'], x['parts']['model_buffer_mib']) for x in rows]))
    print(summ('  KV (f16 runs)', [pct(x['nlc_kv'], x['parts']['kv_buffer_mib']) for x in f16]))
    q = [x for x in rows if x['kv'] != 'f16']
    if q:
        print(summ('  KV (quantized KV runs)', [pct(x['nlc_kv'], x['parts']['kv_buffer_mib']) for x in q]))
    print(summ('  compute', [pct(x['nlc_compute'], x['parts']['compute_buffer_mib']) for x in rows]))
    print(summ('  compute, |error| in MiB (reported as %)', [x['nlc_compute'] - x['parts']['compute_buffer_mib'] for x in rows]).replace('%', ' MiB'))


if __name__ == '__main__':
    main()
