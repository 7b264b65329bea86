// llmem gpus: every NVIDIA GPU, its memory and the processes using it, read from NVML.
#include <memory>

#include <fmt/core.h>

#include "command.hpp"
#include "llmem/measure_report.hpp"
#include "llmem/nvml.hpp"

namespace llmem::cli {
namespace {

struct GpusOptions {
  bool json = false;
};

const bool registered = register_command(50, [](CLI::App& root, int& exit_code) {
  auto opts = std::make_shared<GpusOptions>();
  CLI::App* sub = root.add_subcommand("gpus", "List NVIDIA GPUs: memory, driver and the processes using them (NVML)");
  sub->add_flag("--json", opts->json, "JSON output (keys documented in docs/measure.md)");
  sub->footer(
      "Memory is printed in MiB (2^20 bytes, truncated, as nvidia-smi prints it) and GiB (2^30 bytes).\n"
      "'used' excludes 'reserved' (driver and firmware memory), as in nvidia-smi.\n"
      "\nExamples:\n"
      "  llmem gpus\n"
      "  llmem gpus --json | jq '.gpus[0].memory.free_mib'\n"
      "\nNVML is loaded at run time from libnvidia-ml.so.1, or from $LLMEM_NVML_LIBRARY.\n"
      "Exit codes: 0 success, 1 no NVIDIA driver or an NVML failure.");
  sub->callback([opts, &exit_code] {
    auto nvml = nvml::Library::open();
    nvml::Inventory inv = nvml::query_inventory(*nvml);
    if (opts->json) fmt::print("{}\n", report::inventory_json(inv, *nvml).dump(2));
    else fmt::print("{}", report::inventory_text(inv, *nvml));
    exit_code = 0;
  });
});

}  // namespace
}  // namespace llmem::cli
