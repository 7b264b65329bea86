// The table of sized architectures (architectures.hpp). The values are llama-model.cpp load_hparams' at 80fb11ac.
#include "architectures.hpp"

#include <algorithm>
#include <optional>

#include <fmt/core.h>

#include "llmem/error.hpp"
#include "llmem/llamacpp.hpp"

#include "builders.hpp"

namespace llmem::llamacpp {
namespace {

// Every layer attends over the whole cache.
constexpr SlidingWindowTraits kFullAttention{};
// Gemma 2: n_swa defaults to 4096 and every second layer slides (set_swa_pattern(2)).
constexpr SlidingWindowTraits kGemma2Window{.own_cache = true, .default_window_tokens = 4096, .default_pattern = 2};
// Gemma 3: the window comes from the file; five sliding layers to each global one (set_swa_pattern(6)).
constexpr SlidingWindowTraits kGemma3Window{.own_cache = true, .default_window_tokens = 0, .default_pattern = 6};
// gpt-oss: the window comes from the file; every second layer slides, the first among them (set_swa_pattern(2)).
constexpr SlidingWindowTraits kGptOssWindow{.own_cache = true, .default_window_tokens = 0, .default_pattern = 2};
constexpr Type70BRule kNo70B{};

std::optional<uint64_t> tensor_ne(const Model& m, const std::string& name, size_t dim) {
  for (const auto& t : m.tensors)
    if (t.name == name && t.ne.size() > dim) return t.ne[dim];
  return std::nullopt;
}

bool metadata_true(const GgufFile& g, const std::string& key) {
  auto it = g.metadata.find(key);
  return it != g.metadata.end() && it->is_boolean() && it->get<bool>();
}

// src/models/deepseek2.cpp load_arch_hparams: MLA when the file has key_length_mla and value_length_mla; the
// lite models (27 layers) have no q_lora_rank; routing from the expert_* keys.
void read_deepseek2(const GgufFile& g, Hparams& hp) {
  const std::string p = hp.arch + ".";
  const auto k_mla = g.get_uint(p + "attention.key_length_mla"), v_mla = g.get_uint(p + "attention.value_length_mla");
  hp.mla = k_mla && v_mla && *k_mla > 0 && *v_mla > 0;
  hp.n_embd_head_k_mla = k_mla.value_or(0);
  hp.n_embd_head_v_mla = v_mla.value_or(0);
  hp.n_lora_kv = g.require_uint(p + "attention.kv_lora_rank");
  hp.n_lora_q = hp.n_layer == 27 ? 0 : g.get_uint(p + "attention.q_lora_rank").value_or(0);
  if (hp.n_layer != 27 && hp.n_lora_q == 0)
    throw Error(ErrorKind::kInvalidInput, g.file, "missing " + p + "attention.q_lora_rank (llama.cpp needs it)");
  hp.n_rot = g.get_uint(p + "rope.dimension_count").value_or(hp.n_embd_head_k);
  hp.n_layer_dense_lead = g.get_uint(p + "leading_dense_block_count").value_or(0);
  hp.n_ff_exp = g.get_uint(p + "expert_feed_forward_length").value_or(0);
  hp.n_expert_shared = g.require_uint(p + "expert_shared_count");
  hp.n_expert_groups = g.get_uint(p + "expert_group_count").value_or(0);
  hp.n_group_used = g.get_uint(p + "expert_group_used_count").value_or(0);
  hp.expert_gating = static_cast<int>(g.get_uint(p + "expert_gating_func").value_or(1));
  if (hp.expert_gating == 0) hp.expert_gating = 1;
  hp.expert_weights_norm = metadata_true(g, p + "expert_weights_norm");
  hp.expert_weights_scale = g.get_float(p + "expert_weights_scale").value_or(0.0);
  // the MLA layout's own consistency: the cached row is the latent plus the rope part, V the latent
  if (hp.mla && (hp.n_lora_kv == 0 || hp.n_rot == 0 || hp.n_rot >= hp.n_embd_head_k_mla ||
                 hp.n_embd_head_k != hp.n_lora_kv + hp.n_rot || hp.n_embd_head_v != hp.n_lora_kv))
    throw Error(ErrorKind::kInvalidInput, g.file,
                fmt::format("inconsistent MLA sizes: key_length {} is not kv_lora_rank {} + rope {}, or value_length {} is not "
                            "kv_lora_rank, or key_length_mla {} is not larger than the rope part",
                            hp.n_embd_head_k, hp.n_lora_kv, hp.n_rot, hp.n_embd_head_v, hp.n_embd_head_k_mla));
  if (hp.n_expert > 0 && hp.n_ff_exp == 0)
    throw Error(ErrorKind::kInvalidInput, g.file, "missing " + p + "expert_feed_forward_length for a model with experts");
  if (hp.n_layer_dense_lead > hp.n_layer)
    throw Error(ErrorKind::kInvalidInput, g.file, p + "leading_dense_block_count is larger than the layer count");
  if (hp.n_layer_dense_lead < hp.n_layer && hp.n_expert < 2)
    throw Error(ErrorKind::kInvalidInput, g.file,
                fmt::format("{}expert_count is {}: layers past the {} leading dense ones route through experts", p, hp.n_expert,
                            hp.n_layer_dense_lead));
}

// The converter's keys for DeepSeek (conversion/deepseek.py), read off the predicted tensors and the config.
void derive_deepseek2(const ModelFacts& f, const Model& m, Hparams& hp) {
  const uint64_t R = tensor_ne(m, "blk.0.attn_kv_a_norm.weight", 0).value_or(0);
  const uint64_t kv_a = tensor_ne(m, "blk.0.attn_kv_a_mqa.weight", 1).value_or(0);
  const uint64_t dn = tensor_ne(m, "blk.0.attn_k_b.weight", 0).value_or(0);
  const uint64_t dv = tensor_ne(m, "blk.0.attn_v_b.weight", 1).value_or(0);
  if (R == 0 || kv_a <= R || dn == 0 || dv == 0)
    throw Error(ErrorKind::kInvalidInput, m.source, "a DeepSeek model without the MLA tensors llama.cpp's converter writes");
  hp.mla = true;
  hp.n_lora_kv = R;
  hp.n_rot = kv_a - R;
  hp.n_lora_q = tensor_ne(m, "blk.0.attn_q_a.weight", 1).value_or(0);
  hp.n_embd_head_k_mla = dn + hp.n_rot;
  hp.n_embd_head_v_mla = dv;
  hp.n_head_kv.assign(hp.n_layer, 1);
  hp.n_embd_head_k = R + hp.n_rot;
  hp.n_embd_head_v = R;
  for (uint64_t il = 0; il < hp.n_layer && !tensor_ne(m, "blk." + std::to_string(il) + ".ffn_gate_inp.weight", 0); ++il)
    hp.n_layer_dense_lead = il + 1;
  hp.n_ff_exp = f.moe_intermediate;
  hp.n_expert_shared = f.n_shared_experts;
  hp.n_expert_groups = f.routing.groups;
  hp.n_group_used = f.routing.groups_used;
  hp.expert_gating = f.routing.sigmoid ? 2 : 1;
  hp.expert_weights_norm = f.routing.normalise;
  hp.expert_weights_scale = f.routing.scale;
}

// src/models/openai-moe.cpp: experts expert_feed_forward_length wide, the softmax taken over the chosen experts'
// logits (LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT), no normalisation or scale.
void read_gpt_oss(const GgufFile& g, Hparams& hp) {
  hp.n_ff_exp = g.require_uint(hp.arch + ".expert_feed_forward_length");
  if (hp.n_ff_exp == 0) throw Error(ErrorKind::kInvalidInput, g.file, hp.arch + ".expert_feed_forward_length is 0");
  hp.n_rot = hp.n_embd_head_k;
  hp.expert_gating = 3;
}

// conversion/falcon.py writes a context length of 2048 ("not in config.json").
void derive_falcon(const ModelFacts&, const Model&, Hparams& hp) { hp.n_ctx_train = 2048; }

// conversion/bloom.py writes the config's seq_length, else the embedding width (bloom-560m: 1024).
void derive_bloom(const ModelFacts& f, const Model&, Hparams& hp) { hp.n_ctx_train = f.max_positions ? f.max_positions : hp.n_embd; }

// src/models/qwen.cpp load_arch_hparams reads the RMS norm epsilon, a required key.
void read_qwen(const GgufFile& g, Hparams& hp) {
  const std::string key = hp.arch + ".attention.layer_norm_rms_epsilon";
  if (!g.get_float(key)) throw Error(ErrorKind::kUnsupported, g.file, "missing " + key + ": llama.cpp " + std::string(kPinnedCommit) + " refuses to load it");
}

// At the pinned commit the converter writes Qwen 1's epsilon as qwen.attention.layer_norm_epsilon
// (conversion/qwen.py through TextModel.set_gguf_parameters, from the config's layer_norm_epsilon) while the loader
// requires layer_norm_rms_epsilon: a file converted there does not load ("key not found in model", checked with a
// CPU build of that commit).
void derive_qwen(const ModelFacts&, const Model& m, Hparams&) {
  throw Error(ErrorKind::kUnsupported, m.source,
              "llama.cpp " + std::string(kPinnedCommit) + "'s converter writes qwen.attention.layer_norm_epsilon for Qwen 1 "
              "but its loader requires qwen.attention.layer_norm_rms_epsilon: the converted file does not load");
}

void derive_gpt_oss(const ModelFacts& f, const Model&, Hparams& hp) {
  hp.n_ff_exp = f.moe_intermediate;
  hp.n_rot = hp.n_embd_head_k;
  hp.expert_gating = 3;
}

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
      {"falcon",    build_falcon,    kFullAttention,  false,       false, 1,           false,         kNo70B, true, nullptr, derive_falcon},
      {"bloom",     build_bloom,     kFullAttention,  false,       true,  1,           false,         kNo70B, false, nullptr, derive_bloom},
      {"olmo2",     build_olmo2,     kFullAttention,  false,       false, 1,           false,         kNo70B},
      {"qwen",      build_qwen,      kFullAttention,  false,       false, 2,           false,         kNo70B, false, read_qwen, derive_qwen},
      {"deepseek2", build_deepseek2, kFullAttention,  false,       false, 1,           false,         kNo70B, false, read_deepseek2, derive_deepseek2},
      {"gpt-oss",   build_gpt_oss,   kGptOssWindow,   false,       false, 1,           true,          kNo70B, false, read_gpt_oss,   derive_gpt_oss},
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
