// The transformers engine's private parts, shared by its files:
//   geometry.cpp          the model's shapes and traits as the replay reads them; masks and GQA rules of SDPA
//   layer_forward.cpp     one decoder layer's forward op by op (norms, MLP, residuals), as inference runs it
//   attention.cpp         the attention of one layer: projections, rotary, cache update, the four kernels
//   inference.cpp         weights, a forward or a generate (prefill, then decode steps)
//   saved_activations.cpp what autograd keeps for one layer's backward (the layer-level training model)
//   lora.cpp              LoRA on a llama-style layer, replayed op by op
//   training.cpp          training steps: forward, loss, backward
//   optimizer.cpp         trainable parameters, AdamW's states and step, zero_grad
//   bnb.cpp               bitsandbytes' storage arithmetic: 4-bit weights (QLoRA), 8-bit optimizer states
//   estimate.cpp          the public entry points (estimate_transformers, LoRA target names)
//   layout.cpp            the model as transformers builds it from the table's checkpoint names (as_built: MoE
//                         experts fused, load-time renames), what every replay and the placement see
//   placement.cpp         from_pretrained's device_map over several GPUs (accelerate's algorithm, llmem/placement.hpp)
//   multi_gpu.cpp         --gpus: one replay per GPU (split inference), the top-level figures from the largest
//   sharding.cpp          --gpus with --sharding: rank 0 of DDP, FSDP2, ZeRO 1-3, and DeepSpeed's own estimators
#pragma once

#include <algorithm>
#include <charconv>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "alloc_sim.hpp"
#include "llmem/arch.hpp"
#include "llmem/checked.hpp"
#include "llmem/engine.hpp"
#include "llmem/error.hpp"
#include "llmem/placement.hpp"
#include "llmem/transformers.hpp"

namespace llmem::transformers {

using sim::Tracker;

// --- arithmetic and names --------------------------------------------------------------------------------------

inline uint64_t mul(uint64_t a, uint64_t b) {
  auto r = checked_mul(a, b);
  if (!r) throw Error(ErrorKind::kUsage, "", "the workload's sizes overflow 64-bit arithmetic");
  return *r;
}
inline uint64_t mul(uint64_t a, uint64_t b, uint64_t c) { return mul(mul(a, b), c); }
inline uint64_t mul(uint64_t a, uint64_t b, uint64_t c, uint64_t d) { return mul(mul(a, b, c), d); }

// per cuBLAS handle and stream, from the caching allocator: exactly 32 MiB (33,554,432-byte blocks in every
// recorded allocator trace, bench/data/traces)
constexpr uint64_t kCublasWorkspaceBytes = 32u << 20;

// A tensor's or a phase's name from its parts, text and whole numbers, as fmt::format("{}{}...") writes them but
// without a format string to parse: a fit replays millions of names.
inline void append_part(std::string& out, std::string_view text) { out.append(text); }
template <std::integral T>
  requires(!std::same_as<T, bool> && !std::same_as<T, char>)
void append_part(std::string& out, T number) {
  char digits[24];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, number).ptr);
}
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::string out;
  (append_part(out, parts), ...);
  return out;
}

// The name of a layer's activation: "activations/<layer>/<what>".
inline std::string L(uint64_t layer, std::string_view what) { return concat("activations/", layer, "/", what); }

// --- geometry (geometry.cpp) -----------------------------------------------------------------------------------

struct Geometry {
  uint64_t layers = 0, hidden = 0, q_dim = 0, k_dim = 0, v_dim = 0, ffn = 0, vocab = 0, heads = 0, kv_heads = 0,
           head_dim = 0;
  // what the KV cache holds per token and layer: k_dim and v_dim, or MLA's latent (ModelFacts::mla_cache_*_dim)
  uint64_t cache_k_dim = 0, cache_v_dim = 0;
  bool gated = false, rope = false;
  bool fused_gate_up = false;  // one gate_up_proj (Phi-3), chunked into gate and up
  bool experts_bias = false;   // the fused experts carry biases (gpt-oss: gate_up_proj_bias, down_proj_bias)
  uint64_t experts = 0, top_k = 0, moe_ffn = 0, shared_ffn = 0;
  std::vector<bool> moe_layer;   // per layer: routed experts (DeepSeek's first layers are dense)
  bool is_moe(uint64_t layer) const { return experts > 0 && (layer >= moe_layer.size() || moe_layer[layer]); }
  std::vector<uint64_t> window;  // per layer: sliding window in tokens, 0 = full
  // The decoder layer each replayed layer is, where the replay skips some (Mllama's cross-attention layers, which a
  // text-only forward skips); empty when it runs them all. Placement and tensors use the decoder's numbering.
  std::vector<uint64_t> decoder_layer;
  uint64_t decoder_index(uint64_t layer) const { return layer < decoder_layer.size() ? decoder_layer[layer] : layer; }
  std::string activation;
  uint64_t rot_dims = 0;  // rotated part of each head (partial rotary: phi, gpt-neox)
  ArchTraits traits;

  bool rms_norm() const { return traits.norm != NormKind::kLayerNorm; }
  bool parallel_residual() const { return traits.residual != ResidualKind::kSequential; }
  bool fused_qkv() const { return traits.qkv == QkvLayout::kFused; }
  bool partial_rope() const { return rope && rot_dims < head_dim; }
  // value width per query head (v_dim is per KV head group)
  uint64_t v_head_dim() const { return v_dim / std::max<uint64_t>(1, kv_heads); }
  // the element size of a MoE block's weighted expert outputs for activations of `s` bytes: the routing weights'
  // dtype promotes them (DeepSeek's are fp32: moe_routing_fp32)
  uint64_t weighted_experts_bytes(uint64_t s) const { return traits.moe_routing_fp32 ? 4 : s; }
  uint64_t gqa_groups() const { return heads / std::max<uint64_t>(1, kv_heads); }
};

Geometry geometry(const ModelFacts& facts);
// The same, with which layers route to experts read from the model's tensors.
Geometry geometry(const ArchModel& model);

// "sdpa" or "eager": what transformers runs when the workload names no implementation.
std::string default_attention(const Geometry& g);

// Activations transformers implements in Python (NewGELUActivation and kin): each op makes its own tensor.
bool is_python_gelu(const std::string& activation);

// transformers' sdpa_attention_forward passes GQA to SDPA (enable_gqa) only without a mask; with one it expands
// K and V to every head (repeat_kv), and SDPA keeps the expanded copies. masking_utils skips the mask for a plain
// causal prefill unless a sliding window is not longer than the sequence (_ignore_causal_mask_sdpa:
// kv_length < local_attention_size), so a model with a window (Mistral) gets a mask from seq >= window on.
bool sdpa_mask_needed(const Geometry& g, uint64_t layer, uint64_t seq_tokens);
bool sdpa_repeats_kv(const Geometry& g, uint64_t layer, uint64_t seq_tokens);

// --- one decoder layer's forward without autograd (layer_forward.cpp, attention.cpp) ----------------------------

struct Ctx {
  Tracker& t;
  const Geometry& g;
  uint64_t s;        // bytes per activation element
  uint64_t batch;
  bool eager;        // scores materialised (eager_attention_forward or a family's own path)
  bool bf16 = false;  // activations in bfloat16 (F.softmax's fused half->float path exists for float16 only)
  bool math_sdpa_upcast = false;  // SDPA runs PyTorch's math backend with its fp32 upcast (see attention.cpp)
  bool cache = false;      // a KV cache is updated (generate); without one the layer's own K/V stay in locals
  // StaticCache: attention reads the preallocated max_length keys, so masking_utils always builds a mask (the
  // kv length is not the query length) and SDPA expands GQA's K/V (see sdpa_mask_needed)
  bool always_masked = false;
  bool cublas_pending = true;  // cuBLAS takes its workspace from the allocator at the first matmul
};

// cuBLAS takes its workspace at the first matmul of the process.
void first_matmul(Ctx& c);

// A norm over `rows` rows of width `width`: the transient of computing it, then its output `out`.
void norm(Ctx& c, const std::string& out, uint64_t rows, uint64_t width, const std::string& scratch);

// Self-attention of one layer for `q_len` new tokens attending to `kv_len` cached ones (prefill: equal). Leaves the
// attention output projection in `out`; `update_cache` allocates the layer's K/V cache tensors (generate).
void attention(Ctx& c, uint64_t layer, uint64_t q_len, uint64_t kv_len, const std::string& out,
               const std::function<void()>& update_cache);

// The eager attention's weights (attn_weights) outlive the attention call (see decoder_layer): whether this
// context's kernel makes them, and their release (probs, or the fp32 softmax itself when nothing casts it back).
bool keeps_attn_weights(const Ctx& c);
void free_attn_weights(Ctx& c, uint64_t layer);

void mlp(Ctx& c, uint64_t layer, uint64_t tokens, const std::string& out);

// One decoder layer: the hidden state -> `out` (its input stays alive; the caller frees it).
void decoder_layer(Ctx& c, uint64_t layer, uint64_t q_len, uint64_t kv_len, const std::string& out,
                   const std::function<void()>& update_cache);

// --- inference (inference.cpp) ---------------------------------------------------------------------------------

// Weights as loaded: every parameter in `dtype`, or, for a quantised checkpoint (`quant` set), what transformers'
// quantiser keeps on the GPU (src/arch/quantization.cpp weights_as_loaded).
// `loaded`: a quantised checkpoint as its quantiser keeps it (weights_as_loaded, computed once per estimate).
uint64_t weight_bytes_in(const ArchModel& m, DType dtype, const LoadedWeights* loaded = nullptr);
// How from_pretrained loads (transformers 5.17): the allocator warm-up, and MoE experts stacked as they load.
struct LoadPath {
  bool from_pretrained = false;
  bool experts_stacked = false;
};
// `cache`: a fresh tracker (Tracker::fresh) starts from the cache's copy of the same load when it has one, and
// leaves one there when not; `loaded` must then be null or the cache's own (ReplayCache::loaded_weights).
void load_weights(Tracker& t, const ArchModel& m, DType dtype, const LoadedWeights* loaded = nullptr,
                  const LoadPath& path = {}, ReplayCache* cache = nullptr);
// Returns the attention implementation it ran ("sdpa" or "eager").
std::string run_inference(Tracker& t, const ArchModel& m, const Geometry& g, const Workload& w,
                          const LoadedWeights* loaded = nullptr, ReplayCache* cache = nullptr);

// --- training (saved_activations.cpp, lora.cpp, training.cpp, optimizer.cpp) -------------------------------------

// The tensors autograd keeps, by name and bytes.
using SavedSet = std::vector<std::pair<std::string, uint64_t>>;

struct TrainCtx {
  Tracker& t;
  const Geometry& g;
  const ModelFacts& f;
  const Workload& w;
  uint64_t p;   // bytes per parameter (bf16: 2, amp: fp32 master weights, 4)
  uint64_t T;   // tokens in the batch
  bool amp, lora;
  // LoRA: the roles of the decoder layers' linear modules that carry an adapter (see trainable_params)
  std::vector<TensorRole> adapted_roles = {};
};

// Whether the LoRA target list names this module ("q_proj", "dense", ...), as peft matches targets (optimizer.cpp).
bool targets(const TrainCtx& c, const std::string& module_name);
// Whether the decoder layers' linear module of this role carries a LoRA adapter (saved_activations.cpp).
bool adapts(const TrainCtx& c, TensorRole role);

// The tensors autograd keeps for one decoder layer's backward (the layer-level model: every family).
SavedSet saved_for_layer(const TrainCtx& c, uint64_t layer);

// An RMSNorm of `kind` over n elements with a frozen weight, under autograd (see lora.cpp).
void frozen_rms_norm(Tracker& t, NormKind kind, uint64_t n, const std::string& f32, bool keep_f32,
                     const std::string& tmp, const std::string& out);
// Whether LoRA training is replayed op by op (lora_layer_forward) rather than by the layer-level model.
bool lora_oplevel(const TrainCtx& c);
// One decoder layer's forward under LoRA, op by op; returns what it leaves saved for backward (none when !grad).
SavedSet lora_layer_forward(TrainCtx& c, uint64_t layer, bool grad, const std::string& out);

// One trainable parameter as the optimizer sees it: a name, its bytes in the trained dtype, its decoder layer (-1
// outside the layers) and the role of the tensor it is (or, for a LoRA adapter, the tensor it adapts).
struct Param {
  std::string name;
  uint64_t bytes;
  int64_t layer;
  TensorRole role;
  std::vector<uint64_t> shape = {};  // as PyTorch's (Adafactor factors the second moment of tensors of 2+ dims)
};
// The trainable parameters in model.parameters() order (the order of the optimizer's loops and of its lazily
// created states): every tensor, or for LoRA the adapters peft adds.
std::vector<Param> trainable_params(const TrainCtx& c, const ArchModel& m);
// The roles of the tensors LoRA adapters wrap (for TrainCtx::adapted_roles).
std::vector<TensorRole> adapted_roles(const std::vector<Param>& lora_params);
// Parameters whose gradient is not a .grad of their own made in the layers' backward: the token embedding and the
// LM head (their gradients are gradients/embedding* and gradients/lm_head, see training.cpp).
bool is_head_or_embedding(const Param& prm);
// The optimizer's step (AdamW: states created lazily on the first step, per-parameter temporaries) and
// zero_grad(set_to_none=True), which drops every gradient the backward made.
// Returns the bytes it placed in CUDA managed memory (bitsandbytes' paged states), outside the allocator.
uint64_t optimizer_step(const TrainCtx& c, const std::vector<Param>& params, uint64_t step);
// transformers.Trainer's clip_grad_norm_ (max_grad_norm 1.0, foreach): one norm scalar per gradient, then an in-place
// scale; called between the backward and the step.
void clip_grad_norm(const TrainCtx& c, const std::vector<Param>& params);
void zero_grad(const TrainCtx& c, const ArchModel& m, const std::vector<Param>& params);

// Returns the CUDA managed memory the run holds outside PyTorch's allocator (paged optimizer states).
uint64_t run_training(Tracker& t, const ArchModel& m, const Geometry& g, const Workload& w, ReplayCache* cache = nullptr);

// --- the estimate (estimate.cpp) and several GPUs (multi_gpu.cpp, placement.cpp) ---------------------------------

// The itemised peak of a replay: live bytes at the framework peak by category, then the caching allocator's cached
// bytes and the CUDA context; sets e.process_peak_bytes (framework and reserved peaks must be set).
// `managed`: bitsandbytes' paged optimizer states (CUDA managed memory, outside the allocator).
void itemise(Estimate& e, const Tracker& t, const Workload& w, const GpuProfile& gpu, uint64_t managed = 0);

// --gpus N > 1: one replay per GPU (inference placed by from_pretrained's device_map) or per rank (training
// sharded), filling e.per_gpu and the top-level figures from the GPU with the largest process peak.
// `cache`: where placements are kept for the model's other estimates (none: placed for this one alone).
void estimate_multi_gpu(Estimate& e, const ArchModel& m, const Geometry& g, const Workload& w, const GpuProfile& gpu,
                        ReplayCache* cache = nullptr);

}  // namespace llmem::transformers

namespace llmem {

// Trackers as load_weights left them, from a fresh one: what a load replays depends only on these.
struct ReplayCache::Loads {
  struct Key {
    const ArchModel* model;
    DType dtype;
    const LoadedWeights* loaded;
    bool from_pretrained, experts_stacked, expandable_segments;
    bool operator==(const Key&) const = default;
  };
  std::mutex mutex;
  std::vector<std::pair<Key, std::shared_ptr<const transformers::Tracker>>> done;
};

// from_pretrained's placements of a model over several GPUs (place_model), by request: one for every estimate of a
// fit's searches, which vary the prompt and the batch, not where the modules go.
struct ReplayCache::Placements {
  std::mutex mutex;
  std::vector<std::tuple<const ArchModel*, PlacementRequest, std::shared_ptr<const Placement>>> done;
};

}  // namespace llmem
