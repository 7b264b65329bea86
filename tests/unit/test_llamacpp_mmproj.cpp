// The mmproj (clip) prediction against llama.cpp 80fb11ac's own loader: the buffers tools/mtmd/clip.cpp reserved
// on the CPU backend (bench/peers/mmproj_measure.cpp --cpu, 2026-12-06) for gemma3 mmproj files written by
// bench/gpu/llamacpp/tiny_mmproj.py (gguf-py, the converter's layout restated; zero weights). Expected values are
// clip's: ggml_backend_buffer_get_size of the weights and ggml_backend_sched_get_buffer_size after the warm-up.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "llmem/error.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/llamacpp_mmproj.hpp"

namespace {

using namespace llmem;

HfConfig gemma3_config(uint64_t layers, uint64_t hidden, uint64_t ff, uint64_t heads, uint64_t image) {
  std::ifstream in(std::string(LLMEM_SOURCE_DIR) + "/tests/fixtures/gemma3_4b_vlm_config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str());
  j["vision_config"]["num_hidden_layers"] = layers;
  j["vision_config"]["hidden_size"] = hidden;
  j["vision_config"]["intermediate_size"] = ff;
  j["vision_config"]["num_attention_heads"] = heads;
  j["vision_config"]["image_size"] = image;
  // the file was written without clip.vision.projector.scale_factor: clip's default pool of 4 (256 tokens at 896 px)
  j["mm_tokens_per_image"] = (image / 14 / 4) * (image / 14 / 4);
  return HfConfig(j, "gemma3 test config");
}

TEST(LlamacppMmproj, Gemma3SiglipTwoLayersF16MatchesClipCpu) {
  const auto f = llamacpp::predict_mmproj(gemma3_config(2, 1152, 4304, 16, 896), "f16");
  EXPECT_EQ(f.tensors.size(), 3u + 2u * 16u + 4u);
  EXPECT_EQ(llamacpp::clip_weights_buffer_bytes(f, true), 88517248u);
  EXPECT_EQ(llamacpp::clip_compute_buffer_bytes(f.hp, true, true), 127139840u);
  EXPECT_EQ(llamacpp::clip_compute_buffer_bytes(f.hp, false, true), 1186988032u);
}

TEST(LlamacppMmproj, Gemma3SmallOneLayerQ8MatchesClipCpu) {
  // 768 wide, 12 heads, 3072 FFN, 448 px: 32 x 32 patches pooled to 8 x 8
  const auto f = llamacpp::predict_mmproj(gemma3_config(1, 768, 3072, 12, 448), "q8_0");
  EXPECT_EQ(f.hp.n_merge, 4u);
  EXPECT_EQ(llamacpp::clip_weights_buffer_bytes(f, true), 16456704u);
  EXPECT_EQ(llamacpp::clip_compute_buffer_bytes(f.hp, true, true), 32243712u);
  EXPECT_EQ(llamacpp::clip_compute_buffer_bytes(f.hp, false, true), 69992448u);
}

TEST(LlamacppMmproj, Gemma3TensorTypes) {
  const auto f = llamacpp::predict_mmproj(gemma3_config(27, 1152, 4304, 16, 896), "q8_0");
  for (const auto& t : f.tensors) {
    if (t.name == "v.blk.0.ffn_down.weight") {
      EXPECT_EQ(t.type, DType::F16);  // 4304-wide rows: not whole Q8_0 blocks
    }
    if (t.name == "v.blk.0.ffn_up.weight") {
      EXPECT_EQ(t.type, DType::Q8_0);
    }
    if (t.name == "mm.input_projection.weight") {
      EXPECT_EQ(t.type, DType::F16);
    }
    if (t.name == "v.patch_embd.weight") {
      EXPECT_EQ(t.type, DType::F32);
    }
  }
  EXPECT_THROW(llamacpp::predict_mmproj(gemma3_config(1, 1152, 4304, 16, 896), "q4_0"), Error);
}

}  // namespace
