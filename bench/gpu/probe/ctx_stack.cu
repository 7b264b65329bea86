// Issue 17/15 probe: how much of a CUDA context is the per-thread stack (local memory) reservation.
// The driver reserves stack bytes for every thread that can be resident: SMs x max threads per SM x the stack
// limit (cudaLimitStackSize, 1 KiB by default). This program creates a context, reads its process memory from
// nvidia-smi, raises the stack limit step by step and reads it again. Built here (no GPU) with
//   nvcc -O2 -o ctx_stack ctx_stack.cu   (cudart linked statically, nvcc's default)
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

static long process_mib() {
  char cmd[256];
  std::snprintf(cmd, sizeof cmd,
                "nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits | awk -F', ' '$1==%d{print $2}'",
                static_cast<int>(getpid()));
  FILE* p = popen(cmd, "r");
  long v = -1;
  if (p) { if (std::fscanf(p, "%ld", &v) != 1) v = -1; pclose(p); }
  return v;
}

__global__ void touch(int* out) { out[threadIdx.x] = threadIdx.x; }

int main() {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) { std::puts("no device"); return 1; }
  std::printf("device %s sms %d max_threads_per_sm %d\n", prop.name, prop.multiProcessorCount,
              prop.maxThreadsPerMultiProcessor);
  cudaFree(nullptr);
  size_t stack = 0, heap = 0, fifo = 0;
  cudaDeviceGetLimit(&stack, cudaLimitStackSize);
  cudaDeviceGetLimit(&heap, cudaLimitMallocHeapSize);
  cudaDeviceGetLimit(&fifo, cudaLimitPrintfFifoSize);
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  std::printf("limits stack %zu heap %zu printf_fifo %zu\n", stack, heap, fifo);
  std::printf("context stack=%zu process_mib %ld used_device_mib %zu\n", stack, process_mib(),
              (total_b - free_b) >> 20);
  int* out = nullptr;
  cudaMalloc(&out, 1024 * sizeof(int));
  touch<<<1, 256>>>(out);
  cudaDeviceSynchronize();
  cudaMemGetInfo(&free_b, &total_b);
  std::printf("after_kernel stack=%zu process_mib %ld used_device_mib %zu\n", stack, process_mib(),
              (total_b - free_b) >> 20);
  for (size_t s : {2048ul, 4096ul, 8192ul, 1024ul}) {
    cudaError_t e = cudaDeviceSetLimit(cudaLimitStackSize, s);
    touch<<<1, 256>>>(out);
    cudaDeviceSynchronize();
    cudaDeviceGetLimit(&stack, cudaLimitStackSize);
    cudaMemGetInfo(&free_b, &total_b);
    std::printf("set_stack %zu (%s) now %zu process_mib %ld used_device_mib %zu\n", s, cudaGetErrorString(e), stack,
                process_mib(), (total_b - free_b) >> 20);
  }
  return 0;
}
