// llama.cpp's run options as its command line names them, and the rules llama.cpp applies to them before a run
// (the same commit as llamacpp.hpp). Faces (the CLI, the web page) and the estimate seam read options through
// these instead of re-stating llama.cpp's tables.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmem/dtype.hpp"
#include "llmem/llamacpp.hpp"

namespace llmem::llamacpp {

// The KV cache types --cache-type-k / --cache-type-v accept (common/arg.cpp, kv_cache_types), case-insensitive;
// nullopt for any other name.
std::optional<DType> cache_type_from_name(std::string_view name);
// Those names in llama.cpp's order, for messages: "f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1".
std::string cache_type_names();

// --flash-attn (common/arg.cpp): on/1/true, off/0/false, auto; nullopt for anything else.
std::optional<FlashAttn> flash_attn_from_name(std::string_view name);
const char* flash_attn_name(FlashAttn f);  // "on", "off", "auto"

// The physical batch llama_context runs: min(n_batch, n_ubatch) (llama-context.cpp), so a --ubatch larger than
// --batch costs no more than --batch.
uint64_t effective_n_ubatch(uint64_t n_batch_tokens, uint64_t n_ubatch_tokens);

// The quantisation schemes `llmem fit` tries for a model without a GGUF, most bits per weight first: the common
// ones people download, from F16 to Q2_K.
const std::vector<std::string>& fit_schemes();

}  // namespace llmem::llamacpp
