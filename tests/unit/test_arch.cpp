// Parameter counts from config.json against PyTorch's own counts.
//
// bench/data/transformers_params.jsonl was measured on the GPU machine by bench/gpu/count_params.py: transformers
// 5.17 built every catalog model on the meta device and summed p.numel() over model.parameters(). Those are the
// independent facts these tests hold llmem to; the two remote-code models transformers cannot build are checked
// against published counts.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
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
  expect_error("{" + base + R"(, "hidden_size": 64, "use_cache": "no"})", "use_cache");
  expect_error("[1, 2]", "not a JSON object");
  expect_error("{\"model_type\": ", "not valid JSON (syntax error at line 1, column 16");
  // Dimensions each plausible alone whose product overflows 64 bits.
  expect_error(R"({"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 1, "hidden_size": 1099511627776,
                  "intermediate_size": 1099511627776, "vocab_size": 1099511627776})", "overflow");
}

// --- typed traits and tensor roles --------------------------------------------------------------------------------
// Each expectation is a fact read from the family's modeling file in transformers 5.17 (or the model's remote code),
// cited beside it; none is read back from llmem's own tables.

namespace {

const TensorInfo& tensor_named(const ArchModel& m, const std::string& name) {
  for (const auto& t : m.tensors)
    if (t.name == name) return t;
  throw std::runtime_error("no tensor " + name);
}

size_t count_role(const ArchModel& m, TensorRole role, int64_t layer) {
  size_t n = 0;
  for (const auto& t : m.tensors) n += t.role == role && t.layer == layer;
  return n;
}

}  // namespace

// modeling_bloom.py: BloomBlock uses nn.LayerNorm; BloomAttention has one query_key_value Linear whose output is
// viewed as [.., heads, 3, head_dim], builds scores with alibi.baddbmm and has no SDPA path; BloomModel applies
// word_embeddings_layernorm to the embeddings; positions are ALiBi biases, not parameters.
TEST(ArchTraits, BloomIsLayerNormFusedQkvAlibiEagerOnly) {
  const ArchModel m = from_catalog_file("bigscience__bloom-560m.json");
  const ArchTraits& tr = m.facts.traits;
  EXPECT_EQ(tr.norm, NormKind::kLayerNorm);
  EXPECT_EQ(tr.residual, ResidualKind::kSequential);
  EXPECT_EQ(tr.qkv, QkvLayout::kFused);
  EXPECT_EQ(m.facts.position_kind, "alibi");
  EXPECT_EQ(tr.default_attention, AttentionImpl::kEager);
  EXPECT_TRUE(tr.materialises_scores);
  EXPECT_TRUE(tr.scores_from_baddbmm);
  EXPECT_TRUE(tr.block_returns_attn_weights);
  EXPECT_FALSE(tr.conv1d_weights);
  const TensorInfo& qkv = tensor_named(m, "transformer.h.3.self_attention.query_key_value.weight");
  EXPECT_EQ(qkv.role, TensorRole::kAttnQkv);
  EXPECT_EQ(qkv.layer, 3);
  EXPECT_EQ(qkv.module_name, "query_key_value");
  EXPECT_EQ(qkv.shape, (std::vector<uint64_t>{3 * 1024, 1024}));
  EXPECT_EQ(tensor_named(m, "transformer.h.3.self_attention.query_key_value.bias").module_name, "");  // a bias
  EXPECT_EQ(tensor_named(m, "transformer.word_embeddings.weight").role, TensorRole::kTokenEmbedding);
  EXPECT_EQ(tensor_named(m, "transformer.word_embeddings_layernorm.weight").role, TensorRole::kNorm);
  EXPECT_EQ(tensor_named(m, "transformer.h.0.mlp.dense_h_to_4h.weight").role, TensorRole::kMlpIn);
  EXPECT_EQ(tensor_named(m, "transformer.h.0.mlp.dense_4h_to_h.weight").role, TensorRole::kMlpOut);
  EXPECT_EQ(count_role(m, TensorRole::kPositionEmbedding, -1), 0u);
}

// modeling_gemma2.py: Gemma2RMSNorm computes (x.float() normalised) * (1.0 + weight.float()) before type_as(x);
// Gemma2DecoderLayer has input, post_attention, pre_feedforward and post_feedforward norms; the config's
// final_logit_softcapping (30) and attn_logit_softcapping (50) cap logits and scores. Gemma 3 (modeling_gemma3.py)
// keeps the four norms, adds q_norm / k_norm, and its configs set both soft-caps to null; Gemma 1 has two norms.
TEST(ArchTraits, GemmaNormsAndSoftcapsByModelType) {
  const ArchModel g2 = from_catalog_file("google__gemma-2-2b.json");
  EXPECT_EQ(g2.facts.family, "gemma");
  EXPECT_EQ(g2.facts.traits.norm, NormKind::kRmsNormFp32Scale);
  EXPECT_TRUE(g2.facts.traits.sandwich_norms);
  EXPECT_FALSE(g2.facts.traits.qk_norm);
  EXPECT_TRUE(g2.facts.traits.final_logit_softcap);
  EXPECT_TRUE(g2.facts.traits.attn_logit_softcap);
  EXPECT_EQ(count_role(g2, TensorRole::kNorm, 5), 4u);

  const ArchModel g3 = from_catalog_file("google__gemma-3-1b-it.json");
  EXPECT_EQ(g3.facts.traits.norm, NormKind::kRmsNormFp32Scale);
  EXPECT_TRUE(g3.facts.traits.sandwich_norms);
  EXPECT_TRUE(g3.facts.traits.qk_norm);
  EXPECT_FALSE(g3.facts.traits.final_logit_softcap);
  EXPECT_FALSE(g3.facts.traits.attn_logit_softcap);
  EXPECT_EQ(count_role(g3, TensorRole::kQkNorm, 0), 2u);

  const ArchModel g1 = from_catalog_file("google__gemma-2b.json");
  EXPECT_EQ(g1.facts.traits.norm, NormKind::kRmsNormFp32Scale);
  EXPECT_FALSE(g1.facts.traits.sandwich_norms);
  EXPECT_FALSE(g1.facts.traits.final_logit_softcap);
  EXPECT_EQ(count_role(g1, TensorRole::kNorm, 5), 2u);
}

// modeling_gpt2.py: GPT2Attention's c_attn and c_proj and GPT2MLP's c_fc and c_proj are Conv1D (weight [in, out]);
// c_attn's output is split into q, k, v; eager_attention_forward takes softmax without a dtype; wpe is a learned
// position embedding.
TEST(ArchTraits, Gpt2IsConv1dWithFusedQkv) {
  const ArchModel m = from_catalog_file("openai-community__gpt2.json");
  const ArchTraits& tr = m.facts.traits;
  EXPECT_EQ(tr.norm, NormKind::kLayerNorm);
  EXPECT_EQ(tr.qkv, QkvLayout::kFused);
  EXPECT_TRUE(tr.conv1d_weights);
  EXPECT_TRUE(tr.softmax_in_model_dtype);
  EXPECT_EQ(tr.default_attention, AttentionImpl::kSdpa);
  const TensorInfo& c_attn = tensor_named(m, "transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(c_attn.role, TensorRole::kAttnQkv);
  EXPECT_EQ(c_attn.shape, (std::vector<uint64_t>{768, 3 * 768}));  // [in, out]
  EXPECT_EQ(tensor_named(m, "transformer.h.0.attn.c_proj.weight").role, TensorRole::kAttnOutput);
  EXPECT_EQ(tensor_named(m, "transformer.h.0.mlp.c_proj.weight").role, TensorRole::kMlpOut);
  EXPECT_EQ(tensor_named(m, "transformer.h.0.mlp.c_proj.weight").module_name, "c_proj");
  EXPECT_EQ(tensor_named(m, "transformer.wpe.weight").role, TensorRole::kPositionEmbedding);
}

// modeling_gpt_neox.py: GPTNeoXLayer with use_parallel_residual computes mlp(post_attention_layernorm(x)) beside
// attention(input_layernorm(x)); query_key_value is one Linear; embed_in and embed_out are not tied in pythia.
// Without use_parallel_residual the layer is sequential.
TEST(ArchTraits, GptNeoxParallelResidualWithTwoNorms) {
  const ArchModel m = from_catalog_file("EleutherAI__pythia-1.4b.json");
  EXPECT_EQ(m.facts.traits.residual, ResidualKind::kParallelTwoNorms);
  EXPECT_EQ(m.facts.traits.qkv, QkvLayout::kFused);
  EXPECT_EQ(tensor_named(m, "gpt_neox.embed_in.weight").role, TensorRole::kTokenEmbedding);
  EXPECT_EQ(tensor_named(m, "embed_out.weight").role, TensorRole::kLmHead);
  EXPECT_EQ(tensor_named(m, "gpt_neox.layers.7.attention.dense.weight").role, TensorRole::kAttnOutput);

  const std::string sequential = R"({"model_type": "gpt_neox", "hidden_size": 64, "num_hidden_layers": 2,
      "num_attention_heads": 4, "intermediate_size": 256, "vocab_size": 100, "use_parallel_residual": false})";
  EXPECT_EQ(model_from_config(HfConfig::parse(sequential, "cfg.json")).facts.traits.residual, ResidualKind::kSequential);
}

// modeling_falcon.py: with parallel_attn (the default) one input_layernorm feeds attention and MLP; the old
// architecture without it runs post_attention_layernorm before the MLP (and has that norm's parameters).
TEST(ArchTraits, FalconResidualFollowsParallelAttn) {
  const ArchModel f7 = from_catalog_file("tiiuae__falcon-7b.json");
  EXPECT_EQ(f7.facts.traits.residual, ResidualKind::kParallelSharedNorm);
  EXPECT_EQ(f7.facts.traits.qkv, QkvLayout::kFused);
  EXPECT_TRUE(f7.facts.traits.materialises_scores);
  EXPECT_TRUE(f7.facts.traits.sdpa_math_backend);

  const std::string sequential = R"({"model_type": "falcon", "hidden_size": 64, "num_hidden_layers": 2,
      "num_attention_heads": 4, "vocab_size": 100, "parallel_attn": false, "new_decoder_architecture": false})";
  const ArchModel seq = model_from_config(HfConfig::parse(sequential, "cfg.json"));
  EXPECT_EQ(seq.facts.traits.residual, ResidualKind::kSequential);
  EXPECT_EQ(tensor_named(seq, "transformer.h.1.post_attention_layernorm.weight").role, TensorRole::kNorm);
}

// modeling_phi.py: PhiDecoderLayer feeds one input_layernorm output to both self_attn and mlp; q_proj, k_proj,
// v_proj and dense are separate Linears; the MLP is fc1 -> act -> fc2.
TEST(ArchTraits, PhiParallelSharedNormSeparateProjections) {
  const ArchModel m = from_catalog_file("microsoft__phi-2.json");
  EXPECT_EQ(m.facts.traits.norm, NormKind::kLayerNorm);
  EXPECT_EQ(m.facts.traits.residual, ResidualKind::kParallelSharedNorm);
  EXPECT_EQ(m.facts.traits.qkv, QkvLayout::kSeparate);
  EXPECT_FALSE(m.facts.traits.qk_norm);  // phi-2's qk_layernorm is false
  const TensorInfo& dense = tensor_named(m, "model.layers.31.self_attn.dense.weight");
  EXPECT_EQ(dense.role, TensorRole::kAttnOutput);
  EXPECT_EQ(dense.module_name, "dense");
  EXPECT_EQ(dense.layer, 31);
  EXPECT_EQ(tensor_named(m, "model.layers.0.mlp.fc1.weight").role, TensorRole::kMlpIn);
  EXPECT_EQ(tensor_named(m, "model.layers.0.mlp.fc2.weight").role, TensorRole::kMlpOut);
}

// modeling_llama.py: LlamaRMSNorm, separate q/k/v/o projections, gated MLP, SDPA. modeling_qwen3.py adds q_norm and
// k_norm. modeling_phi3.py fuses qkv_proj and gate_up_proj. modeling_deepseek_v2.py: latent attention.
TEST(ArchTraits, LlamaQwen3Phi3AndDeepseekLayouts) {
  const ArchModel llama = from_catalog_file("TinyLlama__TinyLlama-1.1B-Chat-v1.0.json");
  const ArchTraits& tr = llama.facts.traits;
  EXPECT_EQ(tr.norm, NormKind::kRmsNorm);
  EXPECT_EQ(tr.residual, ResidualKind::kSequential);
  EXPECT_EQ(tr.qkv, QkvLayout::kSeparate);
  EXPECT_FALSE(tr.qk_norm || tr.sandwich_norms || tr.materialises_scores || tr.final_logit_softcap);
  const TensorInfo& q = tensor_named(llama, "model.layers.21.self_attn.q_proj.weight");
  EXPECT_EQ(q.role, TensorRole::kAttnQuery);
  EXPECT_EQ(q.module_name, "q_proj");
  EXPECT_EQ(q.layer, 21);
  EXPECT_EQ(tensor_named(llama, "model.layers.0.mlp.gate_proj.weight").role, TensorRole::kMlpGate);
  EXPECT_EQ(tensor_named(llama, "model.layers.0.mlp.up_proj.weight").role, TensorRole::kMlpUp);
  EXPECT_EQ(tensor_named(llama, "model.layers.0.mlp.down_proj.weight").role, TensorRole::kMlpDown);
  EXPECT_EQ(tensor_named(llama, "lm_head.weight").role, TensorRole::kLmHead);
  EXPECT_EQ(tensor_named(llama, "model.norm.weight").layer, -1);

  EXPECT_TRUE(from_catalog_file("Qwen__Qwen3-8B.json").facts.traits.qk_norm);
  EXPECT_TRUE(from_catalog_file("Qwen__Qwen3-30B-A3B.json").facts.traits.qk_norm);
  EXPECT_FALSE(from_catalog_file("Qwen__Qwen2.5-7B-Instruct.json").facts.traits.qk_norm);

  const ArchModel phi3 = from_catalog_file("microsoft__Phi-3-mini-4k-instruct.json");
  EXPECT_EQ(phi3.facts.traits.qkv, QkvLayout::kFused);
  EXPECT_EQ(tensor_named(phi3, "model.layers.0.self_attn.qkv_proj.weight").role, TensorRole::kAttnQkv);
  EXPECT_EQ(tensor_named(phi3, "model.layers.0.mlp.gate_up_proj.weight").role, TensorRole::kMlpGateUp);

  const ArchModel ds = from_catalog_file("deepseek-ai__DeepSeek-V2-Lite.json");
  EXPECT_EQ(ds.facts.traits.qkv, QkvLayout::kLatent);
  EXPECT_EQ(tensor_named(ds, "model.layers.1.self_attn.kv_a_proj_with_mqa.weight").role, TensorRole::kAttnKvLatent);
  EXPECT_EQ(tensor_named(ds, "model.layers.1.mlp.gate.weight").role, TensorRole::kRouter);
  EXPECT_EQ(tensor_named(ds, "model.layers.1.mlp.experts.5.up_proj.weight").role, TensorRole::kExpert);
  EXPECT_EQ(tensor_named(ds, "model.layers.1.mlp.shared_experts.up_proj.weight").role, TensorRole::kSharedExpert);
}

// Every config-derived tensor of every catalog model has a role; a tensor has a decoder layer exactly when its row
// repeats over the decoder layers; the traits agree with the tensors the rows produce: a fused QKV layout has fused
// projections in every layer (Qwen-1's c_attn excepted, see kQwen1Traits), qk_norm has per-head norms, sandwich
// norms four norms per layer. A vision tower is not a decoder layer, nor are IDEFICS' gated cross-attention layers;
// Mllama's are decoder layers of cross-attention alone.
TEST(ArchTraits, RolesAndTraitsAgreeWithTheTablesForEveryCatalogModel) {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(LLMEM_SOURCE_DIR) + "/data/catalog")) {
    if (entry.path().extension() != ".json") continue;
    const ArchModel m = from_catalog_file(entry.path().filename().string());
    SCOPED_TRACE(entry.path().filename().string());
    for (const auto& t : m.tensors) {
      EXPECT_NE(t.role, TensorRole::kUnknown) << t.name;
      EXPECT_LT(t.layer, static_cast<int64_t>(m.facts.n_layers)) << t.name;
      if (!t.module_name.empty()) {
        EXPECT_TRUE(is_linear_role(t.role)) << t.name;
      }
      if (t.role == TensorRole::kVisionTower) {
        EXPECT_EQ(t.layer, -1) << t.name;
      }
      if (t.role == TensorRole::kCrossAttention && t.layer >= 0) {
        EXPECT_TRUE(m.facts.attention.at(static_cast<uint64_t>(t.layer)).cross_attention_only) << t.name;
      }
    }
    const bool fused_tensors = count_role(m, TensorRole::kAttnQkv, 0) > 0;
    if (m.facts.family != "qwen") {
      EXPECT_EQ(m.facts.traits.qkv == QkvLayout::kFused, fused_tensors);
    }
    EXPECT_EQ(m.facts.traits.qk_norm, count_role(m, TensorRole::kQkNorm, 0) > 0);
    if (m.facts.traits.sandwich_norms) {
      EXPECT_EQ(count_role(m, TensorRole::kNorm, 0), 4u);
    }
    ++checked;
  }
  EXPECT_GE(checked, 33);
}

// --- issue 15: the catalog's new models and families -----------------------------------------------------------

namespace {

uint64_t role_params(const ArchModel& m, TensorRole role) {
  uint64_t n = 0;
  for (const auto& t : m.tensors)
    if (t.role == role) n += t.numel();
  return n;
}

const TensorInfo* find_tensor(const ArchModel& m, const std::string& name) {
  for (const auto& t : m.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace

// Llama-3.2-1B-Instruct by hand from its config: embeddings 128,256 x 2,048 = 262,668,288 (tied to the head); per
// layer q and o 2,048 x 2,048 and k and v 512 x 2,048 (8 KV heads of 64) = 10,485,760, the SwiGLU MLP
// 3 x 8,192 x 2,048 = 50,331,648, two RMSNorms 4,096: 60,821,504 x 16 = 973,144,064; the final norm 2,048.
// 1,235,814,400 in all (Meta's card: 1.23B). The 3B adds nothing new: 3,212,749,824 (card: 3.21B).
TEST(Arch, Llama32CountsByHand) {
  const ArchModel m = from_catalog_file("meta-llama__Llama-3.2-1B-Instruct.json");
  EXPECT_EQ(unique_params(m), uint64_t{262'668'288} + 16 * uint64_t{60'821'504} + 2'048);
  EXPECT_EQ(unique_params(m), 1'235'814'400u);
  ASSERT_EQ(m.tied.size(), 1u);
  EXPECT_EQ(unique_params(from_catalog_file("meta-llama__Llama-3.2-3B-Instruct.json")), 3'212'749'824u);
  EXPECT_EQ(unique_params(from_catalog_file("meta-llama__Llama-3.2-3B.json")), 3'212'749'824u);
}

// The Qwen3 model cards (huggingface.co/Qwen/Qwen3-0.6B, -1.7B, -4B, -14B, -32B) state "Number of Parameters" and
// "Number of Paramaters (Non-Embedding)" rounded; the exact counts from the configs must round to them. Non-embedding
// = all parameters but the token embeddings and an untied LM head.
TEST(Arch, Qwen3DenseCountsRoundToTheirCards) {
  struct Card { const char* file; double total_b, non_embedding_b; int decimals_total, decimals_non_embedding; };
  const Card cards[] = {
      {"Qwen__Qwen3-0.6B.json", 0.6, 0.44, 1, 2}, {"Qwen__Qwen3-1.7B.json", 1.7, 1.4, 1, 1},
      {"Qwen__Qwen3-4B.json", 4.0, 3.6, 1, 1},    {"Qwen__Qwen3-14B.json", 14.8, 13.2, 1, 1},
      {"Qwen__Qwen3-32B.json", 32.8, 31.2, 1, 1},
  };
  auto rounded = [](double x, int decimals) { return std::llround(x * std::pow(10.0, decimals)); };
  for (const auto& c : cards) {
    SCOPED_TRACE(c.file);
    const ArchModel m = from_catalog_file(c.file);
    const double total = static_cast<double>(unique_params(m)) / 1e9;
    const double non_embedding =
        static_cast<double>(unique_params(m) - role_params(m, TensorRole::kTokenEmbedding) - role_params(m, TensorRole::kLmHead)) / 1e9;
    EXPECT_EQ(rounded(total, c.decimals_total), rounded(c.total_b, c.decimals_total));
    EXPECT_EQ(rounded(non_embedding, c.decimals_non_embedding), rounded(c.non_embedding_b, c.decimals_non_embedding));
  }
}

// Qwen3-235B-A22B (card: 235B total, 22B activated): 94 layers, each with 128 experts of 3 x 4,096 x 1,536 =
// 18,874,368 parameters of which 8 run per token; the 120 idle ones are 120 x 18,874,368 x 94 = 212,902,871,040.
// gpt-oss-120b (card: 117B parameters, 5.1B active): 36 layers of 128 experts, 4 per token.
TEST(Arch, LargeMoeCountsMatchTheirCards) {
  const ArchModel q = from_catalog_file("Qwen__Qwen3-235B-A22B.json");
  EXPECT_EQ(unique_params(q), 235'093'634'560u);
  EXPECT_EQ(std::llround(static_cast<double>(unique_params(q)) / 1e9), 235);
  EXPECT_EQ(q.facts.n_experts, 128u);
  EXPECT_EQ(q.facts.n_experts_active, 8u);
  EXPECT_EQ(q.facts.n_moe_layers, 94u);
  const uint64_t idle = uint64_t{120} * (3 * 4'096 * 1'536) * 94;
  EXPECT_EQ(idle, 212'902'871'040u);
  EXPECT_EQ(std::llround(static_cast<double>(unique_params(q) - idle) / 1e9), 22);
  const ArchModel g = from_catalog_file("openai__gpt-oss-120b.json");
  EXPECT_EQ(unique_params(g), 116'829'156'672u);
  EXPECT_EQ(std::llround(static_cast<double>(unique_params(g)) / 1e9), 117);
  EXPECT_EQ(g.facts.n_experts, 128u);
  EXPECT_EQ(g.facts.n_experts_active, 4u);
}

// OLMo-2 (modeling_olmo2.py, transformers 5.17): no input_layernorm; post-attention and post-feedforward norms;
// q_norm over all query heads and k_norm over all KV heads. OLMo-2-1124-7B by hand: embeddings and the untied head
// 2 x 100,352 x 4,096 = 822,083,584; per layer 4 x 4,096^2 = 67,108,864 (MHA), q/k norms 8,192, the MLP
// 3 x 4,096 x 11,008 = 135,266,304 and two norms 8,192: 202,391,552 x 32 = 6,476,529,664; the final norm 4,096.
TEST(Arch, Olmo2PostNormsAndWholeWidthQkNorms) {
  const ArchModel m = from_catalog_file("allenai__OLMo-2-1124-7B.json");
  EXPECT_EQ(m.facts.family, "olmo2");
  EXPECT_EQ(unique_params(m), uint64_t{822'083'584} + 32 * uint64_t{202'391'552} + 4'096);
  EXPECT_EQ(unique_params(m), 7'298'617'344u);
  EXPECT_TRUE(m.tied.empty());
  EXPECT_EQ(find_tensor(m, "model.layers.0.input_layernorm.weight"), nullptr);
  ASSERT_NE(find_tensor(m, "model.layers.0.post_feedforward_layernorm.weight"), nullptr);
  EXPECT_TRUE(m.facts.traits.qk_norm);
  const ArchModel big = from_catalog_file("allenai__OLMo-2-0325-32B.json");  // GQA 40 / 8, head_dim 128
  const TensorInfo* qn = find_tensor(big, "model.layers.3.self_attn.q_norm.weight");
  const TensorInfo* kn = find_tensor(big, "model.layers.3.self_attn.k_norm.weight");
  ASSERT_TRUE(qn && kn);
  EXPECT_EQ(qn->shape, std::vector<uint64_t>{5'120});
  EXPECT_EQ(kn->shape, std::vector<uint64_t>{1'024});
}

// Gemma 3 4B as Gemma3ForConditionalGeneration (tests/fixtures/gemma3_4b_vlm_config.json: the shape keys the Hub's
// gemma-3-4b-it config sets, every other field left to Gemma3TextConfig's and SiglipVisionConfig's defaults).
// By hand: the text model 262,208 x 2,560 embeddings (tied) = 671,252,480 plus 34 layers of 94,382,592 (q 2,048 x
// 2,560, k and v 1,024 x 2,560, o 2,560 x 2,048, q/k norms 2 x 256, MLP 3 x 10,240 x 2,560, four norms) and the
// final norm: 3,880,263,168. The SigLIP tower: patch conv 1,152 x 3 x 14 x 14 + bias, 4,096 positions x 1,152,
// 27 layers of 15,239,504, post-layernorm: 416,866,032. The projector 1,152 x 2,560 + 1,152 = 2,950,272.
// 4,300,079,472 in all: the count of google/gemma-3-4b-it's weights (keras-team/keras-hub gemma3_presets.py lists
// 4,300,079,472 for medgemma_4b, and 4,299,915,632 for gemma3_instruct_4b, whose vocabulary is 64 rows shorter:
// 64 x 2,560 = 163,840).
TEST(Arch, Gemma3VisionLanguageCountsTheTowerAndRunsTheText) {
  const std::string path = std::string(LLMEM_SOURCE_DIR) + "/tests/fixtures/gemma3_4b_vlm_config.json";
  const ArchModel m = model_from_config(HfConfig::parse(slurp(path), path));
  EXPECT_EQ(m.facts.family, "gemma3");
  EXPECT_EQ(unique_params(m), 4'300'079'472u);
  EXPECT_EQ(role_params(m, TensorRole::kVisionTower), 416'866'032u + 2'950'272u);
  EXPECT_EQ(unique_params(m) - role_params(m, TensorRole::kVisionTower), 3'880'263'168u);
  ASSERT_EQ(m.tied.size(), 1u);
  EXPECT_EQ(m.tied[0].target, "language_model.model.embed_tokens.weight");
  // The facts are the text decoder's: what generation runs.
  EXPECT_EQ(m.facts.n_layers, 34u);
  EXPECT_EQ(m.facts.hidden, 2'560u);
  EXPECT_EQ(m.facts.n_heads, 8u);
  EXPECT_EQ(m.facts.n_kv_heads, 4u);
  EXPECT_EQ(m.facts.head_dim, 256u);
  EXPECT_EQ(m.facts.vocab, 262'208u);
  EXPECT_EQ(m.facts.activation, "gelu_pytorch_tanh");
  EXPECT_TRUE(m.facts.traits.qk_norm);
  EXPECT_TRUE(m.facts.traits.sandwich_norms);
  ASSERT_EQ(m.facts.attention.size(), 34u);
  EXPECT_EQ(m.facts.attention[0].sliding_window, 1'024u);
  EXPECT_EQ(m.facts.attention[5].sliding_window, 0u);  // every sixth layer attends globally
  for (const auto& t : m.tensors) {
    if (t.role == TensorRole::kVisionTower) {
      EXPECT_EQ(t.layer, -1) << t.name;
    }
  }
  // Without vision_use_head, SiglipVisionTransformer adds its attention-pooling head: probe 1,152, in_proj
  // 3 x 1,152^2 + 3 x 1,152, out_proj 1,152^2 + 1,152, a layernorm 2 x 1,152, fc1 4,304 x 1,152 + 4,304,
  // fc2 1,152 x 4,304 + 1,152 = 15,238,352.
  nlohmann::json j = nlohmann::json::parse(slurp(path));
  j["vision_config"].erase("vision_use_head");
  const ArchModel with_head = model_from_config(HfConfig(j, "with head"));
  EXPECT_EQ(unique_params(with_head) - unique_params(m), 15'238'352u);
}

// Llama-3.2-11B-Vision as MllamaForConditionalGeneration (the catalog's config; data/catalog/README.md gives its
// sources). By hand, from modeling_mllama.py: the text model's embeddings (128,256 + 8) x 4,096 = 525,369,344 and
// the untied head 128,256 x 4,096 = 525,336,576; 32 self-attention layers of 218,112,000 (q and o 4,096^2, k and
// v 1,024 x 4,096, MLP 3 x 14,336 x 4,096, two norms) and 8 cross-attention layers of 218,112,258 (the same, plus
// per-head q_norm and k_norm of 128 and two scalar gates); the final norm: 9,775,192,080. The vision model: patch
// conv 1,280 x 3 x 14 x 14 = 752,640, class embedding 1,280, the gated position embedding 1 + 1,601 x 1,280 +
// 9 x (4 x 1,601 x 1,280) = 75,823,361, pre- and post-tile embeddings 2 x (9 x 4 x 1,280 + 1) = 92,162, two
// LayerNorms 5,120, 32 local layers of 19,672,320 (q/k/v/o 4 x 1,280^2, fc1 and fc2 with biases, two LayerNorms)
// and 8 gated global layers of 19,672,322: 863,567,379. The projector 7,680 x 4,096 + 4,096 = 31,461,376.
// 10,670,220,835 in all.
TEST(Arch, MllamaCountsTheTowerAndSkipsCrossAttentionLayersForText) {
  const ArchModel m = from_catalog_file("meta-llama__Llama-3.2-11B-Vision-Instruct.json");
  EXPECT_EQ(m.facts.family, "mllama");
  EXPECT_EQ(role_params(m, TensorRole::kVisionTower), 863'567'379u + 31'461'376u);
  EXPECT_EQ(role_params(m, TensorRole::kCrossAttention), 8u * (2u * 4'096u * 4'096u + 2u * 1'024u * 4'096u + 2u * 128u + 2u));
  EXPECT_EQ(unique_params(m), uint64_t{525'369'344} + 525'336'576 + 32 * uint64_t{218'112'000} +
                                  8 * uint64_t{218'112'258} + 4'096 + 863'567'379 + 31'461'376);
  EXPECT_EQ(unique_params(m), 10'670'220'835u);
  EXPECT_TRUE(m.tied.empty());
  ASSERT_NE(find_tensor(m, "language_model.model.layers.3.cross_attn.q_norm.weight"), nullptr);
  EXPECT_EQ(find_tensor(m, "language_model.model.layers.3.self_attn.q_proj.weight"), nullptr);
  EXPECT_EQ(find_tensor(m, "language_model.model.layers.4.cross_attn_attn_gate"), nullptr);
  ASSERT_NE(find_tensor(m, "vision_model.global_transformer.layers.7.gate_ffn"), nullptr);
  EXPECT_EQ(find_tensor(m, "vision_model.transformer.layers.0.gate_ffn"), nullptr);
  // The facts are the text decoder's; the cross-attention layers cache nothing and a text-only forward skips them.
  EXPECT_EQ(m.facts.n_layers, 40u);
  EXPECT_EQ(m.facts.vocab, 128'256u);
  ASSERT_EQ(m.facts.attention.size(), 40u);
  int cross = 0;
  for (uint64_t i = 0; i < 40; ++i) {
    const bool listed = i % 5 == 3;  // 3, 8, ..., 38
    EXPECT_EQ(m.facts.attention[i].cross_attention_only, listed) << i;
    EXPECT_EQ(m.facts.attention[i].caches_kv, !listed) << i;
    cross += listed;
  }
  EXPECT_EQ(cross, 8);
  // A cross-attention layer outside the decoder, or none left to attend to the text, is refused naming the key.
  nlohmann::json j = nlohmann::json::parse(slurp(std::string(LLMEM_SOURCE_DIR) +
                                                  "/data/catalog/meta-llama__Llama-3.2-11B-Vision-Instruct.json"));
  j["text_config"]["cross_attention_layers"] = {3, 40};
  EXPECT_THROW(
      {
        try {
          model_from_config(HfConfig(j, "bad.json"));
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("cross_attention_layers"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  j["text_config"]["num_hidden_layers"] = 1;
  j["text_config"]["cross_attention_layers"] = {0};
  EXPECT_THROW(model_from_config(HfConfig(j, "bad.json")), Error);
}

// The names and shapes transformers 5.17's save_pretrained writes for a cut Llama-3.2-11B-Vision (5 text layers,
// layer 3 cross-attention; 2 + 1 vision layers), recorded on the GPU machine (bench/gpu/probe/mllama_probe.py,
// bench/data/probe15_h100/mllama_saved_keys.json, with the config it saved): llmem's table names every one, with
// its shape, and no other.
TEST(Arch, MllamaTableIsWhatSavePretrainedWrites) {
  const nlohmann::json saved =
      nlohmann::json::parse(slurp(std::string(LLMEM_SOURCE_DIR) + "/bench/data/probe15_h100/mllama_saved_keys.json"));
  const ArchModel m = model_from_config(HfConfig(saved.at("config"), "mllama_saved_keys.json"));
  std::map<std::string, std::vector<uint64_t>> ours;
  for (const auto& t : m.tensors) ours[t.name] = t.shape;
  std::map<std::string, std::vector<uint64_t>> theirs;
  for (const auto& [k, v] : saved.at("keys").items()) theirs[k] = v.get<std::vector<uint64_t>>();
  EXPECT_EQ(ours.size(), theirs.size());
  for (const auto& [name, shape] : theirs) {
    const auto it = ours.find(name);
    ASSERT_NE(it, ours.end()) << name;
    EXPECT_EQ(it->second, shape) << name;
  }
}

// A derived width whose factors are each plausible but whose product passes 64 bits (heads x head_dim, a tower's
// patch count) is refused naming the file and the quantity, not wrapped to a small, wrong size.
TEST(Arch, DerivedDimensionsThatOverflowAreRefused) {
  auto refused = [](const nlohmann::json& j, const std::string& what) {
    try {
      model_from_config(HfConfig(j, "hostile.json"));
      ADD_FAILURE() << "accepted: " << j.dump();
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("hostile.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
      EXPECT_NE(msg.find("overflows 64 bits"), std::string::npos) << msg;
    }
  };
  const uint64_t big = uint64_t{1} << 40;
  nlohmann::json llama = nlohmann::json::parse(R"({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 2,
      "vocab_size": 100, "intermediate_size": 100})");  // parsed: unsigned numbers, as a file's are
  llama["num_attention_heads"] = big;
  llama["head_dim"] = big;
  refused(llama, "num_attention_heads x head_dim");
  nlohmann::json vlm = nlohmann::json::parse(slurp(std::string(LLMEM_SOURCE_DIR) +
                                                    "/data/catalog/meta-llama__Llama-3.2-11B-Vision-Instruct.json"));
  vlm["vision_config"]["image_size"] = big;
  vlm["vision_config"]["patch_size"] = uint64_t{1};
  refused(vlm, "the patch count");
}

// The catalog holds 80 models or more (82 at this commit) and every file reads into a known family: a config no
// family knows is refused, so this is what keeps every catalog entry usable.
TEST(Arch, CatalogHoldsEightyModelsOrMoreWithoutUnknownFamilies) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(LLMEM_SOURCE_DIR) + "/data/catalog")) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().filename().string());
    EXPECT_NO_THROW(from_catalog_file(entry.path().filename().string()));
    ++n;
  }
  EXPECT_GE(n, 80);
}

// Qwen2.5-VL-7B as Qwen2_5_VLForConditionalGeneration (tests/fixtures/qwen2_5_vl_7b_config.json: the shape keys
// of the Hub's Qwen2.5-VL-7B-Instruct config, decoder fields at the top level as in its 4.x file). By hand: the
// decoder is Qwen2.5-7B's, 7,615,616,512. The vision transformer: Conv3d patch embedding 1,280 x 3 x 2 x 14 x 14 =
// 1,505,280 (no bias); 32 blocks of 19,702,200 (two RMSNorms 2,560; qkv 3,840 x 1,280 + 3,840; proj 1,280^2 +
// 1,280; gate and up 3,420 x 1,280 + 3,420 each; down 1,280 x 3,420 + 1,280); the merger: ln_q 1,280, mlp.0
// 5,120^2 + 5,120, mlp.2 3,584 x 5,120 + 3,584 = 44,574,464. Vision 676,550,144, in all 8,292,166,656: the
// safetensors total of Qwen/Qwen2.5-VL-7B-Instruct (8,292,166,656 parameters, 676,550,144 of them under `visual`,
// as public fine-tuning logs that freeze the tower print them).
TEST(Arch, Qwen25VlCountsTheVisionTransformerAndRunsTheText) {
  const std::string path = std::string(LLMEM_SOURCE_DIR) + "/tests/fixtures/qwen2_5_vl_7b_config.json";
  const ArchModel m = model_from_config(HfConfig::parse(slurp(path), path));
  EXPECT_EQ(m.facts.family, "qwen2_5_vl");
  EXPECT_EQ(role_params(m, TensorRole::kVisionTower), uint64_t{1'505'280} + 32 * uint64_t{19'702'200} + 44'574'464);
  EXPECT_EQ(role_params(m, TensorRole::kVisionTower), 676'550'144u);
  EXPECT_EQ(unique_params(m), 8'292'166'656u);
  EXPECT_TRUE(m.tied.empty());
  EXPECT_EQ(m.facts.n_layers, 28u);
  EXPECT_EQ(m.facts.hidden, 3'584u);
  EXPECT_EQ(m.facts.n_kv_heads, 4u);
  EXPECT_EQ(m.facts.vocab, 152'064u);
  EXPECT_EQ(m.facts.activation, "silu");
  ASSERT_NE(find_tensor(m, "model.layers.0.self_attn.q_proj.bias"), nullptr);  // Qwen2 attention biases
  EXPECT_EQ(find_tensor(m, "model.layers.0.self_attn.o_proj.bias"), nullptr);
  // The same model written as transformers 5 writes it, decoder fields under text_config: the same count.
  nlohmann::json j = nlohmann::json::parse(slurp(path));
  nlohmann::json text = nlohmann::json::object();
  for (const char* k : {"hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
                        "num_key_value_heads", "vocab_size", "tie_word_embeddings"}) {
    text[k] = j[k];
    j.erase(k);
  }
  j["text_config"] = text;
  EXPECT_EQ(unique_params(model_from_config(HfConfig(j, "nested"))), 8'292'166'656u);
}

// Granite 3.x (GraniteForCausalLM) reads as a Llama: the shapes of granite-3.1-8b (hidden 4,096, 40 layers, 32 heads,
// 8 KV heads, MLP 12,800, vocabulary 49,159, tied) by hand: embeddings 201,355,264; per layer q and o 4,096^2, k and
// v 1,024 x 4,096, MLP 3 x 12,800 x 4,096, two norms: 199,237,632 x 40 = 7,969,505,280; the final norm 4,096:
// 8,170,864,640 (the 8.17B its Hub page shows). The multipliers are scalars and add no parameter; GraniteConfig
// does not tie by default.
TEST(Arch, GraniteIsLlamaShapedWithScalarMultipliers) {
  const char* text = R"({"architectures": ["GraniteForCausalLM"], "model_type": "granite", "hidden_size": 4096,
      "intermediate_size": 12800, "num_attention_heads": 32, "num_hidden_layers": 40, "num_key_value_heads": 8,
      "vocab_size": 49159, "tie_word_embeddings": true, "attention_multiplier": 0.0078125,
      "embedding_multiplier": 12.0, "residual_multiplier": 0.22, "logits_scaling": 16.0})";
  const ArchModel m = model_from_config(HfConfig::parse(text, "granite"));
  EXPECT_EQ(m.facts.family, "llama");
  EXPECT_EQ(unique_params(m), uint64_t{201'355'264} + 40 * uint64_t{199'237'632} + 4'096);
  EXPECT_EQ(unique_params(m), 8'170'864'640u);
  ASSERT_EQ(m.tied.size(), 1u);
  nlohmann::json untied = nlohmann::json::parse(text);
  untied.erase("tie_word_embeddings");
  EXPECT_EQ(unique_params(model_from_config(HfConfig(untied, "granite untied"))), 8'170'864'640u + 201'355'264u);
}

// Mistral-Small-3.1-24B as Mistral3ForConditionalGeneration (tests/fixtures/mistral_small_3_1_24b_config.json: the
// shape keys of the Hub's Mistral-Small-3.1-24B-Instruct-2503 config). By hand: the Mistral decoder, untied: two
// 131,072 x 5,120 tables = 1,342,177,280; 40 layers of 555,755,520 (q 4,096 x 5,120 and o 5,120 x 4,096 with
// head_dim 128, k and v 1,024 x 5,120, MLP 3 x 32,768 x 5,120, two norms); the final norm: 23,572,403,200. Pixtral:
// patch_conv 1,024 x 3 x 14 x 14 = 602,112, ln_pre 1,024, 24 layers of 16,779,264 (four 1,024^2 projections, MLP
// 3 x 4,096 x 1,024, two norms): 403,305,472. The projector: norm 1,024, merging layer 1,024 x 4,096, linear_1
// 5,120 x 1,024, linear_2 5,120^2 = 35,652,608. 24,011,361,280 in all, the safetensors total of
// mistralai/Mistral-Small-3.1-24B-Instruct-2503. With no tie_word_embeddings anywhere (as in the fixture)
// transformers 5.17 ties lm_head to the embedding (PretrainedConfig's default): PyTorch counts 23,340,272,640
// (bench/data/transformers_params_vlm.jsonl); the untied count is the config's with tie_word_embeddings false.
TEST(Arch, Mistral3CountsPixtralAndTheProjector) {
  const std::string path = std::string(LLMEM_SOURCE_DIR) + "/tests/fixtures/mistral_small_3_1_24b_config.json";
  const ArchModel tied = model_from_config(HfConfig::parse(slurp(path), path));
  EXPECT_EQ(unique_params(tied), 23'340'272'640u);
  ASSERT_EQ(tied.tied.size(), 1u);
  nlohmann::json untied = nlohmann::json::parse(slurp(path));
  untied["tie_word_embeddings"] = false;
  const ArchModel m = model_from_config(HfConfig(untied, path));
  EXPECT_EQ(m.facts.family, "mistral3");
  EXPECT_EQ(unique_params(m) - role_params(m, TensorRole::kVisionTower),
            uint64_t{1'342'177'280} + 40 * uint64_t{555'755'520} + 5'120);
  EXPECT_EQ(role_params(m, TensorRole::kVisionTower),
            uint64_t{602'112} + 1'024 + 24 * uint64_t{16'779'264} + 35'652'608);
  EXPECT_EQ(unique_params(m), 24'011'361'280u);
  EXPECT_TRUE(m.tied.empty());
  EXPECT_EQ(m.facts.n_layers, 40u);
  EXPECT_EQ(m.facts.head_dim, 128u);
  EXPECT_EQ(m.facts.vocab, 131'072u);
  // A text model other than Mistral's is refused with a one-line error naming the key.
  nlohmann::json j = nlohmann::json::parse(slurp(path));
  j["text_config"]["model_type"] = "ministral3";
  try {
    model_from_config(HfConfig(j, "m3"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model_type"), std::string::npos);
  }
}
