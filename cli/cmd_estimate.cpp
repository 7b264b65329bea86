// llmem estimate SOURCE: an itemised GPU memory estimate for inference or training.
#include <fmt/core.h>

#include "command.hpp"
#include "estimate_flags.hpp"
#include "llmem/error.hpp"
#include "llmem/estimate.hpp"
#include "llmem/estimate_report.hpp"

namespace llmem::cli {
namespace {

struct EstimateCliOptions {
  bool json = false;
  bool list_gpus = false;
  bool list_quants = false;
  bool check = false;
  bool verbose = false;
};

const bool registered = register_command(20, [](CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("estimate", "Itemised GPU memory estimate: transformers inference or fine-tuning, llama.cpp, vLLM serving");
  auto flags = std::make_shared<EstimateFlags>();
  auto o = std::make_shared<EstimateCliOptions>();
  add_estimate_flags(cmd, *flags);
  cmd->add_flag("--json", o->json, "Machine-readable output (schema: docs/json.md); also for --list-gpus and --list-quants");
  cmd->add_flag("--check", o->check, "Exit 3 when the estimate does not fit the GPU's budget (for scripts)");
  cmd->add_flag("--list-gpus", o->list_gpus, "List the GPU catalog (by memory) and exit");
  cmd->add_flag("--list-quants", o->list_quants, "List the llama.cpp quantisation schemes --quant knows and exit");
  cmd->footer(
      "Examples:\n"
      "  llmem estimate microsoft/phi-2                  the study's scenario: fp16, 6-token prompt\n"
      "  llmem estimate mistralai/Mistral-7B-v0.1 --prompt 8192 --batch 4 --gpu A100-80GB\n"
      "  llmem estimate Qwen/Qwen2.5-7B-Instruct --no-cache --prompt 4096 --attn eager\n"
      "  llmem estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --train full --precision amp-bf16 --grad-ckpt\n"
      "  llmem estimate meta-llama/Llama-3.1-8B --train lora --lora-r 16 --json | jq .process_peak_bytes\n"
      "  llmem estimate mistralai/Mistral-7B-v0.1 --engine llamacpp --quant Q4_K_M --ctx 8192\n"
      "  llmem estimate model-Q4_K_M.gguf --ctx 32768 --ngl 20 --cache-type-k q8_0 --flash-attn on\n"
      "  llmem estimate meta-llama/Llama-3.1-8B --engine vllm --gpu RTX-3090 --max-model-len 16384\n"
      "  llmem estimate Qwen/Qwen3-30B-A3B --engine vllm --gpu H100-80GB-HBM3 --tensor-parallel-size 2\n"
      "  llmem estimate openai/gpt-oss-20b --engine vllm --vram 79.15GiB --gpu-memory-utilization 0.65\n"
      "  llmem estimate microsoft/phi-2 --gpu RTX-4090 --check && echo fits\n"
      "\n"
      "Flags apply to one engine and mode: --prompt, --new-tokens and --no-cache to transformers inference; --seq, "
      "--precision, --optimizer and --grad-ckpt to --train; --lora-* to --train lora; --quant, --ctx, --ngl, "
      "--cache-type-*, --flash-attn, --parallel and --tensors to llama.cpp; the vLLM flags to vLLM. A flag given "
      "where it does not apply is an error (docs/cli.md). A .gguf SOURCE runs under llama.cpp unless --engine says "
      "otherwise. Sizes need a unit (24GiB = 24 x 2^30 bytes, 24GB = 24 x 10^9 bytes).\n"
      "Exit codes: 0 (with --check: it fits), 1 runtime failure, 2 bad input or usage, 3 with --check: it does not "
      "fit.");
  cmd->callback([=, &exit_code] {
    exit_code = 0;
    if (o->list_quants) {
      const auto schemes = find_engine("llamacpp").weight_schemes();
      if (o->json) fmt::print("{}\n", report::weight_schemes_json(schemes).dump(2));
      else fmt::print("{}", report::weight_schemes_text(schemes));
      return;
    }
    if (o->list_gpus) {
      if (o->json) fmt::print("{}\n", report::gpu_catalog_json().dump(2));
      else fmt::print("{}", report::gpu_catalog_text(true));
      return;
    }
    if (flags->request.source.empty()) throw Error(ErrorKind::kUsage, "", "estimate needs a SOURCE (or --list-gpus, --list-quants)");
    const EstimateResult result = with_flag_names(estimate_flag_names(), [&] { return estimate(estimate_request(*flags)); });
    print_warnings(estimate_flag_names(), result.warnings);
    if (o->json) fmt::print("{}\n", report::estimate_json(result).dump(2));
    else fmt::print("{}", report::estimate_text(result));
    if (o->check && !report::estimate_fits(result)) exit_code = 3;
  });
});

}  // namespace
}  // namespace llmem::cli
