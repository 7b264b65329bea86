// The graph builders. llama.cpp's src/models/llama.cpp, mistral3.cpp, qwen2.cpp, qwen3.cpp and qwen3moe.cpp are
// near copies of one pre-norm decoder, as are gemma.cpp, gemma2-iswa.cpp and gemma3.cpp of one Gemma decoder;
// here each group is one skeleton and each builder says what its file does differently, as parameters.
// Phi-3 and GPT-2 differ in their structure and have loops of their own.
#include "builders.hpp"

#include "graph.hpp"

#include <algorithm>

#include "llmem/error.hpp"

namespace llmem::llamacpp {
namespace {

enum class Experts {
  kNever,       // dense FFN in every layer
  kWhenRouted,  // routed experts where the layer has a router (model.layers[il].ffn_gate_inp != nullptr)
  kAlways,      // routed experts in every layer
};

int ffn_or_experts(LlmGraph& g, int x, uint64_t rows, Experts experts, const FfnParams& dense) {
  const bool routed = experts == Experts::kAlways || (experts == Experts::kWhenRouted && g.has_experts());
  return routed ? g.moe_ffn(x, rows) : g.ffn(x, rows, dense);
}

// One pre-norm layer: norm, attention, residual add; norm, FFN (or experts), residual add. The llama-like files
// with RMS norms and SwiGLU, and GPT-2, BLOOM and sequential GPT-NeoX with LayerNorms and a GELU MLP.
int prenorm_layer(LlmGraph& g, uint64_t il, int cur, Norm norm, const AttentionParams& attn, Experts experts,
                  const FfnParams& ffn) {
  g.begin_layer(il);
  int x = g.norm(cur, norm, g.n_tokens());
  x = g.self_attention(il, x, attn);
  const LayerRows r = g.layer_rows(il, x, cur);
  const int ffn_inp = g.add(r.attn_out, r.residual, r.rows);
  x = g.norm(ffn_inp, norm, r.rows);
  x = ffn_or_experts(g, x, r.rows, experts, ffn);
  return g.add(x, ffn_inp, r.rows);
}

// RMS norm, attention, residual; RMS norm, SwiGLU (or experts), residual; the output norm and head.
void prenorm_decoder(LlmGraph& g, const AttentionParams& attn, Experts experts) {
  int cur = g.build_inputs();
  for (uint64_t il = 0; il < g.hp().n_layer; ++il) cur = prenorm_layer(g, il, cur, Norm::kRms, attn, experts, {});
  g.build_output(cur, Norm::kRms, false);
}

// Attention of the llama-like files: biases where the file has them (build_attn with model.layers[il].bq / bo).
AttentionParams llama_attention(const LlmGraph& g) {
  AttentionParams attn;
  attn.qkv_bias = g.has_qkv_bias();
  attn.o_bias = g.has_tensor("blk.0.attn_output.bias");
  return attn;
}

struct GemmaVariant {
  bool sandwich_norms = false;     // attn_post_norm and ffn_post_norm around each sub-block (Gemma 2, 3)
  bool qk_norm = false;            // Gemma 3
  bool logit_softcaps = false;     // attention and final logit soft-capping (Gemma 2)
};

// Embeddings scaled by sqrt(n_embd), Q scaled before attention (1/sqrt(head_dim) in gemma.cpp,
// f_attention_scale in gemma2/3), GeGLU.
void gemma_decoder(LlmGraph& g, const GemmaVariant& v) {
  AttentionParams attn;
  attn.qk_norm = v.qk_norm;
  attn.scale_q = true;
  attn.kq_softcap = v.logit_softcaps;
  int cur = g.scale(g.build_inputs(), g.n_tokens());
  for (uint64_t il = 0; il < g.hp().n_layer; ++il) {
    g.begin_layer(il);
    int x = g.norm(cur, Norm::kRms, g.n_tokens());
    x = g.self_attention(il, x, attn);
    const LayerRows r = g.layer_rows(il, x, cur);
    x = r.attn_out;
    if (v.sandwich_norms) x = g.norm(x, Norm::kRms, r.rows);
    const int sa_out = g.add(x, r.residual, r.rows);
    x = g.norm(sa_out, Norm::kRms, r.rows);
    x = g.ffn(x, r.rows, {});
    if (v.sandwich_norms) x = g.norm(x, Norm::kRms, r.rows);
    cur = g.add(x, sa_out, r.rows);
  }
  g.build_output(cur, Norm::kRms, v.logit_softcaps);
}

}  // namespace

// src/models/llama.cpp: dense SwiGLU, or routed experts for Mixtral-style files.
void build_llama(LlmGraph& g) { prenorm_decoder(g, llama_attention(g), Experts::kWhenRouted); }

// src/models/mistral3.cpp: llama's graph. Its optional attention temperature input (llama 4 style, when the file
// sets attention.temperature_scale) is not modelled.
void build_mistral3(LlmGraph& g) { prenorm_decoder(g, llama_attention(g), Experts::kWhenRouted); }

// src/models/qwen2.cpp: biases on Q, K and V (required tensors of the architecture).
void build_qwen2(LlmGraph& g) { prenorm_decoder(g, llama_attention(g), Experts::kNever); }

// src/models/qwen3.cpp: RMS norms of the Q and K heads before rope, no biases.
void build_qwen3(LlmGraph& g) {
  AttentionParams attn = llama_attention(g);
  attn.qk_norm = true;
  prenorm_decoder(g, attn, Experts::kNever);
}

// src/models/qwen3moe.cpp: Qwen3's attention, routed experts with normalised top-k weights in every layer.
void build_qwen3moe(LlmGraph& g) {
  AttentionParams attn = llama_attention(g);
  attn.qk_norm = true;
  prenorm_decoder(g, attn, Experts::kAlways);
}

// src/models/gemma.cpp
void build_gemma(LlmGraph& g) { gemma_decoder(g, {}); }

// src/models/gemma2-iswa.cpp: sandwich norms, soft-capped attention logits (without flash attention; the kernel
// takes the cap as a parameter) and final logits; sliding-window layers (architectures.cpp).
void build_gemma2(LlmGraph& g) { gemma_decoder(g, {.sandwich_norms = true, .qk_norm = false, .logit_softcaps = true}); }

// src/models/gemma3.cpp (the iswa instance): sandwich norms and Q/K norms, no soft-capping.
void build_gemma3(LlmGraph& g) { gemma_decoder(g, {.sandwich_norms = true, .qk_norm = true, .logit_softcaps = false}); }

// src/models/phi3.cpp: a fused QKV projection whose Q, K, V are strided views, Q scaled by 1/sqrt(head_dim), a
// fused gate/up projection, and the second residual written add(residual, cur), which makes the residual the
// parent ggml-alloc reuses in place.
void build_phi3(LlmGraph& g) {
  AttentionParams attn;
  attn.qkv = QkvLayout::kFusedViews;
  attn.qkv_bias = g.has_qkv_bias();
  attn.scale_q = true;
  attn.o_bias = g.has_tensor("blk.0.attn_output.bias");
  const FfnParams ffn{.kind = FfnKind::kGatedFused, .biases = false};
  int cur = g.build_inputs();
  for (uint64_t il = 0; il < g.hp().n_layer; ++il) {
    g.begin_layer(il);
    int x = g.norm(cur, Norm::kRms, g.n_tokens());
    x = g.self_attention(il, x, attn);
    const LayerRows r = g.layer_rows(il, x, cur);
    const int residual = g.add(r.attn_out, r.residual, r.rows);
    x = g.norm(residual, Norm::kRms, r.rows);
    x = ffn_or_experts(g, x, r.rows, Experts::kWhenRouted, ffn);
    cur = g.add(residual, x, r.rows);
  }
  g.build_output(cur, Norm::kRms, false);
}

// src/models/gpt2.cpp: learned positions added to the embeddings (no rope), LayerNorms with biases, a fused QKV
// (build_qkv: strided views of the one projection, as for Phi-3), biases on every projection, a GELU MLP.
void build_gpt2(LlmGraph& g) {
  AttentionParams attn;
  attn.qkv = QkvLayout::kFusedViews;
  attn.qkv_bias = g.has_qkv_bias();
  attn.rope = false;
  attn.o_bias = true;
  const FfnParams ffn{.kind = FfnKind::kPlain, .biases = true};
  const int embd = g.build_inputs();
  int cur = g.add(embd, g.position_embeddings(), g.n_tokens());
  for (uint64_t il = 0; il < g.hp().n_layer; ++il) cur = prenorm_layer(g, il, cur, Norm::kLayer, attn, Experts::kNever, ffn);
  g.build_output(cur, Norm::kLayer, false);
}

// ---- parallel branches and LayerNorm decoders ---------------------------------------------------------------------
//
// In a layer whose result sums an attention branch and an FFN branch fed from the same residual, the graph holds
// the branches apart: build_attn expands Q, V, K, the cache stores and the attention at once, and the output
// projection is reached only by the final walk through the sum, after any source listed before it
// (ggml_visit_parents walks the sources left to right). Each builder below records its ops in that order.

namespace {

// The FFN branch fed from `x` (a GELU MLP; biases where the file has them).
FfnParams gelu_mlp(const LlmGraph& g) { return {.kind = FfnKind::kPlain, .biases = g.has_tensor("blk.0.ffn_up.bias")}; }

}  // namespace

// src/models/gptneox.cpp: LayerNorms with biases, a fused QKV (views) with a bias, partial rope, a GELU MLP with
// biases. With use_parallel_residual (Pythia) the FFN reads its own norm of the layer input, and the layer's result
// is add(add(ffn, input), attention); without it the layer is sequential.
void build_gptneox(LlmGraph& g) {
  AttentionParams attn;
  attn.qkv = QkvLayout::kFusedViews;
  attn.qkv_bias = g.has_qkv_bias();
  attn.o_bias = g.has_tensor("blk.0.attn_output.bias");
  const FfnParams ffn = gelu_mlp(g);
  int cur = g.build_inputs();
  for (uint64_t il = 0; il < g.hp().n_layer; ++il) {
    g.begin_layer(il);
    if (!g.hp().parallel_residual) {
      cur = prenorm_layer(g, il, cur, Norm::kLayer, attn, Experts::kNever, ffn);
      continue;
    }
    // add(add(ffn(norm(inpL)), inpL), attn): the FFN branch first; the last layer's get_rows of inpL is its input
    const bool last = il + 1 == g.hp().n_layer;
    const int core = g.attention_core(il, g.norm(cur, Norm::kLayer, g.n_tokens()), attn);
    const int inp = last ? g.output_rows(cur) : cur;
    const uint64_t rows = last ? g.n_output_rows() : g.n_tokens();
    const int f = g.ffn(g.norm(inp, Norm::kLayer, rows), rows, ffn);
    const int sum = g.add(f, inp, rows);
    int a = g.attention_output(core, attn);
    if (last) a = g.output_rows(a);
    cur = g.add(sum, a, rows);
  }
  g.build_output(cur, Norm::kLayer, false);
}

// src/models/phi2.cpp: one LayerNorm feeds both branches; Q scaled by 1/sqrt(head_dim) after rope; the layer's
// result is add(add(attn, ffn), inpL), so the attention branch comes first; the LM head has a bias.
void build_phi2(LlmGraph& g) {
  AttentionParams attn;
  attn.qkv = g.has_tensor("blk.0.attn_qkv.weight") ? QkvLayout::kFusedViews : QkvLayout::kSeparate;
  attn.qkv_bias = g.has_qkv_bias();
  attn.scale_q = true;
  attn.o_bias = g.has_tensor("blk.0.attn_output.bias");
  const FfnParams ffn = gelu_mlp(g);
  int cur = g.build_inputs();
  for (uint64_t il = 0; il < g.hp().n_layer; ++il) {
    g.begin_layer(il);
    const bool last = il + 1 == g.hp().n_layer;
    const uint64_t rows = last ? g.n_output_rows() : g.n_tokens();
    int normed = g.norm(cur, Norm::kLayer, g.n_tokens());
    int a = g.self_attention(il, normed, attn);
    if (last) a = g.output_rows(a);
    if (last) normed = g.output_rows(normed);
    const int f = g.ffn(normed, rows, ffn);
    const int sum = g.add(a, f, rows);
    cur = g.add(sum, last ? g.output_rows(cur) : cur, rows);
  }
  g.build_output(cur, Norm::kLayer, false, g.has_tensor("output.bias"));
}

// src/models/falcon.cpp: attn_norm feeds the FFN and, without attn_norm_2 (7B), the attention; with it (40B) the
// attention reads its own norm, computed first. The result is add(add(ffn, attn), inpL).
void build_falcon(LlmGraph& g) {
  AttentionParams attn;
  attn.qkv = QkvLayout::kFusedViews;
  attn.qkv_bias = g.has_qkv_bias();
  attn.o_bias = false;  // build_attn(wo, NULL)
  const bool two_norms = g.has_tensor("blk.0.attn_norm_2.weight");
  const FfnParams ffn = gelu_mlp(g);
  int cur = g.build_inputs();
  for (uint64_t il = 0; il < g.hp().n_layer; ++il) {
    g.begin_layer(il);
    const bool last = il + 1 == g.hp().n_layer;
    const uint64_t rows = last ? g.n_output_rows() : g.n_tokens();
    int attn_norm = -1, core = -1;
    if (two_norms) {
      core = g.attention_core(il, g.norm(cur, Norm::kLayer, g.n_tokens()), attn);
      attn_norm = g.norm(cur, Norm::kLayer, g.n_tokens());  // reached through the FFN branch
    } else {
      attn_norm = g.norm(cur, Norm::kLayer, g.n_tokens());
      core = g.attention_core(il, attn_norm, attn);
    }
    if (last) attn_norm = g.output_rows(attn_norm);
    const int f = g.ffn(attn_norm, rows, ffn);
    int a = g.attention_output(core, attn);
    if (last) a = g.output_rows(a);
    const int sum = g.add(f, a, rows);
    cur = g.add(sum, last ? g.output_rows(cur) : cur, rows);
  }
  g.build_output(cur, Norm::kLayer, false);
}

// src/models/bloom.cpp: a LayerNorm of the embeddings, then sequential LayerNorm layers with a fused QKV (views)
// and biases everywhere; ALiBi, so no rope and no positions input (architectures.cpp).
void build_bloom(LlmGraph& g) {
  AttentionParams attn;
  attn.qkv = QkvLayout::kFusedViews;
  attn.qkv_bias = g.has_qkv_bias();
  attn.rope = false;
  attn.o_bias = g.has_tensor("blk.0.attn_output.bias");
  const FfnParams ffn = gelu_mlp(g);
  int cur = g.norm(g.build_inputs(), Norm::kLayer, g.n_tokens());
  for (uint64_t il = 0; il < g.hp().n_layer; ++il) cur = prenorm_layer(g, il, cur, Norm::kLayer, attn, Experts::kNever, ffn);
  g.build_output(cur, Norm::kLayer, false);
}

// src/models/olmo2.cpp: no input norm; RMS norms of the whole Q and K projections; norms after the attention and
// after the FFN (each before its residual add).
void build_olmo2(LlmGraph& g) {
  AttentionParams attn;
  attn.qk_norm_rows = true;
  int cur = g.build_inputs();
  for (uint64_t il = 0; il < g.hp().n_layer; ++il) {
    g.begin_layer(il);
    int x = g.self_attention(il, cur, attn);
    const LayerRows r = g.layer_rows(il, x, cur);
    x = g.norm(r.attn_out, Norm::kRms, r.rows);
    const int ffn_inp = g.add(x, r.residual, r.rows);
    x = g.ffn(ffn_inp, r.rows, {});
    x = g.norm(x, Norm::kRms, r.rows);
    cur = g.add(x, ffn_inp, r.rows);
  }
  g.build_output(cur, Norm::kRms, false);
}

// src/models/qwen.cpp: the pre-norm decoder with a fused QKV (views) and its bias; the FFN is n_ff/2 wide
// (architectures.cpp ffn_divisor).
void build_qwen(LlmGraph& g) {
  AttentionParams attn;
  attn.qkv = QkvLayout::kFusedViews;
  attn.qkv_bias = g.has_qkv_bias();
  prenorm_decoder(g, attn, Experts::kNever);
}

// src/models/deepseek2.cpp (the MLA branch): RMS-normed pre-norm layers with multi-head latent attention; the
// first n_layer_dense_lead layers have a dense FFN, the others routed experts (softmax or sigmoid gating, V3's
// selection bias and group-limited choice, normalised and scaled weights) plus the shared experts, summed.
void build_deepseek2(LlmGraph& g) {
  const Hparams& h = g.hp();
  if (!h.mla)
    throw Error(ErrorKind::kUnsupported, "", "a deepseek2 GGUF without MLA (no key_length_mla): llmem sizes the MLA layout only");
  MoeParams moe;
  moe.gating = h.expert_gating;
  moe.probs_bias = g.has_tensor("blk." + std::to_string(h.n_layer_dense_lead) + ".exp_probs_b.bias");
  moe.groups = std::max<uint64_t>(1, h.n_expert_groups);
  moe.groups_used = std::max<uint64_t>(1, h.n_group_used);
  moe.normalise = h.expert_weights_norm;
  moe.scale = h.expert_weights_scale != 0.0 && h.expert_weights_scale != 1.0;
  moe.width = h.n_ff_exp;
  const FfnParams shared{.kind = FfnKind::kGated, .biases = false, .width = h.n_ff_exp * h.n_expert_shared, .suffix = "_shexp"};
  int cur = g.build_inputs();
  for (uint64_t il = 0; il < h.n_layer; ++il) {
    g.begin_layer(il);
    int x = g.norm(cur, Norm::kRms, g.n_tokens());
    x = g.mla_attention(il, x);
    const LayerRows r = g.layer_rows(il, x, cur);
    const int ffn_inp = g.add(r.attn_out, r.residual, r.rows);
    x = g.norm(ffn_inp, Norm::kRms, r.rows);
    if (il < h.n_layer_dense_lead) {
      x = g.ffn(x, r.rows, {});
    } else {
      const int routed = g.moe_ffn(x, r.rows, moe);
      x = h.n_expert_shared > 0 ? g.add(routed, g.ffn(x, r.rows, shared), r.rows) : routed;
    }
    cur = g.add(x, ffn_inp, r.rows);
  }
  g.build_output(cur, Norm::kRms, false);
}

// src/models/openai-moe.cpp: RMS norms, Q/K/V with biases, attention sinks (a source of the attention op, no
// memory of their own), alternating sliding-window layers, routed experts with biases and the softmax over the
// chosen logits; the last layer is not cut to the output rows, the final hidden state is (after the loop).
void build_gpt_oss(LlmGraph& g) {
  AttentionParams attn;
  attn.qkv_bias = g.has_qkv_bias();
  attn.o_bias = g.has_tensor("blk.0.attn_output.bias");
  MoeParams moe;
  moe.gating = 3;
  moe.logits_bias = g.has_tensor("blk.0.ffn_gate_inp.bias");
  moe.normalise = false;
  moe.expert_biases = g.has_tensor("blk.0.ffn_up_exps.bias");
  moe.width = g.hp().n_ff_exp;
  int cur = g.build_inputs();
  for (uint64_t il = 0; il < g.hp().n_layer; ++il) {
    g.begin_layer(il);
    int x = g.norm(cur, Norm::kRms, g.n_tokens());
    x = g.self_attention(il, x, attn);
    const int ffn_inp = g.add(x, cur, g.n_tokens());
    x = g.norm(ffn_inp, Norm::kRms, g.n_tokens());
    x = g.moe_ffn(x, g.n_tokens(), moe);
    cur = g.add(x, ffn_inp, g.n_tokens());
  }
  g.build_output(g.output_rows(cur), Norm::kRms, false);
}

}  // namespace llmem::llamacpp
