#include "llmem/dtype.hpp"

#include <algorithm>
#include <cctype>

#include "llmem/checked.hpp"

namespace llmem {
namespace {

// Block geometry of the ggml types is from ggml's type traits (ggml/src/ggml.c, `type_traits`) and the block
// structs in ggml-common.h; GGML_TYPE_* ids from ggml.h. Ids 4, 5 (Q4_2, Q4_3), 31-33 (Q4_0_4_4 ...) and 36-38
// (IQ4_NL_4_4 ...) were removed from ggml, and llama.cpp rejects files that use them, so llmem does too.
const std::vector<DTypeInfo> kTypes = {
    {DType::F64, "F64", 1, 8, 28, true},
    {DType::F32, "F32", 1, 4, 0, true},
    {DType::F16, "F16", 1, 2, 1, true},
    {DType::BF16, "BF16", 1, 2, 30, true},
    {DType::I64, "I64", 1, 8, 27, true},
    {DType::I32, "I32", 1, 4, 26, true},
    {DType::I16, "I16", 1, 2, 25, true},
    {DType::I8, "I8", 1, 1, 24, true},
    {DType::U64, "U64", 1, 8, -1, true},
    {DType::U32, "U32", 1, 4, -1, true},
    {DType::U16, "U16", 1, 2, -1, true},
    {DType::U8, "U8", 1, 1, -1, true},
    {DType::BOOL, "BOOL", 1, 1, -1, true},
    {DType::C64, "C64", 1, 8, -1, true},  // complex64: two F32 (safetensors' Dtype::C64)
    {DType::F8_E4M3, "F8_E4M3", 1, 1, -1, true},
    {DType::F8_E5M2, "F8_E5M2", 1, 1, -1, true},
    {DType::F8_E8M0, "F8_E8M0", 1, 1, -1, true},
    {DType::F6_E2M3, "F6_E2M3", 4, 3, -1, true},
    {DType::F6_E3M2, "F6_E3M2", 4, 3, -1, true},
    {DType::F4, "F4", 2, 1, -1, true},
    {DType::Q4_0, "Q4_0", 32, 18, 2, false},
    {DType::Q4_1, "Q4_1", 32, 20, 3, false},
    {DType::Q5_0, "Q5_0", 32, 22, 6, false},
    {DType::Q5_1, "Q5_1", 32, 24, 7, false},
    {DType::Q8_0, "Q8_0", 32, 34, 8, false},
    {DType::Q8_1, "Q8_1", 32, 36, 9, false},
    {DType::Q2_K, "Q2_K", 256, 84, 10, false},
    {DType::Q3_K, "Q3_K", 256, 110, 11, false},
    {DType::Q4_K, "Q4_K", 256, 144, 12, false},
    {DType::Q5_K, "Q5_K", 256, 176, 13, false},
    {DType::Q6_K, "Q6_K", 256, 210, 14, false},
    {DType::Q8_K, "Q8_K", 256, 292, 15, false},
    {DType::IQ2_XXS, "IQ2_XXS", 256, 66, 16, false},
    {DType::IQ2_XS, "IQ2_XS", 256, 74, 17, false},
    {DType::IQ3_XXS, "IQ3_XXS", 256, 98, 18, false},
    {DType::IQ1_S, "IQ1_S", 256, 50, 19, false},
    {DType::IQ4_NL, "IQ4_NL", 32, 18, 20, false},
    {DType::IQ3_S, "IQ3_S", 256, 110, 21, false},
    {DType::IQ2_S, "IQ2_S", 256, 82, 22, false},
    {DType::IQ4_XS, "IQ4_XS", 256, 136, 23, false},
    {DType::IQ1_M, "IQ1_M", 256, 56, 29, false},
    {DType::TQ1_0, "TQ1_0", 256, 54, 34, false},
    {DType::TQ2_0, "TQ2_0", 256, 66, 35, false},
    {DType::MXFP4, "MXFP4", 32, 17, 39, false},
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

const std::vector<DTypeInfo>& all_dtypes() { return kTypes; }

const DTypeInfo& dtype_info(DType t) {
  // kTypes is in enum order; the static_assert-free lookup keeps the table the single source.
  for (const auto& i : kTypes)
    if (i.dtype == t) return i;
  return kTypes.front();  // unreachable: every enumerator has a row (checked by a unit test)
}

std::string_view dtype_name(DType t) { return dtype_info(t).name; }

double dtype_bits_per_element(DType t) {
  const auto& i = dtype_info(t);
  return 8.0 * i.block_bytes / i.block_elems;
}

std::optional<uint64_t> dtype_bytes(DType t, uint64_t numel) {
  const auto& i = dtype_info(t);
  if (numel % i.block_elems != 0) return std::nullopt;
  return checked_mul(numel / i.block_elems, i.block_bytes);
}

std::optional<DType> dtype_from_safetensors(std::string_view s) {
  for (const auto& i : kTypes)
    if (i.safetensors && i.name == s) return i.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_ggml_id(uint32_t id) {
  for (const auto& i : kTypes)
    if (i.ggml_id >= 0 && static_cast<uint32_t>(i.ggml_id) == id) return i.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_torch(std::string_view s) {
  if (s.starts_with("torch.")) s.remove_prefix(6);
  if (s == "float16" || s == "half") return DType::F16;
  if (s == "bfloat16") return DType::BF16;
  if (s == "float32" || s == "float") return DType::F32;
  if (s == "float64" || s == "double") return DType::F64;
  return std::nullopt;
}

std::optional<DType> dtype_from_name(std::string_view s) {
  if (iequals(s, "fp16") || iequals(s, "float16") || iequals(s, "half")) return DType::F16;
  if (iequals(s, "bf16") || iequals(s, "bfloat16")) return DType::BF16;
  if (iequals(s, "fp32") || iequals(s, "float32") || iequals(s, "float")) return DType::F32;
  if (iequals(s, "fp64") || iequals(s, "float64")) return DType::F64;
  if (iequals(s, "fp8") || iequals(s, "fp8_e4m3")) return DType::F8_E4M3;
  for (const auto& i : kTypes)
    if (iequals(i.name, s)) return i.dtype;
  return std::nullopt;
}

}  // namespace llmem
