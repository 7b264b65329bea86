#include <algorithm>
#include <cctype>

#include <fmt/core.h>
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

// The part of a CUDA context that scales with the card: the driver reserves the per-thread stack (1 KiB by default,
// cudaLimitStackSize) for every thread the GPU can hold at once. Measured on an H100 (bench/gpu/probe/ctx_stack.cu,
// bench/data/probe15_h100/ctx_stack.txt): each KiB of stack limit is 264 MiB = 132 SMs x 2,048 threads x 1 KiB.
struct StackModel {
  uint64_t reference_threads = 0;  // the reference card's SMs x threads per SM
  uint64_t reference_sms = 0;
  uint64_t bytes_per_thread = 0;
  // What the first kernels add (first_kernels_* in data/runtime_overheads.json) and the threads of the card it was
  // measured on.
  uint64_t first_kernels = 0, first_kernels_threads = 0;
};

uint64_t resident_threads(const nlohmann::json& card, const nlohmann::json& threads_per_sm) {
  if (!card.contains("sm_count") || !card.contains("compute_capability")) return 0;
  const auto it = threads_per_sm.find(card.at("compute_capability").get<std::string>());
  return it == threads_per_sm.end() ? 0 : card.at("sm_count").get<uint64_t>() * it->get<uint64_t>();
}

int sm_version(const nlohmann::json& card) {
  if (!card.contains("compute_capability")) return 0;
  const std::string cc = card.at("compute_capability");  // "8.6", "10.0"
  const size_t dot = cc.find('.');
  return dot == std::string::npos ? 0 : std::stoi(cc.substr(0, dot)) * 10 + std::stoi(cc.substr(dot + 1));
}

const StackModel& stack_model() {
  static const StackModel m = [] {
    using nlohmann::json;
    const json gpus = json::parse(embedded_file("gpus.json"));
    const json overheads = json::parse(embedded_file("runtime_overheads.json"));
    const json& ref = overheads.at("reference");
    StackModel s;
    s.bytes_per_thread = ref.value("stack_bytes_per_thread", uint64_t{0});
    s.first_kernels = ref.value("first_kernels_bytes", uint64_t{0});
    for (const auto& g : gpus.at("gpus")) {
      if (g.at("name") == ref.at("gpu")) {
        s.reference_threads = resident_threads(g, gpus.at("max_threads_per_sm"));
        s.reference_sms = g.value("sm_count", uint64_t{0});
      }
      if (g.at("name") == ref.value("first_kernels_gpu", std::string()))
        s.first_kernels_threads = resident_threads(g, gpus.at("max_threads_per_sm"));
    }
    return s;
  }();
  return m;
}

// first_kernels_bytes for a card of `threads` resident threads (0: not known, the measured figure as it is)
uint64_t scaled_first_kernels(uint64_t threads) {
  const StackModel& s = stack_model();
  if (!threads || !s.first_kernels_threads) return s.first_kernels;
  return static_cast<uint64_t>(static_cast<double>(s.first_kernels) * static_cast<double>(threads) /
                               static_cast<double>(s.first_kernels_threads));
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
    p.sm_version = sm_version(g);
    p.sm_count = g.value("sm_count", uint64_t{0});
    p.resident_threads = resident_threads(g, gpus.at("max_threads_per_sm"));
    p.cuda_context_bytes = ref.at("cuda_context_bytes");
    p.training_extra_bytes = ref.value("training_extra_bytes", uint64_t{0});
    p.context_source = std::string(ref.at("source"));
    if (p.name != ref.at("gpu")) {
      const StackModel& sm = stack_model();
      // the stack reservation, and what the first kernels add (scaled alike), as this card's
      const int64_t delta = stack_reservation_delta(p) +
                            (p.resident_threads && sm.reference_threads
                                 ? static_cast<int64_t>(scaled_first_kernels(p.resident_threads)) -
                                       static_cast<int64_t>(scaled_first_kernels(sm.reference_threads))
                                 : 0);
      const auto stack = [&](uint64_t sms, uint64_t threads) {
        return fmt::format("{} MiB for {} SMs x {} threads x {} B", threads * sm.bytes_per_thread >> 20, sms,
                           threads / std::max<uint64_t>(sms, 1), sm.bytes_per_thread);
      };
      if (!p.resident_threads || !sm.reference_threads)
        p.context_source += " (measured on " + std::string(ref.at("gpu")) + "; assumed here)";
      else if (delta == 0)
        p.context_source += " (measured on " + std::string(ref.at("gpu")) + ", which holds as many threads: " +
                            stack(p.sm_count, p.resident_threads) + " of per-thread stack)";
      else
        p.context_source += " (measured on " + std::string(ref.at("gpu")) + "; its per-thread stack, " +
                            stack(sm.reference_sms, sm.reference_threads) + ", replaced by this card's, " +
                            stack(p.sm_count, p.resident_threads) + ", and what the first kernels add scaled by the "
                            "threads: data/runtime_overheads.json)";
      p.cuda_context_bytes = static_cast<uint64_t>(static_cast<int64_t>(p.cuda_context_bytes) + delta);
    }
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

int compute_capability(const GpuProfile& gpu) { return gpu.sm_version; }

uint64_t first_kernels_bytes(const GpuProfile& gpu) {
  return std::min(scaled_first_kernels(gpu.resident_threads), gpu.cuda_context_bytes);
}

std::string first_kernels_source() {
  using nlohmann::json;
  static const std::string s =
      json::parse(embedded_file("runtime_overheads.json")).at("reference").value("first_kernels_source", std::string());
  return s;
}

int64_t stack_reservation_delta(const GpuProfile& gpu) {
  const StackModel& s = stack_model();
  if (!gpu.resident_threads || !s.reference_threads) return 0;
  using nlohmann::json;
  static const json per_gpu = json::parse(embedded_file("runtime_overheads.json")).at("per_gpu");
  if (per_gpu.contains(gpu.name)) return 0;
  return (static_cast<int64_t>(gpu.resident_threads) - static_cast<int64_t>(s.reference_threads)) *
         static_cast<int64_t>(s.bytes_per_thread);
}

const GpuProfile& default_gpu() {
  using nlohmann::json;
  static const std::string ref = json::parse(embedded_file("runtime_overheads.json")).at("reference").at("gpu");
  return find_gpu(ref);
}

}  // namespace llmem
