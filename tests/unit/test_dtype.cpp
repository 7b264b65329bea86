#include <gtest/gtest.h>

#include "llmem/dtype.hpp"
#include "llmem/tensor.hpp"

using namespace llmem;

TEST(DType, EveryEnumeratorHasARowInOrder) {
  const auto& all = all_dtypes();
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(static_cast<size_t>(all[i].dtype), i) << all[i].name;
  EXPECT_EQ(all.back().dtype, DType::MXFP4);
}

// Bits per weight published in llama.cpp's quantize tool help and ggml's block structs.
TEST(DType, BitsPerWeightOfGgmlQuants) {
  EXPECT_DOUBLE_EQ(dtype_bits_per_element(DType::Q4_0), 4.5);
  EXPECT_DOUBLE_EQ(dtype_bits_per_element(DType::Q8_0), 8.5);
  EXPECT_DOUBLE_EQ(dtype_bits_per_element(DType::Q4_K), 4.5);
  EXPECT_DOUBLE_EQ(dtype_bits_per_element(DType::Q6_K), 6.5625);
  EXPECT_DOUBLE_EQ(dtype_bits_per_element(DType::Q2_K), 2.625);
  EXPECT_DOUBLE_EQ(dtype_bits_per_element(DType::IQ4_XS), 4.25);
  EXPECT_DOUBLE_EQ(dtype_bits_per_element(DType::MXFP4), 4.25);
}

TEST(DType, BytesRejectPartialBlocksAndOverflow) {
  EXPECT_EQ(dtype_bytes(DType::Q4_0, 64), 36u);
  EXPECT_FALSE(dtype_bytes(DType::Q4_0, 33).has_value());
  EXPECT_FALSE(dtype_bytes(DType::F32, UINT64_MAX / 2).has_value());
  EXPECT_EQ(dtype_bytes(DType::F4, 4), 2u);
}

TEST(DType, Parsing) {
  EXPECT_EQ(dtype_from_safetensors("BF16"), DType::BF16);
  EXPECT_FALSE(dtype_from_safetensors("bf16").has_value());
  EXPECT_FALSE(dtype_from_safetensors("Q4_0").has_value());  // not a safetensors dtype
  EXPECT_EQ(dtype_from_ggml_id(12), DType::Q4_K);
  EXPECT_FALSE(dtype_from_ggml_id(4).has_value());   // Q4_2, removed from ggml
  EXPECT_FALSE(dtype_from_ggml_id(31).has_value());  // Q4_0_4_4, removed
  EXPECT_EQ(dtype_from_name("fp16"), DType::F16);
  EXPECT_EQ(dtype_from_name("q4_k"), DType::Q4_K);
  EXPECT_EQ(dtype_from_torch("bfloat16"), DType::BF16);
}

TEST(Shape, NumelIsZeroWithAZeroDimensionWhateverTheOthers) {
  EXPECT_EQ(llmem::shape_numel({0, 1ull << 40, 1ull << 40}), 0u);
  EXPECT_EQ(llmem::shape_numel({1ull << 40, 1ull << 40, 0}), 0u);
  EXPECT_EQ(llmem::shape_numel({1ull << 40, 1ull << 40}), std::nullopt);
  EXPECT_EQ(llmem::shape_numel({3, 5}), 15u);
  EXPECT_EQ(llmem::shape_numel({}), 1u);
}
