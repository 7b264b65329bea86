// The profile run: vLLM measures the torch peak of one forward pass over max_num_batched_tokens tokens (split over
// up to max_num_seqs dummy requests) followed by a sampler pass, and budgets the KV cache with what is left.
//
//   V1 0.11 vllm/v1/worker/gpu_model_runner.py profile_run: _dummy_run(max_num_tokens) then
//     _dummy_sampler_run(last_hidden_states) on min(max_num_seqs, max_num_batched_tokens) rows, with top-k and
//     top-p set (the sort-based path of v1/sample/ops/topk_topp_sampler.py unless FlashInfer is installed).
//   V0 vllm/worker/model_runner.py profile_run/_dummy_run: max_num_seqs prompts sharing max_num_batched_tokens,
//     sampled with top_p=0.99, top_k=vocab-1 (model_executor/layers/sampler.py _apply_top_k_top_p); only the
//     driver rank samples (the others' logits are gathered to rank 0).
//
// The forward pass frees each layer's intermediates before the next layer, so its peak is the largest single layer
// phase: the residual stream, the normed input and the layer's outputs alive together. The scheduler defaults come
// from vllm/engine/arg_utils.py (V1 _set_default_args, V0 create_engine_config) and vllm/config.py.
#include <algorithm>
#include <cctype>

#include "llmem/error.hpp"
#include "vllm_internal.hpp"

namespace llmem::vllm::detail {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

uint64_t kv_heads_on_rank(uint64_t kv_heads, uint64_t tp) { return kv_heads >= tp ? kv_heads / tp : 1; }

// One decoder layer's attention block: residual, normed input, q/k/v, the attention output and o_proj's output.
uint64_t attention_phase(const ModelFacts& f, const Checkpoint& ckpt, uint64_t tokens, uint64_t b, uint64_t tp) {
  const uint64_t heads = f.n_heads / tp;
  uint64_t width;
  if (f.attention_kind == "mla" && !f.attention.empty()) {
    // MLA prefill (model_executor/layers/mla.py): q per head (nope + rope), the latent, kv_b_proj's per-head
    // keys and values, the assembled keys, and the per-head output.
    const uint64_t v = f.attention.front().v_head_dim, q_head = f.head_dim;
    const uint64_t nope = q_head - (ckpt.rotary_dim ? ckpt.rotary_dim : 0);
    width = heads * q_head + ckpt.mla_latent_dim + heads * (nope + v) + heads * q_head + heads * v;
  } else {
    width = heads * f.head_dim + 2 * kv_heads_on_rank(f.n_kv_heads, tp) * f.head_dim + heads * f.head_dim;
  }
  return tokens * b * (3 * f.hidden + width);
}

uint64_t dense_mlp_phase(const ModelFacts& f, uint64_t tokens, uint64_t b, uint64_t tp) {
  // gate_up output (2 x intermediate) and the activation's output (intermediate) on top of the residual, the
  // normed input and down_proj's output.
  const uint64_t inter = (f.intermediate + tp - 1) / tp;
  return tokens * b * (3 * f.hidden + (f.gated_mlp ? 3 : 2) * inter);
}

uint64_t moe_phase(const ModelFacts& f, uint64_t tokens, uint64_t b, uint64_t tp) {
  // fused_moe/fused_moe.py fused_experts: intermediate caches for a chunk of VLLM_FUSED_MOE_CHUNK_SIZE (32768)
  // tokens: cache1 [M, top_k, 2I], cache2 [M*top_k, I], cache3 [M, top_k, hidden]; the router logits [T, E] in
  // fp32; shared experts' output [T, hidden].
  const uint64_t chunk = std::min<uint64_t>(tokens, 32768);
  const uint64_t inter = (f.moe_intermediate + tp - 1) / tp;
  const uint64_t top_k = std::max<uint64_t>(f.n_experts_active, 1);
  uint64_t bytes = tokens * b * 3 * f.hidden + chunk * top_k * (3 * inter + f.hidden) * b + tokens * f.n_experts * 4;
  if (f.n_shared_experts) bytes += tokens * b * f.hidden;
  return bytes;
}

}  // namespace

uint64_t nccl_buffer_bytes(uint64_t tp) {
  // NCCL allocates NCCL_BUFFSIZE (4 MiB by default, NCCL's environment-variable documentation) per channel for
  // sending and for receiving, for each peer of the ring; 16 channels is assumed (NCCL picks 2-32 by topology).
  if (tp <= 1) return 0;
  return (tp - 1) * 2 * 4 * kMiB * 16;
}

uint64_t forward_peak_bytes(const ArchModel& model, const Checkpoint& ckpt, uint64_t tokens, DType dtype,
                            uint64_t tp) {
  const ModelFacts& f = model.facts;
  const uint64_t b = dtype_info(dtype).block_bytes;
  uint64_t peak = attention_phase(f, ckpt, tokens, b, tp);
  const bool all_moe = f.n_experts && f.n_moe_layers >= f.n_layers;
  if (!all_moe && f.intermediate) peak = std::max(peak, dense_mlp_phase(f, tokens, b, tp));
  if (f.n_experts) peak = std::max(peak, moe_phase(f, tokens, b, tp));
  return peak;
}

SchedulerLimits scheduler_limits(const VllmOptions& opt, const VersionRules& rules, uint64_t max_model_len,
                                 bool has_sliding_window, const GpuProfile& gpu, uint64_t total_memory_bytes) {
  SchedulerLimits lim;
  if (rules.v1) {
    // engine/arg_utils.py _set_default_args: chunked prefill always on for generation; larger defaults on GPUs
    // with >= 70 GiB that are not A100s.
    lim.chunked_prefill = opt.enable_chunked_prefill.value_or(true);
    const std::string name = lower(gpu.name + " " + gpu.display_name);
    const bool big = total_memory_bytes >= 70 * kGiB && name.find("a100") == std::string::npos;
    const bool serve = opt.entrypoint == Entrypoint::kServe;
    const uint64_t tokens = big ? (serve ? 8192 : 16384) : (serve ? 2048 : 8192);
    const uint64_t seqs = big ? 1024 : 256;
    lim.max_num_batched_tokens = opt.max_num_batched_tokens.value_or(lim.chunked_prefill ? tokens : max_model_len);
    lim.max_num_seqs = opt.max_num_seqs.value_or(std::min(seqs, lim.max_num_batched_tokens));
    return lim;
  }
  // V0 engine/arg_utils.py: chunked prefill by default above 32K tokens of context, unless the model slides;
  // config.py SchedulerConfig: max(max_model_len, 2048) tokens otherwise; 256 sequences.
  lim.chunked_prefill = opt.enable_chunked_prefill.value_or(max_model_len > 32768 && !has_sliding_window);
  lim.max_num_batched_tokens = opt.max_num_batched_tokens.value_or(
      lim.chunked_prefill ? rules.v0_chunked_prefill_tokens : std::max<uint64_t>(max_model_len, 2048));
  lim.max_num_seqs = opt.max_num_seqs.value_or(256);
  if (!lim.chunked_prefill && lim.max_num_batched_tokens < max_model_len)
    throw Error(ErrorKind::kUsage, "",
                "max_num_batched_tokens (" + std::to_string(lim.max_num_batched_tokens) +
                    ") is smaller than max_model_len (" + std::to_string(max_model_len) +
                    "). Please increase max_num_batched_tokens or decrease max_model_len.");
  return lim;
}

uint64_t cublas_workspace_bytes(int compute_capability) {
  // CublasHandlePool.cpp parseChosenWorkspaceSize: sm90 ? 4096 * 8 * 1024 : 4096 * 1024 * 2 + 16 * 1024 * 8.
  if (compute_capability == 90) return 4096ull * 8 * 1024;
  return 4096ull * 1024 * 2 + 16ull * 1024 * 8;
}

ActivationPeak activation_peak(const ArchModel& model, const Checkpoint& ckpt, const VersionRules& rules,
                               const SchedulerLimits& lim, DType dtype, uint64_t tp, uint64_t rank_logit_rows,
                               int compute_capability) {
  const ModelFacts& f = model.facts;
  const uint64_t tokens = lim.max_num_batched_tokens;
  const uint64_t b = dtype_info(dtype).block_bytes;
  ActivationPeak a;
  a.forward_bytes = forward_peak_bytes(model, ckpt, tokens, dtype, tp);
  // The sampler runs on the gathered, padded vocabulary while the last layer's hidden states are still alive.
  a.sampler_bytes = rank_logit_rows
                        ? tokens * f.hidden * b + rank_logit_rows * padded_vocab(f.vocab, 1) * rules.sampler_bytes_per_logit
                        : 0;
  a.cublas_workspace_bytes = cublas_workspace_bytes(compute_capability);
  a.bytes = std::max(a.forward_bytes, a.sampler_bytes) + a.cublas_workspace_bytes;
  if (a.sampler_bytes > 0 && a.sampler_bytes >= a.forward_bytes) {
    a.phase = "sampler";
  } else {
    const uint64_t attn = attention_phase(f, ckpt, tokens, b, tp);
    a.phase = a.forward_bytes == attn ? "attention" : (f.n_experts ? "MoE" : "MLP");
  }
  return a;
}

}  // namespace llmem::vllm::detail
