// NVML (the NVIDIA Management Library), loaded with dlopen at run time.
//
// No CUDA header or library is needed to build llmem: the few functions and structs used are declared in
// src/gpu/nvml.cpp with the layouts of nvml.h, and the versioned entry points (nvmlInit_v2,
// nvmlDeviceGetMemoryInfo_v2, nvmlDeviceGetComputeRunningProcesses_v3, ...) are preferred, falling back to the
// older symbols when a driver lacks them. The same binary runs on a machine without a GPU and says so.
//
// The library path is `libnvidia-ml.so.1`, or the value of the environment variable LLMEM_NVML_LIBRARY (tests
// point it at a fake NVML, see tests/fake_nvml/).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace llmem::nvml {

// The NVML return codes llmem names (nvmlReturn_t). Anything else is reported through error_string().
enum Status : int {
  kSuccess = 0,
  kUninitialized = 1,
  kInvalidArgument = 2,
  kNotSupported = 3,
  kNoPermission = 4,
  kNotFound = 6,
  kInsufficientSize = 7,
  kDriverNotLoaded = 9,
  kGpuIsLost = 15,
  kFunctionNotFound = 13,   // also used by llmem when a symbol is missing from the library
  kUnknown = 999,
};

inline constexpr const char* kDefaultLibrary = "libnvidia-ml.so.1";
inline constexpr const char* kLibraryEnv = "LLMEM_NVML_LIBRARY";

// nvmlMemory_v2_t: used excludes reserved (driver and firmware memory), as nvidia-smi reports it.
struct DeviceMemory {
  uint64_t total_bytes = 0;
  uint64_t reserved_bytes = 0;
  uint64_t free_bytes = 0;
  uint64_t used_bytes = 0;
  bool reserved_known = false;  // false when only the v1 query exists (then reserved is counted in used)
};

// One compute process as NVML lists it. NVML reports a process's memory only where the driver can (not on
// Windows WDDM, not always in containers); used_bytes is empty then.
struct GpuProcess {
  uint32_t pid = 0;
  std::optional<uint64_t> used_bytes;
};

// A loaded and initialised NVML. Not thread-safe for concurrent use of one device from two threads; the
// measurement's sampler owns the hot path while the main thread waits.
class Library {
 public:
  // Loads the library (LLMEM_NVML_LIBRARY or libnvidia-ml.so.1) and calls nvmlInit_v2. Throws llmem::Error
  // (kRuntime) with a one-line cause: "no NVIDIA driver found (libnvidia-ml.so.1 could not be loaded)" when the
  // library is absent, "NVML could not be initialised: <NVML's reason>" when nvmlInit fails.
  static std::unique_ptr<Library> open();
  static std::unique_ptr<Library> open(const std::string& library_path);

  virtual ~Library() = default;

  virtual const std::string& library_path() const = 0;
  // Entry points that were missing and replaced by an older one ("nvmlDeviceGetMemoryInfo_v2 -> ..."), so a
  // report can say where a number came from.
  virtual const std::vector<std::string>& fallbacks() const = 0;

  // Throwing queries for inventories (errors name the call, the GPU and NVML's reason).
  virtual unsigned device_count() = 0;
  virtual std::string driver_version() = 0;
  virtual std::string name(unsigned index) = 0;
  virtual std::string uuid(unsigned index) = 0;

  // The sampler's hot path: no exceptions, no allocation once `out` has capacity. Returns an NVML status.
  virtual int memory(unsigned index, DeviceMemory& out) noexcept = 0;
  // Compute processes on the device. kNotSupported / kNoPermission mean per-process memory is unavailable.
  virtual int processes(unsigned index, std::vector<GpuProcess>& out) noexcept = 0;

  // NVML's own text for a status ("Not Supported"), or a fallback when nvmlErrorString is missing.
  virtual std::string error_string(int status) const = 0;
};

// One GPU as `llmem gpus` reports it.
struct GpuInfo {
  unsigned index = 0;
  std::string name;
  std::string uuid;
  DeviceMemory memory;
  int processes_status = kSuccess;   // kSuccess, or why the process list is unavailable
  std::vector<GpuProcess> processes;
  std::vector<std::string> process_names;  // parallel to processes: /proc/<pid>/comm, "" when not visible
};

struct Inventory {
  std::string nvml_library;
  std::string driver_version;
  std::vector<GpuInfo> gpus;
  std::vector<std::string> notes;   // fallbacks used, process lists unavailable, ...
};

Inventory query_inventory(Library& nvml);

// The short name of a process (/proc/<pid>/comm), "" when it is not visible from here (another PID namespace).
std::string process_name(uint32_t pid);

}  // namespace llmem::nvml
