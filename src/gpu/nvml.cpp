// NVML through dlopen. The declarations below follow nvml.h (CUDA 12 / driver R535+); only what llmem calls is
// declared, so no NVIDIA header is needed at build time.
#include "llmem/nvml.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <fstream>

#include <fmt/core.h>

#include "llmem/error.hpp"

namespace llmem::nvml {

namespace {

using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;

// nvmlMemory_t (v1): used includes reserved memory.
struct nvmlMemory_v1_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

// nvmlMemory_v2_t: the caller sets version = sizeof | 2 << 24 (NVML_STRUCT_VERSION(Memory, 2)).
struct nvmlMemory_v2_t {
  unsigned int version;
  unsigned long long total;
  unsigned long long reserved;
  unsigned long long free;
  unsigned long long used;
};
constexpr unsigned kMemoryV2Version = static_cast<unsigned>(sizeof(nvmlMemory_v2_t)) | (2u << 24);
static_assert(sizeof(nvmlMemory_v2_t) == 40);

// nvmlProcessInfo_v1_t, filled by the unversioned nvmlDeviceGetComputeRunningProcesses.
struct nvmlProcessInfo_v1_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
};
// nvmlProcessInfo_t as filled by the _v2 and _v3 entry points.
struct nvmlProcessInfo_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
static_assert(sizeof(nvmlProcessInfo_v1_t) == 16);
static_assert(sizeof(nvmlProcessInfo_t) == 24);

// NVML_VALUE_NOT_AVAILABLE: usedGpuMemory when the driver cannot attribute memory (WDDM, some containers).
constexpr unsigned long long kValueNotAvailable = ~0ULL;

constexpr unsigned kNameBufferBytes = 96;      // NVML_DEVICE_NAME_V2_BUFFER_SIZE
constexpr unsigned kUuidBufferBytes = 96;      // NVML_DEVICE_UUID_V2_BUFFER_SIZE
constexpr unsigned kVersionBufferBytes = 80;   // NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE

using InitFn = nvmlReturn_t (*)();
using ShutdownFn = nvmlReturn_t (*)();
using GetCountFn = nvmlReturn_t (*)(unsigned int*);
using GetHandleFn = nvmlReturn_t (*)(unsigned int, nvmlDevice_t*);
using GetMemoryV1Fn = nvmlReturn_t (*)(nvmlDevice_t, nvmlMemory_v1_t*);
using GetMemoryV2Fn = nvmlReturn_t (*)(nvmlDevice_t, nvmlMemory_v2_t*);
using GetProcessesFn = nvmlReturn_t (*)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_t*);
using GetProcessesV1Fn = nvmlReturn_t (*)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_v1_t*);
using GetStringFn = nvmlReturn_t (*)(nvmlDevice_t, char*, unsigned int);
using DriverVersionFn = nvmlReturn_t (*)(char*, unsigned int);
using ErrorStringFn = const char* (*)(nvmlReturn_t);

class DlLibrary final : public Library {
 public:
  explicit DlLibrary(std::string path) : path_(std::move(path)) {
    // RTLD_LOCAL: NVML's symbols must not satisfy anything else in the process.
    handle_ = ::dlopen(path_.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_) {
      const char* why = ::dlerror();
      (void)why;  // dlerror's text names the path and the loader's reason; the one-line message says what matters
      throw Error(ErrorKind::kRuntime, "", fmt::format("no NVIDIA driver found ({} could not be loaded)", path_));
    }
    error_string_ = sym<ErrorStringFn>("nvmlErrorString");
    InitFn init = pick<InitFn>("nvmlInit_v2", "nvmlInit");
    shutdown_ = sym<ShutdownFn>("nvmlShutdown");
    get_count_ = pick<GetCountFn>("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount");
    get_handle_ = pick<GetHandleFn>("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
    get_memory_v2_ = sym<GetMemoryV2Fn>("nvmlDeviceGetMemoryInfo_v2");
    if (!get_memory_v2_) {
      get_memory_v1_ = sym<GetMemoryV1Fn>("nvmlDeviceGetMemoryInfo");
      if (get_memory_v1_)
        fallbacks_.push_back("nvmlDeviceGetMemoryInfo_v2 missing: used memory includes reserved memory");
    }
    get_processes_ = sym<GetProcessesFn>("nvmlDeviceGetComputeRunningProcesses_v3");
    if (!get_processes_) {
      get_processes_ = sym<GetProcessesFn>("nvmlDeviceGetComputeRunningProcesses_v2");
      if (get_processes_) {
        fallbacks_.push_back("nvmlDeviceGetComputeRunningProcesses_v3 missing: used _v2");
      } else {
        get_processes_v1_ = sym<GetProcessesV1Fn>("nvmlDeviceGetComputeRunningProcesses");
        if (get_processes_v1_)
          fallbacks_.push_back("nvmlDeviceGetComputeRunningProcesses_v3 missing: used the unversioned entry point");
        else
          fallbacks_.push_back("nvmlDeviceGetComputeRunningProcesses missing: no per-process memory");
      }
    }
    get_name_ = sym<GetStringFn>("nvmlDeviceGetName");
    get_uuid_ = sym<GetStringFn>("nvmlDeviceGetUUID");
    driver_version_ = sym<DriverVersionFn>("nvmlSystemGetDriverVersion");

    std::string missing;
    if (!init) missing = "nvmlInit";
    else if (!get_count_) missing = "nvmlDeviceGetCount";
    else if (!get_handle_) missing = "nvmlDeviceGetHandleByIndex";
    else if (!get_memory_v2_ && !get_memory_v1_) missing = "nvmlDeviceGetMemoryInfo";
    if (!missing.empty()) {
      ::dlclose(handle_);
      throw Error(ErrorKind::kRuntime, path_, fmt::format("NVML library lacks {}: driver too old or not NVML", missing));
    }
    if (nvmlReturn_t rc = init(); rc != kSuccess) {
      std::string why = error_string(rc);
      ::dlclose(handle_);
      throw Error(ErrorKind::kRuntime, "", fmt::format("NVML could not be initialised: {} (NVML error {})", why, rc));
    }
  }

  ~DlLibrary() override {
    if (shutdown_) shutdown_();
    // Deliberately no dlclose: NVML may keep threads or atexit handlers that would run into unmapped code.
  }

  const std::string& library_path() const override { return path_; }
  const std::vector<std::string>& fallbacks() const override { return fallbacks_; }

  unsigned device_count() override {
    unsigned n = 0;
    check(get_count_(&n), "nvmlDeviceGetCount", -1);
    return n;
  }

  std::string driver_version() override {
    if (!driver_version_) return "";
    char buf[kVersionBufferBytes] = {};
    check(driver_version_(buf, sizeof buf), "nvmlSystemGetDriverVersion", -1);
    return std::string(buf);
  }

  std::string name(unsigned index) override { return device_string(index, get_name_, "nvmlDeviceGetName"); }
  std::string uuid(unsigned index) override { return device_string(index, get_uuid_, "nvmlDeviceGetUUID"); }

  int memory(unsigned index, DeviceMemory& out) noexcept override {
    nvmlDevice_t dev = nullptr;
    if (int rc = handle(index, dev); rc != kSuccess) return rc;
    if (get_memory_v2_) {
      nvmlMemory_v2_t m{};
      m.version = kMemoryV2Version;
      int rc = get_memory_v2_(dev, &m);
      if (rc != kSuccess) return rc;
      out = DeviceMemory{m.total, m.reserved, m.free, m.used, true};
      return kSuccess;
    }
    nvmlMemory_v1_t m{};
    int rc = get_memory_v1_(dev, &m);
    if (rc != kSuccess) return rc;
    out = DeviceMemory{m.total, 0, m.free, m.used, false};
    return kSuccess;
  }

  int processes(unsigned index, std::vector<GpuProcess>& out) noexcept override {
    out.clear();
    if (!get_processes_ && !get_processes_v1_) return kFunctionNotFound;
    nvmlDevice_t dev = nullptr;
    if (int rc = handle(index, dev); rc != kSuccess) return rc;
    // The list can grow between the size query and the fill; NVML then answers INSUFFICIENT_SIZE with the new
    // count, so retry a few times with room to spare.
    for (int attempt = 0; attempt < 4; ++attempt) {
      unsigned count = 0;
      int rc = kSuccess;
      if (get_processes_) {
        count = static_cast<unsigned>(infos_.size());
        rc = get_processes_(dev, &count, infos_.empty() ? nullptr : infos_.data());
        if (rc == kSuccess) {
          try {
            for (unsigned i = 0; i < count && i < infos_.size(); ++i) out.push_back(convert(infos_[i].pid, infos_[i].usedGpuMemory));
          } catch (...) {
            return kUnknown;
          }
          return kSuccess;
        }
      } else {
        count = static_cast<unsigned>(infos_v1_.size());
        rc = get_processes_v1_(dev, &count, infos_v1_.empty() ? nullptr : infos_v1_.data());
        if (rc == kSuccess) {
          try {
            for (unsigned i = 0; i < count && i < infos_v1_.size(); ++i)
              out.push_back(convert(infos_v1_[i].pid, infos_v1_[i].usedGpuMemory));
          } catch (...) {
            return kUnknown;
          }
          return kSuccess;
        }
      }
      if (rc != kInsufficientSize) return rc;
      try {
        size_t want = static_cast<size_t>(count) + 16;
        if (get_processes_) infos_.resize(want); else infos_v1_.resize(want);
      } catch (...) {
        return kUnknown;
      }
    }
    return kInsufficientSize;
  }

  std::string error_string(int status) const override {
    if (error_string_) {
      if (const char* s = error_string_(status)) return s;
    }
    switch (status) {
      case kNotSupported: return "Not Supported";
      case kNoPermission: return "Insufficient Permissions";
      case kGpuIsLost: return "GPU is lost";
      case kFunctionNotFound: return "Function Not Found";
      default: return fmt::format("NVML error {}", status);
    }
  }

 private:
  template <typename F>
  F sym(const char* name) {
    return reinterpret_cast<F>(::dlsym(handle_, name));
  }
  // The versioned symbol, or the older one (recorded in fallbacks_).
  template <typename F>
  F pick(const char* versioned, const char* old) {
    if (F f = sym<F>(versioned)) return f;
    F f = sym<F>(old);
    if (f) fallbacks_.push_back(fmt::format("{} missing: used {}", versioned, old));
    return f;
  }

  static GpuProcess convert(unsigned pid, unsigned long long used) {
    GpuProcess p;
    p.pid = pid;
    if (used != kValueNotAvailable) p.used_bytes = used;
    return p;
  }

  int handle(unsigned index, nvmlDevice_t& dev) noexcept {
    if (index < handles_.size() && handles_[index]) {
      dev = handles_[index];
      return kSuccess;
    }
    int rc = get_handle_(index, &dev);
    if (rc != kSuccess) return rc;
    try {
      if (handles_.size() <= index) handles_.resize(index + 1, nullptr);
      handles_[index] = dev;
    } catch (...) {
    }
    return kSuccess;
  }

  void check(int rc, const char* call, int index) {
    if (rc == kSuccess) return;
    std::string where = index >= 0 ? fmt::format("GPU {}", index) : "";
    throw Error(ErrorKind::kRuntime, where, fmt::format("{} failed: {} (NVML error {})", call, error_string(rc), rc));
  }

  std::string device_string(unsigned index, GetStringFn fn, const char* call) {
    if (!fn) return "";
    nvmlDevice_t dev = nullptr;
    check(handle(index, dev), "nvmlDeviceGetHandleByIndex", static_cast<int>(index));
    char buf[kNameBufferBytes > kUuidBufferBytes ? kNameBufferBytes : kUuidBufferBytes] = {};
    check(fn(dev, buf, sizeof buf), call, static_cast<int>(index));
    return std::string(buf);
  }

  std::string path_;
  void* handle_ = nullptr;
  std::vector<std::string> fallbacks_;
  ErrorStringFn error_string_ = nullptr;
  ShutdownFn shutdown_ = nullptr;
  GetCountFn get_count_ = nullptr;
  GetHandleFn get_handle_ = nullptr;
  GetMemoryV1Fn get_memory_v1_ = nullptr;
  GetMemoryV2Fn get_memory_v2_ = nullptr;
  GetProcessesFn get_processes_ = nullptr;
  GetProcessesV1Fn get_processes_v1_ = nullptr;
  GetStringFn get_name_ = nullptr;
  GetStringFn get_uuid_ = nullptr;
  DriverVersionFn driver_version_ = nullptr;
  std::vector<nvmlDevice_t> handles_;
  std::vector<nvmlProcessInfo_t> infos_ = std::vector<nvmlProcessInfo_t>(64);
  std::vector<nvmlProcessInfo_v1_t> infos_v1_ = std::vector<nvmlProcessInfo_v1_t>(64);
};

}  // namespace

std::unique_ptr<Library> Library::open() {
  const char* env = std::getenv(kLibraryEnv);
  return open(env && *env ? std::string(env) : std::string(kDefaultLibrary));
}

std::unique_ptr<Library> Library::open(const std::string& library_path) {
  return std::make_unique<DlLibrary>(library_path);
}

std::string process_name(uint32_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  if (f) std::getline(f, name);
  return name;
}

Inventory query_inventory(Library& nvml) {
  Inventory inv;
  inv.nvml_library = nvml.library_path();
  inv.driver_version = nvml.driver_version();
  inv.notes = nvml.fallbacks();
  unsigned n = nvml.device_count();
  for (unsigned i = 0; i < n; ++i) {
    GpuInfo g;
    g.index = i;
    g.name = nvml.name(i);
    g.uuid = nvml.uuid(i);
    if (int rc = nvml.memory(i, g.memory); rc != kSuccess)
      throw Error(ErrorKind::kRuntime, fmt::format("GPU {}", i),
                  fmt::format("nvmlDeviceGetMemoryInfo failed: {} (NVML error {})", nvml.error_string(rc), rc));
    g.processes_status = nvml.processes(i, g.processes);
    if (g.processes_status != kSuccess) {
      inv.notes.push_back(fmt::format("GPU {}: process list unavailable: {}", i, nvml.error_string(g.processes_status)));
      g.processes.clear();
    }
    for (const auto& p : g.processes) g.process_names.push_back(process_name(p.pid));
    inv.gpus.push_back(std::move(g));
  }
  return inv;
}

}  // namespace llmem::nvml
