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
void itemise(Estimate& e, const Tracker& t, const Workload& w, const GpuProfile& gpu) {
  static const std::map<std::string, std::string> kDetail = {
      {"weights", "every parameter in the requested dtype"},
      {"kv_cache", "DynamicCache keys and values at the peak (torch.cat growth)"},
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
  };
  for (const char* cat : {"weights", "master_weights", "gradients", "optimizer_states", "optimizer_temp", "lora", "kv_cache", "saved_activations",
                          "activations", "logits", "loss", "inputs", "workspace", "comm_buffers"}) {
    auto it = t.peak_breakdown().find(cat);
    if (it == t.peak_breakdown().end()) continue;
    auto d = kDetail.find(cat);
    e.components.push_back({cat, it->second, d == kDetail.end() ? "" : d->second});
  }
  e.components.push_back({"allocator_cached", e.reserved_peak_bytes - e.framework_peak_bytes,
                          "reserved by PyTorch's caching allocator beyond the allocated peak (segment rounding, "
                          "blocks freed but kept)"});
  const uint64_t outside = gpu.cuda_context_bytes + (w.mode == RunMode::kTrain ? gpu.training_extra_bytes : 0);
  e.components.push_back({"cuda_context", outside, "CUDA context, kernels and library handles: " + gpu.context_source});
  e.process_peak_bytes = e.reserved_peak_bytes + outside;
}

}  // namespace transformers

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

Estimate estimate_transformers(const ArchModel& model, const Workload& w, const GpuProfile& gpu) {
  validate_workload(w);
  const transformers::Geometry g = transformers::geometry(model.facts);
  Estimate e;
  e.engine = "transformers";
  e.engine_version = kTransformersVersion;
  e.gpu = gpu;
  if (w.mode == RunMode::kTrain && w.train == TrainMethod::kLora) e.notes = check_lora_targets(model, w);
  if (w.gpus > 1) {
    transformers::estimate_multi_gpu(e, model, g, w, gpu);
    return e;
  }
  Tracker t(true, w.expandable_segments);
  std::string attn_used;
  if (w.mode == RunMode::kTrain) {
    transformers::run_training(t, model, g, w);
    attn_used = "sdpa";
  } else {
    attn_used = transformers::run_inference(t, model, g, w);
  }
  const DType weight_dtype = w.mode != RunMode::kTrain ? w.dtype
                             : w.precision == TrainPrecision::kAmpBf16 ? DType::F32 : DType::BF16;
  e.weight_bytes = transformers::weight_bytes_in(model, weight_dtype);
  e.framework_peak_bytes = t.peak_allocated();
  e.reserved_peak_bytes = t.peak_reserved();
  e.peak_phase = t.peak_phase();
  transformers::itemise(e, t, w, gpu);
  e.notes.push_back("attention implementation: " + attn_used);
  if (w.mode == RunMode::kTrain && w.hf_trainer) {
    // the Trainer's resolved choices (transformers 5.17 training_args.py / trainer.py, accelerate 1.15)
    e.notes.push_back(std::string("optimizer: ") +
                      (w.optimizer == OptimizerKind::kAdamWFused ? "adamw_torch_fused, because torch >= 2.8 (TrainingArguments' default)"
                                                                 : std::string(optimizer_name(w.optimizer)) + ", as asked"));
    e.notes.push_back(w.precision == TrainPrecision::kAmpBf16
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
  if (w.mode == RunMode::kTrain && w.train == TrainMethod::kLora) check(w.lora_r, "lora_r", 65536);
  if (w.mode == RunMode::kTrain) check(w.grad_accum, "grad_accum", uint64_t{1} << 20);
}

}  // namespace llmem
