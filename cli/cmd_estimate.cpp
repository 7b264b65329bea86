// llmem estimate SOURCE: an itemised GPU memory estimate for inference or training.
#include <fmt/core.h>

#include "command.hpp"
#include "estimate_flags.hpp"
#include "llmem/error.hpp"
#include "llmem/estimate.hpp"
#include "llmem/estimate_report.hpp"

namespace llmem::cli {
namespace {

const bool registered = register_command(20, [](CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("estimate", "Itemised GPU memory estimate for inference or fine-tuning (transformers), llama.cpp or vLLM serving");
  auto flags = std::make_shared<EstimateFlags>();
  auto as_json = std::make_shared<bool>(false);
  auto list_gpus = std::make_shared<bool>(false);
  auto list_quants = std::make_shared<bool>(false);
  add_estimate_flags(cmd, *flags);
  cmd->add_flag("--json", *as_json, "Machine-readable output (framework_peak_bytes, process_peak_bytes, components)");
  cmd->add_flag("--list-gpus", *list_gpus, "List the GPU catalog and exit");
  cmd->add_flag("--list-quants", *list_quants, "List the llama.cpp quantisation schemes --quant knows and exit");
  cmd->footer(
      "Examples:\n"
      "  llmem estimate microsoft/phi-2                         the study's scenario: fp16, 6-token prompt, 20 tokens\n"
      "  llmem estimate mistralai/Mistral-7B-v0.1 --prompt 8192 --batch 4 --gpu A100-80GB\n"
      "  llmem estimate Qwen/Qwen2.5-7B-Instruct --no-cache --prompt 4096 --attn eager\n"
      "  llmem estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --train full --precision amp-bf16 --seq 2048 --grad-ckpt\n"
      "  llmem estimate meta-llama/Llama-3.1-8B --train lora --lora-r 16 --json | jq .process_peak_bytes\n"
      "  llmem estimate mistralai/Mistral-7B-v0.1 --engine llamacpp --quant Q4_K_M --ctx 8192\n"
      "  llmem estimate model-Q4_K_M.gguf --engine llamacpp --ctx 32768 --ngl 20 --cache-type-k q8_0 --cache-type-v q8_0 --flash-attn on\n"
      "  llmem estimate meta-llama/Llama-3.1-8B --engine vllm --gpu RTX-3090 --max-model-len 16384 --json\n"
      "  llmem estimate Qwen/Qwen3-30B-A3B --engine vllm --gpu H100-80GB-HBM3 --tensor-parallel-size 2 --kv-cache-dtype fp8\n"
      "  llmem estimate openai/gpt-oss-20b --engine vllm --vram 79.15GiB --gpu-memory-utilization 0.65 --vllm-version 0.11");
  cmd->callback([=, &exit_code] {
    exit_code = 0;
    if (*list_quants) {
      fmt::print("{}", report::weight_schemes_text(find_engine("llamacpp").weight_schemes()));
      return;
    }
    if (*list_gpus) {
      fmt::print("{}", report::gpu_catalog_text(true));
      return;
    }
    if (flags->request.source.empty()) throw Error(ErrorKind::kUsage, "", "estimate needs a SOURCE (or --list-gpus)");
    const EstimateResult result = with_flag_names(estimate_flag_names(), [&] { return estimate(estimate_request(*flags)); });
    if (*as_json) fmt::print("{}\n", report::estimate_json(result).dump(2));
    else fmt::print("{}", report::estimate_text(result));
  });
});

}  // namespace
}  // namespace llmem::cli
