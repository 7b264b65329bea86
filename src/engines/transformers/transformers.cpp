// The Hugging Face transformers (PyTorch) engine: what transformers 5.17 on PyTorch 2.11 allocates, replayed.
//
// Mechanisms modelled (each cites where it lives in transformers or PyTorch):
//  - weights: every parameter in the requested dtype (from_config(dtype=...)), one allocation each;
//  - KV cache: DynamicCache (cache_utils.py). DynamicLayer.update appends with torch.cat, so the first update
//    copies the prompt's keys/values and each decode step allocates the grown tensor before freeing the old;
//    DynamicSlidingWindowLayer keeps a view of its last cat, so its storage is the last update's full length;
//  - the decoder layer's forward, op by op: RMSNorm upcasts to fp32 (modeling_llama.py LlamaRMSNorm), rotary
//    embeddings build q*cos + rotate_half(q)*sin, SDPA runs without materialising scores (flash / efficient
//    kernels; GQA through enable_gqa when no mask is needed), eager attention materialises scores, their fp32
//    softmax and its cast (eager_attention_forward), the gated MLP keeps act(gate), up and their product alive
//    together; parallel-residual families (falcon, phi, gpt-neox) run attention and MLP from one norm;
//  - generation computes logits for the last position only (logits_to_keep=1) and copies them to fp32;
//    a plain forward returns logits for every position in the model dtype;
//  - training: the tensors autograd saves for backward, per op; gradients in the parameters' dtype; AdamW's two
//    states and the foreach implementation's temporary (torch/optim/adamw.py, _multi_tensor_adamw: a
//    _foreach_sqrt of exp_avg_sq); the loss upcasts logits to fp32 (loss_utils.py ForCausalLMLoss) and
//    cross_entropy keeps its log-softmax; autocast keeps bf16 copies of fp32 weights while they are saved for
//    backward; gradient checkpointing keeps only each layer's input and recomputes one layer at a time;
//  - the caching allocator's reserved memory: the same events replayed through its rules (alloc_sim.hpp);
//  - the process total NVML sees: reserved memory plus the per-process CUDA context and library workspaces,
//    measured per GPU (data/runtime_overheads.json).
#include <algorithm>
#include <cstring>
#include <cmath>
#include <set>
#include <string>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "alloc_sim.hpp"
#include "llmem/checked.hpp"
#include "llmem/error.hpp"
#include "llmem/transformers.hpp"
#include "llmem/units.hpp"

namespace llmem {
namespace {

using sim::Tracker;

struct Geometry {
  uint64_t layers, hidden, q_dim, k_dim, v_dim, ffn, vocab, heads, kv_heads, head_dim;
  bool gated, rms_norm, parallel, rope;
  uint64_t experts = 0, top_k = 0, moe_ffn = 0;
  std::vector<uint64_t> window;  // per layer: sliding window in tokens, 0 = full
  std::string family;
  std::string activation;
  uint64_t rot_dims = 0;  // rotated part of each head (partial rotary: phi, gpt-neox)
};

Geometry geometry(const ModelFacts& f) {
  Geometry g{};
  g.family = f.family;
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
  g.ffn = f.intermediate ? f.intermediate : 4 * f.hidden;
  g.vocab = f.vocab;
  g.gated = f.gated_mlp;
  const std::string& fam = f.family;
  g.rms_norm = !(fam == "gpt2" || fam == "gpt_neox" || fam == "falcon" || fam == "phi" || fam == "opt" || fam == "bloom" ||
                 fam == "xglm");
  g.parallel = fam == "falcon" || fam == "phi" || fam == "gpt_neox";
  g.rope = f.position_kind == "rope";
  g.experts = f.n_experts;
  g.top_k = f.n_experts_active;
  g.moe_ffn = f.moe_intermediate;
  for (const auto& a : f.attention) g.window.push_back(a.sliding_window);
  g.window.resize(g.layers, 0);
  return g;
}

// Families whose attention materialises the scores whatever the configured implementation: bloom has only its
// own baddbmm + softmax path; for falcon the measurements show the same footprint under "sdpa"
// (bench/data/transformers_memory.jsonl: scores, fp32 softmax and its cast per layer).
bool materialises_scores(const Geometry& g) { return g.family == "bloom" || g.family == "falcon"; }
std::string default_attention(const Geometry& g) { return g.family == "bloom" ? "eager" : "sdpa"; }

uint64_t mul(uint64_t a, uint64_t b) {
  auto r = checked_mul(a, b);
  if (!r) throw Error(ErrorKind::kUsage, "", "the workload's sizes overflow 64-bit arithmetic");
  return *r;
}
uint64_t mul(uint64_t a, uint64_t b, uint64_t c) { return mul(mul(a, b), c); }
uint64_t mul(uint64_t a, uint64_t b, uint64_t c, uint64_t d) { return mul(mul(a, b, c), d); }

// per cuBLAS handle and stream, from the caching allocator: exactly 32 MiB (33,554,432-byte blocks in every
// recorded allocator trace, bench/data/traces)
constexpr uint64_t kCublasWorkspace = 32u << 20;

std::string L(uint64_t layer, const char* what) { return fmt::format("activations/{}/{}", layer, what); }

// Activations transformers implements in Python (NewGELUActivation and kin): each op makes its own tensor.
bool is_python_gelu(const std::string& activation) {
  return activation == "gelu_new" || activation == "gelu_fast" || activation == "gelu_pytorch_tanh_python";
}

struct Ctx {
  Tracker& t;
  const Geometry& g;
  uint64_t s;        // bytes per activation element
  uint64_t batch;
  bool eager;
  bool bf16 = false;  // activations in bfloat16 (F.softmax's fused half->float path exists for float16 only)
  bool math_sdpa_upcast = false;  // SDPA runs PyTorch's math backend with its fp32 upcast (falcon, see attention)
  bool cache = false;      // a KV cache is updated (generate); without one the layer's own K/V stay in locals
  bool cublas_pending = true;  // cuBLAS takes its workspace from the allocator at the first matmul
};

void first_matmul(Ctx& c) {
  if (!c.cublas_pending) return;
  c.t.alloc("workspace/cublas", kCublasWorkspace);
  c.cublas_pending = false;
}

// A norm over `rows` rows of width `width`: the transient of computing it, then its output `out`.
void norm(Ctx& c, const std::string& out, uint64_t rows, uint64_t width, const std::string& scratch) {
  const uint64_t n = mul(rows, width);
  if (c.g.rms_norm) {
    // LlamaRMSNorm: h = x.to(fp32); var = h.pow(2).mean(-1); h = h * rsqrt(var + eps); w * h.to(dtype)
    const bool upcast = c.s < 4;
    if (upcast) c.t.alloc(scratch + "/f32", mul(n, 4));
    c.t.alloc(scratch + "/pow", mul(n, 4));
    c.t.alloc(scratch + "/var", mul(rows, 4));
    c.t.free(scratch + "/pow");
    c.t.alloc(scratch + "/normed", mul(n, 4));
    c.t.free(scratch + "/f32");
    c.t.free(scratch + "/var");
    if (upcast) c.t.alloc(scratch + "/cast", mul(n, c.s));
    c.t.alloc(out, mul(n, c.s));
    c.t.free(scratch + "/cast");
    c.t.free(scratch + "/normed");
  } else {
    c.t.alloc(out, mul(n, c.s));  // F.layer_norm: one fused kernel, output in the input dtype
  }
}

// transformers' sdpa_attention_forward passes GQA to SDPA (enable_gqa) only without a mask; with one it expands
// K and V to every head (repeat_kv), and SDPA keeps the expanded copies. masking_utils skips the mask for a plain
// causal prefill unless a sliding window is not longer than the sequence (_ignore_causal_mask_sdpa:
// kv_length < local_attention_size), so a model with a window (Mistral) gets a mask from seq >= window on.
bool sdpa_mask_needed(const Geometry& g, uint64_t layer, uint64_t seq) {
  return layer < g.window.size() && g.window[layer] > 0 && seq >= g.window[layer];
}
bool sdpa_repeats_kv(const Geometry& g, uint64_t layer, uint64_t seq) {
  return sdpa_mask_needed(g, layer, seq) && g.kv_heads > 0 && g.heads > g.kv_heads;
}

bool fused_qkv_family(const Geometry& g) {
  return g.family == "gpt2" || g.family == "gpt_neox" || g.family == "bloom" || g.family == "falcon" || g.family == "phi3";
}

// Self-attention of one layer for `q_len` new tokens attending to `kv_len` cached ones (prefill: equal).
// Leaves the attention output projection in `out`; the layer's K/V cache tensors are updated by the caller.
void attention(Ctx& c, uint64_t layer, uint64_t q_len, uint64_t kv_len, const std::string& in, const std::string& out,
               const std::function<void()>& update_cache) {
  const auto& g = c.g;
  const uint64_t T = mul(c.batch, q_len);
  first_matmul(c);
  // One fused projection (GPT-2's c_attn, query_key_value, Phi-3's qkv_proj) makes one tensor; q, k and v are
  // views of it, so it lives until the attention returns (allocator trace of pythia-1.4b: one 384 MiB block)
  const bool fused_qkv = fused_qkv_family(g);
  if (fused_qkv) {
    c.t.alloc(L(layer, "qkv"), mul(T, g.q_dim + g.k_dim + g.v_dim, c.s));
  } else {
    c.t.alloc(L(layer, "q"), mul(T, g.q_dim, c.s));
    c.t.alloc(L(layer, "k"), mul(T, g.k_dim, c.s));
    c.t.alloc(L(layer, "v"), mul(T, g.v_dim, c.s));
  }
  const bool partial_rope = g.rope && g.rot_dims < g.head_dim;
  if (g.rope) {
    // q_embed = q * cos + rotate_half(q) * sin, then the same for k; rotate_half = cat(-x2, x1). With partial
    // rotary (phi, gpt-neox) only the first rot_dims of each head are rotated, then cat((rot, pass)) rebuilds the
    // full tensor; the pass view keeps the projection's output alive until the attention returns.
    for (const char* which : {"q", "k"}) {
      const uint64_t heads = which[0] == 'q' ? g.heads : (g.k_dim / std::max<uint64_t>(1, g.head_dim));
      const uint64_t n = mul(T, heads, g.rot_dims, c.s);
      const std::string base = L(layer, which);
      c.t.alloc(base + "_cos", n);
      c.t.alloc(base + "_neg", n / 2);
      c.t.alloc(base + "_rot", n);
      c.t.free(base + "_neg");
      c.t.alloc(base + "_rotsin", n);
      c.t.free(base + "_rot");
      c.t.alloc(base + (partial_rope ? "_emb_rot" : "_emb"), n);
      c.t.free(base + "_cos");
      c.t.free(base + "_rotsin");
      if (!partial_rope) c.t.free(base);
    }
    if (partial_rope) {
      c.t.alloc(L(layer, "q_emb"), mul(T, g.q_dim, c.s));
      c.t.alloc(L(layer, "k_emb"), mul(T, g.k_dim, c.s));
    }
  }
  update_cache();  // cache.update(k, v): the cat copies now; the caller frees the uncached k and v
  if (c.cache) {
    // key_states/value_states now name the cache's tensors; the layer's own are garbage
    c.t.free(L(layer, "k_emb"));
    if (!partial_rope) c.t.free(L(layer, "k"));
    c.t.free(L(layer, "v"));
  }
  const std::string q = g.rope ? L(layer, "q_emb") : L(layer, "q");
  const uint64_t rep = g.heads / std::max<uint64_t>(1, g.kv_heads);
  const bool fp32_gqa_math = !c.eager && c.s == 4 && rep > 1;
  if (c.math_sdpa_upcast) {
    // PyTorch's math SDPA (aten _scaled_dot_product_attention_math) on 16-bit inputs: it upcasts q, k and v to
    // fp32 (k and v expanded to every head), scales q, computes fp32 scores, a safe softmax (its all-masked-row
    // check is a bool tensor), returns the weights cast back and the output through an fp32 matmul. The order and
    // lifetimes follow a recorded allocator trace of falcon-7b (bench/data/traces).
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
    c.t.alloc(L(layer, "attn"), mul(T, g.q_dim, c.s));
    c.t.free(L(layer, "out32_b"));
    c.t.free(L(layer, "softmax32"));
    c.t.free(L(layer, "q32"));
    c.t.free(L(layer, "v32"));
    c.t.free(L(layer, "weights_cast"));
    c.t.free(L(layer, "sdpa_mask"));
  } else if (fp32_gqa_math) {
    // torch's math backend: K/V repeated for GQA, scores, causal bias added, softmax, each a new tensor
    c.t.alloc(L(layer, "k_rep"), mul(c.batch, kv_len, g.heads * g.head_dim, c.s));
    c.t.alloc(L(layer, "v_rep"), mul(c.batch, kv_len, g.heads * (g.v_dim / std::max<uint64_t>(1, g.kv_heads)), c.s));
    const uint64_t scores = mul(c.batch, g.heads, q_len, kv_len);
    c.t.alloc(L(layer, "scores"), mul(scores, c.s));
    c.t.alloc(L(layer, "scores_masked"), mul(scores, c.s));
    c.t.free(L(layer, "scores"));
    c.t.alloc(L(layer, "probs"), mul(scores, c.s));
    c.t.free(L(layer, "scores_masked"));
    c.t.alloc(L(layer, "attn"), mul(T, g.q_dim, c.s));
    c.t.free(L(layer, "probs"));
    c.t.free(L(layer, "k_rep"));
    c.t.free(L(layer, "v_rep"));
  } else if (c.eager) {
    // eager_attention_forward: repeat_kv, scores = q @ k^T (+ mask), softmax in fp32, cast back, @ v
    if (rep > 1) {
      c.t.alloc(L(layer, "k_rep"), mul(c.batch, kv_len, g.heads * g.head_dim, c.s));
      c.t.alloc(L(layer, "v_rep"), mul(c.batch, kv_len, g.heads * (g.v_dim / std::max<uint64_t>(1, g.kv_heads)), c.s));
    }
    // bloom (BloomAttention.forward) keeps its scores and masked scores in locals until it returns
    const bool bloom = g.family == "bloom";
    const uint64_t scores = mul(c.batch, g.heads, q_len, kv_len);
    c.t.alloc(L(layer, "scores"), mul(scores, c.s));
    if (!bloom) {
      // eager_attention_forward: torch.matmul(q, k^T) * scaling, then + mask (GPT-2's own path: / sqrt(d), then
      // torch.where(causal, ...)): each a new tensor
      c.t.alloc(L(layer, "scores_scaled"), mul(scores, c.s));
      c.t.free(L(layer, "scores"));
      c.t.alloc(L(layer, "scores_masked"), mul(scores, c.s));
      c.t.free(L(layer, "scores_scaled"));
    } else {
      c.t.alloc(L(layer, "scores_masked"), mul(scores, c.s));
    }
    if (g.family == "gpt2") {
      // GPT-2's softmax runs in the model dtype (no fp32 upcast)
      c.t.alloc(L(layer, "probs"), mul(scores, c.s));
    } else {
      // F.softmax(x, dtype=float32): for a float16 x on CUDA one fused kernel writes the fp32 result
      // (at::_softmax with half_to_float); a bfloat16 x is cast to fp32 first, so both fp32 tensors exist
      if (c.bf16) c.t.alloc(L(layer, "softmax_in_f32"), mul(scores, 4));
      c.t.alloc(L(layer, "softmax_f32"), mul(scores, 4));
      c.t.free(L(layer, "softmax_in_f32"));
      if (c.s < 4) {
        c.t.alloc(L(layer, "probs"), mul(scores, c.s));
        c.t.free(L(layer, "softmax_f32"));
      }
    }
    if (!bloom) c.t.free(L(layer, "scores_masked"));
    c.t.alloc(L(layer, "attn"), mul(T, g.heads * (g.v_dim / std::max<uint64_t>(1, g.kv_heads)), c.s));
    // the probabilities (probs, or softmax_f32 itself in fp32) are returned as attn_weights: the decoder layer
    // holds them until it returns (see decoder_layer)
    c.t.free(L(layer, "k_rep"));
    c.t.free(L(layer, "v_rep"));
  } else {
    // F.scaled_dot_product_attention (flash or memory-efficient): output, plus its logsumexp. With a mask
    // (sliding window, see sdpa_mask_needed) K and V are expanded to every head first and SDPA converts the
    // boolean mask into an additive one in the model dtype; all three go when sdpa_attention_forward returns
    const bool masked = q_len > 1 && sdpa_mask_needed(g, layer, kv_len);
    if (masked && rep > 1) {
      c.t.alloc(L(layer, "k_rep"), mul(c.batch, kv_len, g.heads * g.head_dim, c.s));
      c.t.alloc(L(layer, "v_rep"), mul(c.batch, kv_len, g.heads * (g.v_dim / std::max<uint64_t>(1, g.kv_heads)), c.s));
    }
    if (masked) c.t.alloc(L(layer, "sdpa_bias"), mul(c.batch, q_len, kv_len, c.s));
    c.t.alloc(L(layer, "lse"), mul(c.batch, g.heads, q_len, 4));
    c.t.alloc(L(layer, "attn"), mul(T, g.q_dim, c.s));
    c.t.free(L(layer, "lse"));
    c.t.free(L(layer, "sdpa_bias"));
    c.t.free(L(layer, "k_rep"));
    c.t.free(L(layer, "v_rep"));
  }
  // GPT-NeoX keeps the rotated q until the attention returns (allocator trace of pythia-1.4b)
  if (g.family != "gpt_neox") c.t.free(q);
  c.t.alloc(L(layer, "attn_contig"), mul(T, g.q_dim, c.s));  // transpose(1, 2).contiguous()
  c.t.free(L(layer, "attn"));
  c.t.alloc(out, mul(T, g.hidden, c.s));  // o_proj
  c.t.free(L(layer, "attn_contig"));
  c.t.free(L(layer, "scores"));
  c.t.free(L(layer, "scores_masked"));
  // locals released when the attention returns: without a cache the layer's K and V; with partial rotary the
  // projections (held by the pass views) and the rotated parts
  for (const char* n : {"q_emb", "k_emb", "v", "q", "k", "q_emb_rot", "k_emb_rot", "qkv"}) c.t.free(L(layer, n));
  (void)in;
}

void mlp(Ctx& c, uint64_t layer, uint64_t tokens, const std::string& out) {
  const auto& g = c.g;
  const uint64_t T = mul(c.batch, tokens);
  if (g.experts > 0) {
    // Router logits, then each expert's share of the tokens (top_k of them per token, spread over experts).
    c.t.alloc(L(layer, "router"), mul(T, g.experts, 4));
    const uint64_t routed = mul(T, std::max<uint64_t>(1, g.top_k));
    c.t.alloc(L(layer, "moe_gate_up"), mul(routed, 2 * g.moe_ffn, c.s) / std::max<uint64_t>(1, g.experts));
    c.t.alloc(L(layer, "moe_out"), mul(T, g.hidden, c.s));
    c.t.free(L(layer, "moe_gate_up"));
    c.t.free(L(layer, "router"));
    c.t.alloc(out, mul(T, g.hidden, c.s));
    c.t.free(L(layer, "moe_out"));
    return;
  }
  const uint64_t n = mul(T, g.ffn, c.s);
  if (g.gated) {
    // down_proj(act_fn(gate_proj(x)) * up_proj(x))
    c.t.alloc(L(layer, "gate"), n);
    c.t.alloc(L(layer, "act"), n);
    c.t.free(L(layer, "gate"));
    c.t.alloc(L(layer, "up"), n);
    c.t.alloc(L(layer, "prod"), n);
    c.t.free(L(layer, "act"));
    c.t.free(L(layer, "up"));
    c.t.alloc(out, mul(T, g.hidden, c.s));
    c.t.free(L(layer, "prod"));
  } else {
    // fc2(act(fc1(x)))
    c.t.alloc(L(layer, "fc1"), n);
    if (is_python_gelu(g.activation)) {
      // NewGELUActivation in Python (activations.py), evaluated left to right, each op a new tensor:
      // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
      c.t.alloc(L(layer, "gelu_half"), n);   // 0.5 * x
      c.t.alloc(L(layer, "gelu_cube"), n);   // x^3
      c.t.alloc(L(layer, "gelu_cube_s"), n); // 0.044715 * x^3
      c.t.free(L(layer, "gelu_cube"));
      c.t.alloc(L(layer, "gelu_inner"), n);  // x + ...
      c.t.free(L(layer, "gelu_cube_s"));
      c.t.alloc(L(layer, "gelu_scaled"), n); // sqrt(2/pi) * (...)
      c.t.free(L(layer, "gelu_inner"));
      c.t.alloc(L(layer, "gelu_tanh"), n);
      c.t.free(L(layer, "gelu_scaled"));
      c.t.alloc(L(layer, "gelu_onep"), n);   // 1 + tanh
      c.t.free(L(layer, "gelu_tanh"));
      c.t.alloc(L(layer, "act"), n);
      c.t.free(L(layer, "gelu_half"));
      c.t.free(L(layer, "gelu_onep"));
    } else {
      c.t.alloc(L(layer, "act"), n);
    }
    c.t.free(L(layer, "fc1"));
    c.t.alloc(out, mul(T, g.hidden, c.s));
    c.t.free(L(layer, "act"));
  }
}

// One decoder layer: hidden state `in` -> `out`. The caller's loop variable keeps `in` alive for the whole call
// (`hidden_states = layer(hidden_states, ...)`), and the model keeps `inputs_embeds` until its forward returns.
// Eager attention's weights (attn_weights) live as long as the decoder layer's call (`hidden_states, _ =
// self.self_attn(...)`); bloom's block returns them in its outputs tuple, which the model's loop variable holds
// until the next block returns, so there they outlive one more layer.
void free_attn_weights(Ctx& c, uint64_t layer) {
  c.t.free(L(layer, "probs"));
  c.t.free(L(layer, "softmax_f32"));
}

void decoder_layer(Ctx& c, uint64_t layer, uint64_t q_len, uint64_t kv_len, const std::string& in, const std::string& out,
                   const std::function<void()>& update_cache) {
  (void)in;  // alive for the whole call; the caller frees it
  const bool bloom = c.g.family == "bloom";
  auto end_of_layer = [&] {
    if (!bloom) free_attn_weights(c, layer);
    else if (layer > 0) free_attn_weights(c, layer - 1);
  };
  const uint64_t T = mul(c.batch, q_len);
  c.t.set_phase(fmt::format("layer {} ({} tokens)", layer, q_len));
  norm(c, L(layer, "norm1"), T, c.g.hidden, L(layer, "norm1_tmp"));
  attention(c, layer, q_len, kv_len, L(layer, "norm1"), L(layer, "attn_out"), update_cache);
  if (c.g.family == "gpt_neox") {
    // GPT-NeoX's parallel residual has its own norm for the MLP, taken after the attention returns:
    // out = mlp(ln2(x)) + attn(ln1(x)) + x (allocator trace of pythia-1.4b)
    c.t.free(L(layer, "norm1"));
    norm(c, L(layer, "norm2"), T, c.g.hidden, L(layer, "norm2_tmp"));
    mlp(c, layer, q_len, L(layer, "mlp_out"));
    c.t.free(L(layer, "norm2"));
    c.t.alloc(L(layer, "sum"), mul(T, c.g.hidden, c.s));
    c.t.alloc(out, mul(T, c.g.hidden, c.s));
    c.t.free(L(layer, "sum"));
    c.t.free(L(layer, "attn_out"));
    c.t.free(L(layer, "mlp_out"));
    end_of_layer();
    return;
  }
  if (c.g.parallel) {
    // attention and MLP read the same normed input; out = residual + attn + mlp
    mlp(c, layer, q_len, L(layer, "mlp_out"));
    c.t.free(L(layer, "norm1"));
    c.t.alloc(L(layer, "sum"), mul(T, c.g.hidden, c.s));
    c.t.free(L(layer, "attn_out"));
    c.t.free(L(layer, "mlp_out"));
    c.t.alloc(out, mul(T, c.g.hidden, c.s));
    c.t.free(L(layer, "sum"));
    end_of_layer();
    return;
  }
  c.t.free(L(layer, "norm1"));
  c.t.alloc(L(layer, "resid1"), mul(T, c.g.hidden, c.s));  // residual + attention
  c.t.free(L(layer, "attn_out"));
  norm(c, L(layer, "norm2"), T, c.g.hidden, L(layer, "norm2_tmp"));
  mlp(c, layer, q_len, L(layer, "mlp_out"));
  c.t.free(L(layer, "norm2"));
  c.t.alloc(out, mul(T, c.g.hidden, c.s));
  c.t.free(L(layer, "mlp_out"));
  c.t.free(L(layer, "resid1"));
  end_of_layer();
}

uint64_t weight_bytes_in(const ArchModel& m, DType dtype) {
  uint64_t total = 0;
  for (const auto& t : m.tensors) total += dtype_bytes(dtype, t.numel()).value_or(0);
  return total;
}

void load_weights(Tracker& t, const ArchModel& m, DType dtype) {
  t.set_phase("loading weights");
  for (const auto& w : m.tensors) t.alloc("weights/" + w.name, dtype_bytes(dtype, w.numel()).value_or(0));
}

struct KvState {
  std::vector<uint64_t> len;  // tokens held per layer (storage)
  uint64_t gen = 0;           // generation counter for unique names
};

std::string kv_name(uint64_t layer, const char* which, uint64_t gen) {
  return fmt::format("kv_cache/{}/{}/{}", layer, which, gen);
}

void run_inference(Tracker& t, const ArchModel& m, const Geometry& g, const Workload& w, std::string& attn_used) {
  const uint64_t s = dtype_info(w.dtype).block_bytes;
  const std::string attn = w.attn.empty() ? default_attention(g) : w.attn;
  attn_used = attn;
  // falcon under "sdpa": the allocator traces show PyTorch's math backend (bench/data/traces, falcon-7b)
  const bool falcon_math = g.family == "falcon" && attn == "sdpa" && s < 4;
  Ctx c{t, g, s, w.batch, !falcon_math && (attn == "eager" || materialises_scores(g)), w.dtype == DType::BF16, falcon_math,
        w.mode == RunMode::kGenerate};
  load_weights(t, m, w.dtype);
  if (!m.tied.empty() && w.from_config) {
    // from_config builds lm_head, then ties it to the embedding: one untied copy lives until the tie
    t.alloc("weights/untied_head", mul(g.vocab, g.hidden, s));
    t.free("weights/untied_head");
  }
  const uint64_t P = w.prompt_tokens, B = w.batch;
  const bool generate = w.mode == RunMode::kGenerate;
  t.set_phase("inputs");
  t.alloc("inputs/input_ids", mul(B, P, 8));
  if (generate) t.alloc("inputs/attention_mask", mul(B, P, 8));
  // the model's forward: embeddings, the mask, then the rotary tables (whose inv_freq @ positions is the first
  // matmul, so cuBLAS's workspace comes here; without rotary it comes at the first projection)
  t.alloc("activations/embed", mul(B, P, g.hidden, s));
  if (c.eager) {
    // masking_utils.eager_mask: sdpa_mask builds a boolean [B, 1, P, P] mask, turned into the additive one
    t.alloc("activations/causal_mask_bool", mul(B, P, P));
    t.alloc("activations/causal_mask", mul(B, P, P, s));
    t.free("activations/causal_mask_bool");
  }
  if (!c.eager && sdpa_mask_needed(g, 0, P)) t.alloc("activations/sdpa_mask", mul(B, P, P));  // boolean [B, 1, P, P]
  if (g.rope) {
    first_matmul(c);
    t.alloc("activations/cos", mul(B, P, g.head_dim, s));
    t.alloc("activations/sin", mul(B, P, g.head_dim, s));
  }
  KvState kv;
  kv.len.assign(g.layers, 0);
  std::string h = "activations/embed";
  for (uint64_t layer = 0; layer < g.layers; ++layer) {
    auto update = [&] {
      if (!generate) return;  // use_cache=False: nothing is kept
      t.alloc(kv_name(layer, "k", 0), mul(B, P, g.k_dim, s));
      t.alloc(kv_name(layer, "v", 0), mul(B, P, g.v_dim, s));
      kv.len[layer] = P;
    };
    const std::string out = fmt::format("activations/hidden{}", layer);
    decoder_layer(c, layer, P, P, h, out, update);
    if (h != "activations/embed") t.free(h);
    h = out;
  }
  t.set_phase("final norm and LM head");
  const uint64_t logit_rows = generate ? B : mul(B, P);
  norm(c, "activations/final_norm", generate ? mul(B, P) : mul(B, P), g.hidden, "activations/final_norm_tmp");
  free_attn_weights(c, g.layers - 1);  // bloom: the last block's outputs, released when the base model returns
  // the base model returns: its locals go (the last layer's output, inputs_embeds, the rotary tables, the masks);
  // only the normed hidden state, in its outputs, reaches the LM head
  t.free(h);
  const auto free_base_model_locals = [&t] {
    for (const char* n : {"activations/embed", "activations/cos", "activations/sin", "activations/causal_mask",
                          "activations/sdpa_mask"})
      t.free(n);
  };
  if (!generate) free_base_model_locals();
  t.alloc("logits/logits", mul(logit_rows, g.vocab, s));
  t.free("activations/final_norm");
  if (m.facts.traits.final_logit_softcap) {
    // logits = tanh(logits / cap) * cap, one new tensor per step (Gemma2ForCausalLM.forward)
    t.alloc("logits/div", mul(logit_rows, g.vocab, s));
    t.free("logits/logits");
    t.alloc("logits/tanh", mul(logit_rows, g.vocab, s));
    t.free("logits/div");
    t.alloc("logits/logits", mul(logit_rows, g.vocab, s));
    t.free("logits/tanh");
  }
  if (!generate) return;
  t.alloc("logits/next_token_f32", mul(B, g.vocab, 4));  // outputs.logits[:, -1, :].to(float32, copy=True)
  t.free("logits/logits");
  // generation: freed here, after the first token's fp32 copy, as before the single-forward change (its logits are
  // one position per sequence, so this order moves little; not re-checked on a trace)
  free_base_model_locals();
  // Decode: each of the remaining new_tokens - 1 forward passes appends one token to every layer's cache.
  for (uint64_t step = 1; step < w.new_tokens; ++step) {
    t.set_phase(fmt::format("decode step {}", step));
    for (uint64_t layer = 0; layer < g.layers; ++layer) {
      const uint64_t old_len = kv.len[layer];
      uint64_t new_len = old_len + 1;
      for (const char* which : {"k", "v"}) {
        const uint64_t dim = which[0] == 'k' ? g.k_dim : g.v_dim;
        t.alloc(kv_name(layer, which, step), mul(B, new_len, dim, s));  // torch.cat([cache, new], dim=-2)
        t.free(kv_name(layer, which, step - 1));
      }
      // A sliding layer's stored view keeps the whole cat result alive; the next cat starts from the window.
      kv.len[layer] = g.window[layer] ? std::min(new_len, g.window[layer] - 1) : new_len;
    }
    t.free("logits/next_token_f32");
    t.alloc("logits/next_token_f32", mul(B, g.vocab, 4));
  }
}


// --- training ------------------------------------------------------------------------------------------------------


struct TrainCtx {
  Tracker& t;
  const Geometry& g;
  const ModelFacts& f;
  const Workload& w;
  uint64_t p;   // bytes per parameter (bf16: 2, amp: fp32 master weights, 4)
  uint64_t T;   // tokens in the batch
  bool amp, lora;
  bool qk_norm = false;  // per-head RMSNorm on q and k (Qwen3's q_norm / k_norm)
  bool sandwich_norms = false;  // a norm after attention and after the MLP too (Gemma 2/3's four norms per layer)
};

bool targets(const TrainCtx& c, const char* module) {
  return std::find(c.w.lora_targets.begin(), c.w.lora_targets.end(), module) != c.w.lora_targets.end();
}

// The tensors autograd keeps for one decoder layer's backward (bytes by name). Only what is not shared with the
// next layer is counted here; the layer's input is counted when an op of this layer saves it.
std::vector<std::pair<std::string, uint64_t>> saved_for_layer(const TrainCtx& c, uint64_t layer) {
  const auto& g = c.g;
  const uint64_t T = c.T, hs = mul(T, g.hidden), qs = mul(T, g.q_dim), ks = mul(T, g.k_dim), vs = mul(T, g.v_dim),
                 is = mul(T, g.ffn);
  const bool full = !c.lora;
  // With LoRA the frozen embedding's output needs no gradient, so layer 0 saves nothing before its first adapter.
  const bool input_needs_grad = full || layer > 0;
  std::vector<std::pair<std::string, uint64_t>> v;
  auto add = [&](const std::string& n, uint64_t b) { v.emplace_back(n, b); };
  const uint64_t resid = c.amp ? 4 : 2;  // the residual stream is fp32 under autocast (fp32 + bf16 -> fp32)
  // norms. Gemma's RMSNorm (modeling_gemma2.py Gemma2RMSNorm) multiplies in fp32 before its cast, so with a
  // trainable weight it keeps x.float() and the fp32 normalised x, not a bf16 cast; Gemma 2 and 3 wrap attention
  // and MLP in a norm before and after each (four per layer)
  const bool gemma_norm = g.family.rfind("gemma", 0) == 0;
  auto norm_saved = [&](const char* tag) {
    if (gemma_norm && g.rms_norm) {
      if (input_needs_grad) add(tag, mul(hs, 4));
      if (full) add(std::string(tag) + "_normed", mul(hs, 4));
    } else if (g.rms_norm) {
      if (input_needs_grad) add(tag, mul(hs, 4));         // x.to(float32), kept by pow and the rsqrt product
      if (c.amp && full) add(std::string(tag) + "_h32", mul(hs, 4));  // w * h: h kept for w's gradient (fp32 path)
      else if (full) add(std::string(tag) + "_cast", mul(hs, 2));     // w * h.to(bf16): the cast kept for w's gradient
    } else if (input_needs_grad || full) {
      add(tag, mul(hs, resid));                             // F.layer_norm keeps its input
    }
  };
  norm_saved("norm1_in");
  // Fused-QKV families keep the whole projection. Phi-3's qkv_proj is fused too, but its training saved set is
  // still the separate q/k/v one (no Phi-3 training trace was recorded to check the fused one against).
  const bool fused = fused_qkv_family(g) && g.family != "phi3";
  // attention inputs kept by the q/k/v projections
  if (full) {
    // under autocast each projection casts its fp32 input to bf16 itself (fused-qkv families: one projection)
    const int casts = fused ? 1 : 3;
    if (c.amp)
      for (int i = 0; i < casts; ++i) add("qkv_in_cast" + std::to_string(i), mul(hs, 2));
    else add("norm1_out", mul(hs, 2));
  } else {
    uint64_t adapters = (targets(c, "q_proj") ? 1 : 0) + (targets(c, "k_proj") ? 1 : 0) + (targets(c, "v_proj") ? 1 : 0);
    // peft casts each adapter's input to fp32 (a no-op under amp, where the input already is fp32)
    if (c.amp && adapters) add("lora_in_f32", mul(hs, 4));
    else
      for (uint64_t i = 0; i < adapters; ++i) add("lora_in_f32_" + std::to_string(i), mul(hs, 4));
  }
  // attention: SDPA keeps q, k, v, its output and logsumexp; fused-qkv families keep the whole projection
  if (fused) add("qkv", mul(qs + ks + vs, 2));
  if (fused && g.rope) {
    add("q_rotated", mul(qs, 2));
    add("k_rotated", mul(ks, 2));
  }
  // SDPA turns a boolean mask into an additive one in the query's dtype (convert_boolean_attn_mask), per call,
  // and the memory-efficient kernel keeps it as its bias
  if (sdpa_mask_needed(g, layer, c.w.prompt_tokens)) add("sdpa_bias", mul(c.w.batch, c.w.prompt_tokens, c.w.prompt_tokens, 2));
  if (!fused && sdpa_repeats_kv(g, layer, c.w.prompt_tokens)) {
    add("q", mul(qs, 2));
    add("k_rep", mul(T, g.heads * g.head_dim, 2));
    add("v_rep", mul(T, g.heads * (g.v_dim / std::max<uint64_t>(1, g.kv_heads)), 2));
  } else if (!fused) {
    add("q", mul(qs, 2));
    add("k", mul(ks, 2));
    add("v", mul(vs, 2));
  }
  add("attn_out", mul(qs, 2));
  add("lse", mul(c.w.batch, g.heads, c.w.prompt_tokens, 4));
  // the output projection (o_proj; phi's dense) keeps its input, or its adapter an fp32 copy of it
  if (full || targets(c, "o_proj") || targets(c, "dense")) add("o_in", mul(qs, full ? 2 : 4));
  if (c.sandwich_norms) norm_saved("post_attn_norm_in");
  if (c.f.resid_dropout) add("dropout_mask1", hs);
  // MLP
  if (g.parallel) {
    if (full) add("mlp_in", mul(hs, c.amp ? 2 : (g.family == "gpt_neox" ? 2 : 0)));
  } else {
    norm_saved("norm2_in");
    if (full) add("mlp_in", mul(hs, c.amp ? 2 * (g.gated ? 2 : 1) : 2));
  }
  if (g.gated) {
    add("mlp_gate", mul(is, 2));  // act_fn keeps gate, the product keeps act(gate) and up
    add("mlp_act", mul(is, 2));
    add("mlp_up", mul(is, 2));
    if (full) add("mlp_prod", mul(is, 2));   // down_proj keeps its input
  } else {
    const bool python_gelu = is_python_gelu(c.f.activation);
    if (python_gelu && c.amp) {
      // NewGELU under autocast: pow is an fp32 op, so x is cast to fp32 and pow keeps that cast (not x); the
      // chain after it runs in fp32, so tanh's output and 1 + tanh are fp32; 0.5 * x stays bf16
      add("mlp_fc1_out_f32", mul(is, 4));
      add("mlp_gelu_tanh", mul(is, 4));
      add("mlp_gelu_onep", mul(is, 4));
      add("mlp_gelu_half", mul(is, 2));
    } else {
      add("mlp_fc1_out", mul(is, 2));                     // the activation keeps its input
      if (python_gelu)  // NewGELU in Python keeps tanh, 0.5*x and 1+tanh
        for (const char* part : {"mlp_gelu_tanh", "mlp_gelu_half", "mlp_gelu_onep"}) add(part, mul(is, 2));
    }
    // fc2 keeps its input when trained; a frozen fc2 with an adapter, the adapter's fp32 copy of it
    if (full || targets(c, "fc2")) add("mlp_act_out", mul(is, full ? 2 : 4));
  }
  if (c.sandwich_norms) norm_saved("post_mlp_norm_in");
  if (c.f.resid_dropout) add("dropout_mask2", hs);
  return v;
}

// LlamaRMSNorm over n elements with a frozen weight, under autograd: x.to(fp32) as `f32` (kept by pow and the
// rsqrt product when x needs a gradient: `keep_f32`), pow, h * rsqrt, h.to(bf16), w * that as `out` (the cast is
// not kept: only w's gradient would need it)
void frozen_rms_norm(Tracker& t, uint64_t n, const std::string& f32, bool keep_f32, const std::string& tmp,
                     const std::string& out) {
  t.alloc(f32, mul(n, 4));
  t.alloc(tmp + "_pow", mul(n, 4));
  t.free(tmp + "_pow");
  t.alloc(tmp + "_h", mul(n, 4));
  if (!keep_f32) t.free(f32);
  t.alloc(tmp + "_cast", mul(n, 2));
  t.alloc(out, mul(n, 2));
  t.free(tmp + "_cast");
  t.free(tmp + "_h");
}

// LoRA on a llama-style decoder layer (RMSNorm, rotary, gated MLP, sequential residual) with frozen bf16 base
// weights, replayed op by op as PyTorch runs it: every temporary is allocated and freed where the forward makes
// and drops it, and what autograd keeps for backward stays (named saved_activations/<layer>/...). Which
// temporaries exist matters beyond the peak: the blocks they leave free in the caching allocator are where the
// backward's first small tensors land (bench/data/traces, train-lora-Qwen2.5-0.5B b4 × 1024: the forward's
// 38 MiB MLP products and 14 MiB peft casts leave free blocks the backward's workspace and gradients reuse).
// `grad` false is a checkpointed layer's first forward under no_grad: the same ops, nothing kept.
// Order and sizes follow modeling_llama.py / modeling_qwen2.py (LlamaRMSNorm, apply_rotary_pos_emb, LlamaMLP)
// and peft's lora Linear.forward (tuners/lora/layer.py: result = base(x); x = x.to(lora_A.dtype);
// result = result + lora_B(lora_A(x)) * scaling; result.to(result_dtype)), as the recorded trace shows them.
bool lora_oplevel(const TrainCtx& c, const ArchModel& m) {
  const auto& g = c.g;
  return c.lora && !c.amp && g.rms_norm && g.gated && !g.parallel && g.rope && g.experts == 0 &&
         g.rot_dims == g.head_dim && m.facts.family != "gemma2" && !c.f.resid_dropout;
}

std::vector<std::pair<std::string, uint64_t>> lora_layer_forward(TrainCtx& c, uint64_t layer, bool grad,
                                                                  const std::string& out) {
  auto& t = c.t;
  const auto& g = c.g;
  const uint64_t T = c.T;
  std::vector<std::pair<std::string, uint64_t>> saved;
  auto A = [&](const std::string& n, uint64_t b, bool keep = false) {
    if (keep && grad) {
      t.alloc(fmt::format("saved_activations/{}/{}", layer, n), b);
      saved.emplace_back(n, b);
    } else {
      t.alloc(L(layer, n.c_str()), b);
    }
  };
  auto F = [&](const std::string& n) { t.free(L(layer, n.c_str())); };
  auto rms = [&](const std::string& p, uint64_t width, bool input_needs_grad) {
    const bool keep = input_needs_grad && grad;
    const std::string f32 = keep ? fmt::format("saved_activations/{}/{}_f32", layer, p) : L(layer, (p + "_f32").c_str());
    if (keep) saved.emplace_back(p + "_f32", mul(T, width, 4));
    frozen_rms_norm(t, mul(T, width), f32, keep, L(layer, p.c_str()), L(layer, (p + "_out").c_str()));
  };
  // a frozen bf16 linear `mod` of width in -> outw, with an fp32 adapter when targeted; its result is `res`
  auto linear = [&](const char* mod, uint64_t in, uint64_t outw, const std::string& res, bool keep_res) {
    const std::string m = mod;
    if (!targets(c, mod)) {
      A(res, mul(T, outw, 2), keep_res);
      return;
    }
    A(m + "_base", mul(T, outw, 2));
    A(m + "_x32", mul(T, in, 4), true);            // kept for lora_A's weight gradient
    A(m + "_a", mul(T, c.w.lora_r, 4), true);      // kept for lora_B's weight gradient
    A(m + "_b", mul(T, outw, 4));
    F(m + "_a");
    A(m + "_scaled", mul(T, outw, 4));
    F(m + "_b");
    A(m + "_sum", mul(T, outw, 4));                // bf16 result + fp32 update promotes to fp32
    F(m + "_scaled");
    F(m + "_base");
    A(res, mul(T, outw, 2), keep_res);             // result.to(torch_result_dtype)
    F(m + "_sum");
    F(m + "_x32");
  };
  rms("n1", g.hidden, layer > 0);  // the frozen embedding's output needs no gradient
  // Qwen3 and kin: q_norm(q_proj(x).view(...)), k_norm likewise, per head; the projection's output goes when its
  // norm returns (the norm keeps its own fp32 copy)
  linear("q_proj", g.hidden, g.q_dim, "q_lin", false);
  if (c.qk_norm) {
    rms("qn", g.q_dim, true);
    F("q_lin");
  }
  linear("k_proj", g.hidden, g.k_dim, "k_lin", false);
  if (c.qk_norm) {
    rms("kn", g.k_dim, true);
    F("k_lin");
  }
  const bool repeat_kv = sdpa_repeats_kv(g, layer, c.w.prompt_tokens);
  linear("v_proj", g.hidden, g.v_dim, "v", !repeat_kv);  // SDPA's v, unless it gets an expanded copy
  // q * cos + rotate_half(q) * sin; the same for k. The embedded q and k are SDPA's inputs (kept); the
  // projections are not (the products with cos and sin keep only cos and sin)
  for (const auto& [which, dim] : {std::pair<const char*, uint64_t>{"q", g.q_dim}, {"k", g.k_dim}}) {
    const std::string b = which;
    const uint64_t n = mul(T, dim, 2);
    A(b + "_cos", n);
    A(b + "_neg", n / 2);
    A(b + "_cat", n);
    F(b + "_neg");
    A(b + "_rotsin", n);
    F(b + "_cat");
    A(b + "_emb", n, b == "q" || !repeat_kv);
    F(b + "_cos");
    F(b + "_rotsin");
  }
  F("q_lin");
  F("k_lin");
  F("qn_out");
  F("kn_out");
  // SDPA (memory-efficient kernel under autograd): output and logsumexp, both kept with q, k, v; the output's
  // transpose + reshape is a view here
  if (repeat_kv) {
    A("k_rep", mul(T, g.heads * g.head_dim, 2), true);
    A("v_rep", mul(T, g.heads * (g.v_dim / std::max<uint64_t>(1, g.kv_heads)), 2), true);
  }
  // a boolean mask becomes an additive bf16 bias inside SDPA, kept for backward (see saved_for_layer)
  if (sdpa_mask_needed(g, layer, c.w.prompt_tokens))
    A("sdpa_bias", mul(c.w.batch, c.w.prompt_tokens, c.w.prompt_tokens, 2), true);
  A("attn", mul(T, g.q_dim, 2), true);
  A("lse", mul(c.w.batch, g.heads, c.w.prompt_tokens, 4), true);
  F("lse");
  F("sdpa_bias");
  F("k_rep");
  F("v_rep");
  F("q_emb");
  F("k_emb");
  F("v");
  linear("o_proj", g.q_dim, g.hidden, "o", false);
  F("attn");
  F("n1_out");
  A("resid1", mul(T, g.hidden, 2));
  F("o");
  rms("n2", g.hidden, true);
  // act_fn(gate_proj(x)) * up_proj(x): silu keeps its input, the product keeps both operands; down_proj keeps its
  // input only through an adapter (its x32)
  linear("gate_proj", g.hidden, g.ffn, "mlp_gate", true);
  A("mlp_act", mul(T, g.ffn, 2), true);
  F("mlp_gate");
  linear("up_proj", g.hidden, g.ffn, "mlp_up", true);
  A("mlp_prod", mul(T, g.ffn, 2));
  F("mlp_act");
  F("mlp_up");
  linear("down_proj", g.ffn, g.hidden, "down", false);
  F("mlp_prod");
  F("n2_out");
  t.alloc(out, mul(T, g.hidden, 2));
  F("down");
  F("resid1");
  return saved;
}

// The decoder layer a parameter belongs to ("model.layers.3.mlp.up_proj.weight", "transformer.h.3.attn..."),
// or -1 for the embeddings, final norm and head.
int64_t tensor_layer(const std::string& name) {
  for (const char* key : {".layers.", ".h."}) {
    const auto at = name.find(key);
    if (at == std::string::npos) continue;
    const auto start = at + std::strlen(key);
    const auto end = name.find('.', start);
    if (end == std::string::npos || end == start) continue;
    int64_t n = 0;
    for (auto i = start; i < end; ++i) {
      if (name[i] < '0' || name[i] > '9') return -1;
      n = n * 10 + (name[i] - '0');
    }
    return n;
  }
  return -1;
}

// The module name of a linear layer's weight ("model.layers.3.self_attn.q_proj.weight" -> "q_proj"), or "" for
// any other tensor.
std::string linear_module(const TensorInfo& tt) {
  if (tt.shape.size() != 2 || !tt.name.ends_with(".weight")) return "";
  const std::string path = tt.name.substr(0, tt.name.size() - 7);
  return path.substr(path.rfind('.') + 1);
}

// One trainable parameter as the optimizer sees it: a name and its bytes in the trained dtype.
struct Param {
  std::string name;
  uint64_t bytes;
  int64_t layer;
};

// Under autocast every linear casts its fp32 weight and bias to bf16; autocast caches the copies for the forward
// and the matmul keeps them for backward. One allocation per tensor (the allocator sees a 12.5 MiB q weight and a
// 50 MiB MLP weight, not one block per layer), in module order.
void amp_weight_casts(Tracker& t, const ArchModel& m, uint64_t layer, bool alloc) {
  std::set<std::string> linear_weights;
  for (const auto& tt : m.tensors)
    if (tensor_layer(tt.name) == static_cast<int64_t>(layer) && tt.shape.size() == 2) linear_weights.insert(tt.name);
  for (const auto& tt : m.tensors) {
    if (tensor_layer(tt.name) != static_cast<int64_t>(layer)) continue;
    const bool bias = tt.name.size() > 5 && tt.name.ends_with(".bias") &&
                      linear_weights.count(tt.name.substr(0, tt.name.size() - 5) + ".weight");
    if (tt.shape.size() != 2 && !bias) continue;
    const std::string n = fmt::format("saved_activations/{}/bf16/{}", layer, tt.name);
    if (alloc) t.alloc(n, mul(tt.numel(), 2));
    else t.free(n);
  }
}

void run_training(Tracker& t, const ArchModel& m, const Geometry& g, const Workload& w) {
  const bool amp = w.precision == TrainPrecision::kAmpBf16;
  TrainCtx c{t, g, m.facts, w, amp ? 4u : 2u, mul(w.batch, w.prompt_tokens), amp, w.train == TrainMethod::kLora};
  for (const auto& tt : m.tensors)
    if (tt.name.find("self_attn.q_norm.") != std::string::npos) c.qk_norm = true;
    else if (tt.name.find("post_feedforward_layernorm.") != std::string::npos) c.sandwich_norms = true;
  const uint64_t T = c.T, V = g.vocab, H = g.hidden;
  // weights (and the tied head's transient copy when built from a config: transformers creates lm_head, then ties)
  t.set_phase("loading weights");
  load_weights(t, m, amp ? DType::F32 : DType::BF16);
  if (!m.tied.empty() && w.from_config) {
    t.alloc("weights/untied_head", mul(V, H, c.p));
    t.free("weights/untied_head");
  }
  // The trainable parameters in model.parameters() order, which is the order of the optimizer's loops and of
  // its lazily created states. Each is its own allocation (its weight, its .grad, its exp_avg and exp_avg_sq):
  // one block per tensor, not one per layer, is what the caching allocator sees and splits.
  std::vector<Param> params;
  if (c.lora) {
    // peft keeps adapters in fp32: lora_A [r, in] then lora_B [out, r] for every linear whose module name is a
    // target (q_proj, dense, fc1, ...), in module order; a Linear weight is [out, in]
    for (const auto& tt : m.tensors) {
      const int64_t layer = tensor_layer(tt.name);
      const std::string mod = layer < 0 ? std::string() : linear_module(tt);
      if (mod.empty() || !targets(c, mod.c_str())) continue;
      params.push_back({fmt::format("{}.{}.lora_A", layer, mod), mul(w.lora_r, tt.shape[1], 4), layer});
      params.push_back({fmt::format("{}.{}.lora_B", layer, mod), mul(w.lora_r, tt.shape[0], 4), layer});
    }
    for (const auto& prm : params) t.alloc("lora/" + prm.name, prm.bytes);
  } else {
    for (const auto& tt : m.tensors) params.push_back({tt.name, mul(tt.numel(), c.p), tensor_layer(tt.name)});
  }
  auto is_head_or_embedding = [&](const Param& prm) {
    return prm.layer < 0 && (prm.name.find("embed_tokens") != std::string::npos || prm.name.find("wte") != std::string::npos ||
                             prm.name.find("word_embeddings") != std::string::npos || prm.name.find("lm_head") != std::string::npos ||
                             prm.name.find("embed_out") != std::string::npos);
  };
  const bool oplevel = lora_oplevel(c, m);
  auto ckpt_input = [](uint64_t layer) { return fmt::format("saved_activations/{}/ckpt_input", layer); };
  // a checkpointed bf16 layer's first forward is the inference op sequence (no_grad, no cache)
  Ctx nograd{t, g, 2, w.batch, materialises_scores(g) || default_attention(g) == "eager", true, false, false};
  nograd.cublas_pending = false;  // the training forward took cuBLAS's workspace already
  auto hidden_name = [](uint64_t layer) { return fmt::format("activations/hidden{}", layer); };
  bool workspace_fwd = false, workspace_bwd = false;
  const uint64_t steps = 2;
  for (uint64_t step = 1; step <= steps; ++step) {
    // forward
    t.set_phase(fmt::format("step {} forward", step));
    t.alloc("inputs/ids", mul(T, 8));
    t.alloc("inputs/labels", mul(T, 8));
    if (c.f.embd_dropout) t.alloc("saved_activations/embd_dropout", mul(T, H));
    if (oplevel) t.alloc("activations/embed", mul(T, H, 2));  // inputs_embeds, alive until the model returns
    // a sliding-window mask (see sdpa_mask_needed): one boolean [B, 1, S, S], kept by every layer's SDPA
    if (sdpa_mask_needed(g, 0, w.prompt_tokens)) t.alloc("activations/sdpa_mask", mul(w.batch, w.prompt_tokens, w.prompt_tokens));
    if (!workspace_fwd) {
      // cuBLAS's workspace at the first matmul: the rotary tables', else layer 0's first projection
      t.alloc("workspace/cublas_fwd", kCublasWorkspace);
      workspace_fwd = true;
    }
    std::vector<std::vector<std::pair<std::string, uint64_t>>> saved(g.layers);
    for (uint64_t layer = 0; layer < g.layers && oplevel; ++layer) {
      t.set_phase(fmt::format("step {} forward, layer {}", step, layer));
      saved[layer] = lora_layer_forward(c, layer, !w.grad_ckpt, hidden_name(layer));
      // the model's loop variable drops the previous hidden state when the layer returns, unless checkpointing
      // keeps it as the layer's saved input (the embedding output stays either way: inputs_embeds)
      if (!w.grad_ckpt && layer > 0) t.free(hidden_name(layer - 1));
    }
    for (uint64_t layer = 0; layer < g.layers && !oplevel; ++layer) {
      t.set_phase(fmt::format("step {} forward, layer {}", step, layer));
      if (amp) amp_weight_casts(t, m, layer, true);
      saved[layer] = saved_for_layer(c, layer);
      if (w.grad_ckpt && !amp) {
        // checkpointed: the layer runs under no_grad, op by op as in inference without a cache; its input is
        // kept by the checkpoint, and its output is the next layer's kept input
        if (layer == 0) t.alloc(ckpt_input(0), mul(T, H, 2));
        t.set_phase(fmt::format("step {} forward, layer {}", step, layer));
        decoder_layer(nograd, layer, w.prompt_tokens, w.prompt_tokens, ckpt_input(layer),
                      layer + 1 < g.layers ? ckpt_input(layer + 1) : std::string("activations/last_hidden"), [] {});
      } else if (w.grad_ckpt) {
        // checkpointed: the layer's input is kept; the inside runs and is dropped
        t.alloc(ckpt_input(layer), mul(T, H, amp ? 4 : 2));
        for (const auto& [n, b] : saved[layer]) t.alloc(fmt::format("activations/{}/{}", layer, n), b);
        for (const auto& [n, b] : saved[layer]) t.free(fmt::format("activations/{}/{}", layer, n));
      } else {
        for (const auto& [n, b] : saved[layer]) t.alloc(fmt::format("saved_activations/{}/{}", layer, n), b);
      }
    }
    // final norm, LM head, loss: logits in bf16, their fp32 copy, cross_entropy's log-softmax (kept)
    t.set_phase(fmt::format("step {} loss", step));
    if (oplevel) {
      // the final RMSNorm keeps its fp32 input (frozen weight: not the cast); the last hidden state and
      // inputs_embeds go when the base model returns (inputs_embeds stays as layer 0's checkpointed input)
      frozen_rms_norm(t, mul(T, H), "saved_activations/final_f32", true, "activations/final", "activations/final_out");
      t.free(hidden_name(g.layers - 1));
      if (!w.grad_ckpt) t.free("activations/embed");
    } else {
      t.alloc("saved_activations/final_norm", mul(T, H, amp ? 8 : 6));
      t.free("activations/last_hidden");
    }
    if (amp) t.alloc("saved_activations/lm_head_bf16_weight", mul(V, H, 2));
    t.alloc("logits/logits", mul(T, V, 2));
    if (c.f.traits.final_logit_softcap) {
      // Gemma2ForCausalLM.forward: logits / cap, tanh (keeps its output), * cap; each a new tensor, the previous
      // one dropped as the name is rebound
      t.alloc("logits/softcap_div", mul(T, V, 2));
      t.free("logits/logits");
      t.alloc("saved_activations/softcap_tanh", mul(T, V, 2));
      t.free("logits/softcap_div");
      t.alloc("logits/softcapped", mul(T, V, 2));
    }
    t.alloc("logits/logits_f32", mul(T, V, 4));
    t.alloc("loss/log_softmax", mul(T, V, 4));
    t.free("logits/logits_f32");
    t.free("activations/final_out");  // the frozen head keeps no input
    t.free("logits/softcapped");
    t.free("logits/logits");
    // leaving autocast clears its cast cache: with checkpointing, the no_grad forward's bf16 weight copies were
    // cached (the cache holds leaf tensors that require grad, whatever the grad mode) and nothing else keeps them,
    // so all of them go only now (allocator trace, TinyLlama amp b4 x 2048 with checkpointing: every layer's
    // copies alive at the loss)
    if (amp && w.grad_ckpt)
      for (uint64_t layer = 0; layer < g.layers; ++layer) amp_weight_casts(t, m, layer, false);
    // backward
    t.set_phase(fmt::format("step {} backward", step));
    t.alloc("loss/grad_log_softmax", mul(T, V, 4));
    t.alloc("loss/grad_logits_f32", mul(T, V, 4));
    t.free("loss/grad_log_softmax");
    t.free("loss/log_softmax");
    t.alloc("loss/grad_logits", mul(T, V, 2));
    t.free("loss/grad_logits_f32");
    if (c.f.traits.final_logit_softcap) {
      // the backward of * cap, tanh and / cap: one new gradient each
      t.alloc("loss/grad_softcap_mul", mul(T, V, 2));
      t.free("loss/grad_logits");
      t.alloc("loss/grad_tanh", mul(T, V, 2));
      t.free("loss/grad_softcap_mul");
      t.free("saved_activations/softcap_tanh");
      t.alloc("loss/grad_logits", mul(T, V, 2));
      t.free("loss/grad_tanh");
    }
    if (!workspace_bwd) {
      // the autograd thread's own cuBLAS handle takes its workspace at its first matmul: the LM head's
      t.alloc("workspace/cublas_bwd", kCublasWorkspace);
      workspace_bwd = true;
    }
    t.free("saved_activations/softcap_tanh");
    if (!c.lora && m.tied.empty()) t.alloc("gradients/lm_head", mul(V, H, c.p));
    if (!c.lora && !m.tied.empty()) t.alloc("gradients/embedding", mul(V, H, c.p));
    t.alloc("activations/grad_hidden", mul(T, H, amp ? 4 : 2));
    t.free("loss/grad_logits");
    t.free("saved_activations/lm_head_bf16_weight");
    t.free("saved_activations/final_norm");
    t.free("saved_activations/final_f32");
    for (uint64_t i = g.layers; i-- > 0;) {
      t.set_phase(fmt::format("step {} backward, layer {}", step, i));
      if (w.grad_ckpt && oplevel) {
        // checkpoint's backward reruns the layer from its saved input with autograd on
        saved[i] = lora_layer_forward(c, i, true, "activations/recomputed");
      } else if (w.grad_ckpt) {
        if (amp) amp_weight_casts(t, m, i, true);
        for (const auto& [n, b] : saved[i]) t.alloc(fmt::format("saved_activations/{}/{}", i, n), b);
      }
      std::set<std::string> have_grad;
      auto grads_of = [&](const char* module) {  // AccumulateGrad: a parameter's .grad when its op's backward ran
        for (auto it = params.rbegin(); it != params.rend(); ++it)
          if (it->layer == static_cast<int64_t>(i) && it->name.find(module) != std::string::npos &&
              have_grad.insert(it->name).second)
            t.alloc("gradients/" + it->name, it->bytes);
      };
      if (g.gated && g.experts == 0) {
        // down_proj(act(gate) * up) backward, op by op (bf16 gradients): the product's gradient, then up's and
        // act's, each input freed once its consumers' backward ran; then silu's backward and the two
        // projections' input gradients, summed
        auto A = [&](const char* n, uint64_t b) { t.alloc(fmt::format("activations/{}/{}", i, n), b); };
        auto F = [&](const char* n) { t.free(fmt::format("activations/{}/{}", i, n)); };
        auto FS = [&](const char* n) { t.free(fmt::format("saved_activations/{}/{}", i, n)); };
        const uint64_t is2 = mul(T, g.ffn, 2), hs2 = mul(T, H, 2);
        A("g_prod", is2);
        grads_of("down_proj");
        A("g_up", is2);
        A("g_act", is2);
        F("g_prod");
        FS("mlp_prod");
        FS("mlp_up");
        A("g_x_up", hs2);
        grads_of("up_proj");
        F("g_up");
        A("g_gate", is2);
        F("g_act");
        FS("mlp_act");
        FS("mlp_gate");
        A("g_x_gate", hs2);
        grads_of("gate_proj");
        F("g_gate");
        A("g_x_mlp", hs2);
        F("g_x_up");
        F("g_x_gate");
        F("g_x_mlp");
      } else {
        // the MLP's backward holds gradients of its intermediates while they are consumed
        t.alloc(fmt::format("activations/{}/grad_mlp", i), mul(T, g.ffn, 2 * 2));
      }
      // AccumulateGrad creates each .grad as its layer's backward reaches it (last parameter first)
      grads_of("");
      t.free(fmt::format("activations/{}/grad_mlp", i));
      for (const auto& [n, b] : saved[i]) t.free(fmt::format("saved_activations/{}/{}", i, n));
      if (amp) amp_weight_casts(t, m, i, false);
      t.free(fmt::format("saved_activations/{}/ckpt_input", i));
      if (oplevel && w.grad_ckpt) {
        t.free("activations/recomputed");
        t.free(i > 0 ? hidden_name(i - 1) : std::string("activations/embed"));
      }
    }
    t.free("saved_activations/embd_dropout");
    if (!c.lora) {
      // the embedding's dense gradient, accumulated into the tied head's gradient when tied
      t.alloc("gradients/embedding_new", mul(V, H, c.p));
      if (!m.tied.empty()) {
        t.alloc("gradients/embedding_sum", mul(V, H, c.p));
        t.free("gradients/embedding_new");
        t.free("gradients/embedding");
      }
      // the other parameters outside the layers (final norm, position embeddings)
      for (const auto& prm : params)
        if (prm.layer < 0 && !is_head_or_embedding(prm)) t.alloc("gradients/" + prm.name, prm.bytes);
    }
    t.free("activations/grad_hidden");
    t.free("activations/sdpa_mask");
    t.free("inputs/ids");
    t.free("inputs/labels");
    // optimizer step
    t.set_phase(fmt::format("step {} optimizer", step));
    if (w.optimizer == OptimizerKind::kAdamW) {
      // torch/optim/adam.py: _init_group creates exp_avg then exp_avg_sq (zeros_like) for each parameter on the
      // first step; AdamW(fused=False) on bf16/fp32 parameters runs _single_tensor_adam, where
      // (exp_avg_sq.sqrt() / bias_correction2_sqrt) allocates two temporaries per parameter, freed at once
      if (step == 1)
        for (const auto& prm : params) {
          t.alloc("optimizer_states/" + prm.name + "/exp_avg", prm.bytes);
          t.alloc("optimizer_states/" + prm.name + "/exp_avg_sq", prm.bytes);
        }
      for (const auto& prm : params) {
        t.alloc("optimizer_temp/sqrt", prm.bytes);
        t.alloc("optimizer_temp/denom", prm.bytes);
        t.free("optimizer_temp/sqrt");
        t.free("optimizer_temp/denom");
      }
    }
    // zero_grad(set_to_none=True)
    for (const auto& prm : params) t.free("gradients/" + prm.name);
    for (const char* n : {"gradients/lm_head", "gradients/embedding", "gradients/embedding_new", "gradients/embedding_sum"}) t.free(n);
  }
}

}  // namespace

std::vector<std::string> linear_module_names(const ArchModel& model) {
  std::vector<std::string> modules;
  for (const auto& tt : model.tensors) {
    const std::string mod = tensor_layer(tt.name) < 0 ? std::string() : linear_module(tt);
    if (!mod.empty() && std::find(modules.begin(), modules.end(), mod) == modules.end()) modules.push_back(mod);
  }
  return modules;
}

std::vector<std::string> attention_lora_targets(const ArchModel& model) {
  const std::vector<std::string> modules = linear_module_names(model);
  auto present = [&](std::initializer_list<const char*> names) {
    std::vector<std::string> v;
    for (const char* n : names)
      if (std::find(modules.begin(), modules.end(), n) != modules.end()) v.emplace_back(n);
    return v;
  };
  auto v = present({"q_proj", "k_proj", "v_proj", "o_proj"});
  return v.empty() ? present({"query_key_value", "c_attn", "qkv_proj", "Wqkv"}) : v;
}

Estimate estimate_transformers(const ArchModel& model, const Workload& w, const GpuProfile& gpu) {
  validate_workload(w);
  Geometry g = geometry(model.facts);
  Estimate e;
  e.engine = "transformers";
  e.engine_version = "transformers 5.17, PyTorch 2.11";
  e.gpu = gpu;
  Tracker t;
  std::string attn_used;
  if (w.mode == RunMode::kTrain && w.train == TrainMethod::kLora) {
    // peft matches target names against module names and refuses a list that matches none; a name that matches
    // nothing beside others that do is skipped (phi's attention output is "dense", not "o_proj")
    const std::vector<std::string> modules = linear_module_names(model);
    std::vector<std::string> missing;
    for (const auto& target : w.lora_targets)
      if (std::find(modules.begin(), modules.end(), target) == modules.end()) missing.push_back(target);
    if (missing.size() == w.lora_targets.size())
      throw Error(ErrorKind::kUsage, "", fmt::format("--lora-targets: none of {} is a linear layer of this model (its linear layers: {})",
                                                     fmt::join(w.lora_targets, ","), fmt::join(modules, ",")));
    if (!missing.empty())
      e.notes.push_back(fmt::format("LoRA targets not in this model, skipped as peft skips them: {}", fmt::join(missing, ",")));
  }
  if (w.mode == RunMode::kTrain) {
    run_training(t, model, g, w);
    attn_used = "sdpa";
  } else {
    run_inference(t, model, g, w, attn_used);
  }
  e.weight_bytes = weight_bytes_in(model, w.mode == RunMode::kTrain && w.precision == TrainPrecision::kAmpBf16 ? DType::F32
                                             : w.mode == RunMode::kTrain ? DType::BF16 : w.dtype);
  e.framework_peak_bytes = t.peak_allocated();
  e.reserved_peak_bytes = t.peak_reserved();
  e.peak_phase = t.peak_phase();
  static const std::map<std::string, std::string> kDetail = {
      {"weights", "every parameter in the requested dtype"},
      {"kv_cache", "DynamicCache keys and values at the peak (torch.cat growth)"},
      {"activations", "hidden states and temporaries alive at the peak"},
      {"logits", "LM-head output (last position when generating) and its fp32 copy"},
      {"inputs", "input ids and attention mask (int64)"},
      {"workspace", "cuBLAS workspaces from the caching allocator (32 MiB per handle and stream)"},
      {"gradients", "parameter gradients, in the parameters' dtype"},
      {"optimizer_states", "AdamW exp_avg and exp_avg_sq, in the parameters' dtype"},
      {"optimizer_temp", "AdamW's per-tensor temporaries (sqrt and division of one parameter at a time)"},
      {"lora", "LoRA adapter weights (fp32, as peft keeps them)"},
      {"saved_activations", "tensors autograd keeps for backward"},
      {"loss", "cross-entropy's fp32 log-softmax and its gradient"},
  };
  for (const char* cat : {"weights", "gradients", "optimizer_states", "optimizer_temp", "lora", "kv_cache", "saved_activations",
                          "activations", "logits", "loss", "inputs", "workspace"}) {
    auto it = t.peak_breakdown().find(cat);
    if (it == t.peak_breakdown().end()) continue;
    auto d = kDetail.find(cat);
    e.components.push_back({cat, it->second, d == kDetail.end() ? "" : d->second});
  }
  e.components.push_back({"allocator_cached", e.reserved_peak_bytes - e.framework_peak_bytes,
                          "reserved by PyTorch's caching allocator beyond the allocated peak (segment rounding, "
                          "blocks freed but kept)"});
  e.components.push_back({"cuda_context", gpu.cuda_context_bytes, "CUDA context, kernels and library handles: " + gpu.context_source});
  const uint64_t outside = gpu.cuda_context_bytes + (w.mode == RunMode::kTrain ? gpu.training_extra_bytes : 0);
  e.components.back().bytes = outside;
  e.process_peak_bytes = e.reserved_peak_bytes + outside;
  e.notes.push_back("attention implementation: " + attn_used);
  return e;
}

void validate_workload(const Workload& w) {
  auto check = [](uint64_t v, const char* name, uint64_t max) {
    if (v == 0) throw Error(ErrorKind::kUsage, "", std::string(name) + " must be at least 1");
    if (v > max) throw Error(ErrorKind::kUsage, "", fmt::format("{} {} is beyond any plausible run (max {})", name, v, max));
  };
  check(w.batch, "--batch", uint64_t{1} << 24);
  check(w.prompt_tokens, w.mode == RunMode::kTrain ? "--seq" : "--prompt", uint64_t{1} << 30);
  if (w.mode == RunMode::kGenerate) check(w.new_tokens, "--new-tokens", uint64_t{1} << 30);
  if (w.dtype != DType::F16 && w.dtype != DType::BF16 && w.dtype != DType::F32)
    throw Error(ErrorKind::kUsage, "", std::string("--dtype ") + std::string(dtype_name(w.dtype)) +
                                           " is not a transformers dtype (fp32, fp16, bf16)");
  if (!w.attn.empty() && w.attn != "sdpa" && w.attn != "eager")
    throw Error(ErrorKind::kUsage, "", "--attn must be sdpa or eager, got '" + w.attn + "'");
  if (w.mode == RunMode::kTrain && w.train == TrainMethod::kLora) check(w.lora_r, "--lora-r", 65536);
}

}  // namespace llmem
