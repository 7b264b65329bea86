#!/bin/bash
# Device command of 2026-12-05, third call: the fake-process-group scenarios batch2 left (FSDP2, whose memory
# tracker failed there, and the held-out ones its deadline cut), six processes sharing the GPU; accelerate's
# placements again (transformers 5.17 has no _get_no_split_modules). From the repository root. On 2026-12-05 the
# excluded files held batch2's 24 + 24 records (their first 24 lines now); batch3's are appended after them.
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?OUT must name a folder}"
mkdir -p "$OUT/pg"
for i in 0 1 2 3 4 5; do
  timeout 360 python3 bench/gpu/fake_pg_scenarios.py --split all --shard $i/6 --out "$OUT/pg/$i.jsonl" \
    --exclude bench/data/fake_pg_memory.jsonl --exclude bench/data/fake_pg_memory_holdout.jsonl \
    --deadline 250 --timeout 100 > "$OUT/pg/$i.log" 2>&1 &
done
timeout 300 python3 bench/gpu/accelerate_placement.py --out "$OUT/placement.jsonl" > "$OUT/placement.log" 2>&1 &
wait
cat "$OUT"/pg/*.jsonl > "$OUT/fake_pg_rest.jsonl"; cat "$OUT"/pg/*.log > "$OUT/fake_pg_rest.log"; rm -r "$OUT/pg"
gzip -9 "$OUT/placement.jsonl"
ls -la "$OUT"
