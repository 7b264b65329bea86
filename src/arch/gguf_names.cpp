// The converter's layouts (convert_hf_to_gguf.py and conversion/*.py at llama.cpp 80fb11ac; the names themselves
// are gguf-py/gguf/tensor_mapping.py's), one entry per Hugging Face model_type.
#include "llmem/gguf_names.hpp"

#include <initializer_list>
#include <utility>

namespace llmem {
namespace {

// Tensors outside the layers, for checkpoints that follow LlamaForCausalLM's module names.
const std::map<std::string, std::string>& llama_global_tensors() {
  static const std::map<std::string, std::string> names = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  return names;
}

// A layer of LlamaForCausalLM and of the families that reuse its module names (Qwen, Gemma, Phi-3, Mixtral's
// block_sparse_moe, Qwen-MoE's mlp.experts); a family uses the subset its checkpoint has.
const std::map<std::string, std::string>& llama_layer_tensors() {
  static const std::map<std::string, std::string> names = {
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.o_proj.bias", "attn_output.bias"},
      {"self_attn.qkv_proj.weight", "attn_qkv.weight"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
      // Phi-3's fused gate and up projections stay one tensor; llama.cpp splits the halves at run time
      {"mlp.gate_up_proj.weight", "ffn_up.weight"},
      {"input_layernorm.weight", "attn_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate.weight", "ffn_gate_inp.weight"},
      {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight"},
      {"mlp.experts.gate_proj.weight", "ffn_gate_exps.weight"},
      {"mlp.experts.up_proj.weight", "ffn_up_exps.weight"},
      {"mlp.experts.down_proj.weight", "ffn_down_exps.weight"},
      {"block_sparse_moe.experts.w1.weight", "ffn_gate_exps.weight"},
      {"block_sparse_moe.experts.w3.weight", "ffn_up_exps.weight"},
      {"block_sparse_moe.experts.w2.weight", "ffn_down_exps.weight"},
  };
  return names;
}

GgufLayout llama_like(const std::string& architecture) {
  GgufLayout layout;
  layout.architecture = architecture;
  layout.layer_prefix = "model.layers.";
  layout.global_tensors = llama_global_tensors();
  layout.layer_tensors = llama_layer_tensors();
  return layout;
}

// Gemma 2 and 3 wrap both sub-blocks in norms ("sandwich" norms): HF's post_attention_layernorm is the norm after
// attention, not the FFN's input norm as in Llama (tensor_mapping.py MODEL_TENSOR.ATTN_POST_NORM, FFN_POST_NORM).
GgufLayout gemma_sandwich(const std::string& architecture) {
  GgufLayout layout = llama_like(architecture);
  layout.layer_tensors["post_attention_layernorm.weight"] = "post_attention_norm.weight";
  layout.layer_tensors["pre_feedforward_layernorm.weight"] = "ffn_norm.weight";
  layout.layer_tensors["post_feedforward_layernorm.weight"] = "post_ffw_norm.weight";
  layout.drops_lm_head = true;
  return layout;
}

// Module -> GGUF names for modules that carry a weight and a bias (LayerNorms, biased linear layers): both entries.
std::map<std::string, std::string> with_biases(std::initializer_list<std::pair<const char*, const char*>> modules) {
  std::map<std::string, std::string> names;
  for (const auto& [hf, gguf] : modules) {
    names[std::string(hf) + ".weight"] = std::string(gguf) + ".weight";
    names[std::string(hf) + ".bias"] = std::string(gguf) + ".bias";
  }
  return names;
}

GgufLayout gpt2() {
  GgufLayout layout;
  layout.architecture = "gpt2";
  layout.layer_prefix = "transformer.h.";
  layout.global_tensors = with_biases({{"transformer.ln_f", "output_norm"}});
  layout.global_tensors.insert({{"transformer.wte.weight", "token_embd.weight"},
                                {"transformer.wpe.weight", "position_embd.weight"},
                                {"lm_head.weight", "output.weight"}});
  layout.layer_tensors = with_biases({{"ln_1", "attn_norm"}, {"attn.c_attn", "attn_qkv"}, {"attn.c_proj", "attn_output"},
                                      {"ln_2", "ffn_norm"}, {"mlp.c_fc", "ffn_up"}, {"mlp.c_proj", "ffn_down"}});
  layout.conv1d_weights = true;
  return layout;
}

// GPT-NeoX (Pythia): fused QKV whose rows the converter regroups per head (same shape), LayerNorms with biases, a
// GELU MLP, an untied output matrix named embed_out (conversion/gptneox.py; tensor_mapping.py).
GgufLayout gptneox() {
  GgufLayout layout;
  layout.architecture = "gptneox";
  layout.layer_prefix = "gpt_neox.layers.";
  layout.global_tensors = with_biases({{"gpt_neox.final_layer_norm", "output_norm"}});
  layout.global_tensors.insert({{"gpt_neox.embed_in.weight", "token_embd.weight"}, {"embed_out.weight", "output.weight"}});
  layout.layer_tensors = with_biases({{"input_layernorm", "attn_norm"},
                                      {"attention.query_key_value", "attn_qkv"},
                                      {"attention.dense", "attn_output"},
                                      {"post_attention_layernorm", "ffn_norm"},
                                      {"mlp.dense_h_to_4h", "ffn_up"},
                                      {"mlp.dense_4h_to_h", "ffn_down"}});
  return layout;
}

// Phi-2 (PhiForCausalLM): separate Q/K/V with biases, one LayerNorm per layer feeding attention and MLP in
// parallel, an output matrix with a bias (conversion/phi.py).
GgufLayout phi2() {
  GgufLayout layout;
  layout.architecture = "phi2";
  layout.layer_prefix = "model.layers.";
  layout.global_tensors = with_biases({{"model.final_layernorm", "output_norm"}, {"lm_head", "output"}});
  layout.global_tensors.insert({{"model.embed_tokens.weight", "token_embd.weight"}});
  layout.layer_tensors = with_biases({{"input_layernorm", "attn_norm"},
                                      {"self_attn.q_proj", "attn_q"},
                                      {"self_attn.k_proj", "attn_k"},
                                      {"self_attn.v_proj", "attn_v"},
                                      {"self_attn.dense", "attn_output"},
                                      {"mlp.fc1", "ffn_up"},
                                      {"mlp.fc2", "ffn_down"}});
  return layout;
}

// BLOOM's module names, which Falcon shares (tensor_mapping.py lists them for both): transformer.h.N with a fused
// self_attention.query_key_value, a dense output and the dense_h_to_4h / dense_4h_to_h MLP.
GgufLayout bloom_family(const std::string& architecture) {
  GgufLayout layout;
  layout.architecture = architecture;
  layout.layer_prefix = "transformer.h.";
  layout.global_tensors = with_biases({{"transformer.ln_f", "output_norm"}});
  layout.global_tensors.insert({{"transformer.word_embeddings.weight", "token_embd.weight"}, {"lm_head.weight", "output.weight"}});
  layout.layer_tensors = with_biases({{"input_layernorm", "attn_norm"},
                                      {"self_attention.query_key_value", "attn_qkv"},
                                      {"self_attention.dense", "attn_output"},
                                      {"post_attention_layernorm", "ffn_norm"},
                                      {"mlp.dense_h_to_4h", "ffn_up"},
                                      {"mlp.dense_4h_to_h", "ffn_down"}});
  return layout;
}

// Falcon: fused QKV (the converter reorders its rows into Q, K, V blocks; same shape), no biases on projections,
// parallel attention and MLP from one LayerNorm (7B: input_layernorm) or two (40B's new decoder architecture:
// ln_mlp is ATTN_NORM, which feeds the FFN branch in llama.cpp's graph, and ln_attn ATTN_NORM_2). The tied LM head
// is not written (conversion/falcon.py).
GgufLayout falcon() {
  GgufLayout layout = bloom_family("falcon");
  layout.layer_tensors.merge(with_biases({{"ln_mlp", "attn_norm"}, {"ln_attn", "attn_norm_2"}}));
  return layout;
}

// BLOOM: a LayerNorm right after the embeddings (token_embd_norm), fused QKV with biases (rows regrouped per head
// by the converter; same shape), ALiBi instead of positions, tied LM head not written (conversion/bloom.py).
GgufLayout bloom() {
  GgufLayout layout = bloom_family("bloom");
  layout.global_tensors.merge(with_biases({{"transformer.word_embeddings_layernorm", "token_embd_norm"}}));
  return layout;
}

// OLMo 2: Llama's names, norms after the sub-blocks only (post_attention_norm, post_ffw_norm; no input norms) and
// Q/K norms over whole projections (attn_q_norm is n_head * head_dim wide).
GgufLayout olmo2() {
  GgufLayout layout = llama_like("olmo2");
  layout.layer_tensors["post_attention_layernorm.weight"] = "post_attention_norm.weight";
  layout.layer_tensors["post_feedforward_layernorm.weight"] = "post_ffw_norm.weight";
  return layout;
}

// Qwen (1): GPT-2-like module names on nn.Linear layers (not Conv1D), fused QKV with a bias, SwiGLU whose w1 is the
// up and w2 the gate projection (tensor_mapping.py), an untied LM head.
GgufLayout qwen() {
  GgufLayout layout;
  layout.architecture = "qwen";
  layout.layer_prefix = "transformer.h.";
  layout.global_tensors = {
      {"transformer.wte.weight", "token_embd.weight"},
      {"transformer.ln_f.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  layout.layer_tensors = {
      {"ln_1.weight", "attn_norm.weight"},
      {"attn.c_attn.weight", "attn_qkv.weight"},
      {"attn.c_attn.bias", "attn_qkv.bias"},
      {"attn.c_proj.weight", "attn_output.weight"},
      {"ln_2.weight", "ffn_norm.weight"},
      {"mlp.w1.weight", "ffn_up.weight"},
      {"mlp.w2.weight", "ffn_gate.weight"},
      {"mlp.c_proj.weight", "ffn_down.weight"},
  };
  return layout;
}

// DeepSeek V2/V3 (conversion/deepseek.py): MLA projections, kv_b_proj split for the absorbed attention, routed
// experts stacked, shared experts, V3's router bias; the MTP layer (past num_hidden_layers) is dropped.
GgufLayout deepseek2(bool router_bias) {
  GgufLayout layout = llama_like("deepseek2");
  auto& l = layout.layer_tensors;
  l["self_attn.q_a_proj.weight"] = "attn_q_a.weight";
  l["self_attn.q_a_layernorm.weight"] = "attn_q_a_norm.weight";
  l["self_attn.q_b_proj.weight"] = "attn_q_b.weight";
  l["self_attn.kv_a_proj_with_mqa.weight"] = "attn_kv_a_mqa.weight";
  l["self_attn.kv_a_layernorm.weight"] = "attn_kv_a_norm.weight";
  l["mlp.shared_experts.gate_proj.weight"] = "ffn_gate_shexp.weight";
  l["mlp.shared_experts.up_proj.weight"] = "ffn_up_shexp.weight";
  l["mlp.shared_experts.down_proj.weight"] = "ffn_down_shexp.weight";
  layout.layer_transforms["self_attn.kv_b_proj.weight"] = GgufLayout::Transform::kMlaKvB;
  if (router_bias) layout.router_bias = "exp_probs_b.bias";
  return layout;
}

// gpt-oss (conversion/gpt_oss.py): biases on every attention projection, attention sinks, a router with a bias,
// experts fused per layer with biases (gate and up interleaved), the post-attention norm named as such.
GgufLayout gpt_oss() {
  GgufLayout layout = llama_like("gpt-oss");
  auto& l = layout.layer_tensors;
  l["self_attn.sinks"] = "attn_sinks.weight";
  l["mlp.router.weight"] = "ffn_gate_inp.weight";
  l["mlp.router.bias"] = "ffn_gate_inp.bias";
  l["mlp.experts.down_proj_bias"] = "ffn_down_exps.bias";
  l["post_attention_layernorm.weight"] = "post_attention_norm.weight";
  layout.layer_transforms["mlp.experts.gate_up_proj"] = GgufLayout::Transform::kExpertsGateUp;
  layout.layer_transforms["mlp.experts.gate_up_proj_bias"] = GgufLayout::Transform::kExpertsGateUpBias;
  layout.layer_transforms["mlp.experts.down_proj"] = GgufLayout::Transform::kExpertsDown;
  return layout;
}

const std::map<std::string, GgufLayout>& layouts() {
  static const std::map<std::string, GgufLayout> table = {
      // Mistral and Mixtral convert to the llama architecture (conversion: LlamaModel registers
      // MistralForCausalLM and MixtralForCausalLM)
      {"llama", llama_like("llama")},
      {"mistral", llama_like("llama")},
      {"mixtral", llama_like("llama")},
      {"qwen2", llama_like("qwen2")},
      {"qwen3", llama_like("qwen3")},
      {"qwen3_moe", llama_like("qwen3moe")},
      {"gemma", llama_like("gemma")},
      {"phi3", llama_like("phi3")},
      {"gemma2", gemma_sandwich("gemma2")},
      {"gemma3", gemma_sandwich("gemma3")},
      {"gemma3_text", gemma_sandwich("gemma3")},
      {"gpt2", gpt2()},
      {"gpt_neox", gptneox()},
      {"phi", phi2()},
      {"falcon", falcon()},
      {"bloom", bloom()},
      {"olmo2", olmo2()},
      {"qwen", qwen()},
      {"deepseek_v2", deepseek2(false)},
      {"deepseek_v3", deepseek2(true)},
      {"gpt_oss", gpt_oss()},
  };
  return table;
}

}  // namespace

const GgufLayout* gguf_layout(const std::string& model_type) {
  auto it = layouts().find(model_type);
  return it == layouts().end() ? nullptr : &it->second;
}

std::vector<std::string> gguf_layout_model_types() {
  std::vector<std::string> types;
  for (const auto& [model_type, layout] : layouts()) types.push_back(model_type);
  return types;  // std::map keeps them sorted
}

}  // namespace llmem
