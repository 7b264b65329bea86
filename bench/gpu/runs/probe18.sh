#!/bin/bash
# Fourteenth session (issue 17): what a torch process adds outside the caching allocator after start-up, step by
# step, and how much of it is the per-thread stack the driver raised (bench/gpu/probe/stack_growth.py). Each
# ordering runs in a fresh process. From the repository root.
set -o pipefail
: "${OUT:?OUT must name a folder}"
{
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import torch; p = torch.cuda.get_device_properties(0); print('torch', torch.__version__, 'sms', p.multi_processor_count, 'max_threads_per_sm', p.max_threads_per_multi_processor)"
for order in "" "matmul_bf16"; do
  echo "== order: ${order:-all steps}"
  python3 bench/gpu/probe/stack_growth.py $order
done
} > "$OUT/stack_growth.txt" 2>&1
cat "$OUT/stack_growth.txt"
