// Architectures: from a config.json to the exact list of parameter tensors a PyTorch model of that family has.
//
// Each family is a table of tensor rows (src/arch/families.cpp), in the spirit of llama.cpp's llama-arch.cpp:
// a row names a tensor with placeholders for its repeats ({layers}, {experts}, ...), gives its shape as
// expressions of named dimensions, and may depend on a flag (a bias, a norm, tied embeddings). A family's reader
// turns the config into those dimensions and flags, applying the config class defaults of transformers exactly
// as transformers would. Every row carries its tensor's role (TensorRole), and every family its typed traits
// (ArchTraits): what an engine needs to know about the forward pass, so that no engine compares family names or
// searches tensor names. Adding a family is one reader, one table with its traits, and a test.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llmem/dtype.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/quantization.hpp"
#include "llmem/tensor.hpp"

namespace llmem {

// Per-layer attention geometry, for KV-cache sizing.
struct LayerAttention {
  uint64_t kv_heads = 0;
  uint64_t k_head_dim = 0;      // per head, as cached
  uint64_t v_head_dim = 0;
  uint64_t sliding_window = 0;  // tokens; 0 = attends to the whole context
  bool caches_kv = true;        // false for layers without self-attention KV (e.g. cross-attention only)
  // A decoder layer of cross-attention alone (MllamaCrossAttentionDecoderLayer): a text-only forward skips it
  // whole, attention and MLP (MllamaTextModel.forward: no cross_attention_states and nothing cached for it)
  bool cross_attention_only = false;
  bool operator==(const LayerAttention&) const = default;
};

// How a decoder layer normalises its input (the norm module of the family's modeling file in transformers).
enum class NormKind : uint8_t {
  kLayerNorm,  // F.layer_norm: one fused kernel, weight and bias, output in the input dtype
  // LlamaRMSNorm: h = x.to(float32); h = h * rsqrt(h.pow(2).mean(-1) + eps); weight * h.to(input dtype)
  kRmsNorm,
  // GemmaRMSNorm (modeling_gemma.py, gemma2, gemma3): the scale multiplies in fp32 before the cast,
  // out = (normed(x.float()) * (1.0 + weight.float())).type_as(x), so autograd keeps fp32 tensors, not a cast
  kRmsNormFp32Scale,
};

// How a decoder layer combines attention, MLP and the residual stream.
enum class ResidualKind : uint8_t {
  kSequential,          // h = x + attn(norm1(x)); out = h + mlp(norm2(h))
  kParallelSharedNorm,  // out = x + attn(ln(x)) + mlp(ln(x)): one norm output feeds both (PhiDecoderLayer, Falcon)
  // out = x + attn(ln1(x)) + mlp(ln2(x)), ln2 taken after the attention returns (GPTNeoXLayer with
  // use_parallel_residual)
  kParallelTwoNorms,
};

// How queries, keys and values are projected.
enum class QkvLayout : uint8_t {
  kSeparate,  // three projections (q_proj, k_proj, v_proj): three tensors
  kFused,     // one projection (c_attn, query_key_value, qkv_proj); q, k and v are views of its one output tensor
  kLatent,    // multi-head latent attention: compressed query and joint key/value projections (DeepSeek-V2/V3)
};

// How transformers 5 holds a MoE layer's routed experts, against the checkpoint's one 2-D weight per expert and
// projection (the tensor table's names). PyTorch's own parameter lists (bench/data/transformers_params.jsonl,
// transformers 5.17) show the fused form: experts.gate_up_proj [E, 2I, H] and experts.down_proj [E, H, I], made
// at load by the weight converter, with the router registered before the experts or after them.
enum class ExpertsLayout : uint8_t {
  kAsStored,           // the table's tensors are the module's parameters (dense models, gpt-oss, remote code)
  kFusedRouterFirst,   // MixtralSparseMoeBlock: mlp.gate, then mlp.experts ("block_sparse_moe" renamed to "mlp")
  kFusedRouterAfter,   // Qwen3MoeSparseMoeBlock, DeepseekV2/V3MoE: mlp.experts, then mlp.gate
};

// The attention implementation transformers picks when the caller names none.
enum class AttentionImpl : uint8_t { kSdpa, kEager };

// What an engine needs to know about a family's forward pass beyond the shapes, as typed data set in the family's
// table (src/arch/families.cpp) and refined by its config reader. Each field names a mechanism, not a family;
// the comment says where it is read from.
struct ArchTraits {
  NormKind norm = NormKind::kRmsNorm;
  ResidualKind residual = ResidualKind::kSequential;
  QkvLayout qkv = QkvLayout::kSeparate;
  bool qk_norm = false;         // a per-head norm of q and k before the rotary embedding (Qwen3, Gemma 3)
  bool sandwich_norms = false;  // a norm after the attention and after the MLP as well (Gemma 2/3: four per layer)
  bool conv1d_weights = false;  // linear weights stored [in, out] (GPT-2's Conv1D), not nn.Linear's [out, in]
  bool final_logit_softcap = false;  // logits = cap * tanh(logits / cap) (config final_logit_softcapping)
  bool attn_logit_softcap = false;   // scores = cap * tanh(scores / cap) (config attn_logit_softcapping)
  // --- attention as transformers runs it ---
  AttentionImpl default_attention = AttentionImpl::kSdpa;  // BloomForCausalLM has no SDPA path: eager
  // Scores, their softmax and its cast are materialised whatever implementation is asked for: BloomAttention has
  // only its own baddbmm + softmax path; for Falcon the measurements show the same footprint under "sdpa"
  // (bench/data/transformers_memory.jsonl: scores, fp32 softmax and its cast per layer)
  bool materialises_scores = false;
  // On 16-bit inputs SDPA runs PyTorch's math backend, which upcasts q, k and v to fp32 (allocator trace of
  // falcon-7b, bench/data/traces)
  bool sdpa_math_backend = false;
  // The scaled scores come from one op (alibi.baddbmm(q, k^T, beta, alpha), BloomAttention) and stay in the
  // attention's locals, with the masked scores, until it returns
  bool scores_from_baddbmm = false;
  // The decoder block returns the attention weights in its outputs tuple, which the model's loop variable holds
  // until the next block returns (BloomBlock), so they outlive their layer by one
  bool block_returns_attn_weights = false;
  bool softmax_in_model_dtype = false;  // eager softmax without the fp32 upcast (GPT-2's eager_attention_forward)
  // gpt-oss's eager_attention_forward: the masked scores get a sink column (torch.cat), their row max is subtracted
  // (a new tensor) and the softmax runs in the model dtype; the masked scores stay until the dropout line
  // (allocator trace of gpt-oss-20b, bench/data/traces)
  bool attention_sinks = false;
  // The rotated query stays alive until the attention returns (allocator trace of pythia-1.4b, GPT-NeoX)
  bool rotated_query_kept = false;
  // Training: autograd keeps the fused projection's whole output (SDPA keeps v, a view of it) and the rotated q
  // and k. Read off the fused-QKV training traces (GPT-2 medium, pythia); false leaves the saved set of separate
  // q, k and v even for a fused projection (see Phi-3 in families.cpp)
  bool fused_qkv_saved_whole = false;
  ExpertsLayout experts = ExpertsLayout::kAsStored;
  // The routing weights reach the experts in fp32 (DeepSeek-V2/V3's routers score in fp32 and scale without a cast
  // back), so the weighted expert outputs and their sum are fp32 (allocator trace of DeepSeek-V2-Lite)
  bool moe_routing_fp32 = false;
  // The experts' gate is gpt-oss's clamped, sigmoid-gated GLU (GptOssExperts._apply_gate: clamp gate and up,
  // gate * sigmoid(gate * alpha), (up + 1) * glu), not act(gate) * up
  bool experts_clamped_glu = false;
  // The output projection's name once transformers 5 has built the model, where its conversion mapping renames the
  // checkpoint's (GPT-NeoX: embed_out.weight -> lm_head.weight, PyTorch's parameter list); null = as stored
  const char* built_lm_head = nullptr;
  // --- buffers transformers 5 registers (PyTorch's named_buffers, bench/data/transformers_params_catalog.jsonl) ---
  bool scaled_embedding = false;       // GemmaScaledWordEmbedding: embed_tokens.embed_scale, a scalar in the model dtype
  bool rotary_per_layer_type = false;  // Gemma 3: rotary_emb.{full,sliding}_attention_{,original_}inv_freq
  bool operator==(const ArchTraits&) const = default;  // built_lm_head: the same table's name (its pointer)
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
  bool config_use_cache = true;    // false where the config says "use_cache": false (Qwen3-4B's does)
  std::vector<LayerAttention> attention;  // one per decoder layer
  // Some decoder layers attend to the image alone (Mllama's), which a text-only forward skips
  bool has_cross_attention_only_layers() const {
    for (const auto& a : attention)
      if (a.cross_attention_only) return true;
    return false;
  }
  std::string attention_kind;      // "mha", "gqa", "mqa", "mla"
  // MLA: the latent transformers 5.17 caches per token and layer (DeepseekV2Attention: the compressed kv, width
  // kv_lora_rank, as keys and the rotary key part, qk_rope_head_dim, as values; measured kv_cache_bytes of
  // DeepSeek-V2-Lite and DeepSeek-V3 generate, bench/data/transformers_issue15*.jsonl); 0 elsewhere
  uint64_t mla_cache_k_dim = 0, mla_cache_v_dim = 0;
  std::string position_kind;       // "rope", "learned", "alibi", "sinusoidal"
  std::vector<std::string> notes;  // facts a reader found worth telling (e.g. extra layers the weights ship)
  // What the forward pass does beyond shapes (read from the config's common keys).
  std::string activation;          // hidden_act / activation_function, e.g. "silu", "gelu_new"
  bool resid_dropout = false;      // dropout on residual branches in training (resid_pdrop, dropout, hidden_dropout)
  bool attn_dropout = false;       // dropout on attention probabilities in training
  bool embd_dropout = false;       // dropout after the embeddings in training
  double partial_rotary = 1.0;     // fraction of head_dim that is rotated (phi, gpt-neox)
  ArchTraits traits;               // the forward pass's mechanisms, typed (see ArchTraits)
  // How the router picks experts, where the config says more than top-k of a softmax (DeepSeek: scoring_func,
  // n_group / topk_group, norm_topk_prob, routed_scaling_factor); engines that replay the routing read it.
  struct MoeRouting {
    bool sigmoid = false;          // scoring_func "sigmoid" instead of softmax
    uint64_t groups = 1;           // n_group: experts in groups, the best topk_group groups kept
    uint64_t groups_used = 1;
    bool normalise = false;        // norm_topk_prob: the chosen weights divided by their sum
    double scale = 1.0;            // routed_scaling_factor
    bool operator==(const MoeRouting&) const = default;
  } routing;
  bool operator==(const ModelFacts&) const = default;
};

struct TiedAlias {
  std::string alias;   // e.g. "lm_head.weight"
  std::string target;  // e.g. "model.embed_tokens.weight"
  uint64_t numel = 0;
  bool operator==(const TiedAlias&) const = default;
};

struct ArchModel {
  ModelFacts facts;
  std::vector<TensorInfo> tensors;  // unique parameters (dtype = config dtype or F32; file "")
  std::vector<TiedAlias> tied;      // parameters that alias another (counted once by PyTorch)
  std::vector<std::string> notes;   // facts worth telling, e.g. "weights also ship an MTP layer"
  // config.json's quantization_config: `tensors` stay the unquantised parameters (in the config's dtype, or the
  // quantiser's default dtype when it names none); stored_tensors(tensors, *quant) is the checkpoint as stored
  std::optional<QuantScheme> quant;
};

// Throws Error(kUnsupported) naming the model_type/architecture when no family knows it, with a hint to point
// llmem at the weights instead; Error(kInvalidInput) for missing or malformed fields.
ArchModel model_from_config(const HfConfig& config);

// Whether two architectures are one model to every estimate: equal in every field, their quantisation schemes too
// but for the config file each was read from (QuantScheme::origin, which only errors name). The catalog's
// fine-tunes of one base model are (a ranking searches one of them).
bool same_architecture(const ArchModel& a, const ArchModel& b);

struct FamilyInfo {
  std::string name;
  std::vector<std::string> model_types;
  std::vector<std::string> architectures;
};
const std::vector<FamilyInfo>& known_families();

}  // namespace llmem
