// The mmproj GGUF and clip's buffers (llamacpp_mmproj.hpp). Sources, at llama.cpp 80fb11ac:
//  - the file: convert_hf_to_gguf.py --mmproj; conversion/gemma.py Gemma3VisionModel (filter_tensors,
//    tensor_force_quant: "input_projection" F16, ".embeddings." F32); conversion/base.py MmprojModel
//    (tensor_force_quant: patch embeddings) and ModelBase.prepare_tensors (1-D tensors and *_norm.weight F32,
//    position embeddings F32, the outtype otherwise; Q8_0 falls back to F16 for rows that are not whole blocks:
//    gguf-py quants.py QuantError); names from gguf-py tensor_mapping.py (MODEL_ARCH.MMPROJ).
//  - the buffers: tools/mtmd/clip.cpp clip_model_loader::load_tensors (weights), warmup / reserve_compute_meta
//    (compute, the warm-up image of warmup_image_size), clip_graph::build_inp / build_vit / build_attn /
//    build_ffn and tools/mtmd/models/siglip.cpp (the gemma3 projector); ggml.c ggml_conv_2d (im2col F16 unless the
//    kernel is BF16) and ggml_visit_parents_graph (the node order, with build_attn's ggml_build_forward_order of
//    Q, K and V).
#include "llmem/llamacpp_mmproj.hpp"

#include <cmath>

#include <fmt/core.h>

#include "galloc.hpp"
#include "graph.hpp"
#include "llmem/error.hpp"

namespace llmem::llamacpp {
namespace {

constexpr uint64_t kGgufAlignment = 32;  // general.alignment's default (gguf.h GGUF_DEFAULT_ALIGNMENT)

DType outtype_dtype(const std::string& outtype) {
  if (outtype == "f32") return DType::F32;
  if (outtype == "f16") return DType::F16;
  if (outtype == "bf16") return DType::BF16;
  if (outtype == "q8_0") return DType::Q8_0;
  throw Error(ErrorKind::kUsage, outtype, "is not an --outtype of the converter for an mmproj (f32, f16, bf16, q8_0)");
}

// ---- a ggml-like graph, put in ggml_visit_parents_graph's order ---------------------------------------------
struct Node {
  uint64_t elem_bytes = 4;
  std::vector<uint64_t> ne;
  std::vector<int> src;
  int view_of = -1;
  bool inplace = false, input = false, leaf = false, visited = false;
};

class ClipGraph {
 public:
  int weight(const std::string& what) {
    Node n;
    n.leaf = true;
    nodes_.push_back(n);
    names_.push_back(what);
    return last();
  }
  int input(std::vector<uint64_t> ne) {
    Node n;
    n.input = true;
    n.ne = std::move(ne);
    nodes_.push_back(n);
    names_.push_back("input");
    return last();
  }
  int op(std::vector<uint64_t> ne, uint64_t elem_bytes, std::vector<int> src, bool inplace = false) {
    Node n;
    n.ne = std::move(ne);
    n.elem_bytes = elem_bytes;
    n.src = std::move(src);
    n.inplace = inplace;
    nodes_.push_back(n);
    names_.push_back("op");
    return last();
  }
  // ggml_op_can_inplace: add, mul, rms_norm, unary (gelu), soft_max
  int inplace(std::vector<uint64_t> ne, std::vector<int> src) { return op(std::move(ne), 4, std::move(src), true); }
  int view(int of) {
    Node n;
    n.src = {of};
    n.view_of = of;
    nodes_.push_back(n);
    names_.push_back("view");
    return last();
  }
  // ggml_build_forward_order / ggml_build_forward_expand: the parents first, depth first, src[0] before src[1]
  void expand(int t) {
    Node& n = nodes_[static_cast<size_t>(t)];
    if (n.visited) return;
    n.visited = true;
    for (int s : std::vector<int>(n.src)) expand(s);
    order_.push_back(t);
  }
  uint64_t buffer_bytes(uint64_t alignment) const {
    Graph g;
    std::vector<int> index(nodes_.size(), -1);
    for (int t : order_) {
      const Node& n = nodes_[static_cast<size_t>(t)];
      std::string shape;
      for (uint64_t d : n.ne) shape += std::to_string(d) + ",";
      uint64_t elems = 1;
      for (uint64_t d : n.ne) elems *= d;
      std::vector<int> src;
      for (int s : n.src) src.push_back(index[static_cast<size_t>(s)]);
      if (n.leaf) index[static_cast<size_t>(t)] = g.external(names_[static_cast<size_t>(t)]);
      else if (n.input) index[static_cast<size_t>(t)] = g.input(elems * n.elem_bytes, shape);
      else if (n.view_of >= 0) index[static_cast<size_t>(t)] = g.view(src.front());
      else index[static_cast<size_t>(t)] = g.op(elems, n.elem_bytes, src, n.inplace, shape);
    }
    return simulate_gallocr(g, alignment);
  }

 private:
  int last() const { return static_cast<int>(nodes_.size()) - 1; }
  std::vector<Node> nodes_;
  std::vector<std::string> names_;
  std::vector<int> order_;
};

// clip_graph::build_norm with NORM_TYPE_NORMAL: ggml_norm (not in place), mul by the weight, add the bias
int layer_norm(ClipGraph& g, int x, const std::vector<uint64_t>& ne) {
  int cur = g.op(ne, 4, {x});
  cur = g.inplace(ne, {cur, g.weight("norm.weight")});
  return g.inplace(ne, {cur, g.weight("norm.bias")});
}

// clip_graph::build_vit over SigLIP layers (separate Q/K/V with biases, GELU FFN, no gate), then the gemma3
// projector of siglip.cpp; returns the compute buffer.
uint64_t gemma3_compute(const ClipVision& hp, bool flash, uint64_t alignment) {
  const uint64_t E = hp.n_embd, F = hp.n_ff, H = hp.n_head, D = E / H;
  const uint64_t side = hp.warmup_image_size() / hp.patch_size, P = side * side, K = 3 * hp.patch_size * hp.patch_size;
  ClipGraph g;
  // build_inp: inp_raw, ggml_conv_2d (im2col, mul_mat, permute + cont), transpose + cont, the patch bias
  const int raw = g.input({hp.warmup_image_size(), hp.warmup_image_size(), 3, 1});
  const int kernel = g.weight("v.patch_embd.weight");
  const int im2col = g.op({K, side, side, 1}, 2, {kernel, raw});
  const int conv = g.op({P, E}, 4, {g.view(im2col), g.view(kernel)});
  int x = g.op({side, side, E, 1}, 4, {g.view(g.view(conv))});
  x = g.op({E, P}, 4, {g.view(g.view(x))});
  x = g.inplace({E, P}, {x, g.weight("v.patch_embd.bias")});
  x = g.inplace({E, P}, {x, g.weight("v.position_embd.weight")});
  int inpL = g.view(x);
  for (uint64_t il = 0; il < hp.n_layer; ++il) {
    int cur = layer_norm(g, inpL, {E, P});
    int qkv[3];
    for (int& t : qkv) t = g.view(g.inplace({E, P}, {g.op({E, P}, 4, {g.weight("attn.weight"), cur}), g.weight("attn.bias")}));
    for (int t : qkv) g.expand(t);  // build_attn: ggml_build_forward_order(gf, q_cur / k_cur / v_cur)
    const int q = g.view(qkv[0]), k = g.view(qkv[1]);
    int attn;
    if (flash) {
      const int kc = g.op({D, P, H, 1}, 2, {k});              // ggml_cast(k, F16)
      const int vc = g.op({D, P, H, 1}, 2, {g.view(qkv[2])});  // ggml_cast(v, F16)
      attn = g.view(g.op({D, H, P, 1}, 4, {q, kc, vc}));      // ggml_flash_attn_ext, reshape_2d
    } else {
      const int v = g.op({P, D, H, 1}, 4, {g.view(qkv[2])});  // cont(permute(v, 1, 2, 0, 3))
      int kq = g.op({P, P, H, 1}, 4, {k, q});
      kq = g.op({P, P, H, 1}, 4, {kq}, true);                 // soft_max_ext
      const int kqv = g.op({D, P, H, 1}, 4, {v, kq});
      attn = g.op({E, P}, 4, {g.view(kqv)});                   // cont_2d(permute)
    }
    attn = g.inplace({E, P}, {g.op({E, P}, 4, {g.weight("attn_out.weight"), attn}), g.weight("attn_out.bias")});
    inpL = g.inplace({E, P}, {attn, inpL});
    cur = layer_norm(g, inpL, {E, P});
    int up = g.inplace({F, P}, {g.op({F, P}, 4, {g.weight("ffn_up.weight"), cur}), g.weight("ffn_up.bias")});
    up = g.inplace({F, P}, {up});  // ggml_gelu
    const int down = g.inplace({E, P}, {g.op({E, P}, 4, {g.weight("ffn_down.weight"), up}), g.weight("ffn_down.bias")});
    inpL = g.inplace({E, P}, {inpL, down});
  }
  int cur = g.view(layer_norm(g, inpL, {E, P}));  // post_ln, reshape_3d
  // siglip.cpp, PROJECTOR_TYPE_GEMMA3: transpose + cont_4d, pool_2d (avg, n_merge), reshape, transpose + cont,
  // rms_norm, mul by soft_emb_norm, mul_mat by cont(transpose(input_projection)) (an F16 copy in the buffer)
  cur = g.op({side, side, E, 1}, 4, {g.view(cur)});
  const uint64_t pooled = side / hp.n_merge;
  cur = g.op({pooled, pooled, E, 1}, 4, {cur});
  cur = g.op({E, pooled * pooled, 1}, 4, {g.view(g.view(cur))});
  cur = g.inplace({E, pooled * pooled, 1}, {cur});
  cur = g.inplace({E, pooled * pooled, 1}, {cur, g.weight("mm.soft_emb_norm.weight")});
  const int proj = g.op({E, hp.projection_dim}, 2, {g.view(g.weight("mm.input_projection.weight"))});
  g.expand(g.op({hp.projection_dim, pooled * pooled, 1}, 4, {proj, cur}));
  return g.buffer_bytes(alignment);
}

}  // namespace

uint64_t MmprojFile::tensor_data_bytes() const {
  uint64_t sum = 0;
  for (const auto& t : tensors) sum += pad_to(t.bytes(), kGgufAlignment);
  return sum;
}

namespace {

// conversion/qwenvl.py Qwen2VLVisionModel for Qwen2_5_VLForConditionalGeneration: the visual.* tensors, QKV split
// into Q, K, V (modify_tensors), the Conv3D patch embedding split into two Conv2D kernels (v.patch_embd.weight and
// .weight.1, temporal_patch_size 2); names from tensor_mapping.py (visual.blocks.N.norm1 -> v.blk.N.ln1, ...,
// visual.merger.ln_q -> v.post_ln, visual.merger.mlp.0/2 -> mm.0/mm.2). Types: MmprojModel.tensor_force_quant
// keeps the patch embedding F16 for --outtype f16 and F32 otherwise; 1-D tensors F32; the rest the outtype, Q8_0
// falling back to F16 for rows that are not whole blocks (ffn_down's 3420).
MmprojFile predict_qwen25vl(const HfConfig& config, const std::string& outtype, DType out) {
  MmprojFile f;
  f.outtype = outtype;
  const HfConfig v = config.sub("vision_config");
  ClipVision& hp = f.hp;
  hp.projector = "qwen2.5vl_merger";
  hp.n_embd = v.dim("hidden_size");
  hp.n_ff = v.dim("intermediate_size");
  hp.n_layer = v.dim("depth");
  hp.n_head = v.dim("num_heads");
  hp.patch_size = v.dim("patch_size");
  hp.image_size = v.dim_or("image_size", 560);  // Qwen2VLVisionModel.__init__'s default
  hp.projection_dim = v.dim("out_hidden_size");
  hp.n_merge = v.dim_or("spatial_merge_size", 2);
  hp.warmup_tokens_per_side = 46;  // clip.cpp load_hparams: set_warmup_n_tokens(46*46) "avoid OOM on warmup"
  if (v.dim_or("temporal_patch_size", 2) != 2)
    throw Error(ErrorKind::kUnsupported, config.origin(), "the converter takes temporal_patch_size 2 only (Qwen2VLVisionModel)");
  const uint64_t E = hp.n_embd, F = hp.n_ff, M = E * hp.n_merge * hp.n_merge;
  auto matrix = [&](uint64_t ne0) { return out == DType::Q8_0 && ne0 % 32 != 0 ? DType::F16 : out; };
  const DType patch = out == DType::F16 ? DType::F16 : DType::F32;
  auto add = [&](std::string name, DType type, std::vector<uint64_t> ne, int layer = -1) {
    f.tensors.push_back({std::move(name), type, std::move(ne), layer});
  };
  add("v.patch_embd.weight", patch, {hp.patch_size, hp.patch_size, 3, E});
  add("v.patch_embd.weight.1", patch, {hp.patch_size, hp.patch_size, 3, E});
  for (uint64_t il = 0; il < hp.n_layer; ++il) {
    const std::string b = fmt::format("v.blk.{}.", il);
    const int l = static_cast<int>(il);
    add(b + "ln1.weight", DType::F32, {E}, l);
    add(b + "ln2.weight", DType::F32, {E}, l);
    for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_out"}) {
      add(b + n + ".weight", matrix(E), {E, E}, l);
      add(b + n + ".bias", DType::F32, {E}, l);
    }
    for (const char* n : {"ffn_gate", "ffn_up"}) {
      add(b + n + ".weight", matrix(E), {E, F}, l);
      add(b + n + ".bias", DType::F32, {F}, l);
    }
    add(b + "ffn_down.weight", matrix(F), {F, E}, l);
    add(b + "ffn_down.bias", DType::F32, {E}, l);
  }
  add("v.post_ln.weight", DType::F32, {E});
  add("mm.0.weight", matrix(M), {M, M});
  add("mm.0.bias", DType::F32, {M});
  add("mm.2.weight", matrix(M), {M, hp.projection_dim});
  add("mm.2.bias", DType::F32, {hp.projection_dim});
  return f;
}

}  // namespace

MmprojFile predict_mmproj(const HfConfig& config, const std::string& outtype) {
  MmprojFile f;
  f.outtype = outtype;
  const DType out = outtype_dtype(outtype);
  if (config.model_type() == "qwen2_5_vl" && config.has("vision_config")) return predict_qwen25vl(config, outtype, out);
  if (config.model_type() != "gemma3" || !config.has("vision_config"))
    throw Error(ErrorKind::kUnsupported, config.origin(),
                "predicting the mmproj file is modelled for gemma3 and qwen2.5-vl (its tensors) only so far");
  const HfConfig v = config.sub("vision_config");
  const HfConfig text = config.has("text_config") ? config.sub("text_config") : config;
  ClipVision& hp = f.hp;
  hp.projector = "gemma3";
  hp.n_embd = v.dim("hidden_size");
  hp.n_ff = v.dim("intermediate_size");
  hp.n_layer = v.dim("num_hidden_layers");
  hp.n_head = v.dim("num_attention_heads");
  hp.image_size = v.dim("image_size");
  hp.patch_size = v.dim("patch_size");
  hp.projection_dim = text.dim("hidden_size");
  // Gemma3VisionModel.set_gguf_parameters: proj_scale_factor = (image_size / patch_size) / sqrt(image_seq_length),
  // image_seq_length from preprocessor_config.json (256 by default; config.json's mm_tokens_per_image is the same)
  const auto per_side = static_cast<uint64_t>(std::sqrt(static_cast<double>(config.dim_or("mm_tokens_per_image", 256))));
  const uint64_t factor = (hp.image_size / hp.patch_size) / per_side;
  if (factor > 0) hp.n_merge = factor;
  if (hp.n_merge != 2 && hp.n_merge != 4)
    throw Error(ErrorKind::kInvalidInput, config.origin(), fmt::format("projector scale factor {} (clip.cpp takes 2 or 4)", hp.n_merge));
  const uint64_t E = hp.n_embd, F = hp.n_ff, side = hp.image_size / hp.patch_size;
  // a matrix of the outtype; Q8_0 needs whole 32-element rows, else the converter writes F16
  auto matrix = [&](uint64_t ne0) { return out == DType::Q8_0 && ne0 % 32 != 0 ? DType::F16 : out; };
  auto add = [&](std::string name, DType type, std::vector<uint64_t> ne, int layer = -1) {
    f.tensors.push_back({std::move(name), type, std::move(ne), layer});
  };
  add("v.patch_embd.weight", DType::F32, {hp.patch_size, hp.patch_size, 3, E});
  add("v.patch_embd.bias", DType::F32, {E});
  add("v.position_embd.weight", DType::F32, {E, side * side});
  for (uint64_t il = 0; il < hp.n_layer; ++il) {
    const std::string b = fmt::format("v.blk.{}.", il);
    const int l = static_cast<int>(il);
    for (const char* n : {"ln1", "ln2"}) {
      add(b + n + ".weight", DType::F32, {E}, l);
      add(b + n + ".bias", DType::F32, {E}, l);
    }
    for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_out"}) {
      add(b + n + ".weight", matrix(E), {E, E}, l);
      add(b + n + ".bias", DType::F32, {E}, l);
    }
    add(b + "ffn_up.weight", matrix(E), {E, F}, l);
    add(b + "ffn_up.bias", DType::F32, {F}, l);
    add(b + "ffn_down.weight", matrix(F), {F, E}, l);
    add(b + "ffn_down.bias", DType::F32, {E}, l);
  }
  add("v.post_ln.weight", DType::F32, {E});
  add("v.post_ln.bias", DType::F32, {E});
  add("mm.input_projection.weight", DType::F16, {hp.projection_dim, E});
  add("mm.soft_emb_norm.weight", DType::F32, {E});
  return f;
}

uint64_t clip_weights_buffer_bytes(const MmprojFile& file, bool cpu) {
  uint64_t sum = 0;
  for (const auto& t : file.tensors) {
    uint64_t bytes = t.bytes();
    // ggml_backend_cuda_buffer_type_get_alloc_size: quantised rows padded to MATRIX_ROW_PADDING (512) once
    if (!cpu && t.type == DType::Q8_0 && t.ne[0] % 512 != 0) bytes += *dtype_bytes(t.type, 512 - t.ne[0] % 512);
    sum += pad_to(bytes, cpu ? kCpuAlignmentBytes : kCudaAlignmentBytes);
  }
  return sum;
}

uint64_t clip_compute_buffer_bytes(const ClipVision& hp, bool flash_attn, bool cpu) {
  if (hp.projector != "gemma3")
    throw Error(ErrorKind::kUnsupported, hp.projector + " projector",
                "clip's compute buffer (the warm-up graph) is modelled for the gemma3 projector only so far");
  return gemma3_compute(hp, flash_attn, cpu ? kCpuAlignmentBytes : kCudaAlignmentBytes);
}

bool clip_flash_attn_auto(const ClipVision& hp, bool cpu) {
  if (cpu) return true;
  const uint64_t d = hp.n_head ? hp.n_embd / hp.n_head : 0;
  for (uint64_t ok : {40, 64, 72, 80, 96, 112, 128, 256})
    if (d == ok) return true;
  return false;
}

uint64_t clip_host_input_bytes(const ClipVision& hp) {
  const uint64_t side = hp.warmup_image_size();
  return pad_to(4 * 3 * side * side, kCpuAlignmentBytes);
}

}  // namespace llmem::llamacpp
