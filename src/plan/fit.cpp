// Fit planning by search over any engine's estimates (see plan.hpp).
#include "llmem/plan.hpp"

#include <algorithm>
#include <optional>
#include <string>

#include "llmem/error.hpp"

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

FitMode mode_of(const Workload& w) {
  if (w.mode != RunMode::kTrain) return FitMode::kInference;
  return w.train == TrainMethod::kFull ? FitMode::kFull : FitMode::kLora;
}

void check_request(const FitRequest& r) {
  auto positive = [](int64_t v, const char* field) {
    if (v <= 0) throw usage_error(field, "{field} must be a positive integer, got " + std::to_string(v));
  };
  positive(r.gpus, "gpus");
  positive(r.workload.prompt_tokens, "prompt_tokens");
  positive(r.workload.new_tokens, "new_tokens");
  positive(r.workload.seq_tokens, "seq_tokens");
  if (r.gpu.memory_bytes == 0) throw Error(ErrorKind::kUsage, "", "the GPU memory budget must be at least 1");
  if (r.gpus > 4096) throw usage_error("gpus", "{field} " + std::to_string(r.gpus) + " is beyond any plausible machine (max 4096)");
}

// One candidate's estimates: whether a workload fits the budget on the GPUs the engine is planned for.
struct Searcher {
  const Engine& engine;
  const EngineModel& model;
  const FitRequest& req;
  bool training;
  uint64_t gpus;

  bool fits(const Estimate& e) const { return per_gpu_bytes(e, training, gpus) <= req.gpu.memory_bytes; }

  bool fits(const Workload& w) const {
    try {
      return fits(engine.estimate(model, w, req.gpu));
    } catch (const Error& e) {
      // a search point the engine refuses is beyond its arithmetic (64-bit sizes, a plausible run): surely too large
      if (e.kind() == ErrorKind::kUsage) return false;
      throw;
    }
  }
};

Searcher searcher_for(const Engine& engine, const EngineModel& model, const FitRequest& req, const Workload& w) {
  return {engine, model, req, mode_of(w) != FitMode::kInference, engine.splits_over_gpus() ? static_cast<uint64_t>(req.gpus) : 1};
}

// The largest count of `knob` that fits, the other knobs held at the candidate's own values. Where the candidate's
// own workload sits on a count, monotonicity answers without a search: fitting at the cap's count or beyond means
// the cap; not fitting at count 1 means none.
uint64_t search_knob(const Searcher& s, const Workload& base, bool base_fits, Knob knob, const KnobRange& range, uint64_t cap_count) {
  if (base_fits && range.base_count >= cap_count) return cap_count;
  if (!base_fits && range.base_count == 1) return 0;
  return largest_fitting(cap_count, s.req.max_iterations, [&](uint64_t n) { return s.fits(s.engine.with_knob(base, knob, n)); });
}

void record_knob(FitOption& o, Knob knob, uint64_t answer, uint64_t cap_count, uint64_t unit) {
  switch (knob) {
    case Knob::kContext:
      o.context_cap = cap_count * unit;
      o.max_context = answer * unit;
      o.context_capped = answer != 0 && answer == cap_count;
      break;
    case Knob::kBatch:
      o.max_batch = answer;
      o.batch_capped = answer == cap_count;
      break;
    case Knob::kGpuLayers:
      o.max_gpu_layers = static_cast<int64_t>(answer) - 1;
      break;
  }
}

// A candidate with its searches, given the estimate of its own workload.
FitOption run_candidate(const Engine& engine, const EngineModel& model, const FitCandidate& c, const FitRequest& req,
                        const Estimate& base) {
  FitOption o;
  o.precision = base.weights_scheme.empty() ? c.precision : base.weights_scheme;
  o.mode = mode_of(c.workload);
  o.workload = c.workload;
  const Searcher s = searcher_for(engine, model, req, c.workload);
  o.process_peak_bytes = base.process_peak_bytes;
  o.per_gpu_bytes = per_gpu_bytes(base, s.training, s.gpus);
  o.headroom_bytes = static_cast<int64_t>(req.gpu.memory_bytes) - static_cast<int64_t>(o.per_gpu_bytes);
  o.fits = s.fits(base);
  // more GPUs help only where the even split applies
  o.gpus_needed = engine.splits_over_gpus() ? gpus_needed(base, s.training, req.gpu.memory_bytes) : 0;
  o.weight_bytes = base.weight_bytes;
  o.weights_predicted = base.weights_predicted;
  o.layers = base.layers;
  o.serving = base.serving;
  for (Knob knob : engine.fit_knobs()) {
    const KnobRange range = engine.knob_range(model, c.workload, knob);
    const uint64_t unknown_cap = knob == Knob::kBatch ? req.batch_cap : req.context_cap_unknown / range.unit;
    const uint64_t cap_count = range.max_count ? range.max_count : unknown_cap;
    record_knob(o, knob, search_knob(s, c.workload, o.fits, knob, range, cap_count), cap_count, range.unit);
  }
  return o;
}

// The engine's own fields are checked with the fit's before any file is read.
const Engine& checked_engine(const FitRequest& req) {
  check_request(req);
  const Engine& engine = find_engine(req.engine);
  engine.resolve(req.workload);
  return engine;
}

// Ranks one catalog model at the first ranking candidate that fits (else the last); says whether one fit.
bool rank_model(const Engine& engine, const SourceFacts& facts, const FitRequest& req, FitOption& best) {
  const std::vector<FitCandidate> candidates = engine.ranking_candidates(facts, req.workload);
  for (size_t i = 0; i < candidates.size(); ++i) {
    const FitCandidate& c = candidates[i];
    const auto model = engine.prepare(facts, c.workload);
    const Estimate base = engine.estimate(*model, c.workload, req.gpu);
    if (i + 1 == candidates.size() || searcher_for(engine, *model, req, c.workload).fits(base)) {
      best = run_candidate(engine, *model, c, req, base);
      return best.fits;
    }
  }
  throw Error(ErrorKind::kUnsupported, facts.source.spec, "the " + engine.name() + " engine has no option to rank");
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

FitResult fit(const FitRequest& req, const std::string& source, const SourceOptions& source_options,
              const std::function<void(const ModelSource&)>& source_opened) {
  checked_engine(req);
  ModelSource src = open_source(source, source_options);
  if (source_opened) source_opened(src);
  return fit(req, read_source_facts(std::move(src)));
}

FitResult fit(const FitRequest& req, const SourceFacts& facts) {
  const Engine& engine = checked_engine(req);
  FitResult out;
  out.engine = engine.name();
  out.source = facts.source;
  out.params = facts.params ? facts.params->total_params : 0;
  out.max_positions = facts.arch ? facts.arch->facts.max_positions : 0;
  for (const FitCandidate& c : engine.fit_candidates(facts, req.workload)) {
    const auto model = engine.prepare(facts, c.workload);
    const Estimate base = engine.estimate(*model, c.workload, req.gpu);
    if (out.architecture.empty()) out.architecture = base.architecture;
    out.options.push_back(run_candidate(engine, *model, c, req, base));
  }
  return out;
}

FitRanking rank_catalog(const FitRequest& req) {
  const Engine& engine = checked_engine(req);
  FitRanking out;
  out.engine = engine.name();
  for (const auto& entry : catalog()) {
    try {
      const SourceFacts facts = read_source_facts(catalog_source(entry));
      RankedModel r;
      r.id = entry.id;
      r.params = facts.params ? facts.params->total_params : 0;
      r.family = facts.arch ? facts.arch->facts.family : "";
      const bool fits = rank_model(engine, facts, req, r.best);
      (fits ? out.fits : out.does_not_fit).push_back(std::move(r));
    } catch (const Error& e) {
      out.skipped.push_back(entry.id + ": " + e.what());
    }
  }
  auto by_params = [](const RankedModel& a, const RankedModel& b) { return a.params != b.params ? a.params > b.params : a.id < b.id; };
  std::sort(out.fits.begin(), out.fits.end(), by_params);
  std::sort(out.does_not_fit.begin(), out.does_not_fit.end(), by_params);
  return out;
}

std::vector<CatalogModel> catalog_models() {
  std::vector<CatalogModel> out;
  for (const auto& entry : catalog()) {
    const SourceFacts facts = read_source_facts(catalog_source(entry));
    // a catalog entry is a config alone, so reading it either knows its architecture or throws
    if (!facts.arch || !facts.params) throw Error(ErrorKind::kUnsupported, entry.id, "no architecture to count");
    out.push_back({entry.id, facts.arch->facts.family, facts.arch->facts.model_type, facts.params->total_params});
  }
  return out;
}

}  // namespace llmem
