// `llmem fit` timings: the guided search against the reference search (plan.hpp), on one thread so that the
// figures compare searches rather than cores, and with the machine's threads as the CLI runs it. The unit tests
// count estimates instead (tests/unit/test_fit.cpp); wall times belong here.
//
//   build/bench/bench_fit --benchmark_filter=Qwen3
#include <benchmark/benchmark.h>

#include <string>

#include "llmem/catalog.hpp"
#include "llmem/plan.hpp"

using namespace llmem;

namespace {

SourceFacts facts_of(const std::string& id) { return read_source_facts(catalog_source(*find_in_catalog(id))); }

FitRequest request(const std::string& gpu, FitSearch search, unsigned threads) {
  FitRequest r;
  r.gpu = find_gpu(gpu);
  r.search = search;
  r.threads = threads;
  return r;
}

void fit_model(benchmark::State& state, const std::string& model, const std::string& gpu, FitSearch search, unsigned threads) {
  const SourceFacts facts = facts_of(model);
  const FitRequest req = request(gpu, search, threads);
  uint64_t estimates = 0;
  for (auto _ : state) {
    FitResult r = fit(req, facts);
    estimates = r.estimates;
    benchmark::DoNotOptimize(r);
  }
  state.counters["estimates"] = static_cast<double>(estimates);
}

void rank(benchmark::State& state, uint64_t budget, FitSearch search, unsigned threads, int64_t gpus = 1) {
  FitRequest req = request("H200", search, threads);
  req.gpu.memory_bytes = budget;
  req.gpus = gpus;
  uint64_t estimates = 0;
  for (auto _ : state) {
    FitRanking r = rank_catalog(req);
    estimates = r.estimates;
    benchmark::DoNotOptimize(r);
  }
  state.counters["estimates"] = static_cast<double>(estimates);
}

// vLLM's fit on every catalog GPU (`llmem fit Qwen/Qwen3-30B-A3B --engine vllm`): the cards on the machine's threads
void every_gpu(benchmark::State& state, const std::string& model) {
  FitRequest req = request("H200", FitSearch::kGuided, 0);
  req.engine = "vllm";
  for (auto _ : state) {
    auto r = fit_every_gpu(req, model);
    benchmark::DoNotOptimize(r);
  }
}

constexpr uint64_t k24GiB = uint64_t{24} << 30;
constexpr uint64_t k80GiB = uint64_t{80} << 30;

}  // namespace

BENCHMARK_CAPTURE(fit_model, phi2_rtx4090_guided_1thread, "microsoft/phi-2", "RTX-4090", FitSearch::kGuided, 1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(fit_model, phi2_rtx4090_reference_1thread, "microsoft/phi-2", "RTX-4090", FitSearch::kReference, 1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(fit_model, Qwen3_30B_A3B_h200_guided_1thread, "Qwen/Qwen3-30B-A3B", "H200", FitSearch::kGuided, 1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(fit_model, Qwen3_30B_A3B_h200_reference_1thread, "Qwen/Qwen3-30B-A3B", "H200", FitSearch::kReference, 1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(fit_model, Qwen3_30B_A3B_h200_guided_all_threads, "Qwen/Qwen3-30B-A3B", "H200", FitSearch::kGuided, 0)->Unit(benchmark::kMillisecond)->UseRealTime();
// a quantised checkpoint: every probe of the searches replays its quantiser's tensor list (ReplayCache)
BENCHMARK_CAPTURE(fit_model, Qwen3_30B_A3B_FP8_h200_guided_1thread, "Qwen/Qwen3-30B-A3B-FP8", "H200", FitSearch::kGuided, 1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(rank, catalog_24GiB_guided_1thread, k24GiB, FitSearch::kGuided, 1)->Unit(benchmark::kMillisecond);
// the largest models' GPUs needed: per-GPU estimates of up to 64 GPUs (one replay routed to every GPU)
BENCHMARK_CAPTURE(rank, catalog_80GiB_guided_1thread, k80GiB, FitSearch::kGuided, 1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(rank, catalog_24GiB_reference_1thread, k24GiB, FitSearch::kReference, 1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(rank, catalog_24GiB_guided_all_threads, k24GiB, FitSearch::kGuided, 0)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(rank, catalog_80GiB_guided_all_threads, k80GiB, FitSearch::kGuided, 0)->Unit(benchmark::kMillisecond)->UseRealTime();
// every probe of the searches placed over 8 GPUs (device_map="auto"), one replay routed to each GPU
BENCHMARK_CAPTURE(rank, catalog_80GiB_8gpus_guided_all_threads, k80GiB, FitSearch::kGuided, 0, 8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(every_gpu, vllm_Qwen3_30B_A3B_all_threads, "Qwen/Qwen3-30B-A3B")->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
