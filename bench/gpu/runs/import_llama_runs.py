#!/usr/bin/python3
"""Copies the results of a llama.cpp device call laid out as below (a run's files_at directory, or a staging directory
assembled from several calls: the 2026-12-06 data came from llama_combo2.sh's and llama_iquant3.sh's returns, staged
by hand) into the repository:
  llamacpp_projection_rebuilt.jsonl        -> bench/peers/llamacpp_projection.jsonl
  a/ (gpt-oss, falcon, pythia)             -> bench/data/llamacpp_arch2_h100{,_gguf_tensors,_log}.*
  b/ (TinyLlama-4L i-quants)               -> bench/data/llamacpp_iquant2_h100{,_gguf_tensors,_log}.*
  a/, b/ llamacpp_projection.jsonl         -> bench/peers/llamacpp_projection_new.jsonl (set = the data file's name)
  fit_print.txt, combo_log.txt             -> bench/peers/llamacpp_fit_print.txt, bench/data/llamacpp_combo2_iquant3_log.txt
The GGUF dumps get the catalog id and overrides of their model (the runs' records carry them), so the tests can
predict each file from the catalog.

  /usr/bin/python3 bench/gpu/runs/import_llama_runs.py DIR [SUB=NAME ...]

SUB=NAME pairs replace the a/ and b/ mapping above (llama_iquant4.sh's b/: b=llamacpp_iquant4_h100).
"""
import json, os, shutil, sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..'))
DATA, PEERS = os.path.join(ROOT, 'bench', 'data'), os.path.join(ROOT, 'bench', 'peers')
SETS = {'a': 'llamacpp_arch2_h100', 'b': 'llamacpp_iquant2_h100'}


def jsonl(path):
    return [json.loads(l) for l in open(path) if l.strip()] if os.path.exists(path) else []


def write(path, rows):
    with open(path, 'w') as f:
        for r in rows:
            f.write(json.dumps(r, separators=(',', ':')) + '\n')
    print(f'{len(rows):4d} -> {os.path.relpath(path, ROOT)}')


def main(src, sets):
    if os.path.exists(os.path.join(src, 'llamacpp_projection_rebuilt.jsonl')):
        shutil.copy(os.path.join(src, 'llamacpp_projection_rebuilt.jsonl'), os.path.join(PEERS, 'llamacpp_projection.jsonl'))
        shutil.copy(os.path.join(src, 'llamacpp_projection_rebuilt.jsonl.log'), os.path.join(PEERS, 'llamacpp_projection.log'))
    for name, dst in (('fit_print.txt', os.path.join(PEERS, 'llamacpp_fit_print.txt')),
                      ('combo_log.txt', os.path.join(DATA, 'llamacpp_combo2_iquant3_log.txt'))):
        if os.path.exists(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), dst)
    new_proj = []
    for sub, base in sets.items():
        runs = jsonl(os.path.join(src, sub, 'llamacpp_memory.jsonl'))
        if not runs:
            print(f'{sub}: no runs')
            continue
        write(os.path.join(DATA, base + '.jsonl'), runs)
        meta = {r['model']: {'catalog_id': r['catalog_id'], 'overrides': r.get('overrides') or {}} for r in runs}
        dumps = jsonl(os.path.join(src, sub, 'llamacpp_gguf_tensors.jsonl'))
        for d in dumps:
            d.update(meta.get(d['model'], {}))
        write(os.path.join(DATA, base + '_gguf_tensors.jsonl'), dumps)
        if os.path.exists(os.path.join(src, sub, 'llamacpp_log.txt')):
            shutil.copy(os.path.join(src, sub, 'llamacpp_log.txt'), os.path.join(DATA, base + '_log.txt'))
        for p in jsonl(os.path.join(src, sub, 'llamacpp_projection.jsonl')):
            p['set'] = base + '.jsonl'
            new_proj.append(p)
    if new_proj:
        write(os.path.join(PEERS, 'llamacpp_projection_new.jsonl'), new_proj)


if __name__ == '__main__':
    pairs = dict(a.split('=', 1) for a in sys.argv[2:])
    main(sys.argv[1], pairs or SETS)
