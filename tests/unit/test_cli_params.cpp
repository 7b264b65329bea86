// End-to-end tests of `llmem params`, `study`, `catalog`: the real binary on fixtures the tests write.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "fixtures/cli_run.hpp"
#include "fixtures/safetensors_writer.hpp"

using nlohmann::json;
using namespace llmem::fixtures;

namespace {

// A two-layer Llama, hidden 64, 4 heads (2 KV heads), MLP 128, vocab 100.
const char* kTinyLlamaConfig = R"({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
  "vocab_size": 100, "torch_dtype": "bfloat16", "tie_word_embeddings": false})";

// The tensors transformers' LlamaForCausalLM saves for that config, written out by hand.
std::vector<FakeTensor> tiny_llama_tensors(bool with_head) {
  std::vector<FakeTensor> t = {{"model.embed_tokens.weight", "BF16", {100, 64}}};
  for (int i = 0; i < 2; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    t.push_back({p + "self_attn.q_proj.weight", "BF16", {64, 64}});
    t.push_back({p + "self_attn.k_proj.weight", "BF16", {32, 64}});
    t.push_back({p + "self_attn.v_proj.weight", "BF16", {32, 64}});
    t.push_back({p + "self_attn.o_proj.weight", "BF16", {64, 64}});
    t.push_back({p + "mlp.gate_proj.weight", "BF16", {128, 64}});
    t.push_back({p + "mlp.up_proj.weight", "BF16", {128, 64}});
    t.push_back({p + "mlp.down_proj.weight", "BF16", {64, 128}});
    t.push_back({p + "input_layernorm.weight", "BF16", {64}});
    t.push_back({p + "post_attention_layernorm.weight", "BF16", {64}});
  }
  t.push_back({"model.norm.weight", "BF16", {64}});
  if (with_head) t.push_back({"lm_head.weight", "BF16", {100, 64}});
  return t;
}

// 100*64*2 + 2*(64*64*2 + 32*64*2 + 128*64*3 + 64*2) + 64 = 12800 + 2*(8192 + 4096 + 24576 + 128) + 64
constexpr uint64_t kTinyLlamaParams = 12800 + 2 * (8192 + 4096 + 24576 + 128) + 64;

void expect_one_line_error(const CliRun& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(r.err.rfind("llmem: ", 0), 0u) << r.err;
}

}  // namespace

TEST(CliParams, CatalogModelJsonHasTheStableKeys) {
  CliRun r = run_llmem("params TinyLlama/TinyLlama-1.1B-Chat-v1.0 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["total_params"].get<uint64_t>(), 1'100'048'384u);
  EXPECT_EQ(j["total_params_with_tied"].get<uint64_t>(), 1'100'048'384u);
  EXPECT_EQ(j["source"]["kind"], "catalog");
  EXPECT_EQ(j["architecture"]["family"], "llama");
  EXPECT_EQ(j["dtypes"][0]["dtype"], "BF16");
  EXPECT_EQ(j["total_bytes"].get<uint64_t>(), 2u * 1'100'048'384u);
  EXPECT_EQ(j["modules"]["params"].get<uint64_t>(), 1'100'048'384u);
}

TEST(CliParams, TiedWeightsAreFlaggedAndCountedOnce) {
  CliRun r = run_llmem("params facebook/xglm-4.5B --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["total_params"].get<uint64_t>(), 4'552'511'488u);
  EXPECT_EQ(j["total_params_with_tied"].get<uint64_t>(), 5'076'815'872u);
  ASSERT_EQ(j["tied"].size(), 1u);
  EXPECT_EQ(j["tied"][0]["alias"], "lm_head.weight");
  CliRun text = run_llmem("params facebook/xglm-4.5B");
  EXPECT_NE(text.out.find("tied: lm_head.weight = model.embed_tokens.weight"), std::string::npos) << text.out;
}

TEST(CliParams, TreeCollapsesLayersAndRespectsDepth) {
  CliRun r = run_llmem("params mistralai/Mistral-7B-v0.1 --depth 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("layers 0-31 (×32)"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("self_attn"), std::string::npos) << "depth 2 must not show depth-3 rows";
  CliRun deeper = run_llmem("params mistralai/Mistral-7B-v0.1 --depth 3");
  EXPECT_NE(deeper.out.find("self_attn"), std::string::npos);
  // Layers with different structure (DeepSeek's dense first layers vs MoE layers) are separate runs.
  CliRun ds = run_llmem("params deepseek-ai/DeepSeek-V3 --depth 3");
  EXPECT_NE(ds.out.find("0-2 (×3)"), std::string::npos) << ds.out;
  EXPECT_NE(ds.out.find("3-60 (×58)"), std::string::npos) << ds.out;
}

TEST(CliParams, DirectoryWithConfigAndShardsCountsBothAndAgrees) {
  TempDir tmp;
  write_file(tmp.file("config.json"), std::string(kTinyLlamaConfig));
  write_sharded_checkpoint(tmp.path(), split_into_shards(tiny_llama_tensors(true), 3), true);
  CliRun r = run_llmem("params " + shell_quote(tmp.path()) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["total_params"].get<uint64_t>(), kTinyLlamaParams);
  EXPECT_EQ(j["config"]["total_params"].get<uint64_t>(), kTinyLlamaParams);
  EXPECT_EQ(j["weights"]["total_params"].get<uint64_t>(), kTinyLlamaParams);
  EXPECT_EQ(j["weights"]["basis"], "safetensors");
  EXPECT_TRUE(j["comparison"]["match"].get<bool>());
  EXPECT_EQ(j["source"]["files_read"].size(), 4u);  // config + 3 shards
  EXPECT_LT(j["source"]["header_bytes_read"].get<uint64_t>(), 20000u);
}

TEST(CliParams, MismatchNamesTheTensorsTheArchitectureDoesNotExplain) {
  TempDir tmp;
  write_file(tmp.file("config.json"), std::string(kTinyLlamaConfig));
  auto tensors = tiny_llama_tensors(false);  // lm_head missing although the config says untied
  tensors.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", "F32", {8}});
  tensors.push_back({"model.layers.1.self_attn.rotary_emb.inv_freq", "F32", {8}});
  write_safetensors(tmp.file("model.safetensors"), tensors);
  CliRun r = run_llmem("params " + shell_quote(tmp.path()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("model.layers.{0-1}.self_attn.rotary_emb.inv_freq"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("in the architecture but not in the weights (6,400 params)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lm_head.weight"), std::string::npos) << r.out;
}

TEST(CliParams, SingleSafetensorsFileWithoutConfig) {
  TempDir tmp;
  write_safetensors(tmp.file("m.safetensors"), tiny_llama_tensors(true));
  CliRun r = run_llmem("params " + shell_quote(tmp.file("m.safetensors")) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["total_params"].get<uint64_t>(), kTinyLlamaParams);
  EXPECT_EQ(j["basis"], "safetensors");
  EXPECT_TRUE(j["architecture"].is_null());
}

TEST(CliParams, UnknownArchitectureWithWeightsStillCounts) {
  TempDir tmp;
  write_file(tmp.file("config.json"), std::string(R"({"model_type": "mamba9"})"));
  write_safetensors(tmp.file("model.safetensors"), tiny_llama_tensors(true));
  CliRun r = run_llmem("params " + shell_quote(tmp.path()) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["total_params"].get<uint64_t>(), kTinyLlamaParams);
  EXPECT_NE(j["config_error"].get<std::string>().find("mamba9"), std::string::npos);
}

TEST(CliParams, HuggingFaceCacheSnapshotByRefAndRevision) {
  TempDir tmp;
  const std::string base = tmp.dir("hub/models--acme--tiny");
  std::filesystem::create_directories(base + "/refs");
  write_file(base + "/refs/main", std::string("0123abcd\n"));
  std::filesystem::create_directories(base + "/snapshots/0123abcd");
  std::filesystem::create_directories(base + "/snapshots/99ff");
  write_file(base + "/snapshots/0123abcd/config.json", std::string(kTinyLlamaConfig));
  std::string other = kTinyLlamaConfig;
  other.replace(other.find("\"num_hidden_layers\": 2"), 22, "\"num_hidden_layers\": 1");
  write_file(base + "/snapshots/99ff/config.json", other);
  const std::string env = "HF_HOME=" + shell_quote(tmp.path()) + " HF_HUB_CACHE= HOME=/nonexistent";
  CliRun r = run_llmem("params acme/tiny --json", env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["source"]["kind"], "hf-cache");
  EXPECT_EQ(j["source"]["revision"], "0123abcd");
  EXPECT_EQ(j["total_params"].get<uint64_t>(), kTinyLlamaParams);
  CliRun pinned = run_llmem("params acme/tiny@99ff --json", env);
  ASSERT_EQ(pinned.exit_code, 0) << pinned.err;
  EXPECT_LT(json::parse(pinned.out)["total_params"].get<uint64_t>(), kTinyLlamaParams);
}

TEST(CliParams, BadInputIsOneLineAndExitTwo) {
  TempDir tmp;
  // Offline: an unknown org/name would otherwise be asked of the Hub, and no test touches the internet.
  expect_one_line_error(run_llmem("params no/such-model", "HF_HUB_OFFLINE=1"), "not in the embedded catalog");
  write_file(tmp.file("bad.json"), std::string("{\"model_type\": \"llama\", \"hidden_size\": "));
  expect_one_line_error(run_llmem("params " + shell_quote(tmp.file("bad.json"))), "not valid JSON (syntax error");
  write_file(tmp.file("unknown.json"), std::string(R"({"model_type": "mamba9"})"));
  expect_one_line_error(run_llmem("params " + shell_quote(tmp.file("unknown.json"))), "unknown architecture");
  write_file(tmp.file("typed.json"), std::string(R"({"model_type": "gpt2", "vocab_size": "many"})"));
  expect_one_line_error(run_llmem("params " + shell_quote(tmp.file("typed.json"))), "vocab_size");
  // A safetensors file cut short in its header.
  auto bytes = safetensors_bytes(tiny_llama_tensors(true));
  bytes.resize(40);
  write_file(tmp.file("cut.safetensors"), bytes);
  expect_one_line_error(run_llmem("params " + shell_quote(tmp.file("cut.safetensors"))), "cut.safetensors");
  write_file(tmp.file("noise.bin"), std::string("\x01\x02\x03garbage"));
  expect_one_line_error(run_llmem("params " + shell_quote(tmp.file("noise.bin"))), "not a config.json, safetensors or GGUF file");
  CliRun usage = run_llmem("params");
  EXPECT_EQ(usage.exit_code, 2);
}

TEST(CliStudy, TableHasEveryStudyRowAndFlagsTheImpossibleOne) {
  CliRun r = run_llmem("study --only-study --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 11u);  // the study's CSV has 11 rows
  bool phi2 = false;
  for (const auto& row : j["rows"]) {
    if (row["model"] == "microsoft/phi-2") {
      phi2 = true;
      EXPECT_TRUE(row["study_reading_impossible"].get<bool>());
      EXPECT_EQ(row["params"].get<uint64_t>(), 2'779'683'840u);
    } else {
      EXPECT_FALSE(row["study_reading_impossible"].get<bool>()) << row["model"];
    }
  }
  EXPECT_TRUE(phi2);
  CliRun text = run_llmem("study");
  EXPECT_NE(text.out.find("facebook/xglm-4.5B"), std::string::npos);
  EXPECT_NE(text.out.find("5.08"), std::string::npos);
}

TEST(CliCatalog, ListsEveryEmbeddedConfig) {
  CliRun r = run_llmem("catalog --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["models"].size(), 83u);  // every file of data/catalog (35 of shared/configs, 48 added for issue 15)
}
