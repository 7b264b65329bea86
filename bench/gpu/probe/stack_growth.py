"""Does a torch process's memory outside the caching allocator grow because kernels raise the per-thread stack?

The driver reserves local memory for every thread the GPU can hold (SMs x max resident threads per SM x the stack
limit); a kernel that needs more stack than the limit raises it for the context, and it is not lowered again
(CUDA Runtime API, cudaDeviceSetLimit / cudaLimitStackSize). This prints, after each step, the process's memory as
NVML reports it, torch's reserved memory, and the context's stack limit (driver API cuCtxGetLimit). At the end the
limit is set back to its first value: what NVML then drops is what the stack growth cost.
Run in a fresh process; one line per step. Usage: python3 stack_growth.py [steps...]"""
import ctypes
import os
import sys

import pynvml
import torch

CU_LIMIT_STACK_SIZE = 0
cuda = ctypes.CDLL("libcuda.so.1")
pynvml.nvmlInit()
dev = pynvml.nvmlDeviceGetHandleByIndex(0)


def process_mib():
    for p in pynvml.nvmlDeviceGetComputeRunningProcesses(dev):
        if p.pid == os.getpid():
            return p.usedGpuMemory / 2**20
    return float("nan")


def stack_limit():
    v = ctypes.c_size_t()
    rc = cuda.cuCtxGetLimit(ctypes.byref(v), CU_LIMIT_STACK_SIZE)
    return v.value if rc == 0 else -rc


def report(step):
    torch.cuda.synchronize()
    print(f"{step:<28} process_mib {process_mib():8.1f} reserved_mib {torch.cuda.memory_reserved() / 2**20:8.1f} "
          f"non_torch_mib {process_mib() - torch.cuda.memory_reserved() / 2**20:8.1f} stack {stack_limit()}", flush=True)


def llama_forward():
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=2, num_attention_heads=16,
                      num_key_value_heads=4, vocab_size=32000)
    m = LlamaForCausalLM(cfg).to("cuda", torch.bfloat16).eval()
    with torch.no_grad():
        m(torch.randint(0, 32000, (1, 512), device="cuda"))


steps = {
    "matmul_bf16": lambda: (torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16) @
                            torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)).sum().item(),
    "addmm_lt_bf16": lambda: torch.nn.functional.linear(torch.randn(512, 4096, device="cuda", dtype=torch.bfloat16),
                                                        torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16),
                                                        torch.randn(4096, device="cuda", dtype=torch.bfloat16)).sum().item(),
    "sdpa_flash": lambda: torch.nn.functional.scaled_dot_product_attention(
        *(torch.randn(1, 32, 1024, 128, device="cuda", dtype=torch.bfloat16),) * 3, is_causal=True).sum().item(),
    "softmax_sort_fp32": lambda: torch.sort(torch.softmax(torch.randn(256, 128256, device="cuda"), -1), -1)[0].sum().item(),
    "llama_forward": llama_forward,
}

torch.zeros(1).cuda()
report("init")
first = stack_limit()
for name in (sys.argv[1:] or steps):
    steps[name]()
    report(name)
rc = cuda.cuCtxSetLimit(CU_LIMIT_STACK_SIZE, ctypes.c_size_t(first))
report(f"stack set back to {first} rc={rc}")
