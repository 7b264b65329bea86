// Fit planning: "will it run on my GPU?", answered by searching over an engine's estimates through the seam
// (estimate.hpp), never by a separate rule of thumb, and with one search for every engine. For a model and a
// per-GPU memory budget, each option the engine lists (transformers: precision × inference/full/LoRA; llama.cpp:
// the quantisation schemes) gets:
//   - fits: the process peak of the option's own workload (the requested context, batch 1, every layer on the
//     GPU) is within the budget;
//   - one answer per knob the engine has (Engine::fit_knobs): the largest value that fits, the others held at the
//     option's own. The context (prompt tokens for inference, with the requested new tokens generated after it;
//     sequence length for training; llama.cpp's KV cells in steps of 256) up to the model's limit, or 2^20 when
//     it does not say; the batch at the requested context, up to 2^20; llama.cpp's -ngl. 0 (for -ngl, -1) when
//     not even the smallest value fits;
//   - gpus_needed: the fewest GPUs of this budget.
// Estimates are deterministic and nearly monotone in each knob, which the searches rely on: the answer n is a value
// whose estimate fits while n + 1's does not (unless n is the cap), and n - 1's fits too (checked: the allocator
// replay's fragmentation makes the estimate jagged in places, and a user reads "max batch 5" as "up to 5").
//
// The search (FitSearch::kGuided) decides only on full estimates, but chooses where to look from their bytes: it
// interpolates the crossing of the budget with a quadratic through the bracket's two ends and the last end it
// displaced (memory is a constant, linear terms and, under eager attention, a quadratic one), a secant while it
// has only two points, steps past a guess that lands on one side twice running, and bisects (geometrically across
// a bracket wider than 16x) when the guesses stop halving it. Its answers are those of
// the plain exponential-then-bisection search (FitSearch::kReference, kept for tests and benchmarks), in a few
// estimates instead of about 2·log2(cap). Options (and catalog models) are searched in parallel threads.
//
// Several GPUs under the transformers engine are modelled per GPU: inference as from_pretrained(device_map="auto")
// places the layers, full fine-tuning per rank under each sharding (ddp, zero1, zero2, zero3, fsdp; the one with
// the most headroom is reported), and gpus_needed is the fewest of 2, 4, 8, ..., 64 GPUs on which that model fits
// (a count whose floor, Engine::gpus_floor_bytes, exceeds the budget is answered without estimating).
// Elsewhere (LoRA/QLoRA training, vLLM, a quantised checkpoint's inference) several GPUs are an APPROXIMATION,
// not a model of any sharding scheme: the process footprint minus the
// per-process overhead (CUDA context, and the training thread's handle) is split evenly over the GPUs, and each
// GPU pays the overhead once. Real tensor/pipeline parallelism adds communication buffers and uneven layers.
// Engines whose own multi-GPU placement is not modelled (llama.cpp) are planned for one GPU.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "llmem/estimate.hpp"

namespace llmem {

enum class FitMode { kInference, kFull, kLora, kQLora };
const char* fit_mode_name(FitMode m);  // "inference", "full", "lora", "qlora"

// How a knob's answer is searched (see above); both give the same answers.
enum class FitSearch { kGuided, kReference };

struct FitRequest {
  std::string engine;            // "" = by the source (default_engine: llama.cpp for a GGUF), transformers to rank
  GpuProfile gpu;                // its budget_bytes() is the per-GPU budget; its overheads apply per GPU
  int64_t gpus = 1;              // GPUs of that budget (see the approximation above)
  // transformers: prompt_tokens, new_tokens (inference), seq_tokens (training); llama.cpp: n_ctx, quant (one
  // scheme; "" = every scheme fit tries), flash_attn, cache types. Fit sets batch, precision and mode itself.
  WorkloadSpec workload;
  // The workload fields the user set: each must be one the engine reads in some mode (check_fields_apply).
  std::vector<std::string> set_fields;
  uint64_t batch_cap = uint64_t{1} << 20;
  uint64_t context_cap_unknown = uint64_t{1} << 20;  // tokens (cells), when the model does not say its limit
  int max_iterations = 64;       // per search: estimates beyond the first
  FitSearch search = FitSearch::kGuided;
  unsigned threads = 0;          // options (catalog models) searched at once; 0 = the machine's hardware threads
  // Called after each option (catalog model) is done, with how many are done and how many there are; called from
  // the search threads, one call at a time.
  std::function<void(size_t done, size_t total)> progress;
};

struct FitOption {
  std::string precision;          // "fp32", "bf16", "fp16" (inference), "bf16", "amp-bf16" (training); llama.cpp:
                                  // the quantisation scheme
  FitMode mode = FitMode::kInference;
  Workload workload;              // at the requested context, batch 1, every layer on the GPU
  bool fits = false;              // that workload, on req.gpus GPUs
  uint64_t process_peak_bytes = 0;   // the single-process estimate of that workload
  uint64_t per_gpu_bytes = 0;        // that footprint split over the GPUs (== process_peak_bytes for 1)
  bool per_gpu_modelled = false;     // per_gpu_bytes is the per-GPU model's largest GPU (transformers with --gpus:
                                     // inference placed by from_pretrained's device_map="auto", full training
                                     // sharded per rank under `sharding`), not the even split
  int64_t headroom_bytes = 0;        // budget − per_gpu_bytes (negative: short by that much)
  uint64_t gpus_needed = 0;          // 0: no number of GPUs helps (below the per-GPU overhead, or not modelled)
  // gpus_needed comes from the per-GPU model (transformers inference placed by device_map="auto", full training
  // under its best sharding): the fewest of 2, 4, 8, ..., 64 GPUs on which it fits; false: the even split's answer
  bool gpus_needed_modelled = false;
  std::string gpus_needed_sharding;  // full training: the sharding that fits on gpus_needed GPUs ("" otherwise)
  // full training over req.gpus > 1 (transformers): the sharding estimated per rank with the most headroom at the
  // option's own workload (ties: the first of ddp, zero1, zero2, zero3, fsdp); "" otherwise
  std::string sharding;
  uint64_t weight_bytes = 0;         // the weights the estimate holds (llama.cpp: the file's tensor data)
  bool weights_predicted = false;    // llama.cpp: tensor types predicted from a config, not read from a GGUF
  uint64_t layers = 0;               // llama.cpp: n_layer
  // knob answers (where the engine has the knob)
  uint64_t max_context = 0;          // tokens (cells) at batch 1; 0 where the smallest does not fit
  uint64_t context_cap = 0;          // the search's upper bound
  bool context_capped = false;       // max_context == context_cap: the model's limit, not memory's
  uint64_t max_batch = 0;            // at the requested context; 0 where batch 1 does not fit
  bool batch_capped = false;
  int64_t max_gpu_layers = -1;       // llama.cpp: largest -ngl that fits (layers + 1 = all); -1: none
  // llama.cpp MoE models: the smallest --n-cpu-moe that fits with every layer on the GPU; -1: none (not even every
  // layer's experts in host memory); unset for a dense model
  std::optional<int64_t> min_n_cpu_moe;
  // serving engines (vLLM): the start-up figures at the requested settings (max_context is then the largest
  // --max-model-len that starts, and the utilisation/--kv-cache-memory answers are for --concurrency)
  std::optional<ServingFigures> serving;
};

// Bytes per GPU when a process footprint is split over `gpus` GPUs (see the approximation above).
uint64_t per_gpu_bytes(const Estimate& e, bool training, uint64_t gpus);
// Fewest GPUs of `budget` bytes each that hold the estimate; 0 when none can.
uint64_t gpus_needed(const Estimate& e, bool training, uint64_t budget);

// Largest n in [1, cap] with pred(n) true, for a monotone pred (true then false); 0 when pred(1) is false.
// Exponential search then bisection; never more than max_iterations calls of pred beyond the first.
uint64_t largest_fitting(uint64_t cap, int max_iterations, const std::function<bool(uint64_t)>& pred);

// One estimate of a search: whether count n fits, and the bytes it needs per GPU (what guides the next guess;
// empty where the engine refused the workload as beyond its arithmetic, which counts as not fitting).
struct FitProbe {
  bool fits = false;
  std::optional<uint64_t> bytes;
};
// The same answer as largest_fitting for a monotone `probe`, guided by the bytes towards `budget` (see above).
// `known` is a count already estimated (0: none) and its probe. Never more than max_iterations calls of `probe`.
uint64_t largest_fitting_guided(uint64_t cap, uint64_t budget, int max_iterations, uint64_t known, const FitProbe& known_probe,
                                const std::function<FitProbe(uint64_t)>& probe);

struct FitResult {
  std::string engine;             // the registered engine's name
  ModelSource source;
  uint64_t params = 0;            // exact count (0 for a GGUF read as it is)
  uint64_t max_positions = 0;     // the config's max_position_embeddings (0: not given, or no config)
  std::string architecture;       // the engine's own name for it (llama.cpp's general.architecture)
  std::vector<FitOption> options;
  uint64_t estimates = 0;         // engine estimates the searches ran (what the guided search saves)
  std::vector<std::string> notes; // what the plan assumed (one GPU of several, ...)
};

// Every option the engine lists for the model, with its searches. FieldError for a bad request field ("gpus",
// "prompt_tokens", "new_tokens", "seq_tokens", "engine", the engine's own; a set field the engine does not read;
// "gpus" above 1 for an engine fit plans on one GPU); `source_opened` is called as soon as the source is open.
FitResult fit(const FitRequest& request, const std::string& source, const SourceOptions& source_options = {},
              const std::function<void(const ModelSource&)>& source_opened = {});
// The same for a source already read.
FitResult fit(const FitRequest& request, const SourceFacts& facts);

// The fit on every catalog GPU, smallest memory first (vLLM's fit when no GPU is named: which card serves the model
// at which --max-model-len). Each request is `request` with that card (and `request`'s reserve); the cards are
// searched on `request.threads` threads, and `request.progress` is called per card.
struct GpuFit {
  GpuProfile gpu;
  FitResult result;
};
std::vector<GpuFit> fit_every_gpu(const FitRequest& request, const std::string& source,
                                  const SourceOptions& source_options = {},
                                  const std::function<void(const ModelSource&)>& source_opened = {});

struct RankedModel {
  std::string id;                 // catalog id
  uint64_t params = 0;            // exact PyTorch count
  std::string family;
  FitOption best;                 // the first of the engine's ranking options that fits, else its last
};

struct FitRanking {
  std::string engine;
  std::vector<RankedModel> fits;          // largest model first (params descending)
  std::vector<RankedModel> does_not_fit;  // largest model first; best says by how much
  std::vector<std::string> skipped;       // "id: why" for catalog entries the engine cannot handle
  uint64_t estimates = 0;
  std::vector<std::string> notes;
};

// What of the embedded catalog runs on the request's GPU(s): each model at the engine's preferred option that
// fits (transformers: half-precision inference; llama.cpp: the scheme with the most bits). Under an engine that
// tells when two sources are one model (Engine::same_model), every source is read first, each model searched once
// for all its entries (a fine-tune of a base model is the base model to transformers), the largest first.
FitRanking rank_catalog(const FitRequest& request);

// What the embedded catalog holds, counted: one line of `llmem catalog`.
struct CatalogModel {
  std::string id;
  std::string family;
  std::string model_type;
  uint64_t params = 0;            // exact PyTorch count
};
std::vector<CatalogModel> catalog_models();

}  // namespace llmem
