// The model's shapes and traits as the replay reads them, and the rules that decide whether SDPA gets a mask.
#include <algorithm>

#include "engine.hpp"

namespace llmem::transformers {

Geometry geometry(const ModelFacts& f) {
  Geometry g;
  g.traits = f.traits;
  g.activation = f.activation;
  g.rot_dims = static_cast<uint64_t>(static_cast<double>(f.head_dim) * f.partial_rotary);
  if (g.rot_dims == 0 || g.rot_dims > f.head_dim) g.rot_dims = f.head_dim;
  g.layers = f.n_layers;
  g.hidden = f.hidden;
  g.heads = f.n_heads;
  g.kv_heads = f.n_kv_heads;
  g.head_dim = f.head_dim;
  g.q_dim = f.n_heads * f.head_dim;
  g.k_dim = f.attention.empty() ? g.q_dim : f.attention[0].kv_heads * f.attention[0].k_head_dim;
  g.v_dim = f.attention.empty() ? g.q_dim : f.attention[0].kv_heads * f.attention[0].v_head_dim;
  g.cache_k_dim = f.mla_cache_k_dim ? f.mla_cache_k_dim : g.k_dim;
  g.cache_v_dim = f.mla_cache_k_dim ? f.mla_cache_v_dim : g.v_dim;
  g.ffn = f.intermediate ? f.intermediate : 4 * f.hidden;
  g.vocab = f.vocab;
  g.gated = f.gated_mlp;
  g.rope = f.position_kind == "rope";
  g.experts = f.n_experts;
  g.top_k = f.n_experts_active;
  g.moe_ffn = f.moe_intermediate;
  g.shared_ffn = f.n_shared_experts * f.moe_intermediate;  // DeepSeek's shared experts: one MLP of that width
  // The layers a text-only forward runs: Mllama's cross-attention layers are skipped whole (LayerAttention), so
  // the replay runs, and the cache holds, the others. Their weights stay resident (the tensor list).
  for (uint64_t i = 0; i < f.attention.size(); ++i) {
    if (f.attention[i].cross_attention_only) {
      --g.layers;
      continue;
    }
    g.window.push_back(f.attention[i].sliding_window);
    g.decoder_layer.push_back(i);
  }
  if (g.decoder_layer.size() == f.attention.size()) g.decoder_layer.clear();  // every layer runs
  g.window.resize(g.layers, 0);
  return g;
}

Geometry geometry(const ArchModel& model) {
  Geometry g = geometry(model.facts);
  g.fused_gate_up = std::any_of(model.tensors.begin(), model.tensors.end(),
                                [](const TensorInfo& t) { return t.role == TensorRole::kMlpGateUp; });
  g.experts_bias = std::any_of(model.tensors.begin(), model.tensors.end(), [](const TensorInfo& t) {
    return t.role == TensorRole::kExpert && t.name.ends_with("_bias");
  });
  if (g.experts == 0) return g;
  // by the decoder's numbering (the tensors'), then per replayed layer
  std::vector<bool> routes(model.facts.n_layers, false);
  bool any = false;
  for (const auto& t : model.tensors)
    if (t.role == TensorRole::kExpert && t.layer >= 0 && static_cast<uint64_t>(t.layer) < routes.size())
      any = routes[static_cast<uint64_t>(t.layer)] = true;
  if (!any) return g;  // no per-layer record: every layer routes
  g.moe_layer.assign(g.layers, false);
  for (uint64_t l = 0; l < g.layers; ++l) g.moe_layer[l] = g.decoder_index(l) < routes.size() && routes[g.decoder_index(l)];
  return g;
}

std::string default_attention(const Geometry& g) {
  return g.traits.default_attention == AttentionImpl::kEager ? "eager" : "sdpa";
}

bool is_python_gelu(const std::string& activation) {
  return activation == "gelu_new" || activation == "gelu_fast" || activation == "gelu_pytorch_tanh_python";
}

bool sdpa_mask_needed(const Geometry& g, uint64_t layer, uint64_t seq_tokens) {
  return layer < g.window.size() && g.window[layer] > 0 && seq_tokens >= g.window[layer];
}

bool sdpa_repeats_kv(const Geometry& g, uint64_t layer, uint64_t seq_tokens) {
  return sdpa_mask_needed(g, layer, seq_tokens) && g.kv_heads > 0 && g.heads > g.kv_heads;
}

}  // namespace llmem::transformers
