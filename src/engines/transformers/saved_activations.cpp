// The layer-level training model: what autograd keeps for one decoder layer's backward, per op, for every family
// (full training, amp, and LoRA where the op-by-op replay of lora.cpp does not apply).
#include "engine.hpp"

namespace llmem::transformers {
namespace {

struct SavedBuilder {
  const TrainCtx& c;
  SavedSet v;
  uint64_t hs;             // elements of one hidden state
  bool full;               // every parameter trains (not LoRA)
  bool input_needs_grad;   // the layer's input needs a gradient

  void add(const std::string& name, uint64_t bytes) { v.emplace_back(name, bytes); }

  // One norm's saved tensors. Gemma's RMSNorm (modeling_gemma2.py Gemma2RMSNorm) multiplies in fp32 before its
  // cast, so with a trainable weight it keeps x.float() and the fp32 normalised x, not a bf16 cast.
  void norm(const std::string& tag) {
    const auto& g = c.g;
    const uint64_t resid = c.amp ? 4 : 2;  // the residual stream is fp32 under autocast (fp32 + bf16 -> fp32)
    if (g.traits.norm == NormKind::kRmsNormFp32Scale) {
      if (input_needs_grad) add(tag, mul(hs, 4));
      if (full) add(tag + "_normed", mul(hs, 4));
    } else if (g.rms_norm()) {
      if (input_needs_grad) add(tag, mul(hs, 4));                  // x.to(float32), kept by pow and the rsqrt product
      if (c.amp && full) add(tag + "_h32", mul(hs, 4));           // w * h: h kept for w's gradient (fp32 path)
      else if (full) add(tag + "_cast", mul(hs, 2));               // w * h.to(bf16): the cast kept for w's gradient
    } else if (input_needs_grad || full) {
      add(tag, mul(hs, resid));                                    // F.layer_norm keeps its input
    }
  }

  // What the q/k/v projections and the attention keep. Fused-QKV families keep the whole projection
  // (fused_qkv_saved_whole); SDPA keeps q, k, v, its output and logsumexp.
  void attention(uint64_t layer) {
    const auto& g = c.g;
    const uint64_t T = c.T, qs = mul(T, g.q_dim), ks = mul(T, g.k_dim), vs = mul(T, g.v_dim);
    const bool fused = g.fused_qkv() && g.traits.fused_qkv_saved_whole;
    // attention inputs kept by the q/k/v projections
    if (full) {
      // under autocast each projection casts its fp32 input to bf16 itself (fused-qkv families: one projection)
      const int casts = fused ? 1 : 3;
      if (c.amp)
        for (int i = 0; i < casts; ++i) add("qkv_in_cast" + std::to_string(i), mul(hs, 2));
      else add("norm1_out", mul(hs, 2));
    } else {
      // peft casts each adapter's input to fp32 (a no-op under amp, where the input already is fp32). Counted for
      // separate q/k/v projections; a fused projection's adapter (c_attn, query_key_value) is not: no LoRA run of
      // a fused-QKV model was measured to check it against
      uint64_t adapters = 0;
      for (TensorRole r : {TensorRole::kAttnQuery, TensorRole::kAttnKey, TensorRole::kAttnValue}) adapters += adapts(c, r) ? 1 : 0;
      if (c.amp && adapters) add("lora_in_f32", mul(hs, 4));
      else
        for (uint64_t i = 0; i < adapters; ++i) add("lora_in_f32_" + std::to_string(i), mul(hs, 4));
    }
    if (fused) add("qkv", mul(qs + ks + vs, 2));
    if (fused && g.rope) {
      add("q_rotated", mul(qs, 2));
      add("k_rotated", mul(ks, 2));
    }
    // SDPA turns a boolean mask into an additive one in the query's dtype (convert_boolean_attn_mask), per call,
    // and the memory-efficient kernel keeps it as its bias
    const uint64_t seq = c.w.prompt_tokens;
    if (g.traits.default_attention == AttentionImpl::kEager && !g.traits.scores_from_baddbmm && !fused) {
      eager_attention(layer);
      if (full || adapts(c, TensorRole::kAttnOutput)) add("o_in", mul(qs, full ? 2 : 4));
      return;
    }
    if (sdpa_mask_needed(g, layer, seq)) add("sdpa_bias", mul(c.w.batch, seq, seq, 2));
    if (!fused && sdpa_repeats_kv(g, layer, seq)) {
      add("q", mul(qs, 2));
      add("k_rep", mul(T, g.heads * g.head_dim, 2));
      add("v_rep", mul(T, g.heads * g.v_head_dim(), 2));
    } else if (!fused) {
      add("q", mul(qs, 2));
      add("k", mul(ks, 2));
      add("v", mul(vs, 2));
    }
    add("attn_out", mul(qs, 2));
    add("lse", mul(c.w.batch, g.heads, seq, 4));
    // the output projection (o_proj; phi's dense) keeps its input, or its adapter an fp32 copy of it
    if (full || adapts(c, TensorRole::kAttnOutput)) add("o_in", mul(qs, full ? 2 : 4));
  }

  // eager_attention_forward under autograd (the default of gpt-oss; modeling_gpt_oss.py): the query after rotary
  // and the keys repeated to every head (repeat_kv: new tensors) kept by the first matmul; the scores scaled and
  // masked (nothing kept); gpt-oss appends each head's sink logit (torch.cat), subtracts the row maximum (max keeps
  // its indices) and takes the softmax in the model dtype, which keeps its output, [B, H, S, S + 1]; the second
  // matmul keeps that (as the slice without the sink column) and the repeated values. Without sinks the softmax is
  // fp32 (kept) and its cast to the model dtype is what the matmul keeps. Dropout at p = 0 is the identity.
  // (Allocator trace of gpt-oss-20b LoRA, bench/data/traces: 512 MiB of probabilities per layer at 2048 tokens.)
  void eager_attention(uint64_t) {
    const auto& g = c.g;
    const uint64_t B = c.w.batch, S = c.w.prompt_tokens;
    add("q", mul(c.T, g.q_dim, 2));
    add("k_rep", mul(c.T, g.heads * g.head_dim, 2));
    add("v_rep", mul(c.T, g.heads * g.v_head_dim(), 2));
    if (g.traits.attention_sinks) {
      add("max_idx", mul(B, g.heads, S, 8));
      add("probs", mul(mul(B, g.heads, S), S + 1, g.traits.softmax_in_model_dtype ? 2 : 4));
      return;
    }
    if (g.traits.softmax_in_model_dtype) {
      add("probs", mul(mul(B, g.heads, S), S, 2));
      return;
    }
    add("probs_f32", mul(mul(B, g.heads, S), S, 4));
    add("probs", mul(mul(B, g.heads, S), S, 2));
  }

  // A sparse MoE block under autograd as transformers 5.17 runs it (grouped_mm_experts_forward, integrations/moe.py)
  // with the experts frozen (LoRA: peft's targets never reach the fused 3-D experts) and the input needing a
  // gradient: the router's fp32 softmax and top-k indices; the gather and sort indices (token_idx, perm, inv_perm);
  // grouped_mm keeps nothing of a frozen weight's input; the gate keeps gate_up (its chunks are views: act_fn's
  // input) and act(gate) (the product's other factor) - gpt-oss's clamped, sigmoid-gated GLU keeps its clamped
  // gate, the sigmoid, the GLU and up + 1 instead; the routing weights' product keeps the experts' output. DeepSeek's
  // shared experts are a dense gated MLP. (Allocator trace of gpt-oss-20b LoRA: 360 MiB per layer at 2048 tokens.)
  void moe_mlp() {
    const auto& g = c.g;
    const uint64_t T = c.T, k = std::max<uint64_t>(1, g.top_k), S = mul(T, k), I = g.moe_ffn;
    add("router_probs", mul(T, std::max<uint64_t>(1, g.experts), 4));
    add("topk_idx", mul(T, k, 8));
    for (const char* idx : {"token_idx", "perm", "inv_perm"}) add(idx, mul(S, 8));
    add("experts_gate_up", mul(S, 2 * I, 2));
    if (g.traits.experts_clamped_glu) {
      for (const char* part : {"experts_gate_clamped", "experts_sigmoid", "experts_glu", "experts_up_plus1"})
        add(part, mul(S, I, 2));
    } else {
      add("experts_act", mul(S, I, 2));
    }
    add("experts_out", mul(S, g.hidden, 2));
    if (g.shared_ffn == 0) return;
    for (const char* part : {"shared_gate", "shared_act", "shared_up"}) add(part, mul(T, g.shared_ffn, 2));
  }

  void mlp(uint64_t layer) {
    const auto& g = c.g;
    if (g.is_moe(layer) && !full) {
      moe_mlp();
      return;
    }
    const uint64_t is = mul(c.T, g.ffn);
    if (g.gated) {
      add("mlp_gate", mul(is, 2));  // act_fn keeps gate, the product keeps act(gate) and up
      add("mlp_act", mul(is, 2));
      add("mlp_up", mul(is, 2));
      if (full) add("mlp_prod", mul(is, 2));  // down_proj keeps its input
      return;
    }
    const bool python_gelu = is_python_gelu(c.f.activation);
    if (python_gelu && c.amp) {
      // NewGELU under autocast: pow is an fp32 op, so x is cast to fp32 and pow keeps that cast (not x); the
      // chain after it runs in fp32, so tanh's output and 1 + tanh are fp32; 0.5 * x stays bf16
      add("mlp_fc1_out_f32", mul(is, 4));
      add("mlp_gelu_tanh", mul(is, 4));
      add("mlp_gelu_onep", mul(is, 4));
      add("mlp_gelu_half", mul(is, 2));
    } else {
      add("mlp_fc1_out", mul(is, 2));  // the activation keeps its input
      if (python_gelu)                 // NewGELU in Python keeps tanh, 0.5*x and 1+tanh
        for (const char* part : {"mlp_gelu_tanh", "mlp_gelu_half", "mlp_gelu_onep"}) add(part, mul(is, 2));
    }
    // fc2 keeps its input when trained; a frozen fc2 with an adapter, the adapter's fp32 copy of it
    if (full || adapts(c, TensorRole::kMlpOut)) add("mlp_act_out", mul(is, full ? 2 : 4));
  }
};

}  // namespace

bool adapts(const TrainCtx& c, TensorRole role) {
  return std::find(c.adapted_roles.begin(), c.adapted_roles.end(), role) != c.adapted_roles.end();
}

// Only what is not shared with the next layer is counted here; the layer's input is counted when an op of this
// layer saves it. With LoRA the frozen embedding's output needs no gradient, so layer 0 saves nothing before its
// first adapter. Gemma 2 and 3 wrap attention and MLP in a norm before and after each (sandwich_norms).
SavedSet saved_for_layer(const TrainCtx& c, uint64_t layer) {
  const auto& g = c.g;
  SavedBuilder b{c, {}, mul(c.T, g.hidden), !c.lora, !c.lora || layer > 0};
  b.norm("norm1_in");
  b.attention(layer);
  if (g.traits.sandwich_norms) b.norm("post_attn_norm_in");
  if (c.f.resid_dropout) b.add("dropout_mask1", b.hs);
  if (g.parallel_residual()) {
    // GPT-NeoX's second norm gives the MLP its own input; a shared norm's output is the attention's, kept above
    const bool own_mlp_input = c.amp || g.traits.residual == ResidualKind::kParallelTwoNorms;
    if (b.full) b.add("mlp_in", mul(b.hs, own_mlp_input ? 2 : 0));
  } else {
    b.norm("norm2_in");
    if (b.full) b.add("mlp_in", mul(b.hs, c.amp ? 2 * (g.gated ? 2 : 1) : 2));
  }
  b.mlp(layer);
  if (g.traits.sandwich_norms) b.norm("post_mlp_norm_in");
  if (c.f.resid_dropout) b.add("dropout_mask2", b.hs);
  return b.v;
}

}  // namespace llmem::transformers
