// llmem gpus: every NVIDIA GPU, its memory and the processes using it, read from NVML.
#include <memory>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "llmem/nvml.hpp"
#include "llmem/units.hpp"

namespace llmem::cli {
namespace {

// nvidia-smi rounds partial MiB up (on an H200: 615.06 MiB reserved shows as 616, 143155.94 MiB free as 143156;
// bench/data/measure_h200.txt); llmem prints the same integers so the two can be compared digit for digit.
uint64_t mib(uint64_t bytes) { return (bytes + (1u << 20) - 1) >> 20; }
std::string gib(uint64_t bytes) { return fmt::format("{:.2f}", static_cast<double>(bytes) / kGiB); }

nlohmann::json memory_json(const nvml::DeviceMemory& m) {
  nlohmann::json j = {{"total_bytes", m.total_bytes},
                      {"used_bytes", m.used_bytes},
                      {"free_bytes", m.free_bytes},
                      {"total_mib", mib(m.total_bytes)},
                      {"used_mib", mib(m.used_bytes)},
                      {"free_mib", mib(m.free_bytes)}};
  if (m.reserved_known) {
    j["reserved_bytes"] = m.reserved_bytes;
    j["reserved_mib"] = mib(m.reserved_bytes);
  } else {
    j["reserved_bytes"] = nullptr;
    j["reserved_mib"] = nullptr;
  }
  return j;
}

nlohmann::json inventory_json(const nvml::Inventory& inv, nvml::Library& nvml) {
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& g : inv.gpus) {
    nlohmann::json procs = nlohmann::json::array();
    for (size_t i = 0; i < g.processes.size(); ++i) {
      const auto& p = g.processes[i];
      nlohmann::json pj = {{"pid", p.pid}, {"name", g.process_names[i]}};
      pj["used_bytes"] = p.used_bytes ? nlohmann::json(*p.used_bytes) : nlohmann::json(nullptr);
      pj["used_mib"] = p.used_bytes ? nlohmann::json(mib(*p.used_bytes)) : nlohmann::json(nullptr);
      procs.push_back(pj);
    }
    gpus.push_back({{"index", g.index},
                    {"name", g.name},
                    {"uuid", g.uuid},
                    {"memory", memory_json(g.memory)},
                    {"processes_status", g.processes_status == nvml::kSuccess ? "ok" : nvml.error_string(g.processes_status)},
                    {"processes", procs}});
  }
  return {{"driver_version", inv.driver_version},
          {"nvml_library", inv.nvml_library},
          {"gpu_count", inv.gpus.size()},
          {"gpus", gpus},
          {"notes", inv.notes}};
}

void print_inventory(const nvml::Inventory& inv, nvml::Library& nvml) {
  fmt::print("NVIDIA driver {}, {} GPU{} (NVML from {})\n", inv.driver_version, inv.gpus.size(),
             inv.gpus.size() == 1 ? "" : "s", inv.nvml_library);
  for (const auto& g : inv.gpus) {
    const auto& m = g.memory;
    fmt::print("\nGPU {}  {}  {}\n", g.index, g.name, g.uuid);
    std::string reserved_mib = m.reserved_known ? std::to_string(mib(m.reserved_bytes)) : "n/a";
    std::string reserved_gib = m.reserved_known ? gib(m.reserved_bytes) : "n/a";
    fmt::print("  {:<22}{:>12}{:>12}{:>12}{:>12}\n", "memory", "total", "used", "free", "reserved");
    fmt::print("  {:<22}{:>12}{:>12}{:>12}{:>12}\n", "MiB (as nvidia-smi)", mib(m.total_bytes), mib(m.used_bytes),
               mib(m.free_bytes), reserved_mib);
    fmt::print("  {:<22}{:>12}{:>12}{:>12}{:>12}\n", "GiB (2^30 bytes)", gib(m.total_bytes), gib(m.used_bytes),
               gib(m.free_bytes), reserved_gib);
    if (g.processes_status != nvml::kSuccess) {
      fmt::print("  processes: unavailable ({})\n", nvml.error_string(g.processes_status));
    } else if (g.processes.empty()) {
      fmt::print("  processes: none\n");
    } else {
      fmt::print("  processes ({}):\n", g.processes.size());
      for (size_t i = 0; i < g.processes.size(); ++i) {
        const auto& p = g.processes[i];
        std::string name = g.process_names[i].empty() ? "(not visible here)" : g.process_names[i];
        std::string used = p.used_bytes ? fmt::format("{:>9} MiB  {:>7} GiB", mib(*p.used_bytes), gib(*p.used_bytes))
                                        : std::string("memory n/a");
        fmt::print("    pid {:<9} {:<20} {}\n", p.pid, name, used);
      }
    }
  }
  for (const auto& n : inv.notes) fmt::print("note: {}\n", n);
}

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
    if (opts->json) fmt::print("{}\n", inventory_json(inv, *nvml).dump(2));
    else print_inventory(inv, *nvml);
    exit_code = 0;
  });
});

}  // namespace
}  // namespace llmem::cli
