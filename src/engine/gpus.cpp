#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "llmem/catalog.hpp"
#include "llmem/error.hpp"
#include "llmem/engine.hpp"

namespace llmem {
namespace {

std::string squash(std::string_view s) {
  std::string out;
  for (char c : s)
    if (std::isalnum(static_cast<unsigned char>(c))) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<GpuProfile> load() {
  using nlohmann::json;
  const json gpus = json::parse(embedded_file("gpus.json"));
  const json overheads = json::parse(embedded_file("runtime_overheads.json"));
  // The per-process overhead outside PyTorch's allocator depends on the driver, CUDA and PyTorch far more than on
  // the board; where a GPU has no measurement of its own, the reference measurement applies, and says so.
  const json& ref = overheads.at("reference");
  std::vector<GpuProfile> out;
  for (const auto& g : gpus.at("gpus")) {
    GpuProfile p;
    p.name = g.at("name");
    p.display_name = g.at("display");
    p.memory_bytes = g.at("memory_mib").get<uint64_t>() << 20;
    p.memory_source = g.at("source");
    p.cuda_context_bytes = ref.at("cuda_context_bytes");
    p.training_extra_bytes = ref.value("training_extra_bytes", uint64_t{0});
    p.context_source = std::string(ref.at("source")) + (p.name == ref.at("gpu") ? "" : " (measured on " + std::string(ref.at("gpu")) + "; assumed here)");
    if (auto it = overheads.at("per_gpu").find(p.name); it != overheads.at("per_gpu").end()) {
      p.cuda_context_bytes = it->at("cuda_context_bytes");
      p.context_source = it->at("source");
    }
    // A card whose per-process overheads nobody has measured (an AMD GPU under ROCm) says so in plain words.
    if (auto it = g.find("overheads"); it != g.end()) p.context_source += "; not known for this card: " + it->get<std::string>();
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace

const std::vector<GpuProfile>& gpu_catalog() {
  static const std::vector<GpuProfile> all = load();
  return all;
}

const GpuProfile& find_gpu(const std::string& name) {
  const std::string want = squash(name);
  for (const auto& g : gpu_catalog())
    if (squash(g.name) == want || squash(g.display_name) == want || squash("NVIDIA " + g.name) == want) return g;
  std::vector<std::string> names, displays;
  for (const auto& g : gpu_catalog()) {
    names.push_back(g.name);
    displays.push_back(g.display_name);
  }
  const std::vector<std::string> close = closest_names(name, names, 4, displays);
  std::string hint;
  for (size_t i = 0; i < close.size(); ++i) hint += (i == 0 ? "" : i + 1 == close.size() ? " or " : ", ") + close[i];
  throw Error(ErrorKind::kUsage, "", "unknown GPU '" + name + "'" + (hint.empty() ? "" : " (did you mean " + hint + "?)") +
                                         "; 'llmem estimate --list-gpus' lists them");
}

int compute_capability(const GpuProfile& gpu) {
  // NVIDIA's CUDA GPU list (developer.nvidia.com/cuda-gpus), by the catalog's names.
  struct Cap { const char* prefix; int sm; };
  static const Cap caps[] = {{"B200", 100}, {"H200", 90}, {"H100", 90}, {"H20", 90}, {"H800", 90},
                             {"RTX-PRO-6000", 120}, {"RTX-5090", 120}, {"RTX-5080", 120}, {"L40S", 89}, {"L4", 89},
                             {"RTX-6000-Ada", 89}, {"RTX-4090", 89}, {"RTX-4080", 89}, {"RTX-4070", 89},
                             {"RTX-4060", 89}, {"A100", 80}, {"A40", 86}, {"A10", 86}, {"RTX-A6000", 86},
                             {"RTX-3090", 86}, {"RTX-3080", 86}, {"RTX-3070", 86}, {"RTX-3060", 86}, {"T4", 75},
                             {"RTX-2080", 75}, {"V100", 70}};
  for (const auto& c : caps)
    if (gpu.name.rfind(c.prefix, 0) == 0) return c.sm;
  return 0;
}

const GpuProfile& default_gpu() {
  using nlohmann::json;
  static const std::string ref = json::parse(embedded_file("runtime_overheads.json")).at("reference").at("gpu");
  return find_gpu(ref);
}

}  // namespace llmem
