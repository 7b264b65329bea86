// The estimate seam: one request (a source, an engine, a workload, a GPU) -> the engine registry -> one Estimate.
//
// `llmem estimate`, `fit`, `validate`, `study` and `measure --estimate` all go through here, and only this module
// knows the engines: each is an adapter (src/estimate/engine_<name>.cpp) behind the Engine interface below,
// registered in registry.cpp. Modules above (plan, report, the CLI) see requests, Engine and Estimate, never an
// engine's own types, and the build enforces it (the engines are private to llmem_estimate).
//
// A request is in a user's words (strings, signed counts as typed); the engine that runs it checks and resolves it
// into a Workload, and every bad value is a FieldError naming the request's field (WorkloadSpec's names), which a
// face maps to its own option names.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llmem/arch.hpp"
#include "llmem/catalog.hpp"
#include "llmem/engine.hpp"
#include "llmem/field_error.hpp"
#include "llmem/nvml.hpp"
#include "llmem/params.hpp"
#include "llmem/source.hpp"

namespace llmem {

// ---- a request, in a user's words --------------------------------------------------------------------------

// Both engines' knobs. Defaults are the seed study's scenario (transformers) and llama.cpp's own defaults.
struct WorkloadSpec {
  // transformers
  std::string dtype = "fp16";             // fp32, fp16, bf16 (inference)
  std::optional<int64_t> batch;           // transformers: sequences (default 1); llama.cpp: n_batch tokens (2048)
  int64_t prompt_tokens = 6;              // the study's "Hello, world!" prompt
  int64_t new_tokens = 14;                // the study's max_length 20
  bool use_cache = true;                  // false: one forward pass without KV cache
  // generate's cache_implementation: "" (what generate picks: dynamic), dynamic (hybrid: a DynamicCache in
  // transformers 5.17), static, offloaded
  std::string cache_impl;
  // transformers inference of an MXFP4 checkpoint: "yes" when Triton >= 3.4 and the kernels package are installed
  // (experts stay packed), "no" or "" (the default) when not (experts dequantised to bf16)
  std::string mxfp4_kernels;
  // transformers inference of an FP8 checkpoint: FineGrainedFP8Config(dequantize=True), the weights loaded in the
  // compute dtype (what transformers does by itself below compute capability 8.9)
  bool fp8_dequantize = false;
  std::string attn;                       // "sdpa", "eager", "" = transformers' choice for the architecture
  std::string train;                      // "" (inference), "full", "lora" or "qlora"
  std::string precision = "bf16";         // training: bf16 or amp-bf16
  // training: adamw (= adamw-foreach, what torch.optim.AdamW(params) runs on CUDA), adamw-foreach, adamw-fused,
  // adamw-forloop, sgd, sgd-momentum, adafactor, adamw-8bit, paged-adamw-8bit (bitsandbytes); "" = adamw, or with
  // hf_trainer the Trainer's default
  std::string optimizer;
  bool hf_trainer = false;                // transformers.Trainer with TrainingArguments defaults and bf16=True
  int64_t grad_accum = 1;                 // gradient_accumulation_steps: micro-batches of `batch` per step
  int64_t seq_tokens = 512;               // training sequence length
  bool grad_ckpt = false;
  int64_t lora_r = 16;
  std::vector<std::string> lora_targets = {"q_proj", "k_proj", "v_proj", "o_proj"};  // or {"all-linear"}
  std::string bnb_4bit_quant_type = "nf4";  // qlora: nf4 or fp4
  bool bnb_double_quant = true;             // qlora: bnb_4bit_use_double_quant
  bool from_config = false;               // weights built with from_config (the measurement harness), not loaded
  std::string alloc_conf;                 // PYTORCH_CUDA_ALLOC_CONF: "" (defaults) or expandable_segments:True/False
  // several GPUs (transformers): --gpus, inference's --device-map and --max-memory, training's --sharding
  int64_t n_gpus = 1;
  std::string device_map;                 // auto, balanced, balanced_low_0, sequential ("" = auto when n_gpus > 1)
  std::string max_memory;                 // "0=20GiB,1=24GiB": from_pretrained's max_memory per GPU index
  std::string sharding;                   // ddp, zero1, zero2, zero3, fsdp
  // llama.cpp
  std::string quant;                      // scheme of the predicted file ("Q4_K_M"); a GGUF source has its own
  int64_t n_ctx = 4096;
  int64_t n_ubatch = 512;
  int64_t n_gpu_layers = -1;              // -1: all
  std::string cache_type_k = "f16";
  std::string cache_type_v = "f16";
  std::string flash_attn = "auto";        // on, off, auto
  int64_t n_parallel = 1;
  int64_t n_cpu_moe = 0;                  // --n-cpu-moe: the routed experts of the first N layers in host memory
  bool cpu_moe = false;                   // --cpu-moe: every layer's routed experts in host memory
  std::vector<std::string> override_tensor;  // --override-tensor PATTERN=BUFFER (CPU or CUDA0), in order
  bool no_mmap = false;                   // --no-mmap: host-resident weights read into pinned memory
  bool mlock = false;                     // --mlock (llama.cpp's load mode mlock): as --no-mmap, the host weights locked
  std::string ram;                        // --ram SIZE: the machine's RAM, to check the host side against ("" = none)
  std::string tensor_split;               // --tensor-split 3,1: each GPU's share of the layers ("" = equal)
  std::string split_mode = "layer";       // --split-mode layer | none (row is not modelled)
  int64_t main_gpu = 0;                   // --main-gpu: the GPU of --split-mode none
  bool mmproj = false;                    // --mmproj: the vision-language model's projector (mmproj GGUF) too
  std::string mmproj_type;                // --mmproj-type f16|f32|bf16|q8_0 ("" = the converter's auto)
  bool no_mmproj_offload = false;         // --no-mmproj-offload: the projector on the CPU
  // vLLM (flag names as `vllm serve`'s)
  std::string vllm_version;               // "" = the newest pinned version
  std::string vllm_dtype = "auto";        // auto, float16, bfloat16, float32 (also fp16, bf16, fp32)
  double gpu_memory_utilization = 0.9;
  std::optional<int64_t> max_model_len;   // default: the model's maximum
  std::optional<int64_t> max_num_seqs;    // default: vLLM's for the version, entry point and GPU
  std::optional<int64_t> max_num_batched_tokens;
  std::optional<int64_t> block_size;
  std::string kv_cache_dtype = "auto";
  bool enforce_eager = false;
  int64_t tensor_parallel_size = 1;
  std::string kv_cache_memory;            // a size, e.g. "20GiB"; "" = budget by gpu_memory_utilization
  bool vllm_llm_class = false;            // the LLM class's defaults instead of `vllm serve`'s
  int64_t serving_concurrency = 0;        // fit: requests of max_model_len tokens to hold at once
  bool allow_long_max_model_len = false;  // VLLM_ALLOW_LONG_MAX_MODEL_LEN=1
  bool mxfp4_marlin = false;              // vLLM: MXFP4 experts through Marlin on Hopper (VLLM_MXFP4_USE_MARLIN=1)
};

// The GPU of a request.
struct GpuSpec {
  std::string name;           // a catalog name; "" = the reference GPU; "auto" = GPU 0 as NVML finds it, its free
                              // memory (fit: every GPU NVML finds, see resolve_fit_gpus)
  std::string memory;         // "" or a size ("24GiB", "80GB") replacing the card's, keeping its runtime overhead
  std::string memory_origin;  // how reports name where that size came from ("--vram 24GiB"); "" = the size itself
  std::string reserve;        // memory kept free on each GPU ("1GiB", "0"); "" = kDefaultReserveBytes (a tenth of
                              // the memory where that is less: GPUs under 5 GiB)
  std::string reserve_origin; // how reports name it ("--reserve 1GiB"); "" = the size itself
};

// The reserve when a request gives none: the driver's own share of a card that NVML counts in its total, and a
// desktop's display, are each a few hundred MiB.
inline constexpr uint64_t kDefaultReserveBytes = uint64_t{512} << 20;

struct SourceFacts;

struct EstimateRequest {
  std::string source;                     // a path, org/name[@rev], a catalog name (see source.hpp)
  SourceOptions source_options;
  // A source already read (a catalog entry, an edited config, one model under several engines): wins over
  // `source`, and is read once however many estimates share it.
  std::shared_ptr<const SourceFacts> source_facts;
  std::string engine;                     // a registered engine's name or alias; "" = by the source (default_engine)
  WorkloadSpec workload;
  // The fields the user set (WorkloadSpec's names, and "list_tensors"): each must be one the engine reads for this
  // workload, else a FieldError "{field} applies to ..." says where it does (check_fields_apply). Fields not listed
  // keep their defaults silently. One option that sets several fields is one entry, '|'-separated
  // ("dtype|vllm_dtype"): it applies where the engine reads any of them.
  std::vector<std::string> set_fields;
  GpuSpec gpu;
  std::optional<GpuProfile> gpu_profile;  // a resolved GPU (e.g. the one `measure` samples); wins over `gpu`
  bool list_tensors = false;              // fill Estimate::weight_tensors (engines that read a file format)
  // Called once the source is open, before any engine work (the CLI prints --verbose there, so a failing
  // estimate still says what it read).
  std::function<void(const ModelSource&)> source_opened;
};

// ---- the result --------------------------------------------------------------------------------------------

struct EstimateResult {
  std::string engine;    // the registered engine's name ("transformers", "llamacpp")
  Estimate estimate;     // the engine's itemised figures and what it loaded
  ModelSource source;    // where the model came from
  Workload workload;     // the request as the engine resolved it
  std::vector<FieldWarning> warnings;  // values allowed but probably not meant (a GPU of 24 MB)
};

// Opens the source (unless already open), runs the engine, returns its Estimate. Throws FieldError for a bad
// field ("source", "engine", "gpu", a WorkloadSpec field), the source's and the engine's own errors otherwise.
EstimateResult estimate(const EstimateRequest& request);

// ---- the engines -------------------------------------------------------------------------------------------

// What a source yields, read once for any number of estimates (fit's searches).
struct SourceFacts {
  ModelSource source;
  std::shared_ptr<const ArchModel> arch;  // from a config.json of a known architecture; null otherwise
  // The exact count (the config's, else the weights'); none for a GGUF used as-is. A config's count leaves out the
  // params report's details (count_from_model's `details`: the tensor list, stored_*): `arch` has the tensors.
  std::optional<ParamCount> params;
};

// A model as one engine sees it (transformers: the architecture; llama.cpp: the GGUF it loads), prepared once and
// estimated many times. Each engine defines its own.
class EngineModel {
 public:
  virtual ~EngineModel() = default;
};

// A size `fit` can search, as a count of units: the largest count whose estimate fits is the answer.
enum class Knob {
  kContext,    // prompt tokens (transformers inference), sequence tokens (training), KV cells (llama.cpp)
  kBatch,      // sequences per batch
  kGpuLayers,  // llama.cpp's -ngl, as count = layers + 1 (count 0: not even 0 layers fit)
  // llama.cpp's --n-cpu-moe N with every layer on the GPU (MoE models), as count = the layers that keep their routed
  // experts on the GPU + 1 = n_layer + 1 - N: the largest count that fits is the smallest N (count 0: not even
  // every layer's experts in host memory fits)
  kGpuExpertLayers,
};

struct KnobRange {
  uint64_t max_count = 0;    // the model's limit; 0 = the model does not say (the plan's cap applies)
  uint64_t unit = 1;         // knob value of one count (llama.cpp's context: 256 cells)
  uint64_t base_count = 0;   // the count the candidate's own workload stands at
  bool applies = true;       // false where the model has nothing the knob changes (--n-cpu-moe of a dense model)
};

// A workload `fit` tries, with the label it shows.
struct FitCandidate {
  std::string precision;     // "fp16", "amp-bf16", a quantisation scheme; "" = the file's own (the estimate says)
  Workload workload;
};

// A quantisation scheme an engine can predict a file for.
struct WeightScheme {
  std::string name;          // "Q4_K_M"
  std::string default_type;  // the scheme's base tensor type ("Q4_K")
  std::string description;
  bool needs_imatrix = false;  // llama-quantize makes it only with an importance matrix (--imatrix)
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string name() const = 0;                  // "transformers", "llamacpp"
  virtual std::vector<std::string> aliases() const = 0;  // other spellings a user may give ("hf", "llama.cpp")
  virtual std::string version() const = 0;               // the engine version whose mechanisms are modelled
  virtual std::string source_needs() const = 0;          // what it needs from a source, in words
  virtual std::vector<WeightScheme> weight_schemes() const = 0;

  // Whether the engine reads `field` (a WorkloadSpec field's name, or "list_tensors") for a workload like `spec`
  // (its mode: inference, or training with spec.train's method). A field it does not read is a usage error when a
  // user sets it (check_fields_apply), so every field an engine reads must be listed here.
  virtual bool reads(const std::string& field, const WorkloadSpec& spec) const = 0;
  // The spec's fields this engine reads, checked and resolved (FieldError for a bad one).
  virtual Workload resolve(const WorkloadSpec& spec) const = 0;
  // Throws Error(kUnsupported, source) when the source lacks what the engine needs, FieldError for a workload
  // that does not suit the source (e.g. a quant for a GGUF that has its own).
  virtual std::unique_ptr<EngineModel> prepare(const SourceFacts& facts, const Workload& workload) const = 0;
  virtual Estimate estimate(const EngineModel& model, const Workload& workload, const GpuProfile& gpu) const = 0;
  virtual std::vector<WeightTensor> weight_tensors(const EngineModel& model) const = 0;

  // ---- what `fit` searches
  // Every option fit lists for a model (each prepared on its own: a llama.cpp scheme is a different file).
  virtual std::vector<FitCandidate> fit_candidates(const SourceFacts& facts, const WorkloadSpec& base) const = 0;
  // The options a catalog ranking tries, in order of preference: a model is ranked at the first that fits.
  virtual std::vector<FitCandidate> ranking_candidates(const SourceFacts& facts, const WorkloadSpec& base) const = 0;
  virtual std::vector<Knob> fit_knobs() const = 0;       // searched in this order
  virtual KnobRange knob_range(const EngineModel& model, const Workload& workload, Knob knob) const = 0;
  virtual Workload with_knob(Workload workload, Knob knob, uint64_t count) const = 0;
  // Whether fit's several-GPU approximation (an even split of the footprint) applies; false where the engine's
  // own multi-GPU placement is not modelled and fit considers one GPU.
  virtual bool splits_over_gpus() const = 0;
  // Process bytes that no value of fit's knobs goes below, for the candidate whose own estimate is `base` (what the
  // weights, and in training each parameter's gradient and optimizer states, hold at once): a lower bound the
  // search uses to answer "none fits" without estimating. 0 = no bound known (the search estimates instead).
  virtual uint64_t knob_floor_bytes(const EngineModel& model, const Workload& workload, const Estimate& base) const {
    (void)model, (void)workload, (void)base;
    return 0;
  }
  // Process bytes that some GPU needs at least when `workload` (one GPU's, whose estimate is `single`) runs on
  // `gpus` GPUs under the engine's per-GPU model (the workload with that GPU count, placed or sharded), unless the
  // run does not fit them anyway (weights offloaded): a lower bound the GPUs-needed search uses to answer "does not
  // fit on that many" without estimating. 0 = no bound known, or that estimate might refuse the workload (the
  // search estimates instead).
  virtual uint64_t gpus_floor_bytes(const EngineModel& model, const Workload& workload, uint64_t gpus, const Estimate& single) const {
    (void)model, (void)workload, (void)gpus, (void)single;
    return 0;
  }
  // Whether two sources are one model to this engine: every option, estimate and search of one is the other's (a
  // catalog ranking then searches one of them for both). False = not known to be.
  virtual bool same_model(const SourceFacts& a, const SourceFacts& b) const {
    (void)a, (void)b;
    return false;
  }
  // Whether same_model ever says so (a catalog ranking reads every source first only then).
  virtual bool tells_same_models() const { return false; }
};

// The registry: every engine, in a stable order.
const std::vector<const Engine*>& engines();
// By name or alias; FieldError("engine") naming the registered engines when unknown.
const Engine& find_engine(const std::string& name);

// Reads an open source once for every engine: its config's architecture and the exact count. A GGUF without a
// config is taken as it is (an engine that loads GGUFs reads it itself; one that needs a config says so).
SourceFacts read_source_facts(ModelSource source);

// The engine a source runs under when the request names none: llama.cpp for a GGUF without a config.json,
// transformers otherwise; and why, in a message's words ("" when it is simply the default).
const Engine& default_engine(const SourceFacts& facts);
std::string default_engine_reason(const SourceFacts& facts);

// Throws FieldError(kUsage, field) for the first of `set_fields` the engine does not read for `spec` (with
// `any_mode`, for any mode: fit tries inference and training alike), saying where it applies: "{field} applies
// to {field:engine} llamacpp, not transformers", "{field} applies to {field:train} lora". `why_engine`: why this
// engine was chosen, when the source chose it (default_engine_reason), which the message then says.
void check_fields_apply(const Engine& engine, const WorkloadSpec& spec, const std::vector<std::string>& set_fields,
                        bool any_mode = false, const std::string& why_engine = "");


// ---- the GPU ----------------------------------------------------------------------------------------------

// The catalog card (or the reference GPU, or GPU 0 through NVML for "auto"), with `memory` replacing its size
// and the reserve applied. FieldError "gpu" for an unknown card or no GPU found by NVML, "memory" / "reserve" for
// a size that is not one (a bare number is refused: 12 could be 12 GiB or 12 GB). Sizes that are allowed but
// probably not meant (below 1 GiB or beyond any GPU; "80GB" next to a card that has 80 GiB) add to `warnings`.
GpuProfile resolve_gpu(const GpuSpec& spec, std::vector<FieldWarning>* warnings = nullptr);

// fit's GPUs for a spec: for "auto", every GPU NVML finds (count) and the one with the least budget (what fit
// plans for on each); otherwise resolve_gpu's one card, count 0 (the request says how many).
struct FitGpus {
  GpuProfile tightest;
  unsigned count = 0;
  std::vector<GpuProfile> all;  // "auto": each GPU as NVML read it
};
FitGpus resolve_fit_gpus(const GpuSpec& spec, std::vector<FieldWarning>* warnings = nullptr);

// The profile of the GPU NVML describes at `index`: the catalog's entry where the catalog knows its NVML name,
// else the reference GPU's runtime overhead under the real name; the memory size NVML reports, and what is in use
// (total - free) now. Throws Error(kRuntime) when NVML has no such GPU or cannot read its memory.
GpuProfile gpu_profile_from_nvml(nvml::Library& nvml, unsigned index);

// An estimate beside a measurement of the same run.
struct MeasuredComparison {
  uint64_t estimated_bytes = 0;       // the estimate's process peak
  uint64_t measured_bytes = 0;        // the measured process peak (0: nothing was measured)
  std::optional<double> error_percent;  // (estimated - measured) / measured, where something was measured
};
MeasuredComparison compare_with_measurement(const Estimate& estimate, uint64_t measured_process_peak_bytes);

// ---- a serving engine's published start-up log ------------------------------------------------------------
// One start-up log users posted (bench/data/vllm_public_logs*.jsonl, fields in bench/vllm/README.md), each figure it
// prints beside the engine's: end to end (from the model, the settings and the GPU) and, where the log prints the
// available KV memory, the KV layout alone (blocks, tokens, concurrency from that memory).
struct LoggedFigure {
  std::string item;          // "weights", "available_kv", "gpu_blocks from the logged available memory", ...
  std::string unit;          // "GiB", "blocks", "tokens", "x"
  double logged = 0, estimated = 0;
};
struct StartupLogCheck {
  std::string id;
  std::string engine;                 // "vllm"
  std::string version_used;           // the pinned version whose rules were applied (and why, when not the log's)
  std::vector<LoggedFigure> compared;
  std::vector<std::string> skipped;   // printed figures that cannot be compared, with the reason
  std::string not_modelled;           // non-empty when nothing could be compared (and why)
};
// `record` is one line of such a file; `configs_jsonl` the text of the configs file beside it (the configs of models
// the catalog lacks). Throws Error(kInvalidInput) for a record that lacks a field, kNotFound for a config it names
// that neither holds.
StartupLogCheck check_startup_log(const std::string& record, const std::string& configs_jsonl);

}  // namespace llmem
