// vLLM as an engine: what vLLM's own start-up log will say for a model on a GPU — the weights as loaded, the
// profile run's peak activation, non-torch memory, the KV cache it can allocate (bytes, blocks, tokens), the
// maximum concurrency at max_model_len — and the process peak nvidia-smi shows.
//
// The start-up arithmetic changed between vLLM versions (how the peak is measured, which defaults apply, how the KV
// cache is grouped and counted), so every figure is computed for one pinned version. The rules were read in vLLM's
// source at these commits of github.com/vllm-project/vllm (main-branch commits at each release date; the 0.11 one is
// on the release branch):
//   0.11.0  5aa5811a1 (2025-09-26)  V1 engine: vllm/v1/worker/gpu_worker.py, vllm/v1/worker/gpu_model_runner.py,
//                                   vllm/v1/core/kv_cache_utils.py, vllm/v1/kv_cache_interface.py,
//                                   vllm/engine/arg_utils.py (_set_default_args), vllm/utils/__init__.py
//                                   (MemorySnapshot, memory_profiling), vllm/config/model.py
//   0.7.3   bfbc0b32c (2025-02-20)  V0 engine: vllm/worker/worker.py, vllm/worker/model_runner.py,
//                                   vllm/worker/cache_engine.py, vllm/config.py (SchedulerConfig), vllm/utils.py
//   0.6.4   4f168f69a (2024-11-15)  V0 engine before memory_profiling(): peak = torch peak + everything else the
//                                   process holds after profiling (CUDA context included)
// No vLLM code is used; the rules are restated as small functions that cite the file they come from
// (docs/memory-model.md, "vLLM").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llmem/arch.hpp"
#include "llmem/engine.hpp"
#include "llmem/hf_config.hpp"

namespace llmem::vllm {

// The pinned versions, newest first, and the default (the newest).
const std::vector<std::string>& pinned_versions();
const std::string& default_version();
// "0.11", "0.11.0", "v0.11.0" -> "0.11.0" (a pin, or its minor series); anything else is Error(kUsage) naming the
// pins: other versions' arithmetic differs and has not been read.
std::string resolve_version(const std::string& version);

// How the checkpoint stores its linear-layer weights (config.json's quantization_config, or --quantization).
struct Quantization {
  std::string method;          // "fp8", "gptq", "awq", "compressed-tensors", "mxfp4", "bitsandbytes"
  int weight_bits = 16;        // 4 or 8 for integer schemes, 8 for fp8
  uint64_t group_size = 0;     // GPTQ/AWQ scale group along the input dimension; 0 = per output channel
  uint64_t block_n = 0;        // block FP8: scale block (output x input), 0 = per-tensor/channel scales
  uint64_t block_k = 0;
};

// What config.json says that the architecture facts do not carry but vLLM's start-up depends on.
struct Checkpoint {
  std::string architecture;            // architectures[0]
  std::optional<Quantization> quantization;
  uint64_t derived_max_model_len = 0;  // vLLM's _get_and_verify_max_len, rope scaling applied; 0 = unknown
  std::string max_len_key;             // the config key it came from
  uint64_t mla_latent_dim = 0;         // kv_lora_rank + qk_rope_head_dim (MLA models), else 0
  uint64_t rotary_dim = 0;             // rotary dimensions per head (cos/sin cache width), 0 = no rope
  uint64_t rope_cache_positions = 0;   // rows of the cos/sin cache vLLM builds
};
// Reads the fields above; Error(kInvalidInput) for malformed values.
Checkpoint checkpoint_from_config(const HfConfig& config, const ArchModel& model);

enum class Entrypoint { kServe, kLlm };  // `vllm serve` vs the LLM class: vLLM's defaults differ

// vLLM's engine arguments (flag names of `vllm serve --help`, underscores), with vLLM's defaults.
struct VllmOptions {
  std::string version;                            // "" = default_version()
  double gpu_memory_utilization = 0.9;
  std::optional<uint64_t> max_model_len;          // default: the model's derived maximum
  std::optional<uint64_t> max_num_seqs;           // default: per version, entrypoint and GPU
  std::optional<uint64_t> max_num_batched_tokens; // default: per version, entrypoint and GPU
  std::optional<bool> enable_chunked_prefill;     // default: per version
  std::string dtype = "auto";                     // auto, float16, bfloat16, float32
  std::string kv_cache_dtype = "auto";            // auto, fp8, fp8_e4m3, fp8_e5m2
  std::optional<uint64_t> block_size;             // default 16 (64 for MLA with FlashMLA on 0.11)
  bool enforce_eager = false;
  uint64_t tensor_parallel_size = 1;
  std::optional<uint64_t> kv_cache_memory_bytes;  // --kv-cache-memory (0.11): skips the utilisation budget
  std::string quantization;                       // --quantization; "" = what the checkpoint says
  Entrypoint entrypoint = Entrypoint::kServe;
  bool allow_long_max_model_len = false;          // VLLM_ALLOW_LONG_MAX_MODEL_LEN=1
  bool mxfp4_marlin = false;                      // MXFP4 experts through Marlin on Hopper (VLLM_MXFP4_USE_MARLIN=1)
  std::optional<uint64_t> total_memory_bytes;     // the total torch reports for the GPU (--vram); default: table
  Checkpoint checkpoint;                          // from checkpoint_from_config(); defaults from the facts
};

// Everything the start-up log reports, per GPU (tensor-parallel rank), in bytes unless named otherwise.
struct VllmResult {
  std::string version;
  uint64_t total_memory_bytes = 0;     // what torch reports (cudaMemGetInfo total)
  // Where that total comes from: "torch" (the total public logs print for the card), "given" (set by the
  // caller: VllmOptions::total_memory_bytes or a size that replaced the card's), or "nominal" (the card's
  // catalog or NVML size, a few hundred MiB above torch's; figures that hang on the budget are then approximate).
  std::string total_memory_basis;
  uint64_t requested_memory_bytes = 0; // total x gpu_memory_utilization
  uint64_t weight_bytes = 0;           // "Model loading took X GiB"
  uint64_t activation_peak_bytes = 0;  // torch peak increase during the profile run
  uint64_t forward_peak_bytes = 0;     // its forward pass and the cuBLAS workspace (V0 ranks other than 0 do not sample)
  uint64_t non_torch_bytes = 0;        // non-torch increase (0.6.4: everything outside torch)
  uint64_t cuda_graph_bytes = 0;       // CUDA graph pool (not budgeted by the pinned versions)
  int64_t available_kv_bytes = 0;      // "Available KV cache memory" (negative: vLLM refuses)
  uint64_t kv_cache_bytes = 0;         // what is allocated: blocks x bytes per block
  uint64_t kv_blocks = 0;
  uint64_t kv_cache_tokens = 0;        // "GPU KV cache size: N tokens"
  double max_concurrency = 0;          // "Maximum concurrency for max_model_len tokens per request"
  uint64_t kv_bytes_per_block = 0;     // one block across all layers of one group set
  uint64_t kv_needed_bytes = 0;        // one request of max_model_len tokens
  uint64_t estimated_max_model_len = 0;  // what vLLM's refusal message suggests (0 when it fits)
  uint64_t max_model_len = 0, max_num_seqs = 0, max_num_batched_tokens = 0, block_size = 0;
  uint64_t process_peak_bytes = 0;     // nvidia-smi, per GPU, once serving
  std::string refusal;                 // the error vLLM would stop with at start-up, "" when it starts
  std::vector<MemoryComponent> components;
  std::vector<std::string> notes;
};

// Throws Error(kUnsupported) for an architecture the version does not serve or a quantization llmem does not
// model, Error(kUsage) for a max_model_len beyond the model's limit (without allow_long_max_model_len), a tensor
// parallel size that does not divide the attention heads, or a bad option — each as vLLM words it, in one line.
VllmResult simulate(const ArchModel& model, const VllmOptions& options, const GpuProfile& gpu);
// The Estimate of the seam, with Estimate::serving filled. When vLLM would not start, process_peak_bytes is the GPU
// memory it would need to (its budget rule solved for the total), so "fits the GPU" means "starts on it".
Estimate estimate(const ArchModel& model, const VllmOptions& options, const GpuProfile& gpu);

// ---- fit ----------------------------------------------------------------------------------------------------
struct VllmFit {
  uint64_t largest_max_model_len = 0;   // the largest --max-model-len that starts (0: none)
  double concurrency_at_len = 0;        // at options.max_model_len (or the model's maximum)
  std::optional<double> min_gpu_memory_utilization;  // smallest utilisation for target_len x target_concurrency
  uint64_t kv_cache_memory_bytes = 0;   // --kv-cache-memory that holds target_len x target_concurrency
};
VllmFit fit(const ArchModel& model, const VllmOptions& options, const GpuProfile& gpu, uint64_t target_len,
            uint64_t target_concurrency);
// The two answers of fit for `target_concurrency` requests of options.max_model_len tokens: the smallest
// --gpu-memory-utilization (to 0.001) that gives the KV cache that many tokens and starts (nullopt: not even 1.0),
// and the --kv-cache-memory value (bytes) that holds them.
std::optional<double> min_gpu_memory_utilization(const ArchModel& model, const VllmOptions& options,
                                                 const GpuProfile& gpu, uint64_t target_concurrency);
uint64_t kv_cache_memory_for(const ArchModel& model, const VllmOptions& options, const GpuProfile& gpu,
                             uint64_t target_concurrency);

// The total memory torch reports for a catalog GPU where a public vLLM log printed it; nullopt otherwise.
std::optional<uint64_t> torch_total_memory(const GpuProfile& gpu);

// ---- public start-up logs (bench/data/vllm_public_logs*.jsonl) -----------------------------------------------
struct LogComparison {
  std::string item;       // "weights", "available_kv", "kv_cache_tokens", "max_concurrency", ...
  double logged = 0;      // in the log's unit
  double predicted = 0;
  std::string unit;       // "GiB", "tokens", "blocks", "x"
  double rel_error() const { return logged == 0 ? 0 : (predicted - logged) / logged; }
};
struct LogCheck {
  std::string id;
  std::string version_used;           // the pin the record was computed with
  std::vector<LogComparison> compared;
  std::vector<std::string> skipped;   // items the record prints but cannot be compared, with the reason
  std::string not_modelled;           // non-empty when nothing could be computed (and why)
};
// Builds the options a record's settings mean (vLLM defaults for what it does not state) and compares every
// printed figure the record allows. `configs_jsonl` is the text of vllm_public_logs_configs.jsonl.
LogCheck check_public_log(const nlohmann::json& record, const std::string& configs_jsonl);

}  // namespace llmem::vllm
