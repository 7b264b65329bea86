// The table of sized architectures (architectures.hpp). The values are llama-model.cpp load_hparams' at 80fb11ac.
#include "architectures.hpp"

#include <algorithm>

#include "builders.hpp"

namespace llmem::llamacpp {
namespace {

// Every layer attends over the whole cache.
constexpr SlidingWindowTraits kFullAttention{};
// Gemma 2: n_swa defaults to 4096 and every second layer slides (set_swa_pattern(2)).
constexpr SlidingWindowTraits kGemma2Window{.own_cache = true, .default_window_tokens = 4096, .default_pattern = 2};
// Gemma 3: the window comes from the file; five sliding layers to each global one (set_swa_pattern(6)).
constexpr SlidingWindowTraits kGemma3Window{.own_cache = true, .default_window_tokens = 0, .default_pattern = 6};
constexpr Type70BRule kNo70B{};

const std::vector<Architecture>& table() {
  // LLM_ARCH_LLAMA: 80 layers is LLM_TYPE_70B with grouped-query attention (LLM_TYPE_65B without); LLM_ARCH_QWEN2:
  // 80 layers is LLM_TYPE_70B.
  static const std::vector<Architecture> architectures = {
      // name       builder          sliding window   learned pos  alibi  ffn divisor  needs experts  70B type
      {"llama",     build_llama,     kFullAttention,  false,       false, 1,           false,         {80, true}},
      {"qwen2",     build_qwen2,     kFullAttention,  false,       false, 1,           false,         {80, false}},
      {"qwen3",     build_qwen3,     kFullAttention,  false,       false, 1,           false,         kNo70B},
      {"qwen3moe",  build_qwen3moe,  kFullAttention,  false,       false, 1,           true,          kNo70B},
      {"gemma",     build_gemma,     kFullAttention,  false,       false, 1,           false,         kNo70B},
      {"gemma2",    build_gemma2,    kGemma2Window,   false,       false, 1,           false,         kNo70B},
      {"gemma3",    build_gemma3,    kGemma3Window,   false,       false, 1,           false,         kNo70B},
      {"phi3",      build_phi3,      kFullAttention,  false,       false, 1,           false,         kNo70B},
      {"gpt2",      build_gpt2,      kFullAttention,  true,        false, 1,           false,         kNo70B},
      {"mistral3",  build_mistral3,  kFullAttention,  false,       false, 1,           false,         kNo70B},
      {"gptneox",   build_gptneox,   kFullAttention,  false,       false, 1,           false,         kNo70B},
      {"phi2",      build_phi2,      kFullAttention,  false,       false, 1,           false,         kNo70B},
      {"falcon",    build_falcon,    kFullAttention,  false,       false, 1,           false,         kNo70B},
      {"bloom",     build_bloom,     kFullAttention,  false,       true,  1,           false,         kNo70B},
      {"olmo2",     build_olmo2,     kFullAttention,  false,       false, 1,           false,         kNo70B},
      {"qwen",      build_qwen,      kFullAttention,  false,       false, 2,           false,         kNo70B},
  };
  return architectures;
}

}  // namespace

const Architecture* find_architecture(std::string_view name) {
  const auto& all = table();
  auto it = std::find_if(all.begin(), all.end(), [&](const Architecture& a) { return a.name == name; });
  return it == all.end() ? nullptr : &*it;
}

std::vector<std::string> architecture_names() {
  std::vector<std::string> names;
  for (const auto& a : table()) names.emplace_back(a.name);
  return names;
}

}  // namespace llmem::llamacpp
