// The fit planner (plan.hpp) and `llmem fit`, plus `llmem study --chart`.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <tuple>
#include <sstream>

#include <nlohmann/json.hpp>

#include "fixtures/cli_run.hpp"
#include "fixtures/safetensors_writer.hpp"
#include "llmem/arch.hpp"
#include "llmem/catalog.hpp"
#include "llmem/engine.hpp"
#include "llmem/error.hpp"
#include "llmem/estimate.hpp"
#include "llmem/field_error.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/plan.hpp"
#include "llmem/units.hpp"

using nlohmann::json;
using namespace llmem;
using llmem::fixtures::CliRun;
using llmem::fixtures::run_llmem;
using llmem::fixtures::slurp;
using llmem::fixtures::TempDir;

namespace {

SourceFacts catalog_facts(const std::string& id) {
  auto e = find_in_catalog(id);
  if (!e) throw std::runtime_error("not in the catalog: " + id);
  return read_source_facts(catalog_source(*e));
}

FitRequest request_with(uint64_t budget, const std::string& engine = "transformers") {
  FitRequest r;
  r.engine = engine;
  r.gpu = default_gpu();
  r.gpu.memory_bytes = budget;
  return r;
}

const FitOption& find_option(const std::vector<FitOption>& opts, const std::string& precision, FitMode mode) {
  for (const auto& o : opts)
    if (o.precision == precision && o.mode == mode) return o;
  throw std::runtime_error("no option " + precision);
}

void expect_one_line_error(const CliRun& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

// The process peak the seam estimates for a llama.cpp run of TinyLlama at `quant` with `n_gpu_layers` layers.
uint64_t llamacpp_peak(const std::string& quant, int64_t n_gpu_layers) {
  EstimateRequest r;
  r.source_facts = std::make_shared<const SourceFacts>(catalog_facts("TinyLlama/TinyLlama-1.1B-Chat-v1.0"));
  r.engine = "llamacpp";
  r.workload.quant = quant;
  r.workload.n_gpu_layers = n_gpu_layers;
  r.gpu_profile = default_gpu();
  return estimate(r).estimate.process_peak_bytes;
}

}  // namespace

TEST(LargestFitting, FindsTheLastTrueValueOfAMonotonePredicate) {
  for (uint64_t answer : {uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{1000}, uint64_t{65535}, uint64_t{65536}}) {
    int calls = 0;
    uint64_t got = largest_fitting(uint64_t{1} << 20, 64, [&](uint64_t n) {
      ++calls;
      return n <= answer;
    });
    EXPECT_EQ(got, answer);
    EXPECT_LE(calls, 45);
  }
  EXPECT_EQ(largest_fitting(1000, 64, [](uint64_t) { return false; }), 0u);
  EXPECT_EQ(largest_fitting(1000, 64, [](uint64_t) { return true; }), 1000u);  // the cap
  EXPECT_EQ(largest_fitting(999, 64, [](uint64_t n) { return n <= 998; }), 998u);
}

// The guided search against the reference on synthetic monotone curves (linear, convex, flat then steep, and
// stepped as the allocator's segments make them): the same answer, counted in calls (not timed).
TEST(LargestFittingGuided, SameAnswerAsTheReferenceInFewerCalls) {
  const uint64_t budget = uint64_t{24} << 30;
  const std::vector<std::function<uint64_t(uint64_t)>> curves = {
      [](uint64_t n) { return (uint64_t{15} << 30) + n * (uint64_t{300} << 10); },                    // KV cache
      [](uint64_t n) { return (uint64_t{10} << 30) + n * n * 40; },                                      // eager scores
      [](uint64_t n) { return (uint64_t{20} << 30) + (n > 5000 ? (n - 5000) * (uint64_t{8} << 20) : 0); },
      [](uint64_t n) { return (uint64_t{16} << 30) + (n / 64) * (uint64_t{20} << 20); },                 // steps
  };
  int reference_calls = 0, guided_calls = 0;
  for (size_t i = 0; i < curves.size(); ++i) {
    for (uint64_t cap : {uint64_t{1} << 20, uint64_t{40960}, uint64_t{3}}) {
      const auto& bytes = curves[i];
      const int calls_before = guided_calls;
      const uint64_t expected = largest_fitting(cap, 64, [&](uint64_t n) {
        ++reference_calls;
        return bytes(n) <= budget;
      });
      const uint64_t got = largest_fitting_guided(cap, budget, 64, 6, FitProbe{bytes(6) <= budget, bytes(6)}, [&](uint64_t n) {
        ++guided_calls;
        return FitProbe{bytes(n) <= budget, bytes(n)};
      });
      EXPECT_EQ(got, expected) << "curve " << i << ", cap " << cap;
      // the eager scores' quadratic, searched from a cap a million tokens away: a secant anchored at the cap's
      // excess creeps up from below (26 calls); a quadratic through three probes lands in a few
      if (i == 1) {
        EXPECT_LE(guided_calls - calls_before, 6) << "cap " << cap;
      }
    }
  }
  EXPECT_LT(guided_calls * 3, reference_calls) << guided_calls << " guided calls, " << reference_calls << " reference calls";
  // the ends: nothing fits, everything fits, and an engine that refuses the larger counts (no bytes)
  auto none = [](uint64_t) { return FitProbe{false, uint64_t{1} << 40}; };
  EXPECT_EQ(largest_fitting_guided(1000, budget, 64, 0, {}, none), 0u);
  auto all = [](uint64_t) { return FitProbe{true, uint64_t{1} << 20}; };
  EXPECT_EQ(largest_fitting_guided(1000, budget, 64, 0, {}, all), 1000u);
  auto refusing = [](uint64_t n) { return n <= 700 ? FitProbe{true, n << 20} : FitProbe{false, std::nullopt}; };
  EXPECT_EQ(largest_fitting_guided(1000, budget, 64, 0, {}, refusing), 700u);
}

namespace {

// Whether one option's workload at `count` of `knob` fits, estimated directly through the seam.
bool knob_fits(const Engine& engine, const SourceFacts& facts, const FitCandidate& c, const FitRequest& req, Knob knob,
               uint64_t count) {
  const auto model = engine.prepare(facts, c.workload);
  const Estimate e = engine.estimate(*model, engine.with_knob(c.workload, knob, count), req.gpu);
  return per_gpu_bytes(e, c.workload.mode == RunMode::kTrain, static_cast<uint64_t>(req.gpus)) <= req.gpu.memory_bytes;
}

}  // namespace

// fit's guided search against the reference search (every probe a full estimate either way) on several models,
// budgets and GPU counts: every answer is the same, except where the estimate itself is not monotone between the
// two answers (the allocator replay's fragmentation makes it jagged in places), which the test then proves from
// three estimates: the smaller answer fits and the next count does not, yet the larger answer fits.
TEST(FitSearch, GuidedAnswersAreTheReferenceAnswers) {
  struct Case {
    std::string model;
    uint64_t budget;
    int64_t gpus;
  };
  const std::vector<Case> cases = {{"microsoft/phi-2", uint64_t{24} << 30, 1},
                                   {"TinyLlama/TinyLlama-1.1B-Chat-v1.0", uint64_t{8} << 30, 1},
                                   {"google/gemma-2-2b", uint64_t{8} << 30, 3},
                                   {"openai-community/gpt2-medium", uint64_t{4} << 30, 1},
                                   {"Qwen/Qwen2.5-0.5B", uint64_t{6} << 30, 1}};
  uint64_t guided_estimates = 0, reference_estimates = 0;
  int compared = 0, jagged = 0;
  for (const auto& c : cases) {
    const SourceFacts facts = catalog_facts(c.model);
    FitRequest req = request_with(c.budget);
    req.gpus = c.gpus;
    req.search = FitSearch::kReference;
    const FitResult reference = fit(req, facts);
    req.search = FitSearch::kGuided;
    const FitResult guided = fit(req, facts);
    reference_estimates += reference.estimates;
    guided_estimates += guided.estimates;
    ASSERT_EQ(guided.options.size(), reference.options.size());
    const Engine& engine = find_engine("transformers");
    const std::vector<FitCandidate> candidates = engine.fit_candidates(facts, req.workload);
    for (size_t i = 0; i < guided.options.size(); ++i) {
      const FitOption& g = guided.options[i];
      const FitOption& r = reference.options[i];
      EXPECT_EQ(g.fits, r.fits);
      EXPECT_EQ(g.process_peak_bytes, r.process_peak_bytes);
      for (const auto& [knob, a, b] : {std::tuple{Knob::kContext, g.max_context, r.max_context},
                                       std::tuple{Knob::kBatch, g.max_batch, r.max_batch}}) {
        ++compared;
        if (a == b) continue;
        ++jagged;
        std::printf("%s option %zu %s: guided %llu, reference %llu\n", c.model.c_str(), i, knob == Knob::kContext ? "context" : "batch",
                    static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
        const uint64_t lo = std::min(a, b), hi = std::max(a, b);
        SCOPED_TRACE(c.model + " option " + std::to_string(i) + (knob == Knob::kContext ? " context " : " batch ") +
                     std::to_string(a) + " guided, " + std::to_string(b) + " reference");
        ASSERT_GT(lo, 0u);
        EXPECT_TRUE(knob_fits(engine, facts, candidates[i], req, knob, lo));
        EXPECT_FALSE(knob_fits(engine, facts, candidates[i], req, knob, lo + 1));
        EXPECT_TRUE(knob_fits(engine, facts, candidates[i], req, knob, hi));
      }
    }
  }
  EXPECT_EQ(compared, 80);  // 5 models x 8 options (3 inference, full and LoRA in 2 precisions, QLoRA) x 2 knobs
  std::printf("%d of %d answers the same; %d differ where the estimate is proven not monotone\n", compared - jagged, compared,
              jagged);
  EXPECT_LT(guided_estimates * 2, reference_estimates) << guided_estimates << " guided estimates, " << reference_estimates
                                                       << " reference estimates";
}

// Whether an option's own workload (its GPUs and sharding included) fits at `count` of `knob`, as fit decides it.
bool option_fits(const Engine& engine, const SourceFacts& facts, const FitOption& o, const FitRequest& req, Knob knob,
                 uint64_t count) {
  const auto model = engine.prepare(facts, o.workload);
  const Estimate e = engine.estimate(*model, engine.with_knob(o.workload, knob, count), req.gpu);
  const uint64_t split = o.workload.gpus > 1 ? 1 : static_cast<uint64_t>(req.gpus);
  return e.fits_within(per_gpu_bytes(e, o.workload.mode == RunMode::kTrain, split), req.gpu.budget_bytes());
}

// Where the estimate is jagged, the count below a search's answer is checked: phi-2's FSDP fine-tune on two 24 GiB
// cards fits at batch 5 but not at 4 (the replay's reserved memory drops by a segment from 4 to 5), so the answer
// is 3, the largest batch with every smaller one fitting, not 5. Every answer of several models has n - 1 fitting.
TEST(FitSearch, TheCountBelowAnAnswerFitsToo) {
  const Engine& engine = find_engine("transformers");
  {
    const SourceFacts facts = catalog_facts("microsoft/phi-2");
    FitRequest req = request_with(0);
    req.gpu = find_gpu("RTX-4090");
    req.gpu.reserve_bytes = uint64_t{1} << 29;  // fit's default reserve, 0.5 GiB
    req.gpus = 2;
    const FitResult r = fit(req, facts);
    int seen = 0;
    for (const FitOption& o : r.options) {
      if (o.sharding != "fsdp" || o.precision != "bf16") continue;
      ++seen;
      EXPECT_TRUE(option_fits(engine, facts, o, req, Knob::kBatch, 5));
      EXPECT_FALSE(option_fits(engine, facts, o, req, Knob::kBatch, 4));
      EXPECT_TRUE(option_fits(engine, facts, o, req, Knob::kBatch, 3));
      EXPECT_EQ(o.max_batch, 3u);
    }
    EXPECT_EQ(seen, 1);
  }
  int checked = 0;
  for (const char* id : {"TinyLlama/TinyLlama-1.1B-Chat-v1.0", "google/gemma-2-2b", "Qwen/Qwen2.5-0.5B"}) {
    const SourceFacts facts = catalog_facts(id);
    const FitRequest req = request_with(uint64_t{8} << 30);
    const FitResult r = fit(req, facts);
    for (size_t i = 0; i < r.options.size(); ++i) {
      const FitOption& o = r.options[i];
      const auto model = engine.prepare(facts, o.workload);
      for (const auto& [knob, answer, capped] :
           {std::tuple{Knob::kContext, o.max_context, o.context_capped}, std::tuple{Knob::kBatch, o.max_batch, o.batch_capped}}) {
        const uint64_t count = answer / engine.knob_range(*model, o.workload, knob).unit;
        if (count < 2 || capped) continue;
        SCOPED_TRACE(std::string(id) + " option " + std::to_string(i) + " count " + std::to_string(count));
        EXPECT_TRUE(option_fits(engine, facts, o, req, knob, count));
        EXPECT_TRUE(option_fits(engine, facts, o, req, knob, count - 1));
        EXPECT_FALSE(option_fits(engine, facts, o, req, knob, count + 1));
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 20);
}

// The GPUs-needed search answers "does not fit on n GPUs" from the engine's floor without estimating: the floor is
// never above the per-GPU estimate's process peak (its largest GPU's) unless that estimate offloads weights (which
// does not fit either), for inference placed by device_map="auto" and full fine-tuning under every sharding.
TEST(FitSearch, GpusFloorIsBelowEveryPerGpuEstimate) {
  const Engine& engine = find_engine("transformers");
  const GpuProfile gpu = default_gpu();
  int checked = 0, offloaded = 0, floored = 0;
  for (const char* id : {"Qwen/Qwen2.5-14B", "meta-llama/Llama-2-13b-hf", "mistralai/Mixtral-8x7B-v0.1", "Qwen/Qwen3-30B-A3B",
                         "google/gemma-2-9b", "Qwen/Qwen3-32B-FP8"}) {
    const SourceFacts facts = catalog_facts(id);
    for (const FitCandidate& c : engine.fit_candidates(facts, WorkloadSpec{})) {
      const bool full = c.workload.mode == RunMode::kTrain && c.workload.train == TrainMethod::kFull;
      if (c.workload.mode == RunMode::kTrain && !full) continue;
      const auto model = engine.prepare(facts, c.workload);
      const Estimate one = engine.estimate(*model, c.workload, gpu);
      for (uint64_t n : {2, 4, 8}) {
        const uint64_t floor = engine.gpus_floor_bytes(*model, c.workload, n, one);
        Workload w = c.workload;
        w.gpus = n;
        if (!full) w.device_map = "auto";
        for (const std::string& s : full ? std::vector<std::string>{"ddp", "zero1", "zero2", "zero3", "fsdp"} : std::vector<std::string>{""}) {
          w.sharding = s;
          Estimate e;
          try {
            e = engine.estimate(*model, w, gpu);
          } catch (const Error& err) {
            EXPECT_EQ(floor, 0u) << id << " on " << n << " GPUs: refused (" << err.what() << ") but a floor is given";
            continue;
          }
          ++checked;
          if (e.offloaded_weight_bytes) {
            ++offloaded;
            continue;
          }
          EXPECT_LE(floor, e.process_peak_bytes) << id << " " << c.precision << " " << s << " on " << n << " GPUs";
          floored += floor > 0;
        }
      }
    }
  }
  EXPECT_GT(checked, 100);
  EXPECT_GT(floored, 100);
  std::printf("%d per-GPU estimates at or above their floor (%d of them floored), %d offloaded\n", checked - offloaded, floored,
              offloaded);
}

// A catalog model the engine sees as an earlier entry's (a fine-tune of one base model) is searched once: one model
// to transformers is one architecture, equal in every field but the file its quantisation config was read from.
TEST(FitRanking, OneModelUnderSeveralNamesIsSearchedOnce) {
  const Engine& engine = find_engine("transformers");
  const SourceFacts v3 = catalog_facts("deepseek-ai/DeepSeek-V3"), r1 = catalog_facts("deepseek-ai/DeepSeek-R1");
  const SourceFacts lite = catalog_facts("deepseek-ai/DeepSeek-V2-Lite");
  const SourceFacts gemma = catalog_facts("google/gemma-2-9b"), gemma_it = catalog_facts("google/gemma-2-9b-it");
  EXPECT_TRUE(engine.same_model(v3, r1));  // their configs differ in keys no family reads
  EXPECT_TRUE(engine.same_model(gemma, gemma_it));
  EXPECT_FALSE(engine.same_model(v3, lite));
  EXPECT_TRUE(engine.tells_same_models());
  EXPECT_FALSE(find_engine("llamacpp").same_model(gemma, gemma_it));  // not known: it reads more of a source
  EXPECT_FALSE(find_engine("llamacpp").tells_same_models());
  const std::string json(find_in_catalog("deepseek-ai/DeepSeek-V3")->config_json);
  const ArchModel a = model_from_config(HfConfig::parse(json, "a/config.json"));
  EXPECT_TRUE(same_architecture(a, model_from_config(HfConfig::parse(json, "b/config.json"))));
  for (const auto& [key, value] : {std::pair{"\"max_position_embeddings\": 163840", "\"max_position_embeddings\": 163841"},
                                   std::pair{"\"fmt\": \"e4m3\"", "\"fmt\": \"e4m3\", \"modules_to_not_convert\": [\"lm_head\"]"},
                                   std::pair{"\"num_hidden_layers\": 61", "\"num_hidden_layers\": 60"}}) {
    std::string edited = json;
    ASSERT_NE(edited.find(key), std::string::npos) << key;
    edited.replace(edited.find(key), std::string(key).size(), value);
    EXPECT_FALSE(same_architecture(a, model_from_config(HfConfig::parse(edited, "a/config.json")))) << value;
  }
  // the ranking gives each name the answer its own fit gives (the same option: half-precision inference)
  const FitRequest req = request_with(uint64_t{24} << 30);
  const FitRanking ranking = rank_catalog(req);
  for (const char* id : {"google/gemma-2-9b-it", "google/gemma-2-9b", "meta-llama/Llama-3.2-3B-Instruct"}) {
    const RankedModel* ranked = nullptr;
    for (const auto& r : ranking.fits)
      if (r.id == id) ranked = &r;
    ASSERT_NE(ranked, nullptr) << id;
    const SourceFacts facts = catalog_facts(id);
    EXPECT_EQ(ranked->params, facts.params->total_params);
    const FitResult single = fit(req, facts);  // kept: find_option returns a reference into it
    const FitOption& own = find_option(single.options, ranked->best.precision, FitMode::kInference);
    EXPECT_EQ(ranked->best.process_peak_bytes, own.process_peak_bytes) << id;
    EXPECT_EQ(ranked->best.max_context, own.max_context) << id;
    EXPECT_EQ(ranked->best.max_batch, own.max_batch) << id;
    EXPECT_EQ(ranked->best.fits, own.fits) << id;
  }
}

TEST(FitPlan, SmallBudgetVersusLargeBudget) {
  const SourceFacts tiny = catalog_facts("TinyLlama/TinyLlama-1.1B-Chat-v1.0");
  // 2 GiB: the fp16 weights alone are 2.05 GiB.
  auto small = fit(request_with(uint64_t{2} << 30), tiny).options;
  ASSERT_EQ(small.size(), 8u);
  for (const auto& o : small) {
    EXPECT_FALSE(o.fits) << o.precision << " " << fit_mode_name(o.mode);
    EXPECT_EQ(o.max_context, 0u);
    EXPECT_EQ(o.max_batch, 0u);
    EXPECT_GE(o.gpus_needed, 2u);
    EXPECT_LT(o.headroom_bytes, 0);
  }
  // 141 GB (an H200): everything fits, inference up to the model's 2048 positions.
  auto large = fit(request_with(default_gpu().memory_bytes), tiny).options;
  for (const auto& o : large) {
    EXPECT_TRUE(o.fits) << o.precision << " " << fit_mode_name(o.mode);
    EXPECT_EQ(o.gpus_needed, 1u);
    EXPECT_GT(o.max_batch, 1u);
    EXPECT_GT(o.headroom_bytes, 0);
  }
  const auto& fp16 = find_option(large, "fp16", FitMode::kInference);
  EXPECT_EQ(fp16.context_cap, 2048u - 14u);
  EXPECT_EQ(fp16.max_context, fp16.context_cap);
  EXPECT_TRUE(fp16.context_capped);
  // fp32 needs more than fp16 at the same context, and full fine-tuning more than LoRA.
  EXPECT_GT(find_option(large, "fp32", FitMode::kInference).process_peak_bytes, fp16.process_peak_bytes);
  EXPECT_GT(find_option(large, "bf16", FitMode::kFull).process_peak_bytes, find_option(large, "bf16", FitMode::kLora).process_peak_bytes);
}

TEST(FitPlan, SeveralGpusSplitTheFootprint) {
  const SourceFacts llama70b = catalog_facts("meta-llama/Llama-3.1-70B");
  FitRequest r = request_with(uint64_t{80} << 30);
  const FitOption one = find_option(fit(r, llama70b).options, "fp16", FitMode::kInference);
  EXPECT_FALSE(one.fits);
  EXPECT_EQ(one.gpus_needed, 2u);
  r.gpus = static_cast<int64_t>(one.gpus_needed);
  const FitOption two = find_option(fit(r, llama70b).options, "fp16", FitMode::kInference);
  EXPECT_TRUE(two.fits);
  EXPECT_EQ(two.process_peak_bytes, one.process_peak_bytes);
  EXPECT_LT(two.per_gpu_bytes, one.per_gpu_bytes);
  r.gpus = 0;
  try {
    fit(r, llama70b);
    FAIL() << "no error for 0 GPUs";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "gpus");
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
  }
}

// The same search for llama.cpp's knobs: per scheme, fewer bits need less memory and leave more context; the -ngl
// it reports fits and one more layer does not, as the seam's own estimate says.
TEST(FitPlan, LlamaCppMoreBitsNeedMoreMemory) {
  const uint64_t budget = uint64_t{2} << 30;
  const FitResult r = fit(request_with(budget, "llamacpp"), catalog_facts("TinyLlama/TinyLlama-1.1B-Chat-v1.0"));
  EXPECT_EQ(r.architecture, "llama");
  std::vector<FitOption> opts;
  for (const char* scheme : {"F16", "Q8_0", "Q4_K_M", "Q2_K"}) opts.push_back(find_option(r.options, scheme, FitMode::kInference));
  for (size_t i = 1; i < opts.size(); ++i) {
    EXPECT_LT(opts[i].weight_bytes, opts[i - 1].weight_bytes);
    EXPECT_GE(opts[i].max_context, opts[i - 1].max_context);
    EXPECT_TRUE(opts[i].weights_predicted);
  }
  // F16 (2.05 GiB of weights) cannot fit every layer in 2 GiB
  EXPECT_FALSE(opts[0].fits);
  ASSERT_GE(opts[0].max_gpu_layers, 0);
  EXPECT_LE(llamacpp_peak("F16", opts[0].max_gpu_layers), budget);
  EXPECT_GT(llamacpp_peak("F16", opts[0].max_gpu_layers + 1), budget);
  // Q4_K_M fits whole, so every layer is the answer
  EXPECT_TRUE(opts[2].fits);
  EXPECT_EQ(opts[2].max_gpu_layers, static_cast<int64_t>(opts[2].layers) + 1);
}

// A MoE model too large for the GPU: the smallest --n-cpu-moe fit reports fits with every layer on the GPU and one
// layer fewer in host memory does not, as the seam's own estimate says; a dense model has no such answer.
TEST(FitPlan, LlamaCppSmallestNCpuMoeFits) {
  const uint64_t budget = uint64_t{8} << 30;
  const FitResult r = fit(request_with(budget, "llamacpp"), catalog_facts("Qwen/Qwen3-30B-A3B"));
  const FitOption& q4 = find_option(r.options, "Q4_K_M", FitMode::kInference);
  EXPECT_FALSE(q4.fits);
  ASSERT_TRUE(q4.min_n_cpu_moe.has_value());
  const int64_t n = *q4.min_n_cpu_moe;
  ASSERT_GT(n, 0);
  ASSERT_LT(n, static_cast<int64_t>(q4.layers));
  auto peak = [&](int64_t n_cpu_moe) {
    EstimateRequest e;
    e.source_facts = std::make_shared<const SourceFacts>(catalog_facts("Qwen/Qwen3-30B-A3B"));
    e.engine = "llamacpp";
    e.workload.quant = "Q4_K_M";
    e.workload.n_cpu_moe = n_cpu_moe;
    e.gpu_profile = default_gpu();
    return estimate(e).estimate.process_peak_bytes;
  };
  const uint64_t budget_bytes = request_with(budget, "llamacpp").gpu.budget_bytes();
  EXPECT_LE(peak(n), budget_bytes);
  EXPECT_GT(peak(n - 1), budget_bytes);
  // fewer bits keep more layers' experts on the GPU
  EXPECT_LT(*find_option(r.options, "Q2_K", FitMode::kInference).min_n_cpu_moe, n);
  const FitResult dense = fit(request_with(budget, "llamacpp"), catalog_facts("TinyLlama/TinyLlama-1.1B-Chat-v1.0"));
  for (const auto& o : dense.options) EXPECT_FALSE(o.min_n_cpu_moe.has_value()) << o.precision;
}

// max_context agrees with `llmem estimate`: the estimate at max_context fits, at max_context + 1 it does not.
TEST(CliFit, MaxContextIsConsistentWithEstimate) {
  const std::string model = "meta-llama/Llama-3.1-8B", gpu = "RTX-4090";
  CliRun r = run_llmem("fit " + model + " --gpu " + gpu + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  ASSERT_EQ(j["options"].size(), 8u);
  int checked_edges = 0;
  for (const auto& o : j["options"]) {
    ASSERT_TRUE(o.contains("precision") && o.contains("mode") && o.contains("fits") && o.contains("max_context"));
    const std::string mode = o["mode"], precision = o["precision"];
    const uint64_t m = o["max_context"];
    auto estimate_fits = [&](uint64_t ctx) {
      std::string args = "estimate " + model + " --gpu " + gpu + " --json ";
      if (mode == "inference") args += "--dtype " + precision + " --prompt " + std::to_string(ctx) + " --new-tokens 14";
      else if (mode == "qlora") args += "--train qlora --lora-targets all-linear --seq " + std::to_string(ctx);
      else args += "--train " + mode + " --precision " + precision + " --seq " + std::to_string(ctx);
      CliRun e = run_llmem(args);
      EXPECT_EQ(e.exit_code, 0) << e.err;
      return json::parse(e.out)["fits"].get<bool>();
    };
    if (m == 0) {
      EXPECT_FALSE(o["fits"].get<bool>());
      EXPECT_FALSE(estimate_fits(1)) << mode << " " << precision;
      continue;
    }
    EXPECT_TRUE(estimate_fits(m)) << mode << " " << precision << " at " << m;
    if (!o["context_capped"].get<bool>()) {
      EXPECT_FALSE(estimate_fits(m + 1)) << mode << " " << precision << " at " << m + 1;
      ++checked_edges;
    }
  }
  EXPECT_GE(checked_edges, 2);  // fp16/bf16 inference at least are limited by memory on a 24 GiB card
}

TEST(CliFit, TextTableHasEveryOption) {
  CliRun r = run_llmem("fit microsoft/phi-2 --gpu RTX-4090");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"inference", "fp32", "bf16", "fp16", "full", "lora", "amp-bf16", "Max context", "Headroom", "needed",
                        "GPUs needed without ~", "budget 23.49 GiB: 23.99 GiB less a 0.50 GiB reserve"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  // full fine-tuning's GPUs needed come from the per-rank model (inference and LoRA fit one GPU): nothing approximated
  EXPECT_EQ(r.out.find("~ an approximation"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.substr(0, r.out.find("GPUs needed without")).find('~'), std::string::npos) << r.out;
}

TEST(CliFit, RankingWithoutSourceIsSortedAndFits) {
  CliRun r = run_llmem("fit --vram 24GiB --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["gpu"]["memory_bytes"].get<uint64_t>(), uint64_t{24} << 30);
  ASSERT_GT(j["models"].size(), 10u);
  uint64_t prev = UINT64_MAX;
  bool tiny = false;
  for (const auto& m : j["models"]) {
    EXPECT_TRUE(m["fits"].get<bool>()) << m["model"];
    EXPECT_LE(m["params"].get<uint64_t>(), prev);
    prev = m["params"];
    EXPECT_LE(m["process_peak_bytes"].get<uint64_t>(), uint64_t{24} << 30);
    EXPECT_GE(m["headroom_bytes"].get<int64_t>(), 0);
    EXPECT_GT(m["max_context"].get<uint64_t>(), 0u);
    EXPECT_NE(m["precision"], "fp32");
    tiny = tiny || m["model"] == "TinyLlama/TinyLlama-1.1B-Chat-v1.0";
  }
  EXPECT_TRUE(tiny);
  bool big = false;
  for (const auto& m : j["does_not_fit"]) {
    EXPECT_FALSE(m["fits"].get<bool>());
    big = big || m["model"] == "meta-llama/Llama-3.1-70B";
  }
  EXPECT_TRUE(big);

  CliRun text = run_llmem("fit --vram 24GiB");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("TinyLlama/TinyLlama-1.1B-Chat-v1.0"), std::string::npos);
  EXPECT_NE(text.out.find("Does not fit:"), std::string::npos);
}

TEST(CliFit, VramWinsOverTheGpuSize) {
  CliRun r = run_llmem("fit TinyLlama/TinyLlama-1.1B-Chat-v1.0 --gpu RTX-4090 --vram 48GiB --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["gpu"]["memory_bytes"].get<uint64_t>(), uint64_t{48} << 30);
  EXPECT_EQ(j["gpu"]["name"], "RTX-4090");
}

TEST(CliFit, BadVramIsAOneLineError) {
  for (const char* v : {"abc", "0", "=-24GiB", "0GiB", "24XB", "''", "' '"}) {
    CliRun r = run_llmem(std::string("fit microsoft/phi-2 --vram") + (v[0] == '=' ? "" : " ") + v);
    expect_one_line_error(r, "--vram");
  }
  CliRun r = run_llmem("fit --vram lots");
  expect_one_line_error(r, "not a positive memory size");
}

TEST(CliFit, UnknownGpuSuggestsClosestNames) {
  CliRun r = run_llmem("fit microsoft/phi-2 --gpu RTX-409");
  expect_one_line_error(r, "did you mean");
  EXPECT_NE(r.err.find("RTX-4090"), std::string::npos) << r.err;
}

// --gpu auto reads the GPU through NVML: here the fake NVML of tests/fake_nvml, scripted as one 24 GiB card.
TEST(CliFit, GpuAutoReadsTheCardThroughNvml) {
  TempDir tmp;
  std::ofstream(tmp.file("script.json")) << R"({"driver_version": "550.54.15", "gpus": [
      {"name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-fake-4090", "total_mib": 24564, "reserved_mib": 300, "base_used_mib": 0}]})";
  std::filesystem::create_directories(tmp.file("state"));
  const std::string env = std::string("LLMEM_NVML_LIBRARY='") + FAKE_NVML_LIBRARY + "' FAKE_NVML_SCRIPT='" +
                          tmp.file("script.json") + "' FAKE_NVML_STATE_DIR='" + tmp.file("state") + "' ";
  CliRun r = run_llmem("fit microsoft/phi-2 --gpu auto --json", env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["gpu"]["memory_bytes"].get<uint64_t>(), 24564ull << 20);
  // what NVML does not report free (its driver reserve here) is in use; the default reserve comes on top
  EXPECT_EQ(j["gpu"]["in_use_bytes"].get<uint64_t>(), 300ull << 20);
  EXPECT_EQ(j["gpu"]["budget_bytes"].get<uint64_t>(), (24564ull - 300 - 512) << 20);
  EXPECT_EQ(j["gpu"]["count"], 1);
  EXPECT_NE(j["gpu"]["display_name"].get<std::string>().find("RTX 4090"), std::string::npos);
  // Without a driver: one clear line, exit 1 (the environment failed, not the input).
  CliRun none = run_llmem("fit microsoft/phi-2 --gpu auto", "LLMEM_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1");
  EXPECT_EQ(none.exit_code, 1) << none.err;
  EXPECT_NE(none.err.find("no NVIDIA driver"), std::string::npos) << none.err;
}

// --gpu auto takes every GPU NVML finds, with what is free on each now (a desktop's display, other processes), and
// plans each as the one with the least budget.
TEST(CliFit, GpuAutoUsesEveryGpuAndItsFreeMemory) {
  TempDir tmp;
  std::ofstream(tmp.file("script.json")) << R"({"driver_version": "550.54.15", "gpus": [
      {"name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-a", "total_mib": 24564, "reserved_mib": 0, "base_used_mib": 1024},
      {"name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-b", "total_mib": 24564, "reserved_mib": 0, "base_used_mib": 3072}]})";
  std::filesystem::create_directories(tmp.file("state"));
  const std::string env = std::string("LLMEM_NVML_LIBRARY='") + FAKE_NVML_LIBRARY + "' FAKE_NVML_SCRIPT='" +
                          tmp.file("script.json") + "' FAKE_NVML_STATE_DIR='" + tmp.file("state") + "' ";
  CliRun r = run_llmem("fit microsoft/phi-2 --gpu auto --reserve 256MiB --json", env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["gpu"]["count"], 2);
  EXPECT_EQ(j["gpu"]["in_use_bytes"].get<uint64_t>(), 3072ull << 20);  // GPU 1, the least free
  EXPECT_EQ(j["gpu"]["budget_bytes"].get<uint64_t>(), (24564ull - 3072 - 256) << 20);
  EXPECT_NE(j["gpu"]["display_name"].get<std::string>().find("GPU 1, the least free of 2"), std::string::npos) << j["gpu"];
  // --gpus beyond what NVML finds is refused; fewer is fine
  expect_one_line_error(run_llmem("fit microsoft/phi-2 --gpu auto --gpus 3", env), "--gpus 3 but NVML finds 2 GPUs");
  EXPECT_EQ(run_llmem("fit microsoft/phi-2 --gpu auto --gpus 1", env).exit_code, 0);
  // llama.cpp's own split is not modelled: planned for one of the GPUs found, and said
  CliRun llama = run_llmem("fit TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_0 --gpu auto", env);
  ASSERT_EQ(llama.exit_code, 0) << llama.err;
  EXPECT_NE(llama.out.find("note: 2 GPUs, but fit does not search llamacpp's split over several GPUs"), std::string::npos)
      << llama.out;
}

TEST(CliFit, BadCountsAreErrors) {
  expect_one_line_error(run_llmem("fit microsoft/phi-2 --gpus 0"), "--gpus");
  expect_one_line_error(run_llmem("fit microsoft/phi-2 --prompt 0"), "--prompt");
}

TEST(CliFit, ListGpus) {
  CliRun r = run_llmem("fit --list-gpus");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("RTX-4090"), std::string::npos);
  EXPECT_GE(std::count(r.out.begin(), r.out.end(), '\n'), 26);
}

TEST(CliStudy, ChartFilesAreValidPngAndSvg) {
  TempDir tmp;
  const std::string prefix = tmp.file("study");
  CliRun r = run_llmem("study --chart '" + prefix + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string png = slurp(prefix + ".png"), svg = slurp(prefix + ".svg");
  ASSERT_GT(png.size(), 1000u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_TRUE(svg.rfind("<?xml", 0) == 0 || svg.rfind("<svg", 0) == 0) << svg.substr(0, 40);
  // The table is unchanged: the plain output, then the chart's paths.
  CliRun plain = run_llmem("study");
  ASSERT_EQ(plain.exit_code, 0);
  EXPECT_EQ(r.out.substr(0, plain.out.size()), plain.out);
  EXPECT_NE(r.out.find(prefix + ".png"), std::string::npos);
}

// Full fine-tuning over several GPUs is answered from the per-rank model: the sharding fit reports is the one with
// the most headroom of the five, its per-GPU figure is `llmem estimate --gpus 8 --sharding S`'s process peak, and
// GPUs needed is the fewest of 2, 4, 8, ... on which a sharding fits (and on half as many none does).
TEST(CliFit, FullTrainingOverSeveralGpusUsesTheBestSharding) {
  const std::string model = "meta-llama/Llama-3.1-8B", gpu = "A100-80GB";
  auto peak = [&](uint64_t gpus, const std::string& sharding) {
    CliRun e = run_llmem("estimate " + model + " --gpu " + gpu + " --train full --precision amp-bf16 --seq 512 --gpus " +
                         std::to_string(gpus) + " --sharding " + sharding + " --json");
    EXPECT_EQ(e.exit_code, 0) << e.err;
    return json::parse(e.out)["process_peak_bytes"].get<uint64_t>();
  };
  auto full_amp = [&](const std::string& extra) {
    CliRun r = run_llmem("fit " + model + " --gpu " + gpu + " --json" + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const json j = json::parse(r.out);
    for (const auto& o : j["options"])
      if (o["mode"] == "full" && o["precision"] == "amp-bf16") return o;
    ADD_FAILURE() << "no full amp-bf16 option";
    return json();
  };
  // one GPU: amp-bf16's fp32 master weights and AdamW states (about 159 GiB) do not fit 80 GB
  const json one = full_amp("");
  EXPECT_FALSE(one["fits"].get<bool>());
  EXPECT_FALSE(one.contains("sharding"));
  ASSERT_TRUE(one["gpus_needed_modelled"].get<bool>());
  EXPECT_FALSE(one["gpus_needed_approximate"].get<bool>());
  const uint64_t needed = one["gpus_needed"];
  const std::string needed_sharding = one["gpus_needed_sharding"];
  const uint64_t budget = uint64_t{80} * 1000 * 1000 * 1000 - (uint64_t{1} << 29);  // 80 GB less the 0.5 GiB reserve
  EXPECT_LE(peak(needed, needed_sharding), budget);
  if (needed > 2) {
    for (const char* s : {"ddp", "zero1", "zero2", "zero3", "fsdp"}) EXPECT_GT(peak(needed / 2, s), budget) << s;
  }
  // eight GPUs: fits per rank, under the sharding with the smallest per-rank peak, without the even split
  const json eight = full_amp(" --gpus 8");
  EXPECT_TRUE(eight["fits"].get<bool>());
  EXPECT_TRUE(eight["per_gpu_modelled"].get<bool>());
  EXPECT_FALSE(eight["per_gpu_approximate"].get<bool>());
  const std::string best = eight["sharding"];
  const uint64_t best_peak = peak(8, best);
  EXPECT_EQ(eight["per_gpu_bytes"].get<uint64_t>(), best_peak);
  for (const char* s : {"ddp", "zero1", "zero2", "zero3", "fsdp"}) EXPECT_LE(best_peak, peak(8, s)) << s;
  EXPECT_LT(best_peak, peak(8, "ddp"));  // ddp replicates everything: sharding saves memory
  // the text names the sharding and marks no figure of that row as approximate
  CliRun text = run_llmem("fit " + model + " --gpu " + gpu + " --gpus 8");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  std::string line;  // the row "full/<best> amp-bf16 ..." (the mode column pads to its width)
  std::istringstream rows(text.out);
  for (std::string l; std::getline(rows, l);)
    if (l.rfind("full/" + best + " ", 0) == 0 && l.find(" amp-bf16 ") != std::string::npos) line = l;
  ASSERT_FALSE(line.empty()) << text.out;
  EXPECT_EQ(line.find('~'), std::string::npos) << line;
}

// vLLM with no GPU named: every catalog card, smallest first, each the same answer as `fit --gpu` on it.
TEST(CliFit, VllmWithoutAGpuAnswersForEveryCatalogCard) {
  CliRun r = run_llmem("fit Qwen/Qwen3-8B --engine vllm --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["schema_version"], 1);
  EXPECT_EQ(j["engine"], "vllm");
  const json& gpus = j["gpus"];
  ASSERT_EQ(gpus.size(), gpu_catalog().size());
  uint64_t last = 0;
  bool some_start = false, some_do_not = false;
  for (const auto& g : gpus) {
    const uint64_t mem = g["gpu"]["memory_bytes"];
    EXPECT_GE(mem, last);
    last = mem;
    const bool starts = g["options"][0]["starts"];
    (starts ? some_start : some_do_not) = true;
  }
  EXPECT_TRUE(some_start);
  EXPECT_TRUE(some_do_not);  // an 8 GiB card does not hold Qwen3-8B's 16 GB of weights
  for (const char* name : {"L4", "H200"}) {
    CliRun one = run_llmem(std::string("fit Qwen/Qwen3-8B --engine vllm --json --gpu ") + name);
    ASSERT_EQ(one.exit_code, 0) << one.err;
    const json o = json::parse(one.out)["options"][0];
    bool found = false;
    for (const auto& g : gpus)
      if (g["gpu"]["name"] == name) {
        found = true;
        EXPECT_EQ(g["options"][0]["largest_max_model_len"], o["largest_max_model_len"]) << name;
        EXPECT_EQ(g["options"][0]["kv_cache_tokens"], o["kv_cache_tokens"]) << name;
        EXPECT_EQ(g["options"][0]["starts"], o["starts"]) << name;
      }
    EXPECT_TRUE(found) << name;
  }
  CliRun text = run_llmem("fit Qwen/Qwen3-8B --engine vllm");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("on every GPU of the catalog"), std::string::npos);
}
