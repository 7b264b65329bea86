// Quantised checkpoints saved by transformers 5.17 on the GPU machine (bench/gpu/measure_quantized.py ->
// bench/data/quantized.jsonl): a catalog model cut to a few layers, quantised with FineGrainedFP8Config(
// weight_block_size=[128, 128]) and saved; the bytes of its safetensors headers, per dtype. llmem derives the same
// checkpoint from config.json alone (stored_tensors) and must agree to the byte.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "catalog_model.hpp"
#include "llmem/arch.hpp"
#include "llmem/catalog.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/quantization.hpp"

namespace llmem {
namespace {

TEST(QuantizedMeasured, Fp8CheckpointsAsSavedToTheByte) {
  int compared = 0;
  for (const auto& rec : test::bench_records("quantized.jsonl")) {
    if (!rec.contains("stored_bytes") || rec.at("scheme") != "fp8") continue;
    SCOPED_TRACE(rec.at("id").get<std::string>());
    const std::string id = test::catalog_id(rec.at("model"));
    const auto entry = find_in_catalog(id);
    ASSERT_TRUE(entry) << id;
    auto cfg = nlohmann::json::parse(std::string(entry->config_json));
    cfg["num_hidden_layers"] = rec.at("layers");
    // FineGrainedFP8Config(weight_block_size=[128, 128]).to_dict()'s keys that shape the checkpoint
    cfg["quantization_config"] =
        nlohmann::json::parse(R"({"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]})");
    const ArchModel m = model_from_config(HfConfig(cfg, id));
    ASSERT_TRUE(m.quant);
    const StoredTensors stored = stored_tensors(m.tensors, *m.quant);
    std::map<std::string, uint64_t> by_dtype;
    uint64_t total = 0;
    for (const auto& t : stored.tensors) {
      by_dtype[std::string(dtype_name(t.dtype))] += t.data_bytes;
      total += t.data_bytes;
    }
    EXPECT_EQ(total, rec.at("stored_bytes").get<uint64_t>());
    for (const auto& [dtype, bytes] : rec.at("stored_dtypes").items()) EXPECT_EQ(by_dtype[dtype], bytes.get<uint64_t>()) << dtype;
    ++compared;
  }
  EXPECT_GE(compared, 2);
}

}  // namespace
}  // namespace llmem

namespace llmem {
namespace {

// The indexed lookup of plain skip entries (QuantScheme::plain_skip) answers as matching each entry in turn:
// whole paths, prefixes, last components and inner runs of components; globs and regexes beside them.
TEST(QuantizedMeasured, IndexedSkipListMatchesEntryByEntry) {
  const auto entry = find_in_catalog("Qwen/Qwen3-30B-A3B");
  ASSERT_TRUE(entry);
  auto cfg = nlohmann::json::parse(std::string(entry->config_json));
  cfg["num_hidden_layers"] = 3u;
  cfg["quantization_config"] = nlohmann::json::parse(R"({"quant_method": "fp8", "weight_block_size": [128, 128],
      "modules_to_not_convert": ["lm_head", "model.layers.0.mlp.gate", "self_attn.k_proj", "layers.1", "o_proj",
                                 "model.layers.2.mlp.experts.7", "layers.*.v_proj", "mlp.experts.3.up_proj", "", "x.y"]})");
  const ArchModel m = model_from_config(HfConfig(cfg, "skip test"));
  ASSERT_TRUE(m.quant && m.quant->plain_skip);
  QuantScheme unindexed = *m.quant;
  unindexed.plain_skip = nullptr;
  const auto a = stored_tensors(m.tensors, *m.quant).tensors;
  const auto b = stored_tensors(m.tensors, unindexed).tensors;
  ASSERT_EQ(a.size(), b.size());
  size_t kept = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].dtype, b[i].dtype) << a[i].name;
    kept += a[i].dtype != DType::F8_E4M3 && a[i].shape.size() == 2;
  }
  EXPECT_GT(kept, 0u);
}

}  // namespace
}  // namespace llmem
