// A fake libcuda.so: the driver calls `llmem probe` makes. A primary context costs the script's context_mib on
// its GPU and an allocation its size rounded up to 2 MiB, written to the state directory so the fake NVML
// reports them as this process's memory, as the real driver does.
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "fake_state.hpp"

namespace {
constexpr int kSuccess = 0, kInvalidValue = 1, kNotInitialized = 3, kInvalidDevice = 101;
bool g_init = false;
std::map<unsigned, uint64_t> g_mib;       // per GPU, this process
std::map<unsigned long long, std::pair<unsigned, uint64_t>> g_allocs;  // ptr -> (gpu, MiB)
int g_current = -1;
unsigned long long g_next_ptr = 0x7f0000000000ull;

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

extern "C" {

int cuInit(unsigned int) {
  if (fake::script().init_error) return 100;  // CUDA_ERROR_NO_DEVICE
  g_init = true;
  return kSuccess;
}
int cuDriverGetVersion(int* v) {
  *v = fake::script().cuda_driver_version;
  return kSuccess;
}
int cuDeviceGetCount(int* n) {
  if (!g_init) return kNotInitialized;
  *n = static_cast<int>(fake::script().gpus.size());
  return kSuccess;
}
int cuDeviceGet(int* d, int ordinal) {
  if (!g_init) return kNotInitialized;
  if (ordinal < 0 || ordinal >= static_cast<int>(fake::script().gpus.size())) return kInvalidDevice;
  *d = ordinal;
  return kSuccess;
}
int cuDeviceGetName(char* buf, int len, int d) {
  const std::string& n = fake::script().gpus.at(d).name;
  if (len <= static_cast<int>(n.size())) return kInvalidValue;
  std::memcpy(buf, n.c_str(), n.size() + 1);
  return kSuccess;
}
int cuDeviceGetUuid_v2(char* out16, int d) {
  const std::string& u = fake::script().gpus.at(d).uuid;
  int n = 0;
  for (size_t i = 0; i < u.size() && n < 32; ++i) {
    int v = hex(u[i]);
    if (i < 4 || v < 0) continue;  // skip "GPU-" and dashes
    if (n % 2 == 0) out16[n / 2] = static_cast<char>(v << 4);
    else out16[n / 2] = static_cast<char>(out16[n / 2] | v);
    ++n;
  }
  return n == 32 ? kSuccess : kInvalidValue;
}
int cuDevicePrimaryCtxRetain(void** ctx, int d) {
  if (!g_init) return kNotInitialized;
  g_mib[static_cast<unsigned>(d)] += fake::script().cuda_context_mib;
  fake::write_own_state(g_mib);
  *ctx = reinterpret_cast<void*>(static_cast<uintptr_t>(0x1000 + d));
  return kSuccess;
}
int cuCtxSetCurrent(void* ctx) {
  g_current = ctx ? static_cast<int>(reinterpret_cast<uintptr_t>(ctx) - 0x1000) : -1;
  return kSuccess;
}
int cuDevicePrimaryCtxRelease_v2(int d) {
  g_mib.erase(static_cast<unsigned>(d));
  fake::write_own_state(g_mib);
  return kSuccess;
}
int cuMemAlloc_v2(unsigned long long* ptr, size_t bytes) {
  if (g_current < 0) return 201;  // CUDA_ERROR_INVALID_CONTEXT
  uint64_t mib = (bytes + (2u << 20) - 1) / (2u << 20) * 2;
  g_mib[static_cast<unsigned>(g_current)] += mib;
  fake::write_own_state(g_mib);
  *ptr = g_next_ptr;
  g_allocs[g_next_ptr] = {static_cast<unsigned>(g_current), mib};
  g_next_ptr += mib << 20;
  return kSuccess;
}
int cuMemFree_v2(unsigned long long ptr) {
  auto it = g_allocs.find(ptr);
  if (it == g_allocs.end()) return kInvalidValue;
  g_mib[it->second.first] -= it->second.second;
  g_allocs.erase(it);
  fake::write_own_state(g_mib);
  return kSuccess;
}
int cuGetErrorString(int rc, const char** s) {
  *s = rc == 100 ? "no CUDA-capable device is detected" : "fake CUDA error";
  return kSuccess;
}

}  // extern "C"
