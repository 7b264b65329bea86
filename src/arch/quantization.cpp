// Quantised checkpoints as stored, and as transformers 5.17 loads them (quantization.hpp).
//
// Sources, one per scheme (the tensor each line of stored_* adds cites its rule):
//  - mxfp4: transformers 5.17 integrations/mxfp4.py and quantizers/quantizer_mxfp4.py (gpt-oss: each expert
//    projection X as X_blocks U8 [experts, out, in/32, 16] and X_scales U8 [experts, out, in/32]; 32 FP4 values per
//    block, one E8M0 exponent per block; only GptOssExperts are converted).
//  - fp8: transformers 5.17 quantizers/quantizer_finegrained_fp8.py and integrations/finegrained_fp8.py (FP8Linear:
//    weight F8_E4M3 [out, in], weight_scale_inv F32 [ceil(out/block_rows), ceil(in/block_cols)]).
//  - bitsandbytes 4-bit: bitsandbytes 0.45 nn/modules.py Params4bit, functional.py quantize_4bit and
//    QuantState.as_dict(packed=True) (weight U8 [ceil(n/2), 1]; absmax F32 [ceil(n/64)], or with double
//    quantisation absmax U8 plus nested_absmax F32 [ceil(blocks/256)] and nested_quant_map F32 [256]; quant_map F32
//    [16]; quant_state.bitsandbytes__nf4 U8: the JSON text of the non-tensor fields).
//  - bitsandbytes 8-bit: bitsandbytes 0.45 nn/modules.py Linear8bitLt._save_to_state_dict (weight I8, SCB F32 [out],
//    weight_format U8 []).
//  - GPTQ: auto-gptq 0.7 nn_modules/qlinear/qlinear_cuda.py QuantLinear (also gptqmodel's "gptq" checkpoint format):
//    qweight I32 [in/32*bits, out], qzeros I32 [ceil(in/group), out/32*bits], scales F16 [ceil(in/group), out],
//    g_idx I32 [in], bias F16 [out]; transformers 5.17 quantizers/quantizer_gptq.py (blocks only, via optimum).
//  - AWQ: AutoAWQ 0.2 awq/modules/linear/gemm.py WQLinear_GEMM: qweight I32 [in, out/(32/bits)], qzeros I32
//    [in/group, out/(32/bits)], scales F16 [in/group, out], bias F16 [out]; transformers 5.17
//    quantizers/quantizer_awq.py.
//  - compressed-tensors 0.11: compressors/quantized_compressors/pack_quantized.py (weight_packed I32
//    [out, ceil(in/(32/bits))], weight_shape I64 [2], packed zero points I32 [ceil(out/(32/bits)), groups] when
//    asymmetric), naive_quantized.py (weight I8), float_quantized (weight F8_E4M3), and
//    quantization/lifecycle/initialize.py (weight_scale in the weight's dtype: [1] per tensor, [out, 1] per channel,
//    [out, ceil(in/group)] per group, [ceil(out/r), ceil(in/c)] per block; input_scale [1] for static activations).
#include "llmem/quantization.hpp"

#include <regex>
#include <set>
#include <string_view>
#include <utility>

#include <fmt/core.h>

#include "llmem/error.hpp"

namespace llmem {
using Json = nlohmann::json;

namespace {

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

std::vector<std::string> string_list(const HfConfig& q, const std::string& key) {
  std::vector<std::string> out;
  if (!q.has(key)) return out;
  const Json& v = q.json().at(key);
  if (!v.is_array()) q.fail(key, "must be a list of module names");
  for (const auto& s : v) {
    if (s.is_string()) out.push_back(s.get<std::string>());
    else if (s.is_array())  // GPTQ's modules_in_block_to_quantize is a list of lists
      for (const auto& t : s) {
        if (!t.is_string()) q.fail(key, "must be a list of module names");
        out.push_back(t.get<std::string>());
      }
    else q.fail(key, "must be a list of module names");
  }
  return out;
}

// An integer field that may be -1 (GPTQ's group_size) or positive.
int64_t int_field(const HfConfig& q, const std::string& key, int64_t fallback) {
  if (!q.has(key)) return fallback;
  const Json& v = q.json().at(key);
  if (!v.is_number_integer()) q.fail(key, "must be an integer, got " + v.dump());
  return v.get<int64_t>();
}

uint32_t bits_field(const HfConfig& q, const std::string& key, std::initializer_list<uint32_t> allowed,
                    const std::string& method) {
  if (!q.has(key)) q.fail(key, "is missing (the weight bit width " + method + " needs)");
  const int64_t b = int_field(q, key, 0);
  std::string list;
  for (uint32_t a : allowed) {
    if (b == a) return a;
    list += (list.empty() ? "" : ", ") + std::to_string(a);
  }
  q.fail(key, fmt::format("{} bits is not supported by {} (supported: {})", b, method, list));
}

void read_fp8(const HfConfig& q, QuantScheme& s) {
  s.bits = 8;
  // FineGrainedFP8Config: weight_block_size defaults to (128, 128); only dynamic activation scaling exists.
  s.block_rows = s.block_cols = 128;
  if (q.has("weight_block_size")) {
    const Json& v = q.json().at("weight_block_size");
    if (!v.is_array() || v.size() != 2 || !v[0].is_number_unsigned() || !v[1].is_number_unsigned() ||
        v[0].get<uint64_t>() == 0 || v[1].get<uint64_t>() == 0)
      q.fail("weight_block_size", "must be two positive integers [rows, cols], got " + v.dump());
    s.block_rows = v[0].get<uint64_t>();
    s.block_cols = v[1].get<uint64_t>();
  }
  const std::string act = q.string_or("activation_scheme", "dynamic");
  if (act != "dynamic") q.fail("activation_scheme", "'" + act + "' is not supported by fp8 (FineGrainedFP8: dynamic only)");
  const std::string fmt_name = q.string_or("fmt", "e4m3");
  if (fmt_name != "e4m3") q.fail("fmt", "'" + fmt_name + "' is not supported by fp8 (e4m3 only)");
  s.skip = string_list(q, "modules_to_not_convert");
}

void read_bnb(const HfConfig& q, QuantScheme& s) {
  const bool four = q.flag_or("load_in_4bit", false), eight = q.flag_or("load_in_8bit", false);
  if (four == eight)
    q.fail("load_in_4bit", four ? "and load_in_8bit are both true" : "is missing: one of load_in_4bit or load_in_8bit must be true");
  s.method = four ? QuantMethod::kBnb4 : QuantMethod::kBnb8;
  s.bits = four ? 4 : 8;
  const std::string type = q.string_or("bnb_4bit_quant_type", "fp4");  // BitsAndBytesConfig's default
  if (type != "nf4" && type != "fp4") q.fail("bnb_4bit_quant_type", "must be nf4 or fp4, got '" + type + "'");
  s.nf4 = type == "nf4";
  s.double_quant = q.flag_or("bnb_4bit_use_double_quant", false);
  const std::string storage = q.string_or("bnb_4bit_quant_storage", "uint8");
  if (four && storage != "uint8") q.fail("bnb_4bit_quant_storage", "'" + storage + "' is not modelled (uint8 only)");
  s.skip = string_list(q, "llm_int8_skip_modules");
}

void read_gptq(const HfConfig& q, QuantScheme& s) {
  s.bits = bits_field(q, "bits", {2, 3, 4, 8}, "gptq");
  const int64_t g = int_field(q, "group_size", 128);
  if (g == 0 || g < -1) q.fail("group_size", "must be -1 or a positive integer, got " + std::to_string(g));
  s.group_size = g == -1 ? 0 : static_cast<uint64_t>(g);
  s.desc_act = q.flag_or("desc_act", false);
  s.sym = q.flag_or("sym", true);
  const std::string format = q.string_or("checkpoint_format", "gptq");
  if (format != "gptq" && format != "gptq_v2")
    q.fail("checkpoint_format", "'" + format + "' is not modelled (gptq, gptq_v2)");
  s.block_modules = string_list(q, "modules_in_block_to_quantize");
  s.skip = string_list(q, "modules_to_not_convert");
}

void read_awq(const HfConfig& q, QuantScheme& s) {
  s.bits = bits_field(q, q.has("bits") || !q.has("w_bit") ? "bits" : "w_bit", {4}, "awq");
  const char* gkey = q.has("group_size") || !q.has("q_group_size") ? "group_size" : "q_group_size";
  const int64_t g = int_field(q, gkey, 128);
  if (g == 0 || g < -1) q.fail(gkey, "must be -1 or a positive integer, got " + std::to_string(g));
  s.group_size = g == -1 ? 0 : static_cast<uint64_t>(g);
  const std::string version = q.string_or(q.has("version") || !q.has("backend") ? "version" : "backend", "gemm");
  // GEMM, exllama and ipex kernels read the GEMM packing; GEMV packs along the input instead.
  if (version != "gemm" && version != "GEMM" && version != "exllama" && version != "ipex")
    q.fail("version", "'" + version + "' packing is not modelled (gemm, exllama, ipex)");
  s.skip = string_list(q, "modules_to_not_convert");
}

CtGroup read_ct_group(const HfConfig& g, const std::string& format) {
  CtGroup out;
  out.targets = string_list(g, "targets");
  if (out.targets.empty()) g.fail("targets", "is missing");
  const HfConfig w = g.sub("weights");
  if (!g.has("weights")) g.fail("weights", "is missing");
  const std::string type = w.string_or("type", "int");
  if (type != "int" && type != "float") w.fail("type", "must be int or float, got '" + type + "'");
  out.is_float = type == "float";
  if (format == "pack-quantized") out.bits = bits_field(w, "num_bits", {2, 4, 8}, "pack-quantized");
  else out.bits = bits_field(w, "num_bits", {8}, format);
  if (format == "float-quantized" && !out.is_float) w.fail("type", "must be float for float-quantized");
  if (format != "float-quantized" && out.is_float) w.fail("type", "float weights need format float-quantized");
  const std::string strategy = w.string_or("strategy", "tensor");
  if (strategy == "tensor") out.strategy = QuantStrategy::kTensor;
  else if (strategy == "channel") out.strategy = QuantStrategy::kChannel;
  else if (strategy == "group") out.strategy = QuantStrategy::kGroup;
  else if (strategy == "block") out.strategy = QuantStrategy::kBlock;
  else w.fail("strategy", "'" + strategy + "' is not modelled (tensor, channel, group, block)");
  if (out.strategy == QuantStrategy::kGroup) out.group_size = w.dim("group_size");
  if (out.strategy == QuantStrategy::kBlock) {
    const Json* b = w.has("block_structure") ? &w.json().at("block_structure") : nullptr;
    if (!b || !b->is_array() || b->size() != 2 || !(*b)[0].is_number_unsigned() || !(*b)[1].is_number_unsigned() ||
        (*b)[0].get<uint64_t>() == 0 || (*b)[1].get<uint64_t>() == 0)
      w.fail("block_structure", "must be two positive integers [rows, cols]");
    out.block_rows = (*b)[0].get<uint64_t>();
    out.block_cols = (*b)[1].get<uint64_t>();
  }
  out.symmetric = w.flag_or("symmetric", true);
  if (g.has("input_activations")) out.static_input = !g.sub("input_activations").flag_or("dynamic", false);
  return out;
}

// A "re:" entry is evaluated with std::regex, which backtracks: a quantified group ("(a*)*") can take exponential
// time on a module name, so such entries are refused (compressed-tensors' real ones are plain, e.g. "re:.*mlp.gate$").
void check_regexes(const HfConfig& q, const std::string& key, const std::vector<std::string>& entries) {
  for (const auto& e : entries) {
    if (e.rfind("re:", 0) != 0) continue;
    for (const char* bad : {")*", ")+", ")?", "){"})
      if (e.find(bad) != std::string::npos || e.size() > 512)
        q.fail(key, "entry '" + e.substr(0, 60) + "' uses a quantified group or is too long; llmem evaluates plain regexes only");
    try {
      (void)std::regex(e.substr(3));
    } catch (const std::exception&) {
      q.fail(key, "entry '" + e.substr(0, 60) + "' is not a valid regular expression");
    }
  }
}

void read_compressed(const HfConfig& q, QuantScheme& s) {
  if (!q.has("format")) q.fail("format", "is missing");
  s.ct_format = q.string_or("format", "");
  if (s.ct_format != "pack-quantized" && s.ct_format != "int-quantized" && s.ct_format != "naive-quantized" &&
      s.ct_format != "float-quantized")
    q.fail("format", "'" + s.ct_format + "' is not modelled (pack-quantized, int-quantized, naive-quantized, float-quantized)");
  if (!q.has("config_groups")) q.fail("config_groups", "is missing");
  const Json& groups = q.json().at("config_groups");
  if (!groups.is_object() || groups.empty()) q.fail("config_groups", "must be an object of named groups");
  const HfConfig all = q.sub("config_groups");
  for (const auto& [name, g] : groups.items()) {
    (void)g;
    s.groups.push_back(read_ct_group(all.sub(name), s.ct_format));
  }
  s.bits = s.groups.front().bits;
  s.skip = string_list(q, "ignore");
  check_regexes(q, "ignore", s.skip);
  const HfConfig named = q.sub("config_groups");
  for (const auto& [name, g] : groups.items()) {
    (void)g;
    check_regexes(named.sub(name), "targets", string_list(named.sub(name), "targets"));
  }
}

// A skip-list entry that names modules (no '*' glob, no "re:" regex): module_matches' whole-component rule.
bool plain_pattern(const std::string& p) {
  return !p.empty() && p.find('*') == std::string::npos && p.rfind("re:", 0) != 0;
}

}  // namespace

std::optional<QuantScheme> quant_scheme_from_config(const HfConfig& config) {
  if (!config.has("quantization_config")) return std::nullopt;
  if (!config.json().at("quantization_config").is_object()) config.fail("quantization_config", "must be an object");
  const HfConfig q = config.sub("quantization_config");
  if (!q.has("quant_method")) q.fail("quant_method", "is missing");
  QuantScheme s;
  s.method_name = q.string_or("quant_method", "");
  s.origin = config.origin();
  const std::string& m = s.method_name;
  if (m == "mxfp4") {
    s.method = QuantMethod::kMxfp4;
    s.bits = 4;
    s.skip = string_list(q, "modules_to_not_convert");
  } else if (m == "fp8") {
    s.method = QuantMethod::kFp8;
    read_fp8(q, s);
  } else if (m == "bitsandbytes") {
    read_bnb(q, s);
  } else if (m == "gptq") {
    s.method = QuantMethod::kGptq;
    read_gptq(q, s);
  } else if (m == "awq") {
    s.method = QuantMethod::kAwq;
    read_awq(q, s);
  } else if (m == "compressed-tensors") {
    s.method = QuantMethod::kCompressedTensors;
    read_compressed(q, s);
  } else {
    q.fail("quant_method", "'" + m + "' is not known (known: mxfp4, fp8, bitsandbytes, gptq, awq, compressed-tensors)");
  }
  auto plain = std::make_shared<std::unordered_set<std::string>>();
  for (const auto& p : s.skip)
    if (plain_pattern(p)) plain->insert(p);
  s.plain_skip = std::move(plain);
  return s;
}

DType quant_default_dtype(const QuantScheme& q) {
  switch (q.method) {
    case QuantMethod::kMxfp4: return DType::BF16;  // quantizer_mxfp4.py update_dtype
    case QuantMethod::kFp8: return DType::F32;     // quantizer_finegrained_fp8.py update_dtype
    default: return DType::F16;                    // quantizer_bnb_4bit/8bit, gptq, awq, compressed_tensors
  }
}

namespace {
// '*' matches any run of characters; linear in the text for each star (the classic backtracking-to-last-star walk).
bool glob_match(std::string_view pat, std::string_view text) {
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pat.size() && pat[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}
}  // namespace

bool module_matches(const std::string& module, const std::string& pattern) {
  if (pattern.empty()) return false;
  if (pattern.rfind("re:", 0) == 0) {  // compressed-tensors: re.match against the module's name
    if (pattern.size() > 512) return false;  // no real ignore entry is this long; std::regex recurses per character
    try {
      return std::regex_search(module, std::regex(pattern.substr(3)), std::regex_constants::match_continuous);
    } catch (const std::exception&) {  // regex_error, including its complexity and stack limits
      return false;
    }
  }
  if (pattern.find('*') != std::string::npos) {  // "model.layers.*.self_attn": '*' spans any characters
    // the module itself or one of its parents (a prefix ending at a component boundary) matches the glob
    for (size_t end = 0; end <= module.size(); ++end)
      if ((end == module.size() || module[end] == '.') && glob_match(pattern, std::string_view(module).substr(0, end)))
        return true;
    return false;
  }
  // a module name: the whole path, a prefix of whole components, its last components, or whole components inside
  // it. Checked without building strings: a fit asks this for every tensor and every entry of the list, hundreds
  // of estimates over.
  const std::string_view m(module), p(pattern);
  for (size_t at = m.find(p); at != std::string_view::npos; at = m.find(p, at + 1)) {
    const bool starts = at == 0 || m[at - 1] == '.';
    const bool ends = at + p.size() == m.size() || m[at + p.size()] == '.';
    if (starts && ends) return true;
  }
  return false;
}

namespace {

TensorInfo make(std::string name, std::vector<uint64_t> shape, DType dtype, const TensorInfo& from) {
  TensorInfo t;
  t.name = std::move(name);  // most callers pass a name just built: moved, not copied
  t.shape = std::move(shape);
  t.dtype = dtype;
  const auto n = shape_numel(t.shape);
  t.data_bytes = n ? dtype_bytes(dtype, *n).value_or(0) : 0;
  t.layer = from.layer;
  t.role = from.role;
  return t;
}

std::string module_of(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(0, dot);
}

// A scheme's skip list as stored_tensors asks it, once per call: with plain_skip, the entries that are not plain
// names (globs, regexes), which every module is matched against in turn, and the last components of the plain
// names (a run of a module's components can equal a plain name only where it ends in one of them).
struct SkipList {
  const QuantScheme& q;
  std::vector<const std::string*> patterns;
  std::set<std::string, std::less<>> last_parts;
  explicit SkipList(const QuantScheme& scheme) : q(scheme) {
    if (!q.plain_skip) return;
    for (const auto& p : q.skip)
      if (!p.empty() && !plain_pattern(p)) patterns.push_back(&p);
    for (const auto& p : *q.plain_skip) {
      const size_t dot = p.rfind('.');
      last_parts.insert(dot == std::string::npos ? p : p.substr(dot + 1));
    }
  }
};

bool skipped(const SkipList& skips, const std::string& module) {
  const QuantScheme& q = skips.q;
  if (!q.plain_skip) {
    for (const auto& p : q.skip)
      if (module_matches(module, p)) return true;
    return false;
  }
  // a plain name matches a run of whole components (module_matches): every run that ends in a plain name's last
  // component is looked up, in one buffer that keeps its capacity (a quantised MoE checkpoint asks this for every
  // one of tens of thousands of tensors, most of which end in no such component)
  thread_local std::string run;
  for (size_t start = 0; !skips.last_parts.empty();) {  // the component [start, end)
    const size_t dot = module.find('.', start), end = dot == std::string::npos ? module.size() : dot;
    if (skips.last_parts.count(std::string_view(module).substr(start, end - start))) {
      for (size_t from = 0;; from = module.find('.', from) + 1) {  // each run [from, end), from a component's start
        run.assign(module, from, end - from);
        if (q.plain_skip->count(run)) return true;
        if (from == start) break;
      }
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (const std::string* p : skips.patterns)  // globs and regexes
    if (module_matches(module, *p)) return true;
  return false;
}

// A 2-D linear weight that a quantiser replaces (nn.Linear in the checkpoint's model). Routers stay in the model
// dtype: transformers 5.17 routers are not nn.Linear (e.g. DeepseekV3TopkRouter), and GPTQ/AWQ checkpoints leave
// them out (auto-gptq's inside_layer_modules, AutoAWQ's modules_to_not_convert ["gate"]). The LM head is kept by
// every transformers quantiser (get_modules_to_not_convert adds the output embeddings) and lies outside the decoder
// blocks GPTQ and AWQ quantise; compressed-tensors follows its own ignore list.
// `module`: module_of(t.name), which the caller has.
bool quantised_linear(const TensorInfo& t, const std::string& module, const SkipList& skips) {
  const QuantScheme& q = skips.q;
  if (t.shape.size() != 2 || !t.name.ends_with(".weight") || !is_linear_role(t.role) || t.role == TensorRole::kRouter)
    return false;
  if (q.method == QuantMethod::kMxfp4) return false;  // only GptOssExperts are converted
  if (t.role == TensorRole::kLmHead && q.method != QuantMethod::kCompressedTensors) return false;
  if ((q.method == QuantMethod::kGptq || q.method == QuantMethod::kAwq) && t.layer < 0) return false;
  if (skipped(skips, module)) return false;
  if (q.method == QuantMethod::kGptq && !q.block_modules.empty()) {
    bool listed = false;
    for (const auto& b : q.block_modules) listed = listed || module.ends_with("." + b);
    if (!listed) return false;
  }
  return true;
}

const CtGroup* ct_group_of(const std::string& module, const QuantScheme& q) {
  for (const auto& g : q.groups)
    for (const auto& target : g.targets)
      if (target == "Linear" || module_matches(module, target)) return &g;
  return nullptr;
}

[[noreturn]] void cannot_store(const QuantScheme& q, const TensorInfo& t, const std::string& why) {
  throw Error(ErrorKind::kInvalidInput, q.origin,
              "'quantization_config' " + q.method_name + " cannot store " + t.name + " " + shape_to_string(t.shape) + ": " + why);
}

void store_bnb4(const TensorInfo& t, const std::string& p, const QuantScheme& q, DType base, StoredTensors& out) {
  const uint64_t n = t.numel(), blocks = ceil_div(n, 64);  // blocksize 64 (Params4bit default)
  out.tensors.push_back(make(p + ".weight", {ceil_div(n, 2), 1}, DType::U8, t));
  out.tensors.push_back(make(p + ".weight.absmax", {blocks}, q.double_quant ? DType::U8 : DType::F32, t));
  out.tensors.push_back(make(p + ".weight.quant_map", {16}, DType::F32, t));
  // json.dumps of the non-tensor fields, in QuantState.as_dict's order; torch's dtype name without "torch."
  std::string dt = base == DType::BF16 ? "bfloat16" : base == DType::F16 ? "float16" : "float32";
  std::string text = fmt::format("{{\"quant_type\": \"{}\", \"blocksize\": 64, \"dtype\": \"{}\", \"shape\": [{}, {}]",
                                 q.nf4 ? "nf4" : "fp4", dt, t.shape[0], t.shape[1]);
  if (q.double_quant) {
    out.tensors.push_back(make(p + ".weight.nested_absmax", {ceil_div(blocks, 256)}, DType::F32, t));
    out.tensors.push_back(make(p + ".weight.nested_quant_map", {256}, DType::F32, t));
    // nested_offset is absmax.mean() printed by Python's repr: its length depends on the data; 19 characters is
    // the typical float32 value (e.g. 0.02158355712890625)
    text += ", \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": 0.02158355712890625";
    out.exact = false;
  }
  text += "}";
  out.tensors.push_back(make(p + ".weight.quant_state.bitsandbytes__" + (q.nf4 ? "nf4" : "fp4"), {text.size()}, DType::U8, t));
}

std::vector<uint64_t> ct_scale_shape(const CtGroup& g, uint64_t out, uint64_t in) {
  switch (g.strategy) {
    case QuantStrategy::kTensor: return {1};
    case QuantStrategy::kChannel: return {out, 1};
    case QuantStrategy::kGroup: return {out, ceil_div(in, g.group_size)};
    case QuantStrategy::kBlock: return {ceil_div(out, g.block_rows), ceil_div(in, g.block_cols)};
  }
  return {1};
}

void store_ct(const TensorInfo& t, const std::string& p, const CtGroup& g, const QuantScheme& q, DType base,
              StoredTensors& out) {
  const uint64_t rows = t.shape[0], cols = t.shape[1];
  const std::vector<uint64_t> scale = ct_scale_shape(g, rows, cols);
  if (q.ct_format == "pack-quantized") {
    const uint64_t pack = 32 / g.bits;
    out.tensors.push_back(make(p + ".weight_packed", {rows, ceil_div(cols, pack)}, DType::I32, t));
    out.tensors.push_back(make(p + ".weight_shape", {2}, DType::I64, t));
    out.tensors.push_back(make(p + ".weight_scale", scale, base, t));
    if (!g.symmetric && (g.strategy == QuantStrategy::kGroup || g.strategy == QuantStrategy::kChannel))
      out.tensors.push_back(make(p + ".weight_zero_point", {ceil_div(rows, pack), scale[1]}, DType::I32, t));
  } else {
    out.tensors.push_back(make(p + ".weight", t.shape, g.is_float ? DType::F8_E4M3 : DType::I8, t));
    out.tensors.push_back(make(p + ".weight_scale", scale, base, t));
    if (!g.symmetric) out.tensors.push_back(make(p + ".weight_zero_point", scale, DType::I8, t));
  }
  if (g.static_input) out.tensors.push_back(make(p + ".input_scale", {1}, base, t));
}

// The shapes a scheme cannot store (its packing or groups do not divide them): Error(kInvalidInput) naming the
// tensor. The only errors of stored_tensors, so that check_storable finds them without deriving the list.
void check_linear(const TensorInfo& t, const QuantScheme& q, bool conv1d) {
  const uint64_t rows = conv1d ? t.shape[1] : t.shape[0], cols = conv1d ? t.shape[0] : t.shape[1];
  if (q.method == QuantMethod::kGptq && rows * q.bits % 32)
    cannot_store(q, t, fmt::format("{} outputs do not pack into int32 at {} bits", rows, q.bits));
  if (q.method == QuantMethod::kAwq) {
    const uint64_t g = q.group_size ? q.group_size : cols, pack = 32 / q.bits;
    if (cols % g) cannot_store(q, t, fmt::format("{} inputs are not a multiple of group_size {}", cols, g));
    if (rows % pack) cannot_store(q, t, fmt::format("{} outputs are not a multiple of {}", rows, pack));
  }
}

void check_mxfp4_expert(const TensorInfo& t, const QuantScheme& q) {
  if (t.shape[1] % 32) cannot_store(q, t, fmt::format("input width {} is not a multiple of the 32-value MXFP4 block", t.shape[1]));
}

// One 2-D linear weight of module `p` as stored; `rows`/`cols` are nn.Linear's out and in.
void store_linear(const TensorInfo& t, const std::string& p, const QuantScheme& q, DType base, bool conv1d, StoredTensors& out) {
  const uint64_t rows = conv1d ? t.shape[1] : t.shape[0], cols = conv1d ? t.shape[0] : t.shape[1];
  check_linear(t, q, conv1d);
  switch (q.method) {
    case QuantMethod::kFp8:
      out.tensors.push_back(make(t.name, t.shape, DType::F8_E4M3, t));
      out.tensors.push_back(make(p + ".weight_scale_inv", {ceil_div(rows, q.block_rows), ceil_div(cols, q.block_cols)}, DType::F32, t));
      return;
    case QuantMethod::kBnb4: return store_bnb4(t, p, q, base, out);
    case QuantMethod::kBnb8:
      out.tensors.push_back(make(t.name, t.shape, DType::I8, t));
      out.tensors.push_back(make(p + ".SCB", {rows}, DType::F32, t));
      out.tensors.push_back(make(p + ".weight_format", {}, DType::U8, t));
      return;
    case QuantMethod::kGptq: {
      const uint64_t g = q.group_size ? q.group_size : cols, groups = ceil_div(cols, g);
      out.tensors.push_back(make(p + ".qweight", {cols / 32 * q.bits, rows}, DType::I32, t));
      out.tensors.push_back(make(p + ".qzeros", {groups, rows / 32 * q.bits}, DType::I32, t));
      out.tensors.push_back(make(p + ".scales", {groups, rows}, DType::F16, t));
      out.tensors.push_back(make(p + ".g_idx", {cols}, DType::I32, t));
      return;
    }
    case QuantMethod::kAwq: {
      const uint64_t g = q.group_size ? q.group_size : cols, pack = 32 / q.bits;
      out.tensors.push_back(make(p + ".qweight", {cols, rows / pack}, DType::I32, t));
      out.tensors.push_back(make(p + ".qzeros", {cols / g, rows / pack}, DType::I32, t));
      out.tensors.push_back(make(p + ".scales", {cols / g, rows}, DType::F16, t));
      return;
    }
    case QuantMethod::kCompressedTensors: return store_ct(t, p, *ct_group_of(p, q), q, base, out);
    case QuantMethod::kMxfp4: break;
  }
}

// gpt-oss's fused expert projection [experts, in, out] (transformers' layout) as MXFP4 blocks and scales.
void store_mxfp4_expert(const TensorInfo& t, const QuantScheme& q, StoredTensors& out) {
  const uint64_t experts = t.shape[0], in = t.shape[1], outs = t.shape[2];
  check_mxfp4_expert(t, q);
  out.tensors.push_back(make(t.name + "_blocks", {experts, outs, in / 32, 16}, DType::U8, t));
  out.tensors.push_back(make(t.name + "_scales", {experts, outs, in / 32}, DType::U8, t));
}

bool mxfp4_expert(const TensorInfo& t, const SkipList& skips) {
  return skips.q.method == QuantMethod::kMxfp4 && t.role == TensorRole::kExpert && t.shape.size() == 3 &&
         !t.name.ends_with("_bias") && !skipped(skips, module_of(t.name));
}

}  // namespace

StoredTensors stored_tensors(const std::vector<TensorInfo>& arch_tensors, const QuantScheme& q, bool conv1d) {
  StoredTensors out;
  out.tensors.reserve(arch_tensors.size() * 2);  // most schemes store a linear weight and its scales
  bool quantised_any = false;
  std::string module, last_quantised;  // each tensor's module; the last module quantised
  const SkipList skips(q);
  for (const auto& t : arch_tensors) {
    if (mxfp4_expert(t, skips)) {
      store_mxfp4_expert(t, q, out);
      continue;
    }
    module = module_of(t.name);
    const bool linear = quantised_linear(t, module, skips) &&
                        (q.method != QuantMethod::kCompressedTensors || ct_group_of(module, q));
    if (linear) {
      store_linear(t, module, q, t.dtype, conv1d, out);
      quantised_any = true;
      last_quantised.swap(module);
      continue;
    }
    TensorInfo kept = t;
    // GPTQ and AWQ layers keep their bias in fp16 (QuantLinear / WQLinear_GEMM register it so)
    if ((q.method == QuantMethod::kGptq || q.method == QuantMethod::kAwq) && t.name.ends_with(".bias") && quantised_any &&
        last_quantised == module) {
      kept.dtype = DType::F16;
      kept.data_bytes = dtype_bytes(DType::F16, t.numel()).value_or(0);
    }
    out.tensors.push_back(std::move(kept));
  }
  if (!quantised_any && q.method != QuantMethod::kMxfp4)
    out.notes.push_back("quantization_config " + q.method_name + " matches no linear layer of this architecture");
  return out;
}

void check_storable(const std::vector<TensorInfo>& arch_tensors, const QuantScheme& q, bool conv1d) {
  // only these schemes' packing can refuse a shape (check_linear, check_mxfp4_expert)
  if (q.method != QuantMethod::kGptq && q.method != QuantMethod::kAwq && q.method != QuantMethod::kMxfp4) return;
  const SkipList skips(q);
  for (const auto& t : arch_tensors) {
    if (mxfp4_expert(t, skips)) check_mxfp4_expert(t, q);
    else if (quantised_linear(t, module_of(t.name), skips)) check_linear(t, q, conv1d);  // GPTQ and AWQ: no compressed-tensors groups
  }
}

LoadedWeights weights_as_loaded(const std::vector<TensorInfo>& arch_tensors, const QuantScheme& q, DType compute,
                                const LoadOptions& opt, bool conv1d, std::shared_ptr<const std::vector<TensorInfo>> stored) {
  LoadedWeights w;
  const int cc = opt.compute_capability ? opt.compute_capability : 1000;
  // Dequantising loads put the quantised tensors back in the compute dtype; the rest is cast to it too.
  bool dequantise = false;
  if (q.method == QuantMethod::kMxfp4) {
    // quantizer_mxfp4.py validate_environment: kernels need Triton >= 3.4, the `kernels` package (triton_kernels
    // from the Hub) and compute capability >= 7.5; otherwise dequantize=True and the experts load in bf16
    dequantise = !opt.mxfp4_kernels || cc < 75;
    w.how = dequantise ? (opt.mxfp4_kernels ? "MXFP4 experts dequantised to " + std::string(dtype_name(compute)) +
                                                  " (the GPU's compute capability is below 7.5)"
                                            : "MXFP4 experts dequantised to " + std::string(dtype_name(compute)) +
                                                  " (Triton kernels not installed)")
                       : "MXFP4 experts kept packed for the Triton kernels; their swizzle padding not modelled";
  } else if (q.method == QuantMethod::kFp8) {
    // quantizer_finegrained_fp8.py validate_environment: FineGrainedFP8Config(dequantize=True), or below compute
    // capability 8.9, dequantises. Kept, the FP8 linears and experts call the Triton kernel the `kernels` package
    // fetches from the Hub (kernels-community/finegrained-fp8; integrations/finegrained_fp8.py), or DeepGEMM:
    // without either the first forward raises ImportError.
    dequantise = opt.fp8_dequantize || cc < 89;
    w.how = dequantise ? "FP8 weights dequantised to " + std::string(dtype_name(compute)) +
                             (opt.fp8_dequantize ? " (--fp8-dequantize: FineGrainedFP8Config(dequantize=True))"
                                                 : " (compute capability below 8.9)")
                       : "FP8 weights kept in F8_E4M3 with their F32 block scales (compute capability 8.9 or above); "
                         "the forward needs the kernels package (0.16) and its Hub kernel "
                         "kernels-community/finegrained-fp8, else ImportError (--fp8-dequantize loads them in " +
                             std::string(dtype_name(compute)) + ")";
  } else {
    w.how = q.method_name + " weights kept packed as stored (transformers' " + q.method_name + " quantiser)";
  }
  w.dequantised = dequantise;
  auto keep = [&](const TensorInfo& t) {
    const bool side = t.name.find(".quant_state.") != std::string::npos || t.name.ends_with(".weight_format");
    if (side) return;  // bitsandbytes rebuilds these into Python objects; they are not CUDA tensors
    const bool plain = t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16;
    const bool scale = t.name.ends_with("_scale_inv") || t.name.ends_with(".weight_scale") || t.name.ends_with(".SCB") ||
                       t.name.ends_with(".scales") || t.name.ends_with(".input_scale") || t.name.find(".weight.") != std::string::npos;
    LoadedTensor l{&t, t.dtype, t.data_bytes};
    if (plain && !scale) {  // unquantised tensors load in the requested dtype
      l.dtype = compute;
      l.data_bytes = dtype_bytes(compute, t.numel()).value_or(0);
    }
    w.bytes += l.data_bytes;
    w.tensors.push_back(l);
  };
  if (dequantise) {
    w.tensors.reserve(arch_tensors.size());
    for (const TensorInfo& t : arch_tensors) keep(t);
    if (q.method == QuantMethod::kFp8) {  // which of them the checkpoint stores in FP8
      const SkipList skips(q);
      for (LoadedTensor& l : w.tensors) l.from_fp8 = quantised_linear(*l.tensor, module_of(l.tensor->name), skips);
    }
    return w;
  }
  // this function's own derivation, where the caller has none: kept with the tensors that point into it
  w.stored = stored ? std::move(stored)
                    : std::make_shared<const std::vector<TensorInfo>>(stored_tensors(arch_tensors, q, conv1d).tensors);
  w.tensors.reserve(w.stored->size());
  for (const TensorInfo& t : *w.stored) keep(t);
  return w;
}

}  // namespace llmem
