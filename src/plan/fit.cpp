// Fit planning by search over the estimator (see plan.hpp).
#include "llmem/plan.hpp"

#include <algorithm>
#include <optional>
#include <string>

#include "llmem/catalog.hpp"
#include "llmem/error.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/params.hpp"
#include "ranking.hpp"

namespace llmem {

const char* fit_mode_name(FitMode m) {
  switch (m) {
    case FitMode::kInference: return "inference";
    case FitMode::kFull: return "full";
    case FitMode::kLora: return "lora";
  }
  return "?";
}

namespace {

uint64_t overhead(const Estimate& e, bool training) {
  return e.gpu.cuda_context_bytes + (training ? e.gpu.training_extra_bytes : 0);
}

uint64_t ceil_div(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

std::string precision_name(DType d) { return d == DType::F32 ? "fp32" : d == DType::BF16 ? "bf16" : "fp16"; }

void check_request(const FitRequest& r) {
  auto positive = [](uint64_t v, const char* name) {
    if (v == 0) throw Error(ErrorKind::kUsage, "", std::string(name) + " must be at least 1");
  };
  positive(r.gpus, "--gpus");
  positive(r.prompt_tokens, "--prompt");
  positive(r.new_tokens, "--new-tokens");
  positive(r.seq, "--seq");
  positive(r.gpu.memory_bytes, "the GPU memory budget");
  if (r.gpus > 4096) throw Error(ErrorKind::kUsage, "", "--gpus " + std::to_string(r.gpus) + " is beyond any plausible machine (max 4096)");
}

// The estimate of `w`, or nullopt when the workload is beyond the engine's arithmetic (surely too large).
std::optional<Estimate> try_estimate(const ArchModel& m, const Workload& w, const GpuProfile& gpu) {
  try {
    validate_workload(w);
    return estimate_transformers(m, w, gpu);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kUsage) return std::nullopt;
    throw;
  }
}

struct Searcher {
  const ArchModel& model;
  const FitRequest& req;
  bool training;

  bool fits(const Workload& w) const {
    auto e = try_estimate(model, w, req.gpu);
    return e && per_gpu_bytes(*e, training, req.gpus) <= req.gpu.memory_bytes;
  }
};

FitOption run_option(const ArchModel& model, const FitRequest& req, FitMode mode, std::string precision, Workload w) {
  FitOption o;
  o.precision = std::move(precision);
  o.mode = mode;
  w.batch = 1;
  o.workload = w;
  const bool training = mode != FitMode::kInference;
  Searcher s{model, req, training};

  if (auto e = try_estimate(model, w, req.gpu)) {
    o.process_peak_bytes = e->process_peak_bytes;
    o.per_gpu_bytes = per_gpu_bytes(*e, training, req.gpus);
    o.headroom_bytes = static_cast<int64_t>(req.gpu.memory_bytes) - static_cast<int64_t>(o.per_gpu_bytes);
    o.fits = o.per_gpu_bytes <= req.gpu.memory_bytes;
    o.gpus_needed = gpus_needed(*e, training, req.gpu.memory_bytes);
  }

  const uint64_t maxpos = model.facts.max_positions;
  if (maxpos == 0) o.context_cap = req.context_cap_unknown;
  else if (training) o.context_cap = maxpos;
  else o.context_cap = maxpos > w.new_tokens ? maxpos - w.new_tokens : 1;
  o.max_context = largest_fitting(o.context_cap, req.max_iterations, [&](uint64_t n) {
    Workload x = w;
    x.prompt_tokens = n;
    return s.fits(x);
  });
  o.context_capped = o.max_context != 0 && o.max_context == o.context_cap;

  if (o.fits) {
    o.max_batch = largest_fitting(req.batch_cap, req.max_iterations, [&](uint64_t b) {
      Workload x = w;
      x.batch = b;
      return s.fits(x);
    });
    o.batch_capped = o.max_batch == req.batch_cap;
  }
  return o;
}

Workload inference_workload(DType dtype, const FitRequest& req) {
  Workload w;
  w.mode = RunMode::kGenerate;
  w.dtype = dtype;
  w.prompt_tokens = req.prompt_tokens;
  w.new_tokens = req.new_tokens;
  return w;
}

Workload training_workload(TrainMethod method, TrainPrecision precision, const FitRequest& req) {
  Workload w;
  w.mode = RunMode::kTrain;
  w.train = method;
  w.precision = precision;
  w.optimizer = OptimizerKind::kAdamW;
  w.dtype = precision == TrainPrecision::kBf16 ? DType::BF16 : DType::F32;  // as `llmem estimate --train` sets it
  w.prompt_tokens = req.seq;
  return w;
}

}  // namespace

uint64_t per_gpu_bytes(const Estimate& e, bool training, uint64_t gpus) {
  if (gpus <= 1) return e.process_peak_bytes;
  const uint64_t oh = std::min(overhead(e, training), e.process_peak_bytes);
  return ceil_div(e.process_peak_bytes - oh, gpus) + oh;
}

uint64_t gpus_needed(const Estimate& e, bool training, uint64_t budget) {
  if (e.process_peak_bytes <= budget) return 1;
  const uint64_t oh = std::min(overhead(e, training), e.process_peak_bytes);
  if (budget <= oh) return 0;
  return std::max<uint64_t>(1, ceil_div(e.process_peak_bytes - oh, budget - oh));
}

uint64_t largest_fitting(uint64_t cap, int max_iterations, const std::function<bool(uint64_t)>& pred) {
  if (cap == 0 || !pred(1)) return 0;
  uint64_t good = 1;  // pred(good) is true
  uint64_t bad = 0;   // pred(bad) is false; 0 = none found yet
  int left = max_iterations;
  // Exponential search keeps the estimates small where the answer is small.
  while (bad == 0 && left-- > 0) {
    if (good == cap) return cap;
    const uint64_t next = good > cap / 2 ? cap : good * 2;
    if (pred(next)) good = next;
    else bad = next;
  }
  while (bad != 0 && bad - good > 1 && left-- > 0) {
    const uint64_t mid = good + (bad - good) / 2;
    if (pred(mid)) good = mid;
    else bad = mid;
  }
  return good;
}

FitOption fit_inference(const ArchModel& model, DType dtype, const FitRequest& req) {
  check_request(req);
  return run_option(model, req, FitMode::kInference, precision_name(dtype), inference_workload(dtype, req));
}

std::vector<FitOption> fit_options(const ArchModel& model, const FitRequest& req) {
  check_request(req);
  std::vector<FitOption> out;
  for (DType d : {DType::F32, DType::BF16, DType::F16})
    out.push_back(run_option(model, req, FitMode::kInference, precision_name(d), inference_workload(d, req)));
  for (TrainMethod m : {TrainMethod::kFull, TrainMethod::kLora})
    for (TrainPrecision p : {TrainPrecision::kBf16, TrainPrecision::kAmpBf16}) {
      Workload w = training_workload(m, p, req);
      // LoRA on the attention projections this model has (its fused QKV where it has no q/k/v/o_proj)
      if (m == TrainMethod::kLora) w.lora_targets = attention_lora_targets(model);
      out.push_back(run_option(model, req, m == TrainMethod::kFull ? FitMode::kFull : FitMode::kLora,
                               p == TrainPrecision::kBf16 ? "bf16" : "amp-bf16", w));
    }
  return out;
}

CatalogRanking rank_catalog(const FitRequest& req) {
  check_request(req);
  return rank_catalog_models<CatalogRanking>([&](const ArchModel& m, const CatalogEntry&, RankedModel& r) {
    const DType half = m.facts.config_dtype == DType::BF16 ? DType::BF16 : DType::F16;
    r.best = run_option(m, req, FitMode::kInference, precision_name(half), inference_workload(half, req));
    return r.best.fits;
  });
}

}  // namespace llmem
