// Fit planning: "will it run on my GPU?", answered by searching over the estimator (estimate.hpp), never by a
// separate rule of thumb. For a model and a per-GPU memory budget, each option (precision × mode) gets:
//   - fits: the process peak at the requested context and batch 1 is within the budget;
//   - max_context: the largest context at batch 1 that fits (prompt tokens for inference, with the requested
//     new tokens generated after it; sequence length for training), found by exponential search then bisection
//     between 1 and the model's max_position_embeddings (inference: minus the new tokens), or 2^20 when the
//     config does not say; 0 when not even 1 token fits;
//   - max_batch: the largest batch at the requested context that fits (same search, capped at 2^20);
//   - gpus_needed: the fewest GPUs of this budget.
// The estimator is deterministic and monotone in context and batch, which the searches rely on: the answer n is
// exactly the last value whose estimate fits (estimate at n fits, at n + 1 does not, unless n is the cap).
//
// Several GPUs are an APPROXIMATION, not a model of any sharding scheme: the process footprint minus the
// per-process overhead (CUDA context, and the training thread's handle) is split evenly over the GPUs, and each
// GPU pays the overhead once. Real tensor/pipeline parallelism adds communication buffers and uneven layers.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "llmem/arch.hpp"
#include "llmem/estimate.hpp"

namespace llmem {

enum class FitMode { kInference, kFull, kLora };
const char* fit_mode_name(FitMode m);  // "inference", "full", "lora"

struct FitRequest {
  GpuProfile gpu;                // its memory_bytes is the per-GPU budget; its overheads apply per GPU
  uint64_t gpus = 1;             // GPUs of that budget (see the approximation above)
  uint64_t prompt_tokens = 6;    // inference context (the study's prompt)
  uint64_t new_tokens = 14;      // tokens generated after the prompt
  uint64_t seq = 512;            // training sequence length
  uint64_t batch_cap = uint64_t{1} << 20;
  uint64_t context_cap_unknown = uint64_t{1} << 20;  // when the config has no max_position_embeddings
  int max_iterations = 64;       // per search (each search needs about 2·log2(cap) estimates)
};

struct FitOption {
  std::string precision;          // "fp32", "bf16", "fp16" (inference); "bf16", "amp-bf16" (training)
  FitMode mode = FitMode::kInference;
  Workload workload;              // at the requested context, batch 1
  bool fits = false;              // at the requested context, batch 1, on req.gpus GPUs
  uint64_t process_peak_bytes = 0;   // the single-process estimate at the requested context, batch 1
  uint64_t per_gpu_bytes = 0;        // that footprint split over req.gpus GPUs (== process_peak_bytes for 1)
  int64_t headroom_bytes = 0;        // budget − per_gpu_bytes (negative: short by that much)
  uint64_t max_context = 0;          // tokens at batch 1; 0 where 1 token does not fit
  uint64_t context_cap = 0;          // the search's upper bound
  bool context_capped = false;       // max_context == context_cap: the model's limit, not memory's
  uint64_t max_batch = 0;            // at the requested context; 0 where batch 1 does not fit
  bool batch_capped = false;
  uint64_t gpus_needed = 0;          // 0: no number of GPUs helps (the budget is below the per-GPU overhead)
};

// Bytes per GPU when a process footprint is split over `gpus` GPUs (see the approximation above).
uint64_t per_gpu_bytes(const Estimate& e, bool training, uint64_t gpus);
// Fewest GPUs of `budget` bytes each that hold the estimate; 0 when none can.
uint64_t gpus_needed(const Estimate& e, bool training, uint64_t budget);

// Largest n in [1, cap] with pred(n) true, for a monotone pred (true then false); 0 when pred(1) is false.
// Exponential search then bisection; never more than max_iterations calls of pred beyond the first.
uint64_t largest_fitting(uint64_t cap, int max_iterations, const std::function<bool(uint64_t)>& pred);

// Every option the transformers engine supports: inference fp32, bf16, fp16; full fine-tuning (AdamW) and LoRA
// (r 16 on q/k/v/o) in bf16 and amp-bf16. Throws Error(kUsage) for a request with zero sizes.
std::vector<FitOption> fit_options(const ArchModel& model, const FitRequest& req);

// One inference option (dtype fp32, bf16 or fp16) with all its searches.
FitOption fit_inference(const ArchModel& model, DType dtype, const FitRequest& req);

struct RankedModel {
  std::string id;                 // catalog id
  uint64_t params = 0;            // exact PyTorch count
  std::string family;
  FitOption best;                 // the half-precision inference option (the config's bf16, else fp16)
};

struct CatalogRanking {
  std::vector<RankedModel> fits;          // largest model first (params descending)
  std::vector<RankedModel> does_not_fit;  // largest model first; best.gpus_needed says how many GPUs would do
  std::vector<std::string> skipped;       // "id: why" for catalog entries the estimator cannot handle
};

// What of the embedded catalog runs for inference on the request's GPU(s) at its context: fp16/bf16 is tried
// (fp32 needs twice the weights, so it fits only where half precision already does).
CatalogRanking rank_catalog(const FitRequest& req);

}  // namespace llmem

// ---- llama.cpp ----------------------------------------------------------------------------------------------
#include "llmem/llamacpp.hpp"

namespace llmem {

struct LlamaFitOption {
  std::string scheme;                // "Q4_K_M"
  bool predicted = true;             // tensor types predicted (false: the GGUF's own)
  uint64_t weight_bytes = 0;         // tensor data of the file
  uint64_t process_peak_bytes = 0;   // GPU process peak with every layer on the GPU at the requested context
  bool all_layers_fit = false;
  int64_t max_ngl = -1;              // largest -ngl that fits at the requested context (n_layer + 1 = all); -1: none
  uint64_t n_layer = 0;
  uint64_t max_context = 0;          // largest n_ctx (multiple of 256) with every layer on the GPU; 0: none
  uint64_t context_cap = 0;
  bool context_capped = false;
};

// Per scheme (for a GGUF source: its own types only), what fits in `budget` bytes of GPU memory.
std::vector<LlamaFitOption> fit_llamacpp(const llamacpp::Model& model, const std::vector<std::string>& schemes,
                                         const llamacpp::RunOptions& run, const GpuProfile& gpu, uint64_t budget);

struct LlamaRankedModel {
  std::string id;
  uint64_t params = 0;
  std::string family;
  LlamaFitOption best;               // the scheme with the most bits per weight whose layers all fit
};

struct LlamaCatalogRanking {
  std::vector<LlamaRankedModel> fits;          // largest model first
  std::vector<LlamaRankedModel> does_not_fit;  // best = the smallest scheme, for the numbers
  std::vector<std::string> skipped;
};

// The catalog under llama.cpp: each model at the best of `schemes` (ordered most bits first) that fits.
LlamaCatalogRanking rank_catalog_llamacpp(const std::vector<std::string>& schemes, const llamacpp::RunOptions& run,
                                          const GpuProfile& gpu, uint64_t budget);

}  // namespace llmem
