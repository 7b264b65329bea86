// llama.cpp as an engine: a model as llama.cpp sees it (GGUF tensor names, ggml types, hyper-parameters), the
// tensor types its quantiser would choose for a scheme such as Q4_K_M, and what it allocates on the GPU and the
// host for a run.
//
// Mechanisms follow llama.cpp at commit 80fb11ac (2026-09-12), read in its source: the converter
// (convert_hf_to_gguf.py, conversion/*.py) for names and the types it writes, src/llama-quant.cpp for the
// quantiser's per-tensor choices, src/llama-model.cpp / llama-kv-cache.cpp / llama-context.cpp for placement and
// buffers. No code of llama.cpp is used; the rules are re-stated here as data and small functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llmem/arch.hpp"
#include "llmem/dtype.hpp"
#include "llmem/engine.hpp"
#include "llmem/gguf.hpp"

namespace llmem::llamacpp {

inline constexpr const char* kPinnedCommit = "80fb11ac";

struct GgufTensor {
  std::string name;            // e.g. "blk.3.attn_v.weight"
  DType type = DType::F32;
  std::vector<uint64_t> ne;    // ggml order: ne[0] is the row length
  int layer = -1;              // blk.N, -1 for token_embd/output/...
  uint64_t numel() const;
  uint64_t bytes() const;      // dtype_bytes(type, numel); throws when the row is not whole blocks
};

// The hyper-parameters that size llama.cpp's buffers.
struct Hparams {
  std::string arch;            // general.architecture: "llama", "qwen2", "gemma2", ...
  uint64_t n_layer = 0;
  uint64_t n_embd = 0;
  uint64_t n_vocab = 0;
  uint64_t n_ctx_train = 0;
  uint64_t n_ff = 0;
  uint64_t n_expert = 0;
  uint64_t n_expert_used = 0;
  std::vector<uint64_t> n_head;     // per layer
  std::vector<uint64_t> n_head_kv;  // per layer (0 = no attention in that layer)
  uint64_t n_embd_head_k = 0;
  uint64_t n_embd_head_v = 0;
  uint64_t n_swa = 0;               // sliding window (tokens), 0 = none
  std::vector<bool> swa_layers;     // per layer: uses the sliding window
  // GPT-NeoX's use_parallel_residual: attention and FFN both read the layer input (else one after the other)
  bool parallel_residual = true;
  // DeepSeek's multi-head latent attention (llama-hparams is_mla): the cache holds one row per token of
  // n_embd_head_k = kv_lora_rank + n_rot under one KV head, and V is a view of its first n_embd_head_v = kv_lora_rank
  // (no V tensor); the heads before absorption are n_embd_head_k_mla (nope + rope) and n_embd_head_v_mla wide.
  bool mla = false;
  uint64_t n_lora_q = 0;            // 0: one wq projection (DeepSeek-V2-Lite)
  uint64_t n_lora_kv = 0;
  uint64_t n_rot = 0;
  uint64_t n_embd_head_k_mla = 0, n_embd_head_v_mla = 0;
  // Routed experts beyond their count (DeepSeek, gpt-oss): width, leading dense layers, shared experts and how the
  // router picks (llama.cpp's build_moe_ffn arguments).
  uint64_t n_ff_exp = 0;            // 0: the experts are n_ff wide
  uint64_t n_layer_dense_lead = 0;
  uint64_t n_expert_shared = 0;
  uint64_t n_expert_groups = 0, n_group_used = 0;
  int expert_gating = 1;            // LLAMA_EXPERT_GATING_FUNC_TYPE: 1 softmax, 2 sigmoid, 3 softmax of the chosen
  bool expert_weights_norm = false;
  double expert_weights_scale = 0.0;
  uint64_t n_gqa() const { return n_head.empty() || n_head_kv.empty() || n_head_kv[0] == 0 ? 1 : n_head[0] / n_head_kv[0]; }
};

struct Model {
  std::string source;          // file or catalog name, for messages
  Hparams hp;
  std::vector<GgufTensor> tensors;  // in llama.cpp's load order (layer, then name)
  bool predicted = false;      // true when derived from a config rather than read from a GGUF
  std::string scheme;          // quantisation scheme name ("Q4_K_M"), or the GGUF's file type when read
  uint64_t weight_bytes() const;
};

// The general.architecture names llmem has a graph builder for (src/engines/llamacpp/architectures.cpp), in the
// order of that table.
std::vector<std::string> sized_architectures();

// A GGUF as llama.cpp would load it. Throws Error(kUnsupported, file, ...) for an architecture llama.cpp would
// reject (or llmem cannot size), Error(kInvalidInput, ...) for missing hyper-parameters.
Model from_gguf(const GgufFile& gguf);

// The GGUF llama.cpp's converter writes for this model (--outtype bf16 for bf16 checkpoints, f16 otherwise), before
// quantisation. Throws Error(kUnsupported) for families llmem cannot map to llama.cpp's layout.
Model from_config(const ArchModel& model, const std::string& source);

// ---- quantisation ------------------------------------------------------------------------------------------
struct QuantScheme {
  std::string name;            // "Q4_K_M"
  int ftype = 0;               // LLAMA_FTYPE_*
  DType base = DType::F16;     // the scheme's default tensor type
  std::string description;
  bool needs_imatrix = false;  // llama-quantize refuses it without --imatrix (its very-low-bit tensors)
};
const std::vector<QuantScheme>& quant_schemes();
// Case-insensitive; Error(kUsage) with the closest names when unknown.
const QuantScheme& find_scheme(const std::string& name);

// llama-quantize's choice of type for every tensor (no imatrix, no overrides), applied in place.
void quantize(Model& model, const QuantScheme& scheme);

// ---- memory ------------------------------------------------------------------------------------------------
enum class FlashAttn { kAuto, kOn, kOff };

struct RunOptions {
  uint64_t n_ctx = 4096;
  uint64_t n_batch = 2048;
  uint64_t n_ubatch = 512;
  int64_t n_gpu_layers = -1;   // -1: all (llama.cpp's default), else 0..n_layer+1
  DType type_k = DType::F16;
  DType type_v = DType::F16;
  FlashAttn flash_attn = FlashAttn::kAuto;
  uint64_t n_parallel = 1;
  // Tensors kept off their layer's device (llama.cpp's --override-tensor PATTERN=BUFFER, std::regex_search on the
  // tensor's name, the first match wins): buffer "CPU" (host memory) or "CUDA0".
  std::vector<std::pair<std::string, std::string>> tensor_overrides;
  // --cpu-moe / --n-cpu-moe N (common/arg.cpp): the routed experts' tensors (blk.I.ffn_{up,down,gate,gate_up}_(ch)exps)
  // of layers I < cpu_moe_layers stay in host memory; checked after tensor_overrides. UINT64_MAX: every layer.
  uint64_t cpu_moe_layers = 0;
  // Host-resident weights mapped from the file (llama.cpp's default) or, with --no-mmap, read into pinned host
  // memory (CUDA_Host).
  bool mmap = true;
  bool mlock = false;  // --mlock: not mapped (mmap false) and the weights' host buffer locked in RAM
  // Several GPUs (--split-mode layer, llama.cpp's default): the offloaded layers and the output layer split over
  // n_gpus in proportion to tensor_split (empty: equal shares, what llama.cpp's default split by free memory gives
  // identical idle GPUs), each with its own buffers; --split-mode none puts everything on main_gpu.
  uint64_t n_gpus = 1;
  std::vector<double> tensor_split;
  bool split_none = false;
  uint64_t main_gpu = 0;
};

// The buffer types --override-tensor accepts with one CUDA GPU (parse_tensor_buffer_overrides: each device's
// default buffer type), and a usage error naming them for any other. Also checks that the pattern is a regex.
void check_tensor_override(const std::string& pattern, const std::string& buffer);

// GPU and host memory of a llama.cpp process (CUDA build, one GPU) for the run. Components carry device "gpu" or
// "host"; process_peak_bytes is the GPU process peak NVML shows. Throws Error(kUnsupported) for a model whose
// architecture is not one of sized_architectures().
Estimate estimate(const Model& model, const RunOptions& run, const GpuProfile& gpu);

// The CPU backend's compute buffer for a run with every layer on the CPU (a CPU build of llama.cpp): the same graph
// builders with the CPU buffer's alignment and the embeddings gathered inside the graph. llama.cpp logs it as "CPU
// compute buffer size", which checks the builders against llama.cpp on any machine (tests/unit/test_llamacpp.cpp).
uint64_t cpu_compute_buffer_bytes(const Model& model, const RunOptions& run);

}  // namespace llmem::llamacpp
