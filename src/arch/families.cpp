// One entry per architecture family: a config reader and a table of parameter tensors.
//
// Tensor names are those of the checkpoints on the Hugging Face Hub (what a model directory's safetensors hold),
// so a config-derived list can be matched against real weight headers. Shapes follow each family's modeling code
// in transformers (5.17) or, for remote-code models, the model's own modeling file; defaults are those of the
// family's config class. Where transformers 5 renamed or fused tensors at load time (MoE experts fused into one
// 3-D tensor, GPT-NeoX's embed_out -> lm_head), the count is unchanged; the unit tests check every family's total
// against PyTorch's own count (bench/data/transformers_params.jsonl, measured with bench/gpu/count_params.py).
#include <algorithm>
#include <string>

#include "table.hpp"
#include "llmem/checked.hpp"
#include "llmem/error.hpp"

namespace llmem::arch {
namespace {

using L = Layers;
using R = TensorRole;

// A derived dimension: the product (or sum) of a config's numbers, each up to 2^40, can pass 64 bits; such a config
// is refused naming the file, never wrapped to a small, wrong size.
uint64_t times(const HfConfig& c, const char* what, std::initializer_list<uint64_t> factors) {
  uint64_t acc = 1;
  for (uint64_t f : factors) {
    const auto m = checked_mul(acc, f);
    if (!m) throw Error(ErrorKind::kInvalidInput, c.origin(), std::string(what) + " is too large: it overflows 64 bits");
    acc = *m;
  }
  return acc;
}
uint64_t plus(const HfConfig& c, const char* what, uint64_t a, uint64_t b) {
  const auto r = checked_add(a, b);
  if (!r) throw Error(ErrorKind::kInvalidInput, c.origin(), std::string(what) + " is too large: it overflows 64 bits");
  return *r;
}

std::vector<Row> cat(std::initializer_list<std::vector<Row>> parts) {
  std::vector<Row> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// --- shared readers --------------------------------------------------------------------------------------------

uint64_t exact_div(const HfConfig& c, uint64_t a, uint64_t b, const std::string& what) {
  if (b == 0 || a % b != 0)
    c.fail(what, "does not divide evenly (" + std::to_string(a) + " / " + std::to_string(b) + ")");
  return a / b;
}

void uniform_attention(ModelFacts& m, uint64_t layers, uint64_t kv_heads, uint64_t k_dim, uint64_t v_dim) {
  m.attention.assign(layers, LayerAttention{kv_heads, k_dim, v_dim, 0, true});
}

// Sliding windows per layer from `layer_types` (transformers >= 4.53) or a family's own rule.
void apply_layer_types(const HfConfig& c, ModelFacts& m, uint64_t window) {
  if (!c.has("layer_types") || window == 0) return;
  const auto& lt = c.json().at("layer_types");
  if (!lt.is_array() || lt.size() != m.attention.size()) c.fail("layer_types", "must list one type per layer");
  for (size_t i = 0; i < lt.size(); ++i) {
    if (!lt[i].is_string()) c.fail("layer_types", "entries must be strings");
    if (lt[i].get<std::string>() == "sliding_attention") m.attention[i].sliding_window = window;
  }
}

// The decoder fields shared by Llama-like families. head_dim falls back to hidden / heads.
void read_decoder(const HfConfig& c, Dims& d, ModelFacts& m, bool tie_default, uint64_t head_dim_default = 0) {
  d["hidden"] = c.dim("hidden_size");
  d["layers"] = c.dim("num_hidden_layers");
  d["heads"] = c.dim("num_attention_heads");
  d["kv_heads"] = c.dim_or("num_key_value_heads", d["heads"]);
  if (c.has("head_dim")) d["head_dim"] = c.dim("head_dim");
  else if (head_dim_default) d["head_dim"] = head_dim_default;
  else d["head_dim"] = exact_div(c, d["hidden"], d["heads"], "hidden_size / num_attention_heads");
  if (d["heads"] % d["kv_heads"] != 0) c.fail("num_key_value_heads", "must divide num_attention_heads");
  d["q_dim"] = times(c, "num_attention_heads x head_dim", {d["heads"], d["head_dim"]});
  d["kv_dim"] = times(c, "num_key_value_heads x head_dim", {d["kv_heads"], d["head_dim"]});
  d["vocab"] = c.dim("vocab_size");
  if (c.has("intermediate_size")) d["ffn"] = c.dim("intermediate_size");
  d.set("tied", c.flag_or("tie_word_embeddings", tie_default));
  m.hidden = d["hidden"];
  m.n_heads = d["heads"];
  m.n_kv_heads = d["kv_heads"];
  m.head_dim = d["head_dim"];
  m.intermediate = d.values.count("ffn") ? d["ffn"] : 0;
  m.max_positions = c.count_or("max_position_embeddings", 0);
  m.attention_kind = d["kv_heads"] == d["heads"] ? "mha" : (d["kv_heads"] == 1 ? "mqa" : "gqa");
  m.position_kind = "rope";
  uniform_attention(m, d["layers"], d["kv_heads"], d["head_dim"], d["head_dim"]);
}

void set_all_dense(Dims& d) { d.moe_layer.assign(d["layers"], false); }

// A row flag and the trait that tells engines the same, set together.
void set_qk_norm(Dims& d, ModelFacts& m, bool on, const char* flag = "qk_norm") {
  d.set(flag, on);
  m.traits.qk_norm = on;
}
void set_sandwich_norms(Dims& d, ModelFacts& m, bool on) {
  d.set("sandwich_norm", on);
  m.traits.sandwich_norms = on;
}

// --- shared rows -----------------------------------------------------------------------------------------------

const std::vector<Row> kLlamaEmbed = {{"model.embed_tokens.weight", R::kTokenEmbedding, "vocab, hidden"}};

const std::vector<Row> kLlamaAttention = {
    {"model.layers.{layers}.self_attn.q_proj.weight", R::kAttnQuery, "q_dim, hidden"},
    {"model.layers.{layers}.self_attn.q_proj.bias", R::kAttnQuery, "q_dim", "qkv_bias"},
    {"model.layers.{layers}.self_attn.k_proj.weight", R::kAttnKey, "kv_dim, hidden"},
    {"model.layers.{layers}.self_attn.k_proj.bias", R::kAttnKey, "kv_dim", "qkv_bias"},
    {"model.layers.{layers}.self_attn.v_proj.weight", R::kAttnValue, "kv_dim, hidden"},
    {"model.layers.{layers}.self_attn.v_proj.bias", R::kAttnValue, "kv_dim", "qkv_bias"},
    {"model.layers.{layers}.self_attn.o_proj.weight", R::kAttnOutput, "hidden, q_dim"},
    {"model.layers.{layers}.self_attn.o_proj.bias", R::kAttnOutput, "hidden", "o_bias"},
    {"model.layers.{layers}.self_attn.q_norm.weight", R::kQkNorm, "head_dim", "qk_norm"},
    {"model.layers.{layers}.self_attn.k_norm.weight", R::kQkNorm, "head_dim", "qk_norm"},
};

const std::vector<Row> kLlamaMlp = {
    {"model.layers.{layers}.mlp.gate_proj.weight", R::kMlpGate, "ffn, hidden", "", L::kDense},
    {"model.layers.{layers}.mlp.gate_proj.bias", R::kMlpGate, "ffn", "mlp_bias", L::kDense},
    {"model.layers.{layers}.mlp.up_proj.weight", R::kMlpUp, "ffn, hidden", "", L::kDense},
    {"model.layers.{layers}.mlp.up_proj.bias", R::kMlpUp, "ffn", "mlp_bias", L::kDense},
    {"model.layers.{layers}.mlp.down_proj.weight", R::kMlpDown, "hidden, ffn", "", L::kDense},
    {"model.layers.{layers}.mlp.down_proj.bias", R::kMlpDown, "hidden", "mlp_bias", L::kDense},
};

const std::vector<Row> kLlamaNorms = {
    {"model.layers.{layers}.input_layernorm.weight", R::kNorm, "hidden"},
    {"model.layers.{layers}.post_attention_layernorm.weight", R::kNorm, "hidden"},
    {"model.layers.{layers}.pre_feedforward_layernorm.weight", R::kNorm, "hidden", "sandwich_norm"},
    {"model.layers.{layers}.post_feedforward_layernorm.weight", R::kNorm, "hidden", "sandwich_norm"},
};

const std::vector<Row> kLlamaHead = {
    {"model.norm.weight", R::kNorm, "hidden"},
    {"lm_head.weight", R::kLmHead, "vocab, hidden", "", L::kAll, "model.embed_tokens.weight"},
};

// Mixture-of-experts MLP with the Qwen/DeepSeek checkpoint names.
const std::vector<Row> kQwenMoe = {
    {"model.layers.{layers}.mlp.gate.weight", R::kRouter, "experts, hidden", "", L::kMoe},
    {"model.layers.{layers}.mlp.experts.{experts}.gate_proj.weight", R::kExpert, "moe_ffn, hidden", "", L::kMoe},
    {"model.layers.{layers}.mlp.experts.{experts}.up_proj.weight", R::kExpert, "moe_ffn, hidden", "", L::kMoe},
    {"model.layers.{layers}.mlp.experts.{experts}.down_proj.weight", R::kExpert, "hidden, moe_ffn", "", L::kMoe},
    {"model.layers.{layers}.mlp.shared_experts.gate_proj.weight", R::kSharedExpert, "shared_ffn, hidden", "shared", L::kMoe},
    {"model.layers.{layers}.mlp.shared_experts.up_proj.weight", R::kSharedExpert, "shared_ffn, hidden", "shared", L::kMoe},
    {"model.layers.{layers}.mlp.shared_experts.down_proj.weight", R::kSharedExpert, "hidden, shared_ffn", "shared", L::kMoe},
};

// --- traits shared by several families -----------------------------------------------------------------------

// LlamaDecoderLayer and kin: RMSNorm, sequential residual, separate q/k/v projections, SDPA (modeling_llama.py;
// mistral, qwen2, qwen3, mixtral, gpt_oss, llama_moe and idefics' decoder are written the same way).
const ArchTraits kLlamaTraits{};
// GptOssForCausalLM: no SDPA path (_supports_sdpa = False: the sinks), so transformers runs eager attention
const ArchTraits kGptOssTraits{.default_attention = AttentionImpl::kEager, .softmax_in_model_dtype = true,
                               .attention_sinks = true, .experts_clamped_glu = true};

// Pre-LN decoders with F.layer_norm and separate projections (OPTDecoderLayer, XGLMDecoderLayer).
const ArchTraits kLayerNormTraits{.norm = NormKind::kLayerNorm};

// --- llama, mistral, qwen2, qwen3 (dense decoder with RMSNorm and SwiGLU) ----------------------------------------

// Qwen3Attention adds q_norm / k_norm (read_llama sets qk_norm for model_type qwen3).
// GraniteForCausalLM (modeling_granite.py, transformers 5.17) has Llama's modules and names: attention and MLP biases
// from attention_bias / mlp_bias, GraniteConfig's tie_word_embeddings default false; its embedding_multiplier,
// residual_multiplier, attention_multiplier and logits_scaling are scalars, not parameters (the engines do not
// replay the extra elementwise products they cost; no Granite run is measured).
void read_llama(const HfConfig& c, Dims& d, ModelFacts& m) {
  const std::string mt = c.model_type();
  read_decoder(c, d, m, false, mt == "qwen3" ? 128 : 0);
  if (!d.values.count("ffn")) c.fail("intermediate_size", "is missing");
  if (mt == "qwen2") {
    d.set("qkv_bias", true);  // Qwen2Attention: q/k/v with bias, o_proj without
  } else if (mt == "llama" || mt == "qwen3" || mt == "granite") {
    const bool ab = c.flag_or("attention_bias", false);
    d.set("qkv_bias", ab);
    d.set("o_bias", ab);
  }
  if (mt == "llama" || mt == "granite") d.set("mlp_bias", c.flag_or("mlp_bias", false));
  if (mt == "qwen3") set_qk_norm(d, m, true);
  if (mt == "qwen2" && c.flag_or("use_sliding_window", false)) {
    // Qwen2 slides only on layers at or above max_window_layers.
    uint64_t w = c.count_or("sliding_window", 0), from = c.count_or("max_window_layers", 0);
    for (uint64_t i = from; i < m.attention.size(); ++i) m.attention[i].sliding_window = w;
  }
  if (mt == "mistral") {
    uint64_t w = c.count_or("sliding_window", 0);
    for (auto& a : m.attention) a.sliding_window = w;
  }
  set_all_dense(d);
}

// --- gemma, gemma2, gemma3_text ----------------------------------------------------------------------------------

// GemmaRMSNorm multiplies by (1 + weight) in fp32 before the cast (modeling_gemma.py); Gemma 2 and 3 add the
// pre/post-feedforward norms and a norm after the attention (Gemma2DecoderLayer), Gemma 3 a q_norm / k_norm
// (Gemma3Attention): set by read_gemma per model_type.
const ArchTraits kGemmaTraits{.norm = NormKind::kRmsNormFp32Scale, .scaled_embedding = true};

void read_gemma(const HfConfig& c, Dims& d, ModelFacts& m) {
  const std::string mt = c.model_type();
  read_decoder(c, d, m, true, 256);
  if (!d.values.count("ffn")) c.fail("intermediate_size", "is missing");
  const bool ab = c.flag_or("attention_bias", false);
  d.set("qkv_bias", ab);
  d.set("o_bias", ab);
  if (mt == "gemma2" || mt == "gemma3_text") set_sandwich_norms(d, m, true);
  if (mt == "gemma3_text") set_qk_norm(d, m, true);
  if (mt == "gemma3_text") m.traits.rotary_per_layer_type = true;
  uint64_t w = c.count_or("sliding_window", 0);
  if (c.has("layer_types")) {
    apply_layer_types(c, m, w);
  } else if (mt == "gemma2") {
    for (size_t i = 0; i < m.attention.size(); i += 2) m.attention[i].sliding_window = w;  // even layers slide
  } else if (mt == "gemma3_text") {
    uint64_t pattern = c.count_or("sliding_window_pattern", 6);
    for (size_t i = 0; i < m.attention.size(); ++i)
      if (pattern == 0 || (i + 1) % pattern != 0) m.attention[i].sliding_window = w;
  }
  set_all_dense(d);
}

// --- mixtral -----------------------------------------------------------------------------------------------------

void read_mixtral(const HfConfig& c, Dims& d, ModelFacts& m) {
  read_decoder(c, d, m, false);
  if (!d.values.count("ffn")) c.fail("intermediate_size", "is missing");
  d["experts"] = c.dim("num_local_experts");
  m.n_experts = d["experts"];
  m.n_experts_active = c.dim_or("num_experts_per_tok", 2);
  m.moe_intermediate = d["ffn"];
  uint64_t w = c.count_or("sliding_window", 0);
  for (auto& a : m.attention) a.sliding_window = w;
  d.moe_layer.assign(d["layers"], true);
}

const std::vector<Row> kMixtralMoe = {
    {"model.layers.{layers}.block_sparse_moe.gate.weight", R::kRouter, "experts, hidden"},
    {"model.layers.{layers}.block_sparse_moe.experts.{experts}.w1.weight", R::kExpert, "ffn, hidden"},
    {"model.layers.{layers}.block_sparse_moe.experts.{experts}.w2.weight", R::kExpert, "hidden, ffn"},
    {"model.layers.{layers}.block_sparse_moe.experts.{experts}.w3.weight", R::kExpert, "ffn, hidden"},
};

// --- qwen3_moe -----------------------------------------------------------------------------------------------------

void read_qwen3_moe(const HfConfig& c, Dims& d, ModelFacts& m) {
  read_decoder(c, d, m, false, 128);
  set_qk_norm(d, m, true);  // Qwen3MoeAttention: q_norm / k_norm on every config
  const bool ab = c.flag_or("attention_bias", false);
  d.set("qkv_bias", ab);
  d.set("o_bias", ab);
  if (!d.values.count("ffn")) d["ffn"] = 6144;  // Qwen3MoeConfig default
  d["experts"] = c.dim("num_experts");
  d["moe_ffn"] = c.dim("moe_intermediate_size");
  const uint64_t step = c.dim_or("decoder_sparse_step", 1);
  std::vector<uint64_t> mlp_only;
  if (c.has("mlp_only_layers")) {
    const auto& v = c.json().at("mlp_only_layers");
    if (!v.is_array()) c.fail("mlp_only_layers", "must be a list of layer indices");
    for (const auto& x : v) {
      if (!x.is_number_unsigned()) c.fail("mlp_only_layers", "must be a list of layer indices");
      mlp_only.push_back(x.get<uint64_t>());
    }
  }
  d.moe_layer.assign(d["layers"], false);
  for (uint64_t i = 0; i < d["layers"]; ++i)
    d.moe_layer[i] = std::find(mlp_only.begin(), mlp_only.end(), i) == mlp_only.end() && (i + 1) % step == 0;
  m.n_experts = d["experts"];
  m.n_experts_active = c.dim_or("num_experts_per_tok", 8);
  m.moe_intermediate = d["moe_ffn"];
}

// --- phi3 ----------------------------------------------------------------------------------------------------------

// Phi3Attention: one qkv_proj whose output is sliced into q, k and v (modeling_phi3.py). Its training saved set is
// still that of separate q, k and v: no Phi-3 training trace was recorded to check the fused one against, and the
// measured Phi-3 training runs (bench/data/transformers_holdout*.jsonl) are within the targets with it.
const ArchTraits kPhi3Traits{.qkv = QkvLayout::kFused, .fused_qkv_saved_whole = false};

void read_phi3(const HfConfig& c, Dims& d, ModelFacts& m) {
  read_decoder(c, d, m, false);
  if (!d.values.count("ffn")) c.fail("intermediate_size", "is missing");
  d["qkv_out"] = plus(c, "the fused qkv width", d["q_dim"], times(c, "the fused qkv width", {2, d["kv_dim"]}));
  uint64_t w = c.count_or("sliding_window", 0);
  for (auto& a : m.attention) a.sliding_window = w;
  set_all_dense(d);
}

const std::vector<Row> kPhi3Layer = {
    {"model.layers.{layers}.self_attn.o_proj.weight", R::kAttnOutput, "hidden, q_dim"},
    {"model.layers.{layers}.self_attn.qkv_proj.weight", R::kAttnQkv, "qkv_out, hidden"},
    {"model.layers.{layers}.mlp.gate_up_proj.weight", R::kMlpGateUp, "2*ffn, hidden"},
    {"model.layers.{layers}.mlp.down_proj.weight", R::kMlpDown, "hidden, ffn"},
    {"model.layers.{layers}.input_layernorm.weight", R::kNorm, "hidden"},
    {"model.layers.{layers}.post_attention_layernorm.weight", R::kNorm, "hidden"},
};

// --- phi (phi-1, phi-1.5, phi-2) -------------------------------------------------------------------------------------

// PhiDecoderLayer: one input_layernorm feeds both the attention and the MLP (parallel residual), LayerNorm with
// bias; q_layernorm / k_layernorm when the config's qk_layernorm (read_phi).
const ArchTraits kPhiTraits{.norm = NormKind::kLayerNorm, .residual = ResidualKind::kParallelSharedNorm};

void read_phi(const HfConfig& c, Dims& d, ModelFacts& m) {
  read_decoder(c, d, m, false);
  if (!d.values.count("ffn")) c.fail("intermediate_size", "is missing");
  set_qk_norm(d, m, c.flag_or("qk_layernorm", false), "qk_layernorm");
  m.gated_mlp = false;
  set_all_dense(d);
}

const std::vector<Row> kPhi = {
    {"model.embed_tokens.weight", R::kTokenEmbedding, "vocab, hidden"},
    {"model.layers.{layers}.self_attn.q_proj.weight", R::kAttnQuery, "q_dim, hidden"},
    {"model.layers.{layers}.self_attn.q_proj.bias", R::kAttnQuery, "q_dim"},
    {"model.layers.{layers}.self_attn.k_proj.weight", R::kAttnKey, "kv_dim, hidden"},
    {"model.layers.{layers}.self_attn.k_proj.bias", R::kAttnKey, "kv_dim"},
    {"model.layers.{layers}.self_attn.v_proj.weight", R::kAttnValue, "kv_dim, hidden"},
    {"model.layers.{layers}.self_attn.v_proj.bias", R::kAttnValue, "kv_dim"},
    {"model.layers.{layers}.self_attn.dense.weight", R::kAttnOutput, "hidden, q_dim"},
    {"model.layers.{layers}.self_attn.dense.bias", R::kAttnOutput, "hidden"},
    {"model.layers.{layers}.self_attn.q_layernorm.weight", R::kQkNorm, "head_dim", "qk_layernorm"},
    {"model.layers.{layers}.self_attn.q_layernorm.bias", R::kQkNorm, "head_dim", "qk_layernorm"},
    {"model.layers.{layers}.self_attn.k_layernorm.weight", R::kQkNorm, "head_dim", "qk_layernorm"},
    {"model.layers.{layers}.self_attn.k_layernorm.bias", R::kQkNorm, "head_dim", "qk_layernorm"},
    {"model.layers.{layers}.mlp.fc1.weight", R::kMlpIn, "ffn, hidden"},
    {"model.layers.{layers}.mlp.fc1.bias", R::kMlpIn, "ffn"},
    {"model.layers.{layers}.mlp.fc2.weight", R::kMlpOut, "hidden, ffn"},
    {"model.layers.{layers}.mlp.fc2.bias", R::kMlpOut, "hidden"},
    {"model.layers.{layers}.input_layernorm.weight", R::kNorm, "hidden"},
    {"model.layers.{layers}.input_layernorm.bias", R::kNorm, "hidden"},
    {"model.final_layernorm.weight", R::kNorm, "hidden"},
    {"model.final_layernorm.bias", R::kNorm, "hidden"},
    {"lm_head.weight", R::kLmHead, "vocab, hidden", "", L::kAll, "model.embed_tokens.weight"},
    {"lm_head.bias", R::kLmHead, "vocab"},
};

// --- gpt2 ----------------------------------------------------------------------------------------------------------

// GPT2Block: LayerNorm, sequential; c_attn is one Conv1D (weights [in, out]) split into q, k and v views;
// GPT-2's eager attention takes its softmax in the model dtype (modeling_gpt2.py eager_attention_forward).
const ArchTraits kGpt2Traits{.norm = NormKind::kLayerNorm,
                             .qkv = QkvLayout::kFused,
                             .conv1d_weights = true,
                             .softmax_in_model_dtype = true,
                             .fused_qkv_saved_whole = true};

void read_gpt2(const HfConfig& c, Dims& d, ModelFacts& m) {
  d["hidden"] = c.dim_or("n_embd", c.dim_or("hidden_size", 768));
  d["layers"] = c.dim_or("n_layer", c.dim_or("num_hidden_layers", 12));
  d["heads"] = c.dim_or("n_head", c.dim_or("num_attention_heads", 12));
  d["positions"] = c.dim_or("n_positions", c.dim_or("max_position_embeddings", 1024));
  d["vocab"] = c.dim("vocab_size");
  d["ffn"] = c.dim_or("n_inner", 4 * d["hidden"]);  // n_inner null -> 4 * n_embd (GPT2MLP)
  d["head_dim"] = exact_div(c, d["hidden"], d["heads"], "n_embd / n_head");
  d.set("tied", c.flag_or("tie_word_embeddings", true));
  m.hidden = d["hidden"];
  m.n_heads = m.n_kv_heads = d["heads"];
  m.head_dim = d["head_dim"];
  m.intermediate = d["ffn"];
  m.max_positions = d["positions"];
  m.gated_mlp = false;
  m.attention_kind = "mha";
  m.position_kind = "learned";
  uniform_attention(m, d["layers"], d["heads"], d["head_dim"], d["head_dim"]);
  set_all_dense(d);
}

// GPT-2 uses Conv1D modules, whose weights are stored [in, out].
const std::vector<Row> kGpt2 = {
    {"transformer.wte.weight", R::kTokenEmbedding, "vocab, hidden"},
    {"transformer.wpe.weight", R::kPositionEmbedding, "positions, hidden"},
    {"transformer.h.{layers}.ln_1.weight", R::kNorm, "hidden"},
    {"transformer.h.{layers}.ln_1.bias", R::kNorm, "hidden"},
    {"transformer.h.{layers}.attn.c_attn.weight", R::kAttnQkv, "hidden, 3*hidden"},
    {"transformer.h.{layers}.attn.c_attn.bias", R::kAttnQkv, "3*hidden"},
    {"transformer.h.{layers}.attn.c_proj.weight", R::kAttnOutput, "hidden, hidden"},
    {"transformer.h.{layers}.attn.c_proj.bias", R::kAttnOutput, "hidden"},
    {"transformer.h.{layers}.ln_2.weight", R::kNorm, "hidden"},
    {"transformer.h.{layers}.ln_2.bias", R::kNorm, "hidden"},
    {"transformer.h.{layers}.mlp.c_fc.weight", R::kMlpIn, "hidden, ffn"},
    {"transformer.h.{layers}.mlp.c_fc.bias", R::kMlpIn, "ffn"},
    {"transformer.h.{layers}.mlp.c_proj.weight", R::kMlpOut, "ffn, hidden"},
    {"transformer.h.{layers}.mlp.c_proj.bias", R::kMlpOut, "hidden"},
    {"transformer.ln_f.weight", R::kNorm, "hidden"},
    {"transformer.ln_f.bias", R::kNorm, "hidden"},
    {"lm_head.weight", R::kLmHead, "vocab, hidden", "", L::kAll, "transformer.wte.weight"},
};

// --- gpt_neox ------------------------------------------------------------------------------------------------------

// GPTNeoXLayer: LayerNorm; with use_parallel_residual (the default, read_gpt_neox) out = x + attn(ln1(x)) +
// mlp(ln2(x)); query_key_value is one projection viewed as q, k and v; the rotated query stays alive until the
// attention returns (allocator trace of pythia-1.4b fp16 b16 x 2048).
const ArchTraits kGptNeoxTraits{.norm = NormKind::kLayerNorm,
                                .residual = ResidualKind::kParallelTwoNorms,
                                .qkv = QkvLayout::kFused,
                                .rotated_query_kept = true,
                                .fused_qkv_saved_whole = true,
                                .built_lm_head = "lm_head.weight"};

void read_gpt_neox(const HfConfig& c, Dims& d, ModelFacts& m) {
  read_decoder(c, d, m, false);
  if (!d.values.count("ffn")) c.fail("intermediate_size", "is missing");
  d.set("attn_bias", c.flag_or("attention_bias", true));
  if (!c.flag_or("use_parallel_residual", true)) m.traits.residual = ResidualKind::kSequential;
  m.gated_mlp = false;
  set_all_dense(d);
}

const std::vector<Row> kGptNeox = {
    {"gpt_neox.embed_in.weight", R::kTokenEmbedding, "vocab, hidden"},
    {"gpt_neox.layers.{layers}.input_layernorm.weight", R::kNorm, "hidden"},
    {"gpt_neox.layers.{layers}.input_layernorm.bias", R::kNorm, "hidden"},
    {"gpt_neox.layers.{layers}.post_attention_layernorm.weight", R::kNorm, "hidden"},
    {"gpt_neox.layers.{layers}.post_attention_layernorm.bias", R::kNorm, "hidden"},
    {"gpt_neox.layers.{layers}.attention.query_key_value.weight", R::kAttnQkv, "3*hidden, hidden"},
    {"gpt_neox.layers.{layers}.attention.query_key_value.bias", R::kAttnQkv, "3*hidden", "attn_bias"},
    {"gpt_neox.layers.{layers}.attention.dense.weight", R::kAttnOutput, "hidden, hidden"},
    {"gpt_neox.layers.{layers}.attention.dense.bias", R::kAttnOutput, "hidden", "attn_bias"},
    {"gpt_neox.layers.{layers}.mlp.dense_h_to_4h.weight", R::kMlpIn, "ffn, hidden"},
    {"gpt_neox.layers.{layers}.mlp.dense_h_to_4h.bias", R::kMlpIn, "ffn"},
    {"gpt_neox.layers.{layers}.mlp.dense_4h_to_h.weight", R::kMlpOut, "hidden, ffn"},
    {"gpt_neox.layers.{layers}.mlp.dense_4h_to_h.bias", R::kMlpOut, "hidden"},
    {"gpt_neox.final_layer_norm.weight", R::kNorm, "hidden"},
    {"gpt_neox.final_layer_norm.bias", R::kNorm, "hidden"},
    {"embed_out.weight", R::kLmHead, "vocab, hidden", "", L::kAll, "gpt_neox.embed_in.weight"},
};

// --- falcon --------------------------------------------------------------------------------------------------------

// FalconDecoderLayer: LayerNorm, parallel attention and MLP from one input_layernorm (parallel_attn, the default;
// read_falcon sets the sequential kind for the old architecture without it); query_key_value is one projection.
// Falcon's attention materialises its scores under "sdpa" as well, and on 16-bit inputs SDPA takes PyTorch's
// math backend (allocator trace of falcon-7b, bench/data/traces; transformers_memory.jsonl).
const ArchTraits kFalconTraits{.norm = NormKind::kLayerNorm,
                               .residual = ResidualKind::kParallelSharedNorm,
                               .qkv = QkvLayout::kFused,
                               .materialises_scores = true,
                               .sdpa_math_backend = true,
                               .fused_qkv_saved_whole = true};

void read_falcon(const HfConfig& c, Dims& d, ModelFacts& m) {
  d["hidden"] = c.dim("hidden_size");
  d["layers"] = c.dim_or("num_hidden_layers", c.dim_or("n_layer", 32));
  d["heads"] = c.dim_or("num_attention_heads", c.dim_or("n_head", 71));
  d["vocab"] = c.dim("vocab_size");
  d["head_dim"] = exact_div(c, d["hidden"], d["heads"], "hidden_size / num_attention_heads");
  d["ffn"] = c.dim_or("ffn_hidden_size", 4 * d["hidden"]);
  const bool new_arch = c.flag_or("new_decoder_architecture", false);
  const bool multi_query = c.flag_or("multi_query", true);
  // FalconAttention: the new architecture has GQA with num_kv_heads; otherwise one shared K/V head under
  // multi_query, or full MHA.
  uint64_t kv = new_arch ? c.dim_or("num_kv_heads", d["heads"]) : (multi_query ? 1 : d["heads"]);
  d["kv_heads"] = kv;
  d["qkv_out"] = times(c, "the fused qkv width", {plus(c, "the fused qkv width", d["heads"], times(c, "the fused qkv width", {2, kv})), d["head_dim"]});
  d.set("bias", c.flag_or("bias", false));
  const bool parallel = c.flag_or("parallel_attn", true);
  uint64_t n_ln = new_arch ? c.dim_or("num_ln_in_parallel_attn", 2) : 1;
  d.set("two_ln", new_arch && n_ln == 2);
  d.set("one_ln", !(new_arch && n_ln == 2));
  d.set("post_ln", !parallel && !new_arch);
  // The old architecture without parallel_attn runs attention, then post_attention_layernorm, then the MLP. The new
  // one with two norms (ln_attn, ln_mlp: falcon-40b) takes both before the attention; it keeps the one-norm kind,
  // whose replay lacks the second norm's output (one hidden-state tensor per layer): no such run was measured.
  if (!parallel && !new_arch) m.traits.residual = ResidualKind::kSequential;
  d.set("tied", c.flag_or("tie_word_embeddings", true));
  m.hidden = d["hidden"];
  m.n_heads = d["heads"];
  m.n_kv_heads = kv;
  m.head_dim = d["head_dim"];
  m.intermediate = d["ffn"];
  m.gated_mlp = false;
  m.attention_kind = kv == d["heads"] ? "mha" : (kv == 1 ? "mqa" : "gqa");
  m.position_kind = c.flag_or("alibi", false) ? "alibi" : "rope";
  uniform_attention(m, d["layers"], kv, d["head_dim"], d["head_dim"]);
  set_all_dense(d);
}

const std::vector<Row> kFalcon = {
    {"transformer.word_embeddings.weight", R::kTokenEmbedding, "vocab, hidden"},
    {"transformer.h.{layers}.self_attention.query_key_value.weight", R::kAttnQkv, "qkv_out, hidden"},
    {"transformer.h.{layers}.self_attention.query_key_value.bias", R::kAttnQkv, "qkv_out", "bias"},
    {"transformer.h.{layers}.self_attention.dense.weight", R::kAttnOutput, "hidden, hidden"},
    {"transformer.h.{layers}.self_attention.dense.bias", R::kAttnOutput, "hidden", "bias"},
    {"transformer.h.{layers}.mlp.dense_h_to_4h.weight", R::kMlpIn, "ffn, hidden"},
    {"transformer.h.{layers}.mlp.dense_h_to_4h.bias", R::kMlpIn, "ffn", "bias"},
    {"transformer.h.{layers}.mlp.dense_4h_to_h.weight", R::kMlpOut, "hidden, ffn"},
    {"transformer.h.{layers}.mlp.dense_4h_to_h.bias", R::kMlpOut, "hidden", "bias"},
    {"transformer.h.{layers}.ln_attn.weight", R::kNorm, "hidden", "two_ln"},
    {"transformer.h.{layers}.ln_attn.bias", R::kNorm, "hidden", "two_ln"},
    {"transformer.h.{layers}.ln_mlp.weight", R::kNorm, "hidden", "two_ln"},
    {"transformer.h.{layers}.ln_mlp.bias", R::kNorm, "hidden", "two_ln"},
    {"transformer.h.{layers}.input_layernorm.weight", R::kNorm, "hidden", "one_ln"},
    {"transformer.h.{layers}.input_layernorm.bias", R::kNorm, "hidden", "one_ln"},
    {"transformer.h.{layers}.post_attention_layernorm.weight", R::kNorm, "hidden", "post_ln"},
    {"transformer.h.{layers}.post_attention_layernorm.bias", R::kNorm, "hidden", "post_ln"},
    {"transformer.ln_f.weight", R::kNorm, "hidden"},
    {"transformer.ln_f.bias", R::kNorm, "hidden"},
    {"lm_head.weight", R::kLmHead, "vocab, hidden", "", L::kAll, "transformer.word_embeddings.weight"},
};

// --- opt -----------------------------------------------------------------------------------------------------------

void read_opt(const HfConfig& c, Dims& d, ModelFacts& m) {
  d["hidden"] = c.dim("hidden_size");
  d["layers"] = c.dim("num_hidden_layers");
  d["heads"] = c.dim("num_attention_heads");
  d["vocab"] = c.dim("vocab_size");
  d["ffn"] = c.dim("ffn_dim");
  d["head_dim"] = exact_div(c, d["hidden"], d["heads"], "hidden_size / num_attention_heads");
  d["proj"] = c.dim_or("word_embed_proj_dim", d["hidden"]);
  // OPTLearnedPositionalEmbedding keeps 2 extra rows (its offset).
  d["positions"] = c.dim_or("max_position_embeddings", 2048) + 2;
  d.set("project", d["proj"] != d["hidden"]);
  d.set("final_ln", c.flag_or("do_layer_norm_before", true) && !c.flag_or("_remove_final_layer_norm", false));
  d.set("bias", c.flag_or("enable_bias", true));
  d.set("ln_affine", c.flag_or("layer_norm_elementwise_affine", true));
  d.set("tied", c.flag_or("tie_word_embeddings", true));
  m.hidden = d["hidden"];
  m.n_heads = m.n_kv_heads = d["heads"];
  m.head_dim = d["head_dim"];
  m.intermediate = d["ffn"];
  m.max_positions = d["positions"] - 2;
  m.gated_mlp = false;
  m.attention_kind = "mha";
  m.position_kind = "learned";
  uniform_attention(m, d["layers"], d["heads"], d["head_dim"], d["head_dim"]);
  set_all_dense(d);
}

const std::vector<Row> kOpt = {
    {"model.decoder.embed_tokens.weight", R::kTokenEmbedding, "vocab, proj"},
    {"model.decoder.embed_positions.weight", R::kPositionEmbedding, "positions, hidden"},
    {"model.decoder.project_out.weight", R::kEmbeddingProjection, "proj, hidden", "project"},
    {"model.decoder.project_in.weight", R::kEmbeddingProjection, "hidden, proj", "project"},
    {"model.decoder.final_layer_norm.weight", R::kNorm, "hidden", "final_ln"},
    {"model.decoder.final_layer_norm.bias", R::kNorm, "hidden", "final_ln"},
    {"model.decoder.layers.{layers}.self_attn.k_proj.weight", R::kAttnKey, "hidden, hidden"},
    {"model.decoder.layers.{layers}.self_attn.k_proj.bias", R::kAttnKey, "hidden", "bias"},
    {"model.decoder.layers.{layers}.self_attn.v_proj.weight", R::kAttnValue, "hidden, hidden"},
    {"model.decoder.layers.{layers}.self_attn.v_proj.bias", R::kAttnValue, "hidden", "bias"},
    {"model.decoder.layers.{layers}.self_attn.q_proj.weight", R::kAttnQuery, "hidden, hidden"},
    {"model.decoder.layers.{layers}.self_attn.q_proj.bias", R::kAttnQuery, "hidden", "bias"},
    {"model.decoder.layers.{layers}.self_attn.out_proj.weight", R::kAttnOutput, "hidden, hidden"},
    {"model.decoder.layers.{layers}.self_attn.out_proj.bias", R::kAttnOutput, "hidden", "bias"},
    {"model.decoder.layers.{layers}.self_attn_layer_norm.weight", R::kNorm, "hidden", "ln_affine"},
    {"model.decoder.layers.{layers}.self_attn_layer_norm.bias", R::kNorm, "hidden", "ln_affine"},
    {"model.decoder.layers.{layers}.fc1.weight", R::kMlpIn, "ffn, hidden"},
    {"model.decoder.layers.{layers}.fc1.bias", R::kMlpIn, "ffn", "bias"},
    {"model.decoder.layers.{layers}.fc2.weight", R::kMlpOut, "hidden, ffn"},
    {"model.decoder.layers.{layers}.fc2.bias", R::kMlpOut, "hidden", "bias"},
    {"model.decoder.layers.{layers}.final_layer_norm.weight", R::kNorm, "hidden", "ln_affine"},
    {"model.decoder.layers.{layers}.final_layer_norm.bias", R::kNorm, "hidden", "ln_affine"},
    {"lm_head.weight", R::kLmHead, "vocab, proj", "", L::kAll, "model.decoder.embed_tokens.weight"},
};

// --- bloom ---------------------------------------------------------------------------------------------------------

// BloomBlock: LayerNorm, sequential; query_key_value is one projection viewed per head; BloomAttention has no
// SDPA path (eager only): alibi.baddbmm gives the scaled scores in one op, kept in locals with the masked scores,
// and the block returns the attention weights in its outputs tuple (modeling_bloom.py).
const ArchTraits kBloomTraits{.norm = NormKind::kLayerNorm,
                              .qkv = QkvLayout::kFused,
                              .default_attention = AttentionImpl::kEager,
                              .materialises_scores = true,
                              .scores_from_baddbmm = true,
                              .block_returns_attn_weights = true,
                              .fused_qkv_saved_whole = true};

void read_bloom(const HfConfig& c, Dims& d, ModelFacts& m) {
  d["hidden"] = c.dim_or("hidden_size", c.dim_or("n_embed", 64));
  d["layers"] = c.dim_or("n_layer", c.dim_or("num_hidden_layers", 2));
  d["heads"] = c.dim_or("n_head", c.dim_or("num_attention_heads", 8));
  d["vocab"] = c.dim("vocab_size");
  d["head_dim"] = exact_div(c, d["hidden"], d["heads"], "hidden_size / n_head");
  d["ffn"] = 4 * d["hidden"];  // BloomMLP is always 4 * hidden; n_inner is ignored
  d.set("tied", c.flag_or("tie_word_embeddings", true));
  m.hidden = d["hidden"];
  m.n_heads = m.n_kv_heads = d["heads"];
  m.head_dim = d["head_dim"];
  m.intermediate = d["ffn"];
  m.gated_mlp = false;
  m.attention_kind = "mha";
  m.position_kind = "alibi";
  uniform_attention(m, d["layers"], d["heads"], d["head_dim"], d["head_dim"]);
  set_all_dense(d);
}

const std::vector<Row> kBloom = {
    {"transformer.word_embeddings.weight", R::kTokenEmbedding, "vocab, hidden"},
    {"transformer.word_embeddings_layernorm.weight", R::kNorm, "hidden"},
    {"transformer.word_embeddings_layernorm.bias", R::kNorm, "hidden"},
    {"transformer.h.{layers}.input_layernorm.weight", R::kNorm, "hidden"},
    {"transformer.h.{layers}.input_layernorm.bias", R::kNorm, "hidden"},
    {"transformer.h.{layers}.self_attention.query_key_value.weight", R::kAttnQkv, "3*hidden, hidden"},
    {"transformer.h.{layers}.self_attention.query_key_value.bias", R::kAttnQkv, "3*hidden"},
    {"transformer.h.{layers}.self_attention.dense.weight", R::kAttnOutput, "hidden, hidden"},
    {"transformer.h.{layers}.self_attention.dense.bias", R::kAttnOutput, "hidden"},
    {"transformer.h.{layers}.post_attention_layernorm.weight", R::kNorm, "hidden"},
    {"transformer.h.{layers}.post_attention_layernorm.bias", R::kNorm, "hidden"},
    {"transformer.h.{layers}.mlp.dense_h_to_4h.weight", R::kMlpIn, "ffn, hidden"},
    {"transformer.h.{layers}.mlp.dense_h_to_4h.bias", R::kMlpIn, "ffn"},
    {"transformer.h.{layers}.mlp.dense_4h_to_h.weight", R::kMlpOut, "hidden, ffn"},
    {"transformer.h.{layers}.mlp.dense_4h_to_h.bias", R::kMlpOut, "hidden"},
    {"transformer.ln_f.weight", R::kNorm, "hidden"},
    {"transformer.ln_f.bias", R::kNorm, "hidden"},
    {"lm_head.weight", R::kLmHead, "vocab, hidden", "", L::kAll, "transformer.word_embeddings.weight"},
};

// --- xglm ----------------------------------------------------------------------------------------------------------

void read_xglm(const HfConfig& c, Dims& d, ModelFacts& m) {
  d["hidden"] = c.dim("d_model");
  d["layers"] = c.dim("num_layers");
  d["heads"] = c.dim("attention_heads");
  d["vocab"] = c.dim("vocab_size");
  d["ffn"] = c.dim("ffn_dim");
  d["head_dim"] = exact_div(c, d["hidden"], d["heads"], "d_model / attention_heads");
  // XGLMConfig leaves tie_word_embeddings at PretrainedConfig's default, true; the sinusoidal positions are a
  // buffer, not parameters.
  d.set("tied", c.flag_or("tie_word_embeddings", true));
  m.hidden = d["hidden"];
  m.n_heads = m.n_kv_heads = d["heads"];
  m.head_dim = d["head_dim"];
  m.intermediate = d["ffn"];
  m.max_positions = c.count_or("max_position_embeddings", 0);
  m.gated_mlp = false;
  m.attention_kind = "mha";
  m.position_kind = "sinusoidal";
  uniform_attention(m, d["layers"], d["heads"], d["head_dim"], d["head_dim"]);
  set_all_dense(d);
}

const std::vector<Row> kXglm = {
    {"model.embed_tokens.weight", R::kTokenEmbedding, "vocab, hidden"},
    {"model.layers.{layers}.self_attn.k_proj.weight", R::kAttnKey, "hidden, hidden"},
    {"model.layers.{layers}.self_attn.k_proj.bias", R::kAttnKey, "hidden"},
    {"model.layers.{layers}.self_attn.v_proj.weight", R::kAttnValue, "hidden, hidden"},
    {"model.layers.{layers}.self_attn.v_proj.bias", R::kAttnValue, "hidden"},
    {"model.layers.{layers}.self_attn.q_proj.weight", R::kAttnQuery, "hidden, hidden"},
    {"model.layers.{layers}.self_attn.q_proj.bias", R::kAttnQuery, "hidden"},
    {"model.layers.{layers}.self_attn.out_proj.weight", R::kAttnOutput, "hidden, hidden"},
    {"model.layers.{layers}.self_attn.out_proj.bias", R::kAttnOutput, "hidden"},
    {"model.layers.{layers}.self_attn_layer_norm.weight", R::kNorm, "hidden"},
    {"model.layers.{layers}.self_attn_layer_norm.bias", R::kNorm, "hidden"},
    {"model.layers.{layers}.fc1.weight", R::kMlpIn, "ffn, hidden"},
    {"model.layers.{layers}.fc1.bias", R::kMlpIn, "ffn"},
    {"model.layers.{layers}.fc2.weight", R::kMlpOut, "hidden, ffn"},
    {"model.layers.{layers}.fc2.bias", R::kMlpOut, "hidden"},
    {"model.layers.{layers}.final_layer_norm.weight", R::kNorm, "hidden"},
    {"model.layers.{layers}.final_layer_norm.bias", R::kNorm, "hidden"},
    {"model.layer_norm.weight", R::kNorm, "hidden"},
    {"model.layer_norm.bias", R::kNorm, "hidden"},
    {"lm_head.weight", R::kLmHead, "vocab, hidden", "", L::kAll, "model.embed_tokens.weight"},
};

// --- deepseek_v2, deepseek_v3 (multi-head latent attention + MoE with shared experts) -----------------------------

// DeepseekV2Attention / DeepseekV3Attention: multi-head latent attention (compressed q, joint compressed k/v).
const ArchTraits kDeepseekTraits{.qkv = QkvLayout::kLatent, .experts = ExpertsLayout::kFusedRouterAfter,
                                 .moe_routing_fp32 = true};

void read_deepseek(const HfConfig& c, Dims& d, ModelFacts& m) {
  const bool v3 = c.model_type() == "deepseek_v3";
  d["hidden"] = c.dim("hidden_size");
  d["layers"] = c.dim("num_hidden_layers");
  d["heads"] = c.dim("num_attention_heads");
  d["vocab"] = c.dim("vocab_size");
  d["ffn"] = c.dim("intermediate_size");
  d["kv_lora"] = c.dim("kv_lora_rank");
  d["nope"] = c.dim("qk_nope_head_dim");
  d["rope"] = c.dim("qk_rope_head_dim");
  d["v_dim"] = c.dim("v_head_dim");
  d["q_head"] = d["nope"] + d["rope"];
  d["kv_a_out"] = d["kv_lora"] + d["rope"];
  d["kv_b_out"] = times(c, "kv_b_proj's width", {d["heads"], plus(c, "kv_b_proj's width", d["nope"], d["v_dim"])});
  // q_lora_rank null means no query compression (DeepSeek-V2-Lite); absent means the config class default.
  if (c.json().contains("q_lora_rank") && c.json().at("q_lora_rank").is_null()) {
    d.set("q_lora", false);
  } else {
    d["q_lora_rank"] = c.dim_or("q_lora_rank", 1536);
    d.set("q_lora", true);
  }
  d.set("attn_bias", c.flag_or("attention_bias", false));
  d.set("tied", c.flag_or("tie_word_embeddings", false));
  const uint64_t n_routed = c.count_or("n_routed_experts", 0);
  d["experts"] = n_routed;
  d["moe_ffn"] = n_routed ? c.dim("moe_intermediate_size") : 0;
  const uint64_t n_shared = c.count_or("n_shared_experts", 0);
  d["shared_ffn"] = times(c, "moe_intermediate_size x n_shared_experts", {d["moe_ffn"], n_shared});
  d.set("shared", n_shared > 0);
  const uint64_t first_dense = c.count_or("first_k_dense_replace", 0), freq = c.dim_or("moe_layer_freq", 1);
  d.moe_layer.assign(d["layers"], false);
  for (uint64_t i = 0; i < d["layers"]; ++i) d.moe_layer[i] = n_routed > 0 && i >= first_dense && i % freq == 0;
  m.hidden = d["hidden"];
  m.n_heads = m.n_kv_heads = d["heads"];
  m.head_dim = d["q_head"];
  // only the qk_rope_head_dim part of each head is rotated (apply_rotary_pos_emb on q_pe, k_pe); the rotary
  // embedding's inv_freq has qk_rope_head_dim / 2 entries (PyTorch's buffers, transformers_params_catalog.jsonl)
  m.partial_rotary = static_cast<double>(d["rope"]) / static_cast<double>(d["q_head"]);
  m.intermediate = d["ffn"];
  m.max_positions = c.count_or("max_position_embeddings", 0);
  m.n_experts = n_routed;
  m.n_experts_active = c.count_or("num_experts_per_tok", 0);
  m.n_shared_experts = n_shared;
  m.moe_intermediate = d["moe_ffn"];
  m.routing.sigmoid = c.has("scoring_func") && c.json().at("scoring_func").is_string() &&
                      c.json().at("scoring_func").get<std::string>() == "sigmoid";
  m.routing.groups = c.dim_or("n_group", 1);
  m.routing.groups_used = c.dim_or("topk_group", 1);
  m.routing.normalise = c.flag_or("norm_topk_prob", false);
  if (c.has("routed_scaling_factor") && c.json().at("routed_scaling_factor").is_number())
    m.routing.scale = c.json().at("routed_scaling_factor").get<double>();
  m.attention_kind = "mla";
  m.position_kind = "rope";
  // the attention's per-head keys (nope + rope) and values; transformers caches the latent (mla_cache_*_dim)
  uniform_attention(m, d["layers"], d["heads"], d["q_head"], d["v_dim"]);
  m.mla_cache_k_dim = d["kv_lora"];
  m.mla_cache_v_dim = d["rope"];
  if (uint64_t mtp = c.count_or("num_nextn_predict_layers", 0); mtp > 0)
    m.notes.push_back("the published weights also ship " + std::to_string(mtp) +
                      " multi-token-prediction layer(s) (model.layers." + std::to_string(d["layers"]) +
                      "...) that transformers does not load; they are not counted here");
  (void)v3;
}

const std::vector<Row> kDeepseekAttention = {
    {"model.layers.{layers}.self_attn.q_proj.weight", R::kAttnQuery, "heads*q_head, hidden", "!q_lora"},
    {"model.layers.{layers}.self_attn.q_a_proj.weight", R::kAttnQuery, "q_lora_rank, hidden", "q_lora"},
    {"model.layers.{layers}.self_attn.q_a_layernorm.weight", R::kNorm, "q_lora_rank", "q_lora"},
    {"model.layers.{layers}.self_attn.q_b_proj.weight", R::kAttnQuery, "heads*q_head, q_lora_rank", "q_lora"},
    {"model.layers.{layers}.self_attn.kv_a_proj_with_mqa.weight", R::kAttnKvLatent, "kv_a_out, hidden"},
    {"model.layers.{layers}.self_attn.kv_a_layernorm.weight", R::kNorm, "kv_lora"},
    {"model.layers.{layers}.self_attn.kv_b_proj.weight", R::kAttnKvLatent, "kv_b_out, kv_lora"},
    {"model.layers.{layers}.self_attn.o_proj.weight", R::kAttnOutput, "hidden, heads*v_dim"},
};

// --- gpt_oss -------------------------------------------------------------------------------------------------------

void read_gpt_oss(const HfConfig& c, Dims& d, ModelFacts& m) {
  read_decoder(c, d, m, false, 64);
  if (!d.values.count("ffn")) c.fail("intermediate_size", "is missing");
  d["experts"] = c.dim("num_local_experts");
  d.set("attn_bias", c.flag_or("attention_bias", true));
  d.moe_layer.assign(d["layers"], true);
  m.n_experts = d["experts"];
  m.n_experts_active = c.dim_or("num_experts_per_tok", c.dim_or("experts_per_token", 4));
  m.moe_intermediate = d["ffn"];
  apply_layer_types(c, m, c.count_or("sliding_window", 0));
}

// gpt-oss checkpoints store experts fused (one 3-D tensor per projection), like transformers itself.
const std::vector<Row> kGptOssLayer = {
    {"model.layers.{layers}.self_attn.sinks", R::kAttnSinks, "heads"},
    {"model.layers.{layers}.self_attn.q_proj.weight", R::kAttnQuery, "q_dim, hidden"},
    {"model.layers.{layers}.self_attn.q_proj.bias", R::kAttnQuery, "q_dim", "attn_bias"},
    {"model.layers.{layers}.self_attn.k_proj.weight", R::kAttnKey, "kv_dim, hidden"},
    {"model.layers.{layers}.self_attn.k_proj.bias", R::kAttnKey, "kv_dim", "attn_bias"},
    {"model.layers.{layers}.self_attn.v_proj.weight", R::kAttnValue, "kv_dim, hidden"},
    {"model.layers.{layers}.self_attn.v_proj.bias", R::kAttnValue, "kv_dim", "attn_bias"},
    {"model.layers.{layers}.self_attn.o_proj.weight", R::kAttnOutput, "hidden, q_dim"},
    {"model.layers.{layers}.self_attn.o_proj.bias", R::kAttnOutput, "hidden", "attn_bias"},
    {"model.layers.{layers}.mlp.router.weight", R::kRouter, "experts, hidden"},
    {"model.layers.{layers}.mlp.router.bias", R::kRouter, "experts"},
    {"model.layers.{layers}.mlp.experts.gate_up_proj", R::kExpert, "experts, hidden, 2*ffn"},
    {"model.layers.{layers}.mlp.experts.gate_up_proj_bias", R::kExpert, "experts, 2*ffn"},
    {"model.layers.{layers}.mlp.experts.down_proj", R::kExpert, "experts, ffn, hidden"},
    {"model.layers.{layers}.mlp.experts.down_proj_bias", R::kExpert, "experts, hidden"},
    {"model.layers.{layers}.input_layernorm.weight", R::kNorm, "hidden"},
    {"model.layers.{layers}.post_attention_layernorm.weight", R::kNorm, "hidden"},
};

// --- qwen (Qwen-1 remote code, QWenLMHeadModel) ----------------------------------------------------------------------

// QWenBlock (remote code, modeling_qwen.py): RMSNorm, sequential, gated MLP (w1 * silu(w2), then c_proj). Its
// c_attn is one projection split into q, k and v, but Qwen-1 keeps the separate layout here: no Qwen-1 run was
// measured to check the fused replay against, and the study's and fit's estimates were made with it.
const ArchTraits kQwen1Traits{.qkv = QkvLayout::kSeparate};

void read_qwen1(const HfConfig& c, Dims& d, ModelFacts& m) {
  d["hidden"] = c.dim("hidden_size");
  d["layers"] = c.dim("num_hidden_layers");
  d["heads"] = c.dim("num_attention_heads");
  d["vocab"] = c.dim("vocab_size");
  d["head_dim"] = c.dim_or("kv_channels", exact_div(c, d["hidden"], d["heads"], "hidden_size / num_attention_heads"));
  d["proj"] = times(c, "num_attention_heads x kv_channels", {d["heads"], d["head_dim"]});
  // QWenMLP: w1 and w2 are intermediate_size / 2 wide; the config's intermediate_size is twice the real width.
  d["ffn"] = exact_div(c, c.dim("intermediate_size"), 2, "intermediate_size / 2");
  d.set("tied", c.flag_or("tie_word_embeddings", false));
  m.hidden = d["hidden"];
  m.n_heads = m.n_kv_heads = d["heads"];
  m.head_dim = d["head_dim"];
  m.intermediate = d["ffn"];
  m.max_positions = c.count_or("seq_length", c.count_or("max_position_embeddings", 0));
  m.attention_kind = "mha";
  m.position_kind = "rope";
  uniform_attention(m, d["layers"], d["heads"], d["head_dim"], d["head_dim"]);
  set_all_dense(d);
}

const std::vector<Row> kQwen1 = {
    {"transformer.wte.weight", R::kTokenEmbedding, "vocab, hidden"},
    {"transformer.h.{layers}.ln_1.weight", R::kNorm, "hidden"},
    {"transformer.h.{layers}.attn.c_attn.weight", R::kAttnQkv, "3*proj, hidden"},
    {"transformer.h.{layers}.attn.c_attn.bias", R::kAttnQkv, "3*proj"},
    {"transformer.h.{layers}.attn.c_proj.weight", R::kAttnOutput, "hidden, proj"},
    {"transformer.h.{layers}.ln_2.weight", R::kNorm, "hidden"},
    {"transformer.h.{layers}.mlp.w1.weight", R::kMlpUp, "ffn, hidden"},
    {"transformer.h.{layers}.mlp.w2.weight", R::kMlpGate, "ffn, hidden"},
    {"transformer.h.{layers}.mlp.c_proj.weight", R::kMlpDown, "hidden, ffn"},
    {"transformer.ln_f.weight", R::kNorm, "hidden"},
    {"lm_head.weight", R::kLmHead, "vocab, hidden", "", L::kAll, "transformer.wte.weight"},
};

// --- llama_moe (LLaMA-MoE-v1 remote code: modeling_llama_moe_hf.py) ------------------------------------------------

void read_llama_moe(const HfConfig& c, Dims& d, ModelFacts& m) {
  read_decoder(c, d, m, false);
  if (!d.values.count("ffn")) c.fail("intermediate_size", "is missing");
  d["experts"] = c.dim("num_experts");
  const std::string gate = c.string_or("gate_network", "mlp");
  if (gate != "mlp" && gate != "linear") c.fail("gate_network", "must be \"mlp\" or \"linear\", got \"" + gate + "\"");
  d.set("gate_mlp", gate == "mlp");
  d.set("gate_linear", gate == "linear");
  // TopKBalancedNoisyGate adds a weight_noise Linear when gate_add_noise (default true).
  d.set("gate_noise", c.flag_or("gate_add_noise", true));
  d.moe_layer.assign(d["layers"], true);
  m.n_experts = d["experts"];
  m.n_experts_active = c.dim_or("num_selects", 4);
  m.moe_intermediate = d["ffn"] / d["experts"];
}

// Experts may differ in width per layer (size_experts[layer][expert]): written by code, not a table row.
void llama_moe_experts(const HfConfig& c, const Dims& d, std::vector<TensorInfo>& out) {
  const uint64_t layers = d.values.at("layers"), experts = d.values.at("experts"), hidden = d.values.at("hidden"),
                 ffn = d.values.at("ffn");
  const DType dtype = out.empty() ? DType::F32 : out.front().dtype;
  const nlohmann::json* sizes = c.has("size_experts") ? &c.json().at("size_experts") : nullptr;
  if (sizes && (!sizes->is_array() || sizes->size() != layers))
    c.fail("size_experts", "must list one array of expert widths per layer");
  // Insert each layer's experts after that layer's gate, keeping module order.
  std::vector<TensorInfo> result;
  result.reserve(out.size() + layers * experts * 3);
  uint64_t layer = 0;
  auto add = [&](std::string name, std::vector<uint64_t> shape) {
    TensorInfo t;
    t.name = std::move(name);
    t.shape = std::move(shape);
    t.dtype = dtype;
    t.data_bytes = dtype_bytes(dtype, t.numel()).value_or(0);
    t.layer = static_cast<int64_t>(layer);
    t.role = TensorRole::kExpert;  // plain parameters of the calculator, not Linear modules: no LoRA target name
    result.push_back(std::move(t));
  };
  for (size_t i = 0; i < out.size(); ++i) {
    result.push_back(out[i]);
    const std::string prefix = "model.layers." + std::to_string(layer) + ".mlp.gate.";
    const bool last_gate_row = out[i].name.rfind(prefix, 0) == 0 &&
                               (i + 1 == out.size() || out[i + 1].name.rfind(prefix, 0) != 0);
    if (!last_gate_row) continue;
    uint64_t sum = 0;
    for (uint64_t e = 0; e < experts; ++e) {
      uint64_t w = ffn / experts;
      if (sizes) {
        const auto& row = (*sizes)[layer];
        if (!row.is_array() || row.size() != experts || !row[e].is_number_unsigned() || row[e].get<uint64_t>() == 0)
          c.fail("size_experts", "layer " + std::to_string(layer) + " must list " + std::to_string(experts) + " positive widths");
        w = row[e].get<uint64_t>();
      }
      sum += w;
      const std::string p = "model.layers." + std::to_string(layer) + ".mlp.calculator.experts.";
      add(p + "weight_gate." + std::to_string(e), {w, hidden});
      add(p + "weight_up." + std::to_string(e), {w, hidden});
      add(p + "weight_down." + std::to_string(e), {hidden, w});
    }
    if (sum != ffn)
      c.fail("size_experts", "widths of layer " + std::to_string(layer) + " sum to " + std::to_string(sum) +
                                 ", not intermediate_size " + std::to_string(ffn));
    ++layer;
  }
  out = std::move(result);
}

const std::vector<Row> kLlamaMoeGate = {
    {"model.layers.{layers}.mlp.gate.gate_network.0.weight", R::kRouter, "experts, hidden", "gate_mlp"},
    {"model.layers.{layers}.mlp.gate.gate_network.2.weight", R::kRouter, "experts, experts", "gate_mlp"},
    {"model.layers.{layers}.mlp.gate.gate_network.weight", R::kRouter, "experts, hidden", "gate_linear"},
    {"model.layers.{layers}.mlp.gate.weight_noise.weight", R::kRouter, "experts, hidden", "gate_noise"},
};

// --- idefics (IdeficsForVisionText2Text: CLIP vision tower, perceiver resampler, gated cross-attention) -------------

void read_idefics(const HfConfig& c, Dims& d, ModelFacts& m) {
  read_decoder(c, d, m, false);
  if (!d.values.count("ffn")) c.fail("intermediate_size", "is missing");
  d["extra_vocab"] = c.count_or("additional_vocab_size", 0);
  d.set("extra_vocab", d["extra_vocab"] > 0);
  set_qk_norm(d, m, c.flag_or("qk_layer_norms", false), "qk_ln");
  d["cross"] = d["layers"] / c.dim_or("cross_layer_interval", 1);
  const std::string alpha = c.string_or("alpha_type", "float");
  if (alpha != "float" && alpha != "vector") c.fail("alpha_type", "must be \"float\" or \"vector\"");
  d["alpha"] = alpha == "vector" ? d["hidden"] : 1;
  d.set("alpha_vector", alpha == "vector");
  d.set("alpha_float", alpha == "float");
  const HfConfig v = c.sub("vision_config");
  d["v_dim"] = v.dim_or("embed_dim", 768);
  d["v_layers"] = v.dim_or("num_hidden_layers", 32);
  d["v_ffn"] = v.dim_or("intermediate_size", 5120);
  d["v_patch"] = v.dim_or("patch_size", 14);
  d["v_channels"] = v.dim_or("num_channels", 3);
  const uint64_t image = v.dim_or("image_size", 224);
  if (image % d["v_patch"] != 0) v.fail("image_size", "must be a multiple of patch_size");
  d["v_positions"] = plus(v, "the patch count", times(v, "the patch count", {image / d["v_patch"], image / d["v_patch"]}), 1);
  const HfConfig p = c.sub("perceiver_config");
  d.set("resampler", c.flag_or("use_resampler", false));
  d["p_depth"] = p.dim_or("resampler_depth", 6);
  d["p_latents"] = p.dim_or("resampler_n_latents", 64);
  d["p_inner"] = times(p, "resampler_n_heads x resampler_head_dim", {p.dim_or("resampler_n_heads", 16), p.dim_or("resampler_head_dim", 96)});
  d["p_head"] = p.dim_or("resampler_head_dim", 96);
  d["p_ffn"] = 4 * d["v_dim"];
  d.set("p_qk_ln", p.flag_or("qk_layer_norms_perceiver", false));
  set_all_dense(d);
}

const std::vector<Row> kIdefics = {
    {"model.embed_tokens.weight", R::kTokenEmbedding, "vocab, hidden"},
    {"model.embed_tokens.additional_embedding.weight", R::kTokenEmbedding, "extra_vocab, hidden", "extra_vocab"},
    {"model.vision_model.embeddings.class_embedding", R::kVisionTower, "v_dim"},
    {"model.vision_model.embeddings.patch_embedding.weight", R::kVisionTower, "v_dim, v_channels, v_patch, v_patch"},
    {"model.vision_model.embeddings.position_embedding.weight", R::kVisionTower, "v_positions, v_dim"},
    {"model.vision_model.pre_layrnorm.weight", R::kVisionTower, "v_dim"},
    {"model.vision_model.pre_layrnorm.bias", R::kVisionTower, "v_dim"},
    {"model.vision_model.encoder.layers.{v_layers}.self_attn.k_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"model.vision_model.encoder.layers.{v_layers}.self_attn.k_proj.bias", R::kVisionTower, "v_dim"},
    {"model.vision_model.encoder.layers.{v_layers}.self_attn.v_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"model.vision_model.encoder.layers.{v_layers}.self_attn.v_proj.bias", R::kVisionTower, "v_dim"},
    {"model.vision_model.encoder.layers.{v_layers}.self_attn.q_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"model.vision_model.encoder.layers.{v_layers}.self_attn.q_proj.bias", R::kVisionTower, "v_dim"},
    {"model.vision_model.encoder.layers.{v_layers}.self_attn.out_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"model.vision_model.encoder.layers.{v_layers}.self_attn.out_proj.bias", R::kVisionTower, "v_dim"},
    {"model.vision_model.encoder.layers.{v_layers}.layer_norm1.weight", R::kVisionTower, "v_dim"},
    {"model.vision_model.encoder.layers.{v_layers}.layer_norm1.bias", R::kVisionTower, "v_dim"},
    {"model.vision_model.encoder.layers.{v_layers}.mlp.fc1.weight", R::kVisionTower, "v_ffn, v_dim"},
    {"model.vision_model.encoder.layers.{v_layers}.mlp.fc1.bias", R::kVisionTower, "v_ffn"},
    {"model.vision_model.encoder.layers.{v_layers}.mlp.fc2.weight", R::kVisionTower, "v_dim, v_ffn"},
    {"model.vision_model.encoder.layers.{v_layers}.mlp.fc2.bias", R::kVisionTower, "v_dim"},
    {"model.vision_model.encoder.layers.{v_layers}.layer_norm2.weight", R::kVisionTower, "v_dim"},
    {"model.vision_model.encoder.layers.{v_layers}.layer_norm2.bias", R::kVisionTower, "v_dim"},
    {"model.vision_model.post_layernorm.weight", R::kVisionTower, "v_dim"},
    {"model.vision_model.post_layernorm.bias", R::kVisionTower, "v_dim"},
    {"model.perceiver_resampler.latents", R::kVisionTower, "p_latents, v_dim", "resampler"},
    {"model.perceiver_resampler.blocks.{p_depth}.0.context_layer_norm.weight", R::kVisionTower, "v_dim", "resampler"},
    {"model.perceiver_resampler.blocks.{p_depth}.0.context_layer_norm.bias", R::kVisionTower, "v_dim", "resampler"},
    {"model.perceiver_resampler.blocks.{p_depth}.0.latents_layer_norm.weight", R::kVisionTower, "v_dim", "resampler"},
    {"model.perceiver_resampler.blocks.{p_depth}.0.latents_layer_norm.bias", R::kVisionTower, "v_dim", "resampler"},
    {"model.perceiver_resampler.blocks.{p_depth}.0.q_layer_norm.weight", R::kVisionTower, "p_head", "p_qk_ln"},
    {"model.perceiver_resampler.blocks.{p_depth}.0.q_layer_norm.bias", R::kVisionTower, "p_head", "p_qk_ln"},
    {"model.perceiver_resampler.blocks.{p_depth}.0.k_layer_norm.weight", R::kVisionTower, "p_head", "p_qk_ln"},
    {"model.perceiver_resampler.blocks.{p_depth}.0.k_layer_norm.bias", R::kVisionTower, "p_head", "p_qk_ln"},
    {"model.perceiver_resampler.blocks.{p_depth}.0.q_proj.weight", R::kVisionTower, "p_inner, v_dim", "resampler"},
    {"model.perceiver_resampler.blocks.{p_depth}.0.k_proj.weight", R::kVisionTower, "p_inner, v_dim", "resampler"},
    {"model.perceiver_resampler.blocks.{p_depth}.0.v_proj.weight", R::kVisionTower, "p_inner, v_dim", "resampler"},
    {"model.perceiver_resampler.blocks.{p_depth}.0.output_proj.weight", R::kVisionTower, "v_dim, p_inner", "resampler"},
    {"model.perceiver_resampler.blocks.{p_depth}.1.ln.weight", R::kVisionTower, "v_dim", "resampler"},
    {"model.perceiver_resampler.blocks.{p_depth}.1.ln.bias", R::kVisionTower, "v_dim", "resampler"},
    {"model.perceiver_resampler.blocks.{p_depth}.1.fc.weight", R::kVisionTower, "p_ffn, v_dim", "resampler"},
    {"model.perceiver_resampler.blocks.{p_depth}.1.c_proj.weight", R::kVisionTower, "v_dim, p_ffn", "resampler"},
    {"model.perceiver_resampler.layer_norm.weight", R::kVisionTower, "v_dim", "resampler"},
    {"model.perceiver_resampler.layer_norm.bias", R::kVisionTower, "v_dim", "resampler"},
    {"model.layers.{layers}.self_attn.q_proj.weight", R::kAttnQuery, "q_dim, hidden"},
    {"model.layers.{layers}.self_attn.k_proj.weight", R::kAttnKey, "kv_dim, hidden"},
    {"model.layers.{layers}.self_attn.v_proj.weight", R::kAttnValue, "kv_dim, hidden"},
    {"model.layers.{layers}.self_attn.o_proj.weight", R::kAttnOutput, "hidden, q_dim"},
    {"model.layers.{layers}.self_attn.q_layer_norm.weight", R::kQkNorm, "head_dim", "qk_ln"},
    {"model.layers.{layers}.self_attn.k_layer_norm.weight", R::kQkNorm, "head_dim", "qk_ln"},
    {"model.layers.{layers}.mlp.gate_proj.weight", R::kMlpGate, "ffn, hidden"},
    {"model.layers.{layers}.mlp.down_proj.weight", R::kMlpDown, "hidden, ffn"},
    {"model.layers.{layers}.mlp.up_proj.weight", R::kMlpUp, "ffn, hidden"},
    {"model.layers.{layers}.input_layernorm.weight", R::kNorm, "hidden"},
    {"model.layers.{layers}.post_attention_layernorm.weight", R::kNorm, "hidden"},
    {"model.gated_cross_attn_layers.{cross}.alpha_cross_attn", R::kCrossAttention, "1", "alpha_float"},
    {"model.gated_cross_attn_layers.{cross}.alpha_dense", R::kCrossAttention, "1", "alpha_float"},
    {"model.gated_cross_attn_layers.{cross}.alpha_cross_attn", R::kCrossAttention, "1, 1, hidden", "alpha_vector"},
    {"model.gated_cross_attn_layers.{cross}.alpha_dense", R::kCrossAttention, "1, 1, hidden", "alpha_vector"},
    {"model.gated_cross_attn_layers.{cross}.cross_attn.q_proj.weight", R::kCrossAttention, "q_dim, hidden"},
    {"model.gated_cross_attn_layers.{cross}.cross_attn.k_proj.weight", R::kCrossAttention, "q_dim, v_dim"},
    {"model.gated_cross_attn_layers.{cross}.cross_attn.v_proj.weight", R::kCrossAttention, "q_dim, v_dim"},
    {"model.gated_cross_attn_layers.{cross}.cross_attn.o_proj.weight", R::kCrossAttention, "hidden, q_dim"},
    {"model.gated_cross_attn_layers.{cross}.cross_attn.q_layer_norm.weight", R::kCrossAttention, "head_dim", "qk_ln"},
    {"model.gated_cross_attn_layers.{cross}.cross_attn.k_layer_norm.weight", R::kCrossAttention, "head_dim", "qk_ln"},
    {"model.gated_cross_attn_layers.{cross}.mlp.gate_proj.weight", R::kCrossAttention, "ffn, hidden"},
    {"model.gated_cross_attn_layers.{cross}.mlp.down_proj.weight", R::kCrossAttention, "hidden, ffn"},
    {"model.gated_cross_attn_layers.{cross}.mlp.up_proj.weight", R::kCrossAttention, "ffn, hidden"},
    {"model.gated_cross_attn_layers.{cross}.input_layernorm.weight", R::kCrossAttention, "hidden"},
    {"model.gated_cross_attn_layers.{cross}.post_attention_layernorm.weight", R::kCrossAttention, "hidden"},
    {"model.norm.weight", R::kNorm, "hidden"},
    {"lm_head.weight", R::kLmHead, "vocab, hidden", "", L::kAll, "model.embed_tokens.weight"},
    {"lm_head.additional_fc.weight", R::kLmHead, "extra_vocab, hidden", "extra_vocab"},
};

// --- olmo2 (Olmo2ForCausalLM) --------------------------------------------------------------------------------------

// modeling_olmo2.py (transformers 5.17, generated from modular_olmo2.py): Olmo2Attention is OlmoAttention (q, k,
// v, o with bias = attention_bias) plus q_norm = Olmo2RMSNorm(num_attention_heads * head_dim) and k_norm =
// Olmo2RMSNorm(num_key_value_heads * head_dim): one norm over the whole projection, not per head. Olmo2DecoderLayer
// has no input_layernorm: post_attention_layernorm and post_feedforward_layernorm normalise each sub-block's
// output before the residual add. Olmo2Config defaults: attention_bias False, tie_word_embeddings False.
// The engines replay it with the pre-norm layer's ops (two RMSNorms and a q/k norm per layer, the same tensor
// sizes); no OLMo-2 memory run has been measured yet.
void read_olmo2(const HfConfig& c, Dims& d, ModelFacts& m) {
  read_decoder(c, d, m, false);
  if (!d.values.count("ffn")) c.fail("intermediate_size", "is missing");
  const bool ab = c.flag_or("attention_bias", false);
  d.set("qkv_bias", ab);
  d.set("o_bias", ab);
  m.traits.qk_norm = true;
  set_all_dense(d);
}

const std::vector<Row> kOlmo2Layer = {
    {"model.layers.{layers}.self_attn.q_proj.weight", R::kAttnQuery, "q_dim, hidden"},
    {"model.layers.{layers}.self_attn.q_proj.bias", R::kAttnQuery, "q_dim", "qkv_bias"},
    {"model.layers.{layers}.self_attn.k_proj.weight", R::kAttnKey, "kv_dim, hidden"},
    {"model.layers.{layers}.self_attn.k_proj.bias", R::kAttnKey, "kv_dim", "qkv_bias"},
    {"model.layers.{layers}.self_attn.v_proj.weight", R::kAttnValue, "kv_dim, hidden"},
    {"model.layers.{layers}.self_attn.v_proj.bias", R::kAttnValue, "kv_dim", "qkv_bias"},
    {"model.layers.{layers}.self_attn.o_proj.weight", R::kAttnOutput, "hidden, q_dim"},
    {"model.layers.{layers}.self_attn.o_proj.bias", R::kAttnOutput, "hidden", "o_bias"},
    {"model.layers.{layers}.self_attn.q_norm.weight", R::kQkNorm, "q_dim"},
    {"model.layers.{layers}.self_attn.k_norm.weight", R::kQkNorm, "kv_dim"},
    {"model.layers.{layers}.mlp.gate_proj.weight", R::kMlpGate, "ffn, hidden"},
    {"model.layers.{layers}.mlp.up_proj.weight", R::kMlpUp, "ffn, hidden"},
    {"model.layers.{layers}.mlp.down_proj.weight", R::kMlpDown, "hidden, ffn"},
    {"model.layers.{layers}.post_attention_layernorm.weight", R::kNorm, "hidden"},
    {"model.layers.{layers}.post_feedforward_layernorm.weight", R::kNorm, "hidden"},
};

// --- gemma3 (Gemma3ForConditionalGeneration: SigLIP vision tower, projector, Gemma 3 text decoder) ----------------

// configuration_gemma3.py: Gemma3TextConfig's defaults, which the Hub's gemma-3-4b/12b/27b configs rely on (their
// text_config omits vocab_size, head counts, head_dim, ...). Applied exactly as transformers applies them, then
// read like a gemma3_text config.
// A vision-language config's text model: its config class's defaults (JSON text, parsed so that the numbers are
// JSON's unsigned integers, as a config file's are) with every non-null field of `given` over them.
nlohmann::json with_defaults(const char* defaults, const HfConfig& given) {
  nlohmann::json t = nlohmann::json::parse(defaults);
  for (const auto& [k, v] : given.json().items())
    if (!v.is_null()) t[k] = v;
  return t;
}

HfConfig gemma3_text_config(const HfConfig& c) {
  const HfConfig given = c.sub("text_config");
  nlohmann::json t = with_defaults(R"({"vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216,
      "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
      "tie_word_embeddings": true, "attention_bias": false, "sliding_window": 4096, "sliding_window_pattern": 6,
      "max_position_embeddings": 131072})", given);
  t["model_type"] = "gemma3_text";
  return HfConfig(t, given.origin());
}

// modeling_gemma3.py / modeling_siglip.py (transformers 5.17):
//  - the vision tower is SiglipVisionModel(vision_config): a Conv2d patch embedding (with bias), a learned
//    position embedding of (image_size / patch_size)^2 rows (no class token), per encoder layer layer_norm1,
//    q/k/v/out projections with biases, layer_norm2 and a 2-layer MLP (fc1, fc2, biases), a post_layernorm, and
//    the attention-pooling head unless vision_use_head is false (SiglipVisionTransformer: `use_head = True if not
//    hasattr(config, "vision_use_head")`); every Gemma 3 checkpoint sets it false.
//  - Gemma3MultiModalProjector: mm_input_projection_weight [vision hidden, text hidden] (a bare Parameter) and
//    mm_soft_emb_norm, a Gemma3RMSNorm over the vision width; its average pooling has no parameters.
//  - the language model is Gemma3TextModel; lm_head is tied to its embed_tokens.
// SiglipVisionConfig defaults: hidden 768, intermediate 3072, 12 layers, 3 channels, image 224, patch 16.
// Names are the Hub checkpoints' (language_model.model.*, vision_tower.*, multi_modal_projector.*), which
// transformers 5 maps to model.language_model.* and so on when it loads them (_checkpoint_conversion_mapping).
// The tower's weights are resident whatever the prompt; text generation runs the decoder only, which is what the
// facts (hidden, layers, heads, attention) describe.
void read_gemma3(const HfConfig& c, Dims& d, ModelFacts& m) {
  const HfConfig t = gemma3_text_config(c);
  read_gemma(t, d, m);
  if (c.has("tie_word_embeddings")) d.set("tied", c.flag_or("tie_word_embeddings", true));
  if (!t.has("hidden_activation") && !t.has("hidden_act")) m.activation = "gelu_pytorch_tanh";
  const HfConfig v = c.sub("vision_config");
  d["v_dim"] = v.dim_or("hidden_size", 768);
  d["v_dim3"] = 3 * d["v_dim"];
  d["v_ffn"] = v.dim_or("intermediate_size", 3072);
  d["v_layers"] = v.dim_or("num_hidden_layers", 12);
  d["v_channels"] = v.dim_or("num_channels", 3);
  d["v_patch"] = v.dim_or("patch_size", 16);
  const uint64_t image = v.dim_or("image_size", 224);
  if (image % d["v_patch"] != 0) v.fail("image_size", "must be a multiple of patch_size");
  d["v_positions"] = times(v, "the patch count", {image / d["v_patch"], image / d["v_patch"]});
  d.set("v_head", v.flag_or("vision_use_head", true));
  m.notes.push_back("vision tower (SigLIP, " + std::to_string(d["v_layers"]) + " layers of width " +
                    std::to_string(d["v_dim"]) + ") and projector are loaded with the model; text generation runs the "
                    "language model only");
}

const std::vector<Row> kGemma3Vlm = {
    {"language_model.model.embed_tokens.weight", R::kTokenEmbedding, "vocab, hidden"},
    {"language_model.model.layers.{layers}.self_attn.q_proj.weight", R::kAttnQuery, "q_dim, hidden"},
    {"language_model.model.layers.{layers}.self_attn.q_proj.bias", R::kAttnQuery, "q_dim", "qkv_bias"},
    {"language_model.model.layers.{layers}.self_attn.k_proj.weight", R::kAttnKey, "kv_dim, hidden"},
    {"language_model.model.layers.{layers}.self_attn.k_proj.bias", R::kAttnKey, "kv_dim", "qkv_bias"},
    {"language_model.model.layers.{layers}.self_attn.v_proj.weight", R::kAttnValue, "kv_dim, hidden"},
    {"language_model.model.layers.{layers}.self_attn.v_proj.bias", R::kAttnValue, "kv_dim", "qkv_bias"},
    {"language_model.model.layers.{layers}.self_attn.o_proj.weight", R::kAttnOutput, "hidden, q_dim"},
    {"language_model.model.layers.{layers}.self_attn.o_proj.bias", R::kAttnOutput, "hidden", "o_bias"},
    {"language_model.model.layers.{layers}.self_attn.q_norm.weight", R::kQkNorm, "head_dim"},
    {"language_model.model.layers.{layers}.self_attn.k_norm.weight", R::kQkNorm, "head_dim"},
    {"language_model.model.layers.{layers}.mlp.gate_proj.weight", R::kMlpGate, "ffn, hidden"},
    {"language_model.model.layers.{layers}.mlp.up_proj.weight", R::kMlpUp, "ffn, hidden"},
    {"language_model.model.layers.{layers}.mlp.down_proj.weight", R::kMlpDown, "hidden, ffn"},
    {"language_model.model.layers.{layers}.input_layernorm.weight", R::kNorm, "hidden"},
    {"language_model.model.layers.{layers}.post_attention_layernorm.weight", R::kNorm, "hidden"},
    {"language_model.model.layers.{layers}.pre_feedforward_layernorm.weight", R::kNorm, "hidden"},
    {"language_model.model.layers.{layers}.post_feedforward_layernorm.weight", R::kNorm, "hidden"},
    {"language_model.model.norm.weight", R::kNorm, "hidden"},
    {"language_model.lm_head.weight", R::kLmHead, "vocab, hidden", "", L::kAll, "language_model.model.embed_tokens.weight"},
    {"multi_modal_projector.mm_input_projection_weight", R::kVisionTower, "v_dim, hidden"},
    {"multi_modal_projector.mm_soft_emb_norm.weight", R::kVisionTower, "v_dim"},
    {"vision_tower.vision_model.embeddings.patch_embedding.weight", R::kVisionTower, "v_dim, v_channels, v_patch, v_patch"},
    {"vision_tower.vision_model.embeddings.patch_embedding.bias", R::kVisionTower, "v_dim"},
    {"vision_tower.vision_model.embeddings.position_embedding.weight", R::kVisionTower, "v_positions, v_dim"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.layer_norm1.weight", R::kVisionTower, "v_dim"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.layer_norm1.bias", R::kVisionTower, "v_dim"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.self_attn.k_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.self_attn.k_proj.bias", R::kVisionTower, "v_dim"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.self_attn.v_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.self_attn.v_proj.bias", R::kVisionTower, "v_dim"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.self_attn.q_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.self_attn.q_proj.bias", R::kVisionTower, "v_dim"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.self_attn.out_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.self_attn.out_proj.bias", R::kVisionTower, "v_dim"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.layer_norm2.weight", R::kVisionTower, "v_dim"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.layer_norm2.bias", R::kVisionTower, "v_dim"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.mlp.fc1.weight", R::kVisionTower, "v_ffn, v_dim"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.mlp.fc1.bias", R::kVisionTower, "v_ffn"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.mlp.fc2.weight", R::kVisionTower, "v_dim, v_ffn"},
    {"vision_tower.vision_model.encoder.layers.{v_layers}.mlp.fc2.bias", R::kVisionTower, "v_dim"},
    {"vision_tower.vision_model.post_layernorm.weight", R::kVisionTower, "v_dim"},
    {"vision_tower.vision_model.post_layernorm.bias", R::kVisionTower, "v_dim"},
    {"vision_tower.vision_model.head.probe", R::kVisionTower, "1, 1, v_dim", "v_head"},
    {"vision_tower.vision_model.head.attention.in_proj_weight", R::kVisionTower, "v_dim3, v_dim", "v_head"},
    {"vision_tower.vision_model.head.attention.in_proj_bias", R::kVisionTower, "v_dim3", "v_head"},
    {"vision_tower.vision_model.head.attention.out_proj.weight", R::kVisionTower, "v_dim, v_dim", "v_head"},
    {"vision_tower.vision_model.head.attention.out_proj.bias", R::kVisionTower, "v_dim", "v_head"},
    {"vision_tower.vision_model.head.layernorm.weight", R::kVisionTower, "v_dim", "v_head"},
    {"vision_tower.vision_model.head.layernorm.bias", R::kVisionTower, "v_dim", "v_head"},
    {"vision_tower.vision_model.head.mlp.fc1.weight", R::kVisionTower, "v_ffn, v_dim", "v_head"},
    {"vision_tower.vision_model.head.mlp.fc1.bias", R::kVisionTower, "v_ffn", "v_head"},
    {"vision_tower.vision_model.head.mlp.fc2.weight", R::kVisionTower, "v_dim, v_ffn", "v_head"},
    {"vision_tower.vision_model.head.mlp.fc2.bias", R::kVisionTower, "v_dim", "v_head"},
};

// --- qwen2_5_vl (Qwen2_5_VLForConditionalGeneration: Qwen2.5-VL's vision transformer and merger, a Qwen2 decoder) --

// The decoder's fields: a transformers 5 config nests them in text_config, the Hub's 4.x files keep them at the top
// level beside vision_config; Qwen2_5_VLTextConfig's defaults (configuration_qwen2_5_vl.py) fill the rest. Read as
// a qwen2 config: q/k/v with biases, o_proj without (Qwen2_5_VLAttention).
HfConfig qwen2_5_vl_text_config(const HfConfig& c) {
  nlohmann::json t = nlohmann::json::parse(R"({"vocab_size": 152064, "hidden_size": 8192, "intermediate_size": 29568,
      "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8, "tie_word_embeddings": false,
      "max_position_embeddings": 32768})");
  for (const auto& [k, v] : c.json().items())
    if (!v.is_null() && k != "vision_config" && k != "text_config") t[k] = v;
  const HfConfig nested = c.sub("text_config");
  for (const auto& [k, v] : nested.json().items())
    if (!v.is_null()) t[k] = v;
  t["model_type"] = "qwen2";
  return HfConfig(t, c.origin());
}

// modeling_qwen2_5_vl.py (transformers 5.17): `visual` is Qwen2_5_VisionTransformerPretrainedModel:
//  - patch_embed.proj: Conv3d(in_channels, hidden, kernel (temporal_patch_size, patch_size, patch_size)), no bias;
//  - per block (depth): norm1, norm2 (Qwen2RMSNorm, weight only), attn.qkv Linear(hidden, 3 x hidden) and attn.proj
//    Linear(hidden, hidden), both with bias, and Qwen2_5_VLMLP gate/up/down (hidden <-> intermediate) with bias;
//  - merger (Qwen2_5_VLPatchMerger): ln_q RMSNorm(hidden), mlp.0 Linear(4h, 4h) and mlp.2 Linear(4h, out_hidden_size)
//    with biases, h the hidden width times spatial_merge_size^2 / 4 (4h = hidden x spatial_merge_size^2).
// Qwen2_5_VLVisionConfig defaults: depth 32, hidden 3584, intermediate 3420, 3 channels, patch 14, temporal patch 2,
// spatial merge 2, out_hidden_size 3584. The rotary tables are buffers. Hub checkpoint names (visual.*, model.*,
// lm_head); transformers 5 loads them as model.visual.* and model.language_model.*.
void read_qwen2_5_vl(const HfConfig& c, Dims& d, ModelFacts& m) {
  read_llama(qwen2_5_vl_text_config(c), d, m);
  const HfConfig v = c.sub("vision_config");
  d["v_dim"] = v.dim_or("hidden_size", 3584);
  d["v_dim3"] = 3 * d["v_dim"];
  d["v_ffn"] = v.dim_or("intermediate_size", 3420);
  d["v_layers"] = v.dim_or("depth", 32);
  d["v_channels"] = v.dim_or("in_channels", v.dim_or("in_chans", 3));
  d["v_patch"] = v.dim_or("patch_size", 14);
  d["v_tpatch"] = v.dim_or("temporal_patch_size", 2);
  const uint64_t merge = v.dim_or("spatial_merge_size", 2);
  d["v_merge"] = times(v, "the merged patch width", {d["v_dim"], merge, merge});
  d["v_out"] = v.dim_or("out_hidden_size", 3584);
  m.notes.push_back("vision transformer (" + std::to_string(d["v_layers"]) + " blocks of width " +
                    std::to_string(d["v_dim"]) + ") and merger are loaded with the model; text generation runs the "
                    "language model only");
}

const std::vector<Row> kQwen25VlVision = {
    {"visual.patch_embed.proj.weight", R::kVisionTower, "v_dim, v_channels, v_tpatch, v_patch, v_patch"},
    {"visual.blocks.{v_layers}.norm1.weight", R::kVisionTower, "v_dim"},
    {"visual.blocks.{v_layers}.norm2.weight", R::kVisionTower, "v_dim"},
    {"visual.blocks.{v_layers}.attn.qkv.weight", R::kVisionTower, "v_dim3, v_dim"},
    {"visual.blocks.{v_layers}.attn.qkv.bias", R::kVisionTower, "v_dim3"},
    {"visual.blocks.{v_layers}.attn.proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"visual.blocks.{v_layers}.attn.proj.bias", R::kVisionTower, "v_dim"},
    {"visual.blocks.{v_layers}.mlp.gate_proj.weight", R::kVisionTower, "v_ffn, v_dim"},
    {"visual.blocks.{v_layers}.mlp.gate_proj.bias", R::kVisionTower, "v_ffn"},
    {"visual.blocks.{v_layers}.mlp.up_proj.weight", R::kVisionTower, "v_ffn, v_dim"},
    {"visual.blocks.{v_layers}.mlp.up_proj.bias", R::kVisionTower, "v_ffn"},
    {"visual.blocks.{v_layers}.mlp.down_proj.weight", R::kVisionTower, "v_dim, v_ffn"},
    {"visual.blocks.{v_layers}.mlp.down_proj.bias", R::kVisionTower, "v_dim"},
    {"visual.merger.ln_q.weight", R::kVisionTower, "v_dim"},
    {"visual.merger.mlp.0.weight", R::kVisionTower, "v_merge, v_merge"},
    {"visual.merger.mlp.0.bias", R::kVisionTower, "v_merge"},
    {"visual.merger.mlp.2.weight", R::kVisionTower, "v_out, v_merge"},
    {"visual.merger.mlp.2.bias", R::kVisionTower, "v_out"},
};

// --- mistral3 (Mistral3ForConditionalGeneration: Pixtral vision encoder, projector, a Mistral decoder) --------------

// configuration_mistral3.py: text_config defaults to MistralConfig's (hidden 4096, MLP 14336, 32 layers, 32 heads,
// 8 KV heads, vocabulary 32000, untied), vision_config to PixtralVisionConfig's (hidden 1024, MLP 4096, 24 layers,
// 3 channels, patch 16); spatial_merge_size 2, multimodal_projector_bias false, vision_feature_layer -1.
HfConfig mistral3_text_config(const HfConfig& c) {
  const HfConfig given = c.sub("text_config");
  nlohmann::json t = with_defaults(R"({"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336,
      "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "tie_word_embeddings": false,
      "model_type": "mistral"})", given);
  const std::string mt = t["model_type"].is_string() ? t["model_type"].get<std::string>() : "";
  if (mt != "mistral")
    given.fail("model_type", "is '" + mt + "': llmem reads a Mistral-3 text model of type mistral only");
  return HfConfig(t, given.origin());
}

// modeling_mistral3.py / modeling_pixtral.py (transformers 5.17):
//  - vision_tower (PixtralVisionModel): patch_conv Conv2d(channels, hidden, patch, patch) without bias, ln_pre
//    (RMSNorm), per layer attention_norm, attention q/k/v/o (no bias), ffn_norm and feed_forward gate/up/down (no
//    bias); the 2-D rotary table is a buffer;
//  - multi_modal_projector: norm (RMSNorm over the vision width), patch_merger.merging_layer Linear(hidden x
//    spatial_merge_size^2, hidden) without bias, linear_1 Linear(vision hidden x feature layers, text hidden) and
//    linear_2 Linear(text hidden, text hidden), with bias when multimodal_projector_bias;
//  - the language model is the text config's decoder (MistralModel) with its own lm_head.
// Hub checkpoint names (language_model.model.*, language_model.lm_head, vision_tower.*, multi_modal_projector.*).
void read_mistral3(const HfConfig& c, Dims& d, ModelFacts& m) {
  read_llama(mistral3_text_config(c), d, m);
  // Mistral3Config leaves tie_word_embeddings to PretrainedConfig's default, true: transformers 5.17 ties lm_head to
  // the text embedding when the top-level config does not say (PyTorch counts 23,340,272,640 parameters for
  // Mistral-Small-3.1-24B's config, one 131,072 x 5,120 matrix fewer than an untied count:
  // bench/data/transformers_params_vlm.jsonl); the checkpoint's own lm_head is then not kept
  if (c.has("tie_word_embeddings")) d.set("tied", c.flag_or("tie_word_embeddings", true));
  else if (!c.sub("text_config").has("tie_word_embeddings")) d.set("tied", true);
  const HfConfig v = c.sub("vision_config");
  d["v_dim"] = v.dim_or("hidden_size", 1024);
  d["v_ffn"] = v.dim_or("intermediate_size", 4096);
  d["v_layers"] = v.dim_or("num_hidden_layers", 24);
  d["v_channels"] = v.dim_or("num_channels", 3);
  d["v_patch"] = v.dim_or("patch_size", 16);
  const uint64_t merge = c.dim_or("spatial_merge_size", 2);
  d["v_merge"] = times(c, "the merged patch width", {d["v_dim"], merge, merge});
  uint64_t feature_layers = 1;
  if (c.has("vision_feature_layer") && c.json().at("vision_feature_layer").is_array())
    feature_layers = c.json().at("vision_feature_layer").size();
  if (feature_layers == 0) c.fail("vision_feature_layer", "must name at least one layer");
  d["v_features"] = times(c, "the projector's input width", {d["v_dim"], feature_layers});
  d.set("proj_bias", c.flag_or("multimodal_projector_bias", false));
  m.notes.push_back("vision encoder (Pixtral, " + std::to_string(d["v_layers"]) + " layers of width " +
                    std::to_string(d["v_dim"]) + ") and projector are loaded with the model; text generation runs the "
                    "language model only");
}

const std::vector<Row> kMistral3Vlm = {
    {"language_model.model.embed_tokens.weight", R::kTokenEmbedding, "vocab, hidden"},
    {"language_model.model.layers.{layers}.self_attn.q_proj.weight", R::kAttnQuery, "q_dim, hidden"},
    {"language_model.model.layers.{layers}.self_attn.k_proj.weight", R::kAttnKey, "kv_dim, hidden"},
    {"language_model.model.layers.{layers}.self_attn.v_proj.weight", R::kAttnValue, "kv_dim, hidden"},
    {"language_model.model.layers.{layers}.self_attn.o_proj.weight", R::kAttnOutput, "hidden, q_dim"},
    {"language_model.model.layers.{layers}.mlp.gate_proj.weight", R::kMlpGate, "ffn, hidden"},
    {"language_model.model.layers.{layers}.mlp.up_proj.weight", R::kMlpUp, "ffn, hidden"},
    {"language_model.model.layers.{layers}.mlp.down_proj.weight", R::kMlpDown, "hidden, ffn"},
    {"language_model.model.layers.{layers}.input_layernorm.weight", R::kNorm, "hidden"},
    {"language_model.model.layers.{layers}.post_attention_layernorm.weight", R::kNorm, "hidden"},
    {"language_model.model.norm.weight", R::kNorm, "hidden"},
    {"language_model.lm_head.weight", R::kLmHead, "vocab, hidden", "", L::kAll, "language_model.model.embed_tokens.weight"},
    {"vision_tower.patch_conv.weight", R::kVisionTower, "v_dim, v_channels, v_patch, v_patch"},
    {"vision_tower.ln_pre.weight", R::kVisionTower, "v_dim"},
    {"vision_tower.transformer.layers.{v_layers}.attention_norm.weight", R::kVisionTower, "v_dim"},
    {"vision_tower.transformer.layers.{v_layers}.attention.q_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_tower.transformer.layers.{v_layers}.attention.k_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_tower.transformer.layers.{v_layers}.attention.v_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_tower.transformer.layers.{v_layers}.attention.o_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_tower.transformer.layers.{v_layers}.ffn_norm.weight", R::kVisionTower, "v_dim"},
    {"vision_tower.transformer.layers.{v_layers}.feed_forward.gate_proj.weight", R::kVisionTower, "v_ffn, v_dim"},
    {"vision_tower.transformer.layers.{v_layers}.feed_forward.up_proj.weight", R::kVisionTower, "v_ffn, v_dim"},
    {"vision_tower.transformer.layers.{v_layers}.feed_forward.down_proj.weight", R::kVisionTower, "v_dim, v_ffn"},
    {"multi_modal_projector.norm.weight", R::kVisionTower, "v_dim"},
    {"multi_modal_projector.patch_merger.merging_layer.weight", R::kVisionTower, "v_dim, v_merge"},
    {"multi_modal_projector.linear_1.weight", R::kVisionTower, "hidden, v_features"},
    {"multi_modal_projector.linear_1.bias", R::kVisionTower, "hidden", "proj_bias"},
    {"multi_modal_projector.linear_2.weight", R::kVisionTower, "hidden, hidden"},
    {"multi_modal_projector.linear_2.bias", R::kVisionTower, "hidden", "proj_bias"},
};

// --- mllama (MllamaForConditionalGeneration: Llama 3.2 Vision's tiled ViT, projector, a Llama 3 decoder whose
// cross-attention layers read the image) ---------------------------------------------------------------------------

// configuration_mllama.py (transformers 5.17): MllamaTextConfig's and MllamaVisionConfig's defaults, which are the
// 11B model's; a Hub config names them all, a hand-written one may not. Applied as transformers applies them.
HfConfig mllama_text_config(const HfConfig& c) {
  const HfConfig given = c.sub("text_config");
  nlohmann::json t = with_defaults(R"({"vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
      "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 8, "tie_word_embeddings": false,
      "max_position_embeddings": 131072, "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38]})", given);
  t["model_type"] = "mllama_text_model";
  return HfConfig(t, given.origin());
}

// modeling_mllama.py (transformers 5.17):
//  - MllamaVisionModel: a Conv2d patch embedding without bias, a class embedding, a gated position embedding
//    (MllamaPrecomputedPositionEmbedding: gate [1], embedding [patches + 1, width], tile_embedding, an Embedding of
//    (aspect ratios + 1) rows of max_num_tiles x (patches + 1) x width), gated pre- and post-tile embeddings
//    (MllamaPrecomputedAspectRatioEmbedding: an Embedding of (aspect ratios + 1) rows of max_num_tiles x width, and
//    a gate), LayerNorms before and after, a local encoder of num_hidden_layers and a gated global encoder of
//    num_global_layers (gate_attn, gate_ffn per layer). Each encoder layer: q/k/v/o without bias, an MLP fc1/fc2
//    with biases, two LayerNorms.
//  - MllamaMultiModalProjector: Linear(vision_output_dim, text hidden) with bias.
//  - MllamaTextModel: embed_tokens has vocab_size + 8 rows (the image tokens); a layer listed in
//    cross_attention_layers is MllamaCrossAttentionDecoderLayer (cross_attn q/k/v/o, per-head q_norm and k_norm,
//    cross_attn_attn_gate and cross_attn_mlp_gate, the MLP and two RMSNorms), every other a Llama decoder layer.
//    The LM head is separate (vocab_size rows).
// A text-only forward skips the cross-attention layers whole (MllamaTextModel.forward), so text generation runs and
// caches the self-attention layers only, with every weight resident. Hub checkpoint names (vision_model.*,
// language_model.model.*, language_model.lm_head, multi_modal_projector.*).
void read_mllama(const HfConfig& c, Dims& d, ModelFacts& m) {
  const HfConfig t = mllama_text_config(c);
  read_decoder(t, d, m, false);
  d["vocab_embed"] = d["vocab"] + 8;
  d.cross_layer.assign(d["layers"], false);
  const auto& list = t.json().at("cross_attention_layers");
  if (!list.is_array()) t.fail("cross_attention_layers", "must be a list of layer indices");
  for (const auto& x : list) {
    if (!x.is_number_unsigned() || x.get<uint64_t>() >= d["layers"])
      t.fail("cross_attention_layers", "must be a list of layer indices below num_hidden_layers");
    d.cross_layer[x.get<uint64_t>()] = true;
  }
  uint64_t n_cross = 0;
  for (uint64_t i = 0; i < d["layers"]; ++i) {
    if (!d.cross_layer[i]) continue;
    ++n_cross;
    m.attention[i].caches_kv = false;
    m.attention[i].cross_attention_only = true;
  }
  if (n_cross == d["layers"]) t.fail("cross_attention_layers", "leaves no self-attention layer");
  set_all_dense(d);
  const HfConfig v = c.sub("vision_config");
  d["v_dim"] = v.dim_or("hidden_size", 1280);
  d["v_ffn"] = v.dim_or("intermediate_size", 5120);
  d["v_layers"] = v.dim_or("num_hidden_layers", 32);
  d["v_global"] = v.dim_or("num_global_layers", 8);
  d["v_channels"] = v.dim_or("num_channels", 3);
  d["v_patch"] = v.dim_or("patch_size", 14);
  const uint64_t image = v.dim_or("image_size", 448);
  if (image % d["v_patch"] != 0) v.fail("image_size", "must be a multiple of patch_size");
  d["v_positions"] = plus(v, "the patch count", times(v, "the patch count", {image / d["v_patch"], image / d["v_patch"]}), 1);
  d["v_tiles"] = v.dim_or("max_num_tiles", 4);
  uint64_t ratios = 8;  // MllamaVisionConfig's default list: [1,1] [1,2] [1,3] [1,4] [2,1] [2,2] [3,1] [4,1]
  if (v.has("supported_aspect_ratios")) {
    const auto& r = v.json().at("supported_aspect_ratios");
    if (!r.is_array() || r.empty()) v.fail("supported_aspect_ratios", "must be a non-empty list of [w, h] pairs");
    ratios = r.size();
  }
  d["v_ratio_ids"] = ratios + 1;
  d["v_tile_width"] = times(v, "max_num_tiles x hidden_size", {d["v_tiles"], d["v_dim"]});
  d["v_tile_positions"] = times(v, "the tile position embedding", {d["v_tiles"], d["v_positions"], d["v_dim"]});
  d["v_out"] = v.dim_or("vision_output_dim", 7680);
  m.notes.push_back("vision tower (" + std::to_string(d["v_layers"]) + " + " + std::to_string(d["v_global"]) +
                    " layers of width " + std::to_string(d["v_dim"]) + ") and projector are loaded with the model; " +
                    std::to_string(n_cross) + " of " + std::to_string(d["layers"]) +
                    " decoder layers attend to the image only: text generation skips them and caches the other " +
                    std::to_string(d["layers"] - n_cross));
}

const std::vector<Row> kMllama = {
    {"language_model.model.embed_tokens.weight", R::kTokenEmbedding, "vocab_embed, hidden"},
    {"language_model.model.layers.{layers}.self_attn.q_proj.weight", R::kAttnQuery, "q_dim, hidden", "", L::kSelfAttn},
    {"language_model.model.layers.{layers}.self_attn.k_proj.weight", R::kAttnKey, "kv_dim, hidden", "", L::kSelfAttn},
    {"language_model.model.layers.{layers}.self_attn.v_proj.weight", R::kAttnValue, "kv_dim, hidden", "", L::kSelfAttn},
    {"language_model.model.layers.{layers}.self_attn.o_proj.weight", R::kAttnOutput, "hidden, q_dim", "", L::kSelfAttn},
    {"language_model.model.layers.{layers}.cross_attn.q_proj.weight", R::kCrossAttention, "q_dim, hidden", "", L::kCrossAttn},
    {"language_model.model.layers.{layers}.cross_attn.k_proj.weight", R::kCrossAttention, "kv_dim, hidden", "", L::kCrossAttn},
    {"language_model.model.layers.{layers}.cross_attn.v_proj.weight", R::kCrossAttention, "kv_dim, hidden", "", L::kCrossAttn},
    {"language_model.model.layers.{layers}.cross_attn.o_proj.weight", R::kCrossAttention, "hidden, q_dim", "", L::kCrossAttn},
    {"language_model.model.layers.{layers}.cross_attn.q_norm.weight", R::kCrossAttention, "head_dim", "", L::kCrossAttn},
    {"language_model.model.layers.{layers}.cross_attn.k_norm.weight", R::kCrossAttention, "head_dim", "", L::kCrossAttn},
    {"language_model.model.layers.{layers}.input_layernorm.weight", R::kNorm, "hidden", "", L::kCrossAttn},
    {"language_model.model.layers.{layers}.cross_attn_attn_gate", R::kCrossAttention, "1", "", L::kCrossAttn},
    {"language_model.model.layers.{layers}.mlp.gate_proj.weight", R::kMlpGate, "ffn, hidden"},
    {"language_model.model.layers.{layers}.mlp.up_proj.weight", R::kMlpUp, "ffn, hidden"},
    {"language_model.model.layers.{layers}.mlp.down_proj.weight", R::kMlpDown, "hidden, ffn"},
    {"language_model.model.layers.{layers}.input_layernorm.weight", R::kNorm, "hidden", "", L::kSelfAttn},
    {"language_model.model.layers.{layers}.post_attention_layernorm.weight", R::kNorm, "hidden"},
    {"language_model.model.layers.{layers}.cross_attn_mlp_gate", R::kCrossAttention, "1", "", L::kCrossAttn},
    {"language_model.model.norm.weight", R::kNorm, "hidden"},
    {"language_model.lm_head.weight", R::kLmHead, "vocab, hidden"},
    {"multi_modal_projector.weight", R::kVisionTower, "hidden, v_out"},
    {"multi_modal_projector.bias", R::kVisionTower, "hidden"},
    {"vision_model.class_embedding", R::kVisionTower, "v_dim"},
    {"vision_model.patch_embedding.weight", R::kVisionTower, "v_dim, v_channels, v_patch, v_patch"},
    {"vision_model.gated_positional_embedding.gate", R::kVisionTower, "1"},
    {"vision_model.gated_positional_embedding.embedding", R::kVisionTower, "v_positions, v_dim"},
    {"vision_model.gated_positional_embedding.tile_embedding.weight", R::kVisionTower, "v_ratio_ids, v_tile_positions"},
    {"vision_model.pre_tile_positional_embedding.gate", R::kVisionTower, "1"},
    {"vision_model.pre_tile_positional_embedding.embedding.weight", R::kVisionTower, "v_ratio_ids, v_tile_width"},
    {"vision_model.post_tile_positional_embedding.gate", R::kVisionTower, "1"},
    {"vision_model.post_tile_positional_embedding.embedding.weight", R::kVisionTower, "v_ratio_ids, v_tile_width"},
    {"vision_model.layernorm_pre.weight", R::kVisionTower, "v_dim"},
    {"vision_model.layernorm_pre.bias", R::kVisionTower, "v_dim"},
    {"vision_model.layernorm_post.weight", R::kVisionTower, "v_dim"},
    {"vision_model.layernorm_post.bias", R::kVisionTower, "v_dim"},
    {"vision_model.transformer.layers.{v_layers}.self_attn.q_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_model.transformer.layers.{v_layers}.self_attn.k_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_model.transformer.layers.{v_layers}.self_attn.v_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_model.transformer.layers.{v_layers}.self_attn.o_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_model.transformer.layers.{v_layers}.mlp.fc1.weight", R::kVisionTower, "v_ffn, v_dim"},
    {"vision_model.transformer.layers.{v_layers}.mlp.fc1.bias", R::kVisionTower, "v_ffn"},
    {"vision_model.transformer.layers.{v_layers}.mlp.fc2.weight", R::kVisionTower, "v_dim, v_ffn"},
    {"vision_model.transformer.layers.{v_layers}.mlp.fc2.bias", R::kVisionTower, "v_dim"},
    {"vision_model.transformer.layers.{v_layers}.input_layernorm.weight", R::kVisionTower, "v_dim"},
    {"vision_model.transformer.layers.{v_layers}.input_layernorm.bias", R::kVisionTower, "v_dim"},
    {"vision_model.transformer.layers.{v_layers}.post_attention_layernorm.weight", R::kVisionTower, "v_dim"},
    {"vision_model.transformer.layers.{v_layers}.post_attention_layernorm.bias", R::kVisionTower, "v_dim"},
    {"vision_model.global_transformer.layers.{v_global}.self_attn.q_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_model.global_transformer.layers.{v_global}.self_attn.k_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_model.global_transformer.layers.{v_global}.self_attn.v_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_model.global_transformer.layers.{v_global}.self_attn.o_proj.weight", R::kVisionTower, "v_dim, v_dim"},
    {"vision_model.global_transformer.layers.{v_global}.mlp.fc1.weight", R::kVisionTower, "v_ffn, v_dim"},
    {"vision_model.global_transformer.layers.{v_global}.mlp.fc1.bias", R::kVisionTower, "v_ffn"},
    {"vision_model.global_transformer.layers.{v_global}.mlp.fc2.weight", R::kVisionTower, "v_dim, v_ffn"},
    {"vision_model.global_transformer.layers.{v_global}.mlp.fc2.bias", R::kVisionTower, "v_dim"},
    {"vision_model.global_transformer.layers.{v_global}.input_layernorm.weight", R::kVisionTower, "v_dim"},
    {"vision_model.global_transformer.layers.{v_global}.input_layernorm.bias", R::kVisionTower, "v_dim"},
    {"vision_model.global_transformer.layers.{v_global}.post_attention_layernorm.weight", R::kVisionTower, "v_dim"},
    {"vision_model.global_transformer.layers.{v_global}.post_attention_layernorm.bias", R::kVisionTower, "v_dim"},
    {"vision_model.global_transformer.layers.{v_global}.gate_attn", R::kVisionTower, "1"},
    {"vision_model.global_transformer.layers.{v_global}.gate_ffn", R::kVisionTower, "1"},
};

const std::vector<Family> kFamilies = {
    {"llama", {"llama", "mistral", "qwen2", "qwen3", "granite"},
     {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "GraniteForCausalLM"},
     kLlamaTraits, read_llama,
     cat({kLlamaEmbed, kLlamaAttention, kLlamaMlp, kLlamaNorms, kLlamaHead})},
    {"gemma", {"gemma", "gemma2", "gemma3_text"}, {"GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM"},
     kGemmaTraits, read_gemma, cat({kLlamaEmbed, kLlamaAttention, kLlamaMlp, kLlamaNorms, kLlamaHead})},
    {"mixtral", {"mixtral"}, {"MixtralForCausalLM"}, ArchTraits{.experts = ExpertsLayout::kFusedRouterFirst}, read_mixtral,
     cat({kLlamaEmbed, kLlamaAttention, kMixtralMoe, kLlamaNorms, kLlamaHead})},
    {"qwen3_moe", {"qwen3_moe"}, {"Qwen3MoeForCausalLM"}, ArchTraits{.experts = ExpertsLayout::kFusedRouterAfter}, read_qwen3_moe,
     cat({kLlamaEmbed, kLlamaAttention, kLlamaMlp, kQwenMoe, kLlamaNorms, kLlamaHead})},
    {"deepseek", {"deepseek_v2", "deepseek_v3"}, {"DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM"}, kDeepseekTraits,
     read_deepseek, cat({kLlamaEmbed, kDeepseekAttention, kLlamaMlp, kQwenMoe, kLlamaNorms, kLlamaHead})},
    {"phi3", {"phi3"}, {"Phi3ForCausalLM"}, kPhi3Traits, read_phi3, cat({kLlamaEmbed, kPhi3Layer, kLlamaHead})},
    {"phi", {"phi"}, {"PhiForCausalLM"}, kPhiTraits, read_phi, kPhi},
    {"gpt2", {"gpt2"}, {"GPT2LMHeadModel"}, kGpt2Traits, read_gpt2, kGpt2},
    {"gpt_neox", {"gpt_neox"}, {"GPTNeoXForCausalLM"}, kGptNeoxTraits, read_gpt_neox, kGptNeox},
    {"falcon", {"falcon", "RefinedWeb", "RefinedWebModel"}, {"FalconForCausalLM"}, kFalconTraits, read_falcon, kFalcon},
    {"opt", {"opt"}, {"OPTForCausalLM"}, kLayerNormTraits, read_opt, kOpt},
    {"bloom", {"bloom"}, {"BloomForCausalLM"}, kBloomTraits, read_bloom, kBloom},
    {"xglm", {"xglm"}, {"XGLMForCausalLM"}, kLayerNormTraits, read_xglm, kXglm},
    {"gpt_oss", {"gpt_oss"}, {"GptOssForCausalLM"}, kGptOssTraits, read_gpt_oss,
     cat({kLlamaEmbed, kGptOssLayer, kLlamaHead})},
    {"qwen", {"qwen"}, {"QWenLMHeadModel"}, kQwen1Traits, read_qwen1, kQwen1},
    {"llama_moe", {"llama_moe"}, {"LlamaMoEForCausalLM"}, kLlamaTraits, read_llama_moe,
     cat({kLlamaEmbed, kLlamaAttention, kLlamaMoeGate, kLlamaNorms, kLlamaHead}), llama_moe_experts},
    {"idefics", {"idefics"}, {"IdeficsForVisionText2Text"}, kLlamaTraits, read_idefics, kIdefics},
    {"olmo2", {"olmo2"}, {"Olmo2ForCausalLM"}, kLlamaTraits, read_olmo2, cat({kLlamaEmbed, kOlmo2Layer, kLlamaHead})},
    {"gemma3", {"gemma3"}, {"Gemma3ForConditionalGeneration"}, kGemmaTraits, read_gemma3, kGemma3Vlm, nullptr,
     "text_config"},
    {"qwen2_5_vl", {"qwen2_5_vl"}, {"Qwen2_5_VLForConditionalGeneration"}, kLlamaTraits, read_qwen2_5_vl,
     cat({kLlamaEmbed, kLlamaAttention, kLlamaMlp, kLlamaNorms, kLlamaHead, kQwen25VlVision}), nullptr, "text_config"},
    {"mistral3", {"mistral3"}, {"Mistral3ForConditionalGeneration"}, kLlamaTraits, read_mistral3, kMistral3Vlm, nullptr,
     "text_config"},
    {"mllama", {"mllama"}, {"MllamaForConditionalGeneration"}, kLlamaTraits, read_mllama, kMllama, nullptr,
     "text_config"},
};

}  // namespace

const std::vector<Family>& families() { return kFamilies; }

}  // namespace llmem::arch
