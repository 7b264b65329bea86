// llama.cpp's run options (see llamacpp_options.hpp), at the pinned commit.
#include "llmem/llamacpp_options.hpp"

#include <algorithm>
#include <cctype>
#include <utility>

namespace llmem::llamacpp {
namespace {

// common/arg.cpp: kv_cache_types, in its order.
const std::vector<std::pair<std::string, DType>>& cache_types() {
  static const std::vector<std::pair<std::string, DType>> kTypes = {
      {"f32", DType::F32},   {"f16", DType::F16},   {"bf16", DType::BF16},     {"q8_0", DType::Q8_0}, {"q4_0", DType::Q4_0},
      {"q4_1", DType::Q4_1}, {"iq4_nl", DType::IQ4_NL}, {"q5_0", DType::Q5_0}, {"q5_1", DType::Q5_1}};
  return kTypes;
}

}  // namespace

std::optional<DType> cache_type_from_name(std::string_view name) {
  std::string lower(name);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& [known, type] : cache_types())
    if (known == lower) return type;
  return std::nullopt;
}

std::string cache_type_names() {
  std::string out;
  for (const auto& [known, type] : cache_types()) out += (out.empty() ? "" : ", ") + known;
  return out;
}

std::optional<FlashAttn> flash_attn_from_name(std::string_view name) {
  if (name == "on" || name == "1" || name == "true") return FlashAttn::kOn;
  if (name == "off" || name == "0" || name == "false") return FlashAttn::kOff;
  if (name == "auto") return FlashAttn::kAuto;
  return std::nullopt;
}

const char* flash_attn_name(FlashAttn f) {
  return f == FlashAttn::kOn ? "on" : f == FlashAttn::kOff ? "off" : "auto";
}

uint64_t effective_n_ubatch(uint64_t n_batch_tokens, uint64_t n_ubatch_tokens) {
  return std::min(n_batch_tokens, n_ubatch_tokens);
}

const std::vector<std::string>& fit_schemes() {
  static const std::vector<std::string> kSchemes = {"F16",    "Q8_0",   "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M",
                                                    "Q4_K_S", "Q4_0", "IQ4_XS", "Q3_K_M", "Q2_K"};
  return kSchemes;
}

}  // namespace llmem::llamacpp
