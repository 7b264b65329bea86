// llmem validate FILE.jsonl...: every measured scenario beside llmem's estimate of it, and the error summary
// (validate.hpp).
#include <fmt/core.h>

#include "command.hpp"
#include "estimate_flags.hpp"
#include "llmem/validate.hpp"
#include "llmem/validate_report.hpp"

namespace llmem::cli {
namespace {

const bool registered = register_command(30, [](CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("validate", "Compare llmem's estimates with GPU measurements (bench/data/*.jsonl)");
  auto files = std::make_shared<std::vector<std::string>>();
  auto markdown = std::make_shared<bool>(false);
  auto quiet = std::make_shared<bool>(false);
  auto as_json = std::make_shared<bool>(false);
  auto gpu = std::make_shared<std::string>();
  cmd->add_option("FILES", *files, "JSON Lines written by bench/gpu/measure_transformers.py or measure_llamacpp.py, or public vLLM start-up logs (bench/data/vllm_public_logs.jsonl)")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--markdown", *markdown, "Print only the summary as a Markdown table (for the README)");
  cmd->add_flag("--summary", *quiet, "Print only the summary");
  cmd->add_flag("--json", *as_json, "Machine-readable rows and summary");
  cmd->add_option("--gpu", *gpu, "GPU profile for the estimates (default: the reference GPU)");
  cmd->footer("Examples:\n  llmem validate bench/data/transformers_memory.jsonl\n  llmem validate bench/data/vllm_public_logs.jsonl");
  cmd->callback([=, &exit_code] {
    exit_code = 0;
    const ValidationReport report = with_flag_names({{"gpu", "--gpu"}}, [&] { return validate_measurements(*files, *gpu); });
    if (*as_json) {
      fmt::print("{}\n", report::validation_json(report).dump(2));
      return;
    }
    const auto view = *markdown ? report::ValidationView::kMarkdown : *quiet ? report::ValidationView::kSummary : report::ValidationView::kTable;
    fmt::print("{}", report::validation_text(report, view));
  });
});

}  // namespace
}  // namespace llmem::cli
