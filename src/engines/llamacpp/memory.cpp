// The llama.cpp engine's buffers: what a CUDA build of llama.cpp (commit 80fb11ac) allocates for a model and a
// context, and the estimate that itemises them.
//
// Mechanisms, each from llama.cpp's source:
//  - placement (src/llama-model.cpp load_tensors): with -ngl N over L layers, "layer" L is the output layer and
//    layers i_gpu_start = max(L + 1 - N, 0) .. L go to the GPU; token_embd always stays on the host (input
//    layer). A model without output.weight uses token_embd as its output: llama.cpp creates a duplicate of it in
//    the output layer's buffer, so offloading the output layer puts a copy of the embeddings on the GPU. With
//    mmap (the default) host-side weights stay in the page cache of the mapped file.
//  - weight buffers: one allocation per buffer type holding every tensor padded to the buffer's alignment (128 B
//    for CUDA); quantised tensors get MATRIX_ROW_PADDING (512 elements) of extra row at the end
//    (ggml-cuda.cu ggml_backend_cuda_buffer_type_get_alloc_size).
//  - KV cache (src/llama-kv-cache.cpp, llama-kv-cache-iswa.cpp): n_ctx is padded to 256 (llama-context.cpp);
//    each layer holds K [n_embd_k_gqa x kv_size] and V [n_embd_v_gqa x kv_size] of the cache types, on the
//    device of its layer (offload_kqv). Sliding-window layers (Gemma 2/3) get their own smaller cache of
//    min(n_ctx, n_swa * n_seq + n_ubatch) cells, padded to 256, unless --swa-full.
//  - compute buffer: llama.cpp reserves the worst-case graph (n_ubatch tokens, n_ubatch outputs, the full KV
//    cache) and ggml-alloc packs the graph's intermediate tensors into one buffer per backend. The architecture's
//    builder (builders.cpp, from the table in architectures.cpp) records that graph; galloc.cpp replays the
//    allocator over it.
//  - outside the buffers: the CUDA context, cuBLAS handle and workspace and the ggml-cuda memory pool
//    (data/runtime_overheads.json, measured).
#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <string_view>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "architectures.hpp"
#include "graph.hpp"
#include "llmem/catalog.hpp"
#include "llmem/error.hpp"
#include "llmem/field_error.hpp"
#include "llmem/llamacpp.hpp"
#include "llmem/units.hpp"

namespace llmem::llamacpp {
namespace {

constexpr uint64_t kMatrixRowPadding = 512;

bool quantised(DType type) { return dtype_info(type).block_elems > 1; }

// Which layers (and whether the output layer) -ngl offloads.
struct Placement {
  uint64_t n_layer = 0;
  uint64_t gpu_start = 0;      // layers >= this (n_layer = the output layer) are on the GPU
  bool output_on_gpu = false;
  uint64_t gpu_layers = 0;     // decoder layers on the GPU
};

Placement place_layers(uint64_t n_layer, int64_t n_gpu_layers, std::vector<std::string>& notes) {
  const auto top = static_cast<int64_t>(n_layer) + 1;
  int64_t ngl = n_gpu_layers < 0 ? top : n_gpu_layers;
  if (ngl > top) {
    notes.push_back(fmt::format("{} GPU layers asked for, more than the model's {} layers + output layer: all are offloaded", ngl, n_layer));
    ngl = top;
  }
  Placement p;
  p.n_layer = n_layer;
  p.gpu_start = n_layer + 1 - static_cast<uint64_t>(ngl);
  p.output_on_gpu = ngl >= 1;
  p.gpu_layers = n_layer - std::min(n_layer, p.gpu_start);
  return p;
}

// llama-arch.cpp LLM_TENSOR_INFOS: the tensors of the input layer, which never leaves the host.
bool input_layer_tensor(const std::string& name) {
  return name == "token_embd.weight" || name == "position_embd.weight" || name == "token_types.weight";
}

// The layer whose device a tensor goes to: its blk.N, -1 for the output layer's; the embeddings' norm
// (token_embd_norm, BLOOM) is a repeating-layer tensor placed with layer 0 (llama-arch.cpp: "do the norms on the
// first layer (not the input layer)").
int64_t placement_layer(const GgufTensor& t) {
  return t.layer < 0 && t.name.rfind("token_embd_norm.", 0) == 0 ? 0 : t.layer;
}

// ggml_backend_cuda_buffer_type_get_alloc_size: a quantised tensor whose rows are not a multiple of
// MATRIX_ROW_PADDING gets that many extra columns of one row, once; then the buffer's 128-byte alignment.
uint64_t cuda_alloc_bytes(DType type, uint64_t ne0, uint64_t bytes) {
  if (quantised(type) && ne0 % kMatrixRowPadding != 0) bytes += *dtype_bytes(type, kMatrixRowPadding - ne0 % kMatrixRowPadding);
  return pad_to(bytes, kCudaAlignmentBytes);
}

uint64_t cuda_tensor_bytes(const GgufTensor& t) { return cuda_alloc_bytes(t.type, t.ne.empty() ? 0 : t.ne[0], t.bytes()); }

// common/common.h LLM_FFN_EXPS_REGEX "\\.ffn_(up|down|gate|gate_up)_(ch|)exps", searched in the name (so the
// experts' biases match too), as --cpu-moe and --n-cpu-moe add it per layer (blk.I + the pattern). Written out
// rather than as a std::regex: fit evaluates it for every tensor of every candidate.
bool routed_expert_tensor(const std::string& name) {
  for (const char* stem : {".ffn_up_", ".ffn_down_", ".ffn_gate_", ".ffn_gate_up_"}) {
    for (size_t at = name.find(stem); at != std::string::npos; at = name.find(stem, at + 1)) {
      const std::string_view rest = std::string_view(name).substr(at + std::string_view(stem).size());
      if (rest.rfind("exps", 0) == 0 || rest.rfind("chexps", 0) == 0) return true;
    }
  }
  return false;
}

// Where each tensor lives (llama-model-loader.cpp create_tensor): an --override-tensor pattern that matches the name
// (the first one) names the buffer; else --cpu-moe / --n-cpu-moe keep a layer's routed experts in host memory; else
// the tensor goes with its layer (-ngl), the input layer always to the host.
std::vector<bool> tensors_on_gpu(const Model& m, const Placement& p, const RunOptions& run) {
  std::vector<std::regex> patterns;
  for (const auto& [pattern, buffer] : run.tensor_overrides) patterns.emplace_back(pattern);
  std::vector<bool> on_gpu(m.tensors.size(), false);
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const GgufTensor& t = m.tensors[i];
    bool overridden = false;
    for (size_t k = 0; k < patterns.size() && !overridden; ++k) {
      if (!std::regex_search(t.name, patterns[k])) continue;
      overridden = true;
      on_gpu[i] = run.tensor_overrides[k].second != "CPU";
    }
    if (overridden) continue;
    if (t.layer >= 0 && static_cast<uint64_t>(t.layer) < run.cpu_moe_layers && routed_expert_tensor(t.name)) continue;
    const int64_t layer = placement_layer(t);
    const bool output_layer = layer < 0 && !input_layer_tensor(t.name);
    on_gpu[i] = layer >= 0 ? static_cast<uint64_t>(layer) >= p.gpu_start : output_layer && p.output_on_gpu;
  }
  return on_gpu;
}

struct WeightBytes {
  uint64_t gpu = 0;
  uint64_t host = 0;
  uint64_t host_experts = 0;      // of host: routed experts of layers on the GPU, kept in host memory
  uint64_t tied_output_copy = 0;  // token_embd duplicated into the GPU's output layer
  // host-resident matmul weights the GPU multiplies with for large batches: their copies in the compute buffer
  std::map<std::string, uint64_t> copies;
  // the other host-resident tensors of the layers and the output (norms, biases)
  std::set<std::string> host_small;
};

// op offload (ggml-backend.cpp): the CUDA backend takes an op whose weight is in a host buffer when its batch is
// at least this (ggml-cuda.cu op_offload_min_batch_size, GGML_OP_OFFLOAD_MIN_BATCH's default).
constexpr uint64_t kOpOffloadMinBatch = 32;

WeightBytes weights_by_home(const Model& m, const Placement& p, const std::vector<bool>& on_gpu, uint64_t n_tokens) {
  WeightBytes w;
  bool has_output = false;
  const GgufTensor* token_embd = nullptr;
  for (const auto& t : m.tensors) {
    if (t.name == "output.weight") has_output = true;
    if (t.name == "token_embd.weight") token_embd = &t;
  }
  const bool offload = n_tokens >= kOpOffloadMinBatch;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const GgufTensor& t = m.tensors[i];
    if (on_gpu[i]) {
      w.gpu += cuda_tensor_bytes(t);
      continue;
    }
    w.host += t.bytes();
    if (t.layer >= 0 && static_cast<uint64_t>(t.layer) >= p.gpu_start) w.host_experts += t.bytes();
    // matrices the graph multiplies with (get_rows of the input layer is never offloaded: its batch counts 0)
    const bool matrix = t.ne.size() >= 2 && !input_layer_tensor(t.name) && t.name.size() > 7 &&
                        t.name.compare(t.name.size() - 7, 7, ".weight") == 0;
    if (offload && matrix) w.copies[t.name] = cuda_tensor_bytes(t);
    else if (offload && !input_layer_tensor(t.name)) w.host_small.insert(t.name);
  }
  if (!has_output && token_embd) {
    // the output layer's duplicate of token_embd: in the GPU's buffer, or on the host and copied for large batches
    if (p.output_on_gpu) w.tied_output_copy = cuda_tensor_bytes(*token_embd);
    else if (offload) w.copies["output.weight"] = cuda_tensor_bytes(*token_embd);
  }
  return w;
}

struct KvCache {
  uint64_t n_seq = 1;          // streams (--parallel)
  uint64_t n_ctx_seq = 0;      // cells per stream
  uint64_t n_ctx = 0;          // all cells of the full-attention cache
  bool any_swa = false;
  uint64_t swa_cells = 0;      // cells per stream of the sliding-window cache
  uint64_t gpu_bytes = 0, host_bytes = 0;
  std::vector<uint64_t> layer_gpu_bytes;  // per layer, K and V as the CUDA buffer holds them (0 on the host)
};

KvCache kv_cache(const Hparams& hp, const RunOptions& run, const Placement& p) {
  KvCache kv;
  // llama-context.cpp: n_ctx is padded to 256; with --parallel N and no unified KV cache (llama.cpp's default)
  // each sequence gets its own stream of n_ctx_seq = pad(n_ctx / N, 256) cells, and n_ctx becomes n_ctx_seq * N
  kv.n_seq = std::max<uint64_t>(1, run.n_parallel);
  kv.n_ctx_seq = pad_to(pad_to(run.n_ctx, 256) / kv.n_seq, 256);
  if (kv.n_ctx_seq == 0)
    throw usage_error("n_ctx", fmt::format("{{field}} {} split over {} parallel sequences leaves no cells per sequence", run.n_ctx, kv.n_seq));
  kv.n_ctx = kv.n_ctx_seq * kv.n_seq;
  kv.any_swa = std::any_of(hp.swa_layers.begin(), hp.swa_layers.end(), [](bool b) { return b; });
  // sliding-window layers: per stream min(n_ctx_seq, n_swa + n_ubatch) cells, padded (llama-kv-cache-iswa.cpp)
  kv.swa_cells = kv.any_swa ? std::min(kv.n_ctx_seq, pad_to(hp.n_swa + run.n_ubatch, 256)) : 0;
  for (uint64_t il = 0; il < p.n_layer; ++il) {
    const bool swa = kv.any_swa && hp.swa_layers[il];
    const uint64_t cells = (swa ? kv.swa_cells : kv.n_ctx_seq) * kv.n_seq;
    // one tensor per layer for K and one for V; on CUDA each gets the quantised-row padding and 128-byte alignment
    // MLA caches K only: V is a view of its first kv_lora_rank values (llama-kv-cache.cpp has_v = !is_mla)
    const uint64_t ek = hp.n_head_kv[il] * hp.n_embd_head_k, ev = hp.mla ? 0 : hp.n_head_kv[il] * hp.n_embd_head_v;
    const uint64_t k = *dtype_bytes(run.type_k, ek) * cells;
    const uint64_t v = *dtype_bytes(run.type_v, ev) * cells;
    kv.layer_gpu_bytes.push_back(0);
    if (il >= p.gpu_start) {
      kv.layer_gpu_bytes.back() = cuda_alloc_bytes(run.type_k, ek, k) + cuda_alloc_bytes(run.type_v, ev, v);
      kv.gpu_bytes += kv.layer_gpu_bytes.back();
    } else {
      kv.host_bytes += k + v;
    }
  }
  return kv;
}

GraphShape graph_shape(const RunOptions& run, const KvCache& kv, bool flash_attn) {
  GraphShape s;
  // n_batch and n_ubatch are clamped to the requested context before it is padded (llama-context.cpp)
  s.n_tokens = std::min({run.n_ctx, run.n_batch, run.n_ubatch});
  s.n_tokens = (s.n_tokens + kv.n_seq - 1) / kv.n_seq * kv.n_seq;  // graph_reserve: whole tokens per sequence
  s.n_outputs = s.n_tokens;
  s.n_kv_cells = kv.n_ctx_seq;  // each sequence's stream: the attention of one stream spans its own cells
  s.n_kv_cells_swa = kv.swa_cells;
  s.flash_attn = flash_attn;
  s.type_k = run.type_k;
  s.type_v = run.type_v;
  return s;
}

// The host (CUDA_Host, pinned) compute buffer with every layer on the GPU: the graph inputs, all allocated up
// front, plus the embedding rows the host gathers (llama-graph.cpp inputs; 32-byte alignment).
uint64_t host_compute_buffer(const Model& m, const Architecture& arch, const GraphShape& s) {
  const Hparams& hp = m.hp;
  const uint64_t T = s.n_tokens, E = hp.n_embd;
  const uint64_t ekv = hp.n_head_kv[0] * hp.n_embd_head_k;
  auto a = [](uint64_t x) { return pad_to(x, 32); };
  uint64_t b = a(4 * T) + a(4 * E * T) + (arch.learned_positions || arch.alibi ? 0 : a(4 * T));
  // K and V store indices and the mask; MLA stores K only (build_attn_inp_k)
  auto cache = [&](uint64_t n_kv) {
    const uint64_t v_idx = hp.mla ? 0 : a(s.flash_attn ? 8 * T : 8 * T * ekv);
    return a(8 * T) + v_idx + a((s.flash_attn ? 2 : 4) * n_kv * T);
  };
  b += cache(s.n_kv_cells);
  if (s.n_kv_cells_swa) b += cache(s.n_kv_cells_swa);
  b += a(4 * std::min(s.n_outputs, T));
  // a quantised KV cache rotates Q/K (and V) with Hadamard matrices when head_dim is a multiple of 64
  // (llama-kv-cache.cpp attn_rot_k/v): nrot x nrot and 64 x 64 f32 inputs per cache
  const uint64_t hd = hp.n_embd_head_k;
  if (quantised(s.type_k) && hd > 0 && hd % 64 == 0) {
    const uint64_t nrot = hadamard_k_size(hd);
    const uint64_t per_cache = a(4 * nrot * nrot) + a(4 * 64 * 64);
    b += per_cache * (s.n_kv_cells_swa ? 2 : 1);
  }
  b += a(4 * E * T);                                            // get_rows(token_embd) result
  if (arch.learned_positions) b += a(4 * T) + a(4 * E * T);     // positions and get_rows(position_embd)
  return b;
}

struct Overheads {
  uint64_t base = 0;          // CUDA context, loaded kernels, graphs: what a run with no cuBLAS use adds
  uint64_t cublas = 0;        // cuBLAS handle, its 32 MiB workspace and kernels, when cuBLAS runs at all
  uint64_t granularity = 0;   // the VMM pool maps physical memory in these steps
  // The process's own host memory (measured, data/runtime_overheads.json): while computing, what loading without
  // a mapping adds (upload path), and while loading (before the context's buffers exist).
  uint64_t host_run = 0, host_upload = 0, host_load = 0;
};

// `gpu`: the base holds the H200's per-thread stack reservation, replaced by the card's (stack_reservation_delta).
Overheads llamacpp_overheads(const GpuProfile& gpu) {
  Overheads o;
  const auto j = nlohmann::json::parse(embedded_file("runtime_overheads.json"));
  const auto& l = j.at("llamacpp");
  o.base = static_cast<uint64_t>(l.at("base_bytes").get<int64_t>() + stack_reservation_delta(gpu));
  o.cublas = l.at("cublas_bytes").get<uint64_t>();
  o.granularity = l.at("pool_granularity_bytes").get<uint64_t>();
  o.host_run = l.at("host_run_bytes").get<uint64_t>();
  o.host_upload = l.at("host_upload_bytes").get<uint64_t>();
  o.host_load = l.at("host_load_bytes").get<uint64_t>();
  return o;
}

// What the GPU needs outside the buffers beyond the CUDA context: cuBLAS when anything runs through it, and
// ggml-cuda's memory pool, which grows to the largest temporary any single op needs and never shrinks
// (ggml-cuda.cu, mmq.cu).
struct CudaExtras {
  bool cublas = false;
  uint64_t pool_bytes = 0;
};

// The quantised types ggml-cuda's MMQ kernels take (mmq.cu ggml_cuda_should_use_mmq's list at 80fb11ac); the
// others (IQ1_M, TQ1_0, TQ2_0) multiply batches through cuBLAS.
bool mmq_supported(DType t) {
  switch (t) {
    case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q8_0:
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
    case DType::IQ1_S: case DType::IQ2_XXS: case DType::IQ2_XS: case DType::IQ2_S: case DType::IQ3_XXS:
    case DType::IQ3_S: case DType::IQ4_XS: case DType::IQ4_NL: case DType::MXFP4:
      return true;
    default:
      return false;
  }
}

// MMVQ_MAX_BATCH_SIZE (mmvq.cuh): up to this many columns a quantised weight multiplies with MMVQ, no pool
constexpr uint64_t kMmvqMaxBatch = 8;

// One device of several: `device_tensors` says which weights it multiplies with, `attention_here` whether it runs
// any layer's attention; null: the one GPU.
CudaExtras cuda_extras(const Model& m, const GraphShape& s, const std::vector<bool>& on_gpu, const Overheads& oh,
                       const std::vector<bool>* device_tensors = nullptr, bool attention_here = true) {
  const Hparams& hp = m.hp;
  CudaExtras x;
  x.cublas = !s.flash_attn && attention_here;  // KQ and KQV without flash attention are cuBLAS batched GEMMs
  uint64_t max_k = 0, cublas_pool = 0;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const GgufTensor& t = m.tensors[i];
    if (t.ne.size() < 2 || t.name.find("weight") == std::string::npos) continue;
    // matmul weights: the layers' and the output's (token_embd and position_embd feed get_rows on the host).
    // Those left on the host run on the GPU too for batches of 32 or more (op offload, ggml-backend.cpp).
    const bool gpu = on_gpu[i] && !input_layer_tensor(t.name);
    // after the last layer's attention only the rows that produce logits go on (one per sequence in a run: the last
    // token's), so its FFN and the output matrix multiply a row or two at run time, never through cuBLAS (the
    // reserved worst-case graph is sized, not run)
    if ((t.layer >= 0 && static_cast<uint64_t>(t.layer) + 1 == hp.n_layer && t.name.find(".ffn_") != std::string::npos) ||
        t.name == "output.weight")
      continue;
    if (device_tensors) {
      if (!(*device_tensors)[i] || input_layer_tensor(t.name)) continue;
    } else if (!gpu && !(s.n_tokens >= kOpOffloadMinBatch && (t.layer >= 0 || t.name == "output.weight"))) {
      continue;
    }
    if (t.type == DType::F32 || t.type == DType::F16 || t.type == DType::BF16) {
      if (s.n_tokens > 16) x.cublas = true;  // float weights (and MoE routers) multiply through cuBLAS for batches > 16
    } else if (t.name != "token_embd.weight") {
      if (mmq_supported(t.type)) {
        max_k = std::max(max_k, t.ne[0]);
      } else if (s.n_tokens > kMmvqMaxBatch) {
        // ggml_cuda_mul_mat: a quantised type MMQ has no kernel for, beyond MMVQ's batches, goes to cuBLAS in F16
        // (ggml_cuda_mul_mat_cublas_impl): the weight and the activations converted to F16 and an F16 result, three
        // pool allocations alive together, each rounded to 128 bytes (ggml_cuda_pool_vmm::alloc). An expert
        // tensor is taken one expert at a time, all rows routed to it (mul_mat_id's gathered copies not modelled).
        x.cublas = true;
        const uint64_t k = t.ne[0], n = t.ne[1];
        cublas_pool = std::max(cublas_pool, pad_to(k * n * 2, 128) + pad_to(s.n_tokens * k * 2, 128) +
                                                pad_to(s.n_tokens * n * 2, 128));
      }
    }
  }
  // MMQ: the activations quantised to q8_1 (144 bytes per 128 values, rows padded to 512)
  const uint64_t used = hp.n_expert > 1 ? std::max<uint64_t>(1, hp.n_expert_used) : 1;
  uint64_t pool = std::max(cublas_pool, s.n_tokens * used * pad_to(max_k, 512) * 144 / 128);
  if (!s.flash_attn && attention_here) {
    // KQV = mul_mat(V, softmax(KQ)) in f16: the [n_kv x T x n_head] probabilities converted to f16
    uint64_t nh = 0;
    for (uint64_t il = 0; il < hp.n_layer; ++il) nh = std::max(nh, hp.n_head[il]);
    pool = std::max(pool, 2 * s.n_kv_cells * s.n_tokens * nh);
  }
  x.pool_bytes = pad_to(pool, oh.granularity);
  return x;
}

// llama-model.cpp load_tensors: the split points are the cumulative shares of tensor_split (by default each
// device's free memory: equal for identical idle GPUs), and offloaded layer il (the output layer is il = n_layer)
// goes to the first device whose split point is above (il - i_gpu_start) / act_gpu_layers, in float as there.
// -1: the host.
std::vector<int> layer_devices(const Placement& p, const RunOptions& run) {
  const size_t n = run.n_gpus;
  std::vector<float> splits(n, 1.0f);
  if (!run.tensor_split.empty())
    for (size_t i = 0; i < n; ++i) splits[i] = i < run.tensor_split.size() ? static_cast<float>(run.tensor_split[i]) : 0.0f;
  float sum = 0;
  for (float& x : splits) x = sum += x;
  for (float& x : splits) x /= sum;
  const uint64_t start = std::min(p.gpu_start, p.n_layer + 1);
  const uint64_t act = p.n_layer + 1 - start;
  std::vector<int> dev(p.n_layer + 1, -1);
  if (run.split_none) {
    for (uint64_t il = start; il <= p.n_layer; ++il) dev[il] = static_cast<int>(run.main_gpu);
    return dev;
  }
  for (uint64_t il = start; il <= p.n_layer; ++il) {
    const float x = static_cast<float>(il - start) / static_cast<float>(act);
    const auto at = std::upper_bound(splits.begin(), splits.end(), x) - splits.begin();
    dev[il] = static_cast<int>(std::min<std::ptrdiff_t>(at, static_cast<std::ptrdiff_t>(n) - 1));
  }
  return dev;
}

const Architecture& architecture_of(const Model& m) {
  const Architecture* arch = find_architecture(m.hp.arch);
  if (!arch) throw Error(ErrorKind::kUnsupported, m.source, "llmem has no llama.cpp graph builder for architecture '" + m.hp.arch + "'");
  return *arch;
}

// Several GPUs: each device's own model, KV and compute buffers and its own CUDA context, cuBLAS and pool
// (llama-model.cpp places the layers, llama-context.cpp makes one scheduler over all devices). The compute buffer
// of a device is the whole graph replayed with the other devices' ops muted: the tensors it reads from them (the
// residual stream at its first layer) are split inputs, and with pipeline parallelism (llama-context.cpp: several
// devices, every layer and the output offloaded, --split-mode layer, KV offloaded, no tensor overrides) the
// scheduler keeps GGML_SCHED_MAX_COPIES = 4 copies of every split input and of every input copied in from the
// host, for the whole graph. Host layers' ops offloaded for large batches run on the first device.
void split_over_devices(Estimate& e, const Model& m, const Architecture& arch, const RunOptions& run, const Placement& place,
                        const std::vector<bool>& on_gpu, const KvCache& kv, const GraphShape& s, const Overheads& oh) {
  const Hparams& hp = m.hp;
  const std::vector<int> dev = layer_devices(place, run);
  const bool all_offloaded = place.gpu_start == 0 && place.output_on_gpu;
  // has_tensor_overrides(): any --override-tensor, --cpu-moe or --n-cpu-moe, whether or not a tensor matches
  const bool pipeline = !run.split_none && all_offloaded && run.tensor_overrides.empty() && run.cpu_moe_layers == 0;
  const uint64_t copies = pipeline ? 4 : 1;
  const int output_dev = dev[hp.n_layer];
  const GgufTensor* token_embd = nullptr;
  bool has_output = false;
  for (const auto& t : m.tensors) {
    if (t.name == "token_embd.weight") token_embd = &t;
    if (t.name == "output.weight") has_output = true;
  }
  // each tensor's device (one overridden onto the GPU whose layer is on the host: the first)
  std::vector<int> tensor_dev(m.tensors.size(), 0);
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const int64_t layer = placement_layer(m.tensors[i]);
    tensor_dev[i] = std::max(0, layer >= 0 ? dev[static_cast<size_t>(layer)] : output_dev);
  }
  uint64_t worst = 0;
  std::vector<GpuEstimate> out;
  for (uint64_t d = 0; d < run.n_gpus; ++d) {
    const int di = static_cast<int>(d);
    // the weights this device multiplies with: its own, and on the first device those op offload brings from the host
    std::vector<bool> mine(m.tensors.size(), false);
    for (size_t i = 0; i < m.tensors.size(); ++i) {
      mine[i] = on_gpu[i] ? tensor_dev[i] == di : d == 0 && s.weight_copies && s.weight_copies->count(m.tensors[i].name);
    }
    uint64_t first = UINT64_MAX, last = 0;
    for (uint64_t il = 0; il < hp.n_layer; ++il)
      if (dev[il] == di) first = std::min(first, il), last = std::max(last, il);
    // the first device also runs what op offload takes from the host layers
    if (d == 0 && place.gpu_start > 0 && s.weight_copies) {
      if (first == UINT64_MAX) last = std::min(place.gpu_start, hp.n_layer) - 1;
      first = 0;
    }
    GpuEstimate g;
    g.index = static_cast<unsigned>(d);
    uint64_t weights = 0, kv_bytes = 0, compute = 0;
    for (size_t i = 0; i < m.tensors.size(); ++i)
      if (mine[i] && on_gpu[i]) weights += cuda_tensor_bytes(m.tensors[i]);
    if (!has_output && token_embd && place.output_on_gpu && output_dev == di) weights += cuda_tensor_bytes(*token_embd);
    for (uint64_t il = 0; il < hp.n_layer; ++il)
      if (dev[il] == di) kv_bytes += kv.layer_gpu_bytes[il];
    const bool with_output = output_dev == di;
    if (first != UINT64_MAX || with_output) {
      GraphShape sd = s;
      sd.device_graph = true;
      sd.first_layer = first == UINT64_MAX ? hp.n_layer : first;
      sd.last_layer = first == UINT64_MAX ? 0 : last;
      sd.split_input_copies = copies;
      compute = gpu_compute_buffer(m, arch, sd, with_output);
    }
    const bool used = weights || kv_bytes || compute;
    g.role = first == UINT64_MAX ? (with_output ? "output layer" : "nothing")
                                 : fmt::format("layers {}-{}{}", first, last, with_output ? " + output layer" : "");
    g.weight_bytes = weights;
    g.framework_peak_bytes = g.reserved_peak_bytes = weights + kv_bytes + compute;
    const CudaExtras x = cuda_extras(m, s, on_gpu, oh, &mine, first != UINT64_MAX);
    const uint64_t overheads = used ? oh.base + (x.cublas ? oh.cublas : 0) + x.pool_bytes : 0;
    g.process_peak_bytes = g.framework_peak_bytes + overheads;
    g.peak_phase = e.peak_phase;
    g.components = {{"weights", weights, "CUDA model buffer", "gpu"},
                    {"kv_cache", kv_bytes, "its layers' K and V", "gpu"},
                    {"compute", compute, copies > 1 ? "its part of the graph; split inputs x4 (pipeline parallelism)" : "its part of the graph", "gpu"},
                    {"cuda_runtime", used ? oh.base : 0, "its CUDA context, kernels and graphs", "gpu"},
                    {"cublas", used && x.cublas ? oh.cublas : 0, "its cuBLAS handle and workspace", "gpu"},
                    {"cuda_pool", used ? x.pool_bytes : 0, "its ggml-cuda memory pool", "gpu"}};
    g.fits = g.process_peak_bytes <= e.gpu.budget_bytes();
    worst = std::max(worst, g.process_peak_bytes);
    out.push_back(std::move(g));
  }
  // the GPU components shown are the fullest GPU's, as the per-GPU table says
  const GpuEstimate& fullest = *std::max_element(out.begin(), out.end(), [](const GpuEstimate& a, const GpuEstimate& b) {
    return a.process_peak_bytes < b.process_peak_bytes;
  });
  std::vector<MemoryComponent> shown;
  for (const auto& c : fullest.components)
    if (c.bytes) shown.push_back({c.name, c.bytes, fmt::format("GPU {}: {}", fullest.index, c.detail), "gpu"});
  for (const auto& c : e.components)
    if (c.device == "host") shown.push_back(c);
  e.components = std::move(shown);
  e.per_gpu = std::move(out);
  uint64_t framework = 0;
  for (const auto& g : e.per_gpu) framework = std::max(framework, g.framework_peak_bytes);
  e.framework_peak_bytes = e.reserved_peak_bytes = framework;
  e.process_peak_bytes = worst;
  e.notes.push_back(fmt::format("{} GPUs, --split-mode {}{}: framework and process peak are the fullest GPU's; per GPU "
                                "below (its own CUDA context each)",
                                run.n_gpus, run.split_none ? "none" : "layer",
                                copies > 1 ? ", pipeline parallelism (4 copies of each split input)" : ""));
}

}  // namespace

uint64_t cpu_compute_buffer_bytes(const Model& m, const RunOptions& run) {
  std::vector<std::string> notes;
  const Placement place = place_layers(m.hp.n_layer, 0, notes);
  const KvCache kv = kv_cache(m.hp, run, place);
  GraphShape s = graph_shape(run, kv, run.flash_attn != FlashAttn::kOff);
  s.cpu = true;
  return gpu_compute_buffer(m, architecture_of(m), s, true);
}

void check_tensor_override(const std::string& pattern, const std::string& buffer) {
  if (buffer != "CPU" && buffer != "CUDA0")
    throw usage_error("override_tensor", fmt::format("{{field}}: unknown buffer type '{}' (llama.cpp's with one GPU: CPU, CUDA0)", buffer));
  try {
    std::regex check(pattern);
  } catch (const std::regex_error&) {
    throw usage_error("override_tensor", fmt::format("{{field}}: '{}' is not a regular expression", pattern));
  }
}

Estimate estimate(const Model& m, const RunOptions& run, const GpuProfile& gpu) {
  const Hparams& hp = m.hp;
  const Architecture& arch = architecture_of(m);
  Estimate e;
  e.engine = "llama.cpp";
  e.engine_version = std::string("llama.cpp ") + kPinnedCommit + " (CUDA)";
  e.gpu = gpu;
  e.weight_bytes = m.weight_bytes();
  const Placement place = place_layers(hp.n_layer, run.n_gpu_layers, e.notes);

  // flash attention: "auto" enables it when the backend supports it for the model's head sizes, which the CUDA
  // backend does for these architectures; a quantised V cache requires it.
  const bool flash = run.flash_attn != FlashAttn::kOff;
  if (!flash && quantised(run.type_v))
    throw usage_error("cache_type_v", "a quantised V cache ({field}) needs flash attention (llama.cpp refuses it without)");

  // llama-context.cpp: with flash attention possible, a quantised cache's block must divide the head size
  // (Phi-2's 80-wide heads refuse q8_0: "K cache type q8_0 with block size 32 does not divide n_embd_head_k=80")
  if (run.flash_attn != FlashAttn::kOff) {
    auto check = [&](DType t, uint64_t head, const char* which, const char* field) {
      const uint64_t blck = dtype_info(t).block_elems;
      if (quantised(t) && head % blck != 0)
        throw usage_error(field, fmt::format("{{field}} {} with block size {} does not divide the model's {} head size {} "
                                             "(llama.cpp refuses to create the context)", dtype_name(t), blck, which, head));
    };
    check(run.type_k, hp.n_embd_head_k, "K", "cache_type_k");
    check(run.type_v, hp.n_embd_head_v, "V", "cache_type_v");
  }
  const KvCache kv = kv_cache(hp, run, place);
  GraphShape s = graph_shape(run, kv, flash);
  const std::vector<bool> on_gpu = tensors_on_gpu(m, place, run);
  const WeightBytes weights = weights_by_home(m, place, on_gpu, s.n_tokens);
  // host-resident weights of large batches run on the GPU from copies; the caches of layers left on the host are
  // then read from copies too, and the output layer (when it stays on the host) multiplies on the GPU
  const bool offload = s.n_tokens >= kOpOffloadMinBatch;
  if (offload && !weights.copies.empty()) {
    s.weight_copies = &weights.copies;
    s.host_small_weights = &weights.host_small;
    s.host_kv_layers = std::min(place.gpu_start, hp.n_layer);
  }
  uint64_t compute_gpu = 0;
  if (place.gpu_layers > 0 || place.output_on_gpu || !weights.copies.empty())
    compute_gpu = gpu_compute_buffer(m, arch, s, place.output_on_gpu || offload);
  // the host side: token ids and the embedding rows (get_rows on token_embd), plus everything of the layers left
  // on the host when not all are offloaded
  const uint64_t compute_host = host_compute_buffer(m, arch, s);
  const uint64_t output_buf = 4 * hp.n_vocab * kv.n_seq;
  const Overheads oh = llamacpp_overheads(gpu);
  const CudaExtras extras = cuda_extras(m, s, on_gpu, oh);

  auto add = [&](const std::string& name, uint64_t bytes, const std::string& device, const std::string& detail) {
    if (bytes == 0) return;
    e.components.push_back({name, bytes, detail, device});
  };
  add("weights", weights.gpu, "gpu",
      fmt::format("{} of {} layers{}{} (CUDA model buffer)", place.gpu_layers, hp.n_layer, place.output_on_gpu ? " + output layer" : "",
                  weights.host_experts ? ", less the tensors kept in host memory" : ""));
  add("output (tied)", weights.tied_output_copy, "gpu", "token_embd duplicated as the output matrix");
  add("kv_cache", kv.gpu_bytes, "gpu",
      fmt::format("{} cells (n_ctx padded to 256{}){} × {} layers, {}", kv.n_ctx,
                  kv.n_seq > 1 ? fmt::format("; {} streams of {}", kv.n_seq, kv.n_ctx_seq) : "",
                  kv.any_swa ? fmt::format(", {} per stream for sliding-window layers", kv.swa_cells) : "", place.gpu_layers,
                  hp.mla ? fmt::format("K {} only (MLA: {} latent + {} rope values per token, V a view of K)",
                                       dtype_name(run.type_k), hp.n_lora_kv, hp.n_rot)
                         : fmt::format("K {} V {}", dtype_name(run.type_k), dtype_name(run.type_v))));
  uint64_t largest_copy = 0;
  for (const auto& [name, bytes] : weights.copies) largest_copy = std::max(largest_copy, bytes);
  add("compute", compute_gpu, "gpu",
      fmt::format("worst-case graph: {} tokens, flash attention {}{}", s.n_tokens, flash ? "on" : "off",
                  largest_copy ? fmt::format("; host weights multiply on the GPU from copies (largest {:.1f} MiB)",
                                             static_cast<double>(largest_copy) / kMiB)
                               : ""));
  add("cuda_runtime", oh.base, "gpu",
      fmt::format("CUDA context, kernels and graphs: {:.0f} MiB measured on an NVIDIA H200 with llama.cpp {} "
                  "(data/runtime_overheads.json){}", static_cast<double>(oh.base) / kMiB, kPinnedCommit,
                  stack_reservation_delta(gpu) ? fmt::format(", its per-thread stack reservation replaced by this "
                                                             "card's ({} SMs)", gpu.sm_count)
                                               : std::string()));
  if (extras.cublas) add("cublas", oh.cublas, "gpu", "cuBLAS handle, workspace and kernels (used without flash attention, for float weights and MoE routers)");
  add("cuda_pool", extras.pool_bytes, "gpu", "ggml-cuda's memory pool: the largest per-op temporary (quantised activations, f16 attention probabilities)");
  const std::string host_what = weights.host_experts
                                    ? fmt::format("token_embd, layers left on the host and {:.1f} MiB of tensors kept there",
                                                  static_cast<double>(weights.host_experts) / kMiB)
                                    : "token_embd and layers left on the host";
  if (run.mmap) add("weights (mmap)", weights.host, "host", host_what + ", mapped from the file (page cache)");
  else if (run.mlock) add("weights (locked)", weights.host, "host", host_what + ", read into pinned host memory and locked (--mlock)");
  else add("weights (pinned)", weights.host, "host", host_what + ", read into pinned host memory (--no-mmap)");
  add("kv_cache (host)", kv.host_bytes, "host", "KV cache of the layers left on the host");
  add("compute (host)", compute_host, "host", "host compute buffer");
  add("output", output_buf, "host", "logits of the last token per sequence (f32)");
  // Loading without a mapping uploads the GPU's tensors through pinned staging buffers and a second CUDA backend
  // (llama-model-loader.cpp load_all_data: upload_backend); their host memory stays in the process's peak.
  const bool uploads = !run.mmap && weights.gpu > 0;
  const uint64_t host_runtime = oh.host_run + (uploads ? oh.host_upload : 0);
  add("host runtime", host_runtime, "host",
      fmt::format("the process itself: CUDA runtime, ggml's backends, the program{}; {:.0f} MiB measured with "
                  "llama-bench {} (data/runtime_overheads.json)",
                  uploads ? ", the upload path of a load without mmap" : "", static_cast<double>(host_runtime) / kMiB,
                  kPinnedCommit));

  e.framework_peak_bytes = weights.gpu + weights.tied_output_copy + kv.gpu_bytes + compute_gpu;
  e.reserved_peak_bytes = e.framework_peak_bytes;
  e.process_peak_bytes = e.framework_peak_bytes + oh.base + (extras.cublas ? oh.cublas : 0) + extras.pool_bytes;
  e.host_bytes = weights.host + kv.host_bytes + compute_host + output_buf + host_runtime;
  // The resident peak: with mmap the file is mapped with MAP_POPULATE (llama-mmap.cpp, prefetch), so while loading
  // the whole file is resident in the process besides the runtime; after loading only the host tensors' span stays
  // mapped (unmap_fragment). Those pages are clean page cache: the kernel can reclaim them, so host_bytes (what
  // must stay resident) is what --ram checks, and this peak is what `top` or ru_maxrss shows.
  e.host_peak_bytes = run.mmap ? std::max(e.host_bytes, oh.host_load + m.weight_bytes()) : e.host_bytes;
  e.peak_phase = "context creation (buffers are reserved up front)";
  if (m.predicted)
    e.notes.push_back(fmt::format("tensor types predicted for {} from llama-quantize's rules (no imatrix)", m.scheme));
  if (hp.n_ctx_train && run.n_ctx > hp.n_ctx_train)
    e.notes.push_back(fmt::format("n_ctx {} is beyond the model's training context {}", run.n_ctx, hp.n_ctx_train));
  if (run.n_gpus > 1) split_over_devices(e, m, arch, run, place, on_gpu, kv, s, oh);
  return e;
}

}  // namespace llmem::llamacpp
