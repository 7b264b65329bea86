// The Hugging Face transformers (PyTorch) engine: what transformers 5.17 on PyTorch 2.11 allocates, replayed.
//
// Mechanisms modelled (each cites where it lives in transformers or PyTorch, in the file that replays it):
//  - weights: every parameter in the requested dtype (from_config(dtype=...)), one allocation each (inference.cpp);
//  - KV cache: DynamicCache (cache_utils.py). DynamicLayer.update appends with torch.cat, so the first update
//    copies the prompt's keys/values and each decode step allocates the grown tensor before freeing the old;
//    DynamicSlidingWindowLayer keeps a view of its last cat, so its storage is the last update's full length
//    (inference.cpp);
//  - the decoder layer's forward, op by op: RMSNorm upcasts to fp32 (modeling_llama.py LlamaRMSNorm), rotary
//    embeddings build q*cos + rotate_half(q)*sin, SDPA runs without materialising scores (flash / efficient
//    kernels; GQA through enable_gqa when no mask is needed), eager attention materialises scores, their fp32
//    softmax and its cast (eager_attention_forward), the gated MLP keeps act(gate), up and their product alive
//    together; parallel-residual families (falcon, phi, gpt-neox) run attention and MLP from one norm or two
//    (layer_forward.cpp, attention.cpp). What differs by family is read from the model's typed traits
//    (ArchTraits, src/arch/families.cpp), never from its family's name;
//  - generation computes logits for the last position only (logits_to_keep=1) and copies them to fp32;
//    a plain forward returns logits for every position in the model dtype;
//  - training: the tensors autograd saves for backward, per op (saved_activations.cpp; LoRA on llama-style layers
//    op by op, lora.cpp); gradients in the parameters' dtype; AdamW's two states and its per-parameter
//    temporaries (optimizer.cpp); the loss upcasts logits to fp32 (loss_utils.py ForCausalLMLoss) and
//    cross_entropy keeps its log-softmax; autocast keeps bf16 copies of fp32 weights while they are saved for
//    backward; gradient checkpointing keeps only each layer's input and recomputes one layer at a time
//    (training.cpp);
//  - the caching allocator's reserved memory: the same events replayed through its rules (alloc_sim.hpp);
//  - the process total NVML sees: reserved memory plus the per-process CUDA context and library workspaces,
//    measured per GPU (data/runtime_overheads.json).
#include <algorithm>
#include <map>

#include <fmt/ranges.h>

#include "bnb.hpp"
#include "engine.hpp"
#include "llmem/field_error.hpp"
#include "llmem/transformers.hpp"

namespace llmem {
namespace {

using transformers::Tracker;

// peft matches target names against module names and refuses a list that matches none; a name that matches
// nothing beside others that do is skipped (phi's attention output is "dense", not "o_proj"). Returns the note
// for skipped names, if any.
std::vector<std::string> check_lora_targets(const ArchModel& model, const Workload& w) {
  const std::vector<std::string> modules = linear_module_names(model);
  if (w.lora_targets.size() == 1 && w.lora_targets[0] == "all-linear") {
    if (modules.empty()) throw usage_error("lora_targets", "{field}: all-linear finds no linear layer in this model's decoder layers");
    return {};
  }
  std::vector<std::string> missing;
  for (const auto& target : w.lora_targets)
    if (std::find(modules.begin(), modules.end(), target) == modules.end()) missing.push_back(target);
  if (missing.size() == w.lora_targets.size())
    throw usage_error("lora_targets", fmt::format("{{field}}: none of {} is a linear layer of this model (its linear layers: {})",
                                                  fmt::join(w.lora_targets, ","), fmt::join(modules, ",")));
  if (missing.empty()) return {};
  return {fmt::format("LoRA targets not in this model, skipped as peft skips them: {}", fmt::join(missing, ","))};
}

}  // namespace

namespace transformers {

// The itemised peak: live bytes at the framework peak by category, then what the process adds beyond them.
void itemise(Estimate& e, const Tracker& t, const Workload& w, const GpuProfile& gpu, uint64_t managed) {
  static const std::map<std::string, std::string> kDetail = {
      {"weights", "every parameter in the requested dtype"},
      {"kv_cache", "DynamicCache keys and values at the peak (torch.cat growth)"},
      {"kv_prefetch", "offloaded cache: the next layer's keys and values prefetched back to the GPU (their own stream's pool)"},
      {"activations", "hidden states and temporaries alive at the peak"},
      {"logits", "LM-head output (last position when generating) and its fp32 copy"},
      {"inputs", "input ids and attention mask (int64)"},
      {"workspace", "cuBLAS workspaces from the caching allocator (32 MiB per handle and stream)"},
      {"gradients", "parameter gradients, in the parameters' dtype"},
      {"optimizer_states", "the optimizer's states (AdamW exp_avg and exp_avg_sq, SGD momentum, in the parameters' dtype; Adafactor's factored fp32 moments)"},
      {"optimizer_temp", "the optimizer step's temporaries (AdamW foreach: one per parameter at once; for-loop: one parameter's; Adafactor: fp32 copies)"},
      {"lora", "LoRA adapter weights (fp32, as peft keeps them)"},
      {"saved_activations", "tensors autograd keeps for backward"},
      {"loss", "cross-entropy's fp32 log-softmax and its gradient"},
      {"master_weights", "fp32 master copy of this rank's parameter shard (DeepSpeed bf16)"},
      {"comm_buffers", "communication buffers: DDP gradient buckets, FSDP2 all-gather and reduce-scatter buffers, ZeRO's buckets"},
      {"compile", "torch.compile of the decoding step (static cache): inductor's pad_mm benchmarks on random copies of a matmul's operands"},
      {"cudagraph", "the compiled decoding step's CUDA-graph pool: its activations, logits and cuBLAS workspace"},
  };
  for (const char* cat : {"weights", "master_weights", "gradients", "optimizer_states", "optimizer_temp", "lora", "kv_cache", "kv_prefetch", "saved_activations",
                          "activations", "logits", "loss", "inputs", "workspace", "comm_buffers", "compile",
                          "cudagraph"}) {
    auto it = t.peak_breakdown().find(cat);
    if (it == t.peak_breakdown().end()) continue;
    auto d = kDetail.find(cat);
    std::string detail = d == kDetail.end() ? "" : d->second;
    if (std::string(cat) == "kv_cache" && w.cache == KvCacheImpl::kStatic)
      detail = "StaticCache keys and values, preallocated at max_length (sliding layers at their window)";
    if (std::string(cat) == "kv_cache" && w.cache == KvCacheImpl::kOffloaded)
      detail = "offloaded DynamicCache: the layer being updated (the others on the CPU)";
    if (std::string(cat) == "weights" && w.mode == RunMode::kTrain && w.train == TrainMethod::kQLora)
      detail = "the 4-bit linears as bitsandbytes stores them, the other parameters in fp32 (peft's cast)";
    if (std::string(cat) == "optimizer_states" &&
        (w.optimizer == OptimizerKind::kAdamW8bit || w.optimizer == OptimizerKind::kPagedAdamW8bit))
      detail = "bitsandbytes' 8-bit AdamW states: uint8 exp_avg and exp_avg_sq with an fp32 absmax per 256 values "
               "(fp32 states for tensors under 4096 values)";
    e.components.push_back({cat, it->second, detail});
  }
  e.components.push_back({"allocator_cached", e.reserved_peak_bytes - e.framework_peak_bytes,
                          "reserved by PyTorch's caching allocator beyond the allocated peak (segment rounding, "
                          "blocks freed but kept)"});
  const uint64_t outside = gpu.cuda_context_bytes + (w.mode == RunMode::kTrain ? gpu.training_extra_bytes : 0);
  e.components.push_back({"cuda_context", outside, "CUDA context, kernels and library handles: " + gpu.context_source});
  e.process_peak_bytes = e.reserved_peak_bytes + outside;
  if (t.peak_reserved_with_outside() > e.reserved_peak_bytes) {
    // memory held outside the caching allocator from some moment on (inference.cpp: compiled_decode_first_call)
    const uint64_t more = t.peak_reserved_with_outside() - e.reserved_peak_bytes;
    e.components.push_back({"compiled_kernels", more,
                            "the compiled decoding step's kernels and CUDA graph, outside the caching allocator "
                            "(as much as the process then holds beyond the reserved peak)"});
    e.process_peak_bytes += more;
  }
  if (managed == 0) return;
  // bitsandbytes' paged states: cudaMallocManaged, prefetched to the GPU before each parameter's update
  e.components.push_back({"optimizer_paged", managed,
                          "bitsandbytes paged states (CUDA managed memory): not in torch.cuda.memory_allocated/reserved; "
                          "counted here as resident on the GPU, where NVML sees them while they fit (the driver evicts "
                          "them to host under pressure instead of failing)"});
  e.process_peak_bytes += managed;
}

}  // namespace transformers

namespace {

// The weights as loaded: QLoRA's 4-bit linears (bnb.hpp) and the rest in fp32 (prepare_model_for_kbit_training);
// otherwise every parameter in `dtype`.
uint64_t weight_bytes(const ArchModel& model, const Workload& w, DType dtype) {
  if (w.mode != RunMode::kTrain || w.train != TrainMethod::kQLora) return transformers::weight_bytes_in(model, dtype);
  uint64_t total = 0;
  for (const auto& tt : model.tensors)
    total += transformers::bnb::quantized_4bit(tt) ? transformers::bnb::quantized_4bit_bytes(tt.numel(), w.bnb_double_quant)
                                                   : transformers::mul(tt.numel(), 4);
  return total;
}

// What a QLoRA or 8-bit-optimizer estimate rests on: bitsandbytes is modelled from its source, not measured.
void bnb_notes(Estimate& e, const Workload& w) {
  if (w.mode != RunMode::kTrain) return;
  const bool bnb_optim = w.optimizer == OptimizerKind::kAdamW8bit || w.optimizer == OptimizerKind::kPagedAdamW8bit;
  if (w.train == TrainMethod::kQLora) {
    e.notes.push_back(fmt::format(
        "QLoRA: bitsandbytes 0.48.2 4-bit base ({}, blocksize 64, {}), bf16 compute; embeddings, lm_head and norms "
        "unquantised and cast to fp32 by peft's prepare_model_for_kbit_training (0.20), with gradient checkpointing on "
        "(its default); each 4-bit weight dequantised to bf16 per matmul, forward and backward; the forward as under "
        "bf16 autocast (the Trainer's bf16=True, as QLoRA recipes set it: without autocast Linear4bit returns fp32 "
        "outputs, not modelled)",
        w.bnb_fp4 ? "FP4" : "NF4", w.bnb_double_quant ? "double quantisation: 8-bit absmax, fp32 absmax2 per 256 blocks"
                                                      : "fp32 absmax per block"));
  }
  if (bnb_optim)
    e.notes.push_back(std::string(w.optimizer == OptimizerKind::kPagedAdamW8bit ? "PagedAdamW8bit" : "AdamW8bit") +
                      " (bitsandbytes 0.48.2): uint8 states with an fp32 absmax per 256 values; tensors under 4096 "
                      "elements keep fp32 states (min_8bit_size); updated in place" +
                      (w.optimizer == OptimizerKind::kPagedAdamW8bit
                           ? "; states of tensors of 1e5+ elements in CUDA managed memory, outside PyTorch's allocator"
                           : ""));
  if (w.train == TrainMethod::kQLora || bnb_optim)
    e.notes.push_back("modelled from bitsandbytes' and peft's source, not measured: bitsandbytes is not installed on the "
                      "GPU machine the other figures were measured on");
}

// What the estimate did with a quantised checkpoint, in one line.
std::string quant_note(const ArchModel& m, const Workload& w, const std::optional<LoadOptions>& load,
                       const std::shared_ptr<const LoadedWeights>& loaded) {
  const std::string method = m.quant->method_name;
  if (!load)
    return "quantization_config " + method + " not applied: " +
           (w.mode == RunMode::kTrain ? std::string("training a quantised checkpoint is not modelled yet; weights counted unquantised")
                                      : std::string("from_config builds the model unquantised"));
  std::string note = "quantization_config " + method + ": " + loaded->how;
  if (m.quant->method == QuantMethod::kMxfp4)
    note += fmt::format("; --mxfp4-kernels {} (default no)", load->mxfp4_kernels ? "yes" : "no");
  if (m.quant->method == QuantMethod::kFp8 && !loaded->dequantised)
    return note + "; the load measured (11 loads of 4 hub-format FP8 checkpoints on an H100, bench/data/transformers_issue15_fp8"
                  ".jsonl: weights exact, load peak within 2.6 %), the FP8 kernels' own temporaries not";
  if (m.quant->method == QuantMethod::kFp8)
    return note + "; measured dequantised on an H100 for Qwen3 FP8 checkpoints (bench/data/transformers_issue15_fp8_dequant"
                  "*.jsonl: 6 runs of models cut to 2-4 layers, framework peak within 2.3 %, process peak within 4.1 %; "
                  "Qwen3-30B-A3B-FP8 cut to 12 layers, framework -0.1 %, process +5.5 %, _fp8_deep.jsonl); "
                  "DeepSeek-V3's dequantised load failed in transformers 5.17's weight conversion";
  return note + "; load path modelled from transformers 5.17's quantiser source, not measured";
}

}  // namespace

std::vector<std::string> linear_module_names(const ArchModel& model) {
  std::vector<std::string> modules;
  for (const auto& tt : model.tensors) {
    if (tt.layer < 0 || tt.module_name.empty()) continue;
    if (std::find(modules.begin(), modules.end(), tt.module_name) == modules.end()) modules.push_back(tt.module_name);
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
  // peft's conventional names: the separate projections, else the fused one
  auto v = present({"q_proj", "k_proj", "v_proj", "o_proj"});
  return v.empty() ? present({"query_key_value", "c_attn", "qkv_proj", "Wqkv"}) : v;
}

ReplayCache::ReplayCache() : loads_(std::make_unique<Loads>()), placements_(std::make_unique<Placements>()) {}
ReplayCache::~ReplayCache() = default;

std::shared_ptr<const LoadedWeights> ReplayCache::loaded_weights(const ArchModel& model, DType compute, const LoadOptions& options) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const Entry& e : entries_)
    if (e.model == &model && e.compute == compute && e.options.compute_capability == options.compute_capability &&
        e.options.mxfp4_kernels == options.mxfp4_kernels && e.options.fp8_dequantize == options.fp8_dequantize)
      return e.weights;
  const auto stored = &model == stored_model_ && stored_ ? stored_() : nullptr;
  auto weights = std::make_shared<const LoadedWeights>(
      weights_as_loaded(model.tensors, *model.quant, compute, options, model.facts.traits.conv1d_weights, stored));
  entries_.push_back({&model, compute, options, weights});
  return weights;
}

void ReplayCache::use_stored(const ArchModel& model, StoredSource stored) {
  std::lock_guard<std::mutex> lock(mutex_);
  stored_model_ = &model;
  stored_ = std::move(stored);
}

Estimate estimate_transformers(const ArchModel& model, const Workload& w, const GpuProfile& gpu, ReplayCache* cache) {
  validate_workload(w);
  const transformers::Geometry g = transformers::geometry(model);
  Estimate e;
  e.engine = "transformers";
  e.engine_version = kTransformersVersion;
  e.gpu = gpu;
  // Mllama: a text-only backward never reaches the cross-attention layers or the vision tower, whose parameters get
  // no gradient and no optimizer state (AdamW skips a parameter whose .grad is None); the training replay gives
  // every parameter both, so it would overstate the run. Refused rather than answered wrong.
  if (w.mode == RunMode::kTrain && model.facts.has_cross_attention_only_layers())
    throw usage_error("train", "{field} is not modelled for " + model.facts.architecture +
                                   ": on text, its cross-attention layers and vision tower get no gradient");
  if (w.mode == RunMode::kTrain && w.train != TrainMethod::kFull) e.notes = check_lora_targets(model, w);
  if (w.gpus > 1 && model.quant && w.mode != RunMode::kTrain && !w.from_config)
    throw usage_error("n_gpus", "{field} with a quantised checkpoint (quantization_config " + model.quant->method_name +
                                    ") is not modelled yet: estimate it on one GPU");
  if (w.gpus > 1) {
    transformers::estimate_multi_gpu(e, model, g, w, gpu, cache);
    return e;
  }
  Tracker t(true, w.expandable_segments);
  std::string attn_used;
  // A quantised checkpoint loaded by from_pretrained for inference; training and from_config build the model
  // unquantised (training a quantised checkpoint is not modelled yet; QLoRA quantises a 16-bit one on load)
  std::optional<LoadOptions> quant_load;
  if (model.quant && w.mode != RunMode::kTrain && !w.from_config)
    quant_load = LoadOptions{compute_capability(gpu), w.mxfp4_kernels, w.fp8_dequantize};
  std::shared_ptr<const LoadedWeights> loaded;  // what the quantiser keeps, computed once (inference only)
  uint64_t managed = 0;
  if (w.mode == RunMode::kTrain) {
    managed = transformers::run_training(t, model, g, w, cache);
    attn_used = "sdpa";
  } else {
    if (quant_load)
      loaded = cache ? cache->loaded_weights(model, w.dtype, *quant_load)
                     : std::make_shared<const LoadedWeights>(weights_as_loaded(model.tensors, *model.quant, w.dtype, *quant_load,
                                                                                model.facts.traits.conv1d_weights));
    attn_used = transformers::run_inference(t, model, g, w, loaded.get(), cache);
  }
  const DType weight_dtype = w.mode != RunMode::kTrain ? w.dtype
                             : w.precision == TrainPrecision::kAmpBf16 ? DType::F32 : DType::BF16;
  e.weight_bytes = loaded ? transformers::weight_bytes_in(model, weight_dtype, loaded.get())
                              : weight_bytes(model, w, weight_dtype);
  if (model.quant) e.notes.push_back(quant_note(model, w, quant_load, loaded));
  e.framework_peak_bytes = t.peak_allocated();
  e.reserved_peak_bytes = t.peak_reserved();
  e.peak_phase = t.peak_phase();
  transformers::itemise(e, t, w, gpu, managed);
  if (quant_load)
    for (auto& c : e.components)
      if (c.name == "weights") c.detail = "as transformers' " + model.quant->method_name + " quantiser holds them (see the note)";
  e.notes.push_back("attention implementation: " + attn_used);
  if (w.mode == RunMode::kGenerate && !model.facts.config_use_cache)
    e.notes.push_back("config.json sets use_cache false: generate keeps the KV cache counted here only where the "
                      "checkpoint's generation_config.json leaves it on; a checkpoint saved from this config alone "
                      "carries use_cache false into it, and generate then recomputes the whole sequence at every step "
                      "with no cache (measured: Qwen3-4B, bench/data/transformers_issue15_final.jsonl)");
  if (w.experts_stacked_at_load && w.gpus <= 1)
    e.notes.push_back("from_pretrained stacks this checkpoint's per-expert tensors while a thread pool copies the next "
                      "ones; that race is replayed with a fixed lookahead (measured loads: process peak within 4.4 %, "
                      "docs/memory-model.md)");
  if (w.mode != RunMode::kTrain && w.cache == KvCacheImpl::kStatic && !loaded)
    e.notes.push_back("static cache: generate compiles the decoding step (torch.compile, CUDA graphs); the peak is "
                      "the first run's, when inductor benchmarks the matmuls (a warm compile cache skips that)");
  bnb_notes(e, w);
  if (w.mode == RunMode::kTrain && w.train != TrainMethod::kFull &&
      std::any_of(model.tensors.begin(), model.tensors.end(), [](const TensorInfo& t) { return t.role == TensorRole::kExpert; }))
    e.notes.push_back(std::string("MoE experts: transformers 5 holds them as fused 3-D parameters, not nn.Linear, so "
                                  "peft's LoRA targets never reach them") +
                      (w.train == TrainMethod::kQLora ? "; bitsandbytes leaves them unquantised (issue #1849) and "
                                                        "prepare_model_for_kbit_training casts them to fp32"
                                                      : ""));
  if (w.mode == RunMode::kTrain && w.hf_trainer) {
    // the Trainer's resolved choices (transformers 5.17 training_args.py / trainer.py, accelerate 1.15)
    e.notes.push_back(std::string("optimizer: ") +
                      (w.optimizer == OptimizerKind::kAdamWFused ? "adamw_torch_fused, because torch >= 2.8 (TrainingArguments' default)"
                       : w.optimizer == OptimizerKind::kAdamW8bit ? "adamw_bnb_8bit (TrainingArguments optim), bitsandbytes AdamW(optim_bits=8)"
                       : w.optimizer == OptimizerKind::kPagedAdamW8bit ? "paged_adamw_8bit (TrainingArguments optim), bitsandbytes PagedAdamW(optim_bits=8)"
                                                                 : std::string(optimizer_name(w.optimizer)) + ", as asked"));
    e.notes.push_back(w.train == TrainMethod::kQLora
                          ? "bf16=True: autocast to bf16 over the fp32 parameters prepare_model_for_kbit_training made"
                      : w.precision == TrainPrecision::kAmpBf16
                          ? "bf16=True: autocast to bf16 over fp32 master weights (model loaded in fp32)"
                          : "bf16=True: autocast over bf16 weights (from_pretrained's dtype='auto' on a bf16 checkpoint)");
    e.notes.push_back("accelerate returns the logits as an fp32 copy; gradients clipped to max_grad_norm 1.0 (foreach)");
    if (w.grad_ckpt) e.notes.push_back("gradient checkpointing: TrainingArguments(gradient_checkpointing=True)");
    e.notes.push_back("the dataloader's pinned batches are host memory, not counted");
  }
  if (w.expandable_segments)
    e.notes.push_back("PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True: one growing segment per pool (20 MiB pages "
                      "for large blocks, 2 MiB for small), replayed as PyTorch 2.11 maps them; not yet measured");
  if (w.mode == RunMode::kTrain && w.grad_accum > 1)
    e.notes.push_back(fmt::format("gradient accumulation: {} micro-batches of {} per optimizer step; gradients persist "
                                  "across them", w.grad_accum, w.batch));
  return e;
}

void validate_workload(const Workload& w) {
  // errors name the request's fields; each face (the CLI, the web page) words them its own way
  auto check = [](uint64_t v, const char* field, uint64_t max) {
    if (v == 0) throw usage_error(field, "{field} must be at least 1");
    if (v > max) throw usage_error(field, fmt::format("{{field}} {} is beyond any plausible run (max {})", v, max));
  };
  check(w.batch, "batch", uint64_t{1} << 24);
  check(w.prompt_tokens, w.mode == RunMode::kTrain ? "seq_tokens" : "prompt_tokens", uint64_t{1} << 30);
  if (w.mode == RunMode::kGenerate) check(w.new_tokens, "new_tokens", uint64_t{1} << 30);
  if (w.dtype != DType::F16 && w.dtype != DType::BF16 && w.dtype != DType::F32)
    throw usage_error("dtype", "{field} " + std::string(dtype_name(w.dtype)) + " is not a transformers dtype (fp32, fp16, bf16)");
  if (!w.attn.empty() && w.attn != "sdpa" && w.attn != "eager")
    throw usage_error("attn", "{field} must be sdpa or eager, got '" + w.attn + "'");
  if (w.mode == RunMode::kTrain && w.train != TrainMethod::kFull) check(w.lora_r, "lora_r", 65536);
  if (w.mode == RunMode::kTrain) check(w.grad_accum, "grad_accum", uint64_t{1} << 20);
}

}  // namespace llmem
