// llmem catalog / llmem families: what llmem knows without any file.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "llmem/arch.hpp"
#include "llmem/catalog.hpp"
#include "llmem/params.hpp"
#include "llmem/units.hpp"

namespace llmem::cli {
namespace {

using nlohmann::json;

const bool catalog_registered = register_command(80, [](CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("catalog", "Models whose config.json is embedded in llmem (usable as SOURCE by name)");
  auto as_json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *as_json, "Machine-readable output");
  cmd->footer("Examples:\n  llmem catalog\n  llmem params $(llmem catalog --json | jq -r '.models[0].id')");
  cmd->callback([=, &exit_code] {
    json models = json::array();
    if (!*as_json) fmt::print("{:<40} {:<12} {:>18} {:>9}\n", "Model", "Family", "Params", "B");
    for (const auto& e : catalog()) {
      ArchModel m = model_from_config(HfConfig::parse(std::string(e.config_json), "catalog:" + e.id));
      ParamCount c = count_from_model(m);
      if (*as_json)
        models.push_back({{"id", e.id}, {"family", m.facts.family}, {"model_type", m.facts.model_type}, {"total_params", c.total_params}});
      else
        fmt::print("{:<40} {:<12} {:>18} {:>9.2f}\n", e.id, m.facts.family, format_thousands(c.total_params),
                   static_cast<double>(c.total_params) / 1e9);
    }
    if (*as_json) fmt::print("{}\n", json{{"schema_version", 1}, {"models", models}}.dump(2));
    exit_code = 0;
  });
});

const bool families_registered = register_command(81, [](CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("families", "Architectures llmem can count from config.json");
  auto as_json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *as_json, "Machine-readable output");
  cmd->callback([=, &exit_code] {
    json out = json::array();
    for (const auto& f : known_families()) {
      if (*as_json) {
        out.push_back({{"family", f.name}, {"model_types", f.model_types}, {"architectures", f.architectures}});
        continue;
      }
      std::string types;
      for (const auto& t : f.model_types) types += (types.empty() ? "" : ", ") + t;
      fmt::print("{:<12} model_type: {}\n", f.name, types);
    }
    if (*as_json) fmt::print("{}\n", json{{"schema_version", 1}, {"families", out}}.dump(2));
    exit_code = 0;
  });
});

}  // namespace
}  // namespace llmem::cli
