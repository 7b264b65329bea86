// The contract every engine implements: a workload in, an Estimate out. Memory estimates: an itemised breakdown of what an engine allocates for a workload, with the peaks a user can
// check against a measurement: the framework's own peak (torch.cuda.max_memory_allocated), what its caching
// allocator reserves (max_memory_reserved), and what NVML shows for the process (reserved + CUDA context and
// library workspaces outside the allocator).
//
// Engines are modules (src/engines/<name>/) that turn (model facts, workload, GPU) into one Estimate;
// `fit` and the reports know estimates, not engines.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "llmem/arch.hpp"
#include "llmem/dtype.hpp"

namespace llmem {

enum class RunMode { kGenerate, kForward, kTrain };
// generate's KV cache (transformers cache_utils.py): DynamicCache (grown by torch.cat), StaticCache (preallocated
// at max_length, sliding layers at their window; the decode forward is compiled), or DynamicCache with offloading
// (each layer's K/V moved to the CPU once used, the next layer's prefetched)
enum class KvCacheImpl { kDynamic, kStatic, kOffloaded };
const char* kv_cache_impl_name(KvCacheImpl c);  // "dynamic", "static", "offloaded"
// kQLora: LoRA adapters on a bitsandbytes 4-bit base (transformers' BitsAndBytesConfig(load_in_4bit=True), peft's
// prepare_model_for_kbit_training; see src/engines/transformers/bnb.hpp)
enum class TrainMethod { kFull, kLora, kQLora };
enum class TrainPrecision { kBf16, kAmpBf16 };  // bf16: everything bf16; amp-bf16: fp32 master weights + autocast
// torch.optim as user code gets it (PyTorch 2.11, torch/optim/adam.py, sgd.py, optimizer.py
// _default_to_fused_or_foreach): AdamW(params) on CUDA runs the foreach implementation (kAdamWForeach); fused=True
// the fused kernel; foreach=False, or fused=False (passing fused turns the foreach default off), the single-tensor
// for-loop. SGD with momentum 0 or 0.9 (foreach). transformers' Adafactor (relative step, factored second moments).
// bitsandbytes 0.48.2 AdamW8bit and PagedAdamW8bit (8-bit blockwise states; paged: CUDA managed memory).
enum class OptimizerKind { kAdamWForeach, kAdamWFused, kAdamWForLoop, kSgd, kSgdMomentum, kAdafactor, kAdamW8bit,
                           kPagedAdamW8bit };
const char* optimizer_name(OptimizerKind k);  // "adamw-foreach", "adamw-fused", ..., as --optimizer spells them
enum class FlashAttention { kAuto, kOn, kOff };  // llama.cpp's -fa: auto lets it decide per model and device
const char* flash_attention_name(FlashAttention f);  // "auto", "on", "off"

// One workload for every engine: each engine reads the fields it has knobs for and ignores the others (the
// transformers engine the first block, llama.cpp the second). The estimate seam (estimate.hpp) fills it from a
// request in a user's words, checking each field for the engine that runs it.

struct Workload {
  RunMode mode = RunMode::kGenerate;
  DType dtype = DType::F16;          // inference weights and activations
  uint64_t batch = 1;
  uint64_t prompt_tokens = 6;        // inference: prompt length; training: sequence length
  uint64_t new_tokens = 14;          // generate only
  std::string attn;                  // "sdpa", "eager", or "" for the engine's default for the architecture
  KvCacheImpl cache = KvCacheImpl::kDynamic;  // generate only
  // Weights built by from_config (random init, as the measurement harness does) instead of from_pretrained:
  // transformers then creates a tied LM head before tying it, a transient extra copy of the embedding.
  bool from_config = false;
  // Set by the transformers engine for from_pretrained of a checkpoint that stores MoE experts one by one:
  // transformers 5.17's loader stacks them into the fused parameters as it loads (core_model_loading.py)
  bool experts_stacked_at_load = false;
  // A quantised checkpoint's MXFP4 experts stay packed only where Triton >= 3.4 and the `kernels` package (the
  // triton_kernels hub kernels) are installed (transformers 5.17 quantizer_mxfp4.py); default: not installed
  bool mxfp4_kernels = false;
  // An FP8 checkpoint loaded with FineGrainedFP8Config(dequantize=True): weights dequantised to the compute dtype
  bool fp8_dequantize = false;
  bool expandable_segments = false;  // PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (the caching allocator's mode)
  // training
  TrainMethod train = TrainMethod::kFull;
  TrainPrecision precision = TrainPrecision::kBf16;
  OptimizerKind optimizer = OptimizerKind::kAdamWForeach;
  bool grad_ckpt = false;
  uint64_t grad_accum = 1;           // micro-batches per optimizer step (batch is one micro-batch)
  // transformers.Trainer (TrainingArguments defaults, bf16=True): accelerate wraps the forward in autocast and
  // converts its outputs to fp32, and clips gradients (max_grad_norm 1.0) before the step
  bool hf_trainer = false;
  uint64_t lora_r = 16;
  // peft's target_modules; {"all-linear"} is every linear of the decoder layers (peft: all but the output layer)
  std::vector<std::string> lora_targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
  // QLoRA's 4-bit base (BitsAndBytesConfig): bnb_4bit_quant_type nf4 or fp4 (the same bytes), and
  // bnb_4bit_use_double_quant (the blocks' absmax quantised again)
  bool bnb_fp4 = false;
  bool bnb_double_quant = true;
  // several GPUs (transformers): inference split by from_pretrained's device_map, training sharded over ranks
  uint64_t gpus = 1;
  std::string device_map;            // "auto", "balanced", "balanced_low_0", "sequential" (inference, gpus > 1)
  std::vector<std::pair<int, uint64_t>> max_memory;  // from_pretrained's max_memory: GPU index -> bytes (empty: free memory)
  std::string sharding;              // "ddp", "zero1", "zero2", "zero3", "fsdp" (training, gpus > 1)
  // llama.cpp (names as llama.cpp's own: n_ctx in KV cells = tokens, n_batch/n_ubatch in tokens)
  std::string quant;                 // scheme the predicted file has ("Q4_K_M"); "" = a GGUF's own tensor types
  uint64_t n_ctx = 4096;
  uint64_t n_batch = 2048;           // logical batch
  uint64_t n_ubatch = 512;           // physical batch, already min(n_batch, n_ubatch) as llama_context makes it
  int64_t n_gpu_layers = -1;         // -1: all (llama.cpp's default), else 0..n_layer+1 (larger is clamped)
  DType cache_type_k = DType::F16;
  DType cache_type_v = DType::F16;
  FlashAttention flash_attn = FlashAttention::kAuto;
  uint64_t n_parallel = 1;           // sequences, each with its own n_ctx / n_parallel slice of the KV cache
  // tensors kept off their layer's GPU: --override-tensor patterns (regex, first match) -> "CPU" or "CUDA0", then the
  // routed experts of layers below cpu_moe_layers (--n-cpu-moe N; UINT64_MAX for --cpu-moe) in host memory
  std::vector<std::pair<std::string, std::string>> tensor_overrides;
  uint64_t cpu_moe_layers = 0;
  // fit's --n-cpu-moe search: the last N layers keep their routed experts on the GPU (the first n_layer - N in host
  // memory); -1: cpu_moe_layers says
  int64_t gpu_expert_layers = -1;
  bool mmap = true;                  // host-resident weights mapped from the file (else --no-mmap: pinned memory)
  bool mlock = false;                // --mlock: not mapped, and the host weights' buffer locked in RAM (mlock(2))
  uint64_t host_ram_bytes = 0;       // --ram: the machine's RAM the host side must fit in (0 = not checked)
  std::vector<double> tensor_split;  // llama.cpp over `gpus` GPUs: each one's share of the layers (empty: equal)
  bool split_none = false;           // --split-mode none: everything on main_gpu
  uint64_t main_gpu = 0;
  // llama.cpp's multimodal projector (llama-server / llama-mtmd-cli --mmproj FILE): the mmproj GGUF that
  // convert_hf_to_gguf.py --mmproj --outtype mmproj_type writes for the vision-language source, loaded by clip on
  // the GPU (mmproj_offload, llama.cpp's default) or on the CPU (--no-mmproj-offload)
  bool mmproj = false;
  std::string mmproj_type;           // f16, f32, bf16, q8_0 (resolved from the converter's default, auto)
  bool mmproj_offload = true;
  // vLLM (names as `vllm serve`'s flags; 0 or "" = vLLM's default for the version and GPU)
  std::string vllm_version;          // a pinned version ("0.11.0")
  std::string vllm_dtype = "auto";   // --dtype: auto, float16, bfloat16, float32
  double gpu_memory_utilization = 0.9;
  uint64_t max_model_len = 0;        // 0: the model's own maximum
  uint64_t max_num_seqs = 0;
  uint64_t max_num_batched_tokens = 0;
  uint64_t block_size = 0;
  std::string kv_cache_dtype = "auto";  // auto, fp8, fp8_e4m3, fp8_e5m2
  bool enforce_eager = false;
  uint64_t tensor_parallel_size = 1;
  uint64_t kv_cache_memory_bytes = 0;   // --kv-cache-memory (0: budget by gpu_memory_utilization)
  bool vllm_llm_class = false;          // the LLM class's defaults rather than `vllm serve`'s
  uint64_t serving_concurrency = 0;     // fit: requests of max_model_len tokens to hold at once (0: none asked)
  bool allow_long_max_model_len = false;  // VLLM_ALLOW_LONG_MAX_MODEL_LEN=1
  bool mxfp4_marlin = false;              // vLLM: MXFP4 experts through Marlin on Hopper (VLLM_MXFP4_USE_MARLIN=1)
};

struct GpuProfile {
  std::string name;               // catalog name, e.g. "H100-80GB-HBM3"
  std::string display_name;       // "NVIDIA H100 80GB HBM3"
  uint64_t memory_bytes = 0;      // total memory as NVML reports it
  uint64_t cuda_context_bytes = 0;  // per-process memory outside PyTorch's allocator (context, kernels, handles)
  uint64_t training_extra_bytes = 0;  // added when training: the autograd thread's own cuBLAS handle
  int sm_version = 0;             // CUDA compute capability, 86 for 8.6 (0: not known)
  uint64_t sm_count = 0;          // streaming multiprocessors (0: not known)
  uint64_t resident_threads = 0;  // sm_count x the most threads an SM holds at once (0: not known)
  std::string context_source;     // where that figure comes from (a measurement, or a cited one)
  std::string memory_source;
  // What a run may use of memory_bytes: less what other processes (and the driver) held when NVML was read, and
  // less a reserve kept free on purpose (a display, what other processes may yet take).
  uint64_t in_use_bytes = 0;      // NVML's total - free when the GPU was read (--gpu auto); 0 for a catalog card
  uint64_t reserve_bytes = 0;
  std::string reserve_source;     // how it was set ("--reserve 1GiB", "the default"); "" when 0 by default
  uint64_t budget_bytes() const {
    const uint64_t taken = in_use_bytes + reserve_bytes;
    return memory_bytes > taken ? memory_bytes - taken : 0;
  }
};

const std::vector<GpuProfile>& gpu_catalog();
// Exact (case-insensitive, '-'/' '/'_' ignored) or throws Error(kUsage) with the closest names.
const GpuProfile& find_gpu(const std::string& name);
const GpuProfile& default_gpu();
// The card's CUDA compute capability (90 for sm_90) from the catalog (data/gpus.json, each card's source in
// data/gpu_sm_sources.jsonl); 0 when the card is not known.
int compute_capability(const GpuProfile& gpu);
// How much more (less, when negative) per-thread stack the driver reserves in this card's CUDA context than in the
// reference card's, where the runtime overheads were measured: (resident threads - the reference's) x the stack per
// thread. 0 when either card's threads are not known, or the card's overheads were measured on it.
int64_t stack_reservation_delta(const GpuProfile& gpu);
// The part of cuda_context_bytes that comes only once a process's first kernels run (cuBLAS's first GEMM, the first
// attention kernel): measured on an H100 and scaled by the card's resident threads (data/runtime_overheads.json
// first_kernels_*). vLLM's baseline snapshot precedes it, so vLLM counts it as non-torch memory.
uint64_t first_kernels_bytes(const GpuProfile& gpu);
std::string first_kernels_source();

struct MemoryComponent {
  std::string name;       // "weights", "kv_cache", "activations", "logits", "gradients", "optimizer_states", ...
  uint64_t bytes = 0;     // at the moment of the framework peak
  std::string detail;     // how it was computed, in words
  std::string device = "gpu";  // "gpu" or "host" (engines that keep part of the model in host memory)
};

// A weight tensor as an engine stores it (llama.cpp: as the GGUF holds it, or as llama-quantize would write it).
struct WeightTensor {
  std::string name;                  // "blk.3.attn_v.weight"
  std::string type;                  // "Q4_K"
  std::vector<uint64_t> ne;          // the engine's shape order (ggml: ne[0] is the row length)
  uint64_t bytes = 0;
};

// A serving engine's start-up figures (vLLM), per GPU, as its start-up log reports them; see docs/json.md.
struct ServingFigures {
  uint64_t total_memory_bytes = 0;      // what the framework sees as the GPU's total (torch's cudaMemGetInfo)
  std::string total_memory_basis;       // "torch" (as logs print it for the card), "given", or "nominal" (card size)
  double gpu_memory_utilization = 0;
  uint64_t requested_memory_bytes = 0;  // total x utilisation: the budget
  uint64_t activation_peak_bytes = 0;   // the profile run's peak over the weights
  uint64_t non_torch_bytes = 0;         // memory outside torch that the budget counts
  uint64_t cuda_graph_bytes = 0;        // CUDA graph pool
  int64_t available_kv_bytes = 0;       // budget left for the KV cache (negative: it does not start)
  uint64_t kv_cache_bytes = 0;          // allocated: blocks x bytes per block
  uint64_t kv_blocks = 0;
  uint64_t block_size = 0;              // tokens per block
  uint64_t kv_cache_tokens = 0;
  double max_concurrency = 0;           // requests of max_model_len tokens the cache holds at once
  uint64_t kv_needed_bytes = 0;         // one request of max_model_len tokens
  uint64_t estimated_max_model_len = 0; // the engine's own suggestion when it refuses (0: it starts)
  uint64_t max_model_len = 0, max_num_seqs = 0, max_num_batched_tokens = 0, tensor_parallel_size = 1;
  std::string refusal;                  // the engine's error at start-up, "" when it starts
  // fit's answers for Workload::serving_concurrency requests of max_model_len tokens
  std::optional<double> min_gpu_memory_utilization;
  uint64_t kv_cache_memory_bytes = 0;   // the --kv-cache-memory value that holds them
};

// llama.cpp's multimodal projector as the estimate counts it (Workload::mmproj).
struct MmprojFigures {
  std::string projector;              // clip.projector_type: "gemma3"
  std::string outtype;                // the converter's --outtype: f16, f32, bf16, q8_0
  uint64_t n_tensors = 0;
  uint64_t file_tensor_bytes = 0;     // tensor data of the mmproj GGUF (each tensor padded to 32 bytes)
  uint64_t params = 0;                // elements of its tensors
  uint64_t weights_bytes = 0;         // clip's weights buffer
  uint64_t compute_bytes = 0;         // clip's compute buffer after the warm-up image, on the projector's device
  uint64_t host_compute_bytes = 0;    // with the projector on the GPU: the CPU backend's buffer (the image input)
  uint64_t warmup_image_size = 0;     // the warm-up image's side in pixels
  bool flash_attn = false;            // clip's flash attention as resolved (auto: on where the backend runs it)
  std::string device;                 // "gpu" or "host" (--no-mmproj-offload)
};

// One GPU of several (transformers --gpus): its own replay, peaks and breakdown.
struct GpuEstimate {
  unsigned index = 0;                 // the GPU (inference) or rank (training)
  std::string role;                   // what it holds, in words ("layers 0-15, embeddings", "rank 0 of 4")
  std::vector<std::string> modules;   // from_pretrained's device_map entries placed here (inference)
  uint64_t weight_bytes = 0;          // parameters (and buffers) resident here
  uint64_t framework_peak_bytes = 0, reserved_peak_bytes = 0, process_peak_bytes = 0;
  std::string peak_phase;
  std::vector<MemoryComponent> components;
  bool fits = false;                  // process_peak_bytes <= the GPU's budget
};

struct Estimate {
  std::string engine;                 // "transformers"
  std::string engine_version;         // the version whose mechanisms were modelled
  std::string peak_phase;             // where the peak happens, e.g. "prefill, last layer's MLP"
  std::vector<MemoryComponent> components;  // framework allocations at the peak, then the runtime overheads
  uint64_t framework_peak_bytes = 0;  // torch.cuda.max_memory_allocated()
  uint64_t reserved_peak_bytes = 0;   // torch.cuda.max_memory_reserved()
  uint64_t process_peak_bytes = 0;    // NVML per-process used memory at the peak
  uint64_t weight_bytes = 0;
  uint64_t host_bytes = 0;            // host memory the engine uses for the model (llama.cpp: mmap'd weights, CPU buffers)
  uint64_t host_ram_bytes = 0;        // the RAM host_bytes must fit in (--ram); 0 = not checked
  uint64_t host_peak_bytes = 0;       // the process's peak resident set (llama.cpp: mapped file pages included);
                                      // 0 = not modelled
  GpuProfile gpu;
  std::vector<std::string> notes;
  // The model as the engine loads it, where the engine reads a file format of its own (llama.cpp); empty or zero
  // for engines that do not (transformers).
  std::string architecture;           // llama.cpp's general.architecture: "llama", "gemma2", ...
  uint64_t layers = 0;                // decoder layers (llama.cpp's n_layer)
  std::string weights_scheme;         // the file's quantisation scheme ("Q4_K_M") or a GGUF's file type
  bool weights_predicted = false;     // tensor types predicted from a config rather than read from a GGUF
  std::vector<WeightTensor> weight_tensors;  // filled on request only (EstimateRequest::list_tensors)
  std::optional<ServingFigures> serving;     // serving engines (vLLM) only
  std::optional<MmprojFigures> mmproj;       // llama.cpp with --mmproj: the projector's file and buffers
  // transformers with --gpus N > 1: every GPU (or rank); the top-level peaks and components are those of the GPU
  // with the largest process peak
  std::vector<GpuEstimate> per_gpu;
  uint64_t offloaded_weight_bytes = 0;       // inference over several GPUs: weights device_map puts on the CPU or disk
  std::vector<std::string> multi_gpu_lines;  // the placement or sharding in words (and DeepSpeed's own estimate)

  // The one rule of "fits", for estimate and fit alike: the peak a GPU holds (the process peak, or fit's per-GPU
  // share of it) within the budget, no weight that device_map moved off the GPUs, and the host side within the
  // machine's RAM where --ram gave it.
  bool fits_within(uint64_t peak_per_gpu_bytes, uint64_t budget_bytes) const {
    return peak_per_gpu_bytes <= budget_bytes && offloaded_weight_bytes == 0 && host_fits();
  }
  bool host_fits() const { return host_ram_bytes == 0 || host_bytes <= host_ram_bytes; }
};

}  // namespace llmem
