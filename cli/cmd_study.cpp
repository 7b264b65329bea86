// llmem study: the seed study's table, reproduced for the embedded catalog (study.hpp).
#include <fmt/core.h>

#include <cstdio>

#include "command.hpp"
#include "llmem/chart.hpp"
#include "llmem/study.hpp"
#include "llmem/study_report.hpp"

namespace llmem::cli {
namespace {

const bool registered = register_command(5, [](CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("study", "The seed study's table for the embedded catalog (no files, no GPU needed)");
  auto only_study = std::make_shared<bool>(false);
  auto as_json = std::make_shared<bool>(false);
  cmd->add_flag("--only-study", *only_study, "Only the models the study measured");
  auto chart_prefix = std::make_shared<std::string>();
  cmd->add_flag("--json", *as_json, "Machine-readable output");
  cmd->add_option("--chart", *chart_prefix, "Also write the chart, memory against parameters, as PREFIX.png and PREFIX.svg");
  cmd->footer("Examples:\n  llmem study\n  llmem study --only-study --json\n  llmem study --chart build/study");
  cmd->callback([=, &exit_code] {
    const auto rows = study_rows(!*only_study);
    if (*as_json) fmt::print("{}\n", report::study_json(rows).dump(2));
    else fmt::print("{}", report::study_text(rows));
    if (!chart_prefix->empty()) {
      const chart::Chart c = report::study_chart(rows);
      chart::render_png(c, *chart_prefix + ".png", 1400, 1000);
      chart::render_svg(c, *chart_prefix + ".svg", 1400, 1000);
      // With --json the paths go to stderr, so stdout stays one JSON document.
      fmt::print(*as_json ? stderr : stdout, "\nchart: {0}.png, {0}.svg\n", *chart_prefix);
    }
    exit_code = 0;
  });
});

}  // namespace
}  // namespace llmem::cli
