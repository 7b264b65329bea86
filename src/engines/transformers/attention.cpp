// The self-attention of one decoder layer without autograd, op by op: the q/k/v projections, the rotary embedding
// (q_embed = q * cos + rotate_half(q) * sin, modeling_llama.py apply_rotary_pos_emb), the KV cache update, then one
// of four kernels as PyTorch runs them, and the output projection.
#include "engine.hpp"

namespace llmem::transformers {
namespace {

// Which kernel computes softmax(q k^T) v.
enum class Kernel {
  kMathFp32Upcast,  // PyTorch's math SDPA on 16-bit inputs with its fp32 upcast (falcon, see sdpa_math_fp32)
  kMathGqa,         // PyTorch's math SDPA on fp32 inputs with GQA: K/V repeated, every step a new tensor
  kEager,           // scores materialised (eager_attention_forward, or a family's own path)
  kFlash,           // SDPA's flash / memory-efficient kernels: no scores
};

Kernel kernel_of(const Ctx& c) {
  if (c.math_sdpa_upcast) return Kernel::kMathFp32Upcast;
  if (!c.eager && c.s == 4 && c.g.gqa_groups() > 1) return Kernel::kMathGqa;
  return c.eager ? Kernel::kEager : Kernel::kFlash;
}

// The projections, then the rotary embedding of q and k. One fused projection (GPT-2's c_attn, query_key_value,
// Phi-3's qkv_proj) makes one tensor; q, k and v are views of it, so it lives until the attention returns
// (allocator trace of pythia-1.4b: one 384 MiB block). With partial rotary (phi, gpt-neox) only the first rot_dims
// of each head are rotated, then cat((rot, pass)) rebuilds the full tensor; the pass view keeps the projection's
// output alive until the attention returns.
void project_and_rotate(Ctx& c, uint64_t layer, uint64_t tokens) {
  const auto& g = c.g;
  first_matmul(c);
  if (g.fused_qkv()) {
    c.t.alloc(L(layer, "qkv"), mul(tokens, g.q_dim + g.k_dim + g.v_dim, c.s));
  } else {
    c.t.alloc(L(layer, "q"), mul(tokens, g.q_dim, c.s));
    c.t.alloc(L(layer, "k"), mul(tokens, g.k_dim, c.s));
    c.t.alloc(L(layer, "v"), mul(tokens, g.v_dim, c.s));
  }
  if (!g.rope) return;
  const bool partial = g.partial_rope();
  // q * cos + rotate_half(q) * sin, then the same for k; rotate_half = cat(-x2, x1)
  for (const char* which : {"q", "k"}) {
    const uint64_t heads = which[0] == 'q' ? g.heads : (g.k_dim / std::max<uint64_t>(1, g.head_dim));
    const uint64_t n = mul(tokens, heads, g.rot_dims, c.s);
    const std::string base = L(layer, which);
    c.t.alloc(base + "_cos", n);
    c.t.alloc(base + "_neg", n / 2);
    c.t.alloc(base + "_rot", n);
    c.t.free(base + "_neg");
    c.t.alloc(base + "_rotsin", n);
    c.t.free(base + "_rot");
    c.t.alloc(base + (partial ? "_emb_rot" : "_emb"), n);
    c.t.free(base + "_cos");
    c.t.free(base + "_rotsin");
    // the projection is dropped once rotated, unless a pass view keeps it (partial) or it is a view of the fused qkv
    if (!partial && !g.fused_qkv()) c.t.free(base);
  }
  if (partial) {
    c.t.alloc(L(layer, "q_emb"), mul(tokens, g.q_dim, c.s));
    c.t.alloc(L(layer, "k_emb"), mul(tokens, g.k_dim, c.s));
  }
}

// PyTorch's math SDPA (aten _scaled_dot_product_attention_math) on 16-bit inputs: it upcasts q, k and v to fp32
// (k and v expanded to every head), scales q, computes fp32 scores, a safe softmax (its all-masked-row check is a
// bool tensor), returns the weights cast back and the output through an fp32 matmul. The order and lifetimes
// follow a recorded allocator trace of falcon-7b (bench/data/traces).
void sdpa_math_fp32(Ctx& c, uint64_t layer, uint64_t q_len, uint64_t kv_len) {
  const auto& g = c.g;
  const uint64_t eh = mul(c.batch, g.heads, q_len, g.head_dim), ekv = mul(c.batch, g.heads, kv_len, g.head_dim);
  const uint64_t es = mul(c.batch, g.heads, q_len, kv_len);
  c.t.alloc(L(layer, "sdpa_mask"), mul(c.batch, q_len, kv_len, c.s));
  c.t.alloc(L(layer, "q32"), mul(eh, 4));
  c.t.alloc(L(layer, "k32"), mul(ekv, 4));
  c.t.alloc(L(layer, "v32"), mul(ekv, 4));
  c.t.alloc(L(layer, "q32_scaled"), mul(eh, 4));
  c.t.alloc(L(layer, "scores32"), mul(es, 4));
  c.t.free(L(layer, "q32_scaled"));
  c.t.free(L(layer, "k32"));
  c.t.alloc(L(layer, "softmax32"), mul(es, 4));
  c.t.alloc(L(layer, "all_masked"), es);
  c.t.free(L(layer, "all_masked"));
  c.t.free(L(layer, "scores32"));
  c.t.alloc(L(layer, "weights_cast"), mul(es, c.s));
  c.t.alloc(L(layer, "out32"), mul(eh, 4));
  c.t.alloc(L(layer, "out32_b"), mul(eh, 4));
  c.t.free(L(layer, "out32"));
  c.t.alloc(L(layer, "attn"), mul(c.batch, q_len, g.q_dim, c.s));
  c.t.free(L(layer, "out32_b"));
  c.t.free(L(layer, "softmax32"));
  c.t.free(L(layer, "q32"));
  c.t.free(L(layer, "v32"));
  c.t.free(L(layer, "weights_cast"));
  c.t.free(L(layer, "sdpa_mask"));
}

// K and V expanded to every query head (repeat_kv): [batch, kv_len, heads * head_dim] each.
void repeat_kv(Ctx& c, uint64_t layer, uint64_t kv_len) {
  const auto& g = c.g;
  c.t.alloc(L(layer, "k_rep"), mul(c.batch, kv_len, g.heads * g.head_dim, c.s));
  c.t.alloc(L(layer, "v_rep"), mul(c.batch, kv_len, g.heads * g.v_head_dim(), c.s));
}
void free_repeated_kv(Ctx& c, uint64_t layer) {
  c.t.free(L(layer, "k_rep"));
  c.t.free(L(layer, "v_rep"));
}

// torch's math backend on fp32 inputs with GQA: K/V repeated, scores, causal bias added, softmax, each a new tensor
void sdpa_math_gqa(Ctx& c, uint64_t layer, uint64_t q_len, uint64_t kv_len) {
  const auto& g = c.g;
  repeat_kv(c, layer, kv_len);
  const uint64_t scores = mul(c.batch, g.heads, q_len, kv_len);
  c.t.alloc(L(layer, "scores"), mul(scores, c.s));
  c.t.alloc(L(layer, "scores_masked"), mul(scores, c.s));
  c.t.free(L(layer, "scores"));
  c.t.alloc(L(layer, "probs"), mul(scores, c.s));
  c.t.free(L(layer, "scores_masked"));
  c.t.alloc(L(layer, "attn"), mul(c.batch, q_len, g.q_dim, c.s));
  c.t.free(L(layer, "probs"));
  free_repeated_kv(c, layer);
}

// eager_attention_forward: repeat_kv, scores = q @ k^T (+ mask), softmax in fp32, cast back, @ v. The
// probabilities (probs, or softmax_f32 itself in fp32) are returned as attn_weights: the decoder layer holds them
// until it returns (see decoder_layer). With scores_from_baddbmm (BloomAttention) the scores and masked scores stay
// in the attention's locals until it returns (see attention).
void eager(Ctx& c, uint64_t layer, uint64_t q_len, uint64_t kv_len) {
  const auto& g = c.g;
  const bool repeated = g.gqa_groups() > 1;
  if (repeated) repeat_kv(c, layer, kv_len);
  const uint64_t scores = mul(c.batch, g.heads, q_len, kv_len);
  c.t.alloc(L(layer, "scores"), mul(scores, c.s));
  if (g.traits.attention_sinks) {
    // (q @ k^T) * scaling, + mask, cat([scores, sinks]), minus its row max, softmax in the model dtype
    const uint64_t with_sink = mul(c.batch, g.heads, q_len, kv_len + 1);
    c.t.alloc(L(layer, "scores_scaled"), mul(scores, c.s));
    c.t.free(L(layer, "scores"));
    c.t.alloc(L(layer, "scores_masked"), mul(scores, c.s));
    c.t.free(L(layer, "scores_scaled"));
    c.t.alloc(L(layer, "combined"), mul(with_sink, c.s));
    c.t.alloc(L(layer, "row_max"), mul(c.batch, g.heads, q_len, c.s + 8));  // max's values and indices
    c.t.alloc(L(layer, "combined_shifted"), mul(with_sink, c.s));
    c.t.free(L(layer, "row_max"));
    c.t.free(L(layer, "combined"));
    c.t.alloc(L(layer, "probs"), mul(with_sink, c.s));
    c.t.free(L(layer, "combined_shifted"));
    c.t.free(L(layer, "scores_masked"));  // attn_weights = dropout(probs[..., :-1]): a view of probs
    c.t.alloc(L(layer, "attn"), mul(c.batch, q_len, g.heads * g.v_head_dim(), c.s));
    if (repeated) free_repeated_kv(c, layer);
    return;
  }
  if (!g.traits.scores_from_baddbmm) {
    // torch.matmul(q, k^T) * scaling, then + mask (GPT-2's own path: / sqrt(d), then torch.where(causal, ...)):
    // each a new tensor
    c.t.alloc(L(layer, "scores_scaled"), mul(scores, c.s));
    c.t.free(L(layer, "scores"));
    c.t.alloc(L(layer, "scores_masked"), mul(scores, c.s));
    c.t.free(L(layer, "scores_scaled"));
  } else {
    c.t.alloc(L(layer, "scores_masked"), mul(scores, c.s));
  }
  if (g.traits.softmax_in_model_dtype) {
    c.t.alloc(L(layer, "probs"), mul(scores, c.s));
  } else {
    // F.softmax(x, dtype=float32): for a float16 x on CUDA one fused kernel writes the fp32 result
    // (at::_softmax with half_to_float); a bfloat16 x is cast to fp32 first, so both fp32 tensors exist
    if (c.bf16) c.t.alloc(L(layer, "softmax_in_f32"), mul(scores, 4));
    c.t.alloc(L(layer, "softmax_f32"), mul(scores, 4));
    if (c.bf16) c.t.free(L(layer, "softmax_in_f32"));
    if (c.s < 4) {
      c.t.alloc(L(layer, "probs"), mul(scores, c.s));
      c.t.free(L(layer, "softmax_f32"));
    }
  }
  if (!g.traits.scores_from_baddbmm) c.t.free(L(layer, "scores_masked"));
  c.t.alloc(L(layer, "attn"), mul(c.batch, q_len, g.heads * g.v_head_dim(), c.s));
  if (repeated) free_repeated_kv(c, layer);
}

// F.scaled_dot_product_attention (flash or memory-efficient): output, plus its logsumexp. With a mask (sliding
// window, see sdpa_mask_needed) K and V are expanded to every head first and SDPA converts the boolean mask into an
// additive one in the model dtype; all three go when sdpa_attention_forward returns.
void sdpa_flash(Ctx& c, uint64_t layer, uint64_t q_len, uint64_t kv_len) {
  const auto& g = c.g;
  const bool masked = q_len > 1 && (c.always_masked || sdpa_mask_needed(g, layer, kv_len));
  const bool repeated = masked && g.gqa_groups() > 1;
  if (repeated) repeat_kv(c, layer, kv_len);
  if (masked) c.t.alloc(L(layer, "sdpa_bias"), mul(c.batch, q_len, kv_len, c.s));
  c.t.alloc(L(layer, "lse"), mul(c.batch, g.heads, q_len, 4));
  c.t.alloc(L(layer, "attn"), mul(c.batch, q_len, g.q_dim, c.s));
  c.t.free(L(layer, "lse"));
  if (masked) c.t.free(L(layer, "sdpa_bias"));
  if (repeated) free_repeated_kv(c, layer);
}

}  // namespace

void first_matmul(Ctx& c) {
  if (!c.cublas_pending) return;
  c.t.alloc("workspace/cublas", kCublasWorkspaceBytes);
  c.cublas_pending = false;
}

bool keeps_attn_weights(const Ctx& c) { return kernel_of(c) == Kernel::kEager; }

void free_attn_weights(Ctx& c, uint64_t layer) {
  // eager() leaves probs, except an fp32 softmax with the fp32 upcast, whose result is softmax_f32 itself
  const bool fp32_softmax_result = !c.g.traits.softmax_in_model_dtype && c.s >= 4;
  c.t.free(L(layer, fp32_softmax_result ? "softmax_f32" : "probs"));
}

void attention(Ctx& c, uint64_t layer, uint64_t q_len, uint64_t kv_len, const std::string& out,
               const std::function<void()>& update_cache) {
  const auto& g = c.g;
  const bool fused = g.fused_qkv(), partial = g.partial_rope();
  const uint64_t tokens = mul(c.batch, q_len);
  project_and_rotate(c, layer, tokens);
  update_cache();  // cache.update(k, v): the cat copies now
  if (c.cache) {
    // key_states/value_states now name the cache's tensors; the layer's own are garbage (a partial rotary's k
    // projection stays: its pass view is still held)
    if (g.rope) c.t.free(L(layer, "k_emb"));
    if (!g.rope && !fused) c.t.free(L(layer, "k"));
    if (!fused) c.t.free(L(layer, "v"));
  }
  const Kernel kernel = kernel_of(c);
  switch (kernel) {
    case Kernel::kMathFp32Upcast: sdpa_math_fp32(c, layer, q_len, kv_len); break;
    case Kernel::kMathGqa: sdpa_math_gqa(c, layer, q_len, kv_len); break;
    case Kernel::kEager: eager(c, layer, q_len, kv_len); break;
    case Kernel::kFlash: sdpa_flash(c, layer, q_len, kv_len); break;
  }
  // the query the kernel read: the rotated one, else the projection (a view of qkv when fused). GPT-NeoX keeps the
  // rotated q until the attention returns (rotated_query_kept)
  const bool own_query = g.rope || !fused;
  if (own_query && !g.traits.rotated_query_kept) c.t.free(L(layer, g.rope ? "q_emb" : "q"));
  c.t.alloc(L(layer, "attn_contig"), mul(tokens, g.q_dim, c.s));  // transpose(1, 2).contiguous()
  c.t.free(L(layer, "attn"));
  c.t.alloc(out, mul(tokens, g.hidden, c.s));  // o_proj
  c.t.free(L(layer, "attn_contig"));
  if (kernel == Kernel::kEager && g.traits.scores_from_baddbmm) {
    c.t.free(L(layer, "scores"));
    c.t.free(L(layer, "scores_masked"));
  }
  // locals released when the attention returns: the rotated q it kept; without a cache the layer's K and V; with
  // partial rotary the projections (held by the pass views) and the rotated parts; a fused projection's output
  if (g.rope && g.traits.rotated_query_kept) c.t.free(L(layer, "q_emb"));
  if (g.rope && !c.cache) c.t.free(L(layer, "k_emb"));
  if (!fused && !c.cache) c.t.free(L(layer, "v"));
  if (!fused && (partial || (!g.rope && g.traits.rotated_query_kept))) c.t.free(L(layer, "q"));
  if (!fused && (partial || (!g.rope && !c.cache))) c.t.free(L(layer, "k"));
  if (partial) {
    c.t.free(L(layer, "q_emb_rot"));
    c.t.free(L(layer, "k_emb_rot"));
  }
  if (fused) c.t.free(L(layer, "qkv"));
}

}  // namespace llmem::transformers
