// The shared blocks of the builders (graph.hpp), each following the llama.cpp function it names.
//
// Shapes are ggml's (ne[0] first); every activation is f32. A block creates its tensors in the order
// ggml_build_forward_expand's depth-first walk visits them, which is what ggml-alloc replays; where that order is
// not the order of the source lines (Q, then V, then K in build_qkv), the block says so.
#include "graph.hpp"

#include <algorithm>
#include <stdexcept>

namespace llmem::llamacpp {
namespace {

std::string shape_key(std::initializer_list<uint64_t> dims) {
  std::string key;
  for (uint64_t d : dims) key += std::to_string(d) + ",";
  return key;
}

bool quantised(DType type) { return dtype_info(type).block_elems > 1; }

}  // namespace

LlmGraph::LlmGraph(const Model& model, const GraphShape& shape, const Architecture& arch, bool with_output)
    : model_(model), shape_(shape), arch_(arch), with_output_(with_output) {
  g_.set_split_input_copies(shape.split_input_copies);
}

void LlmGraph::begin_layer(uint64_t il) {
  layer_ = static_cast<int64_t>(il);
  if (shape_.device_graph) g_.set_muted(il < shape_.first_layer || il > shape_.last_layer);
}

bool LlmGraph::has_tensor(const std::string& gguf_name) const {
  return std::any_of(model_.tensors.begin(), model_.tensors.end(),
                     [&](const GgufTensor& t) { return t.name == gguf_name; });
}

bool LlmGraph::has_qkv_bias() const { return has_tensor("blk.0.attn_q.bias") || has_tensor("blk.0.attn_qkv.bias"); }

int LlmGraph::f32(uint64_t elems, std::vector<int> src, bool inplace, std::initializer_list<uint64_t> shape) {
  return g_.op(elems, 4, std::move(src), inplace, shape_key(shape));
}

// A matmul's weight. One in host memory under an op the CUDA backend takes over (ggml-backend.cpp
// ggml_backend_sched_backend_id_from_cur: a weight in a host buffer, offload_op for a batch of 32 or more) is copied
// into the compute buffer: the op starts a split of its own whose input is the copy (ggml_backend_sched_split_graph
// "by starting a new split, the memory of the previously offloaded weights can be reused"), allocated just before
// the op and freed after it.
int LlmGraph::weight(const std::string& name) {
  if (!shape_.weight_copies) return weights_;
  const std::string full = layer_ < 0 ? name : "blk." + std::to_string(layer_) + "." + name;
  const auto it = shape_.weight_copies->find(full);
  if (it == shape_.weight_copies->end()) return weights_;
  return g_.host_copy(it->second, weights_, true, full);
}

// The same for a 1-D weight (a norm's, a bias): an op reading one in host memory is taken over by the GPU as well
// (ggml-cuda.cu get_op_batch_size: its rows for MUL and ADD), so it too reads a copy and starts a split. Which of
// them stay on the host follows the layer (-ngl), told by its other 1-D tensors (output_norm for the output layer),
// or, for the experts' biases, which --n-cpu-moe's pattern moves with the experts, the tensor itself.
int LlmGraph::small_weight(uint64_t elems, const std::string& name) {
  if (!shape_.weight_copies || !shape_.host_small_weights) return weights_;
  const std::string prefix = layer_ < 0 ? "" : "blk." + std::to_string(layer_) + ".";
  const std::set<std::string>& host = *shape_.host_small_weights;
  bool on_host;
  if (!name.empty()) {
    on_host = host.count(prefix + name) > 0;
  } else if (layer_ >= 0) {  // the layer's norms and biases (not the experts'), whichever it has (OLMo 2: no attn_norm)
    on_host = false;
    for (auto it = host.lower_bound(prefix); it != host.end() && it->compare(0, prefix.size(), prefix) == 0; ++it)
      on_host = on_host || it->find("_exps") == std::string::npos;
  } else {  // before the first layer the embeddings' norm (BLOOM's token_embd_norm, placed with layer 0)
    on_host = host.count(output_started_ ? "output_norm.weight" : "token_embd_norm.weight") > 0;
  }
  if (!on_host) return weights_;
  return g_.host_copy(elems * 4, weights_, true, name.empty() ? prefix + "norm/bias" : prefix + name);
}

// ---- inputs (llama-graph.cpp build_inp_*) ------------------------------------------------------------------------

LlmGraph::KvInputs LlmGraph::kv_inputs(uint64_t n_kv_cells, const std::string& suffix) {
  const uint64_t n_tokens = shape_.n_tokens;
  const uint64_t n_embd_k_gqa = hp().n_head_kv[0] * hp().n_embd_head_k;
  KvInputs in;
  // set_rows indices into the cache (i64); without flash attention the V cache is transposed and V is stored
  // element by element, one index per element
  in.k_idx = g_.input(8 * n_tokens, "kidx" + suffix);
  if (!hp().mla)  // MLA stores K only (build_attn_inp_k)
    in.v_idx = g_.input(shape_.flash_attn ? 8 * n_tokens : 8 * n_tokens * n_embd_k_gqa, "vidx" + suffix);
  // the KQ mask: f16 for the flash-attention kernel, f32 for soft_max_ext
  in.mask = g_.input((shape_.flash_attn ? 2 : 4) * n_kv_cells * n_tokens, "mask" + suffix);
  return in;
}

int LlmGraph::build_inputs() {
  const uint64_t n_tokens = shape_.n_tokens, n_embd = hp().n_embd;
  weights_ = g_.external("weights");
  kv_cache_ = g_.external("kv");
  int embd;
  if (shape_.cpu) {  // one backend: the token ids are the input and get_rows(token_embd) a node of the graph
    const int tokens = g_.input(4 * n_tokens, "tokens");
    // build_inp_embd also puts the vector-embeddings input in the graph (ggml_build_forward_select): allocated
    // with the inputs and never consumed, it stays for the whole graph
    g_.input_kept(4 * n_embd * n_tokens, "inp_embd");
    embd = f32(n_embd * n_tokens, {weights_, tokens}, false, {n_embd, n_tokens});
  } else {  // token_embd stays on the host (the input layer): its rows arrive as a copy
    embd = g_.input(4 * n_embd * n_tokens, "4:" + shape_key({n_embd, n_tokens}));
  }
  // A quantised cache rotates Q and K (and V) with Hadamard matrices (llama-kv-cache.cpp attn_rot_k/v, when the
  // head size is a multiple of 64): K's is the largest power of two dividing the head size, V's 64 x 64. The walk
  // meets K's matrix first (the source Q's rotation lists first), then the positions (Q's rope), then V's.
  const bool rot_k = !hp().mla && quantised(shape_.type_k) && hp().n_embd_head_k > 0 && hp().n_embd_head_k % 64 == 0;
  const bool rot_v = !hp().mla && quantised(shape_.type_v) && hp().n_embd_head_v > 0 && hp().n_embd_head_v % 64 == 0;
  const uint64_t k_rot_bytes = rot_k ? 4 * hadamard_k_size(hp().n_embd_head_k) * hadamard_k_size(hp().n_embd_head_k) : 0;
  if (rot_k) k_rot_ = g_.input(k_rot_bytes, "k_rot");
  if (arch_.learned_positions) {
    pos_embd_ = shape_.cpu ? f32(n_embd * n_tokens, {weights_, g_.input(4 * n_tokens, "pos")}, false, {n_embd, n_tokens})
                           : g_.input(4 * n_embd * n_tokens, "4:" + shape_key({n_embd, n_tokens}));
  } else if (!arch_.alibi) {
    pos_ = g_.input(4 * n_tokens, "pos");
  }
  if (rot_v) v_rot_ = g_.input(4 * 64 * 64, "v_rot");
  // the sliding-window cache has its own pair (its layers use them; same sizes). A CPU build's buffer holds both
  // (gemma-2, gpt-oss: exact with them); llama.cpp's CUDA buffer for the measured gemma-2 runs with a q8_0 cache
  // matches with one pair only (0.53 MiB less), so the second is not counted there: why the CUDA split holds no
  // copy of it is not established
  if (shape_.cpu && shape_.n_kv_cells_swa > 0) {
    if (rot_k) g_.input(k_rot_bytes, "k_rot_swa");
    if (rot_v) g_.input(4 * 64 * 64, "v_rot_swa");
  }
  kv_ = kv_inputs(shape_.n_kv_cells, "");
  if (shape_.n_kv_cells_swa > 0) kv_swa_ = kv_inputs(shape_.n_kv_cells_swa, "_swa");
  out_ids_ = g_.input(4 * std::min(shape_.n_outputs, n_tokens), "out_ids");
  // what comes before the first layer (Gemma's scaled embeddings) runs on the first layer's device
  if (shape_.device_graph) g_.set_muted(shape_.first_layer > 0);
  return embd;
}

int LlmGraph::position_embeddings() const {
  if (pos_embd_ < 0) throw std::logic_error("llama.cpp graph: position embeddings in a builder whose architecture has none");
  return pos_embd_;
}

// ---- elementwise and norms (llama-graph.cpp build_norm) ----------------------------------------------------------

int LlmGraph::add(int a, int b, uint64_t rows) { return f32(hp().n_embd * rows, {a, b}, true, {hp().n_embd, rows}); }

int LlmGraph::scale(int x, uint64_t rows) { return f32(hp().n_embd * rows, {x}, true, {hp().n_embd, rows}); }

int LlmGraph::norm(int x, Norm kind, uint64_t rows) {
  const uint64_t n_embd = hp().n_embd;
  // rms_norm may run in place, ggml_norm may not (ggml-alloc.c ggml_op_can_inplace); either makes a new tensor
  // where the residual still needs its input
  x = f32(n_embd * rows, {x}, kind == Norm::kRms, {n_embd, rows});
  x = f32(n_embd * rows, {x, small_weight(n_embd)}, true, {n_embd, rows});
  if (kind == Norm::kLayer) x = f32(n_embd * rows, {x, small_weight(n_embd)}, true, {n_embd, rows});
  return x;
}

int LlmGraph::rms_norm_heads(int x, uint64_t n_heads) {
  const uint64_t d = hp().n_embd_head_k, n_tokens = shape_.n_tokens;
  x = f32(d * n_heads * n_tokens, {x}, true, {d, n_heads, n_tokens});
  return f32(d * n_heads * n_tokens, {x, small_weight(d)}, true, {d, n_heads, n_tokens});
}

// ---- attention (llama-graph.cpp build_qkv, build_attn; llama-kv-cache.cpp cpy_k/cpy_v) ---------------------------

// llama_mul_mat_hadamard: a contiguous tensor is reshaped (a view), a strided one copied (ggml_cont_2d), then
// multiplied by the rotation (a new f32 tensor of the same size) and reshaped back.
int LlmGraph::hadamard(int x, uint64_t elems, bool contiguous, int rot) {
  if (rot < 0) return x;
  const int rows = contiguous ? g_.view(x) : f32(elems, {g_.view(x)}, false, {elems, 1});
  return g_.view(f32(elems, {rot, rows}, false, {elems, 2}));
}

// build_attn expands Q, then V, then K (llama-graph.cpp: "expand k later to enable rope fusion"), so the graph holds
// each chain whole in that order: projection (or the fused projection, reached first through Q), bias, the heads'
// norms, rope, Q's scale.
LlmGraph::Qkv LlmGraph::project_qkv(uint64_t il, int x, const AttentionParams& p) {
  const uint64_t nh = hp().n_head[il], nkv = hp().n_head_kv[il], dk = hp().n_embd_head_k, dv = hp().n_embd_head_v;
  const uint64_t T = shape_.n_tokens;
  if (p.qk_norm_rows && (p.qkv != QkvLayout::kSeparate || p.qkv_bias || p.qk_norm))
    throw std::logic_error("llama.cpp graph: qk_norm_rows is modelled for separate, bias-free Q/K/V only");
  if (p.rope && pos_ < 0) throw std::logic_error("llama.cpp graph: rope in a builder whose architecture has no rope positions");
  int fused = -1;
  if (p.qkv != QkvLayout::kSeparate) {
    const uint64_t qkv = dk * nh + 2 * dk * nkv;
    fused = f32(qkv * T, {weight("attn_qkv.weight"), x}, false, {qkv, T});
    if (p.qkv_bias) fused = f32(qkv * T, {fused, small_weight(qkv)}, true, {qkv, T});
  }
  // Q or K: its heads, then norms and rope. A view (a reshape or a slice of the fused result) is never taken over
  // in place by ggml-alloc, so the first op on it allocates.
  auto heads_chain = [&](uint64_t heads) {
    const uint64_t width = dk * heads;
    int y;
    if (p.qkv == QkvLayout::kSeparate) {
      y = f32(width * T, {weight(heads == nh ? "attn_q.weight" : "attn_k.weight"), x}, false, {width, T});
      if (p.qkv_bias) y = f32(width * T, {y, small_weight(width)}, true, {width, T});
      if (p.qk_norm_rows) {  // OLMo 2: rms_norm of the whole projection, then its weight
        y = f32(width * T, {y}, true, {width, T});
        y = f32(width * T, {y, small_weight(width)}, true, {width, T});
      }
      y = g_.view(y);  // reshape to heads
    } else {
      y = g_.view(fused);
    }
    if (p.qk_norm) y = rms_norm_heads(y, heads);
    if (p.rope) y = f32(width * T, {y, pos_, weights_}, true, {dk, heads, T});
    return y;
  };
  // each chain ends with its Hadamard rotation under a quantised cache; Q and K are contiguous there (rope or
  // norms made them so, or a reshape of their projection), V only when it is its own projection
  const bool q_contiguous = p.rope || p.qk_norm || p.qkv != QkvLayout::kFusedViews;
  Qkv r{};
  r.q = heads_chain(nh);
  if (p.scale_q) r.q = f32(dk * nh * T, {r.q}, true, {dk, nh, T});
  r.q = hadamard(r.q, dk * nh * T, q_contiguous || p.scale_q, k_rot_);
  if (p.qkv == QkvLayout::kSeparate) {
    r.v = f32(dv * nkv * T, {weight("attn_v.weight"), x}, false, {dv * nkv, T});
    if (p.qkv_bias) r.v = f32(dv * nkv * T, {r.v, small_weight(dv * nkv)}, true, {dv * nkv, T});
  } else {
    r.v = g_.view(fused);
  }
  r.v = hadamard(r.v, dv * nkv * T, p.qkv != QkvLayout::kFusedViews, v_rot_);
  r.k = heads_chain(nkv);
  r.k = hadamard(r.k, dk * nkv * T, q_contiguous, k_rot_);
  return r;
}

// Stores K and V into the cache (build_attn: cpy_k, then cpy_v; set_rows results are views of the cache and
// allocate nothing).
void LlmGraph::store_kv(uint64_t il, Qkv& qkv, const AttentionParams& p) {
  const uint64_t nkv = hp().n_head_kv[il], dv = hp().n_embd_head_v;
  const uint64_t T = shape_.n_tokens;
  const bool swa = shape_.n_kv_cells_swa > 0 && !hp().swa_layers.empty() && hp().swa_layers[il];
  const KvInputs& in = swa ? kv_swa_ : kv_;
  // a cache in host memory (a layer left on the host) is written by the CPU backend: set_rows into a tensor of a
  // host buffer runs where the buffer is (ggml-backend.cpp ggml_backend_sched_backend_id_from_cur "1.vsrc")
  const bool host_cache = shape_.weight_copies && il < shape_.host_kv_layers;
  const int store_k = g_.view(kv_cache_, {g_.view(qkv.k), in.k_idx});
  if (host_cache) g_.set_cpu(store_k);
  // without flash attention the V cache is transposed, and a strided V (a view of a fused QKV) is first made
  // contiguous (llama-kv-cache.cpp cpy_v: ggml_cont_2d), after K's store has freed K
  if (p.qkv == QkvLayout::kFusedViews && !shape_.flash_attn) {
    qkv.v = f32(dv * nkv * T, {g_.view(qkv.v)}, false, {dv * nkv, T});
    if (host_cache) g_.set_cpu(qkv.v);  // between the CPU's two stores, the CPU runs it too (the scheduler's pass 2)
  }
  const int store_v = g_.view(kv_cache_, {g_.view(qkv.v), in.v_idx});
  if (host_cache) g_.set_cpu(store_v);
}

// Attends over the cache's cells (after store_kv).
int LlmGraph::attend(uint64_t il, Qkv qkv, const AttentionParams& p) {
  const uint64_t nh = hp().n_head[il], nkv = hp().n_head_kv[il], dk = hp().n_embd_head_k, dv = hp().n_embd_head_v;
  const uint64_t T = shape_.n_tokens;
  const bool swa = shape_.n_kv_cells_swa > 0 && !hp().swa_layers.empty() && hp().swa_layers[il];
  const uint64_t n_kv = swa ? shape_.n_kv_cells_swa : shape_.n_kv_cells;
  const KvInputs& in = swa ? kv_swa_ : kv_;
  // a layer whose cache stays in host memory: the K and V views the GPU's attention reads arrive as copies
  int k_src = g_.view(kv_cache_), v_src = g_.view(kv_cache_);
  if (shape_.weight_copies && il < shape_.host_kv_layers) {
    k_src = g_.host_copy(*dtype_bytes(shape_.type_k, n_kv * dk * nkv), k_src, false, "k");
    v_src = g_.host_copy(*dtype_bytes(shape_.type_v, n_kv * dv * nkv), v_src, false, "v");
  }
  if (shape_.flash_attn) {
    uint64_t bytes = 4 * dv * nh * T;
    if (!shape_.cpu) bytes = pad_to(bytes, kCudaAlignmentBytes);
    // quantised K/V: the MMA kernel converts them to f16 inside the node's allocation (fattn-common.cuh)
    if (!shape_.cpu && quantised(shape_.type_k)) bytes = pad_to(bytes + 2 * dk * n_kv * nkv, kCudaAlignmentBytes);
    if (!shape_.cpu && quantised(shape_.type_v)) bytes = pad_to(bytes + 2 * dv * n_kv * nkv, kCudaAlignmentBytes);
    return g_.op(bytes, 1, {g_.view(qkv.q), k_src, v_src, in.mask}, false, shape_key({dv, nh, T}));
  }
  int kq = f32(n_kv * T * nh, {k_src, qkv.q}, false, {n_kv, T, nh});
  if (p.kq_softcap)  // scale, tanh, scale, in place
    for (int step = 0; step < 3; ++step) kq = f32(n_kv * T * nh, {kq}, true, {n_kv, T, nh});
  kq = f32(n_kv * T * nh, {kq, in.mask}, true, {n_kv, T, nh});  // soft_max_ext
  const int kqv = f32(dv * T * nh, {v_src, kq}, false, {dv, T, nh});
  return f32(dv * nh * T, {g_.view(kqv)}, false, {dv * nh, T});  // cont(permute)
}

int LlmGraph::attention_core(uint64_t il, int x, const AttentionParams& p) {
  layer_ = static_cast<int64_t>(il);
  Qkv qkv = project_qkv(il, x, p);
  store_kv(il, qkv, p);
  const int out = attend(il, qkv, p);
  // the attention's output rotated back under a quantised V cache (build_attn after build_attn_mha)
  return hadamard(out, hp().n_embd_head_v * hp().n_head[il] * shape_.n_tokens, true, v_rot_);
}

int LlmGraph::attention_output(int core, const AttentionParams& p) {
  const uint64_t n_embd = hp().n_embd, T = shape_.n_tokens;
  int x = f32(n_embd * T, {weight("attn_output.weight"), g_.view(core)}, false, {n_embd, T});  // wo
  if (p.o_bias) x = f32(n_embd * T, {x, small_weight(n_embd)}, true, {n_embd, T});
  return x;
}

int LlmGraph::self_attention(uint64_t il, int x, const AttentionParams& p) {
  return attention_output(attention_core(il, x, p), p);
}

uint64_t LlmGraph::n_output_rows() const { return std::min(shape_.n_outputs, shape_.n_tokens); }

int LlmGraph::output_rows(int x) {
  const uint64_t n_embd = hp().n_embd, n = n_output_rows();
  return f32(n_embd * n, {x, out_ids_}, false, {n_embd, n});
}

LayerRows LlmGraph::layer_rows(uint64_t il, int attn_out, int residual) {
  if (il + 1 != hp().n_layer) return {attn_out, residual, shape_.n_tokens};
  const uint64_t n_embd = hp().n_embd, n_outputs = std::min(shape_.n_outputs, shape_.n_tokens);
  const int x = f32(n_embd * n_outputs, {attn_out, out_ids_}, false, {n_embd, n_outputs});
  const int res = f32(n_embd * n_outputs, {residual, out_ids_}, false, {n_embd, n_outputs});
  return {x, res, n_outputs};
}

// ---- feed-forward (llama-graph.cpp build_ffn, build_moe_ffn) -----------------------------------------------------

int LlmGraph::ffn(int x, uint64_t rows, const FfnParams& p) {
  const std::string sfx = p.suffix;
  const uint64_t n_ff = p.width ? p.width : hp().n_ff, n_embd = hp().n_embd;
  // the gated activation's result has its own layout (ggml_glu keeps the split's parents alive)
  auto glu = [&](std::vector<int> src) { return g_.op(n_ff * rows, 4, std::move(src), false, shape_key({n_ff, rows, 7})); };
  switch (p.kind) {
    case FfnKind::kGated: {  // act(gate) * up: the DFS visits the gate first
      const int gate = f32(n_ff * rows, {weight("ffn_gate" + sfx + ".weight"), x}, false, {n_ff, rows});
      int up = f32(n_ff * rows, {weight("ffn_up" + sfx + ".weight"), x}, false, {n_ff, rows});
      if (p.biases) up = f32(n_ff * rows, {up, small_weight(n_ff)}, true, {n_ff, rows});
      x = glu({gate, up});
      break;
    }
    case FfnKind::kGatedFused: {
      int up = f32(2 * n_ff * rows, {weight("ffn_up" + sfx + ".weight"), x}, false, {2 * n_ff, rows});
      if (p.biases) up = f32(2 * n_ff * rows, {up, small_weight(2 * n_ff)}, true, {2 * n_ff, rows});
      x = glu({up});  // swiglu of the two halves
      break;
    }
    case FfnKind::kPlain:
      x = f32(n_ff * rows, {weight("ffn_up" + sfx + ".weight"), x}, false, {n_ff, rows});
      if (p.biases) x = f32(n_ff * rows, {x, small_weight(n_ff)}, true, {n_ff, rows});
      x = f32(n_ff * rows, {x}, true, {n_ff, rows});  // gelu, in place
      break;
  }
  x = f32(n_embd * rows, {weight("ffn_down" + sfx + ".weight"), x}, false, {n_embd, rows});
  if (p.biases) x = f32(n_embd * rows, {x, small_weight(n_embd)}, true, {n_embd, rows});
  return x;
}

int LlmGraph::moe_ffn(int x, uint64_t rows, const MoeParams& p) {
  const uint64_t n_expert = hp().n_expert, k_used = hp().n_expert_used, n_embd = hp().n_embd;
  const uint64_t n_ff = p.width ? p.width : hp().n_ff_exp ? hp().n_ff_exp : hp().n_ff;
  auto i32 = [&](uint64_t elems, int src, std::initializer_list<uint64_t> shape) {
    return g_.op(elems, 4, {src}, false, "i32:" + shape_key(shape));
  };
  int logits = f32(n_expert * rows, {weight("ffn_gate_inp.weight"), x}, false, {n_expert, rows});
  if (p.logits_bias) logits = f32(n_expert * rows, {logits, small_weight(n_expert)}, true, {n_expert, rows});
  // soft_max and sigmoid may run in place; SOFTMAX_WEIGHT keeps the logits as they are
  const int probs = p.gating == 3 ? logits : f32(n_expert * rows, {logits}, true, {n_expert, rows});
  int selection = probs;
  if (p.probs_bias) selection = f32(n_expert * rows, {probs, small_weight(n_expert)}, true, {n_expert, rows});
  if (p.groups > 1) {  // group-limited: the best groups_used groups by the sum of their top two
    const uint64_t per_group = n_expert / p.groups, G = p.groups;
    const int groups_view = g_.view(selection);
    const int top2 = g_.view(i32(per_group * G * rows, groups_view, {per_group, G, rows}));
    int scores = f32(2 * G * rows, {g_.view(groups_view), top2}, false, {1, 2, G, rows});  // get_rows
    scores = f32(G * rows, {g_.view(scores)}, false, {1, G, rows});                          // sum_rows
    const int chosen_groups = g_.view(i32(G * rows, g_.view(scores), {G, rows}));            // argsort_top_k
    const int kept = f32(per_group * p.groups_used * rows, {groups_view, chosen_groups}, false, {per_group, p.groups_used, rows});
    const int filled = f32(per_group * G * rows, {groups_view}, true, {per_group, G, rows});  // fill(-inf)
    selection = g_.view(g_.view(filled, {kept, chosen_groups}));                               // set_rows, reshape
  }
  const int sorted = i32(n_expert * rows, selection, {n_expert, rows});  // argsort
  const int top = g_.view(sorted);
  int weights = f32(k_used * rows, {g_.view(probs), top}, false, {1, k_used, rows});  // get_rows
  // reshapes are views, and ggml-alloc never lets an in-place op take over a view (ggml_gallocr_is_own is false
  // for views: "not reusing parent ... as it is external" in its debug log)
  auto as_2d = [&](int w) { return g_.view(w); };
  auto as_3d = [&](int w) { return g_.view(w); };
  if (p.gating == 3) weights = as_3d(f32(k_used * rows, {as_2d(weights)}, true, {k_used, rows}));  // soft_max
  if (p.normalise) {
    const int w2 = as_2d(weights);
    int weight_sum = f32(rows, {w2}, false, {1, rows});                   // sum_rows
    weight_sum = f32(rows, {weight_sum}, true, {1, rows});                // clamp
    weights = as_3d(f32(k_used * rows, {w2, weight_sum}, true, {k_used, rows}));  // div
  }
  if (p.scale) weights = f32(k_used * rows, {weights}, true, {1, k_used, rows});
  const int x_rows = g_.view(x);
  // the walk from the activation visits the gate first (swiglu's first source), then the up projection
  int gate = f32(n_ff * k_used * rows, {weight("ffn_gate_exps.weight"), x_rows, top}, false, {n_ff, k_used, rows});
  if (p.expert_biases) gate = f32(n_ff * k_used * rows, {gate, small_weight(n_ff * n_expert, "ffn_gate_exps.bias"), top}, true, {n_ff, k_used, rows});  // add_id
  int up = f32(n_ff * k_used * rows, {weight("ffn_up_exps.weight"), x_rows, top}, false, {n_ff, k_used, rows});
  if (p.expert_biases) up = f32(n_ff * k_used * rows, {up, small_weight(n_ff * n_expert, "ffn_up_exps.bias"), top}, true, {n_ff, k_used, rows});
  const int act = g_.op(n_ff * k_used * rows, 4, {gate, up}, false, shape_key({n_ff, k_used, rows, 7}));  // swiglu
  int down = f32(n_embd * k_used * rows, {weight("ffn_down_exps.weight"), act, top}, false, {n_embd, k_used, rows});
  if (p.expert_biases) down = f32(n_embd * k_used * rows, {down, small_weight(n_embd * n_expert, "ffn_down_exps.bias"), top}, true, {n_embd, k_used, rows});
  // CUDA keeps the experts' outputs and the weights alive until the weighted reduction ends, so the
  // multiplication by the routing weights cannot run in place; the CPU backend's graph multiplies in place
  const int experts = f32(n_embd * k_used * rows, {down, g_.view(weights)}, shape_.cpu, {n_embd, k_used, rows});
  int sum = f32(n_embd * rows, {g_.view(experts), g_.view(experts)}, false, {n_embd, rows});
  for (uint64_t e = 2; e < k_used; ++e) sum = f32(n_embd * rows, {sum, g_.view(experts)}, true, {n_embd, rows});
  if (!shape_.cpu) g_.op(0, 1, {down, sum, weights}, false, "dep");  // the dependency that keeps them alive (a NONE node)
  return sum;
}

// ---- multi-head latent attention (src/models/deepseek2.cpp, MLA branch; llama-graph.cpp build_attn_mha) ---------

int LlmGraph::mla_attention(uint64_t il, int x) {
  layer_ = static_cast<int64_t>(il);
  const Hparams& h = hp();
  const uint64_t T = shape_.n_tokens, H = h.n_head[il], R = h.n_lora_kv, dr = h.n_rot;
  const uint64_t dk = h.n_embd_head_k_mla, dv = h.n_embd_head_v_mla, n_embd = h.n_embd;
  const uint64_t n_kv = shape_.n_kv_cells;
  // Q: through the low-rank projection and its norm (or one wq), split into nope and rope parts
  int q;
  if (h.n_lora_q > 0) {
    q = f32(h.n_lora_q * T, {weight("attn_q_a.weight"), x}, false, {h.n_lora_q, T});
    q = f32(h.n_lora_q * T, {q}, true, {h.n_lora_q, T});              // rms_norm
    q = f32(h.n_lora_q * T, {q, small_weight(h.n_lora_q)}, true, {h.n_lora_q, T});  // mul by attn_q_a_norm
    q = f32(dk * H * T, {weight("attn_q_b.weight"), q}, false, {dk * H, T});
  } else {
    q = f32(dk * H * T, {weight("attn_q.weight"), x}, false, {dk * H, T});
  }
  const int q_nope = g_.view(g_.view(q)), q_pe = g_.view(g_.view(q));
  const int q_absorbed = f32(R * T * H, {weight("attn_k_b.weight"), g_.view(q_nope)}, false, {R, T, H});  // mul_mat(wk_b, q_nope)
  const int q_roped = f32(dr * H * T, {q_pe, pos_, weights_}, true, {dr, H, T});          // rope of a view: new
  const int q_cur = f32((R + dr) * H * T, {g_.view(q_absorbed), q_roped}, false, {R + dr, H, T});  // concat
  // V: the normed latent (expanded before K)
  const int kv_cmpr_pe = f32((R + dr) * T, {weight("attn_kv_a_mqa.weight"), x}, false, {R + dr, T});
  int kv_cmpr = f32(R * T, {g_.view(kv_cmpr_pe)}, true, {R, T});      // rms_norm of a view: new
  kv_cmpr = f32(R * T, {kv_cmpr, small_weight(R)}, true, {R, T});    // mul by attn_kv_a_norm
  // K: the latent and the roped k_pe, concatenated, stored
  const int k_pe = f32(dr * T, {g_.view(kv_cmpr_pe), pos_, weights_}, true, {dr, 1, T});
  const int k_cur = f32((R + dr) * T, {g_.view(kv_cmpr), k_pe}, false, {R + dr, 1, T});
  const int store_k = g_.view(kv_cache_, {k_cur, kv_.k_idx});
  if (shape_.weight_copies && il < shape_.host_kv_layers) g_.set_cpu(store_k);
  int cur;
  if (shape_.flash_attn) {
    uint64_t bytes = 4 * R * H * T;
    if (!shape_.cpu) bytes = pad_to(bytes, kCudaAlignmentBytes);
    if (!shape_.cpu && quantised(shape_.type_k)) bytes = pad_to(bytes + 2 * (R + dr) * n_kv + 2 * R * n_kv, kCudaAlignmentBytes);
    int k_src = g_.view(kv_cache_), v_src = g_.view(kv_cache_);
    if (shape_.weight_copies && il < shape_.host_kv_layers) {
      // a cache in host memory: the GPU's attention reads copies of its K view and of V, a view of K's first R
      // values per cell (llama-graph.cpp build_attn, the MLA cache) that keeps K's row stride, so its copy
      // (ggml_dup_tensor_layout) spans n_kv - 1 whole rows and R values (ggml_nbytes)
      const uint64_t row = *dtype_bytes(shape_.type_k, R + dr);
      k_src = g_.host_copy(row * n_kv, k_src, false, "k");
      v_src = g_.host_copy(row * (n_kv - 1) + *dtype_bytes(shape_.type_k, R), v_src, false, "v");
    }
    const int fa = g_.op(bytes, 1, {g_.view(q_cur), k_src, v_src, kv_.mask}, false, shape_key({R, H, T}));
    const int decompressed = f32(dv * T * H, {weight("attn_v_b.weight"), g_.view(fa)}, false, {dv, T, H});  // mul_mat(wv_b)
    cur = f32(dv * H * T, {g_.view(decompressed)}, false, {dv, H, T});                     // cont(permute)
  } else {
    // V is a strided view of the K cache: made contiguous and transposed, in the cache's type; mul_mat(v, kq)
    // lists it first, so the walk reaches it before KQ
    const DType vt = shape_.type_k;
    const int v = g_.op(*dtype_bytes(vt, n_kv * R), 1, {g_.view(kv_cache_)}, false, std::string(dtype_name(vt)) + shape_key({n_kv, R}));
    int kq = f32(n_kv * T * H, {g_.view(kv_cache_), g_.view(q_cur)}, false, {n_kv, T, H});
    kq = f32(n_kv * T * H, {kq, kv_.mask}, true, {n_kv, T, H});  // soft_max_ext
    const int kqv = f32(R * T * H, {v, kq}, false, {R, T, H});
    const int decompressed = f32(dv * T * H, {weight("attn_v_b.weight"), kqv}, false, {dv, T, H});
    cur = f32(dv * H * T, {g_.view(decompressed)}, false, {dv * H, T});  // cont_2d(permute)
  }
  return f32(n_embd * T, {weight("attn_output.weight"), g_.view(cur)}, false, {n_embd, T});  // wo
}

// ---- output (llama-graph.cpp: result_norm, result_output) --------------------------------------------------------

void LlmGraph::build_output(int cur, Norm kind, bool final_logit_softcap, bool output_bias) {
  if (shape_.device_graph) {  // the output layer's device reads the last hidden state from the last layer's
    g_.set_muted(!with_output_);
    if (!with_output_) return;
  }
  if (!with_output_) {  // the output layer stays on the host: the split ends with the last hidden state
    g_.mark_output(cur);
    return;
  }
  const uint64_t n_vocab = hp().n_vocab, n_outputs = std::min(shape_.n_outputs, shape_.n_tokens);
  layer_ = -1;
  output_started_ = true;
  const int x = norm(cur, kind, n_outputs);
  g_.mark_output(x);
  int logits = f32(n_vocab * n_outputs, {weight("output.weight"), x}, false, {n_vocab, n_outputs});
  if (output_bias) logits = f32(n_vocab * n_outputs, {logits, small_weight(n_vocab)}, true, {n_vocab, n_outputs});
  if (final_logit_softcap)  // scale, tanh, scale, in place
    for (int step = 0; step < 3; ++step) logits = f32(n_vocab * n_outputs, {logits}, true, {n_vocab, n_outputs});
  g_.mark_output(logits);
}

uint64_t LlmGraph::compute_buffer_bytes() const {
  return simulate_gallocr(g_, shape_.cpu ? kCpuAlignmentBytes : kCudaAlignmentBytes);
}

uint64_t gpu_compute_buffer(const Model& model, const Architecture& arch, const GraphShape& shape, bool with_output) {
  LlmGraph graph(model, shape, arch, with_output);
  arch.build_graph(graph);
  return graph.compute_buffer_bytes();
}

}  // namespace llmem::llamacpp
