// The graph toolkit the builders share: llama.cpp's llm_graph_context (src/llama-graph.cpp) re-stated for sizes.
// A builder (builders.cpp) calls the same blocks, in the same order, as its src/models/<arch>.cpp: the inputs,
// norms, self-attention with the KV-cache store, the FFN or the routed experts, the output. Each block records
// the ggml tensors it creates, with their types, shapes and whether their op may run in place, in the order
// ggml_build_forward_expand visits them; galloc.hpp replays ggml's allocator over the result.
//
// What differs between architectures is a parameter of a block (fused QKV, Q/K norms, attention soft-cap, ...),
// never a test of the architecture's name.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <set>
#include <string>

#include "architectures.hpp"
#include "galloc.hpp"
#include "llmem/llamacpp.hpp"

namespace llmem::llamacpp {

// A quantised cache's Hadamard rotation of K (llama-kv-cache.cpp build_input_k_rot): the largest power of two,
// 64 or more, dividing the head size (a multiple of 64). V's is always 64 x 64.
inline uint64_t hadamard_k_size(uint64_t head_k) {
  uint64_t n = 64;
  while (head_k % (n * 2) == 0) n *= 2;
  return n;
}

// CUDA buffers align every allocation to 128 bytes (ggml-cuda.cu ggml_backend_cuda_buffer_type_get_alignment).
inline constexpr uint64_t kCudaAlignmentBytes = 128;

// The worst-case ubatch llama.cpp reserves the compute buffer for (llama-context.cpp graph_reserve).
struct GraphShape {
  uint64_t n_tokens = 512;       // tokens in the ubatch
  uint64_t n_outputs = 512;      // rows of logits
  uint64_t n_kv_cells = 4096;    // cells of the (full-attention) cache the graph attends over
  uint64_t n_kv_cells_swa = 0;   // cells of the sliding-window cache, 0 when there is none
  bool flash_attn = true;
  DType type_k = DType::F16, type_v = DType::F16;
  // The CPU backend's graph of a CPU-only run instead of the CUDA split: 32-byte alignment (TENSOR_ALIGNMENT), the
  // token embeddings gathered inside the graph (get_rows of the token ids), no CUDA-specific op sizes.
  bool cpu = false;
  // Weights in host memory that the scheduler copies into the GPU's compute buffer for the ops it offloads (tensor
  // name -> the copy's bytes in a CUDA buffer); null or empty when none are.
  const std::map<std::string, uint64_t>* weight_copies = nullptr;
  // With weight_copies set: the names of the other tensors left in host memory (norms, biases), which the ops the
  // GPU takes over read from copies too.
  const std::set<std::string>* host_small_weights = nullptr;
  // With weight_copies set (ops offloaded to the GPU): layers below this keep their KV cache in host memory, and
  // their attention on the GPU reads copies of the cache's K and V views (split inputs, freed after the op).
  uint64_t host_kv_layers = 0;
  // One device of several (llama.cpp's layer split): its layers first_layer..last_layer, the output where the graph
  // is built with_output; the other devices' ops are muted (Graph::set_muted) and the tensors it reads from them
  // arrive as split inputs, split_input_copies times with pipeline parallelism (GGML_SCHED_MAX_COPIES).
  bool device_graph = false;
  uint64_t first_layer = 0, last_layer = 0;
  uint64_t split_input_copies = 1;
};

// The CPU backend's buffer alignment (ggml-backend.cpp ggml_backend_cpu_buffer_type_get_alignment: TENSOR_ALIGNMENT).
inline constexpr uint64_t kCpuAlignmentBytes = 32;

enum class Norm {
  kRms,    // rms_norm (may run in place), mul by the weight
  kLayer,  // norm (never in place), mul by the weight, add the bias
};

enum class QkvLayout {
  kSeparate,      // wq, wk, wv (build_qkv: three mul_mats, issued Q, V, K in the DFS order of the graph)
  kFusedViews,    // one wqkv; Q, K, V are strided views of its result (build_qkv: Phi-3, GPT-2, Falcon, ...)
};

struct AttentionParams {
  QkvLayout qkv = QkvLayout::kSeparate;
  bool qkv_bias = false;   // biases on the projections (or on the fused projection)
  bool qk_norm = false;    // rms_norm of the Q and K heads before rope (Qwen3, Gemma 3)
  // rms_norm of the whole Q and K projections before they are split into heads (OLMo 2: attn_q_norm is
  // n_head * head_dim wide). The graph then holds Q's chain, V, then K's chain, as build_attn expands them.
  bool qk_norm_rows = false;
  bool rope = true;        // false where the model adds learned positions to the embeddings
  bool scale_q = false;    // ggml_scale of Q before attention (Gemma's query_pre_attn_scalar, Phi-3's 1/sqrt(d))
  bool kq_softcap = false; // scale, tanh, scale of the KQ logits (Gemma 2); a kernel parameter with flash attention
  bool o_bias = false;     // bias after the output projection
};

enum class FfnKind {
  kGated,       // act(gate(x)) * up(x), then down (SwiGLU/GeGLU, build_ffn LLM_FFN_PAR)
  kGatedFused,  // one up projection of 2 * n_ff whose halves are gate and up (Phi-3's gate_up_proj)
  kPlain,       // act(up(x)), then down (GPT-2's MLP)
};

struct FfnParams {
  FfnKind kind = FfnKind::kGated;
  bool biases = false;     // on the up and down projections
  uint64_t width = 0;      // 0: the model's n_ff (DeepSeek's shared experts: n_ff_exp * n_expert_shared)
  const char* suffix = "";  // of the tensors' names: ffn_gate<suffix>.weight ("_shexp": DeepSeek's shared experts)
};

// build_moe_ffn's arguments beyond the tensors.
struct MoeParams {
  int gating = 1;               // LLAMA_EXPERT_GATING_FUNC_TYPE: 1 softmax, 2 sigmoid, 3 softmax of the chosen logits
  bool logits_bias = false;     // gate_inp_b added to the router's logits (gpt-oss)
  bool probs_bias = false;      // exp_probs_b added for the selection only (DeepSeek-V3)
  uint64_t groups = 1, groups_used = 1;  // group-limited selection (DeepSeek-V3)
  bool normalise = true;        // the chosen weights divided by their sum
  bool scale = false;           // the weights scaled (expert_weights_scale other than 0 and 1)
  bool expert_biases = false;   // add_id after the up, gate and down projections (gpt-oss)
  uint64_t width = 0;           // 0: the model's n_ff
};

// The rows a layer carries on: the last layer keeps only the rows that produce outputs (ggml_get_rows with
// inp_out_ids on the attention output and the residual).
struct LayerRows {
  int attn_out;
  int residual;
  uint64_t rows;
};

class LlmGraph {
 public:
  LlmGraph(const Model& model, const GraphShape& shape, const Architecture& arch, bool with_output);

  const Hparams& hp() const { return model_.hp; }
  uint64_t n_tokens() const { return shape_.n_tokens; }
  bool has_tensor(const std::string& gguf_name) const;
  // Biases on Q/K/V (or the fused QKV) of the first layer, as llama.cpp's builders test model.layers[il].bq.
  bool has_qkv_bias() const;
  bool has_experts() const { return model_.hp.n_expert > 1; }
  // Every layer starts here: its weights are named blk.<il>, and in one device's graph another device's layer is
  // muted.
  void begin_layer(uint64_t il);

  // build_inp_embd, build_inp_pos, build_attn_inp_kv(_iswa), build_inp_out_ids: the inputs, in the order the
  // scheduler copies them in. Returns the embeddings; position_embeddings() holds the learned positions' rows.
  int build_inputs();
  int position_embeddings() const;

  // Elementwise ops on [n_embd x rows] f32 activations, which may run in place.
  int add(int a, int b, uint64_t rows);
  int scale(int x, uint64_t rows);
  int norm(int x, Norm kind, uint64_t rows);

  // The attention sub-block after the input norm: projections, rope, cache store, attention, output projection.
  int self_attention(uint64_t il, int x, const AttentionParams& p);
  // The same in the two parts the graph holds apart when the layer's result sums parallel branches: what
  // build_attn expands at once (Q, V, K, the cache stores and the attention itself, which build_attn_mha expands),
  // and the output projection, which the final walk reaches only through the sum (after an FFN branch listed
  // before it among the sum's sources).
  int attention_core(uint64_t il, int x, const AttentionParams& p);
  int attention_output(int core, const AttentionParams& p);
  // ggml_get_rows(x, inp_out_ids): the last layer's rows that produce outputs.
  int output_rows(int x);
  uint64_t n_output_rows() const;
  LayerRows layer_rows(uint64_t il, int attn_out, int residual);
  int ffn(int x, uint64_t rows, const FfnParams& p);
  // build_moe_ffn; the defaults are softmax gating with normalised top-k weights (Qwen3-MoE, Mixtral).
  int moe_ffn(int x, uint64_t rows, const MoeParams& p = {});
  // DeepSeek's multi-head latent attention with the absorbed K and V projections (src/models/deepseek2.cpp, the
  // MLA branch), the output projection included.
  int mla_attention(uint64_t il, int x);
  // The output norm and the LM head (with_output), or the last hidden state as the split's output; output_bias
  // adds the head's bias (Phi-2).
  void build_output(int cur, Norm kind, bool final_logit_softcap, bool output_bias = false);

  // ggml_gallocr's buffer for what was recorded.
  uint64_t compute_buffer_bytes() const;

 private:
  struct KvInputs {
    int k_idx = -1, v_idx = -1, mask = -1;
  };
  struct Qkv {
    int q, k, v;
  };
  int f32(uint64_t elems, std::vector<int> src, bool inplace, std::initializer_list<uint64_t> shape);
  // The weight `name` of the current layer (blk.N.name; the output layer's after build_output starts), or its copy
  // in the compute buffer (GraphShape::weight_copies).
  int weight(const std::string& name);
  // A norm's or bias's weight of `elems` f32 values: its copy when the current layer's norms (or, for `name`, that
  // tensor) stay in host memory (host_small_weights), else the weights.
  int small_weight(uint64_t elems, const std::string& name = "");
  KvInputs kv_inputs(uint64_t n_kv_cells, const std::string& suffix);
  Qkv project_qkv(uint64_t il, int x, const AttentionParams& p);
  void store_kv(uint64_t il, Qkv& qkv, const AttentionParams& p);
  int attend(uint64_t il, Qkv qkv, const AttentionParams& p);
  int rms_norm_heads(int x, uint64_t n_heads);
  int hadamard(int x, uint64_t elems, bool contiguous, int rot);

  const Model& model_;
  const GraphShape& shape_;
  const Architecture& arch_;
  bool with_output_;
  Graph g_;
  int weights_ = -1, kv_cache_ = -1;
  int64_t layer_ = -1;  // the layer whose weights the blocks use: set by its attention, which every layer starts with
  bool output_started_ = false;  // build_output has begun (the output layer's weights)
  int pos_ = -1, pos_embd_ = -1, out_ids_ = -1;
  KvInputs kv_, kv_swa_;
  int k_rot_ = -1, v_rot_ = -1;  // the Hadamard rotation inputs of a quantised cache
};

// The size of the GPU split's compute buffer for a model whose architecture is `arch`.
uint64_t gpu_compute_buffer(const Model& model, const Architecture& arch, const GraphShape& shape, bool with_output);

}  // namespace llmem::llamacpp
