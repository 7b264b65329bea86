// llmem probe: what a CUDA context and a first allocation cost on this GPU, measured with the driver API.
#include <memory>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "llmem/cuda_driver.hpp"
#include "llmem/nvml.hpp"
#include "llmem/units.hpp"

namespace llmem::cli {
namespace {

std::string mib_gib(uint64_t bytes) {
  // MiB rounded up, as nvidia-smi and `llmem gpus` print them.
  return fmt::format("{} MiB ({:.2f} GiB)", format_thousands((bytes + (1u << 20) - 1) >> 20),
                     static_cast<double>(bytes) / kGiB);
}
std::string delta_mib(uint64_t after, uint64_t before) {
  double d = (static_cast<double>(after) - static_cast<double>(before)) / kMiB;
  return fmt::format("{:+.0f} MiB", d);
}
nlohmann::json opt_bytes(const std::optional<uint64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

struct ProbeCliOptions {
  unsigned gpu = 0;
  bool json = false;
};

const bool registered = register_command(52, [](CLI::App& root, int& exit_code) {
  auto o = std::make_shared<ProbeCliOptions>();
  CLI::App* sub = root.add_subcommand(
      "probe", "Measure this GPU's CUDA context overhead (driver API via dlopen, read with NVML)");
  sub->add_option("--gpu", o->gpu, "NVML index of the GPU to probe")->default_val(0);
  sub->add_flag("--json", o->json, "JSON output (keys in docs/measure.md)");
  sub->footer(
      "Reads device used memory before cuInit, after it, after the primary context is created (what the CUDA\n"
      "runtime and PyTorch use) and after a first 2 MiB allocation. The context overhead is the fixed cost every\n"
      "CUDA process pays before its first tensor; frameworks add their own kernels' modules on top.\n"
      "Run it on an idle GPU: device used counts every process.\n"
      "\nExamples:\n"
      "  llmem probe\n"
      "  llmem probe --gpu 1 --json\n"
      "\nLibraries: libcuda.so.1 (or $LLMEM_CUDA_LIBRARY) and libnvidia-ml.so.1 (or $LLMEM_NVML_LIBRARY).\n"
      "Exit codes: 0 success, 1 no driver or a driver failure, 2 bad options.");
  sub->callback([o, &exit_code] {
    auto nvml = nvml::Library::open();
    auto driver = cuda::Driver::open();
    cuda::ProbeOptions opts;
    opts.gpu_index = o->gpu;
    cuda::ProbeResult r = cuda::probe(*nvml, *driver, opts);
    if (o->json) {
      nlohmann::json j = {{"gpu_index", r.gpu_index},
                          {"cuda_ordinal", r.cuda_ordinal},
                          {"name", r.name},
                          {"uuid", r.uuid},
                          {"driver_version", r.driver_version},
                          {"cuda_driver_version", r.cuda_driver_version},
                          {"total_bytes", r.total_bytes},
                          {"used_before_bytes", r.used_before_bytes},
                          {"used_after_init_bytes", r.used_after_init_bytes},
                          {"used_after_context_bytes", r.used_after_context_bytes},
                          {"used_after_allocation_bytes", r.used_after_allocation_bytes},
                          {"first_allocation_bytes", r.first_allocation_bytes},
                          {"context_overhead_bytes", r.context_overhead_bytes()},
                          {"context_overhead_mib", static_cast<double>(r.context_overhead_bytes()) / kMiB},
                          {"first_allocation_cost_bytes", r.first_allocation_cost_bytes()},
                          {"process_after_context_bytes", opt_bytes(r.process_after_context_bytes)},
                          {"process_after_allocation_bytes", opt_bytes(r.process_after_allocation_bytes)},
                          {"notes", r.notes}};
      fmt::print("{}\n", j.dump(2));
    } else {
      fmt::print("GPU {}  {}  (CUDA device {}, NVIDIA driver {}, CUDA driver API {}.{})\n", r.gpu_index, r.name,
                 r.cuda_ordinal, r.driver_version, r.cuda_driver_version / 1000, (r.cuda_driver_version % 1000) / 10);
      fmt::print("  device used before cuInit:            {:>24}\n", mib_gib(r.used_before_bytes));
      fmt::print("  after cuInit:                         {:>24}  {}\n", mib_gib(r.used_after_init_bytes),
                 delta_mib(r.used_after_init_bytes, r.used_before_bytes));
      fmt::print("  after the primary context:            {:>24}  {}\n", mib_gib(r.used_after_context_bytes),
                 delta_mib(r.used_after_context_bytes, r.used_after_init_bytes));
      fmt::print("  after a first {} MiB allocation:       {:>24}  {}\n", r.first_allocation_bytes >> 20,
                 mib_gib(r.used_after_allocation_bytes),
                 delta_mib(r.used_after_allocation_bytes, r.used_after_context_bytes));
      fmt::print("context overhead: {} (device used after the context minus before cuInit)\n",
                 mib_gib(r.context_overhead_bytes()));
      if (r.process_after_context_bytes)
        fmt::print("  NVML attributes to this process: {} after the context, {} after the allocation\n",
                   mib_gib(*r.process_after_context_bytes),
                   r.process_after_allocation_bytes ? mib_gib(*r.process_after_allocation_bytes) : "n/a");
      for (const auto& n : r.notes) fmt::print("note: {}\n", n);
    }
    exit_code = 0;
  });
});

}  // namespace
}  // namespace llmem::cli
