// Quantised checkpoints: quantization_config read into a scheme, the tensors each scheme stores, and how
// transformers 5.17 loads them. Byte counts are worked out by hand in the comments from the libraries' source
// (cited in src/arch/quantization.cpp); the header tests write each scheme's layout literally, as the library
// writes it, into a synthetic safetensors file and check the derived list equals what the parser reads back.
#include <algorithm>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "fixtures/safetensors_writer.hpp"
#include "llmem/catalog.hpp"
#include "llmem/error.hpp"
#include "llmem/params.hpp"
#include "llmem/quantization.hpp"
#include "llmem/safetensors.hpp"
#include "llmem/transformers.hpp"

using namespace llmem;
using namespace llmem::fixtures;

namespace {

// A tiny llama: hidden 64, ffn 128, one layer, 4 heads of 16, 2 KV heads (kv width 32), vocab 256, untied, fp16.
// Linear weights [out, in]: q [64,64] 4096, k [32,64] 2048, v [32,64] 2048, o [64,64] 4096, gate [128,64] 8192,
// up [128,64] 8192, down [64,128] 8192: 36,864 elements. Unquantised: embed [256,64] 16,384 + lm_head 16,384 +
// three norms of 64 = 32,960 elements, 65,920 bytes in F16.
constexpr uint64_t kPlainBytes = 65920;

std::string tiny_llama(const std::string& quant) {
  return R"({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
             "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
             "tie_word_embeddings": false, "torch_dtype": "float16", "quantization_config": )" +
         quant + "}";
}

ArchModel model_of(const std::string& config) { return model_from_config(HfConfig::parse(config, "config.json")); }

uint64_t stored_bytes_of(const std::string& quant) { return count_from_model(model_of(tiny_llama(quant))).stored_bytes; }

std::string error_of(const std::string& config, bool details = true) {
  try {
    (void)count_from_model(model_of(config), details);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct Linear {
  std::string module;  // "model.layers.0.self_attn.q_proj"
  uint64_t out, in;
};
const std::vector<Linear> kLinears = {
    {"model.layers.0.self_attn.q_proj", 64, 64},  {"model.layers.0.self_attn.k_proj", 32, 64},
    {"model.layers.0.self_attn.v_proj", 32, 64},  {"model.layers.0.self_attn.o_proj", 64, 64},
    {"model.layers.0.mlp.gate_proj", 128, 64},    {"model.layers.0.mlp.up_proj", 128, 64},
    {"model.layers.0.mlp.down_proj", 64, 128},
};

// The checkpoint a quantiser writes for the tiny llama: the unquantised tensors in F16 and each linear layer as
// `layout` spells it.
std::vector<FakeTensor> checkpoint(const std::function<std::vector<FakeTensor>(const Linear&)>& layout) {
  std::vector<FakeTensor> t = {{"model.embed_tokens.weight", "F16", {256, 64}},
                               {"model.layers.0.input_layernorm.weight", "F16", {64}},
                               {"model.layers.0.post_attention_layernorm.weight", "F16", {64}},
                               {"model.norm.weight", "F16", {64}},
                               {"lm_head.weight", "F16", {256, 64}}};
  for (const auto& l : kLinears)
    for (auto& x : layout(l)) t.push_back(std::move(x));
  return t;
}

// Writes config.json and model.safetensors, counts them as `llmem params DIR` does, and returns the report.
ParamsReport count_dir(const TempDir& tmp, const std::string& config, const std::vector<FakeTensor>& tensors) {
  std::ofstream(tmp.file("config.json")) << config;
  write_safetensors(tmp.file("model.safetensors"), tensors);
  return count_params(tmp.path());
}

void expect_header_agrees(const std::string& quant, const std::function<std::vector<FakeTensor>(const Linear&)>& layout,
                          bool exact_bytes = true) {
  TempDir tmp;
  const ParamsReport r = count_dir(tmp, tiny_llama(quant), checkpoint(layout));
  ASSERT_TRUE(r.comparison);
  EXPECT_TRUE(r.comparison->stored_checked);
  EXPECT_TRUE(r.comparison->stored_mismatch.empty()) << (r.comparison->stored_mismatch.empty() ? "" : r.comparison->stored_mismatch[0]);
  EXPECT_TRUE(r.comparison->same_count);
  ASSERT_TRUE(r.from_config && r.from_weights);
  if (exact_bytes) {
    EXPECT_EQ(r.from_config->stored_bytes, r.from_weights->stored_bytes);
  }
}

}  // namespace

// --- bytes per scheme, by hand -------------------------------------------------------------------------------

TEST(Quantization, Fp8BlockScales) {
  // F8_E4M3 weights: 36,864 bytes. weight_scale_inv F32 [ceil(out/32), ceil(in/32)]: q 2x2, k 1x2, v 1x2, o 2x2,
  // gate 4x2, up 4x2, down 2x4 = 36 scales, 144 bytes. 65,920 + 36,864 + 144 = 102,928.
  EXPECT_EQ(stored_bytes_of(R"({"quant_method": "fp8", "weight_block_size": [32, 32], "activation_scheme": "dynamic"})"), 102928u);
  // the default block (FineGrainedFP8Config: 128x128) covers each weight with one scale: 7 x 4 = 28 bytes
  EXPECT_EQ(stored_bytes_of(R"({"quant_method": "fp8"})"), kPlainBytes + 36864 + 28);
}

TEST(Quantization, Bnb4BitNf4) {
  // weight U8 [n/2, 1]: 18,432. absmax F32 [n/64]: (64+32+32+64+128+128+128) x 4 = 2,304. quant_map F32 [16]: 7 x 64
  // = 448. quant_state JSON {"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [64, 64]}: 77
  // characters for q, k, v, o and 78 for gate, up, down ("[128, 64]", "[64, 128]"): 542.
  // 65,920 + 18,432 + 2,304 + 448 + 542 = 87,646.
  const ParamCount c = count_from_model(model_of(tiny_llama(R"({"quant_method": "bitsandbytes", "load_in_4bit": true,
      "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": false})")));
  EXPECT_EQ(c.stored_bytes, 87646u);
  EXPECT_TRUE(c.stored_exact);
  EXPECT_EQ(c.quant_method, "bitsandbytes");
}

TEST(Quantization, Bnb4BitDoubleQuantIsApproximate) {
  // absmax U8 [n/64]: 576 bytes; nested_absmax F32 [ceil(blocks/256)] = 1 each: 28; nested_quant_map F32 [256]:
  // 7 x 1,024 = 7,168; quant_map 448; JSON grows by the nested fields, whose nested_offset text depends on the data
  const ArchModel m = model_of(tiny_llama(R"({"quant_method": "bitsandbytes", "load_in_4bit": true,
      "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true})"));
  const ParamCount c = count_from_model(m);
  EXPECT_FALSE(c.stored_exact);
  // everything but the JSON text: 65,920 + 18,432 + 576 + 28 + 7,168 + 448 = 92,572
  uint64_t json = 0;
  for (const auto& t : stored_tensors(m.tensors, *m.quant).tensors)
    if (t.name.find(".quant_state.") != std::string::npos) json += t.data_bytes;
  EXPECT_EQ(c.stored_bytes - json, 92572u);
}

TEST(Quantization, Bnb8Bit) {
  // weight I8: 36,864; SCB F32 [out]: (64+32+32+64+128+128+64) x 4 = 2,048; weight_format U8 []: 7.
  // 65,920 + 36,864 + 2,048 + 7 = 104,839.
  EXPECT_EQ(stored_bytes_of(R"({"quant_method": "bitsandbytes", "load_in_8bit": true})"), 104839u);
}

TEST(Quantization, Gptq4BitGroup32) {
  // per [out, in]: qweight I32 [in/32*4, out] = n/2 bytes; qzeros I32 [in/32, out/8]; scales F16 [in/32, out];
  // g_idx I32 [in]. q: 2,048 + 64 + 256 + 256 = 2,624; k, v: 1,024 + 32 + 128 + 256 = 1,440; o 2,624;
  // gate, up: 4,096 + 128 + 512 + 256 = 4,992; down: 4,096 + 128 + 512 + 512 = 5,248. Sum 23,360 + 65,920 = 89,280.
  EXPECT_EQ(stored_bytes_of(R"({"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": true, "sym": true})"), 89280u);
  // group_size -1: one group. q: 2,048 + 1x8x4 + 1x64x2 + 256 = 2,464 (the rest alike): fewer bytes than groups of 32
  EXPECT_LT(stored_bytes_of(R"({"quant_method": "gptq", "bits": 4, "group_size": -1})"), 89280u);
}

TEST(Quantization, AwqGemm) {
  // qweight I32 [in, out/8] = n/2 bytes; qzeros I32 [in/32, out/8]; scales F16 [in/32, out]. q: 2,048 + 64 + 256
  // = 2,368; k, v: 1,024 + 32 + 128 = 1,184; o 2,368; gate, up, down: 4,096 + 128 + 512 = 4,736.
  // Sum 21,312 + 65,920 = 87,232.
  EXPECT_EQ(stored_bytes_of(R"({"quant_method": "awq", "bits": 4, "group_size": 32, "version": "gemm", "zero_point": true})"), 87232u);
}

TEST(Quantization, CompressedTensorsPackQuantized) {
  // weight_packed I32 [out, in/8] = n/2: 18,432; weight_shape I64 [2]: 7 x 16 = 112; weight_scale F16
  // [out, in/32]: (128+64+64+128+256+256+256) x 2 = 2,304. 65,920 + 18,432 + 112 + 2,304 = 86,768.
  EXPECT_EQ(stored_bytes_of(R"({"quant_method": "compressed-tensors", "format": "pack-quantized", "ignore": ["lm_head"],
      "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int", "symmetric": true,
      "strategy": "group", "group_size": 32}, "input_activations": null}}})"),
            86768u);
}

TEST(Quantization, CompressedTensorsFloatQuantizedStaticInput) {
  // weight F8_E4M3: 36,864; weight_scale F16 [out, 1]: 512 x 2 = 1,024; input_scale F16 [1]: 7 x 2 = 14.
  // 65,920 + 36,864 + 1,024 + 14 = 103,822.
  EXPECT_EQ(stored_bytes_of(R"({"quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["lm_head"],
      "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"num_bits": 8, "type": "float", "strategy": "channel"},
      "input_activations": {"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": false}}}})"),
            103822u);
}

TEST(Quantization, IgnoreListsKeepModulesInTheirDtype) {
  // fp8 with the MLP left out: only q, k, v, o quantised: 12,288 F8 bytes + 4 scales; gate/up/down stay F16
  // (24,576 elements, 49,152 bytes). 65,920 + 12,288 + 16 + 49,152 = 127,376.
  EXPECT_EQ(stored_bytes_of(R"({"quant_method": "fp8", "modules_to_not_convert": ["mlp"]})"), 127376u);
  // compressed-tensors' regex ignore, and lm_head kept because it is listed
  EXPECT_TRUE(module_matches("model.layers.3.mlp.gate", "re:.*mlp.gate$"));
  EXPECT_FALSE(module_matches("model.layers.3.mlp.gate_proj", "re:.*mlp.gate$"));
  EXPECT_TRUE(module_matches("model.layers.12.self_attn.q_proj", "model.layers.*.self_attn"));
  EXPECT_FALSE(module_matches("model.layers.12.mlp.experts", "model.layers.*.self_attn"));
  EXPECT_TRUE(module_matches("lm_head", "lm_head"));
  EXPECT_FALSE(module_matches("model.layers.0.mlp.gate_proj", "gate"));
}

TEST(Quantization, Mxfp4GptOssExperts) {
  // gpt-oss, hidden 64, intermediate 64, 4 experts: gate_up_proj [4, 64, 128] -> _blocks U8 [4, 128, 2, 16]
  // (16,384 bytes) and _scales U8 [4, 128, 2] (1,024); down_proj [4, 64, 64] -> [4, 64, 2, 16] (8,192) and
  // [4, 64, 2] (512). Attention, router, embeddings and biases stay BF16 (quantizer_mxfp4.py's default dtype).
  const ArchModel m = model_of(R"({"model_type": "gpt_oss", "architectures": ["GptOssForCausalLM"], "hidden_size": 64,
      "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
      "num_local_experts": 4, "vocab_size": 256, "quantization_config": {"quant_method": "mxfp4",
      "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}})");
  const StoredTensors s = stored_tensors(m.tensors, *m.quant);
  uint64_t u8 = 0, found = 0;
  for (const auto& t : s.tensors) {
    if (t.dtype == DType::U8) u8 += t.data_bytes;
    if (t.name == "model.layers.0.mlp.experts.gate_up_proj_blocks") {
      EXPECT_EQ(t.shape, (std::vector<uint64_t>{4, 128, 2, 16}));
      ++found;
    }
    if (t.name == "model.layers.0.mlp.experts.down_proj_scales") {
      EXPECT_EQ(t.shape, (std::vector<uint64_t>{4, 64, 2}));
      ++found;
    }
    if (t.name.find("self_attn.q_proj.weight") != std::string::npos) {
      EXPECT_EQ(t.dtype, DType::BF16);
    }
  }
  EXPECT_EQ(found, 2u);
  EXPECT_EQ(u8, 16384u + 1024 + 8192 + 512);
}

TEST(Quantization, GptOss20bMatchesThePublishedCheckpoint) {
  // openai/gpt-oss-20b's model.safetensors.index.json says "total_size": 13761264768 (its 459 tensors: MXFP4
  // expert blocks and scales in U8, the rest in BF16); derived here from config.json alone
  const auto entry = find_in_catalog("openai/gpt-oss-20b");
  ASSERT_TRUE(entry);
  const ParamCount c = count_from_model(model_from_config(HfConfig::parse(std::string(entry->config_json), "gpt-oss-20b")));
  EXPECT_EQ(c.stored_bytes, 13761264768u);
  EXPECT_EQ(c.quant_method, "mxfp4");
}

// --- loading on a GPU ---------------------------------------------------------------------------------------

TEST(Quantization, LoadPaths) {
  const ArchModel fp8 = model_of(tiny_llama(R"({"quant_method": "fp8", "weight_block_size": [32, 32]})"));
  // sm_90 keeps FP8 as stored, the F16 rest loaded in bf16 (same bytes): 102,928
  EXPECT_EQ(weights_as_loaded(fp8.tensors, *fp8.quant, DType::BF16, {90, false}).bytes, 102928u);
  // sm_80 dequantises: every parameter in bf16, (36,864 + 32,960) x 2 = 139,648
  EXPECT_EQ(weights_as_loaded(fp8.tensors, *fp8.quant, DType::BF16, {80, false}).bytes, 139648u);
  // FineGrainedFP8Config(dequantize=True) on sm_90 (--fp8-dequantize): the same as sm_80, and said so
  const LoadedWeights deq = weights_as_loaded(fp8.tensors, *fp8.quant, DType::BF16, {90, false, true});
  EXPECT_EQ(deq.bytes, 139648u);
  EXPECT_TRUE(deq.dequantised);
  EXPECT_NE(deq.how.find("--fp8-dequantize"), std::string::npos) << deq.how;
  EXPECT_FALSE(weights_as_loaded(fp8.tensors, *fp8.quant, DType::BF16, {90, false}).dequantised);
  // bitsandbytes 8-bit on the GPU: weight_format is not a CUDA tensor: 104,839 - 7
  const ArchModel b8 = model_of(tiny_llama(R"({"quant_method": "bitsandbytes", "load_in_8bit": true})"));
  EXPECT_EQ(weights_as_loaded(b8.tensors, *b8.quant, DType::F16, {90, false}).bytes, 104832u);
  // MXFP4: packed only with the kernels on sm_75 or newer
  const ArchModel oss = model_of(R"({"model_type": "gpt_oss", "hidden_size": 64, "intermediate_size": 64, "num_hidden_layers": 1,
      "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "num_local_experts": 4, "vocab_size": 256,
      "quantization_config": {"quant_method": "mxfp4"}})");
  const uint64_t packed = weights_as_loaded(oss.tensors, *oss.quant, DType::BF16, {90, true}).bytes;
  const uint64_t dequant = weights_as_loaded(oss.tensors, *oss.quant, DType::BF16, {90, false}).bytes;
  // dequantised experts: (4x64x128 + 4x64x64) x 2 = 98,304 bytes instead of 26,112 packed
  EXPECT_EQ(dequant - packed, 98304u - 26112u);
  EXPECT_EQ(weights_as_loaded(oss.tensors, *oss.quant, DType::BF16, {70, true}).bytes, dequant);
}

TEST(Quantization, TransformersEstimateLoadsAsTheQuantiserDoes) {
  // the engine's weights component is weights_as_loaded's bytes: FP8 kept on an H100 (sm_90), dequantised to the
  // workload's fp16 on an A100 (sm_80); the note says which, and that it is modelled, not measured
  const ArchModel fp8 = model_of(tiny_llama(R"({"quant_method": "fp8", "weight_block_size": [32, 32]})"));
  Workload w;  // generate, fp16
  const Estimate h100 = estimate_transformers(fp8, w, find_gpu("H100-80GB-HBM3"));
  const Estimate a100 = estimate_transformers(fp8, w, find_gpu("A100-80GB"));
  EXPECT_EQ(h100.weight_bytes, 102928u);
  EXPECT_EQ(a100.weight_bytes, 139648u);
  // kept in FP8: the load was measured, the FP8 kernels' temporaries were not, and they need the kernels package;
  // dequantised: measured with FineGrainedFP8Config(dequantize=True), the same path
  auto noted = [](const Estimate& e, const char* text) {
    return std::any_of(e.notes.begin(), e.notes.end(), [&](const std::string& n) { return n.find(text) != std::string::npos; });
  };
  EXPECT_TRUE(noted(h100, "kernels' own temporaries not"));
  EXPECT_TRUE(noted(h100, "needs the kernels package"));
  EXPECT_TRUE(noted(a100, "measured dequantised on an H100"));
  // training counts the model unquantised, and says so
  w.mode = RunMode::kTrain;
  w.train = TrainMethod::kFull;
  w.dtype = DType::BF16;
  w.prompt_tokens = 8;
  const Estimate train = estimate_transformers(fp8, w, find_gpu("H100-80GB-HBM3"));
  EXPECT_EQ(train.weight_bytes, (36864u + 32960u) * 2);
}

// --- the header is the truth ---------------------------------------------------------------------------------

TEST(QuantizationHeader, Fp8) {
  expect_header_agrees(R"({"quant_method": "fp8", "weight_block_size": [32, 32]})", [](const Linear& l) {
    return std::vector<FakeTensor>{{l.module + ".weight", "F8_E4M3", {l.out, l.in}},
                                   {l.module + ".weight_scale_inv", "F32", {(l.out + 31) / 32, (l.in + 31) / 32}}};
  });
}

TEST(QuantizationHeader, Bnb4) {
  expect_header_agrees(R"({"quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_type": "nf4"})", [](const Linear& l) {
    const uint64_t n = l.out * l.in;
    const std::string js = "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float16\", \"shape\": [" +
                           std::to_string(l.out) + ", " + std::to_string(l.in) + "]}";
    return std::vector<FakeTensor>{{l.module + ".weight", "U8", {n / 2, 1}},
                                   {l.module + ".weight.absmax", "F32", {n / 64}},
                                   {l.module + ".weight.quant_map", "F32", {16}},
                                   {l.module + ".weight.quant_state.bitsandbytes__nf4", "U8", {js.size()}}};
  });
}

TEST(QuantizationHeader, Bnb8) {
  expect_header_agrees(R"({"quant_method": "bitsandbytes", "load_in_8bit": true})", [](const Linear& l) {
    return std::vector<FakeTensor>{{l.module + ".weight", "I8", {l.out, l.in}},
                                   {l.module + ".SCB", "F32", {l.out}},
                                   {l.module + ".weight_format", "U8", {}}};
  });
}

TEST(QuantizationHeader, Gptq) {
  expect_header_agrees(R"({"quant_method": "gptq", "bits": 4, "group_size": 32})", [](const Linear& l) {
    return std::vector<FakeTensor>{{l.module + ".qweight", "I32", {l.in / 8, l.out}},
                                   {l.module + ".qzeros", "I32", {l.in / 32, l.out / 8}},
                                   {l.module + ".scales", "F16", {l.in / 32, l.out}},
                                   {l.module + ".g_idx", "I32", {l.in}}};
  });
}

TEST(QuantizationHeader, Awq) {
  expect_header_agrees(R"({"quant_method": "awq", "bits": 4, "group_size": 32})", [](const Linear& l) {
    return std::vector<FakeTensor>{{l.module + ".qweight", "I32", {l.in, l.out / 8}},
                                   {l.module + ".qzeros", "I32", {l.in / 32, l.out / 8}},
                                   {l.module + ".scales", "F16", {l.in / 32, l.out}}};
  });
}

TEST(QuantizationHeader, CompressedTensorsPacked) {
  expect_header_agrees(R"({"quant_method": "compressed-tensors", "format": "pack-quantized", "ignore": ["lm_head"],
      "config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 4, "strategy": "group", "group_size": 32}}}})",
                       [](const Linear& l) {
                         return std::vector<FakeTensor>{{l.module + ".weight_packed", "I32", {l.out, l.in / 8}},
                                                        {l.module + ".weight_shape", "I64", {2}},
                                                        {l.module + ".weight_scale", "F16", {l.out, l.in / 32}}};
                       });
}

TEST(QuantizationHeader, MismatchIsReported) {
  // a checkpoint whose scales are per 64x64 block while the config says 32x32
  TempDir tmp;
  const ParamsReport r = count_dir(tmp, tiny_llama(R"({"quant_method": "fp8", "weight_block_size": [32, 32]})"),
                                   checkpoint([](const Linear& l) {
                                     return std::vector<FakeTensor>{{l.module + ".weight", "F8_E4M3", {l.out, l.in}},
                                                                    {l.module + ".weight_scale_inv", "F32", {(l.out + 63) / 64, (l.in + 63) / 64}}};
                                   }));
  ASSERT_TRUE(r.comparison);
  EXPECT_FALSE(r.comparison->same_count);
  ASSERT_FALSE(r.comparison->stored_mismatch.empty());
  EXPECT_NE(r.comparison->stored_mismatch[0].find("weight_scale_inv: derived F32 [2, 2] vs header F32 [1, 1]"), std::string::npos);
}

// --- bad input ------------------------------------------------------------------------------------------------

TEST(QuantizationErrors, NameTheFileAndField) {
  EXPECT_EQ(error_of(tiny_llama(R"({"quant_method": "hqq"})")),
            "config.json (quantization_config): 'quant_method' 'hqq' is not known (known: mxfp4, fp8, bitsandbytes, gptq, awq, "
            "compressed-tensors)");
  EXPECT_EQ(error_of(tiny_llama(R"({"bits": 4})")), "config.json (quantization_config): 'quant_method' is missing");
  EXPECT_EQ(error_of(tiny_llama(R"({"quant_method": "gptq", "bits": 5})")),
            "config.json (quantization_config): 'bits' 5 bits is not supported by gptq (supported: 2, 3, 4, 8)");
  EXPECT_EQ(error_of(tiny_llama(R"({"quant_method": "gptq"})")),
            "config.json (quantization_config): 'bits' is missing (the weight bit width gptq needs)");
  EXPECT_EQ(error_of(tiny_llama(R"({"quant_method": "awq", "bits": 8})")),
            "config.json (quantization_config): 'bits' 8 bits is not supported by awq (supported: 4)");
  EXPECT_EQ(error_of(tiny_llama(R"({"quant_method": "bitsandbytes"})")),
            "config.json (quantization_config): 'load_in_4bit' is missing: one of load_in_4bit or load_in_8bit must be true");
  EXPECT_EQ(error_of(tiny_llama(R"({"quant_method": "fp8", "weight_block_size": [128]})")),
            "config.json (quantization_config): 'weight_block_size' must be two positive integers [rows, cols], got [128]");
  EXPECT_EQ(error_of(tiny_llama(R"({"quant_method": "compressed-tensors", "format": "pack-quantized"})")),
            "config.json (quantization_config): 'config_groups' is missing");
  EXPECT_EQ(error_of(tiny_llama(R"("gptq")")), "config.json: 'quantization_config' must be an object");
  EXPECT_EQ(error_of(tiny_llama(R"({"quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["re:(a*)*b"],
      "config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 8, "type": "float"}}}})")),
            "config.json (quantization_config): 'ignore' entry 're:(a*)*b' uses a quantified group or is too long; llmem "
            "evaluates plain regexes only");
  // AWQ's GEMM packing needs whole groups: a group of 48 does not divide 64 inputs
  EXPECT_NE(error_of(tiny_llama(R"({"quant_method": "awq", "bits": 4, "group_size": 48})")).find("not a multiple of group_size 48"),
            std::string::npos);
  // a count for estimates (no stored list derived: check_storable) refuses the same shapes, naming the same tensor
  EXPECT_EQ(error_of(tiny_llama(R"({"quant_method": "awq", "bits": 4, "group_size": 48})"), false),
            error_of(tiny_llama(R"({"quant_method": "awq", "bits": 4, "group_size": 48})")));
  EXPECT_EQ(error_of(tiny_llama(R"({"quant_method": "gptq", "bits": 4})"), false), "");
}

// A skip list's plain names are looked up by the runs of a module's components that end in one of their last
// components (quantization.cpp skipped): the same tensors are kept as module_matches, entry by entry, keeps them.
TEST(Quantization, PlainSkipNamesMatchAsModuleMatches) {
  const std::vector<std::vector<std::string>> lists = {
      {},
      {"mlp"},
      {"lm_head", "model.layers.0.mlp.gate_proj", "layers.1.self_attn"},
      {"self_attn.q_proj", "1.mlp", "model", "layers.0"},
      {"q_proj.", ".q_proj", "model..layers", "0.mlp.down_proj", "o_proj", "norm", "embed_tokens"},
      {"model.layers.*.self_attn", "down_proj", "re:.*up_proj$", "layers.1.mlp.gate_proj"}};
  for (const auto& list : lists) {
    std::string names;
    for (const auto& n : list) names += (names.empty() ? "\"" : ", \"") + n + "\"";
    ArchModel m = model_of(tiny_llama(R"({"quant_method": "fp8", "modules_to_not_convert": [)" + names + "]}"));
    ASSERT_TRUE(m.quant && m.quant->plain_skip);
    const StoredTensors fast = stored_tensors(m.tensors, *m.quant);
    m.quant->plain_skip.reset();  // every entry matched in turn by module_matches
    const StoredTensors each = stored_tensors(m.tensors, *m.quant);
    ASSERT_EQ(fast.tensors.size(), each.tensors.size()) << names;
    for (size_t i = 0; i < fast.tensors.size(); ++i) {
      EXPECT_EQ(fast.tensors[i].name, each.tensors[i].name) << names;
      EXPECT_EQ(fast.tensors[i].dtype, each.tensors[i].dtype) << names;
    }
  }
}
