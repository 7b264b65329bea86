// Quantised checkpoints: config.json's `quantization_config` read into one typed scheme, and the tensors such a
// checkpoint stores (names, dtypes, shapes, scales and zero points included), derived from the architecture's
// unquantised tensor list. How transformers 5.17 then holds those weights on a GPU is `weights_as_loaded`.
//
// All knowledge of the formats lives in src/arch/quantization.cpp, each rule citing the file of transformers 5.17
// or of the quantiser library it comes from; docs/memory-model.md ("Checkpoints as stored") lists them.
#pragma once

#include <cstdint>
#include <optional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "llmem/dtype.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/tensor.hpp"

namespace llmem {

enum class QuantMethod : uint8_t {
  kMxfp4,              // gpt-oss: experts as U8 blocks of 32 FP4 values plus U8 E8M0 scales
  kFp8,                // transformers' FineGrainedFP8 (DeepSeek-V3): F8_E4M3 weights, F32 weight_scale_inv per block
  kBnb4,               // bitsandbytes Linear4bit (nf4 / fp4), optionally with double quantisation of absmax
  kBnb8,               // bitsandbytes Linear8bitLt: int8 weights and one F32 scale per row (SCB)
  kGptq,               // GPTQ (auto-gptq / gptqmodel "gptq" format): int32-packed qweight, qzeros, F16 scales, g_idx
  kAwq,                // AutoAWQ GEMM packing: int32-packed qweight and qzeros, F16 scales
  kCompressedTensors,  // compressed-tensors: pack-quantized, int-/naive-quantized, float-quantized
};

// How compressed-tensors groups a weight's scales (QuantizationStrategy).
enum class QuantStrategy : uint8_t { kTensor, kChannel, kGroup, kBlock };

// One compressed-tensors config group: which modules it targets and how their weights are stored.
struct CtGroup {
  std::vector<std::string> targets;   // "Linear", or "re:<regex>" / a module name
  uint32_t bits = 8;
  bool is_float = false;              // type "float" (FP8 E4M3) or "int"
  QuantStrategy strategy = QuantStrategy::kChannel;
  uint64_t group_size = 0;            // kGroup
  uint64_t block_rows = 0, block_cols = 0;  // kBlock (block_structure)
  bool symmetric = true;
  bool static_input = false;          // input_activations with dynamic false: a stored input_scale
  bool operator==(const CtGroup&) const = default;
};

struct QuantScheme {
  QuantMethod method = QuantMethod::kFp8;
  std::string method_name;            // quant_method as written in the config
  uint32_t bits = 0;                  // weight bits (4 for MXFP4 and bnb 4-bit, 8 for FP8 and bnb 8-bit)
  // fp8: weight_block_size [rows, cols]
  uint64_t block_rows = 0, block_cols = 0;
  // bnb 4-bit
  bool nf4 = true;                    // bnb_4bit_quant_type nf4 (else fp4)
  bool double_quant = false;          // bnb_4bit_use_double_quant
  // gptq / awq
  uint64_t group_size = 0;            // 0 = one group over the whole input (GPTQ's group_size -1)
  bool desc_act = false;              // GPTQ act-order: g_idx is a permutation (stored the same size either way)
  bool sym = true;
  std::vector<std::string> block_modules;  // GPTQ modules_in_block_to_quantize, flattened; empty = every linear
  // compressed-tensors
  std::string ct_format;              // pack-quantized, int-quantized, naive-quantized, float-quantized
  std::vector<CtGroup> groups;
  // modules kept in the checkpoint's dtype (modules_to_not_convert, llm_int8_skip_modules, ignore)
  std::vector<std::string> skip;
  // `skip`'s plain module names (no '*', no "re:"), for lookup by every run of whole components of a module name:
  // a checkpoint may list hundreds (Qwen3-235B-A22B-FP8: a router per layer). Set by quant_scheme_from_config;
  // without it (a scheme built by hand) every entry is matched in turn.
  std::shared_ptr<const std::unordered_set<std::string>> plain_skip;
  std::string origin;                 // the config file, for errors
  // Every field (plain_skip: the same table, by pointer; see same_architecture for schemes read from two files).
  bool operator==(const QuantScheme&) const = default;
};

// The scheme config.json names, or nullopt when it has no quantization_config. Throws Error(kInvalidInput) naming
// the file and the field for an unknown quant_method, a missing required field or a bit width the method lacks.
std::optional<QuantScheme> quant_scheme_from_config(const HfConfig& config);

// The dtype a quantised checkpoint keeps its unquantised tensors in when config.json names none: what the method's
// transformers quantiser sets in update_dtype (bf16 for MXFP4, fp16 for bitsandbytes, GPTQ, AWQ and
// compressed-tensors, fp32 for FineGrainedFP8).
DType quant_default_dtype(const QuantScheme& q);

// Whether a module path ("model.layers.3.self_attn.q_proj") matches a skip pattern, as transformers'
// should_convert_module and compressed-tensors' ignore lists match them.
bool module_matches(const std::string& module, const std::string& pattern);

// Throws what stored_tensors(arch_tensors, q, conv1d) would, without deriving the list (reading a source checks
// that its checkpoint can be stored; the list itself is derived where an estimate needs it).
void check_storable(const std::vector<TensorInfo>& arch_tensors, const QuantScheme& q, bool conv1d = false);

struct StoredTensors {
  std::vector<TensorInfo> tensors;  // as the checkpoint stores them, in the architecture's order
  bool exact = true;                // false where a stored size depends on the data (bnb's nested_offset text)
  std::vector<std::string> notes;
};

// The checkpoint's tensors under scheme `q`, from the architecture's unquantised list (`conv1d`: linear weights
// stored [in, out], GPT-2's Conv1D). Throws Error(kInvalidInput) naming the config when a shape cannot be stored
// (e.g. an MXFP4 input width that is not a multiple of 32).
StoredTensors stored_tensors(const std::vector<TensorInfo>& arch_tensors, const QuantScheme& q, bool conv1d = false);

// How transformers 5.17 holds a quantised checkpoint's weights on the GPU.
struct LoadOptions {
  int compute_capability = 0;  // e.g. 90 for sm_90; 0 = unknown (taken as recent)
  bool mxfp4_kernels = false;  // the triton_kernels hub package and Triton >= 3.4 are installed
  bool fp8_dequantize = false;  // FineGrainedFP8Config(dequantize=True)
};
// One tensor as loaded: the stored tensor it is (or, dequantised, the architecture's), in its loaded dtype.
struct LoadedTensor {
  const TensorInfo* tensor;  // its name and shape (its dtype and bytes are those stored)
  DType dtype;
  uint64_t data_bytes;
  // stored in FP8 and dequantised as it loads (Fp8Dequantize): its F8_E4M3 copy and F32 temporaries come first
  bool from_fp8 = false;
};
struct LoadedWeights {
  uint64_t bytes = 0;                 // weight bytes on the GPU after from_pretrained
  // as loaded (dtype and bytes per tensor), pointing into `stored` or, dequantised, into the architecture's tensors
  // (weights_as_loaded's arch_tensors, which must outlive them): an MoE's tens of thousands of tensors are not
  // copied per compute dtype
  std::vector<LoadedTensor> tensors;
  std::shared_ptr<const std::vector<TensorInfo>> stored;  // the checkpoint's tensors as stored, where they are used
  std::string how;                    // one line: what transformers does with this scheme on this GPU
  bool dequantised = false;           // the quantised tensors were loaded in the compute dtype
};
// `stored`: stored_tensors(arch_tensors, q, conv1d).tensors where the caller has it already (derived once per
// source), so that an MoE's tens of thousands of tensors are not derived again per compute dtype.
LoadedWeights weights_as_loaded(const std::vector<TensorInfo>& arch_tensors, const QuantScheme& q, DType compute,
                                const LoadOptions& opt, bool conv1d = false,
                                std::shared_ptr<const std::vector<TensorInfo>> stored = nullptr);

}  // namespace llmem
