// Fit planning by search over any engine's estimates (see plan.hpp).
#include "llmem/plan.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>

#include <fmt/core.h>

#include "llmem/error.hpp"

namespace llmem {

const char* fit_mode_name(FitMode m) {
  switch (m) {
    case FitMode::kInference: return "inference";
    case FitMode::kFull: return "full";
    case FitMode::kLora: return "lora";
    case FitMode::kQLora: return "qlora";
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
  return w.train == TrainMethod::kFull ? FitMode::kFull : w.train == TrainMethod::kLora ? FitMode::kLora : FitMode::kQLora;
}

void check_request(const FitRequest& r) {
  auto positive = [](int64_t v, const char* field) {
    if (v <= 0) throw usage_error(field, "{field} must be a positive integer, got " + std::to_string(v));
  };
  positive(r.gpus, "gpus");
  positive(r.workload.prompt_tokens, "prompt_tokens");
  positive(r.workload.new_tokens, "new_tokens");
  positive(r.workload.seq_tokens, "seq_tokens");
  if (r.gpu.budget_bytes() == 0) throw Error(ErrorKind::kUsage, "", "the GPU memory budget must be at least 1 byte");
  if (r.gpus > 4096) throw usage_error("gpus", "{field} " + std::to_string(r.gpus) + " is beyond any plausible machine (max 4096)");
}

// An estimate the engine may refuse as beyond its arithmetic or not modelled (a usage error): empty then.
std::optional<Estimate> try_estimate(const Engine& engine, const EngineModel& model, const Workload& w, const GpuProfile& gpu,
                                     uint64_t* estimates) {
  ++*estimates;
  try {
    return engine.estimate(model, w, gpu);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kUsage) return std::nullopt;
    throw;
  }
}

// One candidate's estimates: whether a workload fits the budget on the GPUs the engine is planned for, counted.
struct Searcher {
  const Engine& engine;
  const EngineModel& model;
  const FitRequest& req;
  bool training;
  uint64_t gpus;
  uint64_t* estimates;  // incremented per engine estimate

  uint64_t budget() const { return req.gpu.budget_bytes(); }
  bool fits(const Estimate& e) const { return e.fits_within(per_gpu_bytes(e, training, gpus), budget()); }

  FitProbe probe(const Workload& w) const {
    const auto e = try_estimate(engine, model, w, req.gpu, estimates);
    // a search point the engine refuses is beyond its arithmetic (64-bit sizes, a plausible run): surely too large
    if (!e) return {false, std::nullopt};
    const uint64_t bytes = per_gpu_bytes(*e, training, gpus);
    return {e->fits_within(bytes, budget()), bytes};
  }
};

// A workload that carries its GPU count (transformers inference over several GPUs, placed by from_pretrained's
// device_map="auto") is estimated per GPU already: its estimate is not split again.
Searcher searcher_for(const Engine& engine, const EngineModel& model, const FitRequest& req, const Workload& w, uint64_t* estimates) {
  const uint64_t split = w.gpus > 1 ? 1 : engine.splits_over_gpus() ? static_cast<uint64_t>(req.gpus) : 1;
  return {engine, model, req, mode_of(w) != FitMode::kInference, split, estimates};
}

// transformers over several GPUs is modelled per GPU (src/engines/transformers/multi_gpu.cpp, sharding.cpp): the
// inference candidates carry the GPU count and device_map "auto"; full training's carry the GPU count, and
// fit_candidate picks their sharding; LoRA/QLoRA training (which --sharding does not model) keeps the even split.
bool per_gpu_engine(const Engine& engine) { return engine.splits_over_gpus() && engine.name() == "transformers"; }

const char* const kShardings[] = {"ddp", "zero1", "zero2", "zero3", "fsdp"};

// The shardings a full fine-tune's optimizer allows: ZeRO is modelled with AdamW only (resolve_gpus' rule).
std::vector<std::string> shardings_for(const Workload& w) {
  const bool adamw = w.optimizer == OptimizerKind::kAdamWForeach || w.optimizer == OptimizerKind::kAdamWFused ||
                     w.optimizer == OptimizerKind::kAdamWForLoop;
  std::vector<std::string> out;
  for (const char* s : kShardings)
    if (adamw || std::string(s).rfind("zero", 0) != 0) out.emplace_back(s);
  return out;
}

std::vector<FitCandidate> per_gpu_candidates(std::vector<FitCandidate> cs, const Engine& engine, const FitRequest& req) {
  if (req.gpus <= 1 || !per_gpu_engine(engine)) return cs;
  for (auto& c : cs) {
    const FitMode m = mode_of(c.workload);
    if (m == FitMode::kInference) {
      c.workload.gpus = static_cast<uint64_t>(req.gpus);
      c.workload.device_map = "auto";
    } else if (m == FitMode::kFull) {
      c.workload.gpus = static_cast<uint64_t>(req.gpus);
      c.workload.sharding = "ddp";  // fit_candidate tries every sharding
    }
  }
  return cs;
}

// A full fine-tune over several GPUs: every sharding estimated per rank, the one with the most headroom (the
// smallest per-rank process peak; ties: the first of kShardings) kept. Other candidates: their own estimate.
Estimate fit_candidate(const Engine& engine, const EngineModel& model, FitCandidate& c, const FitRequest& req, uint64_t* estimates) {
  if (c.workload.sharding.empty() || c.workload.gpus <= 1) {
    ++*estimates;
    return engine.estimate(model, c.workload, req.gpu);
  }
  std::optional<Estimate> best;
  std::string best_sharding;
  for (const std::string& s : shardings_for(c.workload)) {
    Workload w = c.workload;
    w.sharding = s;
    auto e = try_estimate(engine, model, w, req.gpu, estimates);
    if (e && (!best || e->process_peak_bytes < best->process_peak_bytes)) {
      best = std::move(e);
      best_sharding = s;
    }
  }
  if (!best) throw Error(ErrorKind::kUnsupported, "", "no sharding of the full fine-tune could be estimated");
  c.workload.sharding = best_sharding;
  return *best;
}

// Whether the per-GPU model fits the budget on n GPUs, and under which sharding (full training: the first of
// kShardings that does); empty where the engine cannot model the workload over several GPUs. `one` is the estimate
// of `single` on one GPU: where the engine's floor for n GPUs exceeds the budget, none fits without estimating.
std::optional<std::pair<bool, std::string>> fits_on(const Engine& engine, const EngineModel& model, const Workload& single,
                                                    const Estimate& one, const FitRequest& req, uint64_t n, uint64_t* estimates) {
  const uint64_t budget = req.gpu.budget_bytes();
  if (engine.gpus_floor_bytes(model, single, n, one) > budget) return std::pair<bool, std::string>{false, ""};
  Workload w = single;
  w.gpus = n;
  if (mode_of(single) == FitMode::kInference) {
    w.device_map = "auto";
    auto e = try_estimate(engine, model, w, req.gpu, estimates);
    if (!e) return std::nullopt;  // not modelled (a quantised checkpoint over several GPUs)
    // weights device_map offloads to the CPU or disk do not fit the GPUs
    return std::pair<bool, std::string>{e->fits_within(e->process_peak_bytes, budget), ""};
  }
  for (const std::string& s : shardings_for(w)) {
    w.sharding = s;
    auto e = try_estimate(engine, model, w, req.gpu, estimates);
    if (e && e->fits_within(e->process_peak_bytes, budget)) return std::pair<bool, std::string>{true, s};
  }
  return std::pair<bool, std::string>{false, ""};
}

// The fewest of 2, 4, 8, ..., 64 GPUs on which the per-GPU model fits the budget, with its sharding; 0 where none
// does; empty where the engine cannot model the workload over several GPUs. The per-GPU footprint falls as GPUs
// are added, so the search starts at the power of two at or below the even split's answer `even` and walks down
// while half as many fit, or up until some count fits: two or three estimates instead of six.
std::optional<std::pair<uint64_t, std::string>> modelled_gpus_needed(const Engine& engine, const EngineModel& model,
                                                                     const Workload& single, const Estimate& one,
                                                                     const FitRequest& req, uint64_t even, uint64_t* estimates) {
  const FitMode m = mode_of(single);
  if (!per_gpu_engine(engine) || (m != FitMode::kInference && m != FitMode::kFull)) return std::nullopt;
  constexpr uint64_t kMost = 64;
  uint64_t n = 2;
  while (n * 2 <= std::min(even, kMost)) n *= 2;
  auto at = fits_on(engine, model, single, one, req, n, estimates);
  if (!at) return std::nullopt;
  if (at->first) {
    while (n > 2) {
      auto half = fits_on(engine, model, single, one, req, n / 2, estimates);
      if (!half || !half->first) break;
      n /= 2;
      at = half;
    }
    return std::pair<uint64_t, std::string>{n, at->second};
  }
  while (n < kMost) {
    n *= 2;
    at = fits_on(engine, model, single, one, req, n, estimates);
    if (!at) return std::nullopt;
    if (at->first) return std::pair<uint64_t, std::string>{n, at->second};
  }
  return std::pair<uint64_t, std::string>{0, ""};
}

// The largest count of `knob` that fits, the other knobs held at the candidate's own values. Where the candidate's
// own workload sits on a count, monotonicity answers without a search: fitting at the cap's count or beyond means
// the cap; not fitting at count 1 means none.
// The estimate is not monotone everywhere: the allocator replay's reserved memory can drop by a segment as a count
// grows (phi-2's FSDP fine-tune on two 24 GiB cards fits at batch 5, not at 4). A search finds a count that fits
// next to one that does not, not always the first that does not; a user reads "max batch 5" as "every batch up to
// 5". So the count below the answer is checked too, and where it does not fit, the search goes on under it.
uint64_t search_knob(const Searcher& s, const Workload& base, const FitProbe& base_probe, bool floor_exceeds, Knob knob,
                     const KnobRange& range, uint64_t cap_count) {
  if (base_probe.fits && range.base_count >= cap_count) return cap_count;
  if (!base_probe.fits && (range.base_count == 1 || floor_exceeds)) return 0;
  std::map<uint64_t, FitProbe> seen;  // each count is estimated once
  auto probe = [&](uint64_t n) {
    auto it = seen.find(n);
    if (it == seen.end()) it = seen.emplace(n, s.probe(s.engine.with_knob(base, knob, n))).first;
    return it->second;
  };
  if (range.base_count >= 1) seen.emplace(range.base_count, base_probe);
  auto search = [&](uint64_t cap) {
    if (s.req.search == FitSearch::kReference)
      return largest_fitting(cap, s.req.max_iterations, [&](uint64_t n) { return probe(n).fits; });
    const uint64_t known = range.base_count <= cap ? range.base_count : 0;
    return largest_fitting_guided(cap, s.budget(), s.req.max_iterations, known, base_probe, probe);
  };
  uint64_t answer = search(cap_count);
  for (int round = 0; round < 8 && answer > 1 && !probe(answer - 1).fits; ++round) answer = search(answer - 2);
  return answer;
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
    case Knob::kGpuExpertLayers:
      o.min_n_cpu_moe = answer == 0 ? -1 : static_cast<int64_t>(cap_count - answer);
      break;
  }
}

// The same workload in one process on one GPU (no placement, no sharding).
Workload one_gpu(Workload w) {
  w.gpus = 1;
  w.device_map.clear();
  w.sharding.clear();
  return w;
}

// A candidate with its searches, given the estimate of its own workload.
FitOption run_candidate(const Engine& engine, const EngineModel& model, const FitCandidate& c, const FitRequest& req,
                        const Estimate& base, uint64_t* estimates) {
  FitOption o;
  o.precision = base.weights_scheme.empty() ? c.precision : base.weights_scheme;
  o.mode = mode_of(c.workload);
  o.workload = c.workload;
  const Searcher s = searcher_for(engine, model, req, c.workload, estimates);
  o.per_gpu_modelled = !base.per_gpu.empty();
  // the single-process estimate (for a per-GPU workload, the same workload on one GPU)
  Estimate single;
  if (o.per_gpu_modelled) {
    single = engine.estimate(model, one_gpu(c.workload), req.gpu);
    ++*estimates;
  }
  const Estimate& whole = o.per_gpu_modelled ? single : base;
  o.process_peak_bytes = whole.process_peak_bytes;
  o.per_gpu_bytes = per_gpu_bytes(base, s.training, s.gpus);
  o.headroom_bytes = static_cast<int64_t>(req.gpu.budget_bytes()) - static_cast<int64_t>(o.per_gpu_bytes);
  o.fits = s.fits(base);
  if (o.per_gpu_modelled) o.sharding = c.workload.sharding;
  // GPUs needed: one where the single process fits; else the per-GPU model's answer where the engine has one,
  // else (and beyond 64 GPUs) the even split of the single process
  o.gpus_needed = engine.splits_over_gpus() ? gpus_needed(whole, s.training, req.gpu.budget_bytes()) : 0;
  if (o.gpus_needed > 1) {
    const auto modelled = modelled_gpus_needed(engine, model, one_gpu(c.workload), whole, req, o.gpus_needed, estimates);
    if (modelled && modelled->first) {
      o.gpus_needed = modelled->first;
      o.gpus_needed_modelled = true;
      o.gpus_needed_sharding = modelled->second;
    } else if (modelled && o.gpus_needed) {
      o.gpus_needed = std::max<uint64_t>(o.gpus_needed, 65);  // the model says 64 are too few: the even split beyond
    }
  }
  o.weight_bytes = base.weight_bytes;
  o.weights_predicted = base.weights_predicted;
  o.layers = base.layers;
  o.serving = base.serving;
  const FitProbe base_probe{o.fits, o.per_gpu_bytes};
  // what every knob value needs at least, split as the footprint is: beyond the budget, nothing fits
  // (none for a per-GPU estimate: the floor is the whole model's)
  const uint64_t floor = o.per_gpu_modelled ? 0 : engine.knob_floor_bytes(model, c.workload, base);
  const uint64_t oh = std::min(overhead(base, s.training), floor);
  const bool floor_exceeds = floor && (s.gpus > 1 ? ceil_div(floor - oh, s.gpus) + oh : floor) > s.budget();
  for (Knob knob : engine.fit_knobs()) {
    const KnobRange range = engine.knob_range(model, c.workload, knob);
    if (!range.applies) continue;
    const uint64_t unknown_cap = knob == Knob::kBatch ? req.batch_cap : req.context_cap_unknown / range.unit;
    const uint64_t cap_count = range.max_count ? range.max_count : unknown_cap;
    record_knob(o, knob, search_knob(s, c.workload, base_probe, floor_exceeds, knob, range, cap_count), cap_count, range.unit);
  }
  return o;
}

// The engine's own fields are checked with the fit's, before any file is read where the request names its engine.
// fit tries inference and training alike, so a field applies when the engine reads it in any mode; several GPUs
// apply where the engine's footprint is split over them.
const Engine& checked_engine(const FitRequest& req, const Engine& engine, const std::string& why_engine) {
  check_request(req);
  std::vector<std::string> workload_fields;  // "gpus" is the request's own, checked below
  for (const auto& f : req.set_fields)
    if (f != "gpus") workload_fields.push_back(f);
  check_fields_apply(engine, req.workload, workload_fields, true, why_engine);
  const bool gpus_set = std::find(req.set_fields.begin(), req.set_fields.end(), "gpus") != req.set_fields.end();
  if (req.gpus > 1 && !engine.splits_over_gpus() && gpus_set) {
    std::string splitting;
    for (const Engine* e : engines())
      if (e->splits_over_gpus()) splitting += (splitting.empty() ? "" : " or ") + std::string("{field:engine} ") + e->name();
    throw usage_error("gpus", "{field} " + std::to_string(req.gpus) + " applies to " + splitting + ": " + engine.name() +
                                  "'s split over several GPUs is modelled by estimate --gpus, not searched by fit: fit plans one GPU");
  }
  engine.resolve(req.workload);
  return engine;
}

// Several GPUs the request did not ask for by count (--gpu auto found them) under an engine fit plans on one GPU.
std::vector<std::string> gpu_notes(const FitRequest& req, const Engine& engine) {
  if (req.gpus <= 1 || engine.splits_over_gpus()) return {};
  return {fmt::format("{} GPUs, but fit does not search {}'s split over several GPUs (estimate --gpus shows it): planned for one of them", req.gpus,
                      engine.name())};
}

// Ranks one catalog model at the first ranking candidate that fits (else the last); says whether one fit.
bool rank_model(const Engine& engine, const SourceFacts& facts, const FitRequest& req, FitOption& best, uint64_t* estimates) {
  const std::vector<FitCandidate> candidates = per_gpu_candidates(engine.ranking_candidates(facts, req.workload), engine, req);
  for (size_t i = 0; i < candidates.size(); ++i) {
    FitCandidate c = candidates[i];
    const auto model = engine.prepare(facts, c.workload);
    const Estimate base = fit_candidate(engine, *model, c, req, estimates);
    if (i + 1 == candidates.size() || searcher_for(engine, *model, req, c.workload, estimates).fits(base)) {
      best = run_candidate(engine, *model, c, req, base, estimates);
      return best.fits;
    }
  }
  throw Error(ErrorKind::kUnsupported, facts.source.spec, "the " + engine.name() + " engine has no option to rank");
}

// Runs task(i) for i in [0, n) on up to req.threads threads (each task writes only its own slot), reporting
// progress; the first task (by index) that threw rethrows here, as a sequential loop would.
void parallel_for(size_t n, const FitRequest& req, const std::function<void(size_t)>& task) {
  unsigned threads = req.threads ? req.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<size_t>(threads, n));
  std::vector<std::exception_ptr> errors(n);
  std::atomic<size_t> next{0};
  std::mutex progress_mutex;
  size_t done = 0;
  auto worker = [&] {
    for (size_t i = next++; i < n; i = next++) {
      try {
        task(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
      if (req.progress) {
        std::lock_guard<std::mutex> lock(progress_mutex);
        req.progress(++done, n);
      }
    }
  };
  // this thread works too; helpers that cannot be started (a platform without threads, such as a WebAssembly
  // build) leave their share to the others
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) {
    try {
      pool.emplace_back(worker);
    } catch (const std::system_error&) {
      break;
    }
  }
  worker();
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Where a quadratic through three probes (count, excess over the budget) crosses zero inside (lo, hi), lo's excess
// <= 0 < hi's; empty where the fit is degenerate. Memory grows with a count as a constant plus linear terms (the KV
// cache, batch-sized buffers) plus, for eager attention, a quadratic one: a quadratic model finds the crossing in
// one or two guesses where a secant, anchored at a far end, creeps towards it.
std::optional<long double> quadratic_crossing(long double x0, long double y0, long double x1, long double y1, long double x2,
                                              long double y2) {
  if (x2 == x0 || x2 == x1 || x1 == x0) return std::nullopt;
  // Newton's form around x0: p(x0 + u) = y0 + d01 u + a u (u - w), w = x1 - x0
  const long double d01 = (y1 - y0) / (x1 - x0);
  const long double d12 = (y2 - y1) / (x2 - x1);
  const long double a = (d12 - d01) / (x2 - x0);
  const long double w = x1 - x0;
  const long double b = d01 - a * w;
  // a u^2 + b u + y0 = 0 has exactly one root in (0, w] (p(0) = y0 <= 0 < p(w) = y1)
  if (a == 0 || std::fabs(a * w) < 1e-12L * std::fabs(b)) {
    if (b <= 0) return std::nullopt;
    return x0 - y0 / b;
  }
  const long double disc = std::max<long double>(0, b * b - 4 * a * y0);
  const long double q = -0.5L * (b + (b >= 0 ? 1 : -1) * std::sqrt(disc));
  for (long double u : {q / a, q != 0 ? y0 / q : -1.0L})
    if (u >= 0 && u <= w) return x0 + u;
  return std::nullopt;
}

}  // namespace

uint64_t largest_fitting_guided(uint64_t cap, uint64_t budget, int max_iterations, uint64_t known, const FitProbe& known_probe,
                                const std::function<FitProbe(uint64_t)>& probe) {
  if (cap == 0) return 0;
  // lo fits (0: none known yet), hi does not (cap + 1: none known yet); their excess over the budget (bytes, <= 0 at
  // lo, > 0 at hi) guides the guesses, with the end each probe displaced as a third point
  uint64_t lo = 0, hi = cap + 1;
  std::optional<long double> lo_excess, hi_excess;
  std::optional<std::pair<long double, long double>> third;
  int left = max_iterations;
  int streak = 0;       // > 0: the last `streak` probes all moved lo (guessed low); < 0: all moved hi
  int slow_steps = 0;   // guesses in a row that did not halve the bracket
  auto run = [&](uint64_t n) {
    --left;
    const FitProbe p = probe(n);
    const std::optional<long double> excess =
        p.bytes ? std::optional<long double>(static_cast<long double>(*p.bytes) - static_cast<long double>(budget)) : std::nullopt;
    if (p.fits && n > lo) {
      if (lo && lo_excess) third.emplace(static_cast<long double>(lo), *lo_excess);
      lo = n;
      lo_excess = excess;
      streak = streak > 0 ? streak + 1 : 1;
    } else if (!p.fits && n < hi) {
      if (hi <= cap && hi_excess) third.emplace(static_cast<long double>(hi), *hi_excess);
      hi = n;
      hi_excess = excess;
      streak = streak < 0 ? streak - 1 : -1;
    }
  };
  if (known >= 1 && known <= cap) {
    (known_probe.fits ? lo : hi) = known;
    if (known_probe.bytes)
      (known_probe.fits ? lo_excess : hi_excess) = static_cast<long double>(*known_probe.bytes) - static_cast<long double>(budget);
  }
  // the ends: count 1 (nothing fits without it), then the cap (everything fits with it)
  if (lo == 0 && hi > 1) {
    run(1);
    if (lo == 0) return 0;
  }
  if (hi == cap + 1 && lo < cap) {
    run(cap);
    if (lo == cap) return cap;
  }
  // Interpolation on the bytes (quadratic through the bracket and the last displaced end; a secant while there is
  // no third point), stepping past a guess that keeps landing on one side, and bisecting (geometrically over a wide
  // bracket) whenever the guesses stop halving the bracket: the same answer as bisection for a monotone probe
  while (hi - lo > 1 && left > 0) {
    const uint64_t width = hi - lo;
    const bool wide = lo >= 1 && hi / lo >= 16;
    uint64_t next = wide ? static_cast<uint64_t>(std::sqrt(static_cast<long double>(lo) * static_cast<long double>(hi)))
                         : lo + width / 2;
    std::optional<long double> guess;
    if (lo_excess && hi_excess && *hi_excess > *lo_excess && slow_steps < 2 && width > 2) {
      const long double x0 = static_cast<long double>(lo), x1 = static_cast<long double>(hi);
      if (third) guess = quadratic_crossing(x0, *lo_excess, x1, *hi_excess, third->first, third->second);
      if (!guess && !third) guess = x0 - *lo_excess * (x1 - x0) / (*hi_excess - *lo_excess);
    }
    if (guess) {
      long double g = *guess;
      // a guess that fell on the same side twice running steps past itself by a growing margin
      const int same_side = std::abs(streak);
      if (same_side >= 2) {
        const long double step = std::ldexp(1.0L, std::min(same_side - 2, 40)) * std::max<long double>(1, static_cast<long double>(width) / 256);
        g += streak > 0 ? step : -step;
      }
      next = g >= static_cast<long double>(hi) ? hi - 1 : g <= static_cast<long double>(lo) ? lo + 1 : static_cast<uint64_t>(g);
    } else {
      slow_steps = 0;
    }
    next = std::clamp<uint64_t>(next, lo + 1, hi - 1);  // a guess in (lo, lo + 1) truncates to lo
    run(next);
    slow_steps = (hi - lo) * 2 > width ? slow_steps + 1 : 0;
  }
  return lo;
}

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
  if (!req.engine.empty()) checked_engine(req, find_engine(req.engine), "");
  ModelSource src = open_source(source, source_options);
  if (source_opened) source_opened(src);
  return fit(req, read_source_facts(std::move(src)));
}

std::vector<GpuFit> fit_every_gpu(const FitRequest& req, const std::string& source, const SourceOptions& source_options,
                                  const std::function<void(const ModelSource&)>& source_opened) {
  if (!req.engine.empty()) checked_engine(req, find_engine(req.engine), "");
  ModelSource src = open_source(source, source_options);
  if (source_opened) source_opened(src);
  const SourceFacts facts = read_source_facts(std::move(src));
  std::vector<GpuProfile> gpus = gpu_catalog();
  std::stable_sort(gpus.begin(), gpus.end(),
                   [](const GpuProfile& a, const GpuProfile& b) { return a.memory_bytes < b.memory_bytes; });
  // the cards in parallel (progress per card), each fit on one thread
  std::vector<GpuFit> out(gpus.size());
  parallel_for(gpus.size(), req, [&](size_t i) {
    GpuProfile g = gpus[i];
    FitRequest r = req;
    g.reserve_bytes = req.gpu.reserve_bytes;
    g.reserve_source = req.gpu.reserve_source;
    r.gpu = g;
    r.progress = {};
    r.threads = 1;
    out[i] = {g, fit(r, facts)};
  });
  return out;
}

FitResult fit(const FitRequest& req, const SourceFacts& facts) {
  const Engine& engine =
      req.engine.empty() ? checked_engine(req, default_engine(facts), default_engine_reason(facts)) : checked_engine(req, find_engine(req.engine), "");
  FitResult out;
  out.engine = engine.name();
  out.notes = gpu_notes(req, engine);
  out.source = facts.source;
  out.params = facts.params ? facts.params->total_params : 0;
  out.max_positions = facts.arch ? facts.arch->facts.max_positions : 0;
  const std::vector<FitCandidate> candidates = per_gpu_candidates(engine.fit_candidates(facts, req.workload), engine, req);
  out.options.resize(candidates.size());
  std::vector<std::string> architectures(candidates.size());
  std::vector<uint64_t> estimates(candidates.size(), 0);
  parallel_for(candidates.size(), req, [&](size_t i) {
    FitCandidate c = candidates[i];
    const auto model = engine.prepare(facts, c.workload);
    const Estimate base = fit_candidate(engine, *model, c, req, &estimates[i]);
    architectures[i] = base.architecture;
    out.options[i] = run_candidate(engine, *model, c, req, base, &estimates[i]);
  });
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (out.architecture.empty()) out.architecture = architectures[i];
    out.estimates += estimates[i];
  }
  return out;
}

FitRanking rank_catalog(const FitRequest& req) {
  const Engine& engine = checked_engine(req, find_engine(req.engine.empty() ? "transformers" : req.engine), "");
  FitRanking out;
  out.engine = engine.name();
  out.notes = gpu_notes(req, engine);
  const std::vector<CatalogEntry>& entries = catalog();
  const size_t n = entries.size();
  std::vector<RankedModel> ranked(n);
  std::vector<int> fits(n, -1);  // -1: skipped
  std::vector<std::string> why(n);
  std::vector<uint64_t> estimates(n, 0);
  FitRequest quiet = req;  // progress is said here, per catalog model
  quiet.progress = {};
  std::mutex progress_mutex;
  size_t done = 0;
  auto advance = [&](size_t models) {
    if (!req.progress || models == 0) return;
    std::lock_guard<std::mutex> lock(progress_mutex);
    done += models;
    req.progress(done, n);
  };
  // An engine that tells when two sources are one model gets every source read first: each model is then searched
  // once (a fine-tune of a base model is the base model to it), and the largest first (by tensors: an MoE's
  // experts, one by one as a quantised checkpoint stores them, cost the most to derive and replay), so that no
  // thread starts a giant last. Otherwise each source is read as its model is searched, in the catalog's order.
  const bool grouped = engine.tells_same_models();
  std::vector<std::optional<SourceFacts>> facts(n);
  auto read = [&](size_t i) {
    try {
      facts[i] = read_source_facts(catalog_source(entries[i]));
      ranked[i].id = entries[i].id;
      ranked[i].params = facts[i]->params ? facts[i]->params->total_params : 0;
      ranked[i].family = facts[i]->arch ? facts[i]->arch->facts.family : "";
    } catch (const Error& e) {
      why[i] = entries[i].id + ": " + e.what();
    }
  };
  if (grouped)
    parallel_for(n, quiet, [&](size_t i) {
      read(i);
      if (!facts[i]) advance(1);
    });
  std::vector<size_t> same(n);  // the entry whose search answers for this one (itself, or an earlier one)
  std::vector<size_t> copies(n, 0);
  for (size_t i = 0; i < n; ++i) {
    same[i] = i;
    for (size_t j = 0; j < i && facts[i]; ++j)
      if (same[j] == j && facts[j] && engine.same_model(*facts[j], *facts[i])) {
        same[i] = j;
        ++copies[j];
        facts[i].reset();  // read again only if the model's search fails (see below)
        break;
      }
  }
  auto rank = [&](size_t i) {
    if (!facts[i]) read(i);
    if (!facts[i]) return;
    try {
      fits[i] = rank_model(engine, *facts[i], req, ranked[i].best, &estimates[i]) ? 1 : 0;
    } catch (const Error& e) {
      why[i] = entries[i].id + ": " + e.what();
    }
    facts[i].reset();  // its tensors are not needed any more
  };
  std::vector<size_t> order;
  for (size_t i = 0; i < n; ++i)
    if (same[i] == i && (facts[i] || !grouped)) order.push_back(i);
  if (grouped) {
    auto tensors = [&](size_t i) { return facts[i]->arch ? facts[i]->arch->tensors.size() : 0; };
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors(a) > tensors(b); });
  }
  parallel_for(order.size(), quiet, [&](size_t k) {
    const size_t i = order[k];
    rank(i);
    advance(1 + (fits[i] < 0 ? 0 : copies[i]));
  });
  // the same model's other entries: its answer (where its search failed, each is read and searched on its own, for
  // an error that names it)
  std::vector<size_t> alone;
  for (size_t i = 0; i < n; ++i) {
    if (same[i] == i) continue;
    if (fits[same[i]] < 0) {
      alone.push_back(i);
      continue;
    }
    ranked[i].best = ranked[same[i]].best;
    fits[i] = fits[same[i]];
  }
  parallel_for(alone.size(), quiet, [&](size_t k) {
    rank(alone[k]);
    advance(1);
  });
  facts.clear();
  for (size_t i = 0; i < entries.size(); ++i) {
    out.estimates += estimates[i];
    if (fits[i] < 0) out.skipped.push_back(why[i]);
    else (fits[i] ? out.fits : out.does_not_fit).push_back(std::move(ranked[i]));
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
