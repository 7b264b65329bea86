// Element types of tensors, from both worlds: safetensors dtypes and ggml (GGUF) types.
//
// A type is stored in blocks: `block_elems` elements take `block_bytes` bytes. Plain types have blocks of one
// element; quantised ggml types pack 32 or 256 elements with their scales; sub-byte floats (F4, F6) pack a few
// elements into whole bytes. Bytes of a tensor = ceil-free (numel / block_elems) * block_bytes, and a tensor
// whose row is not a whole number of blocks is invalid.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llmem {

enum class DType : uint8_t {
  // plain types, shared by both formats
  F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, C64,
  // safetensors-only low-precision floats
  F8_E4M3, F8_E5M2, F8_E8M0, F6_E2M3, F6_E3M2, F4,
  // ggml quantised types
  Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
  IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ4_NL, IQ3_S, IQ2_S, IQ4_XS, IQ1_M, TQ1_0, TQ2_0, MXFP4,
};

struct DTypeInfo {
  DType dtype;
  std::string_view name;   // canonical name: safetensors spelling for plain types, ggml spelling for quants
  uint32_t block_elems;
  uint32_t block_bytes;
  int ggml_id;             // GGML_TYPE_* value, -1 when ggml has no such type
  bool safetensors;        // a valid safetensors dtype string
};

const DTypeInfo& dtype_info(DType t);
std::string_view dtype_name(DType t);

// Bits per weight, e.g. 4.5 for Q4_0 (18 bytes per 32 elements).
double dtype_bits_per_element(DType t);

// Bytes of `numel` elements, or nullopt if numel is not a whole number of blocks or the product overflows.
std::optional<uint64_t> dtype_bytes(DType t, uint64_t numel);

// Parse a safetensors header dtype ("F16", "BF16", "F8_E4M3", ...). nullopt when unknown.
std::optional<DType> dtype_from_safetensors(std::string_view s);
// Map a GGML_TYPE_* id from a GGUF tensor info. nullopt for unknown or removed ids.
std::optional<DType> dtype_from_ggml_id(uint32_t id);
// Parse a user-facing name, case-insensitive: "fp16", "float16", "bf16", "fp32", "q4_k", "Q8_0", ...
std::optional<DType> dtype_from_name(std::string_view s);
// Map config.json's torch_dtype ("float16", "bfloat16", "float32").
std::optional<DType> dtype_from_torch(std::string_view s);

const std::vector<DTypeInfo>& all_dtypes();

}  // namespace llmem
