// NVML loading, `llmem gpus` and `llmem probe` against the fake NVML and CUDA driver (tests/fake_nvml).
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <sstream>

#include <nlohmann/json.hpp>

#include "fake_nvml/fake_run.hpp"
#include "llmem/cuda_driver.hpp"
#include "llmem/error.hpp"
#include "llmem/measure.hpp"
#include "llmem/nvml.hpp"

namespace {

using fake::FakeGpu;
using nlohmann::json;
constexpr uint64_t kMiB = 1ull << 20;

const char* kTwoGpus = R"({"driver_version": "550.54.15", "gpus": [
  {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-6c1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8",
   "total_mib": 81559, "reserved_mib": 527, "base_used_mib": 4},
  {"name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-11111111-2222-3333-4444-555555555555",
   "total_mib": 40960, "reserved_mib": 300, "base_used_mib": 7,
   "static_processes": [{"pid": 4000001, "used_mib": 1234}]}],
  "cuda": {"context_mib": 517, "driver_version": 12040}})";

TEST(Gpus, JsonHasEveryGpuWithStableKeys) {
  FakeGpu gpu(kTwoGpus);
  auto r = gpu.run({"gpus", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["schema_version"], 1);
  EXPECT_EQ(j["driver_version"], "550.54.15");
  EXPECT_EQ(j["gpu_count"], 2);
  const json& a = j["gpus"][0];
  EXPECT_EQ(a["index"], 0);
  EXPECT_EQ(a["name"], "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(a["uuid"], "GPU-6c1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8");
  EXPECT_EQ(a["memory"]["total_bytes"], 81559 * kMiB);
  EXPECT_EQ(a["memory"]["total_mib"], 81559);
  EXPECT_EQ(a["memory"]["reserved_mib"], 527);
  EXPECT_EQ(a["memory"]["used_mib"], 4);
  EXPECT_EQ(a["memory"]["free_mib"], 81559 - 527 - 4);
  EXPECT_EQ(a["processes_status"], "ok");
  const json& b = j["gpus"][1];
  EXPECT_EQ(b["memory"]["used_mib"], 7 + 1234);
  ASSERT_EQ(b["processes"].size(), 1u);
  EXPECT_EQ(b["processes"][0]["pid"], 4000001);
  EXPECT_EQ(b["processes"][0]["used_mib"], 1234);
  EXPECT_EQ(b["processes"][0]["name"], "");   // not a process of this machine
}

TEST(Gpus, TextSaysItsUnitsAndListsProcesses) {
  FakeGpu gpu(kTwoGpus);
  std::string pidfile = gpu.path("p.pid");
  gpu.start_outside({"--gpu", "0", "--pidfile", pidfile, "2048:10000"});
  pid_t pid = gpu.wait_for_pidfile(pidfile);
  ASSERT_GT(pid, 0);
  // The pidfile is written before the state file; wait until the fake GPU shows the memory (a hang guard of
  // 120 s, not a measurement).
  for (int i = 0; i < 24000 && fake::read_text(gpu.dir() + "/state/" + std::to_string(pid)).empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto r = gpu.run({"gpus"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("NVIDIA driver 550.54.15, 2 GPUs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MiB (as nvidia-smi)"), std::string::npos);
  EXPECT_NE(r.out.find("GiB (2^30 bytes)"), std::string::npos);
  EXPECT_NE(r.out.find("GPU-11111111-2222-3333-4444-555555555555"), std::string::npos);
  EXPECT_NE(r.out.find("pid " + std::to_string(pid)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fake_gpu_alloc"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2048 MiB"), std::string::npos) << r.out;
  std::istringstream lines(r.out);  // text keeps to 100 columns (docs/cli.md)
  for (std::string line; std::getline(lines, line);) {
    size_t columns = 0;
    for (char c : line) columns += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    EXPECT_LE(columns, 100u) << line;
  }
  auto j = json::parse(gpu.run({"gpus", "--json"}).out);
  EXPECT_EQ(j["gpus"][0]["processes"][0]["name"], "fake_gpu_alloc");
  EXPECT_EQ(j["gpus"][0]["memory"]["used_mib"], 4 + 2048);
}

TEST(Gpus, ProcessListNotSupported) {
  FakeGpu gpu(R"({"gpus": [{"name": "vGPU", "processes_error": 3}]})");
  auto r = gpu.run({"gpus"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("processes: unavailable (Not Supported)"), std::string::npos) << r.out;
  auto j = json::parse(gpu.run({"gpus", "--json"}).out);
  EXPECT_EQ(j["gpus"][0]["processes_status"], "Not Supported");
}

TEST(Gpus, OldDriverWithoutVersionedEntryPoints) {
  FakeGpu gpu(kTwoGpus);
  gpu.set_env("LLMEM_NVML_LIBRARY", FAKE_NVML_V1_LIBRARY);
  auto r = gpu.run({"gpus", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  // nvmlDeviceGetMemoryInfo (v1) counts reserved memory as used and does not report it apart.
  EXPECT_EQ(j["gpus"][0]["memory"]["used_mib"], 527 + 4);
  EXPECT_TRUE(j["gpus"][0]["memory"]["reserved_mib"].is_null());
  EXPECT_EQ(j["gpus"][1]["processes"][0]["used_mib"], 1234);   // v1 process struct layout
  std::string notes = j["notes"].dump();
  EXPECT_NE(notes.find("nvmlInit_v2 missing"), std::string::npos) << notes;
  EXPECT_NE(notes.find("nvmlDeviceGetMemoryInfo_v2 missing"), std::string::npos) << notes;

  std::string cmd = fake::alloc() + " --gpu 1 300:150";
  auto m = json::parse(gpu.run({"measure", "--json", "--", "sh", "-c", cmd}).out);
  EXPECT_EQ(m["gpus"][1]["peak_tree_bytes"], 300 * kMiB);
}

TEST(Gpus, NoDriver) {
  FakeGpu gpu(kTwoGpus);
  gpu.set_env("LLMEM_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1");
  auto r = gpu.run({"gpus"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "llmem: no NVIDIA driver found (/nonexistent/libnvidia-ml.so.1 could not be loaded)\n");
  EXPECT_EQ(r.out, "");
}

TEST(Gpus, NoDriverDefaultMessage) {
  // Only meaningful where the real library is absent (CI); on a GPU machine the real NVML loads.
  if (void* h = ::dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL)) {
    ::dlclose(h);
    GTEST_SKIP() << "a real NVML is installed here";
  }
  FakeGpu gpu(kTwoGpus);
  gpu.unset_env("LLMEM_NVML_LIBRARY");
  auto r = gpu.run({"gpus"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "llmem: no NVIDIA driver found (libnvidia-ml.so.1 could not be loaded)\n");
}

TEST(Gpus, InitFailure) {
  FakeGpu gpu(R"({"init_error": 9, "gpus": [{"name": "x"}]})");
  auto r = gpu.run({"gpus"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "llmem: NVML could not be initialised: Driver Not Loaded (NVML error 9)\n");
}

TEST(NvmlLibrary, LoadsTheFakeInProcess) {
  FakeGpu gpu(kTwoGpus);
  ::setenv("FAKE_NVML_SCRIPT", gpu.path("script.json").c_str(), 1);
  ::setenv("FAKE_NVML_STATE_DIR", (gpu.dir() + "/state").c_str(), 1);
  auto nvml = llmem::nvml::Library::open(FAKE_NVML_LIBRARY);
  EXPECT_EQ(nvml->device_count(), 2u);
  EXPECT_TRUE(nvml->fallbacks().empty());
  llmem::nvml::DeviceMemory m;
  ASSERT_EQ(nvml->memory(1, m), llmem::nvml::kSuccess);
  EXPECT_TRUE(m.reserved_known);
  EXPECT_EQ(m.total_bytes, 40960 * kMiB);
  EXPECT_EQ(m.used_bytes, (7 + 1234) * kMiB);
  EXPECT_EQ(m.free_bytes, (40960 - 300 - 7 - 1234) * kMiB);
  EXPECT_EQ(nvml->memory(5, m), llmem::nvml::kInvalidArgument);
  EXPECT_EQ(nvml->error_string(llmem::nvml::kNotSupported), "Not Supported");
  auto inv = llmem::nvml::query_inventory(*nvml);
  EXPECT_EQ(inv.gpus.size(), 2u);
  EXPECT_EQ(inv.driver_version, "550.54.15");
}

TEST(NvmlLibrary, MissingLibraryIsARuntimeError) {
  try {
    llmem::nvml::Library::open("/nonexistent/libnvidia-ml.so.1");
    FAIL();
  } catch (const llmem::Error& e) {
    EXPECT_EQ(e.kind(), llmem::ErrorKind::kRuntime);
    EXPECT_EQ(e.exit_code(), 1);
  }
}

TEST(ProcessTree, DescendantsAndStrangers) {
  pid_t child = ::fork();
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  uint32_t self = static_cast<uint32_t>(::getpid());
  EXPECT_TRUE(llmem::process_descends_from(static_cast<uint32_t>(child), {self}));
  EXPECT_TRUE(llmem::process_descends_from(self, {self}));
  EXPECT_FALSE(llmem::process_descends_from(self, {static_cast<uint32_t>(child)}));
  EXPECT_FALSE(llmem::process_descends_from(4000001, {self}));   // no such process
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

TEST(TimelineFormat, ByExtension) {
  EXPECT_EQ(llmem::timeline_format_for("a.csv"), llmem::TimelineFormat::kCsv);
  EXPECT_EQ(llmem::timeline_format_for("a.JSON"), llmem::TimelineFormat::kJson);
  EXPECT_EQ(llmem::timeline_format_for("dir.x/a.jsonl"), llmem::TimelineFormat::kJsonLines);
  EXPECT_FALSE(llmem::timeline_format_for("a.png"));
  EXPECT_FALSE(llmem::timeline_format_for("csv"));
}

TEST(CudaUuid, FormatsAsNvmlDoes) {
  std::array<uint8_t, 16> b = {0x6c, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70,
                               0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8};
  EXPECT_EQ(llmem::cuda::format_gpu_uuid(b), "GPU-6c1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8");
}

TEST(Probe, ContextOverheadFromTheFakeDriver) {
  FakeGpu gpu(kTwoGpus);
  auto r = gpu.run({"probe", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["gpu_index"], 0);
  EXPECT_EQ(j["cuda_ordinal"], 0);
  EXPECT_EQ(j["cuda_driver_version"], 12040);
  EXPECT_EQ(j["used_before_bytes"], 4 * kMiB);
  EXPECT_EQ(j["context_overhead_bytes"], 517 * kMiB);
  EXPECT_EQ(j["first_allocation_cost_bytes"], 2 * kMiB);
  EXPECT_EQ(j["process_after_context_bytes"], 517 * kMiB);
  EXPECT_EQ(j["process_after_allocation_bytes"], 519 * kMiB);

  auto second = json::parse(gpu.run({"probe", "--json", "--gpu", "1"}).out);
  EXPECT_EQ(second["cuda_ordinal"], 1);   // matched by UUID
  EXPECT_EQ(second["used_before_bytes"], (7 + 1234) * kMiB);
  EXPECT_EQ(second["context_overhead_bytes"], 517 * kMiB);

  auto text = gpu.run({"probe"});
  EXPECT_NE(text.out.find("context overhead: 517 MiB"), std::string::npos) << text.out;
}

TEST(Probe, Errors) {
  FakeGpu gpu(kTwoGpus);
  EXPECT_EQ(gpu.run({"probe", "--gpu", "2"}).exit_code, 2);
  gpu.set_env("LLMEM_CUDA_LIBRARY", "/nonexistent/libcuda.so.1");
  auto r = gpu.run({"probe"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "llmem: no CUDA driver found (/nonexistent/libcuda.so.1 could not be loaded)\n");
}

}  // namespace
