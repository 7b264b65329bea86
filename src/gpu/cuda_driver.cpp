// The CUDA driver API through dlopen, and the context-overhead probe. Declarations follow cuda.h (CUDA 12);
// only what the probe calls is declared.
#include "llmem/cuda_driver.hpp"

#include <dlfcn.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include <fmt/core.h>
#include <unistd.h>

#include "llmem/error.hpp"
#include "llmem/units.hpp"

namespace llmem::cuda {

namespace {

using CUresult = int;
using CUdevice = int;
using CUcontext = struct CUctx_st*;
using CUdeviceptr = unsigned long long;
struct CUuuid {
  char bytes[16];
};

using InitFn = CUresult (*)(unsigned int);
using DriverGetVersionFn = CUresult (*)(int*);
using DeviceGetCountFn = CUresult (*)(int*);
using DeviceGetFn = CUresult (*)(CUdevice*, int);
using DeviceGetNameFn = CUresult (*)(char*, int, CUdevice);
using DeviceGetUuidFn = CUresult (*)(CUuuid*, CUdevice);
using PrimaryCtxRetainFn = CUresult (*)(CUcontext*, CUdevice);
using PrimaryCtxReleaseFn = CUresult (*)(CUdevice);
using CtxSetCurrentFn = CUresult (*)(CUcontext);
using MemAllocFn = CUresult (*)(CUdeviceptr*, size_t);
using MemFreeFn = CUresult (*)(CUdeviceptr);
using GetErrorStringFn = CUresult (*)(CUresult, const char**);

class DlDriver final : public Driver {
 public:
  explicit DlDriver(std::string path) : path_(std::move(path)) {
    handle_ = ::dlopen(path_.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_)
      throw Error(ErrorKind::kRuntime, "", fmt::format("no CUDA driver found ({} could not be loaded)", path_));
    init_ = need<InitFn>("cuInit");
    driver_version_ = need<DriverGetVersionFn>("cuDriverGetVersion");
    get_count_ = need<DeviceGetCountFn>("cuDeviceGetCount");
    get_device_ = need<DeviceGetFn>("cuDeviceGet");
    get_name_ = need<DeviceGetNameFn>("cuDeviceGetName");
    get_uuid_ = sym<DeviceGetUuidFn>("cuDeviceGetUuid_v2");
    if (!get_uuid_) get_uuid_ = sym<DeviceGetUuidFn>("cuDeviceGetUuid");
    retain_ = need<PrimaryCtxRetainFn>("cuDevicePrimaryCtxRetain");
    release_ = sym<PrimaryCtxReleaseFn>("cuDevicePrimaryCtxRelease_v2");
    if (!release_) release_ = need<PrimaryCtxReleaseFn>("cuDevicePrimaryCtxRelease");
    set_current_ = need<CtxSetCurrentFn>("cuCtxSetCurrent");
    alloc_ = need<MemAllocFn>("cuMemAlloc_v2");
    free_ = need<MemFreeFn>("cuMemFree_v2");
    error_string_ = sym<GetErrorStringFn>("cuGetErrorString");
  }

  const std::string& library_path() const override { return path_; }

  void init() override { check(init_(0), "cuInit"); }

  int driver_version() override {
    int v = 0;
    check(driver_version_(&v), "cuDriverGetVersion");
    return v;
  }
  int device_count() override {
    int n = 0;
    check(get_count_(&n), "cuDeviceGetCount");
    return n;
  }
  std::string name(int ordinal) override {
    char buf[256] = {};
    check(get_name_(buf, sizeof buf, device(ordinal)), "cuDeviceGetName");
    return buf;
  }
  std::string uuid(int ordinal) override {
    if (!get_uuid_) return "";
    CUuuid u{};
    if (get_uuid_(&u, device(ordinal)) != 0) return "";
    std::array<uint8_t, 16> b{};
    for (int i = 0; i < 16; ++i) b[i] = static_cast<uint8_t>(u.bytes[i]);
    return format_gpu_uuid(b);
  }
  void retain_primary_context(int ordinal) override {
    CUcontext ctx = nullptr;
    check(retain_(&ctx, device(ordinal)), "cuDevicePrimaryCtxRetain");
    check(set_current_(ctx), "cuCtxSetCurrent");
  }
  void release_primary_context(int ordinal) override {
    set_current_(nullptr);
    release_(device(ordinal));
  }
  uint64_t allocate(uint64_t bytes) override {
    CUdeviceptr p = 0;
    check(alloc_(&p, static_cast<size_t>(bytes)), "cuMemAlloc");
    return p;
  }
  void free(uint64_t device_ptr) override { check(free_(device_ptr), "cuMemFree"); }

 private:
  template <typename F>
  F sym(const char* name) {
    return reinterpret_cast<F>(::dlsym(handle_, name));
  }
  template <typename F>
  F need(const char* name) {
    F f = sym<F>(name);
    if (!f) throw Error(ErrorKind::kRuntime, path_, fmt::format("CUDA driver library lacks {}", name));
    return f;
  }
  CUdevice device(int ordinal) {
    CUdevice d = 0;
    check(get_device_(&d, ordinal), "cuDeviceGet");
    return d;
  }
  void check(CUresult rc, const char* call) {
    if (rc == 0) return;
    const char* text = nullptr;
    if (error_string_) error_string_(rc, &text);
    throw Error(ErrorKind::kRuntime, "",
                fmt::format("{} failed: {} (CUDA error {})", call, text ? text : "unknown error", rc));
  }

  std::string path_;
  void* handle_ = nullptr;
  InitFn init_ = nullptr;
  DriverGetVersionFn driver_version_ = nullptr;
  DeviceGetCountFn get_count_ = nullptr;
  DeviceGetFn get_device_ = nullptr;
  DeviceGetNameFn get_name_ = nullptr;
  DeviceGetUuidFn get_uuid_ = nullptr;
  PrimaryCtxRetainFn retain_ = nullptr;
  PrimaryCtxReleaseFn release_ = nullptr;
  CtxSetCurrentFn set_current_ = nullptr;
  MemAllocFn alloc_ = nullptr;
  MemFreeFn free_ = nullptr;
  GetErrorStringFn error_string_ = nullptr;
};

uint64_t read_used(nvml::Library& nvml, unsigned index, unsigned settle_ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
  nvml::DeviceMemory m;
  int rc = nvml.memory(index, m);
  if (rc != nvml::kSuccess)
    throw Error(ErrorKind::kRuntime, fmt::format("GPU {}", index),
                fmt::format("nvmlDeviceGetMemoryInfo failed: {} (NVML error {})", nvml.error_string(rc), rc));
  return m.used_bytes;
}

std::optional<uint64_t> own_process_bytes(nvml::Library& nvml, unsigned index) {
  std::vector<nvml::GpuProcess> procs;
  if (nvml.processes(index, procs) != nvml::kSuccess) return std::nullopt;
  auto self = static_cast<uint32_t>(::getpid());
  for (const auto& p : procs)
    if (p.pid == self) return p.used_bytes;
  return std::nullopt;
}

}  // namespace

std::string format_gpu_uuid(const std::array<uint8_t, 16>& b) {
  std::string hex;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) hex += '-';
    hex += fmt::format("{:02x}", b[i]);
  }
  return "GPU-" + hex;
}

std::unique_ptr<Driver> Driver::open() {
  const char* env = std::getenv(kLibraryEnv);
  return open(env && *env ? std::string(env) : std::string(kDefaultLibrary));
}

std::unique_ptr<Driver> Driver::open(const std::string& library_path) {
  return std::make_unique<DlDriver>(library_path);
}

ProbeResult probe(nvml::Library& nvml, Driver& driver, const ProbeOptions& options) {
  ProbeResult r;
  unsigned count = nvml.device_count();
  if (options.gpu_index >= count)
    throw Error(ErrorKind::kUsage, "", fmt::format("--gpu {}: NVML sees {} GPU{}", options.gpu_index, count,
                                                   count == 1 ? "" : "s"));
  r.gpu_index = options.gpu_index;
  r.name = nvml.name(options.gpu_index);
  r.uuid = nvml.uuid(options.gpu_index);
  r.driver_version = nvml.driver_version();
  r.first_allocation_bytes = options.first_allocation_bytes;
  {
    nvml::DeviceMemory m;
    if (nvml.memory(options.gpu_index, m) == nvml::kSuccess) r.total_bytes = m.total_bytes;
  }
  r.used_before_bytes = read_used(nvml, options.gpu_index, 0);

  driver.init();
  r.cuda_driver_version = driver.driver_version();
  r.used_after_init_bytes = read_used(nvml, options.gpu_index, options.settle_ms);

  // CUDA orders devices fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID; NVML orders by PCI bus. The UUID
  // ties them together.
  int ordinal = -1;
  int cuda_count = driver.device_count();
  for (int i = 0; i < cuda_count; ++i) {
    if (!r.uuid.empty() && driver.uuid(i) == r.uuid) {
      ordinal = i;
      break;
    }
  }
  if (ordinal < 0) {
    if (static_cast<int>(options.gpu_index) >= cuda_count)
      throw Error(ErrorKind::kRuntime, fmt::format("GPU {}", options.gpu_index),
                  fmt::format("the CUDA driver does not see this GPU (CUDA_VISIBLE_DEVICES?); it sees {}", cuda_count));
    ordinal = static_cast<int>(options.gpu_index);
    r.notes.push_back(fmt::format("no CUDA device has NVML's UUID {}; used CUDA ordinal {}", r.uuid, ordinal));
  }
  r.cuda_ordinal = ordinal;

  driver.retain_primary_context(ordinal);
  try {
    r.used_after_context_bytes = read_used(nvml, options.gpu_index, options.settle_ms);
    r.process_after_context_bytes = own_process_bytes(nvml, options.gpu_index);
    uint64_t ptr = driver.allocate(options.first_allocation_bytes);
    r.used_after_allocation_bytes = read_used(nvml, options.gpu_index, options.settle_ms);
    r.process_after_allocation_bytes = own_process_bytes(nvml, options.gpu_index);
    driver.free(ptr);
  } catch (...) {
    driver.release_primary_context(ordinal);
    throw;
  }
  driver.release_primary_context(ordinal);
  if (!r.process_after_context_bytes)
    r.notes.push_back("NVML gives no per-process memory here; the figures are device used, which other processes "
                      "can change");
  return r;
}

}  // namespace llmem::cuda
