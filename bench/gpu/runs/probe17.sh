#!/bin/bash
# Thirteenth session: the CUDA context's parts on a second card (asked as nvidia-h200): the bare context and its stack
# reservation (bench/gpu/probe/ctx_stack, carried), and a torch process's memory after init, after a bf16 matmul
# (cuBLAS) and after SDPA, with lazy and eager module loading. From the repository root.
set -o pipefail
: "${OUT:?OUT must name a folder}"
{
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
./bench/gpu/probe/ctx_stack
for mode in LAZY EAGER; do
  CUDA_MODULE_LOADING=$mode python3 - <<'PY'
import os, subprocess, torch
def mib():
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if l.split(",")[0].strip() == str(os.getpid())]
mode = os.environ["CUDA_MODULE_LOADING"]
torch.zeros(1).cuda(); torch.cuda.synchronize()
print(mode, "init", mib(), "reserved", torch.cuda.memory_reserved())
a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16); (a @ a).sum().item()
print(mode, "matmul", mib(), "reserved", torch.cuda.memory_reserved())
q = torch.randn(1, 32, 1024, 128, device="cuda", dtype=torch.bfloat16)
torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True).sum().item()
print(mode, "sdpa", mib(), "reserved", torch.cuda.memory_reserved())
PY
done
} > "$OUT/ctx_parts.txt" 2>&1
cat "$OUT/ctx_parts.txt"
