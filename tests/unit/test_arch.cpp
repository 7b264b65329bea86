// Parameter counts from config.json against PyTorch's own counts.
//
// bench/data/transformers_params.jsonl was measured on the GPU machine by bench/gpu/count_params.py: transformers
// 5.17 built every catalog model on the meta device and summed p.numel() over model.parameters(). Those are the
// independent facts these tests hold llmem to; the two remote-code models transformers cannot build are checked
// against published counts.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "llmem/arch.hpp"
#include "llmem/error.hpp"

using namespace llmem;
using nlohmann::json;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ArchModel from_catalog_file(const std::string& file) {
  const std::string path = std::string(LLMEM_SOURCE_DIR) + "/data/catalog/" + file;
  return model_from_config(HfConfig::parse(slurp(path), path));
}

uint64_t unique_params(const ArchModel& m) {
  uint64_t n = 0;
  for (const auto& t : m.tensors) n += t.numel();
  return n;
}

uint64_t tied_params(const ArchModel& m) {
  uint64_t n = 0;
  for (const auto& t : m.tied) n += t.numel;
  return n;
}

}  // namespace

TEST(Arch, EveryCatalogModelMatchesPyTorch) {
  std::ifstream in(std::string(LLMEM_SOURCE_DIR) + "/bench/data/transformers_params.jsonl");
  ASSERT_TRUE(in) << "ground truth file missing";
  std::string line;
  int checked = 0;
  while (std::getline(in, line)) {
    json rec = json::parse(line);
    if (rec.contains("error")) continue;  // remote-code models: see the tests below
    const std::string file = rec["config"];
    SCOPED_TRACE(file);
    ArchModel m = from_catalog_file(file);
    EXPECT_EQ(unique_params(m), rec["total_params"].get<uint64_t>());
    EXPECT_EQ(unique_params(m) + tied_params(m), rec["total_params_with_tied"].get<uint64_t>());
    EXPECT_EQ(m.tied.size(), rec["tied"].size());

    // Tensor by tensor: every name both sides share has the same shape. Names differ only where transformers 5
    // fuses experts or renames at load time; those must carry the same number of parameters on both sides.
    std::map<std::string, std::vector<uint64_t>> ours;
    for (const auto& t : m.tensors) ours[t.name] = t.shape;
    uint64_t theirs_only = 0, shared = 0;
    std::set<std::string> matched;
    for (const auto& t : rec["tensors"]) {
      std::vector<uint64_t> shape = t["shape"].get<std::vector<uint64_t>>();
      auto it = ours.find(t["name"]);
      uint64_t numel = std::accumulate(shape.begin(), shape.end(), uint64_t{1}, std::multiplies<>());
      if (it == ours.end()) {
        theirs_only += numel;
        continue;
      }
      EXPECT_EQ(it->second, shape) << t["name"];
      matched.insert(it->first);
      ++shared;
    }
    uint64_t ours_only = 0;
    for (const auto& t : m.tensors)
      if (!matched.count(t.name)) ours_only += t.numel();
    EXPECT_EQ(ours_only, theirs_only);
    EXPECT_GT(shared, rec["tensors"].size() / 4) << "names should mostly agree with transformers";
    ++checked;
  }
  EXPECT_GE(checked, 33);
}

// Published / issue-stated counts (transformers 5.17 on a GPU, per the project's issue).
TEST(Arch, StudyModelsExactCounts) {
  EXPECT_EQ(unique_params(from_catalog_file("TinyLlama__TinyLlama-1.1B-Chat-v1.0.json")), 1'100'048'384u);
  EXPECT_EQ(unique_params(from_catalog_file("microsoft__phi-2.json")), 2'779'683'840u);
  EXPECT_EQ(unique_params(from_catalog_file("mistralai__Mistral-7B-v0.1.json")), 7'241'732'096u);
  EXPECT_EQ(unique_params(from_catalog_file("HuggingFaceH4__zephyr-7b-beta.json")), 7'241'732'096u);
  EXPECT_EQ(unique_params(from_catalog_file("upstage__SOLAR-10.7B-Instruct-v1.0.json")), 10'731'524'096u);
  EXPECT_EQ(unique_params(from_catalog_file("01-ai__Yi-6B.json")), 6'061'035'520u);
  EXPECT_EQ(unique_params(from_catalog_file("rinna__youri-7b.json")), 6'738'415'616u);
  EXPECT_EQ(unique_params(from_catalog_file("Qwen__Qwen-1_8B-Chat.json")), 1'836'828'672u);
}

TEST(Arch, XglmTiesByDefaultAndTorchinfoCountsTheHeadTwice) {
  ArchModel m = from_catalog_file("facebook__xglm-4.5B.json");
  EXPECT_EQ(unique_params(m), 4'552'511'488u);
  EXPECT_EQ(unique_params(m) + tied_params(m), 5'076'815'872u);  // the study's "5.08 B"
  ASSERT_EQ(m.tied.size(), 1u);
  EXPECT_EQ(m.tied[0].alias, "lm_head.weight");
  EXPECT_EQ(m.tied[0].target, "model.embed_tokens.weight");
}

// LLaMA-MoE-v1-3.5B (4/16): Llama-2-7B's shapes with each 11008-wide MLP split into 16 experts of 688, plus per
// layer a gate MLP (4096x16, 16x16) and a noise projection (4096x16), no biases (modeling_llama_moe_hf.py).
// 6,738,415,616 + 32 x (2 x 65,536 + 256) = 6,742,618,112, which torchinfo rounds to the study's 6.74 B.
TEST(Arch, LlamaMoeFromItsModelingCode) {
  ArchModel m = from_catalog_file("llama-moe__LLaMA-MoE-v1-3_5B-4_16.json");
  EXPECT_EQ(unique_params(m), 6'742'618'112u);
  EXPECT_EQ(m.facts.n_experts, 16u);
  EXPECT_EQ(m.facts.n_experts_active, 4u);
}

TEST(Arch, UnknownArchitectureNamesItAndSuggestsWeights) {
  try {
    model_from_config(HfConfig::parse(R"({"model_type": "mamba9", "architectures": ["Mamba9ForCausalLM"]})", "x/config.json"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    std::string msg = e.what();
    EXPECT_NE(msg.find("x/config.json"), std::string::npos);
    EXPECT_NE(msg.find("mamba9"), std::string::npos);
    EXPECT_NE(msg.find("safetensors"), std::string::npos);
  }
}

TEST(Arch, BadFieldsAreOneLineErrorsNamingTheKey) {
  auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      model_from_config(HfConfig::parse(text, "cfg.json"));
      ADD_FAILURE() << "no error for " << text;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_EQ(e.exit_code(), 2);
      EXPECT_NE(msg.find("cfg.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  };
  const std::string base = R"("model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "vocab_size": 100)";
  expect_error("{" + base + "}", "hidden_size");                                   // missing
  expect_error("{" + base + R"(, "hidden_size": "4096"})", "hidden_size");          // wrong type
  expect_error("{" + base + R"(, "hidden_size": -8})", "hidden_size");              // negative
  expect_error("{" + base + R"(, "hidden_size": 0})", "hidden_size");               // zero
  expect_error("{" + base + R"(, "hidden_size": 1e30})", "hidden_size");            // absurd
  expect_error("{" + base + R"(, "hidden_size": 30})", "hidden_size");              // 30 / 4 heads
  expect_error("{" + base + R"(, "hidden_size": 64, "tie_word_embeddings": "yes"})", "tie_word_embeddings");
  expect_error("{" + base + R"(, "hidden_size": 64, "num_key_value_heads": 3})", "num_key_value_heads");
  expect_error("[1, 2]", "not a JSON object");
  expect_error("{\"model_type\": ", "invalid JSON");
  // Dimensions each plausible alone whose product overflows 64 bits.
  expect_error(R"({"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 1, "hidden_size": 1099511627776,
                  "intermediate_size": 1099511627776, "vocab_size": 1099511627776})", "overflow");
}
