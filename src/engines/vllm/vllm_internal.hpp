// The vLLM engine's private pieces: the rules of each pinned version as data, and the mechanisms (weights as
// loaded, KV cache layout, profile-run peak) as functions the public estimate composes. Tests include this header
// to check each mechanism against vLLM's printed figures on its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llmem/vllm.hpp"

namespace llmem::vllm::detail {

inline constexpr uint64_t kGiB = 1ull << 30;
inline constexpr uint64_t kMiB = 1ull << 20;

// What changed between the pinned versions, as data. Every field cites where it was read.
struct VersionRules {
  std::string name;                 // "0.11.0"
  std::string commit;               // vllm-project/vllm commit the rules were read at
  bool v1 = false;                  // V1 engine (vllm/v1/...) vs V0 (vllm/worker/...)
  // 0.6.4 vllm/worker/worker.py determine_num_available_blocks: peak = torch peak + (used - torch allocated)
  // after profiling, so the CUDA context and everything else outside torch count against the budget.
  // 0.7.3 vllm/utils.py memory_profiling and 0.11 the same in gpu_worker.py: only the increase of non-torch
  // memory since the worker's baseline snapshot counts (the context was already there).
  bool non_torch_includes_context = false;
  // 0.11 gpu_worker.py init_device: the baseline snapshot is taken after init_worker_distributed_environment, whose
  // PyNccl warm-up all-reduce has already allocated NCCL's buffers; in 0.7.3 the first all-reduce of the profile
  // run allocates them after the baseline.
  bool nccl_before_baseline = false;
  // V0 vllm/config.py SchedulerConfig.__post_init__: max_num_batched_tokens when chunked prefill is on
  // (0.6.4: 512, 0.7.3: 2048); vllm/engine/arg_utils.py turns it on by default above 32K tokens of context.
  uint64_t v0_chunked_prefill_tokens = 0;
  // Bytes per logit element the profile run's sampler holds at its peak (logits in the model dtype, the fp32
  // copy, the sort's values and int64 indices, masks, probabilities). V0 vllm/model_executor/layers/sampler.py
  // _apply_top_k_top_p: 40. V1 0.11: 38, read from vLLM's own printed peak activation, not from its source: the
  // source reading of vllm/v1/sample/ops/topk_topp_sampler.py apply_top_k_top_p (PyTorch path) gave 28, and four
  // public 0.11.0 start-up logs (llm-d's H100 table: Llama-3.1-8B, Qwen3-32B at TP 1 and 2, gpt-oss-20b; rows
  // 1024, vocabularies 128k-201k) print 38.0-38.1 bytes per logit beyond the forward's part; gpt-oss-120b's 0.11.0
  // logs (issue #27508) left 2.2 GiB unexplained in the same 1024-row sampler, 10.7 bytes per logit. Which buffers
  // make the other 10 bytes is not identified.
  uint64_t sampler_bytes_per_logit = 0;
  // V1 vllm/v1/core/kv_cache_utils.py: sliding-window and full-attention layers form separate KV cache groups
  // (hybrid allocator); V0 sizes every layer for the whole context.
  bool hybrid_kv_groups = false;
  // 0.11 get_max_concurrency_for_kv_cache_config rounds the blocks per request up; V0 divides tokens.
  bool concurrency_whole_blocks = false;
  // Block size of MLA models: 0.11 selects FlashMLA (block 64) on Hopper; V0 uses 16.
  uint64_t mla_block_size = 16;
  // CUDA graphs: the largest batch captured (graphs share one pool, captured largest first).
  // 0.11 vllm/config/__init__.py: min(2 * max_num_seqs, 512); 0.7.3 vllm/config.py: min(max_num_seqs, 256)
  // rounded to the capture list (the largest entry of _BATCH_SIZES_TO_CAPTURE is 256).
  uint64_t cuda_graph_max_batch_cap = 0;
  uint64_t cuda_graph_max_batch_per_seq = 1;
  // vllm/model_executor/models/registry.py at the pinned commit: architectures llmem knows that vLLM serves.
  std::vector<std::string> architectures;
};

const VersionRules& rules_for(const std::string& pinned_version);

// The version of a public log, mapped to the pin whose arithmetic it shares: pre-0.6.5 V0 -> 0.6.4, 0.6.5-0.7.x
// V0 -> 0.7.3, V1 (0.8 onwards) -> 0.11.0. `note` says what was assumed.
std::string nearest_pin(const std::string& version, const std::string& engine, std::string& note);

// ---- weights (vllm/model_executor/model_loader, layers/linear.py, vocab_parallel_embedding.py) --------------
struct WeightBreakdown {
  uint64_t total = 0;
  uint64_t embedding = 0, lm_head = 0, linear = 0, experts = 0, other = 0, rope_cache = 0;
};
DType model_dtype(const ArchModel& model, const std::string& dtype_flag);
// The MoE kernel MXFP4 experts are laid out for (quantization/mxfp4.py get_mxfp4_backend, 0.11): FlashInfer on
// compute capability 10.x; Triton on 9.0 when the triton_kernels package imports (vLLM's images ship it), Marlin
// there with VLLM_MXFP4_USE_MARLIN=1 or without that package; Marlin below 9.0 and on 12.x. compute_capability: 90
// for sm_90 etc. (0: unknown, taken as Marlin).
enum class Mxfp4Backend { kMarlin, kTriton, kFlashInferSm100 };
Mxfp4Backend mxfp4_backend(int compute_capability, bool force_marlin);
WeightBreakdown weight_bytes(const ArchModel& model, const Checkpoint& ckpt, const std::optional<Quantization>& q,
                             DType dtype, uint64_t tp, Mxfp4Backend mxfp4);

// ---- KV cache (vllm/v1/kv_cache_interface.py, kv_cache_utils.py; V0 vllm/worker/cache_engine.py) ----------
struct KvLayout {
  uint64_t block_size = 16;
  uint64_t bytes_per_token_layer = 0;   // K and V (MLA: the latent) of one token in one layer, one rank
  uint64_t full_layers = 0;             // layers attending to the whole context
  uint64_t sliding_layers = 0;          // layers with a sliding window (grouped separately by the V1 allocator)
  uint64_t sliding_window = 0;
  uint64_t groups = 1;                  // KV cache groups (V1 hybrid allocator)
  uint64_t layers_per_group = 0;        // blocks are carved per group of this many layers
  bool mla = false;
  uint64_t bytes_per_block() const { return block_size * bytes_per_token_layer * layers_per_group; }
};
KvLayout kv_layout(const ArchModel& model, const Checkpoint& ckpt, const VersionRules& rules, uint64_t tp,
                   uint64_t kv_elem_bytes, std::optional<uint64_t> block_size_flag);
// Bytes one request of `max_model_len` tokens needs (V1 max_memory_usage_bytes summed over groups).
uint64_t kv_needed_bytes(const KvLayout& kv, uint64_t max_model_len, uint64_t max_num_batched_tokens);
struct KvCount {
  uint64_t blocks = 0, tokens = 0, allocated_bytes = 0;
  double max_concurrency = 0;
};
KvCount kv_count(const KvLayout& kv, const VersionRules& rules, int64_t available_bytes, uint64_t max_model_len,
                 uint64_t max_num_batched_tokens);
// vLLM's estimate_max_model_len: the largest length whose one request fits the available bytes.
uint64_t kv_max_len_for(const KvLayout& kv, int64_t available_bytes, uint64_t limit, uint64_t max_num_batched_tokens);

// ---- profile run (V1 gpu_model_runner.py profile_run/_dummy_run/_dummy_sampler_run; V0 model_runner.py) ------
struct SchedulerLimits {
  uint64_t max_num_batched_tokens = 0, max_num_seqs = 0;
  bool chunked_prefill = false;
};
SchedulerLimits scheduler_limits(const VllmOptions& opt, const VersionRules& rules, uint64_t max_model_len,
                                 bool has_sliding_window, const GpuProfile& gpu, uint64_t total_memory_bytes);
struct ActivationPeak {
  uint64_t bytes = 0;    // the torch peak increase: max(forward, sampler) + the cuBLAS workspace
  std::string phase;     // where the peak is: "MLP", "MoE", "attention", "sampler"
  uint64_t forward_bytes = 0, sampler_bytes = 0;
  uint64_t cublas_workspace_bytes = 0;  // allocated at the profile's first GEMM and kept (see cublas_workspace_bytes)
};
// compute_capability: 90 for sm_90 etc. (0: unknown), for the cuBLAS workspace's size.
ActivationPeak activation_peak(const ArchModel& model, const Checkpoint& ckpt, const VersionRules& rules,
                               const SchedulerLimits& lim, DType dtype, uint64_t tp, uint64_t rank_logit_rows,
                               int compute_capability);
// The cuBLAS workspace PyTorch gives each (handle, stream) at its first GEMM (aten/src/ATen/cuda/CublasHandlePool.cpp
// getCurrentCUDABlasHandle / getNewWorkspace): allocated through the caching allocator and kept, so vLLM's torch
// peak (allocated_bytes.all.peak) holds it from the profile run's first GEMM on, and it is torch memory, not
// non-torch. Size: parseChosenWorkspaceSize's default ":4096:2:16:8" = 2 x 4 MiB + 8 x 16 KiB, 32 MiB on sm_90
// (torch 2.5.1 and 2.8.0, the torch of vLLM 0.6.4/0.7.3 and 0.11.0).
uint64_t cublas_workspace_bytes(int compute_capability);
// The largest forward pass of `tokens` tokens (the CUDA graph pool holds the largest captured batch's).
uint64_t forward_peak_bytes(const ArchModel& model, const Checkpoint& ckpt, uint64_t tokens, DType dtype,
                            uint64_t tp);
// NCCL buffers one rank allocates for its tensor-parallel communicator (0 for tp = 1).
uint64_t nccl_buffer_bytes(uint64_t tp);

// Padded vocabulary (vocab_parallel_embedding.py pad_vocab_size, DEFAULT_VOCAB_PADDING_SIZE = 64).
uint64_t padded_vocab(uint64_t vocab, uint64_t tp);

}  // namespace llmem::vllm::detail
