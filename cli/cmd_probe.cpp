// llmem probe: what a CUDA context and a first allocation cost on this GPU, measured with the driver API.
#include <memory>

#include <fmt/core.h>

#include "command.hpp"
#include "llmem/cuda_driver.hpp"
#include "llmem/measure_report.hpp"
#include "llmem/nvml.hpp"

namespace llmem::cli {
namespace {

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
      "Reads device used memory before cuInit, after it, after the primary context is created (what the CUDA "
      "runtime and PyTorch use) and after a first 2 MiB allocation. The context overhead is the fixed cost every "
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
    if (o->json) fmt::print("{}\n", report::probe_json(r).dump(2));
    else fmt::print("{}", report::probe_text(r));
    exit_code = 0;
  });
});

}  // namespace
}  // namespace llmem::cli
