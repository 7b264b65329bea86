#include "llmem/params.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <set>

#include "llmem/checked.hpp"
#include "llmem/error.hpp"

#include <fmt/core.h>

namespace llmem {
namespace {

bool is_number(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    size_t dot = s.find('.', pos);
    out.push_back(s.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos));
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return out;
}

void add_dtype(std::vector<DTypeTotal>& v, DType d, uint64_t params, uint64_t bytes) {
  for (auto& x : v)
    if (x.dtype == d) {
      x.params += params;
      x.bytes += bytes;
      return;
    }
  v.push_back({d, params, bytes});
}

void sort_dtypes(std::vector<DTypeTotal>& v) {
  std::sort(v.begin(), v.end(), [](const DTypeTotal& a, const DTypeTotal& b) { return a.bytes > b.bytes; });
}

// Quantisation side-tensors in safetensors checkpoints are not parameters of the model PyTorch builds:
// FP8 checkpoints (DeepSeek-V3) carry per-block `weight_scale_inv`, compressed-tensors carry `weight_scale`.
bool is_scale_tensor(const std::string& name) {
  for (const char* suffix : {".weight_scale_inv", ".weight_scale", ".input_scale"})
    if (name.ends_with(suffix)) return true;
  return false;
}

// MXFP4 in safetensors (gpt-oss): X_blocks (U8, 16 bytes = 32 values per block) and X_scales (U8, one E8M0
// exponent per block) together hold the parameter X.
std::vector<TensorInfo> merge_mxfp4(const std::vector<TensorInfo>& in) {
  std::map<std::string, const TensorInfo*> scales;
  for (const auto& t : in)
    if (t.name.ends_with("_scales") && t.dtype == DType::U8) scales[t.name.substr(0, t.name.size() - 7)] = &t;
  std::vector<TensorInfo> out;
  std::set<std::string> merged;
  for (const auto& t : in) {
    if (t.name.ends_with("_blocks") && t.dtype == DType::U8 && t.shape.size() >= 2) {
      std::string base = t.name.substr(0, t.name.size() - 7);
      auto s = scales.find(base);
      if (s != scales.end()) {
        TensorInfo m = t;
        m.name = base;
        m.shape.pop_back();
        uint64_t last = m.shape.back();
        m.shape.back() = last * t.shape.back() * 2;  // two 4-bit values per byte
        m.dtype = DType::MXFP4;
        m.data_bytes = t.data_bytes + s->second->data_bytes;
        out.push_back(std::move(m));
        merged.insert(base);
        continue;
      }
    }
    out.push_back(t);
  }
  std::erase_if(out, [&](const TensorInfo& t) {
    return t.name.ends_with("_scales") && merged.count(t.name.substr(0, t.name.size() - 7));
  });
  return out;
}

void set_stored(ParamCount& c, const std::vector<TensorInfo>& stored) {
  c.stored_bytes = 0;
  c.stored_dtypes.clear();
  for (const auto& t : stored) {
    c.stored_bytes += t.data_bytes;
    add_dtype(c.stored_dtypes, t.dtype, t.numel(), t.data_bytes);
  }
  sort_dtypes(c.stored_dtypes);
}

}  // namespace

ParamCount count_from_model(const ArchModel& model, bool details) {
  ParamCount c;
  c.basis = "config";
  if (details) c.tensors = model.tensors;
  c.tied = model.tied;
  for (const auto& t : model.tensors) {
    c.total_params += t.numel();
    c.total_bytes += t.data_bytes;
    add_dtype(c.dtypes, t.dtype, t.numel(), t.data_bytes);
  }
  for (const auto& a : model.tied) c.tied_params += a.numel;
  sort_dtypes(c.dtypes);
  if (model.quant && !details) {
    check_storable(model.tensors, *model.quant, model.facts.traits.conv1d_weights);
    c.quant_method = model.quant->method_name;
  } else if (model.quant) {
    StoredTensors s = stored_tensors(model.tensors, *model.quant, model.facts.traits.conv1d_weights);
    set_stored(c, s.tensors);
    c.stored_exact = s.exact;
    c.stored_notes = s.notes;
    c.quant_method = model.quant->method_name;
  } else if (details) {
    set_stored(c, model.tensors);
  }
  return c;
}

ParamCount count_from_tensors(std::string basis, const std::vector<TensorInfo>& tensors_in) {
  ParamCount c;
  c.basis = std::move(basis);
  c.tensors = merge_mxfp4(tensors_in);
  for (const auto& t : c.tensors) {
    auto sum = checked_add(c.total_bytes, t.data_bytes);
    if (!sum) throw Error(ErrorKind::kInvalidInput, t.file, "total tensor bytes overflow 64 bits");
    c.total_bytes = *sum;
    if (is_scale_tensor(t.name)) continue;
    c.total_params += t.numel();
    add_dtype(c.dtypes, t.dtype, t.numel(), t.data_bytes);
  }
  sort_dtypes(c.dtypes);
  set_stored(c, tensors_in);  // the header is the truth: every tensor as it lies in the file
  return c;
}

// --- module tree ---------------------------------------------------------------------------------------------------

namespace {

struct Trie {
  std::string name;
  uint64_t params = 0, bytes = 0;
  std::string leaf_sig;  // for leaves: shape and dtype
  std::vector<std::unique_ptr<Trie>> children;
  std::map<std::string, Trie*> index;
  uint32_t sig = 0;  // structural signature's id (signature()), 0 until computed

  Trie* child(const std::string& n) {
    auto it = index.find(n);
    if (it != index.end()) return it->second;
    children.push_back(std::make_unique<Trie>());
    children.back()->name = n;
    index[n] = children.back().get();
    return children.back().get();
  }
};

// Structural signatures, interned: two subtrees are alike when their ids are equal. A node's key names its
// children's ids, not their text, so an MoE layer of 256 experts is keyed in a few kB instead of its experts'
// spelled-out signatures (DeepSeek-V3's module tree took 0.25 s of string building before).
struct Signatures {
  std::map<std::string, uint32_t> ids;
};

uint32_t signature(Trie& t, Signatures& table) {
  if (t.sig) return t.sig;
  std::string key = t.leaf_sig;
  key += '(';
  for (auto& c : t.children) {
    key += is_number(c->name) ? std::string_view("#") : std::string_view(c->name);
    key += ':';
    key += std::to_string(signature(*c, table));
    key += ',';
  }
  key += ')';
  const auto next = static_cast<uint32_t>(table.ids.size() + 1);
  t.sig = table.ids.emplace(std::move(key), next).first->second;
  return t.sig;
}

ModuleNode convert(Trie& t, const std::string& path, uint64_t scale, Signatures& sigs);

// Children of a node, with runs of identical numbered children collapsed.
std::vector<ModuleNode> convert_children(Trie& t, const std::string& path, uint64_t scale, Signatures& sigs) {
  std::vector<ModuleNode> out;
  auto& ch = t.children;
  for (size_t i = 0; i < ch.size();) {
    Trie& c = *ch[i];
    const std::string cpath = path.empty() ? c.name : path + "." + c.name;
    if (c.children.empty() && (c.name == "weight" || c.name == "bias")) {
      ++i;  // a module's own weight and bias are its parameters, not rows
      continue;
    }
    if (!is_number(c.name)) {
      out.push_back(convert(c, cpath, scale, sigs));
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < ch.size() && is_number(ch[j]->name) && std::stoull(ch[j]->name) == std::stoull(ch[j - 1]->name) + 1 &&
           signature(*ch[j], sigs) == signature(c, sigs))
      ++j;
    const uint64_t n = j - i;
    if (n == 1) {
      out.push_back(convert(c, cpath, scale, sigs));
    } else {
      const std::string range = c.name + "-" + ch[j - 1]->name;
      ModuleNode m = convert(c, path + "." + range, scale * n, sigs);
      m.label = range + " (×" + std::to_string(n) + ")";
      m.repeat = n;
      out.push_back(std::move(m));
    }
    i = j;
  }
  return out;
}

ModuleNode convert(Trie& t, const std::string& path, uint64_t scale, Signatures& sigs) {
  ModuleNode m;
  m.label = t.name;
  m.path = path;
  m.params = t.params * scale;
  m.bytes = t.bytes * scale;
  m.children = convert_children(t, path, scale, sigs);
  // "layers" whose children are one collapsed run reads better as a single row: "layers 0-31 (×32)".
  if (m.children.size() == 1 && m.children[0].repeat > 1 && t.children.size() == m.children[0].repeat) {
    ModuleNode run = std::move(m.children[0]);
    run.label = t.name + " " + run.label;
    return run;
  }
  return m;
}

}  // namespace

ModuleNode module_tree(const std::vector<TensorInfo>& tensors) {
  Trie root;
  for (const auto& t : tensors) {
    Trie* node = &root;
    const uint64_t n = t.numel();
    root.params += n;
    root.bytes += t.data_bytes;
    for (const auto& part : split_dots(t.name)) {
      node = node->child(part);
      node->params += n;
      node->bytes += t.data_bytes;
    }
    node->leaf_sig = shape_to_string(t.shape) + std::string(dtype_name(t.dtype));
  }
  ModuleNode m;
  m.params = root.params;
  m.bytes = root.bytes;
  Signatures sigs;
  m.children = convert_children(root, "", 1, sigs);
  return m;
}

// --- config vs weights -----------------------------------------------------------------------------------------

std::vector<std::string> collapse_names(const std::vector<std::string>& names, size_t max_lines) {
  // pattern (numbers replaced by '#') -> per numeric position, the set of values seen; in first-seen order
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::set<uint64_t>>> values;
  std::map<std::string, size_t> counts;
  for (const auto& name : names) {
    auto parts = split_dots(name);
    std::string pattern;
    std::vector<uint64_t> nums;
    for (const auto& p : parts) {
      if (is_number(p) && p.size() < 19) {
        nums.push_back(std::stoull(p));
        pattern += (pattern.empty() ? "" : ".") + std::string("#");
      } else {
        pattern += (pattern.empty() ? "" : ".") + p;
      }
    }
    if (!values.count(pattern)) {
      order.push_back(pattern);
      values[pattern].resize(nums.size());
    }
    for (size_t i = 0; i < nums.size(); ++i) values[pattern][i].insert(nums[i]);
    ++counts[pattern];
  }
  std::vector<std::string> out;
  for (const auto& pattern : order) {
    if (out.size() + 1 >= max_lines && order.size() > max_lines) {
      out.push_back("... and " + std::to_string(order.size() - out.size()) + " more patterns");
      break;
    }
    std::string line;
    size_t k = 0;
    for (const auto& p : split_dots(pattern)) {
      if (!line.empty()) line += ".";
      if (p != "#") {
        line += p;
        continue;
      }
      const auto& set = values[pattern][k++];
      if (set.size() == 1) {
        line += std::to_string(*set.begin());
      } else {
        bool contiguous = *set.rbegin() - *set.begin() + 1 == set.size();
        line += contiguous ? "{" + std::to_string(*set.begin()) + "-" + std::to_string(*set.rbegin()) + "}"
                           : "{" + std::to_string(set.size()) + " values}";
      }
    }
    if (counts[pattern] > 1) line += "  (" + std::to_string(counts[pattern]) + " tensors)";
    out.push_back(line);
  }
  return out;
}

WeightsComparison compare_with_weights(const ArchModel& model, const std::vector<TensorInfo>& weights_in) {
  WeightsComparison c;
  const std::vector<TensorInfo> weights = merge_mxfp4(weights_in);
  std::map<std::string, const TensorInfo*> ours;
  for (const auto& t : model.tensors) ours[t.name] = &t;
  std::set<std::string> aliases;
  for (const auto& a : model.tied) aliases.insert(a.alias);
  std::set<std::string> seen;
  std::vector<std::string> unexplained, missing;
  for (const auto& w : weights) {
    if (aliases.count(w.name)) continue;  // some exporters write the tied copy too
    if (is_scale_tensor(w.name)) continue;
    auto it = ours.find(w.name);
    if (it == ours.end()) {
      unexplained.push_back(w.name);
      c.unexplained_params += w.numel();
      continue;
    }
    seen.insert(w.name);
    // Packed formats reorder dimensions; for them only the element count must agree.
    const bool packed = w.dtype == DType::MXFP4;
    if (packed ? w.numel() != it->second->numel() : w.shape != it->second->shape)
      c.shape_mismatch.push_back(w.name + ": config " + shape_to_string(it->second->shape) + " vs weights " + shape_to_string(w.shape));
  }
  for (const auto& t : model.tensors)
    if (!seen.count(t.name)) {
      missing.push_back(t.name);
      c.missing_params += t.numel();
    }
  c.unexplained = collapse_names(unexplained);
  c.missing = collapse_names(missing);
  c.same_count = unexplained.empty() && missing.empty() && c.shape_mismatch.empty();
  return c;
}

std::vector<std::string> compare_stored(const std::vector<TensorInfo>& derived, const std::vector<TensorInfo>& header) {
  std::map<std::string, const TensorInfo*> theirs;
  for (const auto& t : header) theirs[t.name] = &t;
  std::set<std::string> seen;
  std::vector<std::string> missing, extra, differ;
  for (const auto& t : derived) {
    auto it = theirs.find(t.name);
    if (it == theirs.end()) {
      missing.push_back(t.name);
      continue;
    }
    seen.insert(t.name);
    if (it->second->dtype != t.dtype || it->second->shape != t.shape)
      differ.push_back(fmt::format("{}: derived {} {} vs header {} {}", t.name, dtype_name(t.dtype), shape_to_string(t.shape),
                                   dtype_name(it->second->dtype), shape_to_string(it->second->shape)));
  }
  for (const auto& t : header)
    if (!seen.count(t.name)) extra.push_back(t.name);
  std::vector<std::string> out;
  for (const auto& n : collapse_names(missing)) out.push_back("derived, not in the header: " + n);
  for (const auto& n : collapse_names(extra)) out.push_back("in the header, not derived: " + n);
  if (differ.size() > 12) {
    out.insert(out.end(), differ.begin(), differ.begin() + 11);
    out.push_back(fmt::format("... and {} more differences", differ.size() - 11));
  } else {
    out.insert(out.end(), differ.begin(), differ.end());
  }
  return out;
}

// --- the report ------------------------------------------------------------------------------------------------

ParamsReport count_params(ModelSource source, bool details) {
  ParamsReport r;
  if (source.config) {
    try {
      r.model = model_from_config(*source.config);
      r.from_config = count_from_model(*r.model, details);
    } catch (const Error& e) {
      // An unknown architecture is not fatal when weights can be counted instead.
      if (e.kind() != ErrorKind::kUnsupported || (!source.safetensors && !source.gguf)) throw;
      r.config_error = e.what();
    }
  }
  if (source.safetensors) r.from_weights = count_from_tensors("safetensors", source.safetensors->tensors);
  else if (source.gguf) r.from_weights = count_from_tensors("gguf", source.gguf->tensors);
  if (r.model && source.safetensors) {
    r.comparison = compare_with_weights(*r.model, source.safetensors->tensors);
    if (r.model->quant) {
      r.comparison->stored_checked = true;
      std::vector<TensorInfo> derived = stored_tensors(r.model->tensors, *r.model->quant, r.model->facts.traits.conv1d_weights).tensors;
      // tied copies some exporters write are not part of the derived list
      std::vector<TensorInfo> header = source.safetensors->tensors;
      std::erase_if(header, [&](const TensorInfo& t) {
        return std::any_of(r.model->tied.begin(), r.model->tied.end(), [&](const TiedAlias& a) { return a.alias == t.name; });
      });
      r.comparison->stored_mismatch = compare_stored(derived, header);
      // the stored list supersedes the parameter-name comparison, which cannot explain packed tensors
      WeightsComparison& c = *r.comparison;
      c.unexplained.clear();
      c.missing.clear();
      c.shape_mismatch.clear();
      c.unexplained_params = c.missing_params = 0;
      c.same_count = c.stored_mismatch.empty();
    }
  }
  if (!r.from_config && !r.from_weights) throw Error(ErrorKind::kNotFound, source.spec, "nothing to count");
  r.source = std::move(source);
  return r;
}

ParamsReport count_params(const std::string& spec, const SourceOptions& options) {
  return count_params(open_source(spec, options));
}

}  // namespace llmem
