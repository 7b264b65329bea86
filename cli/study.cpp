// llmem study: the seed study's table, reproduced for the embedded catalog.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "llmem/study.hpp"
#include "llmem/units.hpp"

namespace llmem::cli {
namespace {

using nlohmann::json;

std::string opt_fixed(bool present, double v, int decimals) {
  return present ? fmt::format("{:.{}f}", v, decimals) : std::string("—");
}

void print_table(const std::vector<StudyRow>& rows) {
  fmt::print("The seed study (fp16, transformers, \"Hello, world!\" and 20 tokens of generation), reproduced.\n");
  fmt::print("Params: exact PyTorch counts from each model's config.json. B = 10^9 params. Memory in GiB = 2^30 bytes.\n\n");
  fmt::print("{:<36} {:>15} {:>6} {:>7} {:>8} {:>8} {:>8} {:>9} {:>9}\n", "Model", "Exact params", "B", "Study B",
             "fp16 wts", "2×B rule", "Study", "llmem est", "measured");
  fmt::print("{:<36} {:>15} {:>6} {:>7} {:>8} {:>8} {:>8} {:>9} {:>9}\n", "", "", "", "", "GiB", "GiB", "GiB", "GiB", "GiB");
  fmt::print("{}\n", std::string(116, '-'));
  bool any_tied_diff = false, any_impossible = false, any_missing = false;
  for (const auto& r : rows) {
    std::string mark;
    if (r.in_catalog && r.measured && r.params_with_tied != r.params &&
        std::abs(static_cast<double>(r.params_with_tied) / 1e9 - r.measured->params_billion) < 0.006) {
      mark += "†";
      any_tied_diff = true;
    }
    if (r.impossible) {
      mark += "!";
      any_impossible = true;
    }
    if (!r.in_catalog) {
      mark += "*";
      any_missing = true;
    }
    fmt::print("{:<36} {:>15} {:>6} {:>7} {:>8} {:>8} {:>8} {:>9} {:>9} {}\n", r.model.substr(0, 36),
               r.in_catalog ? format_thousands(r.params) : "—", opt_fixed(r.in_catalog, static_cast<double>(r.params) / 1e9, 2),
               opt_fixed(r.measured.has_value(), r.measured ? r.measured->params_billion : 0, 2),
               opt_fixed(r.in_catalog, static_cast<double>(r.fp16_weight_bytes) / kGiB, 2),
               opt_fixed(r.in_catalog, 2.0 * static_cast<double>(r.params) / 1e9, 2),
               opt_fixed(r.measured.has_value(), r.measured ? r.measured->memory_gib : 0, 2),
               opt_fixed(r.in_catalog, static_cast<double>(r.estimate_process_bytes) / kGiB, 2),
               opt_fixed(r.measured_process_bytes.has_value(), static_cast<double>(r.measured_process_bytes.value_or(0)) / kGiB, 2),
               mark);
  }
  fmt::print("{}\n", std::string(116, '-'));
  fmt::print("2×B rule: the study's \"2 × billions of params\", read in GiB as its chart did. llmem est: the process peak\n"
             "llmem expects for the study's scenario on an H200 (weights, KV cache, activations, caching allocator, CUDA\n"
             "context). measured: NVML per-process peak of the same scenario on an H200 (bench/data, models built with\n"
             "from_config, so tied models also briefly hold an untied LM head); GPUtil's device-wide reading counts the\n"
             "same things, plus whatever else was running.\n");
  if (any_tied_diff)
    fmt::print("† the study's torchinfo counted the tied LM head a second time (torchinfo issues #322/#377); the weights\n"
               "  are stored once, so memory follows the unique count.\n");
  if (any_impossible)
    fmt::print("! the study's reading is below the fp16 weights alone: impossible for a model fully on the GPU. A\n"
               "  whole-device \"memory used\" delta (GPUtil) is polluted by other processes and by memory freed or\n"
               "  cached before the first reading; llmem measures per process instead (llmem measure).\n");
  if (any_missing) fmt::print("* not in the embedded catalog: no config.json to count from.\n");
}

json rows_json(const std::vector<StudyRow>& rows) {
  json out = json::array();
  for (const auto& r : rows) {
    json j = {{"model", r.model}, {"in_catalog", r.in_catalog}};
    j["family"] = r.in_catalog ? json(r.family) : json(nullptr);
    j["params"] = r.in_catalog ? json(r.params) : json(nullptr);
    j["params_with_tied"] = r.in_catalog ? json(r.params_with_tied) : json(nullptr);
    j["fp16_weight_bytes"] = r.in_catalog ? json(r.fp16_weight_bytes) : json(nullptr);
    j["study"] = r.measured ? json{{"params_billion", r.measured->params_billion}, {"memory_gib", r.measured->memory_gib}}
                            : json(nullptr);
    j["study_reading_impossible"] = r.impossible;
    j["rule_2x_gib"] = r.in_catalog ? json(2.0 * static_cast<double>(r.params) / 1e9) : json(nullptr);
    j["estimate_framework_peak_bytes"] = r.in_catalog ? json(r.estimate_framework_bytes) : json(nullptr);
    j["estimate_process_peak_bytes"] = r.in_catalog ? json(r.estimate_process_bytes) : json(nullptr);
    j["measured_process_peak_bytes"] = r.measured_process_bytes ? json(*r.measured_process_bytes) : json(nullptr);
    j["measured_gpu"] = r.measured_process_bytes ? json(r.measured_gpu) : json(nullptr);
    out.push_back(j);
  }
  return out;
}

const bool registered = register_command(5, [](CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("study", "The seed study's table for the embedded catalog (no files, no GPU needed)");
  auto only_study = std::make_shared<bool>(false);
  auto as_json = std::make_shared<bool>(false);
  cmd->add_flag("--only-study", *only_study, "Only the models the study measured");
  cmd->add_flag("--json", *as_json, "Machine-readable output");
  cmd->footer("Examples:\n  llmem study\n  llmem study --only-study --json");
  cmd->callback([=, &exit_code] {
    auto rows = study_rows(!*only_study);
    if (*as_json) fmt::print("{}\n", json{{"schema_version", 1}, {"rows", rows_json(rows)}}.dump(2));
    else print_table(rows);
    exit_code = 0;
  });
});

}  // namespace
}  // namespace llmem::cli
