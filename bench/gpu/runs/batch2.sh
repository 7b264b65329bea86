#!/bin/bash
# Device command of 2026-12-05 (one H200), second call: rank 0 of DDP/FSDP2 with the fake process group (issue 20,
# both splits, four processes sharing the GPU), quantised checkpoints as stored and loaded (issue 15), and
# accelerate's placements on the CPU (issue 20). Usage from the repository root: bash bench/gpu/runs/batch2.sh
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
mkdir -p "$OUT/pg"
for s in tune holdout; do
  for i in 0 1; do
    timeout 580 python3 bench/gpu/fake_pg_scenarios.py --split $s --shard $i/2 --out "$OUT/pg/$s$i.jsonl" \
      --deadline 480 --timeout 150 > "$OUT/pg/$s$i.log" 2>&1 &
  done
done
timeout 400 python3 bench/gpu/measure_quantized.py --out "$OUT/quantized.jsonl" --work /tmp/llmem-quant > "$OUT/quantized.log" 2>&1 &
timeout 500 python3 bench/gpu/accelerate_placement.py --out "$OUT/placement.jsonl" > "$OUT/placement.log" 2>&1 &
wait
cat "$OUT"/pg/tune*.jsonl > "$OUT/fake_pg_tune.jsonl"; cat "$OUT"/pg/holdout*.jsonl > "$OUT/fake_pg_holdout.jsonl"
tail -n 3 "$OUT"/pg/*.log > "$OUT/fake_pg.log"; rm -r "$OUT/pg"
gzip -9 "$OUT/placement.jsonl"
ls -la "$OUT"
