// Weights as vLLM loads them on one tensor-parallel rank: "Model loading took X GiB" is the torch memory that
// load_model() added (V1 gpu_model_runner.py load_model: DeviceMemoryProfiler.consumed_memory; V0
// worker/model_runner.py the same), i.e. every parameter and buffer on the rank.
//
// Rules (vLLM 0.6.4-0.11, model_executor/layers/):
//   - vocab_parallel_embedding.py: the vocabulary is padded to a multiple of 64 (DEFAULT_VOCAB_PADDING_SIZE) and
//     split over the ranks; a tied LM head shares the embedding.
//   - linear.py: column-parallel layers (q/k/v, gate/up, fused qkv) split their output, row-parallel ones (o_proj,
//     down_proj) their input; QKVParallelLinear keeps one KV head per rank when there are fewer KV heads than
//     ranks (num_kv_head_replicas). ReplicatedLinear (MoE routers, DeepSeek's q_a/kv_a projections) is whole.
//   - fused_moe/layer.py: without expert parallelism every rank holds all experts, each split like the MLP.
//   - rotary_embedding.py: one cos/sin cache per distinct rope configuration (get_rope caches instances), of
//     max_position x rotary_dim elements in the model dtype (`cache.to(dtype)`); it is a buffer, so it counts.
//   - quantization/*: the bytes each scheme stores per weight (see quantized_linear_bytes).
#include <algorithm>

#include "llmem/error.hpp"
#include "llmem/field_error.hpp"
#include "vllm_internal.hpp"

namespace llmem::vllm::detail {
namespace {

enum class Role { kEmbedding, kLmHead, kRouter, kExpert, kColumn, kRow, kReplicatedLinear, kVector, kOther };

// ASCII lower case: what std::tolower does in the "C" locale llmem runs in, without a call per character (a fit asks
// it of every tensor of a model per estimate: an MoE's tens of thousands)
std::string lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}
bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// The part of a parameter name that says what the module is, e.g. "self_attn.o_proj" for
// "model.layers.3.self_attn.o_proj.weight". Role detection reads module names because the architecture facts do not
// (yet) carry each tensor's parallel layout; this is the one place that does, and it should read arch traits once
// they describe it.
Role role_of(const TensorInfo& t, const ModelFacts& f) {
  const std::string n = lower(t.name);
  if (t.shape.size() == 1) return Role::kVector;
  if (has(n, "lm_head") || has(n, "embed_out")) return Role::kLmHead;
  if (has(n, "embed_tokens") || has(n, ".wte.") || has(n, "word_embeddings") || has(n, "embed_in")) return Role::kEmbedding;
  if (has(n, "embed") || has(n, ".wpe.")) return Role::kOther;  // learned positions: replicated nn.Embedding
  if (has(n, "router") || ((has(n, ".gate.weight") || has(n, "gate.wg")) && f.n_experts && t.shape[0] == f.n_experts))
    return Role::kRouter;
  if (has(n, "experts") && !has(n, "shared_expert")) return Role::kExpert;
  if (has(n, "q_a_proj") || has(n, "kv_a_proj")) return Role::kReplicatedLinear;
  for (const char* row : {"o_proj", "down_proj", "out_proj", "c_proj", "fc2", ".w2.", "dense_4h_to_h", ".wo."})
    if (has(n, row)) return Role::kRow;
  if (has(n, "attention.dense") || has(n, "self_attention.dense") || has(n, "attn.dense") || has(n, "mlp.dense_"))
    return Role::kRow;
  return Role::kColumn;
}

uint64_t kv_heads_per_rank(const ModelFacts& f, uint64_t tp) {
  const uint64_t kv = std::max<uint64_t>(f.n_kv_heads, 1);
  return kv >= tp ? kv / tp : 1;  // QKVParallelLinear: replicate when tp > kv heads
}

// Output rows one rank holds for a column-parallel weight whose full output is `out`.
uint64_t column_rows(const TensorInfo& t, uint64_t out, const ModelFacts& f, uint64_t tp) {
  const std::string n = lower(t.name);
  const uint64_t kv_dim = f.n_kv_heads * f.head_dim;
  if ((has(n, "k_proj") || has(n, "v_proj")) && out == kv_dim && f.attention_kind != "mla")
    return kv_heads_per_rank(f, tp) * f.head_dim;
  const uint64_t q_dim = f.n_heads * f.head_dim;
  if ((has(n, "qkv") || has(n, "query_key_value") || has(n, "c_attn")) && out == q_dim + 2 * kv_dim)
    return q_dim / tp + 2 * kv_heads_per_rank(f, tp) * f.head_dim;
  return (out + tp - 1) / tp;
}

// Bytes one rank stores for a [out x in] linear weight under the checkpoint's quantisation.
uint64_t quantized_linear_bytes(uint64_t out, uint64_t in, const std::optional<Quantization>& q, DType dtype) {
  const uint64_t numel = out * in;
  const uint64_t plain = numel * dtype_info(dtype).block_bytes;
  if (!q) return plain;
  const std::string& m = q->method;
  if (m == "fp8") {
    // quantization/fp8.py: FP8 weight; block-wise checkpoints add one fp32 scale per 128x128 block
    // (weight_scale_inv), per-tensor ones a scalar per logical shard.
    if (q->block_n && q->block_k)
      return numel + ((out + q->block_n - 1) / q->block_n) * ((in + q->block_k - 1) / q->block_k) * 4;
    return numel + 3 * 4;
  }
  if (m == "gptq" || m == "awq") {
    // quantization/gptq.py, awq.py: int32-packed weights (bits/8 bytes per weight), fp16 scales and packed zeros
    // per group of `group_size` inputs; GPTQ also an int32 g_idx per input.
    const uint64_t g = q->group_size ? q->group_size : in;
    const uint64_t groups = (in + g - 1) / g;
    uint64_t bytes = numel * q->weight_bits / 8 + groups * out * 2 + groups * out * q->weight_bits / 8;
    if (m == "gptq") bytes += in * 4;
    return bytes;
  }
  if (m == "compressed-tensors") {
    // compressed_tensors W8A8 int8: int8 weight, one fp32 scale per output channel.
    return numel * q->weight_bits / 8 + out * 4;
  }
  if (m == "mxfp4") return plain;  // attention and routers stay in the model dtype (modules_to_not_convert)
  throw Error(ErrorKind::kUnsupported, "", "vLLM quantization '" + m + "' is not modelled");
}

// MXFP4 experts (quantization/mxfp4.py, 0.11): 4-bit values in uint8 pairs plus one uint8 E8M0 scale per 32 values,
// in shapes padded for the MoE kernel the GPU gets (Mxfp4MoEMethod.create_weights): Marlin pads the intermediate
// size to 128 and the hidden size to 256; SM100 FlashInfer pads both to 256; Triton pads the intermediate size to 64.
// Biases are in the model dtype, padded alike.
//
// Triton's process_weights_after_loading adds two things that stay resident:
// - _swizzle_mxfp4 (utils/mxfp4_utils.py) writes the scales again in HopperMXScaleLayout. The layer deletes its
//   w13_weight and w2_weight but keeps w13_weight_scale and w2_weight_scale, so the scales are held twice. The
//   swizzled copy pads the output rows to 2 x num_warps x 2 x 8 = 256 (num_warps 8 without batched MoE) and the
//   blocks per row to 2 (triton_kernels tensor_details/layout_details/hopper_scale.py swizzle_data).
// - The biases are cast to float32 (the bf16 ones are freed).
// The swizzled values keep their size: the pinned triton_kernels pads them only to the MMA tile (16 x 32 bytes).
// Later triton_kernels releases pad one dimension to 256; 0.14.1's gpt-oss-120b log (64.38 GiB) shows no such padding.
uint64_t round_up(uint64_t v, uint64_t m) { return m ? (v + m - 1) / m * m : v; }

uint64_t mxfp4_expert_bytes(const TensorInfo& t, const ModelFacts& f, uint64_t tp, Mxfp4Backend backend, uint64_t b) {
  const uint64_t inter = f.moe_intermediate / tp, hidden = f.hidden;
  uint64_t pad_i = 64, pad_h = 1;
  if (backend == Mxfp4Backend::kMarlin) { pad_i = 128; pad_h = 256; }
  else if (backend == Mxfp4Backend::kFlashInferSm100) { pad_i = 256; pad_h = 256; }
  const uint64_t ip = round_up(inter, pad_i), hp = round_up(hidden, pad_h);
  const uint64_t experts = t.shape[0];
  std::vector<uint64_t> dims(t.shape.begin() + 1, t.shape.end());
  const bool triton = backend == Mxfp4Backend::kTriton;
  if (dims.size() == 1) {
    // w13_bias [experts, 2 x intermediate], w2_bias [experts, hidden]: by name, since gpt-oss's hidden and
    // intermediate sizes are equal (2880)
    const std::string n = lower(t.name);
    const uint64_t len = dims[0] == 2 * f.moe_intermediate ? 2 * ip : (has(n, "down") || has(n, ".w2") ? hp : ip);
    return experts * len * (triton ? 4 : b);
  }
  const bool gate_up = dims[0] == 2 * f.moe_intermediate || dims[1] == 2 * f.moe_intermediate;
  const uint64_t out = gate_up ? 2 * ip : hp, in = gate_up ? hp : ip;
  const uint64_t numel = experts * out * in;
  uint64_t bytes = numel / 2 + numel / 32;
  if (triton) bytes += experts * round_up(out, 256) * round_up(in / 32, 2);
  return bytes;
}

}  // namespace

Mxfp4Backend mxfp4_backend(int compute_capability, bool force_marlin) {
  if (compute_capability >= 100 && compute_capability < 110) return Mxfp4Backend::kFlashInferSm100;
  if (compute_capability == 90 && !force_marlin) return Mxfp4Backend::kTriton;
  return Mxfp4Backend::kMarlin;
}

uint64_t padded_vocab(uint64_t vocab, uint64_t tp) {
  const uint64_t padded = (vocab + 63) / 64 * 64;
  return padded / std::max<uint64_t>(tp, 1);
}

DType model_dtype(const ArchModel& model, const std::string& dtype_flag) {
  if (dtype_flag == "auto" || dtype_flag.empty()) {
    // config/model.py _get_and_verify_dtype: the checkpoint's dtype, except that float32 checkpoints run in
    // half precision.
    const DType d = model.facts.config_dtype.value_or(DType::BF16);
    return d == DType::F32 ? DType::F16 : d;
  }
  if (dtype_flag == "half" || dtype_flag == "float16" || dtype_flag == "fp16") return DType::F16;
  if (dtype_flag == "bfloat16" || dtype_flag == "bf16") return DType::BF16;
  if (dtype_flag == "float" || dtype_flag == "float32" || dtype_flag == "fp32") return DType::F32;
  throw usage_error("vllm_dtype", "argument {field}: invalid choice: '" + dtype_flag +
                                     "' (choose from 'auto', 'half', 'float16', 'bfloat16', 'float', 'float32')");
}

WeightBreakdown weight_bytes(const ArchModel& model, const Checkpoint& ckpt, const std::optional<Quantization>& q,
                             DType dtype, uint64_t tp, Mxfp4Backend mxfp4) {
  if (q && q->method == "bitsandbytes")
    throw Error(ErrorKind::kUnsupported, "", "bitsandbytes weights (vLLM's in-flight 4/8-bit loader) are not modelled");
  const ModelFacts& f = model.facts;
  const uint64_t b = dtype_info(dtype).block_bytes;
  WeightBreakdown w;
  for (const auto& t : model.tensors) {
    const uint64_t numel = t.numel();
    switch (role_of(t, f)) {
      case Role::kEmbedding: w.embedding += padded_vocab(t.shape[0], tp) * t.shape[1] * b; break;
      case Role::kLmHead: w.lm_head += padded_vocab(t.shape[0], tp) * t.shape[1] * b; break;
      case Role::kRouter: case Role::kOther: case Role::kVector: w.other += numel * b; break;
      case Role::kReplicatedLinear: w.linear += quantized_linear_bytes(t.shape[0], numel / t.shape[0], q, dtype); break;
      case Role::kExpert: {
        // Every rank holds every expert, split along the intermediate dimension (bytes / tp).
        if (q && q->method == "mxfp4" && t.shape.size() >= 2) {
          w.experts += mxfp4_expert_bytes(t, f, tp, mxfp4, b);
        } else if (t.shape.size() == 1) {
          w.experts += numel * b / tp;
        } else {
          const uint64_t out = t.shape[t.shape.size() - 2], in = t.shape.back();
          const uint64_t per_matrix = numel / (out * in);
          const std::string n = lower(t.name);
          const bool row = has(n, "down") || has(n, ".w2");
          const uint64_t out_r = row ? out : (out + tp - 1) / tp, in_r = row ? (in + tp - 1) / tp : in;
          w.experts += per_matrix * quantized_linear_bytes(out_r, in_r, q, dtype);
        }
        break;
      }
      case Role::kColumn: {
        const uint64_t out = t.shape[0], in = numel / out;
        w.linear += quantized_linear_bytes(column_rows(t, out, f, tp), in, q, dtype);
        break;
      }
      case Role::kRow: {
        const uint64_t out = t.shape[0], in = numel / out;
        w.linear += quantized_linear_bytes(out, (in + tp - 1) / tp, q, dtype);
        break;
      }
    }
  }
  w.rope_cache = ckpt.rope_cache_positions * ckpt.rotary_dim * b;
  w.total = w.embedding + w.lm_head + w.linear + w.experts + w.other + w.rope_cache;
  return w;
}

}  // namespace llmem::vllm::detail
