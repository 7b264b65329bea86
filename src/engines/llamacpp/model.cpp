// A model as llama.cpp sees it: from a GGUF header, or predicted from a config.json the way llama.cpp's converter
// (convert_hf_to_gguf.py) would write it: tensor names mapped to ggml's, experts stacked into 3-D tensors,
// Conv1D weights transposed, 1-D tensors, norms, routers and biases in F32 and the rest in the checkpoint's 16-bit
// type (the converter's --outtype auto).
#include <algorithm>
#include <cstdio>
#include <map>

#include <fmt/core.h>

#include "llmem/checked.hpp"
#include "llmem/error.hpp"
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

int layer_of_name(const std::string& name) {
  int layer = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
  return layer;
}

// Architectures llmem can size (the graph builders whose buffers it models). Others are refused with a clear error.
const std::vector<std::string>& sized_architectures() {
  static const std::vector<std::string> a = {"llama", "qwen2", "qwen3", "qwen3moe", "gemma", "gemma2", "gemma3",
                                             "phi3", "gpt2", "mistral3"};
  return a;
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

void set_swa(Hparams& hp, uint64_t pattern) {
  hp.swa_layers.assign(hp.n_layer, false);
  for (uint64_t il = 0; il < hp.n_layer; ++il) hp.swa_layers[il] = pattern == 0 || (il % pattern < pattern - 1);
}

}  // namespace

Model from_gguf(const GgufFile& g) {
  Model m;
  m.source = g.file;
  Hparams& hp = m.hp;
  hp.arch = g.architecture();
  if (hp.arch.empty()) throw Error(ErrorKind::kInvalidInput, g.file, "no general.architecture: not a llama.cpp model file");
  if (std::find(sized_architectures().begin(), sized_architectures().end(), hp.arch) == sized_architectures().end()) {
    std::string known;
    for (const auto& a : sized_architectures()) known += (known.empty() ? "" : ", ") + a;
    throw Error(ErrorKind::kUnsupported, g.file, "llmem cannot size llama.cpp's buffers for architecture '" + hp.arch + "' yet (known: " + known + ")");
  }
  const std::string p = hp.arch + ".";
  hp.n_layer = g.require_uint(p + "block_count");
  if (hp.n_layer == 0 || hp.n_layer > 100000) throw Error(ErrorKind::kInvalidInput, g.file, p + "block_count is " + std::to_string(hp.n_layer));
  hp.n_embd = g.require_uint(p + "embedding_length");
  hp.n_ctx_train = g.get_uint(p + "context_length").value_or(0);
  hp.n_head = per_layer(g, p + "attention.head_count", hp.n_layer, std::nullopt);
  hp.n_head_kv = per_layer(g, p + "attention.head_count_kv", hp.n_layer, hp.n_head[0]);
  const uint64_t n_ff_default = 0;
  auto ff = per_layer(g, p + "feed_forward_length", hp.n_layer, n_ff_default);
  hp.n_ff = ff.empty() ? 0 : *std::max_element(ff.begin(), ff.end());
  if (hp.n_head[0] == 0) throw Error(ErrorKind::kInvalidInput, g.file, p + "attention.head_count is 0");
  hp.n_embd_head_k = g.get_uint(p + "attention.key_length").value_or(hp.n_embd / hp.n_head[0]);
  hp.n_embd_head_v = g.get_uint(p + "attention.value_length").value_or(hp.n_embd / hp.n_head[0]);
  hp.n_expert = g.get_uint(p + "expert_count").value_or(0);
  hp.n_expert_used = g.get_uint(p + "expert_used_count").value_or(0);
  hp.swa_layers.assign(hp.n_layer, false);
  if (hp.arch == "gemma2") {
    hp.n_swa = g.get_uint(p + "attention.sliding_window").value_or(4096);
    set_swa(hp, g.get_uint(p + "attention.sliding_window_pattern").value_or(2));
  } else if (hp.arch == "gemma3") {
    hp.n_swa = g.get_uint(p + "attention.sliding_window").value_or(0);
    set_swa(hp, g.get_uint(p + "attention.sliding_window_pattern").value_or(6));
  }
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

struct FamilyMap {
  std::string arch;                         // llama.cpp architecture
  std::vector<std::string> layer_prefixes;  // HF prefix of a layer, before its index
  std::map<std::string, std::string> global;  // HF name -> GGUF name
  std::map<std::string, std::string> layer;   // HF suffix inside a layer -> GGUF suffix (without "blk.N.")
  bool conv1d = false;                      // GPT-2 style Conv1D weights, [in, out]
  bool skip_lm_head = false;                // the converter drops lm_head (Gemma 2)
};

std::map<std::string, std::string> llama_layer_map() {
  return {
      {"self_attn.q_proj.weight", "attn_q.weight"},   {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.weight", "attn_k.weight"},   {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.weight", "attn_v.weight"},   {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"}, {"self_attn.o_proj.bias", "attn_output.bias"},
      {"self_attn.qkv_proj.weight", "attn_qkv.weight"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"}, {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},   {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},   {"mlp.gate_up_proj.weight", "ffn_up.weight"},
      {"input_layernorm.weight", "attn_norm.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate.weight", "ffn_gate_inp.weight"},    {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight"},
      {"mlp.experts.gate_proj.weight", "ffn_gate_exps.weight"}, {"mlp.experts.up_proj.weight", "ffn_up_exps.weight"},
      {"mlp.experts.down_proj.weight", "ffn_down_exps.weight"},
      {"block_sparse_moe.experts.w1.weight", "ffn_gate_exps.weight"},
      {"block_sparse_moe.experts.w3.weight", "ffn_up_exps.weight"},
      {"block_sparse_moe.experts.w2.weight", "ffn_down_exps.weight"},
  };
}

const FamilyMap* family_map(const ModelFacts& f) {
  static const std::map<std::string, std::string> kGlobal = {
      {"model.embed_tokens.weight", "token_embd.weight"}, {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"}};
  static const std::map<std::string, FamilyMap> maps = [] {
    std::map<std::string, FamilyMap> m;
    auto llama_like = [&](const std::string& arch) {
      FamilyMap fm;
      fm.arch = arch;
      fm.layer_prefixes = {"model.layers."};
      fm.global = kGlobal;
      fm.layer = llama_layer_map();
      return fm;
    };
    for (const char* t : {"llama", "mistral", "mixtral"}) m[t] = llama_like("llama");
    m["qwen2"] = llama_like("qwen2");
    m["qwen3"] = llama_like("qwen3");
    m["qwen3_moe"] = llama_like("qwen3moe");
    m["gemma"] = llama_like("gemma");
    m["phi3"] = llama_like("phi3");
    for (const char* t : {"gemma2", "gemma3_text", "gemma3"}) {
      FamilyMap fm = llama_like(std::string(t) == "gemma2" ? "gemma2" : "gemma3");
      fm.layer["post_attention_layernorm.weight"] = "post_attention_norm.weight";
      fm.layer["pre_feedforward_layernorm.weight"] = "ffn_norm.weight";
      fm.layer["post_feedforward_layernorm.weight"] = "post_ffw_norm.weight";
      fm.skip_lm_head = true;
      m[t] = fm;
    }
    FamilyMap gpt2;
    gpt2.arch = "gpt2";
    gpt2.layer_prefixes = {"transformer.h."};
    gpt2.global = {{"transformer.wte.weight", "token_embd.weight"}, {"transformer.wpe.weight", "position_embd.weight"},
                   {"transformer.ln_f.weight", "output_norm.weight"}, {"transformer.ln_f.bias", "output_norm.bias"},
                   {"lm_head.weight", "output.weight"}};
    gpt2.layer = {{"ln_1.weight", "attn_norm.weight"}, {"ln_1.bias", "attn_norm.bias"},
                  {"attn.c_attn.weight", "attn_qkv.weight"}, {"attn.c_attn.bias", "attn_qkv.bias"},
                  {"attn.c_proj.weight", "attn_output.weight"}, {"attn.c_proj.bias", "attn_output.bias"},
                  {"ln_2.weight", "ffn_norm.weight"}, {"ln_2.bias", "ffn_norm.bias"},
                  {"mlp.c_fc.weight", "ffn_up.weight"}, {"mlp.c_fc.bias", "ffn_up.bias"},
                  {"mlp.c_proj.weight", "ffn_down.weight"}, {"mlp.c_proj.bias", "ffn_down.bias"}};
    gpt2.conv1d = true;
    m["gpt2"] = gpt2;
    return m;
  }();
  auto it = maps.find(f.model_type);
  return it == maps.end() ? nullptr : &it->second;
}

// The converter's type for a tensor of the base (16-bit) file.
DType converted_type(const std::string& gguf_name, size_t dims, DType base) {
  if (dims <= 1) return DType::F32;
  if (gguf_name.size() >= 12 && gguf_name.compare(gguf_name.size() - 12, 12, "_norm.weight") == 0) return DType::F32;
  if (gguf_name.find("ffn_gate_inp") != std::string::npos || gguf_name == "position_embd.weight") return DType::F32;
  if (gguf_name.size() < 7 || gguf_name.compare(gguf_name.size() - 7, 7, ".weight") != 0) return DType::F32;
  return base;
}

}  // namespace

Model from_config(const ArchModel& am, const std::string& source) {
  const ModelFacts& f = am.facts;
  const FamilyMap* fm = family_map(f);
  if (!fm)
    throw Error(ErrorKind::kUnsupported, source,
                "llmem cannot predict llama.cpp's GGUF for model_type '" + f.model_type +
                    "' yet; convert it with llama.cpp's convert_hf_to_gguf.py and point llmem at the .gguf");
  Model m;
  m.source = source;
  m.predicted = true;
  Hparams& hp = m.hp;
  hp.arch = fm->arch;
  hp.n_layer = f.n_layers;
  hp.n_embd = f.hidden;
  hp.n_vocab = f.vocab;
  hp.n_ctx_train = f.max_positions;
  hp.n_ff = f.intermediate;
  hp.n_expert = f.n_experts;
  hp.n_expert_used = f.n_experts_active;
  hp.n_head.assign(hp.n_layer, f.n_heads);
  hp.n_head_kv.assign(hp.n_layer, f.n_kv_heads);
  hp.n_embd_head_k = f.head_dim;
  hp.n_embd_head_v = f.head_dim;
  hp.swa_layers.assign(hp.n_layer, false);
  for (size_t il = 0; il < f.attention.size() && il < hp.n_layer; ++il) {
    if (f.attention[il].sliding_window > 0) {
      hp.swa_layers[il] = true;
      hp.n_swa = f.attention[il].sliding_window;
    }
  }
  if (hp.arch != "gemma2" && hp.arch != "gemma3") {
    // Only the Gemma 2/3 graphs use a sliding-window cache; llama.cpp ignores the window of Mistral and disables
    // Phi-3's (src/models/phi3.cpp): full attention and a full KV cache.
    hp.swa_layers.assign(hp.n_layer, false);
    hp.n_swa = 0;
  }
  // The converter's --outtype auto: bf16 when the checkpoint is bf16, else f16.
  const DType base = f.config_dtype == DType::BF16 ? DType::BF16 : DType::F16;

  std::map<std::string, size_t> stacked;  // GGUF name -> index, for experts
  for (const auto& t : am.tensors) {
    const std::string& n = t.name;
    std::string gname;
    int layer = -1;
    int expert = -1;
    if (auto g = fm->global.find(n); g != fm->global.end()) {
      if (fm->skip_lm_head && n == "lm_head.weight") continue;
      gname = g->second;
    } else {
      std::string rest;
      for (const auto& pre : fm->layer_prefixes) {
        if (n.compare(0, pre.size(), pre) != 0) continue;
        size_t dot = n.find('.', pre.size());
        if (dot == std::string::npos) break;
        layer = std::stoi(n.substr(pre.size(), dot - pre.size()));
        rest = n.substr(dot + 1);
      }
      // experts: "<...>.experts.E.<w>" -> "<...>.experts.<w>" stacked over E
      if (size_t e = rest.find("experts."); e != std::string::npos) {
        size_t dot = rest.find('.', e + 8);
        if (dot != std::string::npos && rest.find_first_not_of("0123456789", e + 8) == dot) {
          expert = std::stoi(rest.substr(e + 8, dot - e - 8));
          rest = rest.substr(0, e + 8) + rest.substr(dot + 1);
        }
      }
      auto l = fm->layer.find(rest);
      if (layer < 0 || l == fm->layer.end())
        throw Error(ErrorKind::kUnsupported, source, "no llama.cpp name known for tensor " + n + " (" + f.model_type + ")");
      gname = "blk." + std::to_string(layer) + "." + l->second;
    }
    // ggml's ne: a Linear [out, in] becomes ne = [in, out]; Conv1D [in, out] is transposed by the converter first.
    std::vector<uint64_t> ne(t.shape.rbegin(), t.shape.rend());
    if (fm->conv1d && t.shape.size() == 2 && gname.find("weight") != std::string::npos && gname != "token_embd.weight" &&
        gname != "position_embd.weight" && gname != "output.weight")
      ne.assign(t.shape.begin(), t.shape.end());
    if (expert >= 0) {
      auto it = stacked.find(gname);
      if (it == stacked.end()) {
        ne.push_back(1);
        GgufTensor gt{gname, converted_type(gname, 3, base), ne, layer};
        stacked[gname] = m.tensors.size();
        m.tensors.push_back(std::move(gt));
      } else {
        m.tensors[it->second].ne.back() += 1;
      }
      continue;
    }
    GgufTensor gt;
    gt.name = gname;
    gt.ne = ne;
    gt.layer = layer;
    gt.type = converted_type(gname, ne.size(), base);
    m.tensors.push_back(std::move(gt));
  }
  m.scheme = base == DType::BF16 ? "BF16" : "F16";
  return m;
}

}  // namespace llmem::llamacpp
