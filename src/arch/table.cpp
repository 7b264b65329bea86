#include "table.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>

#include "llmem/checked.hpp"
#include "llmem/error.hpp"

namespace llmem::arch {
namespace {

// Far above any real model (DeepSeek-V3 has 61 layers of 256 experts, ~45k tensors), low enough that a hostile
// config cannot make llmem build billions of tensor records. A config near the earlier limit of 5M tensors ran the
// fuzzer (2 GiB, AddressSanitizer) out of memory: the records, the count's copy and the module tree cost ~2 KiB a
// tensor there; 966k tensors still did. 300k is ~6x DeepSeek-V3.
constexpr uint64_t kMaxRepeat = 100'000;
constexpr size_t kMaxTensors = 300'000;

[[noreturn]] void internal(const Family& f, const std::string& what) {
  throw Error(ErrorKind::kRuntime, "", std::string("internal error in the ") + f.name + " table: " + what);
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// Evaluates "a*b/c" left to right over dims and integer literals.
uint64_t eval_term(const Family& f, const Dims& dims, const HfConfig& cfg, const std::string& term) {
  uint64_t acc = 1;
  char op = '*';
  size_t pos = 0;
  while (pos <= term.size()) {
    size_t next = term.find_first_of("*/", pos);
    std::string tok = trim(std::string_view(term).substr(pos, next == std::string::npos ? std::string::npos : next - pos));
    uint64_t v;
    if (!tok.empty() && std::isdigit(static_cast<unsigned char>(tok[0]))) {
      v = std::stoull(tok);
    } else {
      auto it = dims.values.find(tok);
      if (it == dims.values.end()) internal(f, "unknown dimension '" + tok + "' in '" + term + "'");
      v = it->second;
    }
    if (op == '*') {
      auto m = checked_mul(acc, v);
      if (!m) throw Error(ErrorKind::kInvalidInput, cfg.origin(), "dimensions overflow 64 bits in " + term);
      acc = *m;
    } else {
      if (v == 0 || acc % v != 0)
        throw Error(ErrorKind::kInvalidInput, cfg.origin(),
                    "'" + term + "' is not a whole number (" + std::to_string(acc) + " / " + std::to_string(v) + ")");
      acc /= v;
    }
    if (next == std::string::npos) break;
    op = term[next];
    pos = next + 1;
  }
  return acc;
}

std::vector<uint64_t> eval_shape(const Family& f, const Dims& dims, const HfConfig& cfg, const char* shape) {
  std::vector<uint64_t> out;
  std::string s(shape);
  size_t pos = 0;
  while (true) {
    size_t comma = s.find(',', pos);
    out.push_back(eval_term(f, dims, cfg, s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos)));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

bool row_enabled(const Row& r, const Dims& dims) {
  std::string_view w = r.when;
  if (w.empty()) return true;
  if (w.front() == '!') return !dims.on(std::string(w.substr(1)));
  return dims.on(std::string(w));
}

bool has_layers(const Row& r) { return std::string_view(r.name).find("{layers}") != std::string_view::npos; }

// Expands the placeholders other than {layers} (already substituted) recursively.
void expand_name(const Family& f, const Dims& dims, const HfConfig& cfg, std::string name, std::vector<std::string>& out) {
  size_t open = name.find('{');
  if (open == std::string::npos) {
    out.push_back(std::move(name));
    return;
  }
  size_t close = name.find('}', open);
  if (close == std::string::npos) internal(f, "unclosed placeholder in " + name);
  std::string key = name.substr(open + 1, close - open - 1);
  auto it = dims.values.find(key);
  if (it == dims.values.end()) internal(f, "unknown repeat '" + key + "' in " + name);
  if (it->second > kMaxRepeat) throw Error(ErrorKind::kInvalidInput, cfg.origin(), "'" + key + "' = " + std::to_string(it->second) + " is implausibly large");
  for (uint64_t i = 0; i < it->second; ++i) {
    std::string each;  // the name with this repeat's index, built in one buffer (an MoE has tens of thousands)
    each.reserve(name.size() + 20);
    each.append(name, 0, open).append(std::to_string(i)).append(name, close + 1);
    expand_name(f, dims, cfg, std::move(each), out);
  }
}

// How many names expand_name makes of `name` (its placeholders' repeats multiplied); 0 where it cannot tell (an
// unknown or implausible repeat, which expand_name reports).
uint64_t name_count(const Dims& dims, std::string_view name) {
  uint64_t count = 1;
  for (size_t open = name.find('{'); open != std::string_view::npos; open = name.find('{', open + 1)) {
    const size_t close = name.find('}', open);
    if (close == std::string_view::npos) return 0;
    auto it = dims.values.find(std::string(name.substr(open + 1, close - open - 1)));
    if (it == dims.values.end() || it->second > kMaxRepeat) return 0;
    count = std::min<uint64_t>(count * it->second, kMaxTensors + 1);  // beyond it, expand refuses the config
  }
  return count;
}

// A linear layer's 2-D weight "<path>.<module>.weight" is named by its module, as peft's target_modules match it.
// MoE experts and routers have none: transformers 5 holds experts as fused 3-D parameters of an experts module and
// routers as plain parameters, not nn.Linear modules, so peft's target_modules (and all-linear) never reach them.
std::string linear_module_name(const TensorInfo& t) {
  constexpr std::string_view kWeight = ".weight";
  if (!is_linear_role(t.role) || t.role == TensorRole::kExpert || t.role == TensorRole::kRouter || t.shape.size() != 2 ||
      !t.name.ends_with(kWeight))
    return "";
  const std::string_view path = std::string_view(t.name).substr(0, t.name.size() - kWeight.size());
  return std::string(path.substr(path.rfind('.') + 1));
}

void emit(const Family& f, const Row& r, const Dims& dims, const HfConfig& cfg, DType dtype, const std::string& name,
          int64_t layer, ArchModel& out) {
  std::vector<std::string> names;
  expand_name(f, dims, cfg, name, names);
  auto shape = eval_shape(f, dims, cfg, r.shape);
  auto numel = shape_numel(shape);
  if (!numel) throw Error(ErrorKind::kInvalidInput, cfg.origin(), "tensor " + name + " has a size that overflows 64 bits");
  const bool alias = r.tied_to[0] != '\0' && dims.on("tied");
  if (out.tensors.size() + names.size() > kMaxTensors)
    throw Error(ErrorKind::kInvalidInput, cfg.origin(), "describes more than " + std::to_string(kMaxTensors) + " tensors: implausible");
  for (auto& n : names) {
    if (alias) {
      out.tied.push_back({n, r.tied_to, *numel});
      continue;
    }
    TensorInfo t;
    t.name = std::move(n);
    t.shape = shape;
    t.dtype = dtype;
    t.layer = layer;
    t.role = r.role;
    t.module_name = linear_module_name(t);
    auto bytes = dtype_bytes(dtype, *numel);
    if (!bytes) throw Error(ErrorKind::kInvalidInput, cfg.origin(), "tensor " + t.name + " is too large");
    t.data_bytes = *bytes;
    out.tensors.push_back(std::move(t));
  }
}

bool layer_selected(Layers sel, const Dims& dims, uint64_t i) {
  if (sel == Layers::kAll) return true;
  if (sel == Layers::kSelfAttn || sel == Layers::kCrossAttn) {
    const bool cross = i < dims.cross_layer.size() && dims.cross_layer[i];
    return sel == Layers::kCrossAttn ? cross : !cross;
  }
  bool moe = i < dims.moe_layer.size() && dims.moe_layer[i];
  return sel == Layers::kMoe ? moe : !moe;
}

}  // namespace

void expand(const Family& f, const Dims& dims, const HfConfig& cfg, DType dtype, ArchModel& out) {
  auto lit = dims.values.find("layers");
  if (lit == dims.values.end()) internal(f, "reader did not set 'layers'");
  const uint64_t n_layers = lit->second;
  if (n_layers > kMaxRepeat)
    throw Error(ErrorKind::kInvalidInput, cfg.origin(), std::to_string(n_layers) + " layers is implausibly many");
  const auto& rows = f.rows;
  // room for every tensor at once (the rows' names expanded, per layer where they repeat): an MoE's list is not
  // moved as it grows
  uint64_t expected = out.tensors.size();
  for (const Row& r : rows) {
    if (!row_enabled(r, dims)) continue;
    std::string name = r.name;
    uint64_t layers = 1;
    if (has_layers(r)) {
      name.replace(name.find("{layers}"), 8, "0");
      layers = 0;
      for (uint64_t layer = 0; layer < n_layers; ++layer) layers += layer_selected(r.layers, dims, layer);
    }
    expected += name_count(dims, name) * layers;
  }
  out.tensors.reserve(std::min<uint64_t>(expected, kMaxTensors));
  for (size_t i = 0; i < rows.size();) {
    if (!has_layers(rows[i])) {
      if (row_enabled(rows[i], dims)) emit(f, rows[i], dims, cfg, dtype, rows[i].name, -1, out);
      ++i;
      continue;
    }
    // A run of per-layer rows is expanded layer by layer, so tensors come out in module order.
    size_t end = i;
    while (end < rows.size() && has_layers(rows[end])) ++end;
    for (uint64_t layer = 0; layer < n_layers; ++layer) {
      for (size_t r = i; r < end; ++r) {
        if (!row_enabled(rows[r], dims) || !layer_selected(rows[r].layers, dims, layer)) continue;
        std::string name = rows[r].name;
        name.replace(name.find("{layers}"), 8, std::to_string(layer));
        emit(f, rows[r], dims, cfg, dtype, name, static_cast<int64_t>(layer), out);
      }
    }
    i = end;
  }
  if (f.extra) f.extra(cfg, dims, out.tensors);
}

}  // namespace llmem::arch

namespace llmem {

namespace {

const arch::Family* find_family(const HfConfig& cfg) {
  const std::string mt = cfg.model_type();
  const auto archs = cfg.architectures();
  for (const auto& f : arch::families())
    if (!mt.empty() && std::find(f.model_types.begin(), f.model_types.end(), mt) != f.model_types.end()) return &f;
  for (const auto& f : arch::families())
    for (const auto& a : archs)
      if (std::find(f.architectures.begin(), f.architectures.end(), a) != f.architectures.end()) return &f;
  return nullptr;
}

}  // namespace

ArchModel model_from_config(const HfConfig& cfg) {
  const arch::Family* f = find_family(cfg);
  if (!f) {
    std::string what = cfg.model_type().empty() ? "no model_type" : "model_type '" + cfg.model_type() + "'";
    auto archs = cfg.architectures();
    if (!archs.empty()) what += " (" + archs.front() + ")";
    throw Error(ErrorKind::kUnsupported, cfg.origin(),
                "unknown architecture: " + what +
                    "; point llmem at the model's *.safetensors or .gguf files instead, whose headers it can always count "
                    "(see 'llmem families' for the architectures it knows from config.json)");
  }
  ArchModel out;
  out.facts.family = f->name;
  out.facts.traits = f->traits;  // the reader refines what depends on the config
  out.facts.model_type = cfg.model_type();
  auto archs = cfg.architectures();
  if (!archs.empty()) out.facts.architecture = archs.front();
  // transformers 5 writes "dtype"; older configs "torch_dtype".
  for (const char* key : {"dtype", "torch_dtype"}) {
    if (cfg.has(key)) {
      std::string s = cfg.string_or(key, "");
      auto dt = dtype_from_torch(s);
      if (!dt && s != "auto") cfg.fail(key, "is not a known dtype: '" + s + "'");
      out.facts.config_dtype = dt;
      break;
    }
  }
  out.facts.config_use_cache = cfg.flag_or("use_cache", true);
  out.quant = quant_scheme_from_config(cfg);
  arch::Dims dims;
  f->read(cfg, dims, out.facts);
  out.facts.n_layers = dims.values.at("layers");
  if (dims.values.count("hidden")) out.facts.hidden = dims.values.at("hidden");
  if (dims.values.count("vocab")) out.facts.vocab = dims.values.at("vocab");
  out.facts.tied_embeddings = dims.on("tied");
  for (bool m : dims.moe_layer) out.facts.n_moe_layers += m ? 1 : 0;
  // Parameters are counted in the checkpoint's dtype when the config names one, else PyTorch's default, fp32 (a
  // quantised checkpoint: the dtype its quantiser loads the rest of the model in).
  arch::expand(*f, dims, cfg, out.facts.config_dtype.value_or(out.quant ? quant_default_dtype(*out.quant) : DType::F32), out);
  out.notes = out.facts.notes;
  // Forward-pass facts shared across families, under the keys transformers' configs use (a vision-language
  // model's under its text config: they describe the decoder that generates text).
  const HfConfig fc = f->text_config && cfg.has(f->text_config) ? cfg.sub(f->text_config) : cfg;
  for (const char* key : {"hidden_act", "hidden_activation", "activation_function"})
    if (fc.has(key) && fc.json().at(key).is_string()) out.facts.activation = fc.json().at(key).get<std::string>();
  auto positive = [&](std::initializer_list<const char*> keys) {
    for (const char* k : keys)
      if (fc.has(k) && fc.json().at(k).is_number() && fc.json().at(k).get<double>() > 0) return true;
    return false;
  };
  // GPT-2 and OPT default their dropouts to 0.1 when the config leaves them out.
  const bool gpt2_like = f->name == std::string("gpt2");
  out.facts.resid_dropout = positive({"resid_pdrop", "hidden_dropout", "dropout"}) || (gpt2_like && !fc.has("resid_pdrop")) ||
                            (f->name == std::string("opt") && !fc.has("dropout"));
  out.facts.attn_dropout = positive({"attn_pdrop", "attention_dropout", "attention_probs_dropout_prob"}) ||
                           (gpt2_like && !fc.has("attn_pdrop"));
  out.facts.embd_dropout = positive({"embd_pdrop"}) || (gpt2_like && !fc.has("embd_pdrop"));
  // Soft-caps where the config sets one (Gemma 2: final_logit_softcapping 30, attn_logit_softcapping 50; null
  // turns them off, as in Gemma 3).
  auto number = [&](const char* key) { return fc.has(key) && fc.json().at(key).is_number(); };
  out.facts.traits.final_logit_softcap = number("final_logit_softcapping");
  out.facts.traits.attn_logit_softcap = number("attn_logit_softcapping");
  out.facts.partial_rotary = fc.number_or("partial_rotary_factor", fc.number_or("rotary_pct", 1.0));
  return out;
}

bool same_architecture(const ArchModel& a, const ArchModel& b) {
  // every field of ArchModel (this binding stops compiling when one is added: compare it here too)
  const auto& [facts, tensors, tied, notes, quant] = a;
  if (facts != b.facts || tensors != b.tensors || tied != b.tied || notes != b.notes || quant.has_value() != b.quant.has_value())
    return false;
  if (!quant) return true;
  // plain_skip is derived from skip, which the scheme's == compares
  QuantScheme qa = *quant, qb = *b.quant;
  qa.origin = qb.origin;
  qa.plain_skip = qb.plain_skip;
  return qa == qb;
}

const std::vector<FamilyInfo>& known_families() {
  static const std::vector<FamilyInfo> all = [] {
    std::vector<FamilyInfo> v;
    for (const auto& f : arch::families()) v.push_back({f.name, f.model_types, f.architectures});
    return v;
  }();
  return all;
}

}  // namespace llmem
