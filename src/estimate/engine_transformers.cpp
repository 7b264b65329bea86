// The transformers engine behind the seam: resolves a request's transformers fields into a Workload, and says
// what `fit` tries (every precision for inference, full fine-tuning and LoRA) and searches (context, batch).
#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <cctype>

#include <fmt/core.h>

#include "adapters.hpp"
#include "llmem/error.hpp"
#include "llmem/placement.hpp"
#include "llmem/transformers.hpp"
#include "llmem/units.hpp"

namespace llmem::adapters {
namespace {

// as_built(*arch), made once per model while it lives: the candidates of a fit each prepare the same source.
std::shared_ptr<const ArchModel> built_once(const std::shared_ptr<const ArchModel>& arch) {
  static PerModel<ArchModel> made;
  return made.get(arch, [&] { return as_built(*arch); });
}

// stored_tensors(*arch), made once per model while it lives (see built_once).
std::shared_ptr<const std::vector<TensorInfo>> stored_once(const std::shared_ptr<const ArchModel>& arch) {
  static PerModel<std::vector<TensorInfo>> made;
  return made.get(arch, [&] { return stored_tensors(arch->tensors, *arch->quant, arch->facts.traits.conv1d_weights).tensors; });
}

struct TransformersModel final : EngineModel {
  std::shared_ptr<const ArchModel> arch;  // the tensors as stored (checkpoint names)
  bool differs_when_built = false;        // as transformers builds them, the tensors differ (as_built)
  // what its estimates share (a quantised checkpoint's weights as loaded, the replays' loaded weights)
  std::unique_ptr<ReplayCache> cache = std::make_unique<ReplayCache>();

  // as_built(*arch), made when a workload first needs it (a quantised checkpoint's inference never does)
  const ArchModel& built() const {
    std::call_once(built_flag_, [this] { built_ = built_once(arch); });
    return *built_;
  }

 private:
  mutable std::once_flag built_flag_;
  mutable std::shared_ptr<const ArchModel> built_;
};

const ArchModel& arch_of(const EngineModel& model) { return *static_cast<const TransformersModel&>(model).arch; }

// Whether a workload's replay sees the model as transformers builds it: a quantised checkpoint's inference goes
// through its quantiser, modelled on the stored names; every other workload builds the unquantised model, whose
// MoE experts transformers fuses.
bool replays_built(const TransformersModel& m, const Workload& w) {
  const bool quantiser = m.arch->quant && w.mode != RunMode::kTrain && !w.from_config;
  return m.differs_when_built && !quantiser;
}

const ArchModel& replayed(const EngineModel& model, const Workload& w) {
  const auto& m = static_cast<const TransformersModel&>(model);
  return replays_built(m, w) ? m.built() : *m.arch;
}

// The optimizer a request names. "" is what the code people write gets: torch.optim.AdamW(params), which on CUDA
// runs foreach (torch/optim/optimizer.py _default_to_fused_or_foreach), or under transformers.Trainer its default
// optim, adamw_torch_fused (training_args.py: the default since torch >= 2.8).
OptimizerKind optimizer_kind(const std::string& name, bool hf_trainer) {
  if (name.empty()) return hf_trainer ? OptimizerKind::kAdamWFused : OptimizerKind::kAdamWForeach;
  if (name == "adamw" || name == "adamw-foreach") return OptimizerKind::kAdamWForeach;
  if (name == "adamw-fused") return OptimizerKind::kAdamWFused;
  if (name == "adamw-forloop") return OptimizerKind::kAdamWForLoop;
  if (name == "sgd") return OptimizerKind::kSgd;
  if (name == "sgd-momentum") return OptimizerKind::kSgdMomentum;
  if (name == "adafactor") return OptimizerKind::kAdafactor;
  // bitsandbytes 0.48.2 (the Trainer's optim names adamw_bnb_8bit and paged_adamw_8bit select the same classes)
  if (name == "adamw-8bit" || name == "adamw_bnb_8bit") return OptimizerKind::kAdamW8bit;
  if (name == "paged-adamw-8bit" || name == "paged_adamw_8bit") return OptimizerKind::kPagedAdamW8bit;
  const std::string possible =
      "adamw, adamw-foreach, adamw-fused, adamw-forloop, sgd, sgd-momentum, adafactor, adamw-8bit, paged-adamw-8bit";
  if (name.find("8bit") != std::string::npos || name.find("4bit") != std::string::npos || name.find("32bit") != std::string::npos)
    throw usage_error("optimizer", "{field} '" + name + "' is not modelled (of bitsandbytes' optimizers only AdamW8bit "
                                   "and PagedAdamW8bit are); possible: " + possible);
  throw usage_error("optimizer", "{field} must be one of " + possible + ", got '" + name + "'");
}

// The positions a workload needs: the prompt and the tokens generated after it (the last one is never fed back),
// or the training sequence.
uint64_t positions_needed(const Workload& w) {
  return w.mode == RunMode::kGenerate ? w.prompt_tokens + w.new_tokens - 1 : w.prompt_tokens;
}

const char* positions_field(const Workload& w) { return w.mode == RunMode::kTrain ? "seq_tokens" : "prompt_tokens"; }

std::string positions_text(const Workload& w) {
  if (w.mode == RunMode::kGenerate)
    return fmt::format("{{field}} {} + {{field:new_tokens}} {} needs {} positions", w.prompt_tokens, w.new_tokens, positions_needed(w));
  return fmt::format("{{field}} {} needs {} positions", w.prompt_tokens, positions_needed(w));
}

// Learned position embeddings (GPT-2, OPT) have one row per position: transformers fails beyond them (an index
// error in the embedding), so such a workload is refused rather than estimated.
void check_positions(const ArchModel& m, const Workload& w) {
  const uint64_t limit = m.facts.max_positions;
  if (limit == 0 || positions_needed(w) <= limit || m.facts.position_kind != "learned") return;
  throw usage_error(positions_field(w), fmt::format("{}, beyond the model's {} learned position embeddings "
                                                    "(max_position_embeddings): transformers fails there",
                                                    positions_text(w), limit));
}

// Other position schemes (rotary, ALiBi) run beyond the config's max_position_embeddings, untrained: the estimate
// stands, and says so (as llama.cpp's does for n_ctx beyond the training context).
std::optional<std::string> positions_note(const ArchModel& m, const Workload& w) {
  const uint64_t limit = m.facts.max_positions;
  if (limit == 0 || positions_needed(w) <= limit) return std::nullopt;
  const std::string what = w.mode == RunMode::kGenerate
                               ? fmt::format("a {}-token prompt and {} generated tokens need {} positions", w.prompt_tokens,
                                             w.new_tokens, positions_needed(w))
                               : fmt::format("{} tokens need as many positions", w.prompt_tokens);
  return fmt::format("{}, beyond the model's max_position_embeddings {}: transformers runs it, but the model was not "
                     "trained for it",
                     what, limit);
}

// generate's cache_implementation. "hybrid" (what Gemma 2/3's generation configs name) gives a DynamicCache in
// transformers 5.17 (measured: bench/data/transformers_issue15.jsonl, kv_cache_class), whose sliding layers keep
// their window.
KvCacheImpl resolve_cache_impl(const WorkloadSpec& spec) {
  const std::string& c = spec.cache_impl;
  if (!c.empty() && !spec.use_cache)
    throw usage_error("cache_impl", "{field} applies to generation; --no-cache runs one forward pass without a cache");
  if (c.empty() || c == "dynamic" || c == "hybrid") return KvCacheImpl::kDynamic;
  if (c == "static") return KvCacheImpl::kStatic;
  if (c == "offloaded") return KvCacheImpl::kOffloaded;
  throw usage_error("cache_impl", "{field} must be dynamic (alias hybrid), static or offloaded, got '" + c + "'");
}

void resolve_training(const WorkloadSpec& spec, Workload& w) {
  w.mode = RunMode::kTrain;
  if (spec.train == "full") w.train = TrainMethod::kFull;
  else if (spec.train == "lora") w.train = TrainMethod::kLora;
  else if (spec.train == "qlora") w.train = TrainMethod::kQLora;
  else throw usage_error("train", "{field} must be full, lora or qlora, got '" + spec.train + "'");
  if (spec.precision == "bf16") w.precision = TrainPrecision::kBf16;
  else if (spec.precision == "amp-bf16") w.precision = TrainPrecision::kAmpBf16;
  else throw usage_error("precision", "{field} must be bf16 or amp-bf16, got '" + spec.precision + "'");
  w.optimizer = optimizer_kind(spec.optimizer, spec.hf_trainer);
  w.hf_trainer = spec.hf_trainer;
  w.grad_accum = positive_count(spec.grad_accum, "grad_accum");
  w.prompt_tokens = positive_count(spec.seq_tokens, "seq_tokens");
  // QLoRA: prepare_model_for_kbit_training(use_gradient_checkpointing=True), its default, turns checkpointing on
  w.grad_ckpt = spec.grad_ckpt || w.train == TrainMethod::kQLora;
  if (spec.bnb_4bit_quant_type == "nf4" || spec.bnb_4bit_quant_type == "fp4") w.bnb_fp4 = spec.bnb_4bit_quant_type == "fp4";
  else throw usage_error("bnb_4bit_quant_type", "{field} must be nf4 or fp4, got '" + spec.bnb_4bit_quant_type + "'");
  w.bnb_double_quant = spec.bnb_double_quant;
  w.lora_r = positive_count(spec.lora_r, "lora_r");
  w.lora_targets.clear();
  for (const auto& t : spec.lora_targets)
    if (!t.empty()) w.lora_targets.push_back(t);
  if (w.lora_targets.empty()) throw usage_error("lora_targets", "{field} names no module");
  if (w.lora_targets.size() > 1 && std::find(w.lora_targets.begin(), w.lora_targets.end(), "all-linear") != w.lora_targets.end())
    throw usage_error("lora_targets", "{field}: all-linear stands alone (peft takes it instead of a list)");
  // training runs in bf16, or keeps fp32 master weights under amp
  w.dtype = w.precision == TrainPrecision::kBf16 ? DType::BF16 : DType::F32;
}

// "0=20GiB,1=24GiB": a size with its unit per GPU index below the number of GPUs, each index once.
std::vector<std::pair<int, uint64_t>> parse_max_memory(const std::string& text, uint64_t gpus) {
  std::vector<std::pair<int, uint64_t>> out;
  std::stringstream list(text);
  for (std::string item; std::getline(list, item, ',');) {
    const size_t eq = item.find('=');
    const std::string index = item.substr(0, eq == std::string::npos ? 0 : eq), size = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (eq == std::string::npos || index.empty() || index.find_first_not_of("0123456789") != std::string::npos || index.size() > 4)
      throw usage_error("max_memory", "{field} takes GPU=SIZE pairs (0=20GiB,1=24GiB), got '" + item + "'");
    const int i = std::stoi(index);
    if (static_cast<uint64_t>(i) >= gpus)
      throw usage_error("max_memory", fmt::format("{{field}} names GPU {}, but {{field:n_gpus}} {} has GPUs 0-{}", i, gpus, gpus - 1));
    if (size.empty() || !std::isalpha(static_cast<unsigned char>(size.back())))
      throw usage_error("max_memory", fmt::format("{{field}} {}={} has no unit: {}GiB (2^30 bytes) or {}GB (10^9 bytes)?", i, size, size, size));
    const auto bytes = parse_bytes(size);
    if (!bytes) throw usage_error("max_memory", fmt::format("{{field}} {}: '{}' is not a size", i, size));
    for (const auto& [j, b] : out)
      if (j == i) throw usage_error("max_memory", fmt::format("{{field}} gives GPU {} twice", i));
    out.emplace_back(i, *bytes);
  }
  if (out.empty()) throw usage_error("max_memory", "{field} names no GPU (0=20GiB,1=24GiB)");
  return out;
}

// --gpus, --device-map, --max-memory, --sharding (docs/cli.md, "Several GPUs").
void resolve_gpus(const WorkloadSpec& spec, Workload& w) {
  if (spec.n_gpus < 1) throw usage_error("n_gpus", fmt::format("{{field}} must be at least 1, got {}", spec.n_gpus));
  if (spec.n_gpus > 4096) throw usage_error("n_gpus", fmt::format("{{field}} {} is beyond any plausible machine (max 4096)", spec.n_gpus));
  w.gpus = static_cast<uint64_t>(spec.n_gpus);
  if (!spec.device_map.empty() && !device_map_from_name(spec.device_map))
    throw usage_error("device_map", "{field} must be auto, balanced, balanced_low_0 or sequential, got '" + spec.device_map + "'");
  w.device_map = spec.device_map;
  if (!spec.max_memory.empty()) w.max_memory = parse_max_memory(spec.max_memory, w.gpus);
  if (w.mode != RunMode::kTrain) {
    if (w.gpus > 1 && w.device_map.empty()) w.device_map = "auto";
    return;
  }
  static const std::set<std::string> schemes = {"ddp", "zero1", "zero2", "zero3", "fsdp"};
  if (!spec.sharding.empty() && !schemes.count(spec.sharding))
    throw usage_error("sharding", "{field} must be ddp, zero1, zero2, zero3 or fsdp, got '" + spec.sharding + "'");
  w.sharding = spec.sharding;
  if (w.gpus > 1 && w.sharding.empty())
    throw usage_error("n_gpus", fmt::format("{{field}} {} with training needs {{field:sharding}} (ddp, zero1, zero2, zero3 or fsdp)", w.gpus));
  if (w.sharding.empty()) return;
  if (w.gpus == 1 && w.sharding != "ddp")
    throw usage_error("sharding", "{field} " + w.sharding + " shards over GPUs: with {field:n_gpus} 1 there is nothing to shard");
  if (w.train != TrainMethod::kFull)
    throw usage_error("sharding", std::string("{field} is modelled for {field:train} full, not ") +
                                      (w.train == TrainMethod::kQLora ? "qlora" : "lora"));
  if (w.sharding.rfind("zero", 0) == 0 && w.optimizer != OptimizerKind::kAdamWForeach && w.optimizer != OptimizerKind::kAdamWFused &&
      w.optimizer != OptimizerKind::kAdamWForLoop)
    throw usage_error("sharding", "{field} " + w.sharding + " is modelled with AdamW (DeepSpeed's FusedAdam), not " +
                                      optimizer_name(w.optimizer));
}

class TransformersEngine final : public Engine {
 public:
  std::string name() const override { return "transformers"; }
  std::vector<std::string> aliases() const override { return {"hf"}; }
  // What estimate_transformers reports as Estimate::engine_version (a unit test holds the two together).
  std::string version() const override { return kTransformersVersion; }
  std::string source_needs() const override { return "a config.json of a known architecture"; }
  std::vector<WeightScheme> weight_schemes() const override { return {}; }

  bool reads(const std::string& field, const WorkloadSpec& spec) const override {
    static const std::set<std::string> always = {"batch", "attn", "train", "alloc_conf", "n_gpus"};
    static const std::set<std::string> inference = {"dtype", "prompt_tokens", "new_tokens", "use_cache", "cache_impl", "mxfp4_kernels", "fp8_dequantize", "device_map", "max_memory"};
    static const std::set<std::string> training = {"precision", "optimizer", "seq_tokens", "grad_ckpt", "grad_accum", "hf_trainer", "sharding"};
    static const std::set<std::string> lora = {"lora_r", "lora_targets"};
    static const std::set<std::string> qlora = {"bnb_4bit_quant_type", "bnb_double_quant"};
    if (always.count(field)) return true;
    if (spec.train.empty()) return inference.count(field) != 0;
    // QLoRA's precision is bitsandbytes' (4-bit base, bf16 compute, fp32 for the rest): --precision does not apply
    if (spec.train == "qlora") return (training.count(field) && field != "precision") || lora.count(field) || qlora.count(field);
    return training.count(field) != 0 || (spec.train == "lora" && lora.count(field) != 0);
  }

  Workload resolve(const WorkloadSpec& spec) const override {
    Workload w;
    auto dtype = dtype_from_name(spec.dtype);
    if (!dtype) throw usage_error("dtype", "unknown {field} '" + spec.dtype + "' (fp32, fp16, bf16)");
    w.dtype = *dtype;
    w.batch = positive_count(spec.batch.value_or(1), "batch");
    w.attn = spec.attn;
    w.from_config = spec.from_config;
    w.fp8_dequantize = spec.fp8_dequantize;
    if (spec.mxfp4_kernels == "yes") w.mxfp4_kernels = true;
    else if (!spec.mxfp4_kernels.empty() && spec.mxfp4_kernels != "no")
      throw usage_error("mxfp4_kernels", "{field} must be yes or no, got '" + spec.mxfp4_kernels + "'");
    if (spec.alloc_conf == "expandable_segments:True") w.expandable_segments = true;
    else if (!spec.alloc_conf.empty() && spec.alloc_conf != "expandable_segments:False")
      throw usage_error("alloc_conf", "{field} '" + spec.alloc_conf +
                                          "' is not modelled; possible: expandable_segments:True, expandable_segments:False");
    if (!spec.train.empty()) {
      resolve_training(spec, w);
    } else {
      w.mode = spec.use_cache ? RunMode::kGenerate : RunMode::kForward;
      w.cache = resolve_cache_impl(spec);
      w.prompt_tokens = positive_count(spec.prompt_tokens, "prompt_tokens");
      w.new_tokens = positive_count(spec.new_tokens, "new_tokens");
    }
    resolve_gpus(spec, w);
    return w;
  }

  std::unique_ptr<EngineModel> prepare(const SourceFacts& facts, const Workload&) const override {
    if (!facts.arch) throw Error(ErrorKind::kUnsupported, facts.source.spec, "estimates need a config.json of a known architecture");
    auto model = std::make_unique<TransformersModel>();
    model->arch = facts.arch;
    // the parameters PyTorch holds (MoE experts fused), prepared once for every estimate of this model
    model->differs_when_built = differs_when_built(*facts.arch);
    // a quantised checkpoint's tensors as stored: derived once per source, when an estimate first loads them (a fit
    // prepares the source once per candidate, and each inference dtype loads them anew from this list)
    if (facts.arch->quant)
      model->cache->use_stored(*facts.arch, [arch = facts.arch] { return stored_once(arch); });
    return model;
  }

  Estimate estimate(const EngineModel& model, const Workload& workload, const GpuProfile& gpu) const override {
    check_positions(arch_of(model), workload);
    Workload w = workload;
    const auto& tm = static_cast<const TransformersModel&>(model);
    w.experts_stacked_at_load = !w.from_config && replays_built(tm, workload);
    Estimate e = estimate_transformers(replayed(model, w), w, gpu, tm.cache.get());
    if (auto note = positions_note(arch_of(model), w)) e.notes.push_back(*note);
    return e;
  }

  std::vector<WeightTensor> weight_tensors(const EngineModel&) const override { return {}; }

  // fp32, bf16 and fp16 inference; full fine-tuning (the requested optimizer, by default AdamW foreach) and LoRA (r 16 on the attention projections the model
  // has) in bf16 and amp-bf16; all at batch 1.
  std::vector<FitCandidate> fit_candidates(const SourceFacts& facts, const WorkloadSpec& base) const override {
    // fit answers within the model's positions: a prompt or a sequence beyond them is the user's to shorten
    if (facts.arch && facts.arch->facts.max_positions) {
      const uint64_t limit = facts.arch->facts.max_positions;
      Workload inference = resolve_positions(base, false), training = resolve_positions(base, true);
      for (const Workload* w : {&inference, &training})
        if (positions_needed(*w) > limit)
          throw usage_error(positions_field(*w), fmt::format("{} with {}, beyond its max_position_embeddings {}",
                                                             positions_text(*w), facts.source.display_name(), limit));
    }
    std::vector<FitCandidate> out;
    // --train asks about one method only; without it, inference and every method
    if (base.train.empty())
      for (const char* dtype : {"fp32", "bf16", "fp16"}) out.push_back(inference_candidate(base, dtype));
    // training is refused for a model with cross-attention layers (estimate.cpp says why): inference alone, unless
    // --train asked, which gets the refusal
    const bool trainable = !facts.arch || !facts.arch->facts.has_cross_attention_only_layers();
    for (const char* method : {"full", "lora", "qlora"}) {
      if (!trainable && base.train.empty()) break;
      if (!base.train.empty() && base.train != method) continue;
      const bool q = std::string(method) == "qlora";
      for (const char* precision : {"bf16", "amp-bf16"}) {
        if (q && std::string(precision) != "bf16") continue;  // QLoRA has one precision: bitsandbytes'
        WorkloadSpec spec = base;
        spec.batch = base.batch.value_or(1);
        spec.train = method;
        spec.precision = precision;
        // the optimizer asked for, else what torch.optim.AdamW(params) runs (foreach)
        FitCandidate c{q ? "nf4+bf16" : precision, resolve(spec)};
        // LoRA on the attention projections this model has (its fused QKV where it has no q/k/v/o_proj); QLoRA on
        // every linear layer, as the QLoRA recipe (and LLaMA-Factory's and Unsloth's defaults) does; an empty list
        // is left to the engine, which says no linear layer matches
        if (c.workload.train == TrainMethod::kLora && facts.arch) c.workload.lora_targets = attention_lora_targets(*facts.arch);
        if (q) c.workload.lora_targets = {"all-linear"};
        out.push_back(std::move(c));
      }
    }
    if (out.empty()) {  // an unknown --train says so
      Workload scratch;
      resolve_training(base, scratch);
    }
    return out;
  }

  // Half-precision inference in the config's own dtype (bf16 where it says so, else fp16): fp32 needs twice the
  // weights, so it fits only where half precision already does.
  std::vector<FitCandidate> ranking_candidates(const SourceFacts& facts, const WorkloadSpec& base) const override {
    // a catalog model whose positions the prompt exceeds is left out of the ranking, saying why
    if (facts.arch && facts.arch->facts.max_positions) {
      const Workload w = resolve_positions(base, false);
      if (positions_needed(w) > facts.arch->facts.max_positions)
        throw Error(ErrorKind::kUsage, "", fmt::format("a {}-token prompt and {} new tokens need {} positions, beyond its "
                                                       "max_position_embeddings {}",
                                                       w.prompt_tokens, w.new_tokens, positions_needed(w),
                                                       facts.arch->facts.max_positions));
    }
    const bool bf16 = facts.arch && facts.arch->facts.config_dtype == DType::BF16;
    return {inference_candidate(base, bf16 ? "bf16" : "fp16")};
  }

  std::vector<Knob> fit_knobs() const override { return {Knob::kContext, Knob::kBatch}; }

  KnobRange knob_range(const EngineModel& model, const Workload& w, Knob knob) const override {
    KnobRange r;
    if (knob == Knob::kBatch) {
      r.base_count = w.batch;
      return r;
    }
    // context: the model's max_position_embeddings bounds the sequence, less the generated tokens for inference
    const uint64_t max_positions = arch_of(model).facts.max_positions;
    if (max_positions == 0) r.max_count = 0;
    else if (w.mode == RunMode::kTrain) r.max_count = max_positions;
    else r.max_count = max_positions > w.new_tokens ? max_positions - w.new_tokens : 1;
    r.base_count = w.prompt_tokens;
    return r;
  }

  Workload with_knob(Workload w, Knob knob, uint64_t count) const override {
    if (knob == Knob::kBatch) w.batch = count;
    else w.prompt_tokens = count;  // the prompt for inference, the sequence for training
    return w;
  }

  bool splits_over_gpus() const override { return true; }

  // The weights are resident through every step; full fine-tuning adds a gradient per parameter (in the
  // parameters' dtype) that lives from backward to zero_grad, and AdamW two states per parameter (SGD with momentum
  // one) created at the first step, while the gradients are still there: all of them at once, whatever the
  // sequence or the batch. Adafactor's factored states are left out (a floor may be low, never high).
  uint64_t knob_floor_bytes(const EngineModel&, const Workload& w, const Estimate& base) const override {
    const bool training = w.mode == RunMode::kTrain;
    uint64_t floor = base.weight_bytes;
    if (training && w.train == TrainMethod::kFull) {
      // (bitsandbytes' 8-bit states are left out: a floor may be low, never high)
      const bool adamw = w.optimizer == OptimizerKind::kAdamWForeach || w.optimizer == OptimizerKind::kAdamWFused ||
                         w.optimizer == OptimizerKind::kAdamWForLoop;
      floor += base.weight_bytes * (1 + (adamw ? 2 : w.optimizer == OptimizerKind::kSgdMomentum ? 1 : 0));
    }
    return floor + base.gpu.cuda_context_bytes + (training ? base.gpu.training_extra_bytes : 0);
  }

  // Over several GPUs every weight, in the dtype the replay loads it in, is on some GPU (placed whole, or a rank's
  // 1/gpus shard of each), or the run offloads it and does not fit: some GPU allocates at least a 1/gpus share of
  // the weights, its reserved memory holds them, and its process adds the context. Not for a quantised
  // checkpoint's inference (refused over several GPUs) nor a tied model's (accelerate's placement may refuse it).
  // The model is its architecture: prepare and the candidates read nothing else of a source (but its name, in errors).
  bool same_model(const SourceFacts& a, const SourceFacts& b) const override {
    return a.arch && b.arch && (a.arch == b.arch || same_architecture(*a.arch, *b.arch));
  }
  bool tells_same_models() const override { return true; }

  uint64_t gpus_floor_bytes(const EngineModel& model, const Workload& w, uint64_t gpus, const Estimate& single) const override {
    const auto& m = static_cast<const TransformersModel&>(model);
    const bool training = w.mode == RunMode::kTrain;
    if (gpus < 2 || (training && w.train != TrainMethod::kFull)) return 0;
    if (!training && ((m.arch->quant && !w.from_config) || !replayed(model, w).tied.empty())) return 0;
    return single.weight_bytes / gpus + single.gpu.cuda_context_bytes + (training ? single.gpu.training_extra_bytes : 0);
  }

 private:
  // The positions of fit's inference (generating) or training workloads, from the request's sizes alone.
  static Workload resolve_positions(const WorkloadSpec& spec, bool training) {
    Workload w;
    w.mode = training ? RunMode::kTrain : RunMode::kGenerate;
    w.prompt_tokens = static_cast<uint64_t>(std::max<int64_t>(1, training ? spec.seq_tokens : spec.prompt_tokens));
    w.new_tokens = static_cast<uint64_t>(std::max<int64_t>(1, spec.new_tokens));
    return w;
  }

  FitCandidate inference_candidate(const WorkloadSpec& base, const char* dtype) const {
    WorkloadSpec spec = base;
    spec.batch = 1;
    spec.train.clear();
    spec.use_cache = true;
    spec.dtype = dtype;
    return {dtype, resolve(spec)};
  }
};

}  // namespace

const Engine& transformers_engine() {
  static const TransformersEngine engine;
  return engine;
}

}  // namespace llmem::adapters
