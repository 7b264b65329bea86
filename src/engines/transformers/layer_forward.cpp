// One decoder layer's forward without autograd, op by op: norms, the MLP and the residual stream around the
// attention (attention.cpp). Inference runs it; so does a checkpointed layer's first forward in training.
#include "engine.hpp"

namespace llmem::transformers {

void norm(Ctx& c, const std::string& out, uint64_t rows, uint64_t width, const std::string& scratch) {
  const uint64_t n = mul(rows, width);
  if (!c.g.rms_norm()) {
    c.t.alloc(out, mul(n, c.s));  // F.layer_norm: one fused kernel, output in the input dtype
    return;
  }
  // LlamaRMSNorm: h = x.to(fp32); var = h.pow(2).mean(-1); h = h * rsqrt(var + eps); w * h.to(dtype)
  const bool upcast = c.s < 4;
  if (upcast) c.t.alloc(scratch + "/f32", mul(n, 4));
  c.t.alloc(scratch + "/pow", mul(n, 4));
  c.t.alloc(scratch + "/var", mul(rows, 4));
  c.t.free(scratch + "/pow");
  c.t.alloc(scratch + "/normed", mul(n, 4));
  if (upcast) c.t.free(scratch + "/f32");
  c.t.free(scratch + "/var");
  if (upcast) c.t.alloc(scratch + "/cast", mul(n, c.s));
  c.t.alloc(out, mul(n, c.s));
  if (upcast) c.t.free(scratch + "/cast");
  c.t.free(scratch + "/normed");
}

namespace {

// down_proj(act_fn(gate_proj(x)) * up_proj(x)) on T tokens of MLP width `width`: act(gate), up and their product
// alive together; leaves `out` [T, hidden]. Tensor names start with `prefix` (DeepSeek's shared experts: "shared_").
void gated_mlp(Ctx& c, uint64_t layer, uint64_t T, uint64_t width, const std::string& prefix, const std::string& out) {
  const uint64_t n = mul(T, width, c.s);
  if (c.g.fused_gate_up && prefix.empty()) {
    // Phi3MLP: up_states = gate_up_proj(x); gate, up_states = up_states.chunk(2); up_states = up_states *
    // act(gate): the chunks are views, and `gate` keeps the whole projection alive until the function returns
    // (allocator trace of Phi-3.5-mini at 16k tokens: 512 + 256 + 256 MiB at the peak)
    c.t.alloc(L(layer, "gate_up"), mul(n, 2));
    c.t.alloc(L(layer, "act"), n);
    c.t.alloc(L(layer, "prod"), n);
    c.t.free(L(layer, "act"));
    c.t.alloc(out, mul(T, c.g.hidden, c.s));
    c.t.free(L(layer, "prod"));
    c.t.free(L(layer, "gate_up"));
    return;
  }
  c.t.alloc(L(layer, prefix + "gate"), n);
  c.t.alloc(L(layer, prefix + "act"), n);
  c.t.free(L(layer, prefix + "gate"));
  c.t.alloc(L(layer, prefix + "up"), n);
  c.t.alloc(L(layer, prefix + "prod"), n);
  c.t.free(L(layer, prefix + "act"));
  c.t.free(L(layer, prefix + "up"));
  c.t.alloc(out, mul(T, c.g.hidden, c.s));
  c.t.free(L(layer, prefix + "prod"));
}

// A sparse MoE block without autograd, as transformers 5.17 runs it on PyTorch >= 2.9 (PreTrainedModel picks
// config._experts_implementation = "grouped_mm"; integrations/moe.py grouped_mm_experts_forward). The router:
// logits in the model dtype, softmax in fp32, top-k weights (renormalised) cast back - DeepSeek's stay fp32
// (moe_routing_fp32). The experts, in the order the allocator traces show (Qwen3-30B-A3B, DeepSeek-V2-Lite,
// bench/data/traces): each token's top-k rows gathered in expert order (one [S, H] tensor, S = tokens x k), the
// first grouped_mm [S, 2I] and a copy of it (the first dropped), act(gate) and its product with up (act dropped,
// then the copy), the second grouped_mm [S, H] and its copy (the product, then the grouped_mm output dropped), the
// routing weights applied (in the promoted dtype: fp32 with DeepSeek's weights), put back in token order (the
// weighted rows dropped), summed per token into the block's output (cast to the model dtype when it is fp32); the
// rows, the copy and the unsorted rows live until the function returns. DeepSeek's shared experts then run as one
// dense MLP on the block's input.
void moe_mlp(Ctx& c, uint64_t layer, uint64_t tokens, const std::string& out) {
  const auto& g = c.g;
  const uint64_t T = tokens, E = std::max<uint64_t>(1, g.experts), k = std::max<uint64_t>(1, g.top_k);
  const uint64_t S = mul(T, k), H = g.hidden, I = g.moe_ffn, s = c.s;
  const uint64_t ws = g.weighted_experts_bytes(s);
  c.t.alloc(L(layer, "router_logits"), mul(T, E, s));
  c.t.alloc(L(layer, "router_probs"), mul(T, E, 4));
  c.t.alloc(L(layer, "topk_w"), mul(T, k, 4));
  c.t.alloc(L(layer, "topk_idx"), mul(T, k, 8));
  c.t.free(L(layer, "router_probs"));
  c.t.alloc(L(layer, "topk_sum"), mul(T, 4));
  c.t.alloc(L(layer, "topk_norm"), mul(T, k, 4));
  c.t.free(L(layer, "topk_sum"));
  c.t.free(L(layer, "topk_w"));
  c.t.alloc(L(layer, "topk_weights"), mul(T, k, ws));
  c.t.free(L(layer, "topk_norm"));
  // grouped_mm_experts_forward
  c.t.alloc(L(layer, "arange"), mul(T, 8));
  c.t.alloc(L(layer, "token_idx"), mul(S, 8));
  c.t.free(L(layer, "arange"));
  for (const char* sorted : {"perm", "inv_perm"}) {  // argsort: sort's values and indices, the values dropped
    c.t.alloc(L(layer, std::string(sorted) + "_values"), mul(S, 8));
    c.t.alloc(L(layer, sorted), mul(S, 8));
    c.t.free(L(layer, std::string(sorted) + "_values"));
  }
  c.t.alloc(L(layer, "rows"), mul(S, H, s));
  if (g.experts_bias) {  // gate_up_proj_bias[expert_ids_g], down_proj_bias[expert_ids_g]: locals to the end
    c.t.alloc(L(layer, "gate_up_bias"), mul(S, 2 * I, s));
    c.t.alloc(L(layer, "down_bias"), mul(S, H, s));
  }
  c.t.alloc(L(layer, "histc_in"), mul(S, 4));
  c.t.alloc(L(layer, "counts"), mul(E, 4));
  c.t.alloc(L(layer, "offsets"), mul(E, 4));
  c.t.alloc(L(layer, "gate_up_mm"), mul(S, 2 * I, s));
  c.t.alloc(L(layer, "gate_up"), mul(S, 2 * I, s));
  c.t.free(L(layer, "gate_up_mm"));
  c.t.alloc(L(layer, "act"), mul(S, I, s));
  c.t.alloc(L(layer, "act_up"), mul(S, I, s));
  c.t.free(L(layer, "act"));
  c.t.free(L(layer, "gate_up"));
  c.t.alloc(L(layer, "down_mm"), mul(S, H, s));
  c.t.free(L(layer, "act_up"));
  c.t.alloc(L(layer, "down"), mul(S, H, s));
  c.t.free(L(layer, "down_mm"));
  c.t.alloc(L(layer, "down_w"), mul(S, H, ws));  // out_per_sample_g * sample_weights_g
  c.t.alloc(L(layer, "down_unsorted"), mul(S, H, ws));  // [inv_perm]
  c.t.free(L(layer, "down_w"));
  if (ws != s) {
    c.t.alloc(L(layer, "moe_sum_f32"), mul(T, H, ws));
    c.t.alloc(out, mul(T, H, s));  // .to(hidden_states.dtype)
  } else {
    c.t.alloc(out, mul(T, H, s));
  }
  for (const char* local : {"token_idx", "perm", "inv_perm", "rows", "histc_in", "counts", "offsets", "down",
                            "down_unsorted"})
    c.t.free(L(layer, local));
  if (ws != s) c.t.free(L(layer, "moe_sum_f32"));
  if (g.experts_bias) {
    c.t.free(L(layer, "gate_up_bias"));
    c.t.free(L(layer, "down_bias"));
  }
  c.t.free(L(layer, "topk_weights"));
  c.t.free(L(layer, "topk_idx"));
  c.t.free(L(layer, "router_logits"));
  if (g.shared_ffn == 0) return;
  // shared_experts(residuals): down(act(gate(x)) * up(x)), added to the routed output (a new tensor)
  gated_mlp(c, layer, T, g.shared_ffn, "shared_", L(layer, "shared_out"));
  c.t.alloc(L(layer, "moe_sum"), mul(T, H, s));
  c.t.free(L(layer, "shared_out"));
  c.t.free(out);
  c.t.alloc(out, mul(T, H, s));
  c.t.free(L(layer, "moe_sum"));
}

// NewGELUActivation in Python (activations.py), evaluated left to right, each op a new tensor:
// 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))). Leaves `act`.
void python_gelu(Ctx& c, uint64_t layer, uint64_t bytes) {
  c.t.alloc(L(layer, "gelu_half"), bytes);    // 0.5 * x
  c.t.alloc(L(layer, "gelu_cube"), bytes);    // x^3
  c.t.alloc(L(layer, "gelu_cube_s"), bytes);  // 0.044715 * x^3
  c.t.free(L(layer, "gelu_cube"));
  c.t.alloc(L(layer, "gelu_inner"), bytes);   // x + ...
  c.t.free(L(layer, "gelu_cube_s"));
  c.t.alloc(L(layer, "gelu_scaled"), bytes);  // sqrt(2/pi) * (...)
  c.t.free(L(layer, "gelu_inner"));
  c.t.alloc(L(layer, "gelu_tanh"), bytes);
  c.t.free(L(layer, "gelu_scaled"));
  c.t.alloc(L(layer, "gelu_onep"), bytes);    // 1 + tanh
  c.t.free(L(layer, "gelu_tanh"));
  c.t.alloc(L(layer, "act"), bytes);
  c.t.free(L(layer, "gelu_half"));
  c.t.free(L(layer, "gelu_onep"));
}

}  // namespace

void mlp(Ctx& c, uint64_t layer, uint64_t tokens, const std::string& out) {
  const auto& g = c.g;
  const uint64_t T = mul(c.batch, tokens);
  if (g.is_moe(layer)) {
    moe_mlp(c, layer, T, out);
    return;
  }
  if (g.gated) {
    gated_mlp(c, layer, T, g.ffn, "", out);
    return;
  }
  // fc2(act(fc1(x)))
  const uint64_t n = mul(T, g.ffn, c.s);
  c.t.alloc(L(layer, "fc1"), n);
  if (is_python_gelu(g.activation)) python_gelu(c, layer, n);
  else c.t.alloc(L(layer, "act"), n);
  c.t.free(L(layer, "fc1"));
  c.t.alloc(out, mul(T, g.hidden, c.s));
  c.t.free(L(layer, "act"));
}

// The caller's loop variable keeps the layer's input alive for the whole call (`hidden_states =
// layer(hidden_states, ...)`), and the model keeps `inputs_embeds` until its forward returns. Eager attention's
// weights (attn_weights) live as long as the decoder layer's call (`hidden_states, _ = self.self_attn(...)`);
// where the block returns them in its outputs tuple (block_returns_attn_weights: bloom), the model's loop variable
// holds them until the next block returns, so they outlive one more layer.
void decoder_layer(Ctx& c, uint64_t layer, uint64_t q_len, uint64_t kv_len, const std::string& out,
                   const std::function<void()>& update_cache) {
  const auto& g = c.g;
  auto end_of_layer = [&] {
    if (!keeps_attn_weights(c)) return;
    if (!g.traits.block_returns_attn_weights) free_attn_weights(c, layer);
    else if (layer > 0) free_attn_weights(c, layer - 1);
  };
  const uint64_t T = mul(c.batch, q_len);
  c.t.set_phase(concat("layer ", layer, " (", q_len, " tokens)"));
  norm(c, L(layer, "norm1"), T, g.hidden, L(layer, "norm1_tmp"));
  attention(c, layer, q_len, kv_len, L(layer, "attn_out"), update_cache);
  switch (g.traits.residual) {
    case ResidualKind::kParallelTwoNorms:
      // out = mlp(ln2(x)) + attn(ln1(x)) + x, the MLP's norm taken after the attention returns (allocator trace
      // of pythia-1.4b)
      c.t.free(L(layer, "norm1"));
      norm(c, L(layer, "norm2"), T, g.hidden, L(layer, "norm2_tmp"));
      mlp(c, layer, q_len, L(layer, "mlp_out"));
      c.t.free(L(layer, "norm2"));
      c.t.alloc(L(layer, "sum"), mul(T, g.hidden, c.s));
      c.t.alloc(out, mul(T, g.hidden, c.s));
      c.t.free(L(layer, "sum"));
      c.t.free(L(layer, "attn_out"));
      c.t.free(L(layer, "mlp_out"));
      break;
    case ResidualKind::kParallelSharedNorm:
      // attention and MLP read the same normed input; out = residual + attn + mlp
      mlp(c, layer, q_len, L(layer, "mlp_out"));
      c.t.free(L(layer, "norm1"));
      c.t.alloc(L(layer, "sum"), mul(T, g.hidden, c.s));
      c.t.free(L(layer, "attn_out"));
      c.t.free(L(layer, "mlp_out"));
      c.t.alloc(out, mul(T, g.hidden, c.s));
      c.t.free(L(layer, "sum"));
      break;
    case ResidualKind::kSequential:
      c.t.free(L(layer, "norm1"));
      c.t.alloc(L(layer, "resid1"), mul(T, g.hidden, c.s));  // residual + attention
      c.t.free(L(layer, "attn_out"));
      norm(c, L(layer, "norm2"), T, g.hidden, L(layer, "norm2_tmp"));
      mlp(c, layer, q_len, L(layer, "mlp_out"));
      c.t.free(L(layer, "norm2"));
      c.t.alloc(out, mul(T, g.hidden, c.s));
      c.t.free(L(layer, "mlp_out"));
      c.t.free(L(layer, "resid1"));
      break;
  }
  end_of_layer();
}

}  // namespace llmem::transformers
