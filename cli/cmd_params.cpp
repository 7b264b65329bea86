// llmem params SOURCE: exact parameter counts with a module breakdown.
#include <fmt/core.h>

#include "command.hpp"
#include "llmem/params.hpp"
#include "llmem/params_report.hpp"
#include "source_flags.hpp"

namespace llmem::cli {
namespace {

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
      "  llmem params ./Mistral-7B-v0.1            config.json and safetensors headers, compared\n"
      "  llmem params model-Q4_K_M.gguf --depth 1\n"
      "  llmem params facebook/xglm-4.5B --json | jq .total_params\n"
      "  llmem params meta-llama/Llama-3.1-405B --verbose   the Hub: 191 shard headers, ~300 KB\n"
      "  llmem params unsloth/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf");
  cmd->callback([=, &exit_code] {
    ParamsReport r = count_params(*source, src_opts->to_options());
    print_source_verbose(r.source, *src_opts);
    if (*as_json) fmt::print("{}\n", report::params_json(r).dump(2));
    else fmt::print("{}", report::params_text(r, *depth));
    exit_code = 0;
  });
});

}  // namespace
}  // namespace llmem::cli
