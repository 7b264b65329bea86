#!/usr/bin/env python3
"""Writes data/study/measured_h200.csv: the study's own scenario (fp16, 6-token prompt, 14 new tokens, batch 1)
as measured by measure_transformers.py, for `llmem study` to show beside the estimate.

Usage: python3 bench/gpu/extract_study.py bench/data/transformers_memory.jsonl > data/study/measured_h200.csv
"""
import json
import sys

print("model,gpu,nvml_process_peak_bytes,max_allocated_bytes,max_reserved_bytes")
for line in open(sys.argv[1]):
    r = json.loads(line)
    if not r.get("ok") or r["mode"] != "generate" or r["dtype"] != "fp16":
        continue
    if r["batch"] != 1 or r["prompt"] != 6 or r["new_tokens"] != 14:
        continue
    model = r["model"].replace("__", "/", 1)
    print(f'{model},{r["gpu_name"]},{r["nvml_process_peak_bytes"]},{r["max_allocated_bytes"]},{r["max_reserved_bytes"]}')
