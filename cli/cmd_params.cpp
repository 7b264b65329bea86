// llmem params SOURCE: exact parameter counts with a module breakdown.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "llmem/params.hpp"
#include "source_flags.hpp"
#include "llmem/units.hpp"

namespace llmem::cli {
namespace {

using nlohmann::json;

json count_json(const ParamCount& c) {
  json dt = json::array();
  for (const auto& d : c.dtypes)
    dt.push_back({{"dtype", dtype_name(d.dtype)}, {"params", d.params}, {"bytes", d.bytes},
                  {"bits_per_param", d.params ? 8.0 * static_cast<double>(d.bytes) / static_cast<double>(d.params) : 0.0}});
  json tied = json::array();
  for (const auto& t : c.tied) tied.push_back({{"alias", t.alias}, {"target", t.target}, {"params", t.numel}});
  return {{"basis", c.basis},           {"total_params", c.total_params}, {"total_params_with_tied", c.params_with_tied()},
          {"tensors", c.tensors.size()}, {"tied", tied},                   {"dtypes", dt},
          {"total_bytes", c.total_bytes}};
}

json tree_json(const ModuleNode& n) {
  json children = json::array();
  for (const auto& c : n.children) children.push_back(tree_json(c));
  return {{"name", n.label}, {"path", n.path}, {"params", n.params}, {"bytes", n.bytes}, {"repeat", n.repeat}, {"children", children}};
}

double round2(double x) { return static_cast<double>(static_cast<int64_t>(x * 100.0 + 0.5)) / 100.0; }

json report_json(const ParamsReport& r) {
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
  j["memory_follows"] = "total_params";  // tied copies share storage: memory follows the unique count
  j["config"] = r.from_config ? count_json(*r.from_config) : json(nullptr);
  j["weights"] = r.from_weights ? count_json(*r.from_weights) : json(nullptr);
  if (r.comparison) {
    const auto& c = *r.comparison;
    j["comparison"] = {{"match", c.same_count},           {"unexplained_tensors", c.unexplained},
                       {"missing_tensors", c.missing},     {"shape_mismatches", c.shape_mismatch},
                       {"unexplained_params", c.unexplained_params}, {"missing_params", c.missing_params}};
  } else {
    j["comparison"] = nullptr;
  }
  j["config_error"] = r.config_error ? json(*r.config_error) : json(nullptr);
  j["notes"] = r.model ? json(r.model->notes) : json::array();
  j["modules"] = tree_json(module_tree(p.tensors));
  return j;
}

void print_tree(const ModuleNode& n, int depth, int max_depth, uint64_t total, const std::string& indent) {
  for (const auto& c : n.children) {
    std::string label = indent + c.label;
    if (label.size() > 46) label = label.substr(0, 45) + "…";
    fmt::print("{:<47}{:>17}{:>8.1f}%{:>12}\n", label, format_thousands(c.params),
               total ? 100.0 * static_cast<double>(c.params) / static_cast<double>(total) : 0.0, format_bytes(c.bytes));
    if (depth + 1 < max_depth) print_tree(c, depth + 1, max_depth, total, indent + "  ");
  }
}

void print_count_line(const char* what, const ParamCount& c) {
  fmt::print("{:<22}{:>17}  ({} params)\n", what, format_thousands(c.total_params), format_params_short(c.total_params));
}

void print_report(const ParamsReport& r, int depth) {
  const ParamCount& p = r.primary();
  std::string what = source_kind_name(r.source.kind);
  if (r.model) what += ", " + r.model->facts.family + (r.model->facts.architecture.empty() ? "" : " / " + r.model->facts.architecture);
  fmt::print("{}  ({})\n\n", r.source.display_name(), what);
  if (depth > 0) {
    fmt::print("{:<47}{:>17}{:>9}{:>12}\n", "Module", "Params", "Share", "Bytes");
    fmt::print("{}\n", std::string(85, '-'));
    print_tree(module_tree(p.tensors), 0, depth, p.total_params, "");
    fmt::print("{}\n", std::string(85, '-'));
  }
  fmt::print("{:<22}{:>17}  ({:.2f} B, B = 10^9 params)\n", "Total params:", format_thousands(p.total_params),
             static_cast<double>(p.total_params) / 1e9);
  if (!p.tied.empty()) {
    fmt::print("{:<22}{:>17}  (counting tied copies twice, as torchinfo < 1.8.1 did)\n", "With tied copies:",
               format_thousands(p.params_with_tied()));
    for (const auto& t : p.tied)
      fmt::print("  tied: {} = {} ({} params, stored once; memory follows the unique count)\n", t.alias, t.target,
                 format_thousands(t.numel));
  } else {
    fmt::print("{:<22}{:>17}  (no tied parameters)\n", "With tied copies:", format_thousands(p.params_with_tied()));
  }
  for (const auto& d : p.dtypes)
    fmt::print("{:<22}{:>17}  {} params, {:.2f} bits each\n", fmt::format("Bytes as {}:", dtype_name(d.dtype)),
               format_bytes(d.bytes), format_thousands(d.params),
               d.params ? 8.0 * static_cast<double>(d.bytes) / static_cast<double>(d.params) : 0.0);
  if (r.from_config && r.from_weights) {
    fmt::print("\nBoth counted:\n");
    print_count_line("  from config.json:", *r.from_config);
    print_count_line(fmt::format("  from {}:", r.from_weights->basis).c_str(), *r.from_weights);
    if (r.comparison) {
      const auto& c = *r.comparison;
      if (c.same_count) {
        fmt::print("  every weight tensor is explained by the architecture, with the same shape\n");
      } else {
        if (!c.unexplained.empty()) {
          fmt::print("  in the weights but not in the architecture ({} params):\n", format_thousands(c.unexplained_params));
          for (const auto& n : c.unexplained) fmt::print("    {}\n", n);
        }
        if (!c.missing.empty()) {
          fmt::print("  in the architecture but not in the weights ({} params):\n", format_thousands(c.missing_params));
          for (const auto& n : c.missing) fmt::print("    {}\n", n);
        }
        for (const auto& n : c.shape_mismatch) fmt::print("  shape differs: {}\n", n);
      }
    }
  }
  if (r.config_error) fmt::print("\nconfig.json not used: {}\n", *r.config_error);
  if (r.model)
    for (const auto& n : r.model->notes) fmt::print("note: {}\n", n);
  if (r.source.header_bytes_read)
    fmt::print("\nRead {} of headers from {} file(s); no tensor data was read.\n", format_bytes(r.source.header_bytes_read),
               r.source.files_read.size());
}

const bool registered = register_command(10, [](CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("params", "Exact parameter count with a module breakdown (no weights are read)");
  auto source = std::make_shared<std::string>();
  auto src_opts = std::make_shared<SourceCliOptions>();
  auto depth = std::make_shared<int>(3);
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("SOURCE", *source,
                  "config.json, a .safetensors or .gguf file, a model directory, or org/name[@REV]: from the Hugging Face "
                  "cache, the embedded catalog, or the Hub (headers only; org/name/FILE.gguf for a GGUF repo)")
      ->required();
  cmd->add_option("--depth", *depth, "Module tree depth (0 = totals only)")->check(CLI::Range(0, 32))->capture_default_str();
  add_source_options(cmd, *src_opts);
  cmd->add_flag("--json", *as_json, "Machine-readable output (schema: docs/json.md)");
  cmd->footer(
      "Examples:\n"
      "  llmem params TinyLlama/TinyLlama-1.1B-Chat-v1.0\n"
      "  llmem params ./Mistral-7B-v0.1              (config.json and safetensors headers, compared)\n"
      "  llmem params model-Q4_K_M.gguf --depth 1\n"
      "  llmem params facebook/xglm-4.5B --json | jq .total_params\n"
      "  llmem params meta-llama/Llama-3.1-405B --verbose   (from the Hub: config and 191 shard headers, ~300 KB)\n"
      "  llmem params unsloth/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf");
  cmd->callback([=, &exit_code] {
    ParamsReport r = count_params(*source, src_opts->to_options());
    print_source_verbose(r.source, *src_opts);
    if (*as_json) fmt::print("{}\n", report_json(r).dump(2));
    else print_report(r, *depth);
    exit_code = 0;
  });
});

}  // namespace
}  // namespace llmem::cli
