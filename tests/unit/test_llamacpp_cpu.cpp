// The llama.cpp engine against llama.cpp itself, for the architectures checked on a machine without a GPU: real
// GGUFs written by llama.cpp 80fb11ac's own converter from random-weight checkpoints and quantised by its own
// llama-quantize (bench/gpu/llamacpp/make_checkpoint.py, a CPU build of that commit), dumped tensor by tensor
// (bench/data/llamacpp_gguf_tensors_cpu.jsonl), and the buffers a CPU build of llama.cpp logged when it ran them
// (bench/data/llamacpp_cpu_buffers.jsonl, bench/gpu/llamacpp/cpu_buffers.sh). Expected values are llama.cpp's.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "catalog_model.hpp"
#include "llmem/catalog.hpp"
#include "llmem/error.hpp"
#include "llmem/gguf.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/llamacpp.hpp"

namespace {

using nlohmann::json;
using namespace llmem;

const char* kTensorsFile = "llamacpp_gguf_tensors_cpu.jsonl";
const char* kRunsFile = "llamacpp_cpu_buffers.jsonl";

// The config a record's GGUF was converted from: the catalog's, with the record's overrides.
ArchModel record_config(const json& r) {
  const std::string id = r.at("catalog_id");
  auto entry = find_in_catalog(id);
  EXPECT_TRUE(entry.has_value()) << id;
  json cfg = json::parse(entry->config_json);
  for (const auto& [k, v] : r.at("overrides").items()) cfg[k] = v;
  return model_from_config(HfConfig::parse(cfg.dump(), id));
}

// A dumped GGUF header as llmem's reader would return it (metadata and tensors; no file).
GgufFile record_gguf(const json& r) {
  GgufFile g;
  g.file = r.at("file");
  for (const auto& [k, v] : r.at("metadata").items())
    if (!v.is_object()) g.metadata[k] = v;  // long arrays are summaries in the dump; llama.cpp's hparams are not
  for (const auto& t : r.at("tensors")) {
    TensorInfo ti;
    ti.name = t[0];
    auto dt = dtype_from_name(t[1].get<std::string>());
    EXPECT_TRUE(dt.has_value()) << t[1];
    ti.dtype = dt.value_or(DType::F32);
    const std::vector<uint64_t> ne = t[2];
    ti.shape.assign(ne.rbegin(), ne.rend());
    g.tensors.push_back(ti);
  }
  return g;
}

// The converter's output type (--outtype auto), which the float schemes stand for. The file type does not always
// say it: GPT-NeoX's converter writes none, and gpt-oss's is MOSTLY_MXFP4_MOE (38) for BF16 weights beside its
// MXFP4 experts (which a float scheme leaves as they are). The 2-D weights' type tells it.
std::string scheme_of_base(const json& r) {
  const json& counts = r.at("type_counts");
  return counts.contains("BF16") ? "BF16" : counts.contains("F32") && !counts.contains("F16") ? "F32" : "F16";
}

TEST(LlamaCppCpuData, PredictedFilesEqualRealOnesTensorByTensor) {
  const auto rows = test::bench_records(kTensorsFile);
  // models whose converted file llama.cpp's loader refuses (Qwen 1 at the pinned commit): llmem refuses to
  // predict them (RefusalsAreLlamaCpps), so their base dumps are not compared
  std::set<std::string> unloadable;
  for (const auto& r : rows)
    if (r.contains("error") && r.at("error").get<std::string>().find("key not found") != std::string::npos) unloadable.insert(r.at("model"));
  std::map<std::string, std::set<std::string>> per_arch;
  int compared = 0;
  for (const auto& r : rows) {
    if (r.contains("error")) continue;  // llama-quantize's refusals (RefusalsAreLlamaCpps)
    const std::string what = r.at("model").get<std::string>() + " " + r.at("scheme").get<std::string>();
    if (unloadable.count(r.at("model"))) {
      EXPECT_THROW(llamacpp::from_config(record_config(r), r.at("catalog_id")), Error) << what;
      continue;
    }
    const std::string scheme = r.at("scheme") == "base" ? scheme_of_base(r) : r.at("scheme").get<std::string>();
    llamacpp::Model m = llamacpp::from_config(record_config(r), r.at("catalog_id"));
    llamacpp::quantize(m, llamacpp::find_scheme(scheme));
    std::map<std::string, std::pair<std::string, json>> real;
    for (const auto& t : r.at("tensors")) real[t[0]] = {t[1], t[2]};
    EXPECT_EQ(m.tensors.size(), real.size()) << what;
    for (const auto& t : m.tensors) {
      auto it = real.find(t.name);
      ASSERT_NE(it, real.end()) << what << ": predicted " << t.name << " is not in the file";
      EXPECT_EQ(std::string(dtype_name(t.type)), it->second.first) << what << " " << t.name;
      EXPECT_EQ(json(t.ne), it->second.second) << what << " " << t.name;
    }
    EXPECT_EQ(m.weight_bytes(), r.at("tensor_data_bytes").get<uint64_t>()) << what;
    per_arch[r.at("architecture")].insert(r.at("scheme"));
    ++compared;
  }
  EXPECT_GE(compared, 100);
  // every architecture added for issue 19 that converts and loads at the pinned commit, base file and Q4_K_M
  for (const char* arch : {"gptneox", "phi2", "falcon", "bloom", "olmo2", "deepseek2"})
    for (const char* scheme : {"base", "Q4_K_M", "Q8_0", "Q2_K"})
      EXPECT_TRUE(per_arch[arch].count(scheme)) << arch << " " << scheme << ": no real file in the data";
  EXPECT_TRUE(per_arch["gpt-oss"].count("base") && per_arch["gpt-oss"].count("MXFP4_MOE"));
  // the schemes that need an importance matrix (made with one), on a GQA, an MHA and a fused-QKV model
  for (const char* arch : {"gptneox", "falcon", "olmo2"})
    for (const char* scheme : {"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "Q2_K_S"})
      EXPECT_TRUE(per_arch[arch].count(scheme)) << arch << " " << scheme << ": no real file in the data";
  for (const char* scheme : {"TQ1_0", "TQ2_0", "IQ3_S", "IQ3_M"}) EXPECT_TRUE(per_arch["olmo2"].count(scheme)) << scheme;
  EXPECT_TRUE(per_arch["deepseek2"].count("MXFP4_MOE"));
}

// What llama-quantize and the loader refused, llmem refuses with the same cause.
TEST(LlamaCppCpuData, RefusalsAreLlamaCpps) {
  int refusals = 0;
  for (const auto& r : test::bench_records(kTensorsFile)) {
    if (!r.contains("error")) continue;
    const std::string error = r.at("error");
    const std::string what = r.at("model").get<std::string>() + " " + r.at("scheme").get<std::string>();
    try {
      llamacpp::Model m = llamacpp::from_config(record_config(r), r.at("catalog_id"));
      llamacpp::quantize(m, llamacpp::find_scheme(r.at("scheme")));
      ADD_FAILURE() << what << ": llmem predicts a file llama.cpp refused (" << error << ")";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUnsupported) << what;
      const std::string msg = e.what();
      if (error.find("requantizing from type mxfp4 is disabled") != std::string::npos) {
        EXPECT_NE(msg.find("requantizing"), std::string::npos) << msg;
      }
      if (error.find("layer_norm_rms_epsilon") != std::string::npos) {
        EXPECT_NE(msg.find("layer_norm_rms_epsilon"), std::string::npos) << msg;
      }
    }
    ++refusals;
  }
  EXPECT_GE(refusals, 2);
}

// The graph builders against a CPU build of llama.cpp: the KV cache exactly, the CPU compute buffer to the log's
// two decimals, for every architecture with a real file, flash attention on and off, two ubatch sizes.
TEST(LlamaCppCpuData, GraphBuildersMatchACpuBuild) {
  std::map<std::string, json> base;
  for (const auto& r : test::bench_records(kTensorsFile))
    if (r.at("scheme") == "base" && !r.contains("error")) base[r.at("model")] = r;
  std::set<std::string> archs;
  int checked = 0;
  for (const auto& run : test::bench_records(kRunsFile)) {
    if (run.contains("error")) continue;
    const std::string model = run.at("model");
    ASSERT_TRUE(base.count(model)) << model << ": no dumped base file";
    const llamacpp::Model m = llamacpp::from_gguf(record_gguf(base[model]));
    llamacpp::RunOptions opt;
    opt.n_ctx = run.at("n_ctx");
    opt.n_ubatch = opt.n_batch = run.at("n_ubatch");
    opt.flash_attn = run.at("flash_attn") == "on" ? llamacpp::FlashAttn::kOn : llamacpp::FlashAttn::kOff;
    opt.type_k = opt.type_v = *dtype_from_name(run.at("cache_type").get<std::string>());
    const std::string what = model + " n_ctx " + std::to_string(opt.n_ctx) + " fa " + run.at("flash_attn").get<std::string>() +
                             " ub " + std::to_string(opt.n_ubatch) + " kv " + run.at("cache_type").get<std::string>();
    const double compute = static_cast<double>(llamacpp::cpu_compute_buffer_bytes(m, opt)) / (1 << 20);
    EXPECT_NEAR(compute, run.at("cpu_compute_mib").get<double>(), 0.0051) << what;
    // the KV cache of a run with every layer on the host: llmem's host KV component, unpadded as on the CPU
    opt.n_gpu_layers = 0;
    const Estimate e = llamacpp::estimate(m, opt, default_gpu());
    EXPECT_NEAR(static_cast<double>(test::component(e, "kv_cache (host)")) / (1 << 20), run.at("kv_mib").get<double>(), 0.0051)
        << what;
    archs.insert(m.hp.arch);
    ++checked;
  }
  EXPECT_GE(checked, 40);
  for (const char* arch : {"gptneox", "phi2", "falcon", "bloom", "olmo2", "deepseek2", "gpt-oss", "llama", "gemma2", "phi3",
                           "qwen3", "qwen3moe", "gpt2"})
    EXPECT_TRUE(archs.count(arch)) << arch << ": no CPU run";
}

}  // namespace
