// Architectures: from a config.json to the exact list of parameter tensors a PyTorch model of that family has.
//
// Each family is a table of tensor rows (src/arch/families.cpp), in the spirit of llama.cpp's llama-arch.cpp:
// a row names a tensor with placeholders for its repeats ({layers}, {experts}, ...), gives its shape as
// expressions of named dimensions, and may depend on a flag (a bias, a norm, tied embeddings). A family's reader
// turns the config into those dimensions and flags, applying the config class defaults of transformers exactly
// as transformers would. Adding a family is one reader and one table.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llmem/dtype.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/tensor.hpp"

namespace llmem {

// Per-layer attention geometry, for KV-cache sizing.
struct LayerAttention {
  uint64_t kv_heads = 0;
  uint64_t k_head_dim = 0;      // per head, as cached
  uint64_t v_head_dim = 0;
  uint64_t sliding_window = 0;  // tokens; 0 = attends to the whole context
  bool caches_kv = true;        // false for layers without self-attention KV (e.g. cross-attention only)
};

// Normalised facts about a model, whatever its family, for estimators and reports.
struct ModelFacts {
  std::string family;              // table entry, e.g. "llama"
  std::string model_type;          // config's model_type, e.g. "mistral"
  std::string architecture;        // config's architectures[0], e.g. "MistralForCausalLM"
  uint64_t hidden = 0;
  uint64_t n_layers = 0;
  uint64_t n_heads = 0;
  uint64_t n_kv_heads = 0;
  uint64_t head_dim = 0;
  uint64_t intermediate = 0;       // dense MLP width
  uint64_t vocab = 0;
  uint64_t max_positions = 0;      // 0 when the config does not say
  uint64_t n_experts = 0;          // routed experts per MoE layer (0 = dense model)
  uint64_t n_experts_active = 0;   // experts per token
  uint64_t n_shared_experts = 0;
  uint64_t moe_intermediate = 0;
  uint64_t n_moe_layers = 0;
  bool tied_embeddings = false;
  bool gated_mlp = true;           // SwiGLU/GeGLU (3 matrices) vs plain 2-matrix MLP
  std::optional<DType> config_dtype;  // torch_dtype / dtype in the config
  std::vector<LayerAttention> attention;  // one per decoder layer
  std::string attention_kind;      // "mha", "gqa", "mqa", "mla"
  std::string position_kind;       // "rope", "learned", "alibi", "sinusoidal"
  std::vector<std::string> notes;  // facts a reader found worth telling (e.g. extra layers the weights ship)
  // What the forward pass does beyond shapes (read from the config's common keys).
  std::string activation;          // hidden_act / activation_function, e.g. "silu", "gelu_new"
  bool resid_dropout = false;      // dropout on residual branches in training (resid_pdrop, dropout, hidden_dropout)
  bool attn_dropout = false;       // dropout on attention probabilities in training
  bool embd_dropout = false;       // dropout after the embeddings in training
  bool final_logit_softcap = false;  // logits = cap * tanh(logits / cap) (Gemma 2)
  double partial_rotary = 1.0;     // fraction of head_dim that is rotated (phi, gpt-neox)
};

struct TiedAlias {
  std::string alias;   // e.g. "lm_head.weight"
  std::string target;  // e.g. "model.embed_tokens.weight"
  uint64_t numel = 0;
};

struct ArchModel {
  ModelFacts facts;
  std::vector<TensorInfo> tensors;  // unique parameters (dtype = config dtype or F32; file "")
  std::vector<TiedAlias> tied;      // parameters that alias another (counted once by PyTorch)
  std::vector<std::string> notes;   // facts worth telling, e.g. "weights also ship an MTP layer"
};

// Throws Error(kUnsupported) naming the model_type/architecture when no family knows it, with a hint to point
// llmem at the weights instead; Error(kInvalidInput) for missing or malformed fields.
ArchModel model_from_config(const HfConfig& config);

struct FamilyInfo {
  std::string name;
  std::vector<std::string> model_types;
  std::vector<std::string> architectures;
};
const std::vector<FamilyInfo>& known_families();

}  // namespace llmem
