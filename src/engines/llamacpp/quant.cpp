// llama-quantize's per-tensor type choice (src/llama-quant.cpp at the pinned commit), re-stated: which tensors it
// quantises at all, the scheme's default type, the mixture rules that move some tensors to more (or fewer) bits
// by role, layer and model shape, and the fallback when a row is not a whole number of blocks. Without an
// importance matrix and without --pure or per-tensor overrides, as a plain `llama-quantize IN OUT SCHEME` runs.
//
// llama-quant.cpp's choices for LLM_ARCH_FALCON alone (Q8_0 output, its own ffn_down and attn_output mixtures) come
// with the architecture's entry (architectures.cpp falcon_quant_rules). The schemes whose very-low-bit tensors need
// an importance matrix (tensor_requires_imatrix) are predicted as llama-quantize makes them with one: those are the
// only files it writes for them.
#include <algorithm>
#include <cctype>

#include "architectures.hpp"
#include "llmem/catalog.hpp"  // edit_distance
#include "llmem/error.hpp"
#include <fmt/core.h>
#include "llmem/llamacpp.hpp"

namespace llmem::llamacpp {
namespace {

// LLAMA_FTYPE_* (include/llama.h).
enum Ftype {
  kAllF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 7, kQ5_0 = 8, kQ5_1 = 9, kQ2_K = 10, kQ3_K_S = 11,
  kQ3_K_M = 12, kQ3_K_L = 13, kQ4_K_S = 14, kQ4_K_M = 15, kQ5_K_S = 16, kQ5_K_M = 17, kQ6_K = 18,
  kIQ2_XXS = 19, kIQ2_XS = 20, kQ2_K_S = 21, kIQ3_XS = 22, kIQ3_XXS = 23, kIQ1_S = 24, kIQ4_NL = 25, kIQ3_S = 26,
  kIQ3_M = 27, kIQ2_S = 28, kIQ2_M = 29, kIQ4_XS = 30, kIQ1_M = 31, kBF16 = 32, kTQ1_0 = 36, kTQ2_0 = 37,
  kMXFP4_MOE = 38,
};

enum class Category { kOutput, kTokenEmbd, kAttnQkv, kAttnKvB, kAttnV, kAttnK, kAttnQ, kAttnOutput, kFfnUp, kFfnGate, kFfnDown, kOther };

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

Category category_of(const std::string& n) {
  if (n == "output.weight") return Category::kOutput;
  if (n == "token_embd.weight" || n == "per_layer_token_embd.weight") return Category::kTokenEmbd;
  if (contains(n, "attn_qkv.weight")) return Category::kAttnQkv;
  if (contains(n, "attn_kv_b.weight")) return Category::kAttnKvB;
  if (contains(n, "attn_v.weight")) return Category::kAttnV;
  if (contains(n, "attn_k.weight")) return Category::kAttnK;
  if (contains(n, "attn_q.weight")) return Category::kAttnQ;
  if (contains(n, "attn_output.weight")) return Category::kAttnOutput;
  if (contains(n, "ffn_up")) return Category::kFfnUp;
  if (contains(n, "ffn_gate")) return Category::kFfnGate;
  if (contains(n, "ffn_down")) return Category::kFfnDown;
  return Category::kOther;
}

bool is_attn_v_like(Category c) { return c == Category::kAttnV || c == Category::kAttnQkv || c == Category::kAttnKvB; }

// Which tensors llama-quantize touches at all: 2-D and 3-D weights, not norms, routers, position embeddings, and
// the small special tensors of other families (the list in tensor_allows_quantization).
bool allows_quantization(const GgufTensor& t) {
  size_t dims = t.ne.size();
  while (dims > 1 && t.ne[dims - 1] == 1) --dims;  // ggml_n_dims ignores trailing 1s
  if (dims < 2) return false;
  const std::string& n = t.name;
  if (n.size() < 6 || n.compare(n.size() - 6, 6, "weight") != 0) return false;
  static const char* const kNever[] = {"_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
                                       "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight",
                                       "indexer.k_proj.weight", "indexer.q_proj.weight", "time_mix_first.weight",
                                       "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
                                       "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
                                       "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
                                       "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
                                       "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
                                       ".position_embd", ".rel_pos", ".patch_embd", ".patch_merger"};
  for (const char* p : kNever)
    if (contains(n, p)) return false;
  if (n == "position_embd.weight" || n == "token_types.weight") return false;
  return true;
}

bool is_quantized(DType t) {
  return t != DType::F32 && t != DType::F16 && t != DType::BF16 && t != DType::F64;
}

struct State {
  const Model& model;
  int ftype;
  int n_attention_wv = 0, i_attention_wv = 0;
  int n_ffn = 0, i_ffn_down = 0, i_ffn_gate = 0, i_ffn_up = 0;
  bool tied = true;
  uint64_t n_expert = 0;
  uint64_t n_gqa = 1;
  bool is_70b = false;
  bool falcon = false;       // LLM_ARCH_FALCON's rules
  bool has_imatrix = false;  // the schemes that need one are predicted with one
};

bool use_more_bits(int i_layer, int n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

// For MoE models the layer comes from the tensor's block ("experts are not consecutive"; llama-quant.cpp reads
// blk.N from the name, which is GgufTensor::layer), otherwise from the counter.
int layer_of(const State& s, int counter, const GgufTensor& t) {
  if (s.n_expert > 1) {
    if (t.layer < 0 || t.layer >= s.n_ffn)
      throw Error(ErrorKind::kInvalidInput, s.model.source, "cannot tell the layer of tensor " + t.name);
    return t.layer;
  }
  return counter;
}

// llama-model.cpp load_hparams' LLM_TYPE_70B, by the architecture's rule (architectures.cpp).
bool is_type_70b(const Hparams& hp) {
  const Architecture* arch = find_architecture(hp.arch);
  if (!arch || arch->type_70b.n_layer == 0 || hp.n_layer != arch->type_70b.n_layer) return false;
  return !arch->type_70b.needs_gqa || hp.n_gqa() != 1;
}

uint32_t block_elems(DType t) { return dtype_info(t).block_elems; }

DType mixture_type(State& s, DType new_type, const GgufTensor& t, Category cat) {
  const int f = s.ftype;
  const bool iq_low = f == kIQ2_XXS || f == kIQ2_XS || f == kIQ1_S || f == kIQ2_S || f == kIQ2_M || f == kIQ1_M;
  if (cat == Category::kOutput || (s.tied && cat == Category::kTokenEmbd)) {
    const uint64_t nx = t.ne[0];
    if (f == kMXFP4_MOE || s.falcon || nx % block_elems(new_type) != 0) new_type = DType::Q8_0;
    else if (f == kIQ2_XXS || f == kIQ2_XS || f == kIQ3_XXS || f == kIQ1_S || f == kIQ2_S || f == kIQ2_M || f == kIQ1_M)
      new_type = DType::Q5_K;
    else if (new_type != DType::Q8_0) new_type = DType::Q6_K;
  } else if (f == kMXFP4_MOE) {
    // experts (and any other 3-D tensor with more than one matrix) to MXFP4, the rest to Q8_0
    new_type = t.ne.size() > 2 && t.ne[2] > 1 ? DType::MXFP4 : DType::Q8_0;
  } else if (cat == Category::kTokenEmbd) {
    if (f == kIQ2_XXS || f == kIQ2_XS || f == kIQ1_S || f == kIQ1_M) new_type = DType::Q2_K;
    else if (f == kIQ2_S || f == kIQ2_M || f == kIQ3_XXS) new_type = DType::IQ3_S;
    else if (f == kTQ1_0 || f == kTQ2_0) new_type = DType::Q4_K;
  } else if (iq_low) {
    if (is_attn_v_like(cat)) {
      if (s.n_gqa >= 4 || s.n_expert >= 4) new_type = DType::Q4_K;
      else new_type = f == kIQ2_S || f == kIQ2_M ? DType::IQ3_S : DType::Q2_K;
      ++s.i_attention_wv;
    } else if (s.n_expert == 8 && cat == Category::kAttnK) {
      new_type = DType::Q4_K;
    } else if (cat == Category::kFfnDown) {
      if (s.i_ffn_down < s.n_ffn / 8) new_type = f == kIQ2_S || f == kIQ2_M ? DType::IQ3_S : DType::Q2_K;
      ++s.i_ffn_down;
    } else if (cat == Category::kAttnOutput) {
      if (s.n_expert == 8) new_type = DType::Q5_K;
      else if (f == kIQ1_S || f == kIQ1_M) new_type = DType::IQ2_XXS;
      else if (f == kIQ2_S || f == kIQ2_M) new_type = DType::IQ3_S;
    }
  } else if (is_attn_v_like(cat)) {
    if (f == kQ2_K) new_type = s.n_gqa >= 4 ? DType::Q4_K : DType::Q3_K;
    else if (f == kQ2_K_S && s.n_gqa >= 4) new_type = DType::Q4_K;
    else if (f == kIQ3_XXS) new_type = s.n_gqa >= 4 ? DType::Q4_K : !s.has_imatrix ? DType::IQ3_S : DType::IQ3_XXS;
    else if ((f == kIQ3_XS || f == kIQ3_S) && s.n_gqa >= 4) new_type = DType::Q4_K;
    else if (f == kIQ3_M) new_type = DType::Q4_K;
    else if (f == kQ3_K_M) new_type = s.i_attention_wv < 2 ? DType::Q5_K : DType::Q4_K;
    else if (f == kQ3_K_L) new_type = DType::Q5_K;
    else if ((f == kIQ4_NL || f == kIQ4_XS) && s.n_gqa >= 4) new_type = DType::Q5_K;
    else if ((f == kQ4_K_M || f == kQ5_K_M) && use_more_bits(s.i_attention_wv, s.n_attention_wv)) new_type = DType::Q6_K;
    else if (f == kQ4_K_S && s.i_attention_wv < 4) new_type = DType::Q5_K;
    if (s.is_70b && (new_type == DType::Q3_K || new_type == DType::Q4_K)) new_type = DType::Q5_K;
    if (s.n_expert == 8) new_type = DType::Q8_0;
    ++s.i_attention_wv;
  } else if (cat == Category::kAttnK) {
    if (s.n_expert == 8) new_type = DType::Q8_0;
    else if (f == kIQ3_XS) new_type = DType::IQ3_XXS;
    else if (f == kIQ3_XXS) new_type = DType::IQ2_S;
  } else if (cat == Category::kAttnQ) {
    if (f == kIQ3_XS) new_type = DType::IQ3_XXS;
    else if (f == kIQ3_XXS) new_type = DType::IQ2_S;
  } else if (cat == Category::kFfnDown) {
    const int i_layer = layer_of(s, s.i_ffn_down, t), n_layer = s.n_ffn;
    if (f == kQ2_K) new_type = DType::Q3_K;
    else if (f == kQ2_K_S) { if (i_layer < n_layer / 8) new_type = DType::Q4_K; }
    else if (f == kIQ3_XXS && !s.has_imatrix) new_type = i_layer < n_layer / 8 ? DType::Q4_K : DType::Q3_K;
    else if (f == kQ3_K_M)
      new_type = i_layer < n_layer / 16 ? DType::Q5_K : !s.falcon || use_more_bits(i_layer, n_layer) ? DType::Q4_K : DType::Q3_K;
    else if (f == kIQ3_M && (i_layer < n_layer / 8 || (s.n_expert == 8 && use_more_bits(i_layer, n_layer)))) new_type = DType::Q4_K;
    else if (f == kQ3_K_L) new_type = s.falcon ? DType::Q4_K : DType::Q5_K;
    else if (f == kQ4_K_M) {
      if (s.falcon) new_type = i_layer < n_layer / 16 ? DType::Q6_K : use_more_bits(i_layer, n_layer) ? DType::Q5_K : DType::Q4_K;
      else if (use_more_bits(i_layer, n_layer)) new_type = DType::Q6_K;
    }
    else if (i_layer < n_layer / 8 && (f == kIQ4_NL || f == kIQ4_XS) && !s.has_imatrix) new_type = DType::Q5_K;
    else if (f == kQ5_K_M && use_more_bits(i_layer, n_layer)) new_type = DType::Q6_K;
    else if (f == kQ4_K_S && !s.falcon && i_layer < n_layer / 8) new_type = DType::Q5_K;
    ++s.i_ffn_down;
  } else if (cat == Category::kAttnOutput) {
    if (s.falcon) {
      if (f == kQ3_K_L) new_type = DType::Q4_K;
    } else if (s.n_expert == 8) {
      if (f == kQ2_K || f == kIQ3_XS || f == kIQ3_XXS || f == kQ3_K_S || f == kQ3_K_M || f == kIQ4_NL || f == kQ4_K_S ||
          f == kQ4_K_M || f == kIQ3_S || f == kIQ3_M || f == kIQ4_XS)
        new_type = DType::Q5_K;
    } else {
      if (f == kQ2_K) new_type = DType::Q3_K;
      else if (f == kIQ3_XXS) new_type = DType::IQ3_S;
      else if (f == kQ3_K_M) new_type = DType::Q4_K;
      else if (f == kQ3_K_L) new_type = DType::Q5_K;
      else if (f == kIQ3_M) new_type = DType::Q4_K;
    }
  } else if (cat == Category::kAttnQkv) {
    // unreachable: attn_qkv is attn-v-like and handled above (as in llama.cpp, where this branch is dead too)
  } else if (cat == Category::kFfnGate) {
    const int i_layer = layer_of(s, s.i_ffn_gate, t), n_layer = s.n_ffn;
    if (f == kIQ3_XS && i_layer >= n_layer / 8 && i_layer < 7 * n_layer / 8) new_type = DType::IQ3_XXS;
    ++s.i_ffn_gate;
  } else if (cat == Category::kFfnUp) {
    const int i_layer = layer_of(s, s.i_ffn_up, t), n_layer = s.n_ffn;
    if (f == kIQ3_XS && i_layer >= n_layer / 8 && i_layer < 7 * n_layer / 8) new_type = DType::IQ3_XXS;
    ++s.i_ffn_up;
  }
  return new_type;
}

// A row that is not a whole number of the type's blocks falls back to a type with smaller blocks, or F16.
DType fallback(DType target, uint64_t ncols) {
  if (ncols % block_elems(target) == 0) return target;
  DType r = target;
  switch (target) {
    case DType::IQ1_S: case DType::IQ1_M: case DType::IQ2_XXS: case DType::IQ2_XS: case DType::IQ2_S:
    case DType::IQ3_XXS: case DType::IQ3_S: case DType::IQ4_XS: r = DType::IQ4_NL; break;
    case DType::Q2_K: case DType::Q3_K: case DType::TQ1_0: case DType::TQ2_0: r = DType::Q4_0; break;
    case DType::Q4_K: r = DType::Q5_0; break;
    case DType::Q5_K: r = DType::Q5_1; break;
    case DType::Q6_K: r = DType::Q8_0; break;
    default: break;  // already a 32-block type
  }
  if (ncols % block_elems(r) != 0) r = DType::F16;
  return r;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

const std::vector<QuantScheme>& quant_schemes() {
  // tools/quantize/quantize.cpp's list. The schemes marked "needs an importance matrix" refuse to run without one
  // (llama-quantize --imatrix FILE); they are predicted as made with it.
  static const std::vector<QuantScheme> all = {
      {"F32", kAllF32, DType::F32, "32-bit float"},
      {"F16", kF16, DType::F16, "16-bit float"},
      {"BF16", kBF16, DType::BF16, "bfloat16"},
      {"Q8_0", kQ8_0, DType::Q8_0, "8.5 bits per weight"},
      {"Q6_K", kQ6_K, DType::Q6_K, "6.56 bits per weight"},
      {"Q5_K_M", kQ5_K_M, DType::Q5_K, "Q5_K with Q6_K for half of attn_v and ffn_down"},
      {"Q5_K_S", kQ5_K_S, DType::Q5_K, "Q5_K throughout"},
      {"Q5_1", kQ5_1, DType::Q5_1, "6 bits per weight"},
      {"Q5_0", kQ5_0, DType::Q5_0, "5.5 bits per weight"},
      {"Q4_K_M", kQ4_K_M, DType::Q4_K, "Q4_K with Q6_K for half of attn_v and ffn_down"},
      {"Q4_K_S", kQ4_K_S, DType::Q4_K, "Q4_K, Q5_K for the first attn_v and ffn_down"},
      {"Q4_1", kQ4_1, DType::Q4_1, "5 bits per weight"},
      {"Q4_0", kQ4_0, DType::Q4_0, "4.5 bits per weight"},
      {"IQ4_NL", kIQ4_NL, DType::IQ4_NL, "4.5 bits per weight, non-linear"},
      {"IQ4_XS", kIQ4_XS, DType::IQ4_XS, "4.25 bits per weight, non-linear"},
      {"Q3_K_L", kQ3_K_L, DType::Q3_K, "Q3_K with Q5_K for attn_v, ffn_down and attn_output"},
      {"Q3_K_M", kQ3_K_M, DType::Q3_K, "Q3_K with Q4_K/Q5_K for attn_v, ffn_down and attn_output"},
      {"Q3_K_S", kQ3_K_S, DType::Q3_K, "Q3_K throughout"},
      {"IQ3_M", kIQ3_M, DType::IQ3_S, "IQ3_S mix"},
      {"IQ3_S", kIQ3_S, DType::IQ3_S, "3.44 bits per weight"},
      {"Q2_K", kQ2_K, DType::Q2_K, "Q2_K with Q3_K/Q4_K for attn_v, ffn_down and attn_output"},
      {"MXFP4_MOE", kMXFP4_MOE, DType::MXFP4, "MXFP4 experts, Q8_0 for the rest (gpt-oss's own format)"},
      {"IQ3_XS", kIQ3_XS, DType::IQ3_S, "3.3 bits per weight, IQ3_XXS for most FFN; needs an importance matrix", true},
      {"IQ3_XXS", kIQ3_XXS, DType::IQ3_XXS, "3.06 bits per weight; needs an importance matrix", true},
      {"Q2_K_S", kQ2_K_S, DType::Q2_K, "Q2_K throughout; needs an importance matrix", true},
      {"IQ2_M", kIQ2_M, DType::IQ2_S, "2.7 bits per weight; needs an importance matrix", true},
      {"IQ2_S", kIQ2_S, DType::IQ2_XS, "2.5 bits per weight; needs an importance matrix", true},
      {"IQ2_XS", kIQ2_XS, DType::IQ2_XS, "2.31 bits per weight; needs an importance matrix", true},
      {"IQ2_XXS", kIQ2_XXS, DType::IQ2_XXS, "2.06 bits per weight; needs an importance matrix", true},
      {"IQ1_M", kIQ1_M, DType::IQ1_M, "1.75 bits per weight; needs an importance matrix", true},
      {"IQ1_S", kIQ1_S, DType::IQ1_S, "1.56 bits per weight; needs an importance matrix", true},
      {"TQ2_0", kTQ2_0, DType::TQ2_0, "2.06 bits per weight, ternary (for ternary models)"},
      {"TQ1_0", kTQ1_0, DType::TQ1_0, "1.69 bits per weight, ternary (for ternary models)"},
  };
  return all;
}

const QuantScheme& find_scheme(const std::string& name) {
  std::string want = upper(name);
  if (want == "Q4_K") want = "Q4_K_M";
  if (want == "Q5_K") want = "Q5_K_M";
  if (want == "Q3_K") want = "Q3_K_M";
  if (want == "FP16") want = "F16";
  if (want == "FP32") want = "F32";
  if (want == "MXFP4") want = "MXFP4_MOE";
  for (const auto& s : quant_schemes())
    if (s.name == want) return s;
  std::vector<std::pair<size_t, std::string>> scored;
  for (const auto& s : quant_schemes()) scored.emplace_back(edit_distance(want, s.name), s.name);
  std::sort(scored.begin(), scored.end());
  std::string hint;
  for (size_t i = 0; i < 3 && i < scored.size(); ++i) hint += (i ? ", " : "") + scored[i].second;
  std::string all;
  for (const auto& s : quant_schemes()) all += (all.empty() ? "" : " ") + s.name;
  throw Error(ErrorKind::kUsage, "", "unknown quantisation '" + name + "' (closest: " + hint + "; known: " + all + ")");
}

void quantize(Model& model, const QuantScheme& scheme) {
  State s{model, scheme.ftype};
  s.n_expert = model.hp.n_expert;
  s.n_gqa = model.hp.n_gqa();
  s.n_ffn = static_cast<int>(model.hp.n_layer);
  s.is_70b = is_type_70b(model.hp);
  const Architecture* arch = find_architecture(model.hp.arch);
  s.falcon = arch && arch->falcon_quant_rules;
  s.has_imatrix = scheme.needs_imatrix;
  for (const auto& t : model.tensors) {
    const Category c = category_of(t.name);
    if (is_attn_v_like(c)) ++s.n_attention_wv;
    if (c == Category::kOutput) s.tied = false;
  }
  // llama.cpp walks tensors in its loader's order: by layer (non-layer tensors first), then by name.
  std::vector<size_t> order(model.tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& x = model.tensors[a];
    const auto& y = model.tensors[b];
    if (x.layer != y.layer) return x.layer < y.layer;
    return x.name < y.name;
  });
  for (size_t i : order) {
    GgufTensor& t = model.tensors[i];
    if (!allows_quantization(t)) continue;
    // a float scheme is the converter's --outtype: tensors the checkpoint already stores quantised (gpt-oss's
    // MXFP4 experts) stay as they are
    if (!is_quantized(scheme.base) && is_quantized(t.type)) continue;
    DType type = scheme.base;
    if (is_quantized(scheme.base)) {
      type = mixture_type(s, type, t, category_of(t.name));
      type = fallback(type, t.ne[0]);
    }
    if (is_quantized(t.type) && type != t.type)
      throw Error(ErrorKind::kUnsupported, model.source,
                  fmt::format("llama-quantize refuses {} for this model: {} is already {} and requantizing from it is "
                              "disabled (llama-quantize --allow-requantize overrides; {} keeps it)",
                              scheme.name, t.name, dtype_name(t.type), t.type == DType::MXFP4 ? "MXFP4_MOE" : "a float scheme"));
    t.type = type;
  }
  model.scheme = scheme.name;
}

}  // namespace llmem::llamacpp
