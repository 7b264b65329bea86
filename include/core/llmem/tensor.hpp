// A tensor as a weight file's header describes it: never its data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llmem/dtype.hpp"

namespace llmem {

// What a parameter is in its model, for engines that replay how the model uses it. A tensor read from a weight
// file's header has no role (kUnknown); one derived from a config takes its row's role in the family's table
// (src/arch/families.cpp).
enum class TensorRole : uint8_t {
  kUnknown,
  kTokenEmbedding,       // token embeddings (wte, embed_tokens, word_embeddings, embed_in)
  kPositionEmbedding,    // learned absolute positions (GPT-2's wpe, OPT's embed_positions)
  kEmbeddingProjection,  // a linear map between embedding and hidden width (OPT's project_in / project_out)
  kNorm,                 // a LayerNorm / RMSNorm weight or bias: of a decoder layer, the embeddings or the final norm
  kQkNorm,               // a per-head norm of queries or keys (Qwen3's q_norm / k_norm, Phi's q_layernorm)
  kAttnQuery,            // the query projection (MLA: its compressing q_a_proj and expanding q_b_proj)
  kAttnKey,
  kAttnValue,
  kAttnQkv,              // one fused query/key/value projection (c_attn, query_key_value, qkv_proj)
  kAttnKvLatent,         // MLA's joint key/value path (kv_a_proj_with_mqa, kv_b_proj)
  kAttnOutput,           // the attention's output projection (o_proj, dense, c_proj, out_proj)
  kAttnSinks,            // per-head learned sink logits (gpt-oss)
  kMlpGate,              // gated MLP: the projection that goes through the activation (gate_proj; Qwen-1's w2)
  kMlpUp,                // gated MLP: the projection multiplied with the activated gate (up_proj; Qwen-1's w1)
  kMlpGateUp,            // gated MLP: gate and up fused in one projection (Phi-3's gate_up_proj)
  kMlpDown,              // gated MLP: the projection back to the hidden width
  kMlpIn,                // plain MLP: the widening projection (fc1, c_fc, dense_h_to_4h)
  kMlpOut,               // plain MLP: the narrowing projection (fc2, c_proj, dense_4h_to_h)
  kRouter,               // a mixture of experts' router (its gate network and noise projection included)
  kExpert,               // a routed expert's weight (or all experts' weights fused in one tensor)
  kSharedExpert,         // an expert every token goes through (DeepSeek's shared_experts)
  kLmHead,               // the output projection to the vocabulary
  kCrossAttention,       // a gated cross-attention layer's tensor (IDEFICS: projections, norms, MLP, gates)
  kVisionTower,          // a vision encoder's or perceiver resampler's tensor (IDEFICS)
};

// Roles whose tensors a linear map applies (nn.Linear, GPT-2's Conv1D, an expert's or router's matmul): their
// weights and biases are what autocast casts and what a LoRA adapter can wrap.
constexpr bool is_linear_role(TensorRole role) {
  switch (role) {
    case TensorRole::kEmbeddingProjection:
    case TensorRole::kAttnQuery:
    case TensorRole::kAttnKey:
    case TensorRole::kAttnValue:
    case TensorRole::kAttnQkv:
    case TensorRole::kAttnKvLatent:
    case TensorRole::kAttnOutput:
    case TensorRole::kMlpGate:
    case TensorRole::kMlpUp:
    case TensorRole::kMlpGateUp:
    case TensorRole::kMlpDown:
    case TensorRole::kMlpIn:
    case TensorRole::kMlpOut:
    case TensorRole::kRouter:
    case TensorRole::kExpert:
    case TensorRole::kSharedExpert:
    case TensorRole::kLmHead:
      return true;
    default:
      return false;
  }
}

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> shape;  // outermost first, as PyTorch prints it (GGUF's ne[] is reversed on reading)
  DType dtype = DType::F32;
  uint64_t offset_bytes = 0;    // from the start of the file's tensor data section
  uint64_t data_bytes = 0;      // bytes of tensor data (dtype_bytes(dtype, numel))
  std::string file;             // the shard or file that holds it ("" for tensors derived from a config)
  int64_t layer = -1;           // decoder layer of a tensor derived from a config (its {layers} row), else -1
  TensorRole role = TensorRole::kUnknown;  // set for a tensor derived from a config
  // For the 2-D weight of a linear layer (a linear role): its module's name as a LoRA target matches it (peft
  // matches target names against the last component of a module's path: "q_proj", "c_attn", "dense"). "" for
  // every other tensor (biases, norms, embeddings, fused 3-D experts) and for tensors read from weight files.
  std::string module_name;

  uint64_t numel() const;       // product of shape; callers have validated it does not overflow
  bool operator==(const TensorInfo&) const = default;
};

// Product of a shape, nullopt on 64-bit overflow. An empty shape is a scalar (1 element).
std::optional<uint64_t> shape_numel(const std::vector<uint64_t>& shape);

std::string shape_to_string(const std::vector<uint64_t>& shape);

}  // namespace llmem
