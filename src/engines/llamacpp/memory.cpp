// The llama.cpp engine: what a CUDA build of llama.cpp (commit 80fb11ac) allocates for a model and a context.
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
//    cache) and ggml-alloc (ggml/src/ggml-alloc.c) packs the graph's intermediate tensors into one buffer per
//    backend, freeing each tensor after its last consumer and running some ops in place. The buffer size is
//    the allocator's high-water mark; this file builds the same graph (the op sequence of src/models/<arch>.cpp
//    with the tensors' shapes and types) and replays the allocator's rules on it.
//  - outside the buffers: the CUDA context, cuBLAS handle and workspace and the ggml-cuda memory pool
//    (data/runtime_overheads.json, measured).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "llmem/catalog.hpp"
#include "llmem/error.hpp"
#include "llmem/llamacpp.hpp"
#include "llmem/units.hpp"

namespace llmem::llamacpp {
namespace {

constexpr uint64_t kCudaAlignment = 128;
constexpr uint64_t kMatrixRowPadding = 512;

uint64_t pad(uint64_t x, uint64_t n) { return (x + n - 1) / n * n; }

// ---- the graph allocator -----------------------------------------------------------------------------------
//
// A re-statement of ggml_gallocr (ggml-alloc.c) for one buffer: tensors are visited in graph order; inputs are
// allocated first; a node whose op may run in place takes over the memory of a parent that has no other
// consumer and the same layout; a tensor is freed when its last consumer has run (views keep their source
// alive); free blocks are chosen best-fit, and the buffer is the highest end offset ever reached.
struct Tensor {
  uint64_t bytes = 0;
  int view_src = -1;          // a view allocates nothing
  bool inplace = false;       // ggml_op_can_inplace(op)
  bool input = false;
  bool output = false;
  bool external = false;      // weights, KV cache: not in this buffer
  std::vector<int> src;
  std::string layout;         // type and shape, for the same-layout test of in-place reuse
};

class Graph {
 public:
  int external(const std::string& what = "") {
    Tensor t;
    t.external = true;
    t.layout = what;
    return push(t);
  }
  int input(uint64_t bytes, const std::string& layout) {
    Tensor t;
    t.bytes = bytes;
    t.input = true;
    t.layout = layout;
    return push(t);
  }
  // An op producing a new tensor of `elems` elements of `elem_bytes` each.
  int op(uint64_t elems, uint64_t elem_bytes, std::vector<int> src, bool inplace, const std::string& shape) {
    Tensor t;
    t.bytes = elems * elem_bytes;
    t.src = std::move(src);
    t.inplace = inplace;
    t.layout = std::to_string(elem_bytes) + ":" + shape;
    return push(t);
  }
  int view(int of, std::vector<int> extra_src = {}) {
    Tensor t;
    // ggml's view_src is always the root tensor, also for a view of a view (ggml.c ggml_view_impl)
    const int root = tensors_[static_cast<size_t>(of)].view_src >= 0 ? tensors_[static_cast<size_t>(of)].view_src : of;
    t.view_src = root;
    t.src = {of};
    t.src.insert(t.src.end(), extra_src.begin(), extra_src.end());
    return push(t);
  }
  void mark_output(int i) { tensors_[static_cast<size_t>(i)].output = true; }
  const std::vector<Tensor>& tensors() const { return tensors_; }

 private:
  int push(Tensor t) {
    tensors_.push_back(std::move(t));
    return static_cast<int>(tensors_.size()) - 1;
  }
  std::vector<Tensor> tensors_;
};

class DynAllocator {
 public:
  explicit DynAllocator(uint64_t alignment) : alignment_(alignment) {
    blocks_.push_back({0, std::numeric_limits<uint64_t>::max() / 2});
  }
  uint64_t alloc(uint64_t size) {
    size = pad(size, alignment_);
    int best = -1;
    uint64_t best_size = std::numeric_limits<uint64_t>::max();
    for (size_t i = 0; i + 1 < blocks_.size(); ++i) {
      if (blocks_[i].size >= size && blocks_[i].size <= best_size) {
        best = static_cast<int>(i);
        best_size = blocks_[i].size;
      }
    }
    if (best < 0) best = static_cast<int>(blocks_.size()) - 1;
    Block& b = blocks_[static_cast<size_t>(best)];
    const uint64_t off = b.offset;
    b.offset += size;
    b.size -= size;
    if (b.size == 0) blocks_.erase(blocks_.begin() + best);
    max_size_ = std::max(max_size_, off + size);
    return off;
  }
  void free(uint64_t off, uint64_t size) {
    size = pad(size, alignment_);
    // merge with an adjacent block, else insert in address order
    for (size_t i = 0; i < blocks_.size(); ++i) {
      Block& b = blocks_[i];
      if (b.offset + b.size == off) {
        b.size += size;
        if (i + 1 < blocks_.size() && blocks_[i + 1].offset == b.offset + b.size) {
          b.size += blocks_[i + 1].size;
          blocks_.erase(blocks_.begin() + static_cast<long>(i) + 1);
        }
        return;
      }
      if (off + size == b.offset) {
        b.offset = off;
        b.size += size;
        return;
      }
    }
    auto it = std::lower_bound(blocks_.begin(), blocks_.end(), off, [](const Block& b, uint64_t o) { return b.offset < o; });
    blocks_.insert(it, {off, size});
  }
  uint64_t max_size() const { return max_size_; }

 private:
  struct Block {
    uint64_t offset, size;
  };
  uint64_t alignment_;
  std::vector<Block> blocks_;
  uint64_t max_size_ = 0;
};

uint64_t simulate(const Graph& g, uint64_t alignment) {
  const auto& ts = g.tensors();
  const size_t n = ts.size();
  std::vector<int> children(n, 0), views(n, 0);
  std::vector<bool> allocated(n, false);
  std::vector<uint64_t> offset(n, 0);
  DynAllocator a(alignment);
  const bool debug = std::getenv("LLMEM_DEBUG_GALLOC") != nullptr;
  uint64_t last_max = 0;
  auto is_view = [&](size_t i) { return ts[i].view_src >= 0; };
  auto allocate = [&](size_t i) {
    if (allocated[i] || is_view(i) || ts[i].external) return;
    allocated[i] = true;
    if (ts[i].inplace) {
      // the first parent that this allocator owns (never a view), not an output, of the same layout and with no
      // other consumer gives its memory to the node
      for (int p : ts[i].src) {
        const auto pi = static_cast<size_t>(p);
        if (ts[pi].external || is_view(pi) || ts[pi].output || ts[pi].layout != ts[i].layout) continue;
        if (children[pi] == 1 && views[pi] == 0 && allocated[pi]) {
          offset[i] = offset[pi];
          allocated[pi] = false;
          return;
        }
      }
    }
    offset[i] = a.alloc(ts[i].bytes);
    if (debug && a.max_size() > last_max) {
      last_max = a.max_size();
      std::fprintf(stderr, "galloc: high-water %.2f MiB at tensor %zu (%s, %.2f MiB); live:", last_max / 1048576.0, i,
                   ts[i].layout.c_str(), ts[i].bytes / 1048576.0);
      for (size_t j = 0; j < n; ++j)
        if (allocated[j] && ts[j].bytes > (1u << 20)) std::fprintf(stderr, " #%zu %s %.1f", j, ts[j].layout.c_str(), ts[j].bytes / 1048576.0);
      std::fprintf(stderr, "\n");
    }
  };
  for (size_t i = 0; i < n; ++i) {
    if (is_view(i)) views[static_cast<size_t>(ts[i].view_src)] += 1;
    if (ts[i].input) allocate(i);
    for (int p : ts[i].src) children[static_cast<size_t>(p)] += 1;
  }
  for (size_t i = 0; i < n; ++i) {
    if (ts[i].external || ts[i].input) continue;
    if (ts[i].src.empty() && !is_view(i)) continue;
    allocate(i);
    for (int p : ts[i].src) {
      const auto pi = static_cast<size_t>(p);
      children[pi] -= 1;
      if (children[pi] == 0 && views[pi] == 0) {
        if (is_view(pi)) {
          const auto vs = static_cast<size_t>(ts[pi].view_src);
          views[vs] -= 1;
          if (views[vs] == 0 && children[vs] == 0 && allocated[vs] && !ts[vs].output) {
            a.free(offset[vs], ts[vs].bytes);
            allocated[vs] = false;
          }
        } else if (allocated[pi] && !ts[pi].output) {
          a.free(offset[pi], ts[pi].bytes);
          allocated[pi] = false;
        }
      }
    }
  }
  return a.max_size();
}

// ---- the graphs ----------------------------------------------------------------------------------------------

struct GraphShape {
  uint64_t T = 512;        // tokens in the ubatch
  uint64_t outputs = 512;  // rows of logits
  uint64_t n_kv = 4096;    // cells of the (non-SWA) cache the graph attends over
  uint64_t n_kv_swa = 0;   // cells of the SWA cache
  bool flash = true;
  DType type_k = DType::F16, type_v = DType::F16;
};

std::string shp(std::initializer_list<uint64_t> d) {
  std::string s;
  for (uint64_t x : d) s += std::to_string(x) + ",";
  return s;
}

// The GPU split of the worst-case graph, in the order src/models/<arch>.cpp and llama-graph.cpp build it (DFS
// order of the explicit ggml_build_forward_expand calls: Q, then V, then K), with every tensor's type and shape.
// The inputs the host produces (embedding rows, positions, cache indices, masks, output ids) arrive as copies
// made at the start of the split; weights and the KV cache live in their own buffers.
uint64_t gpu_compute_buffer(const Model& m, const GraphShape& s, bool with_output) {
  const Hparams& hp = m.hp;
  const std::string& arch = hp.arch;
  const bool gpt2 = arch == "gpt2";
  const bool gemma2 = arch == "gemma2", gemma3 = arch == "gemma3", gemma = arch == "gemma" || gemma2 || gemma3;
  const bool qk_norm = arch == "qwen3" || arch == "qwen3moe" || gemma3;
  const bool phi3 = arch == "phi3";
  const bool moe = hp.n_expert > 1;
  const uint64_t T = s.T, E = hp.n_embd, V = hp.n_vocab, O = std::min(s.outputs, s.T);
  auto has = [&](const std::string& name) {
    return std::any_of(m.tensors.begin(), m.tensors.end(), [&](const GgufTensor& t) { return t.name == name; });
  };
  const bool q_bias = has("blk.0.attn_q.bias") || has("blk.0.attn_qkv.bias");
  const bool o_bias = has("blk.0.attn_output.bias");
  const uint64_t mask_bytes = s.flash ? 2 : 4;
  const bool any_swa = s.n_kv_swa > 0;

  Graph g;
  const int W = g.external("weights");
  const int KV = g.external("kv");
  // input copies, in the order the scheduler discovers them
  int cur = g.input(4 * E * T, "4:" + shp({E, T}));
  int pos_emb = gpt2 ? g.input(4 * E * T, "4:" + shp({E, T})) : -1;
  const int pos = gpt2 ? -1 : g.input(4 * T, "pos");
  const uint64_t ekv0 = hp.n_head_kv[0] * hp.n_embd_head_k;
  const int k_idx = g.input(8 * T, "kidx");
  const int v_idx = g.input(s.flash ? 8 * T : 8 * T * ekv0, "vidx");
  const int mask = g.input(mask_bytes * s.n_kv * T, "mask");
  int k_idx_swa = -1, v_idx_swa = -1, mask_swa = -1;
  if (any_swa) {
    k_idx_swa = g.input(8 * T, "kidx_swa");
    v_idx_swa = g.input(s.flash ? 8 * T : 8 * T * ekv0, "vidx_swa");
    mask_swa = g.input(mask_bytes * s.n_kv_swa * T, "mask_swa");
  }
  const int out_ids = g.input(4 * O, "out_ids");
  if (gpt2) cur = g.op(E * T, 4, {cur, pos_emb}, true, shp({E, T}));
  if (gemma) cur = g.op(E * T, 4, {cur}, true, shp({E, T}));  // scale by sqrt(n_embd)

  for (uint64_t il = 0; il < hp.n_layer; ++il) {
    const uint64_t nh = hp.n_head[il], nkv = hp.n_head_kv[il], dk = hp.n_embd_head_k, dv = hp.n_embd_head_v;
    const bool swa = any_swa && !hp.swa_layers.empty() && hp.swa_layers[il];
    const uint64_t n_kv = swa ? s.n_kv_swa : s.n_kv;
    const int msk = swa ? mask_swa : mask;
    const int kidx = swa ? k_idx_swa : k_idx, vidx = swa ? v_idx_swa : v_idx;
    const int inpSA = cur;
    // attention norm: rms_norm (new: the residual still needs x), mul (in place); gpt2: norm, mul, add
    int x = g.op(E * T, 4, {cur}, !gpt2, shp({E, T}));
    x = g.op(E * T, 4, {x, W}, true, shp({E, T}));
    if (gpt2) x = g.op(E * T, 4, {x, W}, true, shp({E, T}));
    int q, k, v;
    if (phi3 || gpt2) {
      const uint64_t qkv = dk * nh + 2 * dk * nkv;
      int f = g.op(qkv * T, 4, {W, x}, false, shp({qkv, T}));
      if (q_bias) f = g.op(qkv * T, 4, {f, W}, true, shp({qkv, T}));
      if (gpt2) {  // views made contiguous
        q = g.op(dk * nh * T, 4, {g.view(f)}, false, shp({dk, nh, T}));
        k = g.op(dk * nkv * T, 4, {g.view(f)}, false, shp({dk, nkv, T}));
        v = g.op(dv * nkv * T, 4, {g.view(f)}, false, shp({dv * nkv, T}));
      } else {  // phi3 (llama-graph.cpp build_qkv): strided views of the fused result; rope allocates
        q = g.view(f);
        k = g.view(f);
        v = g.view(f);
      }
    } else {
      q = g.op(dk * nh * T, 4, {W, x}, false, shp({dk * nh, T}));
      if (q_bias) q = g.op(dk * nh * T, 4, {q, W}, true, shp({dk * nh, T}));
      v = g.op(dv * nkv * T, 4, {W, x}, false, shp({dv * nkv, T}));
      if (q_bias) v = g.op(dv * nkv * T, 4, {v, W}, true, shp({dv * nkv, T}));
      k = g.op(dk * nkv * T, 4, {W, x}, false, shp({dk * nkv, T}));
      if (q_bias) k = g.op(dk * nkv * T, 4, {k, W}, true, shp({dk * nkv, T}));
      q = g.view(q);
      k = g.view(k);
    }
    if (qk_norm) {  // rms_norm of the reshaped view (new), mul in place; rope then runs in place
      q = g.op(dk * nh * T, 4, {q}, true, shp({dk, nh, T}));
      q = g.op(dk * nh * T, 4, {q, W}, true, shp({dk, nh, T}));
      k = g.op(dk * nkv * T, 4, {k}, true, shp({dk, nkv, T}));
      k = g.op(dk * nkv * T, 4, {k, W}, true, shp({dk, nkv, T}));
    }
    if (!gpt2) {
      q = g.op(dk * nh * T, 4, {q, pos, W}, true, shp({dk, nh, T}));   // rope (a view parent: a new tensor)
      k = g.op(dk * nkv * T, 4, {k, pos, W}, true, shp({dk, nkv, T}));
    }
    if (gemma || phi3) q = g.op(dk * nh * T, 4, {q}, true, shp({dk, nh, T}));  // scale
    // store into the cache (build_attn: cpy_k, then cpy_v): set_rows results are views of the cache (no
    // allocation). Without flash attention the V cache is transposed and a strided V (a view of a fused QKV) is
    // first made contiguous (llama-kv-cache.cpp cpy_v: ggml_cont_2d), after K's store has freed K.
    g.view(KV, {g.view(k), kidx});
    if (phi3 && !s.flash) v = g.op(dv * nkv * T, 4, {g.view(v)}, false, shp({dv * nkv, T}));
    g.view(KV, {g.view(v), vidx});
    int attn;
    if (s.flash) {
      uint64_t bytes = pad(4 * dv * nh * T, kCudaAlignment);
      // quantised K/V: the MMA kernel converts them to f16 inside the node's allocation (fattn-common.cuh)
      if (dtype_info(s.type_k).block_elems > 1) bytes = pad(bytes + 2 * dk * n_kv * nkv, kCudaAlignment);
      if (dtype_info(s.type_v).block_elems > 1) bytes = pad(bytes + 2 * dv * n_kv * nkv, kCudaAlignment);
      attn = g.op(bytes, 1, {g.view(q), g.view(KV), g.view(KV), msk}, false, shp({dv, nh, T}));
    } else {
      int kq = g.op(n_kv * T * nh, 4, {g.view(KV), q}, false, shp({n_kv, T, nh}));
      if (gemma2) {  // attention logit soft-capping: scale, tanh, scale (in place)
        kq = g.op(n_kv * T * nh, 4, {kq}, true, shp({n_kv, T, nh}));
        kq = g.op(n_kv * T * nh, 4, {kq}, true, shp({n_kv, T, nh}));
        kq = g.op(n_kv * T * nh, 4, {kq}, true, shp({n_kv, T, nh}));
      }
      kq = g.op(n_kv * T * nh, 4, {kq, msk}, true, shp({n_kv, T, nh}));  // soft_max_ext
      const int kqv = g.op(dv * T * nh, 4, {g.view(KV), kq}, false, shp({dv, T, nh}));
      attn = g.op(dv * nh * T, 4, {g.view(kqv)}, false, shp({dv * nh, T}));  // cont(permute)
    }
    x = g.op(E * T, 4, {W, g.view(attn)}, false, shp({E, T}));  // wo
    if (o_bias || gpt2) x = g.op(E * T, 4, {x, W}, true, shp({E, T}));
    int res = inpSA;
    uint64_t rows = T;
    if (il + 1 == hp.n_layer) {  // last layer: only the rows that produce outputs
      x = g.op(E * O, 4, {x, out_ids}, false, shp({E, O}));
      res = g.op(E * O, 4, {inpSA, out_ids}, false, shp({E, O}));
      rows = O;
    }
    if (gemma2 || gemma3) {  // post-attention norm
      x = g.op(E * rows, 4, {x}, true, shp({E, rows}));
      x = g.op(E * rows, 4, {x, W}, true, shp({E, rows}));
    }
    const int ffn_inp = g.op(E * rows, 4, {x, res}, true, shp({E, rows}));
    x = g.op(E * rows, 4, {ffn_inp}, !gpt2, shp({E, rows}));
    x = g.op(E * rows, 4, {x, W}, true, shp({E, rows}));
    if (gpt2) x = g.op(E * rows, 4, {x, W}, true, shp({E, rows}));
    if (moe) {
      const uint64_t ne = hp.n_expert, k_used = hp.n_expert_used, ff = hp.n_ff;
      int logits = g.op(ne * rows, 4, {W, x}, false, shp({ne, rows}));
      int probs = g.op(ne * rows, 4, {logits}, true, shp({ne, rows}));                 // soft_max
      int sel = g.op(ne * rows, 4, {probs}, false, "i32:" + shp({ne, rows}));          // argsort
      int top = g.view(sel);
      int wts = g.op(k_used * rows, 4, {g.view(probs), top}, false, shp({1, k_used, rows}));  // get_rows
      int wsum = g.op(rows, 4, {g.view(wts)}, false, shp({1, rows}));                   // sum_rows
      wsum = g.op(rows, 4, {wsum}, true, shp({1, rows}));                                // clamp
      wts = g.op(k_used * rows, 4, {g.view(wts), wsum}, true, shp({k_used, rows}));      // div
      const int xr = g.view(x);
      int up = g.op(ff * k_used * rows, 4, {W, xr, top}, false, shp({ff, k_used, rows}));
      int gate = g.op(ff * k_used * rows, 4, {W, xr, top}, false, shp({ff, k_used, rows}));
      int act = g.op(ff * k_used * rows, 4, {gate, up}, false, shp({ff, k_used, rows, 7}));  // swiglu
      int down = g.op(E * k_used * rows, 4, {W, act, top}, false, shp({E, k_used, rows}));
      // CUDA keeps the experts' outputs and the weights alive until the weighted reduction ends, so the
      // multiplication by the routing weights cannot run in place
      int ex = g.op(E * k_used * rows, 4, {down, g.view(wts)}, false, shp({E, k_used, rows}));
      int acc = g.op(E * rows, 4, {g.view(ex), g.view(ex)}, false, shp({E, rows}));
      for (uint64_t e = 2; e < k_used; ++e) acc = g.op(E * rows, 4, {acc, g.view(ex)}, true, shp({E, rows}));
      g.op(0, 1, {down, acc, wts}, false, "dep");  // the dependency that keeps them alive (a NONE node)
      x = acc;
    } else {
      const uint64_t ff = hp.n_ff;
      if (phi3) {
        const int up = g.op(2 * ff * rows, 4, {W, x}, false, shp({2 * ff, rows}));
        x = g.op(ff * rows, 4, {up}, false, shp({ff, rows, 7}));  // swiglu of the two halves
      } else if (!gpt2) {
        const int gate = g.op(ff * rows, 4, {W, x}, false, shp({ff, rows}));
        const int up = g.op(ff * rows, 4, {W, x}, false, shp({ff, rows}));
        x = g.op(ff * rows, 4, {gate, up}, false, shp({ff, rows, 7}));  // swiglu / geglu
      } else {
        x = g.op(ff * rows, 4, {W, x}, false, shp({ff, rows}));
        x = g.op(ff * rows, 4, {x, W}, true, shp({ff, rows}));  // + bias
        x = g.op(ff * rows, 4, {x}, true, shp({ff, rows}));     // gelu
      }
      x = g.op(E * rows, 4, {W, x}, false, shp({E, rows}));
      if (gpt2) x = g.op(E * rows, 4, {x, W}, true, shp({E, rows}));
    }
    if (gemma2 || gemma3) {
      x = g.op(E * rows, 4, {x}, true, shp({E, rows}));
      x = g.op(E * rows, 4, {x, W}, true, shp({E, rows}));
    }
    // the residual add; Phi-3 writes it as add(residual, cur), so the residual is the parent reused in place
    cur = g.op(E * rows, 4, phi3 ? std::vector<int>{ffn_inp, x} : std::vector<int>{x, ffn_inp}, true, shp({E, rows}));
  }
  if (with_output) {
    int x = g.op(E * O, 4, {cur}, !gpt2, shp({E, O}));
    x = g.op(E * O, 4, {x, W}, true, shp({E, O}));
    if (gpt2) x = g.op(E * O, 4, {x, W}, true, shp({E, O}));
    g.mark_output(x);
    int logits = g.op(V * O, 4, {W, x}, false, shp({V, O}));
    if (gemma2) {  // final logit soft-capping, in place
      logits = g.op(V * O, 4, {logits}, true, shp({V, O}));
      logits = g.op(V * O, 4, {logits}, true, shp({V, O}));
      logits = g.op(V * O, 4, {logits}, true, shp({V, O}));
    }
    g.mark_output(logits);
  } else {
    g.mark_output(cur);
  }
  return simulate(g, kCudaAlignment);
}

// The host (CUDA_Host, pinned) compute buffer with every layer on the GPU: the graph inputs, all allocated up
// front, plus the embedding rows the host gathers (llama-graph.cpp inputs; 32-byte alignment).
uint64_t host_compute_buffer(const Model& m, const GraphShape& s) {
  const Hparams& hp = m.hp;
  const uint64_t T = s.T, E = hp.n_embd;
  const uint64_t ekv = hp.n_head_kv[0] * hp.n_embd_head_k;
  auto a = [](uint64_t x) { return pad(x, 32); };
  uint64_t b = a(4 * T) + a(4 * E * T) + (hp.arch == "gpt2" ? 0 : a(4 * T));
  auto cache = [&](uint64_t n_kv) { return a(8 * T) + a(s.flash ? 8 * T : 8 * T * ekv) + a((s.flash ? 2 : 4) * n_kv * T); };
  b += cache(s.n_kv);
  if (s.n_kv_swa) b += cache(s.n_kv_swa);
  b += a(4 * std::min(s.outputs, T));
  // a quantised KV cache rotates Q/K (and V) with Hadamard matrices when head_dim is a multiple of 64
  // (llama-kv-cache.cpp attn_rot_k/v): nrot x nrot and 64 x 64 f32 inputs per cache
  const uint64_t hd = hp.n_embd_head_k;
  if (dtype_info(s.type_k).block_elems > 1 && hd % 64 == 0) {
    uint64_t nrot = 64;
    while (hd % (nrot * 2) == 0) nrot *= 2;
    const uint64_t per_cache = a(4 * nrot * nrot) + a(4 * 64 * 64);
    b += per_cache * (s.n_kv_swa ? 2 : 1);
  }
  b += a(4 * E * T);                                  // get_rows(token_embd) result
  if (hp.arch == "gpt2") b += a(4 * T) + a(4 * E * T);  // positions and get_rows(position_embd)
  return b;
}

// ggml_backend_cuda_buffer_type_get_alloc_size: a quantised tensor whose rows are not a multiple of
// MATRIX_ROW_PADDING gets that many extra columns of one row, once; then the buffer's 128-byte alignment.
uint64_t cuda_alloc_bytes(DType type, uint64_t ne0, uint64_t bytes) {
  const DTypeInfo& info = dtype_info(type);
  if (info.block_elems > 1 && ne0 % kMatrixRowPadding != 0) bytes += *dtype_bytes(type, kMatrixRowPadding - ne0 % kMatrixRowPadding);
  return pad(bytes, kCudaAlignment);
}

uint64_t cuda_tensor_bytes(const GgufTensor& t) { return cuda_alloc_bytes(t.type, t.ne.empty() ? 0 : t.ne[0], t.bytes()); }

struct Overheads {
  uint64_t base = 0;          // CUDA context, loaded kernels, graphs: what a run with no cuBLAS use adds
  uint64_t cublas = 0;        // cuBLAS handle, its 32 MiB workspace and kernels, when cuBLAS runs at all
  uint64_t granularity = 0;   // the VMM pool maps physical memory in these steps
};

Overheads llamacpp_overheads() {
  Overheads o;
  const auto j = nlohmann::json::parse(embedded_file("runtime_overheads.json"));
  const auto& l = j.at("llamacpp");
  o.base = l.at("base_bytes").get<uint64_t>();
  o.cublas = l.at("cublas_bytes").get<uint64_t>();
  o.granularity = l.at("pool_granularity_bytes").get<uint64_t>();
  return o;
}

}  // namespace

Estimate estimate(const Model& m, const RunOptions& run, const GpuProfile& gpu) {
  const Hparams& hp = m.hp;
  Estimate e;
  e.engine = "llama.cpp";
  e.engine_version = std::string("llama.cpp ") + kPinnedCommit + " (CUDA)";
  e.gpu = gpu;
  e.weight_bytes = m.weight_bytes();

  const uint64_t L = hp.n_layer;
  int64_t ngl = run.n_gpu_layers < 0 ? static_cast<int64_t>(L) + 1 : run.n_gpu_layers;
  if (ngl > static_cast<int64_t>(L) + 1) {
    e.notes.push_back(fmt::format("--ngl {} is more than the model's {} layers + output layer: all are offloaded", ngl, L));
    ngl = static_cast<int64_t>(L) + 1;
  }
  const uint64_t gpu_start = L + 1 - static_cast<uint64_t>(ngl);  // layers >= this (L = output) are on the GPU
  const bool output_on_gpu = ngl >= 1;
  const uint64_t gpu_layers = L - std::min(L, gpu_start);

  // flash attention: "auto" enables it when the backend supports it for the model's head sizes, which the CUDA
  // backend does for these architectures; a quantised V cache requires it.
  bool flash = run.flash_attn != FlashAttn::kOff;
  if (!flash && dtype_info(run.type_v).block_elems > 1)
    throw Error(ErrorKind::kUsage, "", "a quantised V cache (--cache-type-v) needs flash attention (llama.cpp refuses it without)");

  // ---- weights by placement
  uint64_t gpu_weights = 0, host_weights = 0;
  bool has_output = false;
  const GgufTensor* token_embd = nullptr;
  for (const auto& t : m.tensors) {
    if (t.name == "output.weight") has_output = true;
    if (t.name == "token_embd.weight") token_embd = &t;
  }
  for (const auto& t : m.tensors) {
    const bool output_layer = t.layer < 0 && t.name != "token_embd.weight" && t.name != "position_embd.weight" &&
                              t.name != "token_types.weight";
    const bool on_gpu = t.layer >= 0 ? static_cast<uint64_t>(t.layer) >= gpu_start : output_layer && output_on_gpu;
    if (on_gpu) gpu_weights += cuda_tensor_bytes(t);
    else host_weights += t.bytes();
  }
  uint64_t dup_output = 0;
  if (!has_output && token_embd && output_on_gpu) dup_output = cuda_tensor_bytes(*token_embd);

  // ---- KV cache
  // llama-context.cpp: n_ctx is padded to 256; with --parallel N and no unified KV cache (llama.cpp's default)
  // each sequence gets its own stream of n_ctx_seq = pad(n_ctx / N, 256) cells, and n_ctx becomes n_ctx_seq * N
  const uint64_t n_seq = std::max<uint64_t>(1, run.n_parallel);
  const uint64_t n_ctx_seq = pad(pad(run.n_ctx, 256) / n_seq, 256);
  if (n_ctx_seq == 0)
    throw Error(ErrorKind::kUsage, "", fmt::format("--ctx {} split over --parallel {} leaves no cells per sequence", run.n_ctx, n_seq));
  const uint64_t n_ctx = n_ctx_seq * n_seq;
  const bool any_swa = std::any_of(hp.swa_layers.begin(), hp.swa_layers.end(), [](bool b) { return b; });
  // sliding-window layers: per stream min(n_ctx_seq, n_swa + n_ubatch) cells, padded (llama-kv-cache-iswa.cpp)
  const uint64_t swa_cells = any_swa ? std::min(n_ctx_seq, pad(hp.n_swa + run.n_ubatch, 256)) : 0;
  uint64_t kv_gpu = 0, kv_host = 0;
  for (uint64_t il = 0; il < L; ++il) {
    const bool swa = any_swa && hp.swa_layers[il];
    const uint64_t cells = (swa ? swa_cells : n_ctx_seq) * n_seq;
    // one tensor per layer for K and one for V; on CUDA each gets the quantised-row padding and 128-byte alignment
    const uint64_t ek = hp.n_head_kv[il] * hp.n_embd_head_k, ev = hp.n_head_kv[il] * hp.n_embd_head_v;
    const uint64_t k = *dtype_bytes(run.type_k, ek) * cells;
    const uint64_t v = *dtype_bytes(run.type_v, ev) * cells;
    if (il >= gpu_start) {
      kv_gpu += cuda_alloc_bytes(run.type_k, ek, k) + cuda_alloc_bytes(run.type_v, ev, v);
    } else {
      kv_host += k + v;
    }
  }

  // ---- compute buffers
  GraphShape s;
  // n_batch and n_ubatch are clamped to the requested context before it is padded (llama-context.cpp)
  s.T = std::min({run.n_ctx, run.n_batch, run.n_ubatch});
  s.T = (s.T + n_seq - 1) / n_seq * n_seq;  // graph_reserve: a whole number of tokens per sequence
  s.outputs = s.T;
  s.n_kv = n_ctx_seq;  // each sequence's stream: the attention of one stream spans its own cells
  s.n_kv_swa = swa_cells;
  s.flash = flash;
  s.type_k = run.type_k;
  s.type_v = run.type_v;
  uint64_t compute_gpu = 0;
  if (gpu_layers > 0 || output_on_gpu) compute_gpu = gpu_compute_buffer(m, s, output_on_gpu);
  // the host side: token ids and the embedding rows (get_rows on token_embd), plus everything of the layers left
  // on the host when not all are offloaded
  const uint64_t compute_host = host_compute_buffer(m, s);
  const uint64_t output_buf = 4 * hp.n_vocab * n_seq;

  auto add = [&](const std::string& name, uint64_t bytes, const std::string& device, const std::string& detail) {
    if (bytes == 0) return;
    e.components.push_back({name, bytes, detail, device});
  };
  add("weights", gpu_weights, "gpu",
      fmt::format("{} of {} layers{} (CUDA model buffer)", gpu_layers, L, output_on_gpu ? " + output layer" : ""));
  add("output (tied)", dup_output, "gpu", "token_embd duplicated as the output matrix");
  add("kv_cache", kv_gpu, "gpu",
      fmt::format("{} cells (n_ctx padded to 256{}){} × {} layers, K {} V {}", n_ctx,
                  n_seq > 1 ? fmt::format("; {} streams of {}", n_seq, n_ctx_seq) : "",
                  any_swa ? fmt::format(", {} per stream for sliding-window layers", swa_cells) : "", gpu_layers,
                  dtype_name(run.type_k), dtype_name(run.type_v)));
  add("compute", compute_gpu, "gpu",
      fmt::format("worst-case graph: {} tokens, flash attention {}", s.T, flash ? "on" : "off"));
  // ---- outside the buffers: the CUDA runtime, cuBLAS when anything runs through it, and ggml-cuda's memory
  // pool, which grows to the largest temporary any single op needs and never shrinks (ggml-cuda.cu, mmq.cu)
  const Overheads oh = llamacpp_overheads();
  bool cublas = !flash;  // KQ and KQV without flash attention are cuBLAS batched GEMMs
  uint64_t max_k = 0;
  for (const auto& t : m.tensors) {
    if (t.ne.size() < 2 || t.name.find("weight") == std::string::npos) continue;
    // matmul weights: the layers' and the output's (token_embd and position_embd feed get_rows on the host).
    // Those left on the host run on the GPU too for batches of 32 or more (op offload, ggml-backend.cpp).
    const bool on_gpu_t = t.layer >= 0 ? static_cast<uint64_t>(t.layer) >= gpu_start : output_on_gpu && t.name == "output.weight";
    if (!on_gpu_t && !(s.T >= 32 && (t.layer >= 0 || t.name == "output.weight"))) continue;
    if (t.type == DType::F32 || t.type == DType::F16 || t.type == DType::BF16) {
      if (s.T > 16) cublas = true;  // float weights (and MoE routers) multiply through cuBLAS for batches > 16
    } else if (t.name != "token_embd.weight") {
      max_k = std::max(max_k, t.ne[0]);
    }
  }
  // MMQ: the activations quantised to q8_1 (144 bytes per 128 values, rows padded to 512)
  const uint64_t used = hp.n_expert > 1 ? std::max<uint64_t>(1, hp.n_expert_used) : 1;
  uint64_t pool = s.T * used * pad(max_k, 512) * 144 / 128;
  if (!flash) {
    // KQV = mul_mat(V, softmax(KQ)) in f16: the [n_kv x T x n_head] probabilities converted to f16
    uint64_t nh = 0;
    for (uint64_t il = 0; il < L; ++il) nh = std::max(nh, hp.n_head[il]);
    pool = std::max(pool, 2 * s.n_kv * s.T * nh);
  }
  pool = pad(pool, oh.granularity);
  add("cuda_runtime", oh.base, "gpu",
      fmt::format("CUDA context, kernels and graphs: {:.0f} MiB measured on an NVIDIA H200 with llama.cpp {} "
                  "(data/runtime_overheads.json)", static_cast<double>(oh.base) / kMiB, kPinnedCommit));
  if (cublas) add("cublas", oh.cublas, "gpu", "cuBLAS handle, workspace and kernels (used without flash attention, for float weights and MoE routers)");
  add("cuda_pool", pool, "gpu", "ggml-cuda's memory pool: the largest per-op temporary (quantised activations, f16 attention probabilities)");
  add("weights (mmap)", host_weights, "host", "token_embd and layers left on the host, mapped from the file");
  add("kv_cache (host)", kv_host, "host", "KV cache of the layers left on the host");
  add("compute (host)", compute_host, "host", "host compute buffer");
  add("output", output_buf, "host", "logits of the last token per sequence (f32)");

  e.framework_peak_bytes = gpu_weights + dup_output + kv_gpu + compute_gpu;
  e.reserved_peak_bytes = e.framework_peak_bytes;
  e.process_peak_bytes = e.framework_peak_bytes + oh.base + (cublas ? oh.cublas : 0) + pool;
  e.host_bytes = host_weights + kv_host + compute_host + output_buf;
  e.peak_phase = "context creation (buffers are reserved up front)";
  if (m.predicted)
    e.notes.push_back(fmt::format("tensor types predicted for {} from llama-quantize's rules (no imatrix)", m.scheme));
  if (hp.n_ctx_train && run.n_ctx > hp.n_ctx_train)
    e.notes.push_back(fmt::format("n_ctx {} is beyond the model's training context {}", run.n_ctx, hp.n_ctx_train));
  return e;
}

}  // namespace llmem::llamacpp
