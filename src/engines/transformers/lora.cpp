// LoRA on a llama-style decoder layer (RMSNorm, rotary, gated MLP, sequential residual; Gemma's norms too) with
// frozen bf16 base weights, replayed op by op as PyTorch runs it: every temporary is allocated and freed where the forward makes
// and drops it, and what autograd keeps for backward stays (named saved_activations/<layer>/...). Which
// temporaries exist matters beyond the peak: the blocks they leave free in the caching allocator are where the
// backward's first small tensors land (bench/data/traces, train-lora-Qwen2.5-0.5B b4 × 1024: the forward's
// 38 MiB MLP products and 14 MiB peft casts leave free blocks the backward's workspace and gradients reuse).
// Order and sizes follow modeling_llama.py / modeling_qwen2.py (LlamaRMSNorm, apply_rotary_pos_emb, LlamaMLP)
// and peft's lora Linear.forward (tuners/lora/layer.py: result = base(x); x = x.to(lora_A.dtype);
// result = result + lora_B(lora_A(x)) * scaling; result.to(result_dtype)), as the recorded trace shows them.
#include "engine.hpp"

namespace llmem::transformers {

// An RMSNorm over n elements with a frozen weight, under autograd: x.to(fp32) as `f32` (kept by pow and the rsqrt
// product when x needs a gradient: `keep_f32`), pow, h = x * rsqrt(mean + eps); then
//  - LlamaRMSNorm: h.to(bf16), w * that as `out` (the cast is not kept: only w's gradient would need it);
//  - GemmaRMSNorm (kRmsNormFp32Scale, modeling_gemma.py): h * (1.0 + w.float()) in fp32, h dropped as the name is
//    rebound, then .type_as(x) as `out` (nothing more kept: the frozen scale needs no gradient, and the product's
//    backward needs only the scale).
// The per-row statistics and the scale's fp32 copy are a few KiB, left out.
void frozen_rms_norm(Tracker& t, NormKind kind, uint64_t n, const std::string& f32, bool keep_f32,
                     const std::string& tmp, const std::string& out) {
  t.alloc(f32, mul(n, 4));
  t.alloc(tmp + "_pow", mul(n, 4));
  t.free(tmp + "_pow");
  t.alloc(tmp + "_h", mul(n, 4));
  if (!keep_f32) t.free(f32);
  if (kind == NormKind::kRmsNormFp32Scale) {
    t.alloc(tmp + "_scaled", mul(n, 4));
    t.free(tmp + "_h");
    t.alloc(out, mul(n, 2));
    t.free(tmp + "_scaled");
    return;
  }
  t.alloc(tmp + "_cast", mul(n, 2));
  t.alloc(out, mul(n, 2));
  t.free(tmp + "_cast");
  t.free(tmp + "_h");
}

// The replay below holds where its assumptions do: bf16 without autocast, an RMSNorm (Llama's or Gemma's),
// separate q/k/v projections, rotary on whole heads, a dense gated MLP, a sequential residual (with or without
// sandwich norms) without dropout.
bool lora_oplevel(const TrainCtx& c) {
  const auto& g = c.g;
  return c.lora && !c.amp && g.rms_norm() && g.traits.qkv == QkvLayout::kSeparate && g.gated &&
         !g.parallel_residual() && g.rope && g.experts == 0 && g.rot_dims == g.head_dim && !c.f.resid_dropout;
}

namespace {

// The ops of one layer's forward. `grad` false is a checkpointed layer's first forward under no_grad: the same
// ops, nothing kept.
class LoraLayer {
 public:
  LoraLayer(TrainCtx& c, uint64_t layer, bool grad) : c_(c), t_(c.t), g_(c.g), layer_(layer), grad_(grad) {}

  SavedSet run(const std::string& out);

 private:
  // A tensor the forward makes; with `kept` (autograd saves it) and grad on, it is a saved activation.
  void make(const std::string& name, uint64_t bytes, bool kept = false) {
    if (kept && grad_) {
      t_.alloc(concat("saved_activations/", layer_, "/", name), bytes);
      saved_.emplace_back(name, bytes);
    } else {
      t_.alloc(L(layer_, name), bytes);
    }
  }
  // The forward drops its reference to a tensor made with the same `kept`: it goes, unless autograd keeps it.
  void drop(const std::string& name, bool kept = false) {
    if (!(kept && grad_)) t_.free(L(layer_, name));
  }
  void rms(const std::string& p, uint64_t width, bool input_needs_grad);
  void linear(TensorRole role, const std::string& mod, uint64_t in, uint64_t outw, const std::string& res,
              bool keep_res);
  void attention();
  void mlp_and_residual(const std::string& out);

  TrainCtx& c_;
  Tracker& t_;
  const Geometry& g_;
  uint64_t layer_;
  bool grad_;
  SavedSet saved_;
};

// A frozen RMSNorm `p` of width `width`: its fp32 input is kept when the input needs a gradient; leaves p_out.
void LoraLayer::rms(const std::string& p, uint64_t width, bool input_needs_grad) {
  const bool keep = input_needs_grad && grad_;
  const std::string f32 = keep ? concat("saved_activations/", layer_, "/", p, "_f32") : L(layer_, p + "_f32");
  if (keep) saved_.emplace_back(p + "_f32", mul(c_.T, width, 4));
  frozen_rms_norm(t_, g_.traits.norm, mul(c_.T, width), f32, keep, L(layer_, p), L(layer_, p + "_out"));
}

// A frozen bf16 linear of width in -> outw (the layer's module of `role`; `mod` names its temporaries), with an
// fp32 adapter when it carries one; its result is `res`.
void LoraLayer::linear(TensorRole role, const std::string& mod, uint64_t in, uint64_t outw, const std::string& res,
                       bool keep_res) {
  const uint64_t T = c_.T;
  if (!adapts(c_, role)) {
    make(res, mul(T, outw, 2), keep_res);
    return;
  }
  make(mod + "_base", mul(T, outw, 2));
  // Trainer(bf16=True) runs under autocast: peft still casts x to the adapter's fp32, but autocast casts it back to
  // bf16 for lora_A (that copy is what autograd keeps), and lora_A, lora_B, the scaling and the sum all come out in
  // bf16 (measured: TinyLlama LoRA b2 x 1024 peaks 0.73 GB lower under the Trainer than in a plain loop,
  // bench/data/transformers_finetune.jsonl: q/k/v/o x 22 layers x 2048 tokens x 2048 x 2 bytes). Without autocast
  // the adapter path runs in fp32.
  const bool autocast = c_.w.hf_trainer;
  const uint64_t a = autocast ? 2 : 4;  // bytes per element of the adapter path
  const std::string x = mod + (autocast ? "_xbf16" : "_x32");
  if (autocast) make(mod + "_x32", mul(T, in, 4));
  make(x, mul(T, in, a), true);  // kept for lora_A's weight gradient
  if (autocast) drop(mod + "_x32");
  make(mod + "_a", mul(T, c_.w.lora_r, a), true);  // kept for lora_B's weight gradient
  make(mod + "_b", mul(T, outw, a));
  drop(mod + "_a", true);
  make(mod + "_scaled", mul(T, outw, a));
  drop(mod + "_b");
  if (autocast) {
    make(res, mul(T, outw, 2), keep_res);  // result + the bf16 update
    drop(mod + "_scaled");
    drop(mod + "_base");
  } else {
    make(mod + "_sum", mul(T, outw, 4));  // bf16 result + fp32 update promotes to fp32
    drop(mod + "_scaled");
    drop(mod + "_base");
    make(res, mul(T, outw, 2), keep_res);  // result.to(torch_result_dtype)
    drop(mod + "_sum");
  }
  drop(x, true);
}

// q, k, v (Qwen3 and kin: q_norm(q_proj(x).view(...)), k_norm likewise, per head; the projection's output goes
// when its norm returns, the norm keeping its own fp32 copy), rotary, SDPA, o_proj and the first residual. With
// sandwich norms (Gemma2DecoderLayer) the attention's output is normed before the residual add: its fp32 input is
// kept (the adapters make it need a gradient) and o_proj's output goes when the norm returns.
void LoraLayer::attention() {
  const uint64_t T = c_.T, seq = c_.w.prompt_tokens;
  const bool qk_norm = g_.traits.qk_norm;
  linear(TensorRole::kAttnQuery, "q_proj", g_.hidden, g_.q_dim, "q_lin", false);
  if (qk_norm) {
    rms("qn", g_.q_dim, true);
    drop("q_lin");
  }
  linear(TensorRole::kAttnKey, "k_proj", g_.hidden, g_.k_dim, "k_lin", false);
  if (qk_norm) {
    rms("kn", g_.k_dim, true);
    drop("k_lin");
  }
  const bool repeat_kv = sdpa_repeats_kv(g_, layer_, seq);
  linear(TensorRole::kAttnValue, "v_proj", g_.hidden, g_.v_dim, "v", !repeat_kv);  // SDPA's v, unless it gets an expanded copy
  // q * cos + rotate_half(q) * sin; the same for k. The embedded q and k are SDPA's inputs (kept); the
  // projections are not (the products with cos and sin keep only cos and sin)
  for (const auto& [which, dim] : {std::pair<const char*, uint64_t>{"q", g_.q_dim}, {"k", g_.k_dim}}) {
    const std::string b = which;
    const uint64_t n = mul(T, dim, 2);
    make(b + "_cos", n);
    make(b + "_neg", n / 2);
    make(b + "_cat", n);
    drop(b + "_neg");
    make(b + "_rotsin", n);
    drop(b + "_cat");
    make(b + "_emb", n, b == "q" || !repeat_kv);
    drop(b + "_cos");
    drop(b + "_rotsin");
  }
  if (qk_norm) {
    drop("qn_out");
    drop("kn_out");
  } else {
    drop("q_lin");
    drop("k_lin");
  }
  // SDPA (memory-efficient kernel under autograd): output and logsumexp, both kept with q, k, v; the output's
  // transpose + reshape is a view here
  if (repeat_kv) {
    make("k_rep", mul(T, g_.heads * g_.head_dim, 2), true);
    make("v_rep", mul(T, g_.heads * g_.v_head_dim(), 2), true);
  }
  // a boolean mask becomes an additive bf16 bias inside SDPA, kept for backward (see saved_for_layer)
  const bool masked = sdpa_mask_needed(g_, layer_, seq);
  if (masked) make("sdpa_bias", mul(c_.w.batch, seq, seq, 2), true);
  make("attn", mul(T, g_.q_dim, 2), true);
  make("lse", mul(c_.w.batch, g_.heads, seq, 4), true);
  drop("lse", true);
  if (masked) drop("sdpa_bias", true);
  if (repeat_kv) {
    drop("k_rep", true);
    drop("v_rep", true);
  }
  drop("q_emb", true);
  drop("k_emb", !repeat_kv);
  drop("v", !repeat_kv);
  linear(TensorRole::kAttnOutput, "o_proj", g_.q_dim, g_.hidden, "o", false);
  drop("attn", true);
  drop("n1_out");
  std::string branch = "o";
  if (g_.traits.sandwich_norms) {
    rms("post_attn", g_.hidden, true);  // post_attention_layernorm(o)
    drop("o");
    branch = "post_attn_out";
  }
  make("resid1", mul(T, g_.hidden, 2));
  drop(branch);
}

// act_fn(gate_proj(x)) * up_proj(x): the activation keeps its input, the product keeps both operands; down_proj
// keeps its input only through an adapter (its x32); then the second residual. The MLP's norm is the layer's second
// (post_attention_layernorm; Gemma 2/3: pre_feedforward_layernorm), and with sandwich norms the MLP's output is
// normed too (post_feedforward_layernorm) before the residual add.
void LoraLayer::mlp_and_residual(const std::string& out) {
  const uint64_t T = c_.T;
  rms("n2", g_.hidden, true);
  linear(TensorRole::kMlpGate, "gate_proj", g_.hidden, g_.ffn, "mlp_gate", true);
  make("mlp_act", mul(T, g_.ffn, 2), true);
  drop("mlp_gate", true);
  linear(TensorRole::kMlpUp, "up_proj", g_.hidden, g_.ffn, "mlp_up", true);
  make("mlp_prod", mul(T, g_.ffn, 2));
  drop("mlp_act", true);
  drop("mlp_up", true);
  linear(TensorRole::kMlpDown, "down_proj", g_.ffn, g_.hidden, "down", false);
  drop("mlp_prod");
  drop("n2_out");
  std::string branch = "down";
  if (g_.traits.sandwich_norms) {
    rms("post_mlp", g_.hidden, true);  // post_feedforward_layernorm(down)
    drop("down");
    branch = "post_mlp_out";
  }
  t_.alloc(out, mul(T, g_.hidden, 2));
  drop(branch);
  drop("resid1");
}

SavedSet LoraLayer::run(const std::string& out) {
  rms("n1", g_.hidden, layer_ > 0);  // the frozen embedding's output needs no gradient
  attention();
  mlp_and_residual(out);
  return std::move(saved_);
}

}  // namespace

SavedSet lora_layer_forward(TrainCtx& c, uint64_t layer, bool grad, const std::string& out) {
  return LoraLayer(c, layer, grad).run(out);
}

}  // namespace llmem::transformers
