// A fake libnvidia-ml.so: the entry points llmem loads, answering from a script (see fake_state.hpp).
// Built twice: libfake_nvml.so exports the versioned entry points as a current driver does; with
// FAKE_NVML_ONLY_V1, libfake_nvml_v1.so exports only the old unversioned ones (an old driver).
#include <atomic>
#include <cstring>
#include <mutex>

#include "fake_state.hpp"

namespace {

struct Device {
  unsigned index;
};
Device g_devices[64];
std::atomic<long> g_memory_calls[64];
std::atomic<long> g_live_memory_calls[64];  // answered memory queries that saw a live allocation
std::atomic<bool> g_initialised{false};

constexpr int kSuccess = 0, kUninitialized = 1, kInvalidArgument = 2, kInsufficientSize = 7, kGpuIsLost = 15,
              kUnknown = 999;
constexpr unsigned long long kMiB = 1ull << 20;

struct Memory {
  unsigned long long total, reserved, free, used;
};

const fake::GpuScript* gpu_of(void* handle) {
  if (!g_initialised) return nullptr;
  auto* d = static_cast<Device*>(handle);
  if (!d || d < g_devices || d >= g_devices + 64) return nullptr;
  const auto& gpus = fake::script().gpus;
  return d->index < gpus.size() ? &gpus[d->index] : nullptr;
}

bool is_lost(const fake::GpuScript& g, unsigned index) {
  return (g.lost_after_memory_calls >= 0 && g_memory_calls[index].load() >= g.lost_after_memory_calls) ||
         (g.lost_after_live_memory_calls >= 0 && g_live_memory_calls[index].load() >= g.lost_after_live_memory_calls);
}

int memory(void* handle, Memory& m) {
  const fake::GpuScript* g = gpu_of(handle);
  if (!g) return kInvalidArgument;
  fake::count_memory_query();  // answered or not (a lost GPU counts too): what fake_gpu_alloc's phases wait for
  unsigned index = static_cast<Device*>(handle)->index;
  if (is_lost(*g, index)) return kGpuIsLost;
  long call = ++g_memory_calls[index];
  for (long c : g->fail_memory_calls)
    if (c == call) return kUnknown;
  unsigned long long used = g->base_used_mib;
  const auto live = fake::live_allocations(index);
  for (const auto& [pid, mib] : live) used += mib;
  if (!live.empty()) ++g_live_memory_calls[index];
  for (const auto& p : g->static_processes) used += p.used_mib;
  m.total = g->total_mib * kMiB;
  m.reserved = g->reserved_mib * kMiB;
  m.used = used * kMiB;
  unsigned long long taken = m.reserved + m.used;
  m.free = taken < m.total ? m.total - taken : 0;
  return kSuccess;
}

struct ProcessInfoV2 {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
struct ProcessInfoV1 {
  unsigned int pid;
  unsigned long long usedGpuMemory;
};

template <typename Info>
int processes(void* handle, unsigned int* count, Info* infos) {
  const fake::GpuScript* g = gpu_of(handle);
  if (!g || !count) return kInvalidArgument;
  unsigned index = static_cast<Device*>(handle)->index;
  if (is_lost(*g, index)) return kGpuIsLost;
  if (g->processes_error) return g->processes_error;
  std::vector<std::pair<uint32_t, uint64_t>> list = fake::live_allocations(index);
  for (const auto& p : g->static_processes) list.emplace_back(p.pid, p.used_mib);
  if (*count < list.size()) {
    *count = static_cast<unsigned>(list.size());
    return kInsufficientSize;
  }
  *count = static_cast<unsigned>(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    Info info{};
    info.pid = list[i].first;
    info.usedGpuMemory = g->process_memory_unavailable ? ~0ULL : list[i].second * kMiB;
    infos[i] = info;
  }
  return kSuccess;
}

int copy_string(const std::string& s, char* buf, unsigned int len) {
  if (!buf || len <= s.size()) return kInsufficientSize;
  std::memcpy(buf, s.c_str(), s.size() + 1);
  return kSuccess;
}

int init() {
  int rc = fake::script().init_error;
  if (rc == kSuccess) g_initialised = true;
  for (unsigned i = 0; i < 64; ++i) g_devices[i].index = i;
  return rc;
}

int count(unsigned int* n) {
  if (!g_initialised) return kUninitialized;
  *n = static_cast<unsigned>(fake::script().gpus.size());
  return kSuccess;
}

int handle_by_index(unsigned int i, void** out) {
  if (!g_initialised) return kUninitialized;
  if (i >= fake::script().gpus.size()) return kInvalidArgument;
  *out = &g_devices[i];
  return kSuccess;
}

}  // namespace

extern "C" {

const char* nvmlErrorString(int rc) {
  switch (rc) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 7: return "Insufficient Size";
    case 9: return "Driver Not Loaded";
    case 15: return "GPU is lost";
    default: return "Unknown Error";
  }
}

int nvmlShutdown() {
  g_initialised = false;
  return kSuccess;
}

int nvmlSystemGetDriverVersion(char* buf, unsigned int len) { return copy_string(fake::script().driver_version, buf, len); }

int nvmlDeviceGetName(void* handle, char* buf, unsigned int len) {
  const fake::GpuScript* g = gpu_of(handle);
  return g ? copy_string(g->name, buf, len) : kInvalidArgument;
}

int nvmlDeviceGetUUID(void* handle, char* buf, unsigned int len) {
  const fake::GpuScript* g = gpu_of(handle);
  return g ? copy_string(g->uuid, buf, len) : kInvalidArgument;
}

// Unversioned (old) entry points: exported by both builds, as real drivers keep them.
int nvmlInit() { return init(); }
int nvmlDeviceGetCount(unsigned int* n) { return count(n); }
int nvmlDeviceGetHandleByIndex(unsigned int i, void** out) { return handle_by_index(i, out); }
int nvmlDeviceGetMemoryInfo(void* handle, unsigned long long* m /* total, free, used */) {
  Memory mem{};
  int rc = memory(handle, mem);
  if (rc != kSuccess) return rc;
  m[0] = mem.total;
  m[1] = mem.free;
  m[2] = mem.used + mem.reserved;  // v1 counts reserved memory as used
  return kSuccess;
}
int nvmlDeviceGetComputeRunningProcesses(void* handle, unsigned int* n, ProcessInfoV1* infos) {
  return processes(handle, n, infos);
}

#ifndef FAKE_NVML_ONLY_V1
int nvmlInit_v2() { return init(); }
int nvmlDeviceGetCount_v2(unsigned int* n) { return count(n); }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void** out) { return handle_by_index(i, out); }

struct MemoryV2 {
  unsigned int version;
  unsigned long long total, reserved, free, used;
};
int nvmlDeviceGetMemoryInfo_v2(void* handle, MemoryV2* m) {
  // The real library checks the struct version and answers NVML_ERROR_ARGUMENT_VERSION_MISMATCH (25).
  if (!m || m->version != (static_cast<unsigned>(sizeof(MemoryV2)) | (2u << 24))) return 25;
  Memory mem{};
  int rc = memory(handle, mem);
  if (rc != kSuccess) return rc;
  m->total = mem.total;
  m->reserved = mem.reserved;
  m->free = mem.free;
  m->used = mem.used;
  return kSuccess;
}
int nvmlDeviceGetComputeRunningProcesses_v3(void* handle, unsigned int* n, ProcessInfoV2* infos) {
  return processes(handle, n, infos);
}
int nvmlDeviceGetComputeRunningProcesses_v2(void* handle, unsigned int* n, ProcessInfoV2* infos) {
  return processes(handle, n, infos);
}
#endif

}  // extern "C"
