// The llama.cpp engine against llama.cpp itself: tensor types of real quantised files (made on an H200 machine
// with llama.cpp 80fb11ac's own converter and llama-quantize, bench/data/llamacpp_gguf_tensors.jsonl) and the
// buffer sizes llama.cpp logged when it loaded them (bench/data/llamacpp_buffers_h200.jsonl). Expected values are
// llama.cpp's, never llmem's earlier output.
#include <gtest/gtest.h>


#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <set>

#include <nlohmann/json.hpp>

#include "fixtures/cli_run.hpp"
#include "fixtures/gguf_writer.hpp"
#include "llmem/catalog.hpp"
#include "llmem/error.hpp"
#include "llmem/gguf.hpp"
#include "llmem/gguf_names.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/llamacpp.hpp"

namespace {

using nlohmann::json;
using namespace llmem;

// The harness's model names (bench/gpu/llamacpp/common.py) -> catalog id and config overrides.
struct HarnessModel {
  std::string catalog_id;
  int layers = 0;  // num_hidden_layers override, 0 = none
};
const std::map<std::string, HarnessModel>& harness_models() {
  static const std::map<std::string, HarnessModel> m = {
      {"TinyLlama-1.1B", {"TinyLlama/TinyLlama-1.1B-Chat-v1.0"}},
      {"Qwen2.5-0.5B", {"Qwen/Qwen2.5-0.5B"}},
      {"gemma-2-2b", {"google/gemma-2-2b"}},
      {"Phi-3-mini-4k", {"microsoft/Phi-3-mini-4k-instruct"}},
      {"Qwen3-30B-A3B-2L", {"Qwen/Qwen3-30B-A3B", 2}},
      {"Qwen3-30B-A3B-4L", {"Qwen/Qwen3-30B-A3B", 4}},
      {"gpt2", {"openai-community/gpt2"}},
  };
  return m;
}

llamacpp::Model predicted(const std::string& harness_name) {
  const HarnessModel& hm = harness_models().at(harness_name);
  auto entry = find_in_catalog(hm.catalog_id);
  if (!entry) throw std::runtime_error("not in the catalog: " + hm.catalog_id);
  json cfg = json::parse(entry->config_json);
  if (hm.layers) cfg["num_hidden_layers"] = hm.layers;
  ArchModel am = model_from_config(HfConfig::parse(cfg.dump(), hm.catalog_id));
  return llamacpp::from_config(am, hm.catalog_id);
}

// The model a measurement record was made from: the record's catalog config ("Org__Name") with its overrides, as
// the harness built it.
llamacpp::Model predicted_of(const json& r) {
  std::string id = r.at("catalog_id");
  if (const auto at = id.find("__"); at != std::string::npos) id.replace(at, 2, "/");
  auto entry = find_in_catalog(id);
  if (!entry) throw std::runtime_error("not in the catalog: " + id);
  json cfg = json::parse(entry->config_json);
  const json overrides = r.value("overrides", json::object());  // named: items() does not own a temporary
  for (const auto& [k, v] : overrides.items()) cfg[k] = v;
  return llamacpp::from_config(model_from_config(HfConfig::parse(cfg.dump(), id)), id);
}

std::vector<json> read_jsonl(const std::string& rel) {
  std::ifstream in(std::string(LLMEM_SOURCE_DIR) + "/" + rel);
  std::vector<json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

// The run a measurement row describes (bench/gpu/llamacpp/measure_llamacpp.py's llama-bench flags).
llamacpp::RunOptions run_of(const json& r) {
  llamacpp::RunOptions run;
  run.n_ctx = r.at("n_ctx");
  run.n_batch = r.at("n_batch");
  run.n_ubatch = r.at("n_ubatch");
  run.flash_attn = r.at("flash_attn") == "on" ? llamacpp::FlashAttn::kOn : llamacpp::FlashAttn::kOff;
  run.type_k = *dtype_from_name(r.at("cache_type_k").get<std::string>());
  run.type_v = *dtype_from_name(r.at("cache_type_v").get<std::string>());
  const int64_t ngl = r.at("n_gpu_layers");
  run.n_gpu_layers = ngl >= 900 ? -1 : ngl;
  // tensors kept in host memory beyond -ngl (llamacpp_offload_h100.jsonl): llama-bench's -ncmoe, -ot, -mmp 0
  run.cpu_moe_layers = r.value("n_cpu_moe", 0);
  const std::string ot = r.value("override_tensor", std::string());
  if (!ot.empty()) run.tensor_overrides = {{ot.substr(0, ot.find('=')), ot.substr(ot.find('=') + 1)}};
  run.mmap = !r.value("no_mmap", false);
  return run;
}

// The rows of both llama.cpp data files whose log has the CUDA buffers, for the harness's models.
std::vector<json> measured_buffer_rows() {
  auto rows = read_jsonl("bench/data/llamacpp_buffers_h200.jsonl");
  for (const char* more : {"bench/data/llamacpp_memory_h200.jsonl", "bench/data/llamacpp_offload_h100.jsonl",
                           "bench/data/llamacpp_arch_h100.jsonl", "bench/data/llamacpp_arch2_h100.jsonl",
                           "bench/data/llamacpp_iquant2_h100.jsonl", "bench/data/llamacpp_arch3_h200.jsonl",
                           "bench/data/llamacpp_host1_h200.jsonl", "bench/data/llamacpp_iquant4_h100.jsonl"}) {
    const auto extra = read_jsonl(more);
    rows.insert(rows.end(), extra.begin(), extra.end());
  }
  std::vector<json> kept;
  for (const auto& r : rows) {
    const json& lg = r.value("llama_log", json::object());
    // -ngl 0 leaves no CUDA model buffer, but a compute buffer for the ops the GPU takes over
    if (!lg.contains("compute_buffer_mib") || !lg["compute_buffer_mib"].contains("CUDA0")) continue;
    kept.push_back(r);
  }
  return kept;
}

std::map<std::string, double> components_mib(const Estimate& e) {
  std::map<std::string, double> c;
  for (const auto& x : e.components) c[x.name] += static_cast<double>(x.bytes) / (1 << 20);
  return c;
}

TEST(LlamaCppQuant, PredictedFilesEqualRealOnesTensorByTensor) {
  auto rows = read_jsonl("bench/data/llamacpp_gguf_tensors.jsonl");
  ASSERT_GE(rows.size(), 40u);
  // the i-quants llama-quantize makes without an importance matrix, and MXFP4_MOE, made on the GPU machine
  // (bench/gpu/runs/llama_iquant1.sh; the call ran out of device time before measuring their buffers)
  const auto iquants = read_jsonl("bench/data/llamacpp_iquant_h100_gguf_tensors.jsonl");
  ASSERT_GE(iquants.size(), 9u);
  rows.insert(rows.end(), iquants.begin(), iquants.end());
  // made on the GPU machine in 2026-12-06's calls (bench/gpu/runs/llama_combo2.sh, llama_iquant3.sh): gpt-oss cut to
  // 4 layers from make_checkpoint.py (base and MXFP4_MOE), TinyLlama cut to 4 layers in IQ1_S, IQ2_XXS (with an
  // importance matrix), IQ3_S and IQ4_XS; each record names its catalog config and overrides
  // and in 2026-12-06's ninth session (llama_host1.sh): falcon-7b and pythia-1.4b cut to 2 layers (base, Q4_K_M),
  // TinyLlama cut to 4 layers in IQ1_M, IQ2_XS, IQ2_S (importance matrix), IQ2_M, IQ3_XXS, IQ3_XS, TinyLlama Q8_0;
  // and in the tenth session (llama_iquant4.sh) the same six i-quants made again for their GPU runs
  for (const char* more : {"bench/data/llamacpp_arch2_h100_gguf_tensors.jsonl", "bench/data/llamacpp_iquant2_h100_gguf_tensors.jsonl",
                           "bench/data/llamacpp_host1_h200_gguf_tensors.jsonl", "bench/data/llamacpp_iquant4_h100_gguf_tensors.jsonl"}) {
    const auto extra = read_jsonl(more);
    ASSERT_GE(extra.size(), 2u) << more;
    rows.insert(rows.end(), extra.begin(), extra.end());
  }
  std::map<std::string, std::set<std::string>> per_arch;
  for (const auto& r : rows) {
    const std::string model = r.at("model"), scheme = r.at("scheme");
    llamacpp::Model m = r.contains("catalog_id") ? predicted_of(r) : predicted(model);
    // "base" is the converter's output with --outtype bf16 (the harness's choice): every tensor the converter
    // does not force to F32 in BF16, the same types a BF16 "quantisation" of the prediction gives
    // (make_checkpoint.py's conversions keep the checkpoint's own float type, --outtype auto: an F16 file has F16
    // tensors and no BF16 one)
    const json counts = r.value("type_counts", json::object());
    const char* base = counts.contains("F16") && !counts.contains("BF16") ? "F16" : "BF16";
    llamacpp::quantize(m, llamacpp::find_scheme(scheme == "base" ? base : scheme));
    std::map<std::string, std::pair<std::string, json>> real;
    for (const auto& t : r.at("tensors")) real[t[0]] = {t[1], t[2]};
    EXPECT_EQ(m.tensors.size(), real.size()) << model << " " << scheme;
    for (const auto& t : m.tensors) {
      auto it = real.find(t.name);
      ASSERT_NE(it, real.end()) << model << " " << scheme << ": predicted " << t.name << " is not in the file";
      EXPECT_EQ(std::string(dtype_name(t.type)), it->second.first) << model << " " << scheme << " " << t.name;
      EXPECT_EQ(json(t.ne), it->second.second) << model << " " << scheme << " " << t.name;
    }
    EXPECT_EQ(m.weight_bytes(), r.at("tensor_data_bytes").get<uint64_t>()) << model << " " << scheme;
    per_arch[r.at("architecture")].insert(scheme);
  }
  // the bar: every scheme it names, on five architectures (llama, qwen2, gemma2, phi3, a MoE)
  for (const char* arch : {"llama", "qwen2", "gemma2", "phi3", "qwen3moe"})
    for (const char* scheme : {"F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "Q4_0",
                               "Q3_K_M", "Q2_K", "IQ4_XS"})
      EXPECT_TRUE(per_arch[arch].count(scheme)) << arch << " " << scheme << ": no real file in the data";
}

TEST(LlamaCppQuant, SchemeNamesAndErrors) {
  EXPECT_EQ(llamacpp::find_scheme("q4_k_m").name, "Q4_K_M");
  EXPECT_EQ(llamacpp::find_scheme("Q4_K").name, "Q4_K_M");
  try {
    llamacpp::find_scheme("Q4_KM");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("closest: Q4_K_M"), std::string::npos) << e.what();
  }
}

TEST(LlamaCppBuffers, MatchWhatLlamaCppLogged) {
  int checked = 0;
  std::map<std::string, int> checked_per_arch;
  std::vector<double> process_err, copies_err;
  for (const auto& r : measured_buffer_rows()) {
    const json& lg = r.at("llama_log");
    llamacpp::Model m = predicted_of(r);
    llamacpp::quantize(m, llamacpp::find_scheme(r.at("scheme")));
    const llamacpp::RunOptions run = run_of(r);
    const Estimate e = llamacpp::estimate(m, run, default_gpu());
    std::map<std::string, double> c = components_mib(e);
    const std::string what = r.at("id");
    // llama.cpp prints MiB with two decimals
    EXPECT_NEAR(c["weights"] + c["output (tied)"], lg["model_buffer_mib"].value("CUDA0", 0.0), 0.006) << what;
    // host-resident weights: with --no-mmap read into pinned memory (CUDA_Host; token_embd of a type the CUDA
    // backend cannot gather into a plain CPU buffer), exactly their bytes; mapped (CPU_Mapped), llama.cpp logs the
    // span of the file the mapping covers, first to last host tensor, GPU tensors between them included
    double host_logged = 0;
    for (const char* b : {"CPU_Mapped", "CUDA_Host", "CPU"}) host_logged += lg["model_buffer_mib"].value(b, 0.0);
    if (run.mmap) EXPECT_LE(c["weights (mmap)"], host_logged + 0.01) << what;
    else EXPECT_NEAR(c["weights (pinned)"], host_logged, 0.02) << what;
    EXPECT_NEAR(c["kv_cache"], lg["kv_buffer_mib"].value("CUDA0", 0.0), 0.006) << what;
    const double compute = lg["compute_buffer_mib"]["CUDA0"];
    // the graph replay is exact with every layer on the GPU, except where the ubatch is the whole context
    // (n_ctx 512 with a 508-token prompt: llama.cpp reserves for 508 tokens; up to 3.94 MiB here, see
    // docs/memory-model.md)
    // With weights in host memory (partial -ngl, --n-cpu-moe, --override-tensor) the GPU multiplies them for large
    // batches from copies in its compute buffer (op offload), and reads host layers' KV caches from copies: the
    // scheduler's splits are replayed, each split's copies allocated at its start (galloc.cpp run_splits), exact
    // in every measured run (until 2026-12-06 the copies were allocated at their op and the graph inputs up front:
    // Qwen3-MoE 4 layers Q8_0 -ngl 2 +44 MiB, TinyLlama Q4_K_M -ngl 0 -14 MiB).
    // With layers on the host the host compute buffer is larger than the replay by up to 18 MiB in the measured
    // partial runs (phi3 18, gpt2 6, phi2 5; the others exact): the host stores the K/V rows of host layers from
    // copies of the activations; the exact copies the scheduler makes are not identified yet. A known gap,
    // bounded here by the measured worst case, not a mechanism.
    const bool partial = run.n_gpu_layers >= 0 && static_cast<uint64_t>(run.n_gpu_layers) < m.hp.n_layer;
    // weights in host memory multiplied on the GPU (op offload, batches of 32 or more): their copies are replayed
    const bool copies = run.n_ubatch >= 32 && (partial || run.cpu_moe_layers > 0 || !run.tensor_overrides.empty());
    // GPT-2 with a q8_0 cache: llama.cpp's CUDA buffer holds 1.50 MiB (one [n_embd x n_ubatch] f32 tensor) more than
    // the replay, which matches a CPU build's buffer for the same graph exactly (test_llamacpp_cpu.cpp); a named
    // gap, cause not found
    const bool gpt2_quantised_cache = m.hp.arch == "gpt2" && run.type_k != DType::F16;
    EXPECT_NEAR(c["compute"], compute,
                run.n_ctx <= 512 ? 4.0 : gpt2_quantised_cache ? 1.51 : 0.006)
        << what;
    if (copies) copies_err.push_back(std::fabs(c["compute"] - compute));
    // Below op offload's batch of 32 the routed experts kept in host memory run on the CPU, whose split's
    // activations (the experts' inputs and outputs, a few [n_ff x k x n_ubatch] tensors) the host compute buffer
    // holds: not replayed, 2.0 MiB in the measured run (4 layers, n_ubatch 16). A named gap.
    const bool host_experts_on_cpu = run.n_ubatch < 32 && run.cpu_moe_layers > 0 && m.hp.n_expert > 1;
    EXPECT_NEAR(c["compute (host)"], lg["compute_buffer_mib"]["CUDA_Host"].get<double>(),
                partial ? 18.5 : host_experts_on_cpu ? 2.1 : 0.2) << what;
    const bool ok = r.contains("ok") && r["ok"].is_boolean() && r["ok"].get<bool>();
    if (ok && r.contains("peak_tree_bytes") && r["peak_tree_bytes"].is_number() && r["peak_tree_bytes"].get<double>() > 0)
      process_err.push_back(std::fabs(static_cast<double>(e.process_peak_bytes) / r["peak_tree_bytes"].get<double>() - 1));
    ++checked;
    ++checked_per_arch[m.hp.arch];
  }
  EXPECT_GE(checked, 240);
  // the copies of host weights: exact (llama.cpp logs two decimals) in the median run
  ASSERT_GE(copies_err.size(), 40u);
  std::sort(copies_err.begin(), copies_err.end());
  EXPECT_LE(copies_err[copies_err.size() / 2], 0.006);
  // the builders these measurements exercise directly (the others: LlamaCppBuilders below)
  for (const char* arch : {"llama", "qwen2", "gemma2", "phi3", "qwen3moe", "gpt2"})
    EXPECT_GE(checked_per_arch[arch], 18) << arch;
  // measured on the GPU after their builders were written (llama_arch1.sh)
  for (const char* arch : {"phi2", "bloom", "olmo2", "deepseek2"}) EXPECT_GE(checked_per_arch[arch], 4) << arch;
  // the GPU process peak NVML saw (llmem measure) against the estimate: the targets
  ASSERT_GE(process_err.size(), 100u);
  std::sort(process_err.begin(), process_err.end());
  EXPECT_LE(process_err[process_err.size() / 2], 0.03);
  EXPECT_LE(process_err.back(), 0.08);
}

// The builders without a measured model of their own, checked against the measurements of a model whose graph
// llama.cpp builds with the same allocations. Each stand-in is the measured model's file read by the other
// architecture's builder (only general.architecture changes), every layer on the GPU:
//  - mistral3 on TinyLlama: src/models/mistral3.cpp is llama.cpp's graph (its attention-temperature input only
//    exists when the file sets attention.temperature_scale);
//  - qwen3 on Qwen2.5-0.5B: qwen3.cpp adds rms_norm + mul on the Q and K heads; the norm of the reshaped view is
//    the new tensor that rope would otherwise allocate, and the mul and rope then run in place, so ggml-alloc sees
//    the same allocations and frees in the same order;
//  - gemma and gemma3 on gemma-2-2b: the sandwich norms of gemma2-iswa.cpp (absent in gemma.cpp) act on tensors
//    with one consumer and run in place, gemma3.cpp's Q/K norms are as qwen3's, and the soft-caps gemma3.cpp and
//    gemma.cpp lack are in-place scale/tanh ops.
// Where the measured model's own builder reproduces the logged buffer to its two decimals, the stand-in must too:
// a builder that allocates differently from llama.cpp's file where it matters (a tensor more or less live at the
// peak) moves the buffer by at least one [n_embd x n_ubatch] f32 tensor. Elsewhere the known gaps of the replay
// apply (LlamaCppBuffers.MatchWhatLlamaCppLogged). Measurements of these architectures' own files would replace
// the stand-ins (bench/gpu/llamacpp takes --models NAME=CATALOG_ID).
// Several devices: rpc-server processes on the one GPU, llama-bench over them with --rpc
// (bench/gpu/runs/llama_rpc1.sh): each device's model, KV and compute buffers as llama.cpp logged them, and each
// server's NVML process peak (its CUDA context, buffers, cuBLAS and pool), against the estimate's per-GPU figures.
TEST(LlamaCppBuffers, SeveralDevicesMatchWhatEachDeviceLogged) {
  const auto rows = read_jsonl("bench/data/llamacpp_rpc_h100.jsonl");
  ASSERT_GE(rows.size(), 21u);
  std::vector<double> buffer_err, process_err;
  int devices = 0;
  for (const auto& r : rows) {
    llamacpp::Model m = predicted(r.at("model"));
    llamacpp::quantize(m, llamacpp::find_scheme(r.at("scheme")));
    llamacpp::RunOptions run = run_of(r);
    const auto& servers = r.at("rpc_servers");
    run.n_gpus = servers.size();
    std::stringstream shares(r.value("tensor_split", std::string()));
    for (std::string item; std::getline(shares, item, '/');) run.tensor_split.push_back(std::stod(item));
    const Estimate e = llamacpp::estimate(m, run, default_gpu());
    ASSERT_EQ(e.per_gpu.size(), servers.size()) << r.at("id");
    std::map<std::string, std::map<std::string, double>> logged;  // "RPC0[127.0.0.1:PORT]" -> kind -> MiB
    // a sliding-window model logs two KV buffers per device (its full and its sliding-window cache)
    for (const auto& b : r.at("llama_log").at("buffers")) logged[b.at("buffer")][b.at("kind")] += b.at("mib").get<double>();
    for (size_t d = 0; d < servers.size(); ++d) {
      const std::string name = "RPC0[127.0.0.1:" + std::to_string(servers[d].at("port").get<int>()) + "]";
      const std::string what = r.at("id").get<std::string>() + " device " + std::to_string(d);
      std::map<std::string, double> c;
      for (const auto& x : e.per_gpu[d].components) c[x.name] = static_cast<double>(x.bytes) / (1 << 20);
      EXPECT_NEAR(c["weights"], logged[name]["model"], 0.006) << what;
      EXPECT_NEAR(c["kv_cache"], logged[name]["KV"], 0.006) << what;
      // RPC devices have no offload_op: weights kept in host memory (-ngl 2, --n-cpu-moe) are multiplied on the
      // CPU there, where a CUDA device takes them over with copies; those runs check the placement, not compute.
      // Two named gaps of the device replay: Qwen3-MoE's first device under pipeline parallelism holds 4.00 MiB
      // (one [n_embd x n_ubatch] f32 tensor) more than the replay, gemma-2's last device without pipeline
      // parallelism 4.5 MiB less; causes not found.
      const bool host_weights = run.n_gpu_layers >= 0 || run.cpu_moe_layers > 0;
      const bool moe_first = m.hp.n_expert > 1 && d == 0;
      const bool gemma_last_unpiped = m.hp.arch == "gemma2" && d + 1 == servers.size() && run.cpu_moe_layers > 0;
      if (!host_weights || gemma_last_unpiped) {
        EXPECT_NEAR(c["compute"], logged[name]["compute"], moe_first ? 4.01 : gemma_last_unpiped ? 4.51 : 0.006) << what;
      }
      ++devices;
      if (host_weights) continue;
      const double buffers = logged[name]["model"] + logged[name]["KV"] + logged[name]["compute"];
      buffer_err.push_back(std::fabs(static_cast<double>(e.per_gpu[d].framework_peak_bytes) / (1 << 20) / buffers - 1));
      process_err.push_back(std::fabs(static_cast<double>(e.per_gpu[d].process_peak_bytes) /
                                      servers[d].at("peak_tree_bytes").get<double>() - 1));
      if (process_err.back() > 0.02)
        std::fprintf(stderr, "%s: %.0f vs %.0f MiB\n", what.c_str(), static_cast<double>(e.per_gpu[d].process_peak_bytes) / (1 << 20),
                     servers[d].at("peak_tree_bytes").get<double>() / (1 << 20));
    }
  }
  EXPECT_GE(devices, 44);
  ASSERT_GE(process_err.size(), 30u);
  std::sort(buffer_err.begin(), buffer_err.end());
  std::sort(process_err.begin(), process_err.end());
  EXPECT_LE(buffer_err[buffer_err.size() / 2], 0.0001);
  EXPECT_LE(buffer_err.back(), 0.006);
  // each device's process peak: its buffers plus one CUDA context, cuBLAS and pool (the targets: 2 % / 5 %)
  EXPECT_LE(process_err[process_err.size() / 2], 0.02);
  EXPECT_LE(process_err.back(), 0.05);
}

TEST(LlamaCppBuilders, BuildersWithoutTheirOwnMeasurementReproduceAStandIn) {
  const std::map<std::string, std::vector<std::string>> stand_ins = {
      {"TinyLlama-1.1B", {"mistral3"}}, {"Qwen2.5-0.5B", {"qwen3"}}, {"gemma-2-2b", {"gemma", "gemma3"}}};
  std::map<std::string, int> checked, exact;
  for (const auto& r : measured_buffer_rows()) {
    auto it = stand_ins.find(r.at("model"));
    const llamacpp::RunOptions run = run_of(r);
    if (it == stand_ins.end() || run.n_gpu_layers >= 0) continue;
    llamacpp::Model m = predicted(r.at("model"));
    llamacpp::quantize(m, llamacpp::find_scheme(r.at("scheme")));
    const double compute = r.at("llama_log").at("compute_buffer_mib").at("CUDA0");
    const double own = components_mib(llamacpp::estimate(m, run, default_gpu()))["compute"];
    const double tolerance = std::fabs(own - compute) <= 0.006 ? 0.006 : std::max(10.0, 0.01 * compute);
    for (const auto& arch : it->second) {
      llamacpp::Model stand_in = m;
      stand_in.hp.arch = arch;
      const double estimated = components_mib(llamacpp::estimate(stand_in, run, default_gpu()))["compute"];
      EXPECT_NEAR(estimated, compute, tolerance) << arch << " on " << r.at("id").get<std::string>();
      ++checked[arch];
      if (tolerance < 0.01) ++exact[arch];
    }
  }
  for (const char* arch : {"mistral3", "qwen3", "gemma", "gemma3"}) {
    EXPECT_GE(checked[arch], 24) << arch;
    EXPECT_GE(exact[arch], 12) << arch;
  }
}

TEST(LlamaCppCli, EstimateJsonHasTheKeysScriptsUse) {
  const fixtures::CliRun r = fixtures::run_llmem("estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_K_M --ctx 4096 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["weight_bytes"], 667078656u);  // the real Q4_K_M file's tensor data (bench/data)
  EXPECT_GT(j["process_peak_bytes"].get<uint64_t>(), j["weight_bytes"].get<uint64_t>());
  bool gpu = false, host = false;
  for (const auto& c : j["components"]) {
    gpu = gpu || c["device"] == "gpu";
    host = host || c["device"] == "host";
  }
  EXPECT_TRUE(gpu && host);
}

// --mlock is llama.cpp's load mode mlock: the same buffers as --no-mmap (read into pinned memory, not mapped), the
// weights' buffer locked; --ram checks the host side against the machine's RAM, and "fits" needs both.
TEST(LlamaCppCli, MlockAndRamCheckTheHostSide) {
  const std::string base = "estimate Qwen/Qwen3-30B-A3B --engine llamacpp --quant Q4_K_M --n-cpu-moe 30 --json";
  auto run = [](const std::string& cmd) {
    const fixtures::CliRun r = fixtures::run_llmem(cmd);
    EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.err;
    return json::parse(r.out);
  };
  const json mapped = run(base), pinned = run(base + " --no-mmap"), locked = run(base + " --mlock");
  EXPECT_TRUE(mapped["workload"]["mmap"].get<bool>());
  EXPECT_FALSE(locked["workload"]["mmap"].get<bool>());
  EXPECT_TRUE(locked["workload"]["mlock"].get<bool>());
  EXPECT_EQ(locked["host_bytes"], pinned["host_bytes"]);
  EXPECT_EQ(locked["framework_peak_bytes"], pinned["framework_peak_bytes"]);
  // 30 of 48 layers' experts on the host: about 10 GiB
  const uint64_t host = mapped["host_bytes"].get<uint64_t>();
  EXPECT_GT(host, uint64_t{9} << 30);
  EXPECT_LT(host, uint64_t{12} << 30);
  bool locked_weights = false;
  for (const auto& c : locked["components"]) locked_weights = locked_weights || c["name"] == "weights (locked)";
  EXPECT_TRUE(locked_weights);
  EXPECT_TRUE(mapped["host_ram_bytes"].is_null());
  EXPECT_TRUE(mapped["host_fits"].is_null());
  const json small = run(base + " --ram 8GiB"), large = run(base + " --ram 16GiB");
  EXPECT_EQ(small["host_ram_bytes"], uint64_t{8} << 30);
  EXPECT_FALSE(small["host_fits"].get<bool>());
  EXPECT_FALSE(small["fits"].get<bool>());  // the GPU side fits an H200; the host side does not fit 8 GiB
  EXPECT_TRUE(large["host_fits"].get<bool>());
  EXPECT_TRUE(large["fits"].get<bool>());
  const fixtures::CliRun text = fixtures::run_llmem("estimate Qwen/Qwen3-30B-A3B --engine llamacpp --quant Q4_K_M --n-cpu-moe 30 --ram 8GiB");
  EXPECT_NE(text.out.find("GiB short (mapped weights re-read from disk)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("but not in the machine's RAM"), std::string::npos) << text.out;
}

TEST(LlamaCppCli, BadInputIsOneLineAndExit2) {
  fixtures::CliRun r = fixtures::run_llmem("estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_KM");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("closest: Q4_K_M"), std::string::npos) << r.err;
  r = fixtures::run_llmem("estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--quant"), std::string::npos) << r.err;
  r = fixtures::run_llmem("estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_0 --cache-type-v q8_0 --flash-attn off");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = fixtures::run_llmem("estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_0 --ctx 0");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = fixtures::run_llmem("estimate facebook/opt-1.3b --engine llamacpp --quant Q4_0");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("opt"), std::string::npos) << r.err;
}

TEST(LlamaCppCli, NglBeyondTheLayersIsClampedAndSaid) {
  const fixtures::CliRun r = fixtures::run_llmem("estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_0 --ngl 500 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["workload"]["n_gpu_layers"], 500);
  bool said = false;
  for (const auto& n : j["notes"]) said = said || n.get<std::string>().find("500 GPU layers asked for") != std::string::npos;
  EXPECT_TRUE(said) << r.out;
  // and it is the same estimate as all layers
  const fixtures::CliRun all = fixtures::run_llmem("estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_0 --json");
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(json::parse(all.out)["process_peak_bytes"], j["process_peak_bytes"]);
}

std::string test_dir() {
  const std::string dir = std::string(std::getenv("LLMEM_TEST_TMP") ? std::getenv("LLMEM_TEST_TMP") : "/tmp");
  std::filesystem::create_directories(dir);
  return dir;
}

// A small GGUF of `arch` with the keys llama.cpp's load_hparams requires and the tensors the graph reads.
fixtures::GgufWriter small_gguf(const std::string& arch, uint32_t n_layer) {
  using fixtures::GgufValue;
  fixtures::GgufWriter w;
  w.kv("general.architecture", GgufValue::string(arch));
  w.kv(arch + ".block_count", GgufValue::u32(n_layer));
  w.kv(arch + ".embedding_length", GgufValue::u32(256));
  w.kv(arch + ".feed_forward_length", GgufValue::u32(512));
  w.kv(arch + ".attention.head_count", GgufValue::u32(4));
  w.kv(arch + ".attention.head_count_kv", GgufValue::u32(2));
  w.kv(arch + ".context_length", GgufValue::u32(2048));
  w.tensor("token_embd.weight", {256, 1000}, fixtures::ggml::F16);
  for (uint32_t il = 0; il < n_layer; ++il) {
    const std::string blk = "blk." + std::to_string(il) + ".";
    w.tensor(blk + "attn_q.weight", {256, 256}, fixtures::ggml::F16);
    w.tensor(blk + "attn_k.weight", {256, 128}, fixtures::ggml::F16);
    w.tensor(blk + "attn_v.weight", {256, 128}, fixtures::ggml::F16);
  }
  return w;
}

llamacpp::Model load(const fixtures::GgufWriter& w, const std::string& name) {
  const std::string path = test_dir() + "/" + name + ".gguf";
  w.write_file(path);
  return llamacpp::from_gguf(read_gguf_file(path));
}

// The architectures whose graphs llmem re-states (src/engines/llamacpp/builders.cpp, one per llama.cpp
// src/models/<arch>.cpp): the registry is the one list, and every layout the converter table can produce from a
// config lands on one of them.
TEST(LlamaCppArchitectures, TheRegistryIsTheListOfSizedArchitectures) {
  const std::vector<std::string> sized = llamacpp::sized_architectures();
  const std::set<std::string> expected = {"llama", "mistral3", "qwen2",   "qwen3", "qwen3moe", "gemma",
                                          "gemma2", "gemma3",  "phi3",    "gpt2",  "gptneox",  "phi2",
                                          "falcon", "bloom",   "olmo2",   "qwen",  "deepseek2", "gpt-oss"};
  EXPECT_EQ(std::set<std::string>(sized.begin(), sized.end()), expected);
  EXPECT_EQ(sized.size(), expected.size()) << "an architecture is registered twice";
  for (const auto& model_type : gguf_layout_model_types()) {
    const std::string& arch = gguf_layout(model_type)->architecture;
    EXPECT_TRUE(expected.count(arch)) << model_type << " converts to " << arch << ", which has no builder";
  }
  // each loads from a GGUF and gets a compute buffer from its own builder
  for (const auto& arch : sized) {
    fixtures::GgufWriter w = small_gguf(arch, 2);
    using fixtures::GgufValue;
    if (arch == "qwen3moe" || arch == "gpt-oss" || arch == "deepseek2") {
      w.kv(arch + ".expert_count", GgufValue::u32(4));
      w.kv(arch + ".expert_used_count", GgufValue::u32(2));
      w.kv(arch + ".expert_feed_forward_length", GgufValue::u32(128));
    }
    if (arch == "qwen") w.kv(arch + ".attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f));
    if (arch == "gpt-oss") w.kv(arch + ".attention.sliding_window", GgufValue::u32(128));
    if (arch == "deepseek2") {  // MLA: a 64-wide latent and 32 rope dims; one dense layer, then experts
      w.kv(arch + ".attention.kv_lora_rank", GgufValue::u32(64));
      w.kv(arch + ".attention.q_lora_rank", GgufValue::u32(96));
      w.kv(arch + ".attention.key_length", GgufValue::u32(96));
      w.kv(arch + ".attention.value_length", GgufValue::u32(64));
      w.kv(arch + ".attention.key_length_mla", GgufValue::u32(96));
      w.kv(arch + ".attention.value_length_mla", GgufValue::u32(64));
      w.kv(arch + ".rope.dimension_count", GgufValue::u32(32));
      w.kv(arch + ".leading_dense_block_count", GgufValue::u32(1));
      w.kv(arch + ".expert_shared_count", GgufValue::u32(1));
    }
    const llamacpp::Model m = load(w, "arch_" + arch);
    EXPECT_EQ(m.hp.arch, arch);
    const Estimate e = llamacpp::estimate(m, llamacpp::RunOptions{}, default_gpu());
    EXPECT_GT(components_mib(e)["compute"], 0.0) << arch;
  }
}

// A head size of 0 (hostile or broken metadata) is an error naming the keys, not a division by zero later.
TEST(LlamaCppGguf, ZeroHeadSizeIsAnError) {
  fixtures::GgufWriter w = small_gguf("llama", 2);
  w.kv("llama.attention.key_length", fixtures::GgufValue::u32(0));
  try {
    load(w, "zero_head");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("attention.key_length"), std::string::npos) << e.what();
  }
}

TEST(LlamaCppGguf, UnknownArchitectureIsAClearError) {
  fixtures::GgufWriter w;
  w.kv("general.architecture", fixtures::GgufValue::string("mamba"));
  w.tensor("token_embd.weight", {64, 32}, fixtures::ggml::F32);
  try {
    load(w, "mamba");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_NE(what.find("architecture 'mamba'"), std::string::npos) << what;
    for (const auto& arch : llamacpp::sized_architectures()) EXPECT_NE(what.find(arch), std::string::npos) << what;
  }
  // a model made by hand with an unknown architecture cannot be estimated either
  llamacpp::Model m = predicted("TinyLlama-1.1B");
  m.hp.arch = "mamba";
  EXPECT_THROW(llamacpp::estimate(m, llamacpp::RunOptions{}, default_gpu()), Error);
}

// llama-model.cpp load_hparams: Gemma 2 defaults to a 4096-token window on every second layer, Gemma 3 to five
// sliding layers per global one; the other architectures have no sliding-window cache.
TEST(LlamaCppGguf, SlidingWindowDefaultsPerArchitecture) {
  const llamacpp::Model g2 = load(small_gguf("gemma2", 6), "swa_gemma2");
  EXPECT_EQ(g2.hp.n_swa, 4096u);
  EXPECT_EQ(g2.hp.swa_layers, (std::vector<bool>{true, false, true, false, true, false}));
  fixtures::GgufWriter w3 = small_gguf("gemma3", 7);
  w3.kv("gemma3.attention.sliding_window", fixtures::GgufValue::u32(512));
  const llamacpp::Model g3 = load(w3, "swa_gemma3");
  EXPECT_EQ(g3.hp.n_swa, 512u);
  EXPECT_EQ(g3.hp.swa_layers, (std::vector<bool>{true, true, true, true, true, false, true}));
  fixtures::GgufWriter wl = small_gguf("llama", 2);
  wl.kv("llama.attention.sliding_window", fixtures::GgufValue::u32(512));
  const llamacpp::Model l = load(wl, "swa_llama");
  EXPECT_EQ(l.hp.swa_layers, (std::vector<bool>{false, false}));
}

// llama-model.cpp load_hparams asserts expert_used_count <= expert_count, and set exactly when experts are;
// qwen3moe's tensors need experts.
TEST(LlamaCppGguf, ExpertCountsAreChecked) {
  EXPECT_THROW(load(small_gguf("qwen3moe", 2), "moe_missing"), Error);
  fixtures::GgufWriter w = small_gguf("llama", 2);
  w.kv("llama.expert_count", fixtures::GgufValue::u32(2));
  w.kv("llama.expert_used_count", fixtures::GgufValue::u32(3));
  EXPECT_THROW(load(w, "moe_overused"), Error);
}

// llama-quant.cpp gives attn_v of a 70B model (llama-model.cpp: llama with 80 layers and grouped-query
// attention) Q5_K where Q4_K_M would choose Q4_K: published Llama-3-70B Q4_K_M files have no Q4_K attn_v.
TEST(LlamaCppQuant, Llama70BAttnVGetsMoreBits) {
  auto entry = find_in_catalog("meta-llama/Llama-3.1-70B");
  ASSERT_TRUE(entry);
  llamacpp::Model m = llamacpp::from_config(model_from_config(HfConfig::parse(std::string(entry->config_json), entry->id)), entry->id);
  ASSERT_EQ(m.hp.n_layer, 80u);
  llamacpp::quantize(m, llamacpp::find_scheme("Q4_K_M"));
  std::map<std::string, int> attn_v_types;
  for (const auto& t : m.tensors)
    if (t.name.find("attn_v.weight") != std::string::npos) ++attn_v_types[std::string(dtype_name(t.type))];
  EXPECT_EQ(attn_v_types.count("Q4_K"), 0u);
  EXPECT_EQ(attn_v_types["Q5_K"] + attn_v_types["Q6_K"], 80);
}

// --parallel N: llama.cpp (a CPU build of the same commit, bench/gpu/llamacpp/parallel_cpu.sh) gives each sequence a
// stream of n_ctx/N cells. The KV cache is backend-independent and must match exactly; the CPU compute buffer is
// not the CUDA one llmem replays, but its change with N is the same graph's and must match to the logged 0.01 MiB.
TEST(LlamaCppParallel, StreamsAsLlamaCppSplitsThem) {
  const auto rows = read_jsonl("bench/data/llamacpp_parallel_cpu.jsonl");
  ASSERT_EQ(rows.size(), 8u);
  const json cfg = {{"model_type", "llama"}, {"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 512},
                    {"num_hidden_layers", 4}, {"num_attention_heads", 8}, {"num_key_value_heads", 4},
                    {"intermediate_size", 1024}, {"vocab_size", 1000}, {"max_position_embeddings", 8192},
                    {"rms_norm_eps", 1e-5}, {"torch_dtype", "float16"}, {"tie_word_embeddings", false}};
  llamacpp::Model m = llamacpp::from_config(model_from_config(HfConfig::parse(cfg.dump(), "tiny")), "tiny");
  llamacpp::quantize(m, llamacpp::find_scheme("F16"));
  std::map<std::string, double> base_real, base_est;  // by flash attention, at N = 1
  for (const auto& r : rows) {
    llamacpp::RunOptions run;
    run.n_ctx = r.at("n_ctx");
    run.n_parallel = r.at("n_parallel");
    const std::string fa = r.at("flash_attn");
    run.flash_attn = fa == "on" ? llamacpp::FlashAttn::kOn : llamacpp::FlashAttn::kOff;
    const Estimate e = llamacpp::estimate(m, run, default_gpu());
    std::map<std::string, double> c;
    for (const auto& x : e.components) c[x.name] += static_cast<double>(x.bytes) / (1 << 20);
    const std::string what = "np " + std::to_string(run.n_parallel) + " fa " + fa;
    EXPECT_NEAR(c["kv_cache"], r.at("kv_mib").get<double>(), 0.006) << what;
    EXPECT_NEAR(c["output"], r.at("output_mib").get<double>(), 0.006) << what;
    const double real = r.at("cpu_compute_mib"), est = c["compute"];
    if (run.n_parallel == 1) {
      base_real[fa] = real;
      base_est[fa] = est;
    } else {
      ASSERT_TRUE(base_real.count(fa));
      EXPECT_NEAR(est - base_est[fa], real - base_real[fa], 0.011) << what;
    }
  }
}

}  // namespace
