// How llama.cpp's converter lays out a Hugging Face family as a GGUF: the llama.cpp architecture it writes and the
// GGUF name of every tensor, as data, one entry per config model_type. In the spirit of llama.cpp's own tables
// (src/llama-arch.cpp LLM_TENSOR_NAMES, gguf-py/gguf/tensor_mapping.py), read at commit 80fb11ac.
//
// Engines that predict a GGUF from a config (engines/llamacpp) read this table; they never compare model types.
// Adding a family to llama.cpp's side is one entry here (and, for memory, a graph builder in the engine).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace llmem {

struct GgufLayout {
  // general.architecture of the converted file: the llm_arch name llama.cpp picks a graph builder by.
  std::string architecture;
  // A per-layer tensor's Hugging Face name is layer_prefix + N + "." + suffix (N = TensorInfo::layer).
  std::string layer_prefix;
  // Hugging Face name -> GGUF name, for tensors outside the layers (embeddings, final norm, LM head).
  std::map<std::string, std::string> global_tensors;
  // Suffix inside a layer -> GGUF suffix after "blk.N.". Experts have their index removed first
  // ("mlp.experts.E.up_proj.weight" -> "mlp.experts.up_proj.weight"): the converter stacks them into one 3-D tensor.
  std::map<std::string, std::string> layer_tensors;
  // GPT-2's Conv1D stores its weights [in, out]; the converter transposes them to Linear's [out, in]
  // (conversion GPT2Model.modify_tensors), so ggml's ne is the checkpoint's shape unreversed.
  bool conv1d_weights = false;
  // The converter drops lm_head.weight (Gemma 2/3: "lm_head is not used in llama.cpp"); llama.cpp then uses
  // token_embd as the output matrix.
  bool drops_lm_head = false;
  // Tensors the converter splits or re-lays out rather than renames, by their suffix inside a layer.
  enum class Transform {
    // DeepSeek's kv_b_proj [H*(dn+dv), R] -> attn_k_b {dn, R, H} and attn_v_b {R, dv, H} (conversion/deepseek.py;
    // dv is the layer's v_head_dim)
    kMlaKvB,
    // gpt-oss's experts.gate_up_proj [E, H, 2I] -> ffn_gate_exps and ffn_up_exps {H, I, E} (even and odd rows)
    kExpertsGateUp,
    // gpt-oss's experts.gate_up_proj_bias [E, 2I] -> ffn_gate_exps.bias and ffn_up_exps.bias {I, E}
    kExpertsGateUpBias,
    // gpt-oss's experts.down_proj [E, I, H] (input first) -> ffn_down_exps {I, H, E}
    kExpertsDown,
  };
  std::map<std::string, Transform> layer_transforms;
  // A routed layer's score-correction bias, which DeepSeek-V3 checkpoints store (mlp.gate.e_score_correction_bias,
  // a buffer PyTorch does not list among the parameters): its GGUF name in every layer with a router ("" none).
  std::string router_bias;
};

// The layout for a config's model_type, nullptr when llmem knows none.
const GgufLayout* gguf_layout(const std::string& model_type);

// Every model_type with a layout, sorted.
std::vector<std::string> gguf_layout_model_types();

}  // namespace llmem
