// The estimate seam (estimate.hpp): the engine registry, requests in a user's words resolved with errors that name
// their field, the GPU of a request, and the CLI as a thin face over the same library call.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "fixtures/cli_run.hpp"
#include "llmem/catalog.hpp"
#include "llmem/estimate.hpp"
#include "llmem/estimate_report.hpp"
#include "llmem/field_error.hpp"
#include "llmem/llamacpp.hpp"
#include "llmem/llamacpp_options.hpp"
#include "llmem/units.hpp"

using nlohmann::json;
using namespace llmem;
using llmem::fixtures::CliRun;
using llmem::fixtures::run_llmem;

namespace {

std::shared_ptr<const SourceFacts> catalog_facts(const std::string& id) {
  auto e = find_in_catalog(id);
  if (!e) throw std::runtime_error("not in the catalog: " + id);
  return std::make_shared<const SourceFacts>(read_source_facts(catalog_source(*e)));
}

// The FieldError `call` throws (failing the test when it throws none).
template <typename Call>
FieldError field_error_of(Call call) {
  try {
    call();
  } catch (const FieldError& e) {
    return e;
  }
  ADD_FAILURE() << "no FieldError";
  return FieldError(ErrorKind::kUsage, "", "", "");
}

}  // namespace

TEST(EngineRegistry, ListsTheEnginesAndFindsThemByAlias) {
  std::vector<std::string> names;
  for (const Engine* e : engines()) names.push_back(e->name());
  EXPECT_EQ(names, (std::vector<std::string>{"transformers", "llamacpp", "vllm"}));
  EXPECT_EQ(find_engine("vLLM").name(), "vllm");
  EXPECT_EQ(find_engine("hf").name(), "transformers");
  EXPECT_EQ(find_engine("llama.cpp").name(), "llamacpp");
  EXPECT_EQ(find_engine("llama-cpp").name(), "llamacpp");
  EXPECT_TRUE(find_engine("transformers").weight_schemes().empty());
  // llama.cpp predicts files for llama-quantize's schemes
  bool q4km = false;
  for (const auto& s : find_engine("llamacpp").weight_schemes()) q4km = q4km || s.name == "Q4_K_M";
  EXPECT_TRUE(q4km);
}

TEST(EngineRegistry, UnknownEngineIsAUsageErrorNamingTheKnownOnes) {
  const FieldError e = field_error_of([] { find_engine("sglang"); });
  EXPECT_EQ(e.kind(), ErrorKind::kUsage);
  EXPECT_EQ(e.field(), "engine");
  EXPECT_EQ(std::string(e.what()), "unknown engine 'sglang' (transformers, llamacpp or vllm)");
  EXPECT_EQ(e.message_for("--engine"), "unknown --engine 'sglang' (transformers, llamacpp or vllm)");
  // the CLI words the same error with its flag
  const CliRun r = run_llmem("estimate microsoft/phi-2 --engine sglang");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "llmem: unknown --engine 'sglang' (transformers, llamacpp or vllm)\n");
}

// Each engine states the version its mechanisms were read from; its estimates say the same.
TEST(EngineRegistry, VersionIsWhatTheEstimatesSay) {
  for (const Engine* engine : engines()) {
    EstimateRequest r;
    r.source_facts = catalog_facts("TinyLlama/TinyLlama-1.1B-Chat-v1.0");
    r.engine = engine->name();
    r.workload.quant = "Q4_K_M";  // read by llama.cpp only
    const EstimateResult result = estimate(r);
    EXPECT_EQ(result.engine, engine->name());
    EXPECT_EQ(result.estimate.engine_version, engine->version()) << engine->name();
  }
}

// The request's llama.cpp defaults are llama.cpp's own (llamacpp::RunOptions, read from its source).
TEST(EstimateRequest, LlamaCppDefaultsAreLlamaCpps) {
  const Workload w = find_engine("llamacpp").resolve(WorkloadSpec{});
  const llamacpp::RunOptions run;
  EXPECT_EQ(w.n_ctx, run.n_ctx);
  EXPECT_EQ(w.n_batch, run.n_batch);
  EXPECT_EQ(w.n_ubatch, run.n_ubatch);
  EXPECT_EQ(w.n_gpu_layers, run.n_gpu_layers);
  EXPECT_EQ(w.cache_type_k, run.type_k);
  EXPECT_EQ(w.cache_type_v, run.type_v);
  EXPECT_EQ(w.n_parallel, run.n_parallel);
  EXPECT_EQ(w.flash_attn, FlashAttention::kAuto);
}

TEST(EstimateRequest, BadFieldsAreNamedByTheLibraryAndByTheCliFlag) {
  WorkloadSpec spec;
  spec.n_ctx = 0;
  FieldError e = field_error_of([&] { find_engine("llamacpp").resolve(spec); });
  EXPECT_EQ(e.field(), "n_ctx");
  EXPECT_EQ(std::string(e.what()), "n_ctx must be a positive integer, got 0");
  CliRun r = run_llmem("estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_0 --ctx 0");
  EXPECT_EQ(r.err, "llmem: --ctx must be a positive integer, got 0\n");

  spec = WorkloadSpec{};
  spec.cache_type_v = "q3_k";
  e = field_error_of([&] { find_engine("llamacpp").resolve(spec); });
  EXPECT_EQ(e.field(), "cache_type_v");
  r = run_llmem("fit microsoft/phi-2 --engine llamacpp --cache-type q3_k");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("llmem: --cache-type 'q3_k' is not a llama.cpp cache type", 0), 0u) << r.err;

  spec = WorkloadSpec{};
  spec.train = "sometimes";
  e = field_error_of([&] { find_engine("transformers").resolve(spec); });
  EXPECT_EQ(e.field(), "train");
  // a request with no source at all
  e = field_error_of([] { estimate(EstimateRequest{}); });
  EXPECT_EQ(e.field(), "source");
}

// vLLM behind the seam: the request's fields reach the engine, its start-up figures come back in
// Estimate::serving, and its bad values are FieldErrors the CLI words with vLLM's flag names.
TEST(EstimateRequest, VllmFiguresAndFieldErrors) {
  EstimateRequest r;
  r.source_facts = catalog_facts("meta-llama/Llama-3.1-8B");
  r.engine = "vllm";
  r.gpu.name = "RTX-3090";
  r.workload.vllm_version = "0.6.4";
  r.workload.max_model_len = 20000;
  const Estimate e = estimate(r).estimate;
  ASSERT_TRUE(e.serving.has_value());
  // vllm-project/vllm#10517 (0.6.4, RTX 3090, max_model_len 20000): "total_gpu_memory=23.58GiB",
  // "Loading model weights took 14.9888 GB" (GiB by its arithmetic)
  EXPECT_NEAR(static_cast<double>(e.serving->total_memory_bytes) / (1ull << 30), 23.58, 0.005);
  EXPECT_EQ(e.serving->total_memory_basis, "torch");
  EXPECT_NEAR(static_cast<double>(e.weight_bytes) / (1ull << 30), 14.9888, 0.0001);
  EXPECT_TRUE(e.serving->refusal.empty());
  EXPECT_EQ(e.engine_version, "vLLM 0.6.4");

  WorkloadSpec spec;
  spec.vllm_version = "0.9";
  FieldError fe = field_error_of([&] { find_engine("vllm").resolve(spec); });
  EXPECT_EQ(fe.field(), "vllm_version");
  CliRun cli = run_llmem("estimate meta-llama/Llama-3.1-8B --engine vllm --gpu-memory-utilization 1.5", "HF_HUB_OFFLINE=1");
  EXPECT_EQ(cli.exit_code, 2);
  EXPECT_EQ(cli.err, "llmem: --gpu-memory-utilization must be in (0, 1], got 1.5\n");
  cli = run_llmem("estimate meta-llama/Llama-3.1-8B --engine vllm --kv-cache-dtype int4", "HF_HUB_OFFLINE=1");
  EXPECT_EQ(cli.exit_code, 2);
  EXPECT_EQ(cli.err.rfind("llmem: --kv-cache-dtype must be auto, fp8", 0), 0u) << cli.err;
}

// llama.cpp's option rules (common/arg.cpp, llama-context.cpp at the pinned commit).
TEST(LlamaCppOptions, CacheTypesFlashAttentionAndTheBatchClamp) {
  EXPECT_EQ(llamacpp::cache_type_from_name("Q8_0"), DType::Q8_0);
  EXPECT_EQ(llamacpp::cache_type_from_name("iq4_nl"), DType::IQ4_NL);
  EXPECT_FALSE(llamacpp::cache_type_from_name("q4_k").has_value());
  EXPECT_EQ(llamacpp::cache_type_names(), "f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1");
  EXPECT_EQ(llamacpp::flash_attn_from_name("1"), llamacpp::FlashAttn::kOn);
  EXPECT_EQ(llamacpp::flash_attn_from_name("false"), llamacpp::FlashAttn::kOff);
  EXPECT_FALSE(llamacpp::flash_attn_from_name("yes").has_value());
  EXPECT_EQ(llamacpp::effective_n_ubatch(256, 512), 256u);
  EXPECT_EQ(llamacpp::effective_n_ubatch(2048, 512), 512u);
  // --batch 256 caps the physical batch of a request too
  WorkloadSpec spec;
  spec.batch = 256;
  EXPECT_EQ(find_engine("llamacpp").resolve(spec).n_ubatch, 256u);
  EXPECT_EQ(llamacpp::fit_schemes().front(), "F16");
  EXPECT_EQ(llamacpp::fit_schemes().back(), "Q2_K");
}

TEST(GpuSpec, MemorySizeWinsAndSaysWhereItCameFrom) {
  GpuSpec spec;
  spec.memory = "24GiB";
  spec.memory_origin = "--vram 24GiB";
  GpuProfile g = resolve_gpu(spec);
  EXPECT_EQ(g.memory_bytes, uint64_t{24} << 30);
  EXPECT_EQ(g.name, "custom");
  EXPECT_EQ(g.display_name, "a GPU of --vram 24GiB");
  EXPECT_EQ(g.cuda_context_bytes, default_gpu().cuda_context_bytes);  // the reference GPU's overhead
  spec.name = "RTX-4090";
  g = resolve_gpu(spec);
  EXPECT_EQ(g.name, "RTX-4090");
  EXPECT_EQ(g.cuda_context_bytes, find_gpu("RTX-4090").cuda_context_bytes);
  EXPECT_EQ(g.memory_bytes, uint64_t{24} << 30);
  spec.memory = "lots";
  EXPECT_EQ(field_error_of([&] { resolve_gpu(spec); }).field(), "memory");
}

// The CUDA context of a card other than the reference (the H200, where it was measured): the H200's figure with its
// per-thread stack reservation (132 SMs x 2,048 threads x 1 KiB) and what its first kernels add replaced by the
// card's. Numbers by hand from the catalog's sources (RTX 3090: 82 SMs, compute capability 8.6, 1,536 threads per SM).
TEST(GpuCatalog, ContextHoldsTheCardsOwnStackReservation) {
  const GpuProfile& h200 = find_gpu("H200");
  EXPECT_EQ(h200.resident_threads, 132u * 2048);
  EXPECT_EQ(find_gpu("H100-80GB-HBM3").cuda_context_bytes, h200.cuda_context_bytes);  // as many threads
  const GpuProfile& g = find_gpu("RTX-3090");
  EXPECT_EQ(compute_capability(g), 86);
  EXPECT_EQ(g.resident_threads, 82u * 1536);
  // what the first kernels add (166 MiB on an H100, as many threads as the H200) scales with the threads too
  const uint64_t first = 174063616, first_3090 = static_cast<uint64_t>(174063616.0 * (82 * 1536) / (132 * 2048));
  EXPECT_EQ(first_kernels_bytes(g), first_3090);
  EXPECT_EQ(first_kernels_bytes(h200), first);
  EXPECT_EQ(g.cuda_context_bytes, h200.cuda_context_bytes - (132u * 2048 - 82u * 1536) * 1024 - (first - first_3090));
  EXPECT_EQ(stack_reservation_delta(g), -static_cast<int64_t>((132u * 2048 - 82u * 1536) * 1024));
  EXPECT_NE(g.context_source.find("82 SMs x 1536 threads"), std::string::npos) << g.context_source;
  // A card whose threads are not known (the AMD MI300X) and a size without a card keep the H200's figure.
  EXPECT_EQ(find_gpu("MI300X").cuda_context_bytes, h200.cuda_context_bytes);
  EXPECT_EQ(compute_capability(find_gpu("MI300X")), 0);
  GpuSpec spec;
  spec.memory = "24GiB";
  EXPECT_EQ(compute_capability(resolve_gpu(spec)), 0);
}

// Every NVIDIA card of the catalog has its SM count and compute capability, and each is the figure of the line that
// names its source in data/gpu_sm_sources.jsonl.
TEST(GpuCatalog, SmCountsComeWithTheirSources) {
  std::ifstream f(std::string(LLMEM_SOURCE_DIR) + "/data/gpu_sm_sources.jsonl");
  ASSERT_TRUE(f.good());
  std::map<std::string, json> sources;
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) {
      json j = json::parse(line);
      sources[j.at("name")] = j;
    }
  for (const auto& g : gpu_catalog()) {
    ASSERT_TRUE(sources.count(g.name)) << g.name;
    const json& s = sources.at(g.name);
    EXPECT_FALSE(s.at("source_url").get<std::string>().empty()) << g.name;
    if (s.at("vendor") != "nvidia") continue;
    EXPECT_EQ(g.sm_count, s.at("sm_count").get<uint64_t>()) << g.name;
    const std::string cc = s.at("compute_capability");
    EXPECT_EQ(compute_capability(g), std::stoi(cc.substr(0, cc.find('.'))) * 10 + std::stoi(cc.substr(cc.find('.') + 1)))
        << g.name;
    EXPECT_GT(g.resident_threads, 0u) << g.name;
  }
}

TEST(MeasuredComparison, ErrorIsRelativeToTheMeasurement) {
  Estimate e;
  e.process_peak_bytes = 110 * kMiB;
  const MeasuredComparison c = compare_with_measurement(e, 100 * kMiB);
  ASSERT_TRUE(c.error_percent.has_value());
  EXPECT_DOUBLE_EQ(*c.error_percent, 10.0);
  EXPECT_FALSE(compare_with_measurement(e, 0).error_percent.has_value());
}

// The CLI is a face over the library: the same request through the library and through `llmem estimate --json`
// gives the same document, for each engine.
TEST(EstimateSeam, LibraryAndCliGiveTheSameEstimate) {
  EstimateRequest hf;
  hf.source = "mistralai/Mistral-7B-v0.1";
  hf.workload.prompt_tokens = 8192;
  hf.workload.batch = 4;
  hf.gpu.name = "A100-80GB";
  CliRun cli = run_llmem("estimate mistralai/Mistral-7B-v0.1 --prompt 8192 --batch 4 --gpu A100-80GB --json", "HF_HUB_OFFLINE=1");
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(report::estimate_json(estimate(hf)), json::parse(cli.out));

  EstimateRequest llama;
  llama.source = "TinyLlama/TinyLlama-1.1B-Chat-v1.0";
  llama.engine = "llama.cpp";
  llama.workload.quant = "q8_0";
  llama.workload.n_ctx = 32768;
  llama.workload.n_gpu_layers = 10;
  llama.workload.cache_type_k = llama.workload.cache_type_v = "q8_0";
  llama.workload.flash_attn = "on";
  llama.list_tensors = true;
  cli = run_llmem(
      "estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llama.cpp --quant q8_0 --ctx 32768 --ngl 10 --cache-type-k q8_0 "
      "--cache-type-v q8_0 --flash-attn on --tensors --json",
      "HF_HUB_OFFLINE=1");
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  const EstimateResult result = estimate(llama);
  EXPECT_EQ(report::estimate_json(result), json::parse(cli.out));
  EXPECT_EQ(result.estimate.weights_scheme, "Q8_0");
  EXPECT_EQ(result.estimate.architecture, "llama");
  EXPECT_FALSE(result.estimate.weight_tensors.empty());
}
