// The CUDA driver API (libcuda.so.1), loaded with dlopen, and `probe`: what a CUDA context and a first
// allocation cost on this GPU, read from NVML around each step.
//
// The library path is `libcuda.so.1`, or the value of LLMEM_CUDA_LIBRARY (tests use a fake). Nothing of CUDA is
// needed to build llmem.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llmem/nvml.hpp"

namespace llmem::cuda {

inline constexpr const char* kDefaultLibrary = "libcuda.so.1";
inline constexpr const char* kLibraryEnv = "LLMEM_CUDA_LIBRARY";

class Driver {
 public:
  // Loads the library (no cuInit yet, so that a probe can read the GPU before the driver touches it). Throws
  // llmem::Error (kRuntime): "no CUDA driver found (libcuda.so.1 could not be loaded)".
  static std::unique_ptr<Driver> open();
  static std::unique_ptr<Driver> open(const std::string& library_path);
  virtual ~Driver() = default;

  // cuInit(0); throws "cuInit failed: <CUDA's reason>". Every call below needs it.
  virtual void init() = 0;

  virtual const std::string& library_path() const = 0;
  virtual int driver_version() = 0;                 // e.g. 12040 for CUDA 12.4
  virtual int device_count() = 0;
  virtual std::string name(int ordinal) = 0;
  // The device's UUID as NVML prints it ("GPU-6c1a...-..."), "" when the driver cannot tell.
  virtual std::string uuid(int ordinal) = 0;

  // The primary context (what the CUDA runtime and PyTorch use), made current on this thread.
  virtual void retain_primary_context(int ordinal) = 0;
  virtual void release_primary_context(int ordinal) = 0;
  // cuMemAlloc / cuMemFree in the current context; returns the device pointer.
  virtual uint64_t allocate(uint64_t bytes) = 0;
  virtual void free(uint64_t device_ptr) = 0;
};

// NVML's UUID text for 16 UUID bytes: "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
std::string format_gpu_uuid(const std::array<uint8_t, 16>& bytes);

struct ProbeOptions {
  unsigned gpu_index = 0;                       // NVML index; matched to a CUDA ordinal by UUID
  uint64_t first_allocation_bytes = 2u << 20;   // 2 MiB: one large page, the driver's allocation granularity
  unsigned settle_ms = 50;                      // wait before each reading, so NVML has caught up
};

struct ProbeResult {
  unsigned gpu_index = 0;
  int cuda_ordinal = 0;
  std::string name;
  std::string uuid;
  std::string driver_version;                   // NVML's (e.g. "550.54.15")
  int cuda_driver_version = 0;                  // cuDriverGetVersion (e.g. 12040)
  uint64_t total_bytes = 0;
  uint64_t used_before_bytes = 0;               // device used before cuInit
  uint64_t used_after_init_bytes = 0;           // after cuInit (no context yet)
  uint64_t used_after_context_bytes = 0;        // after the primary context exists
  uint64_t used_after_allocation_bytes = 0;     // after the first allocation
  uint64_t first_allocation_bytes = 0;          // what was asked for
  // This process's memory as NVML attributes it (empty when per-process memory is unavailable).
  std::optional<uint64_t> process_after_context_bytes;
  std::optional<uint64_t> process_after_allocation_bytes;
  std::vector<std::string> notes;

  // The headline: device used after the context minus before (what every CUDA process pays first).
  uint64_t context_overhead_bytes() const {
    return used_after_context_bytes > used_before_bytes ? used_after_context_bytes - used_before_bytes : 0;
  }
  uint64_t first_allocation_cost_bytes() const {
    return used_after_allocation_bytes > used_after_context_bytes ? used_after_allocation_bytes - used_after_context_bytes
                                                                  : 0;
  }
};

ProbeResult probe(nvml::Library& nvml, Driver& driver, const ProbeOptions& options);

}  // namespace llmem::cuda
