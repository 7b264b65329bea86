// llmem catalog / llmem families: what llmem knows without any file.
#include <fmt/core.h>

#include "command.hpp"
#include "llmem/arch.hpp"
#include "llmem/params_report.hpp"
#include "llmem/plan.hpp"

namespace llmem::cli {
namespace {

const bool catalog_registered = register_command(80, [](CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("catalog", "Models whose config.json is embedded in llmem (usable as SOURCE by name)");
  auto as_json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *as_json, "Machine-readable output");
  cmd->footer("Examples:\n  llmem catalog\n  llmem params $(llmem catalog --json | jq -r '.models[0].id')");
  cmd->callback([=, &exit_code] {
    const std::vector<CatalogModel> models = catalog_models();
    if (*as_json) fmt::print("{}\n", report::catalog_json(models).dump(2));
    else fmt::print("{}", report::catalog_text(models));
    exit_code = 0;
  });
});

const bool families_registered = register_command(81, [](CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("families", "Architectures llmem can count from config.json");
  auto as_json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *as_json, "Machine-readable output");
  cmd->callback([=, &exit_code] {
    if (*as_json) fmt::print("{}\n", report::families_json(known_families()).dump(2));
    else fmt::print("{}", report::families_text(known_families()));
    exit_code = 0;
  });
});

}  // namespace
}  // namespace llmem::cli
