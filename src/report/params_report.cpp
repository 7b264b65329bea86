// Parameter counts rendered (params_report.hpp).
#include "llmem/params_report.hpp"

#include "llmem/estimate_report.hpp"
#include "llmem/units.hpp"
#include "text.hpp"

namespace llmem::report {

using nlohmann::json;

namespace {

json count_json(const ParamCount& c) {
  json dt = json::array();
  for (const auto& d : c.dtypes)
    dt.push_back({{"dtype", dtype_name(d.dtype)}, {"params", d.params}, {"bytes", d.bytes},
                  {"bits_per_param", d.params ? 8.0 * static_cast<double>(d.bytes) / static_cast<double>(d.params) : 0.0}});
  json tied = json::array();
  for (const auto& t : c.tied) tied.push_back({{"alias", t.alias}, {"target", t.target}, {"params", t.numel}});
  json stored = json::array();
  for (const auto& d : c.stored_dtypes)
    stored.push_back({{"dtype", dtype_name(d.dtype)}, {"elements", d.params}, {"bytes", d.bytes}});
  return {{"basis", c.basis},           {"total_params", c.total_params}, {"total_params_with_tied", c.params_with_tied()},
          {"tensors", c.tensors.size()}, {"tied", tied},                   {"dtypes", dt},
          {"total_bytes", c.total_bytes}, {"stored_bytes", c.stored_bytes}, {"stored_dtypes", stored},
          {"stored_exact", c.stored_exact}, {"quant_method", c.quant_method.empty() ? json(nullptr) : json(c.quant_method)}};
}

json tree_json(const ModuleNode& n) {
  json children = json::array();
  for (const auto& c : n.children) children.push_back(tree_json(c));
  return {{"name", n.label}, {"path", n.path}, {"params", n.params}, {"bytes", n.bytes}, {"repeat", n.repeat}, {"children", children}};
}

double round2(double x) { return static_cast<double>(static_cast<int64_t>(x * 100.0 + 0.5)) / 100.0; }

void append_tree(std::string& out, const ModuleNode& n, int depth, int max_depth, uint64_t total, const std::string& indent) {
  for (const auto& c : n.children) {
    std::string label = indent + c.label;
    if (label.size() > 46) label = label.substr(0, 45) + "…";
    append(out, "{:<47}{:>17}{:>8.1f}%{:>12}\n", label, format_thousands(c.params),
           total ? 100.0 * static_cast<double>(c.params) / static_cast<double>(total) : 0.0, format_bytes(c.bytes));
    if (depth + 1 < max_depth) append_tree(out, c, depth + 1, max_depth, total, indent + "  ");
  }
}

void append_count_line(std::string& out, const std::string& what, const ParamCount& c) {
  append(out, "{:<22}{:>17}  ({} params)\n", what, format_thousands(c.total_params), format_params_short(c.total_params));
}

void append_comparison(std::string& out, const WeightsComparison& c) {
  if (c.same_count) {
    append(out, "{}", c.stored_checked ? "  every weight tensor is the one quantization_config derives, with the same dtype and shape\n"
                                 : "  every weight tensor is explained by the architecture, with the same shape\n");
    return;
  }
  if (!c.unexplained.empty()) {
    append(out, "  in the weights but not in the architecture ({} params):\n", format_thousands(c.unexplained_params));
    for (const auto& n : c.unexplained) append(out, "    {}\n", n);
  }
  if (!c.missing.empty()) {
    append(out, "  in the architecture but not in the weights ({} params):\n", format_thousands(c.missing_params));
    for (const auto& n : c.missing) append(out, "    {}\n", n);
  }
  for (const auto& n : c.shape_mismatch) append(out, "  shape differs: {}\n", n);
  if (c.stored_checked && c.stored_mismatch.empty())
    append(out, "  the quantised tensors derived from quantization_config agree with the header\n");
  for (const auto& n : c.stored_mismatch) append(out, "  stored: {}\n", n);
}

// A quantised checkpoint: its stored bytes per dtype (scales and zero points included).
void append_stored(std::string& out, const ParamCount& p) {
  append(out, "{:<22}{:>17}  {} checkpoint, scales included{}\n", "Stored bytes:", format_bytes(p.stored_bytes),
         p.quant_method, p.stored_exact ? "" : " (approximate: see note)");
  for (const auto& d : p.stored_dtypes)
    append(out, "{:<22}{:>17}  {} elements\n", fmt::format("  stored as {}:", dtype_name(d.dtype)), format_bytes(d.bytes),
           format_thousands(d.params));
  if (!p.stored_exact)
    append(out, "note: bitsandbytes' quant_state text holds absmax's mean as Python prints it; its length (taken as 19 "
                "characters) varies by a few bytes per layer\n");
  for (const auto& n : p.stored_notes) out += paragraph("note: ", n, 6);
}

void append_totals(std::string& out, const ParamCount& p) {
  append(out, "{:<22}{:>17}  ({:.2f} B, B = 10^9 params)\n", "Total params:", format_thousands(p.total_params),
         static_cast<double>(p.total_params) / 1e9);
  if (!p.tied.empty()) {
    append(out, "{:<22}{:>17}  (counting tied copies twice, as torchinfo < 1.8.1 did)\n", "With tied copies:",
           format_thousands(p.params_with_tied()));
    for (const auto& t : p.tied)
      append(out, "  tied: {} = {} ({} params, stored once; memory follows the unique count)\n", t.alias, t.target,
             format_thousands(t.numel));
  } else {
    append(out, "{:<22}{:>17}  (no tied parameters)\n", "With tied copies:", format_thousands(p.params_with_tied()));
  }
  for (const auto& d : p.dtypes)
    append(out, "{:<22}{:>17}  {} params, {:.2f} bits each\n",
           fmt::format("{} {}:", p.quant_method.empty() ? "Bytes as" : "Unquantised", dtype_name(d.dtype)),
           format_bytes(d.bytes), format_thousands(d.params),
           d.params ? 8.0 * static_cast<double>(d.bytes) / static_cast<double>(d.params) : 0.0);
}

// A GGUF of llama.cpp's multimodal projector (general.architecture "clip", what convert_hf_to_gguf.py --mmproj
// writes): its tensors are a vision tower and projector, counted as they are; the note says what the file is.
std::string projector_note(const ParamsReport& r) {
  if (!r.source.gguf || r.source.gguf->architecture() != "clip") return "";
  std::string projector;
  for (const char* key : {"clip.projector_type", "clip.vision.projector_type"}) {
    const auto it = r.source.gguf->metadata.find(key);
    if (it != r.source.gguf->metadata.end() && it->is_string()) projector = it->get<std::string>();
  }
  return "a llama.cpp multimodal projector (mmproj GGUF, general.architecture clip" +
         (projector.empty() ? std::string() : ", projector " + projector) +
         "): the vision encoder and projector that llama-server loads with --mmproj next to a text model";
}

}  // namespace

json params_json(const ParamsReport& r) {
  const ParamCount& p = r.primary();
  json j;
  j["schema_version"] = 1;
  j["source"] = source_json(r.source);
  j["architecture"] = r.model ? json{{"family", r.model->facts.family},
                                     {"model_type", r.model->facts.model_type},
                                     {"class", r.model->facts.architecture}}
                              : json(nullptr);
  j["basis"] = p.basis;
  j["total_params"] = p.total_params;
  j["total_params_with_tied"] = p.params_with_tied();
  j["total_params_billion"] = round2(static_cast<double>(p.total_params) / 1e9);
  j["tied"] = count_json(p)["tied"];
  j["dtypes"] = count_json(p)["dtypes"];
  j["total_bytes"] = p.total_bytes;
  // the header is the truth where there is one
  const ParamCount& st = r.from_weights ? *r.from_weights : p;
  j["stored_bytes"] = st.stored_bytes;
  j["stored_dtypes"] = count_json(st)["stored_dtypes"];
  j["stored_basis"] = st.basis;
  j["quant_method"] = r.from_config && !r.from_config->quant_method.empty() ? json(r.from_config->quant_method) : json(nullptr);
  j["memory_follows"] = "total_params";  // tied copies share storage: memory follows the unique count
  j["config"] = r.from_config ? count_json(*r.from_config) : json(nullptr);
  j["weights"] = r.from_weights ? count_json(*r.from_weights) : json(nullptr);
  if (r.comparison) {
    const auto& c = *r.comparison;
    j["comparison"] = {{"match", c.same_count},           {"unexplained_tensors", c.unexplained},
                       {"missing_tensors", c.missing},     {"shape_mismatches", c.shape_mismatch},
                       {"unexplained_params", c.unexplained_params}, {"missing_params", c.missing_params}};
    if (c.stored_checked) j["comparison"]["stored_mismatches"] = c.stored_mismatch;
  } else {
    j["comparison"] = nullptr;
  }
  j["config_error"] = r.config_error ? json(*r.config_error) : json(nullptr);
  j["notes"] = r.model ? json(r.model->notes) : json::array();
  if (const std::string note = projector_note(r); !note.empty()) j["notes"].push_back(note);
  j["modules"] = tree_json(module_tree(p.tensors));
  return j;
}

std::string params_text(const ParamsReport& r, int depth) {
  const ParamCount& p = r.primary();
  std::string out;
  std::string what = source_kind_name(r.source.kind);
  if (r.model) what += ", " + r.model->facts.family + (r.model->facts.architecture.empty() ? "" : " / " + r.model->facts.architecture);
  append(out, "{}  ({})\n\n", r.source.display_name(), what);
  if (depth > 0) {
    append(out, "{:<47}{:>17}{:>9}{:>12}\n", "Module", "Params", "Share", "Bytes");
    append(out, "{}\n", std::string(85, '-'));
    append_tree(out, module_tree(p.tensors), 0, depth, p.total_params, "");
    append(out, "{}\n", std::string(85, '-'));
  }
  append_totals(out, p);
  if (r.from_config && !r.from_config->quant_method.empty()) append_stored(out, *r.from_config);
  if (r.from_config && r.from_weights) {
    append(out, "\nBoth counted:\n");
    append_count_line(out, "  from config.json:", *r.from_config);
    append_count_line(out, fmt::format("  from {}:", r.from_weights->basis), *r.from_weights);
    if (r.comparison) append_comparison(out, *r.comparison);
  }
  if (r.config_error) append(out, "\nconfig.json not used: {}\n", *r.config_error);
  if (r.model)
    for (const auto& n : r.model->notes) out += paragraph("note: ", n, 6);
  if (const std::string note = projector_note(r); !note.empty()) out += "\n" + paragraph("note: ", note, 6);
  if (r.source.header_bytes_read)
    append(out, "\nRead {} of headers from {} file(s); no tensor data was read.\n", format_bytes(r.source.header_bytes_read),
           r.source.files_read.size());
  return out;
}

json catalog_json(const std::vector<CatalogModel>& models) {
  json list = json::array();
  for (const auto& m : models)
    list.push_back({{"id", m.id}, {"family", m.family}, {"model_type", m.model_type}, {"total_params", m.params}});
  return {{"schema_version", 1}, {"models", list}};
}

std::string catalog_text(const std::vector<CatalogModel>& models) {
  std::string out;
  append(out, "{:<40} {:<12} {:>18} {:>9}\n", "Model", "Family", "Params", "B");
  for (const auto& m : models)
    append(out, "{:<40} {:<12} {:>18} {:>9.2f}\n", m.id, m.family, format_thousands(m.params), static_cast<double>(m.params) / 1e9);
  return out;
}

json families_json(const std::vector<FamilyInfo>& families) {
  json list = json::array();
  for (const auto& f : families) list.push_back({{"family", f.name}, {"model_types", f.model_types}, {"architectures", f.architectures}});
  return {{"schema_version", 1}, {"families", list}};
}

std::string families_text(const std::vector<FamilyInfo>& families) {
  std::string out;
  for (const auto& f : families) {
    std::string types;
    for (const auto& t : f.model_types) types += (types.empty() ? "" : ", ") + t;
    append(out, "{:<12} model_type: {}\n", f.name, types);
  }
  return out;
}

}  // namespace llmem::report
