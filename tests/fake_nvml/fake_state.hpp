// Shared by the fake NVML, the fake CUDA driver and fake_gpu_alloc: the script and the state directory.
//
// The script (JSON, path in $FAKE_NVML_SCRIPT; one default GPU when unset):
//   {
//     "driver_version": "555.42.06",
//     "init_error": 0,                      nvmlInit's answer (9 = NVML_ERROR_DRIVER_NOT_LOADED)
//     "gpus": [{
//       "name": "Fake H100 80GB HBM3", "uuid": "GPU-...",   (uuid: 32 hex digits after "GPU-")
//       "total_mib": 81559, "reserved_mib": 527, "base_used_mib": 4,
//       "processes_error": 0,               the process query's answer (3 = NOT_SUPPORTED)
//       "process_memory_unavailable": false, report usedGpuMemory as NVML_VALUE_NOT_AVAILABLE
//       "lost_after_memory_calls": -1,      after N memory queries the GPU answers GPU_IS_LOST (15)
//       "lost_after_live_memory_calls": -1, the same after N answered queries that saw a command's memory
//       "fail_memory_calls": [],            1-based memory-query numbers that answer UNKNOWN (999)
//       "static_processes": [{"pid": 4000001, "used_mib": 1000}]   processes not of the tree
//     }],
//     "cuda": {"context_mib": 500, "driver_version": 12040}
//   }
//
// Memory of live processes comes from the state directory ($FAKE_NVML_STATE_DIR): a file named by a pid holds
// lines "GPU MIB". fake_gpu_alloc and the fake CUDA driver write their own file; the fake NVML reports a pid's
// memory while that process is alive (not a zombie), as the real driver frees a process's memory at its exit.
// So a test decides exactly what the GPU "sees" and when, with real processes and real pids.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fake {

struct StaticProcess {
  uint32_t pid = 0;
  uint64_t used_mib = 0;
};

struct GpuScript {
  std::string name = "Fake GPU";
  std::string uuid = "GPU-00000000-0000-0000-0000-000000000000";
  uint64_t total_mib = 81559;
  uint64_t reserved_mib = 527;
  uint64_t base_used_mib = 4;
  int processes_error = 0;
  bool process_memory_unavailable = false;
  long lost_after_memory_calls = -1;
  long lost_after_live_memory_calls = -1;
  std::vector<long> fail_memory_calls;
  std::vector<StaticProcess> static_processes;
};

struct Script {
  std::string driver_version = "555.42.06";
  int init_error = 0;
  std::vector<GpuScript> gpus;
  uint64_t cuda_context_mib = 500;
  int cuda_driver_version = 12040;
};

const Script& script();

// Live processes' memory on one GPU: (pid, MiB), from the state directory.
std::vector<std::pair<uint32_t, uint64_t>> live_allocations(unsigned gpu);

// This process's memory per GPU (written atomically; an empty map removes the file).
void write_own_state(const std::map<unsigned, uint64_t>& mib_per_gpu);

// The memory queries the fake NVML has answered, in every process that loaded it (each writes its own count to
// "queries.<pid>" in the state directory). fake_gpu_alloc holds each phase until a few queries have seen it, so a
// phase is measured however slowly a loaded machine runs the sampler: tests count samples, not milliseconds.
void count_memory_query();
uint64_t memory_queries();

}  // namespace fake
