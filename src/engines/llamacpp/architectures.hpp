// The architectures llmem sizes for llama.cpp, as a table keyed by the GGUF's general.architecture, like
// llama.cpp's own (src/llama-arch.cpp LLM_ARCH_NAMES, the builder switch of llama-model.cpp build_graph): each
// entry names its graph builder (builders.cpp, one per src/models/<arch>.cpp) and what else differs between
// architectures as data. Nothing outside this table compares architecture names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "llmem/arch.hpp"
#include "llmem/gguf.hpp"

namespace llmem::llamacpp {

class LlmGraph;
struct Hparams;
struct Model;
using GraphBuilder = void (*)(LlmGraph&);
// What an architecture's load_arch_hparams reads beyond the common keys, from a GGUF's metadata; and the same
// derived for a model predicted from a config (the converter's keys, from the predicted tensors and the facts).
using HparamsReader = void (*)(const GgufFile&, Hparams&);
using HparamsDeriver = void (*)(const ModelFacts&, const Model&, Hparams&);

// How llama-model.cpp load_hparams sets up sliding-window attention for an architecture.
struct SlidingWindowTraits {
  // Layers with a window get their own, smaller cache (llama-kv-cache-iswa.cpp). Architectures without this
  // attend over the full cache even when the config names a window (Mistral's is ignored; Phi-3's is disabled
  // in src/models/phi3.cpp).
  bool own_cache = false;
  uint64_t default_window_tokens = 0;  // when the GGUF has no <arch>.attention.sliding_window
  uint64_t default_pattern = 0;        // when it has no sliding_window_pattern: every pattern-th layer is global
};

// llama-model.cpp load_hparams names a model LLM_TYPE_70B from its layer count, and llama-quant.cpp gives a 70B
// model's attn_v more bits.
struct Type70BRule {
  uint64_t n_layer = 0;       // 0: the architecture has no 70B type
  bool needs_gqa = false;     // llama: 80 layers without grouped-query attention is LLaMA-65B
};

struct Architecture {
  std::string_view name;      // general.architecture
  GraphBuilder build_graph;   // records the worst-case graph of the GPU split
  SlidingWindowTraits sliding_window;
  // Absolute position embeddings (GPT-2): the host gathers position_embd rows next to the token embeddings and
  // the graph has no rope positions input.
  bool learned_positions = false;
  // ALiBi (BLOOM): attention biases from the mask's soft_max; the graph has no positions input at all.
  bool alibi = false;
  // The FFN tensors are feed_forward_length / ffn_divisor wide (Qwen 1 writes twice the width it uses:
  // llama-model.cpp creates ffn_gate/up/down with n_ff/2).
  uint64_t ffn_divisor = 1;
  // The builder always routes through experts: llama.cpp refuses such a file without expert_count/used_count.
  bool needs_experts = false;
  Type70BRule type_70b;
  // llama-quant.cpp's rules for LLM_ARCH_FALCON: Q8_0 output, its own ffn_down and attn_output mixtures.
  bool falcon_quant_rules = false;
  HparamsReader read_hparams = nullptr;
  HparamsDeriver derive_hparams = nullptr;
};

// nullptr when llmem has no builder for the architecture.
const Architecture* find_architecture(std::string_view name);

// The sized architectures' names, in the table's order.
std::vector<std::string> architecture_names();

}  // namespace llmem::llamacpp
