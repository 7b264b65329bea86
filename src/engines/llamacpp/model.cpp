// A model as llama.cpp sees it: from a GGUF header, or predicted from a config.json the way llama.cpp's converter
// (convert_hf_to_gguf.py) would write it: tensor names mapped to ggml's, experts stacked into 3-D tensors,
// Conv1D weights transposed, 1-D tensors, norms, routers and biases in F32 and the rest in the checkpoint's 16-bit
// type (the converter's --outtype auto).
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include <fmt/core.h>

#include "architectures.hpp"
#include "llmem/catalog.hpp"  // embedded_file
#include "llmem/checked.hpp"
#include "llmem/error.hpp"
#include "llmem/gguf_names.hpp"
#include "llmem/llamacpp.hpp"

namespace llmem::llamacpp {

namespace {
uint64_t mul_or_throw(uint64_t a, uint64_t b, const std::string& what) {
  auto r = checked_mul(a, b);
  if (!r) throw Error(ErrorKind::kInvalidInput, what, "size overflows 64 bits");
  return *r;
}
uint64_t add_or_throw(uint64_t a, uint64_t b, const std::string& what) {
  auto r = checked_add(a, b);
  if (!r) throw Error(ErrorKind::kInvalidInput, what, "size overflows 64 bits");
  return *r;
}
}  // namespace

uint64_t GgufTensor::numel() const {
  uint64_t n = 1;
  for (uint64_t d : ne) n = mul_or_throw(n, d, name);
  return n;
}

uint64_t GgufTensor::bytes() const {
  auto b = dtype_bytes(type, numel());
  if (!b) throw Error(ErrorKind::kInvalidInput, name, fmt::format("{} elements are not whole {} blocks", numel(), dtype_name(type)));
  return *b;
}

uint64_t Model::weight_bytes() const {
  uint64_t sum = 0;
  for (const auto& t : tensors) sum = add_or_throw(sum, t.bytes(), source);
  return sum;
}

namespace {

// A GGUF names the tensors of block N "blk.N.<name>" (llama-arch.cpp LLM_TENSOR_NAMES): the name is the only source
// of a read tensor's layer.
int layer_of_name(const std::string& name) {
  int layer = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
  return layer;
}

std::vector<uint64_t> per_layer(const GgufFile& g, const std::string& key, uint64_t n_layer, std::optional<uint64_t> dflt) {
  auto it = g.metadata.find(key);
  if (it == g.metadata.end()) {
    if (!dflt) throw Error(ErrorKind::kInvalidInput, g.file, "missing " + key + " (llama.cpp needs it)");
    return std::vector<uint64_t>(n_layer, *dflt);
  }
  if (it->is_array()) {
    if (it->size() != n_layer) throw Error(ErrorKind::kInvalidInput, g.file, key + " has " + std::to_string(it->size()) + " entries for " + std::to_string(n_layer) + " layers");
    std::vector<uint64_t> v;
    for (const auto& x : *it) {
      if (!x.is_number_unsigned() && !(x.is_number_integer() && x.get<int64_t>() >= 0))
        throw Error(ErrorKind::kInvalidInput, g.file, key + " holds a value that is not a non-negative integer");
      v.push_back(x.get<uint64_t>());
    }
    return v;
  }
  return std::vector<uint64_t>(n_layer, g.require_uint(key));
}

// llama_hparams::set_swa_pattern: every pattern-th layer attends globally, the others slide (0: all slide).
void set_swa(Hparams& hp, uint64_t pattern) {
  hp.swa_layers.assign(hp.n_layer, false);
  for (uint64_t il = 0; il < hp.n_layer; ++il) hp.swa_layers[il] = pattern == 0 || (il % pattern < pattern - 1);
}

const Architecture& sized_architecture(const GgufFile& g, const std::string& arch) {
  if (arch.empty()) throw Error(ErrorKind::kInvalidInput, g.file, "no general.architecture: not a llama.cpp model file");
  const Architecture* a = find_architecture(arch);
  if (!a) {
    std::string known;
    for (const auto& name : architecture_names()) known += (known.empty() ? "" : ", ") + name;
    throw Error(ErrorKind::kUnsupported, g.file, "llmem cannot size llama.cpp's buffers for architecture '" + arch + "' yet (known: " + known + ")");
  }
  return *a;
}

// llama-model.cpp load_hparams: expert_used_count is at most expert_count and set exactly when experts are; an
// architecture whose graph always routes through experts needs them.
void check_experts(const GgufFile& g, const Architecture& arch, const Hparams& hp) {
  const std::string p = hp.arch + ".";
  if (hp.n_expert_used > hp.n_expert || (hp.n_expert > 0) != (hp.n_expert_used > 0))
    throw Error(ErrorKind::kInvalidInput, g.file, fmt::format("{}expert_used_count {} does not fit {}expert_count {}", p, hp.n_expert_used, p, hp.n_expert));
  if (arch.needs_experts && hp.n_expert < 2)
    throw Error(ErrorKind::kInvalidInput, g.file, fmt::format("{}expert_count is {}: a {} model routes through experts", p, hp.n_expert, hp.arch));
}

void read_hparams(const GgufFile& g, const Architecture& arch, Hparams& hp) {
  const std::string p = hp.arch + ".";
  hp.n_layer = g.require_uint(p + "block_count");
  if (hp.n_layer == 0 || hp.n_layer > 100000) throw Error(ErrorKind::kInvalidInput, g.file, p + "block_count is " + std::to_string(hp.n_layer));
  hp.n_embd = g.require_uint(p + "embedding_length");
  hp.n_ctx_train = g.get_uint(p + "context_length").value_or(0);
  hp.n_head = per_layer(g, p + "attention.head_count", hp.n_layer, std::nullopt);
  hp.n_head_kv = per_layer(g, p + "attention.head_count_kv", hp.n_layer, hp.n_head[0]);
  const uint64_t n_ff_default = 0;
  auto ff = per_layer(g, p + "feed_forward_length", hp.n_layer, n_ff_default);
  hp.n_ff = (ff.empty() ? 0 : *std::max_element(ff.begin(), ff.end())) / arch.ffn_divisor;
  if (auto par = g.metadata.find(p + "use_parallel_residual"); par != g.metadata.end() && par->is_boolean())
    hp.parallel_residual = par->get<bool>();
  if (hp.n_head[0] == 0) throw Error(ErrorKind::kInvalidInput, g.file, p + "attention.head_count is 0");
  hp.n_embd_head_k = g.get_uint(p + "attention.key_length").value_or(hp.n_embd / hp.n_head[0]);
  hp.n_embd_head_v = g.get_uint(p + "attention.value_length").value_or(hp.n_embd / hp.n_head[0]);
  if (hp.n_embd_head_k == 0 || hp.n_embd_head_v == 0)
    throw Error(ErrorKind::kInvalidInput, g.file, "a head size of 0 (" + p + "attention.key_length / value_length, or " + p +
                                                      "embedding_length smaller than the head count)");
  // the experts' own width when the file has one (Qwen3-MoE: feed_forward_length is the dense 6144, the experts 768)
  hp.n_ff_exp = g.get_uint(p + "expert_feed_forward_length").value_or(0);
  hp.n_expert = g.get_uint(p + "expert_count").value_or(0);
  hp.n_expert_used = g.get_uint(p + "expert_used_count").value_or(0);
  check_experts(g, arch, hp);
  hp.swa_layers.assign(hp.n_layer, false);
  if (arch.sliding_window.own_cache) {
    hp.n_swa = g.get_uint(p + "attention.sliding_window").value_or(arch.sliding_window.default_window_tokens);
    set_swa(hp, g.get_uint(p + "attention.sliding_window_pattern").value_or(arch.sliding_window.default_pattern));
  }
  if (arch.read_hparams) arch.read_hparams(g, hp);
}

}  // namespace

std::vector<std::string> sized_architectures() { return architecture_names(); }

Model from_gguf(const GgufFile& g) {
  Model m;
  m.source = g.file;
  Hparams& hp = m.hp;
  hp.arch = g.architecture();
  const Architecture& arch = sized_architecture(g, hp.arch);
  read_hparams(g, arch, hp);
  for (const auto& t : g.tensors) {
    GgufTensor gt;
    gt.name = t.name;
    gt.type = t.dtype;
    gt.ne.assign(t.shape.rbegin(), t.shape.rend());
    gt.layer = layer_of_name(t.name);
    if (t.name == "token_embd.weight" && gt.ne.size() >= 2) hp.n_vocab = gt.ne[1];
    m.tensors.push_back(std::move(gt));
  }
  if (hp.n_vocab == 0) throw Error(ErrorKind::kInvalidInput, g.file, "no token_embd.weight tensor");
  auto ft = g.get_uint("general.file_type");
  m.scheme = ft ? fmt::format("file type {}", *ft) : "";
  for (const auto& s : quant_schemes())
    if (ft && static_cast<uint64_t>(s.ftype) == *ft) m.scheme = s.name;
  return m;
}

// ---- from a config ----------------------------------------------------------------------------------------------

namespace {

// Whether convert_hf_to_gguf.py at the pinned commit converts a Hugging Face architecture (its registry in
// conversion/__init__.py, data/llamacpp_converter_architectures.json).
bool converter_converts(const std::string& hf_architecture) {
  static const std::set<std::string> names = [] {
    std::set<std::string> out;
    const nlohmann::json registry = nlohmann::json::parse(embedded_file("llamacpp_converter_architectures.json"));
    for (const auto& n : registry.at("architectures")) out.insert(n.get<std::string>());
    return out;
  }();
  return names.count(hf_architecture) > 0;
}

// The converter's type for a tensor of the base (16-bit) file.
DType converted_type(const std::string& gguf_name, size_t dims, DType base) {
  if (dims <= 1) return DType::F32;
  if (gguf_name.size() >= 12 && gguf_name.compare(gguf_name.size() - 12, 12, "_norm.weight") == 0) return DType::F32;
  if (gguf_name.find("ffn_gate_inp") != std::string::npos || gguf_name == "position_embd.weight") return DType::F32;
  if (gguf_name.size() < 7 || gguf_name.compare(gguf_name.size() - 7, 7, ".weight") != 0) return DType::F32;
  return base;
}

Hparams hparams_from_facts(const ModelFacts& f, const GgufLayout& layout, const Architecture& arch) {
  Hparams hp;
  hp.arch = layout.architecture;
  hp.n_layer = f.n_layers;
  hp.n_embd = f.hidden;
  hp.n_vocab = f.vocab;
  hp.n_ctx_train = f.max_positions;
  hp.n_ff = f.intermediate / arch.ffn_divisor;
  hp.parallel_residual = f.traits.residual != ResidualKind::kSequential;
  hp.n_expert = f.n_experts;
  hp.n_expert_used = f.n_experts_active;
  if (f.n_experts > 0) hp.n_ff_exp = f.moe_intermediate;  // the converter's expert_feed_forward_length
  hp.n_head.assign(hp.n_layer, f.n_heads);
  hp.n_head_kv.assign(hp.n_layer, f.n_kv_heads);
  hp.n_embd_head_k = f.head_dim;
  hp.n_embd_head_v = f.head_dim;
  hp.swa_layers.assign(hp.n_layer, false);
  // Only architectures with a sliding-window cache use the config's windows; llama.cpp ignores Mistral's and
  // disables Phi-3's (architectures.hpp): full attention and a full KV cache.
  if (!arch.sliding_window.own_cache) return hp;
  for (size_t il = 0; il < f.attention.size() && il < hp.n_layer; ++il) {
    if (f.attention[il].sliding_window > 0) {
      hp.swa_layers[il] = true;
      hp.n_swa = f.attention[il].sliding_window;
    }
  }
  return hp;
}

// A config tensor's place in the GGUF: its name there, its layer, and its expert index (-1 for none).
struct GgufPlace {
  std::string name;
  int layer = -1;
  int expert = -1;
  std::optional<GgufLayout::Transform> transform;  // set instead of name for a split or re-laid-out tensor
};

// Returns false for a tensor the converter drops.
bool gguf_place(const TensorInfo& t, const GgufLayout& layout, const std::string& model_type, const std::string& source,
                GgufPlace& place) {
  // conversion/base.py TextModel.filter_tensors: a vision-language checkpoint's vision tower and projector are not
  // the text model's (they go to the mmproj file, convert_hf_to_gguf.py --mmproj), and ModelBase.filter_tensors
  // drops "language_model." from the rest (Gemma3ForConditionalGeneration: language_model.model.layers.N...)
  std::string n = t.name;
  for (const char* skip : {"vision_tower.", "multi_modal_projector.", "vision_model.", "visual."})
    if (n.rfind(skip, 0) == 0) return false;
  if (const size_t lm = n.find("language_model."); lm != std::string::npos) n.erase(lm, 15);
  auto unknown = [&] { return Error(ErrorKind::kUnsupported, source, "no llama.cpp name known for tensor " + t.name + " (" + model_type + ")"); };
  if (t.layer < 0) {
    auto g = layout.global_tensors.find(n);
    if (g == layout.global_tensors.end()) throw unknown();
    if (layout.drops_lm_head && n == "lm_head.weight") return false;
    place = {g->second, -1, -1, std::nullopt};
    return true;
  }
  // the arch table tells the layer; the layout tells how the name continues after "<prefix>N."
  const std::string prefix = layout.layer_prefix + std::to_string(t.layer) + ".";
  if (n.compare(0, prefix.size(), prefix) != 0) throw unknown();
  std::string rest = n.substr(prefix.size());
  place.layer = static_cast<int>(t.layer);
  // experts: "<...>.experts.E.<w>" -> "<...>.experts.<w>", stacked over E
  if (size_t e = rest.find("experts."); e != std::string::npos) {
    size_t dot = rest.find('.', e + 8);
    if (dot != std::string::npos && rest.find_first_not_of("0123456789", e + 8) == dot) {
      place.expert = std::stoi(rest.substr(e + 8, dot - e - 8));
      rest = rest.substr(0, e + 8) + rest.substr(dot + 1);
    }
  }
  if (auto tr = layout.layer_transforms.find(rest); tr != layout.layer_transforms.end()) {
    place.transform = tr->second;
    return true;
  }
  auto l = layout.layer_tensors.find(rest);
  if (l == layout.layer_tensors.end()) throw unknown();
  place.name = "blk." + std::to_string(place.layer) + "." + l->second;
  return true;
}

// ggml's ne: a Linear [out, in] becomes ne = [in, out]; Conv1D [in, out] is transposed by the converter first.
std::vector<uint64_t> gguf_ne(const TensorInfo& t, const GgufLayout& layout, const std::string& gguf_name) {
  if (layout.conv1d_weights && t.shape.size() == 2 && gguf_name.find("weight") != std::string::npos &&
      gguf_name != "token_embd.weight" && gguf_name != "position_embd.weight" && gguf_name != "output.weight")
    return {t.shape.begin(), t.shape.end()};
  return {t.shape.rbegin(), t.shape.rend()};
}

}  // namespace

Model from_config(const ArchModel& am, const std::string& source) {
  const ModelFacts& f = am.facts;
  const GgufLayout* layout = gguf_layout(f.model_type);
  const Architecture* arch = layout ? find_architecture(layout->architecture) : nullptr;
  if (!arch) {
    if (!converter_converts(f.architecture))
      throw Error(ErrorKind::kUnsupported, source,
                  "llama.cpp's converter (" + std::string(kPinnedCommit) + ") does not convert " +
                      (f.architecture.empty() ? "model_type '" + f.model_type + "'" : f.architecture) +
                      ": there is no GGUF of it for llama.cpp to run");
    throw Error(ErrorKind::kUnsupported, source,
                "llmem cannot predict llama.cpp's GGUF for model_type '" + f.model_type +
                    "' yet; convert it with llama.cpp's convert_hf_to_gguf.py and point llmem at the .gguf");
  }
  Model m;
  m.source = source;
  m.predicted = true;
  m.hp = hparams_from_facts(f, *layout, *arch);
  // The converter's --outtype auto: bf16 when the checkpoint is bf16, else f16.
  const DType base = f.config_dtype == DType::BF16 ? DType::BF16 : DType::F16;

  // gpt-oss's checkpoints keep the experts in MXFP4, and the converter writes them as ggml's MXFP4 whatever the
  // output type (conversion/gpt_oss.py generate_extra_tensors); the file type becomes MOSTLY_MXFP4_MOE.
  const bool mxfp4_experts = am.quant && am.quant->method == QuantMethod::kMxfp4;
  const DType expert_type = mxfp4_experts ? DType::MXFP4 : base;
  auto need_dims = [&](const TensorInfo& t, size_t dims) {
    if (t.shape.size() != dims)
      throw Error(ErrorKind::kInvalidInput, source, fmt::format("{} has {} dimensions, the converter expects {}", t.name, t.shape.size(), dims));
  };
  auto transformed = [&](const TensorInfo& t, const GgufPlace& place) {
    const std::string blk = "blk." + std::to_string(place.layer) + ".";
    switch (*place.transform) {
      case GgufLayout::Transform::kMlaKvB: {
        need_dims(t, 2);
        const uint64_t H = f.n_heads, R = t.shape[1];
        // the value head size, as the facts hold it for this layer (the config's v_head_dim)
        const auto il = static_cast<size_t>(place.layer);
        const uint64_t dv = il < f.attention.size() ? f.attention[il].v_head_dim : 0;
        if (H == 0 || dv == 0 || t.shape[0] % H != 0 || t.shape[0] / H <= dv)
          throw Error(ErrorKind::kInvalidInput, source, t.name + ": cannot split it into attn_k_b and attn_v_b (heads or v_head_dim)");
        const uint64_t dn = t.shape[0] / H - dv;
        m.tensors.push_back({blk + "attn_k_b.weight", base, {dn, R, H}, place.layer});
        m.tensors.push_back({blk + "attn_v_b.weight", base, {R, dv, H}, place.layer});
        break;
      }
      case GgufLayout::Transform::kExpertsGateUp: {  // [E, H, 2I]
        need_dims(t, 3);
        const uint64_t E = t.shape[0], Hd = t.shape[1], I = t.shape[2] / 2;
        m.tensors.push_back({blk + "ffn_gate_exps.weight", expert_type, {Hd, I, E}, place.layer});
        m.tensors.push_back({blk + "ffn_up_exps.weight", expert_type, {Hd, I, E}, place.layer});
        break;
      }
      case GgufLayout::Transform::kExpertsGateUpBias: {  // [E, 2I]
        need_dims(t, 2);
        m.tensors.push_back({blk + "ffn_gate_exps.bias", DType::F32, {t.shape[1] / 2, t.shape[0]}, place.layer});
        m.tensors.push_back({blk + "ffn_up_exps.bias", DType::F32, {t.shape[1] / 2, t.shape[0]}, place.layer});
        break;
      }
      case GgufLayout::Transform::kExpertsDown:  // [E, I, H]
        need_dims(t, 3);
        m.tensors.push_back({blk + "ffn_down_exps.weight", expert_type, {t.shape[1], t.shape[2], t.shape[0]}, place.layer});
        break;
    }
  };

  std::map<std::string, size_t> stacked;  // GGUF name -> index, for experts
  for (const auto& t : am.tensors) {
    GgufPlace place;
    if (!gguf_place(t, *layout, f.model_type, source, place)) continue;
    if (place.transform) {
      transformed(t, place);
      continue;
    }
    // the router's score-correction bias sits beside the router in the checkpoint
    if (!layout->router_bias.empty() && place.name.ends_with("ffn_gate_inp.weight") && t.shape.size() == 2)
      m.tensors.push_back({"blk." + std::to_string(place.layer) + "." + layout->router_bias, DType::F32, {t.shape[0]}, place.layer});
    std::vector<uint64_t> ne = gguf_ne(t, *layout, place.name);
    if (place.expert >= 0) {
      auto it = stacked.find(place.name);
      if (it == stacked.end()) {
        ne.push_back(1);
        stacked[place.name] = m.tensors.size();
        m.tensors.push_back({place.name, converted_type(place.name, 3, base), ne, place.layer});
      } else {
        m.tensors[it->second].ne.back() += 1;
      }
      continue;
    }
    const DType type = converted_type(place.name, ne.size(), base);
    m.tensors.push_back({place.name, type, std::move(ne), place.layer});
  }
  if (arch->derive_hparams) arch->derive_hparams(f, m, m.hp);
  m.scheme = mxfp4_experts ? "MXFP4_MOE" : base == DType::BF16 ? "BF16" : "F16";
  return m;
}

}  // namespace llmem::llamacpp
