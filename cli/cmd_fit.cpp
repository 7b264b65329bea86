// llmem fit [SOURCE]: will it run (or fine-tune) on my GPU? Searches over the engine's estimates (plan.hpp).
#include <chrono>
#include <cstdio>
#include <functional>

#include <fmt/core.h>

#include "command.hpp"
#include "estimate_flags.hpp"
#include "llmem/estimate_report.hpp"
#include "llmem/fit_report.hpp"
#include "llmem/plan.hpp"
#include "source_flags.hpp"

namespace llmem::cli {
namespace {

struct FitFlags {
  FitRequest request;
  GpuSpec gpu;
  std::string cache_type = "f16";  // --cache-type: K and V alike
  std::string source;
  SourceCliOptions source_options;
  bool json = false;
  bool list_gpus = false;
};

const FlagNames& fit_flag_names() {
  static const FlagNames names = {
      {"engine", "--engine"},         {"gpu", "--gpu"},           {"memory", "--vram"},
      {"gpus", "--gpus"},             {"prompt_tokens", "--prompt"}, {"new_tokens", "--new-tokens"},
      {"seq_tokens", "--seq"},        {"n_ctx", "--ctx"},         {"quant", "--quant"},
      {"flash_attn", "--flash-attn"}, {"cache_type_k", "--cache-type"}, {"cache_type_v", "--cache-type"},
      {"vllm_version", "--vllm-version"}, {"vllm_dtype", "--dtype"}, {"gpu_memory_utilization", "--gpu-memory-utilization"},
      {"max_model_len", "--max-model-len"}, {"max_num_seqs", "--max-num-seqs"},
      {"max_num_batched_tokens", "--max-num-batched-tokens"}, {"kv_cache_dtype", "--kv-cache-dtype"},
      {"block_size", "--block-size"}, {"tensor_parallel_size", "--tensor-parallel-size"},
      {"kv_cache_memory", "--kv-cache-memory"}, {"serving_concurrency", "--concurrency"}};
  return names;
}

void add_fit_flags(CLI::App* cmd, FitFlags& f) {
  WorkloadSpec& w = f.request.workload;
  cmd->add_option("SOURCE", f.source, "Model: config.json, weights, a directory, org/name; none: rank the embedded catalog");
  cmd->add_option("--gpu", f.gpu.name, "GPU from the catalog (--list-gpus; default: the measured reference GPU). 'auto' is not available yet");
  cmd->add_option_function<std::string>(
      "--vram", [&f](const std::string& v) { f.gpu.memory = v; f.gpu.memory_origin = "--vram " + v; },
      "Memory per GPU, e.g. 24GiB or 80GB (wins over --gpu's size; --gpu still gives the overhead)");
  cmd->add_option("--gpus", f.request.gpus, "Number of GPUs (approximated: the footprint split evenly)")->capture_default_str();
  cmd->add_option("--prompt", w.prompt_tokens, "Inference prompt tokens")->capture_default_str();
  cmd->add_option("--new-tokens", w.new_tokens, "Tokens generated after the prompt")->capture_default_str();
  cmd->add_option("--seq", w.seq_tokens, "Training sequence length")->capture_default_str();
  cmd->add_flag("--json", f.json, "Machine-readable output (options[]: precision, mode, fits, max_context, ...)");
  cmd->add_option("--engine", f.request.engine, "transformers, llamacpp (quantised GGUF) or vllm")->capture_default_str();
  cmd->add_option("--ctx", w.n_ctx, "llama.cpp: context n_ctx")->capture_default_str();
  cmd->add_option("--quant", w.quant, "llama.cpp: one scheme only (default: F16 Q8_0 Q6_K Q5_K_M Q5_K_S Q4_K_M Q4_K_S Q4_0 IQ4_XS Q3_K_M Q2_K)");
  cmd->add_option("--flash-attn", w.flash_attn, "llama.cpp: on, off or auto")->capture_default_str();
  cmd->add_option("--cache-type", f.cache_type, "llama.cpp: K and V cache type (f16, q8_0, q4_0)")->capture_default_str();
  cmd->add_flag("--list-gpus", f.list_gpus, "List the GPU catalog and exit");
  add_vllm_flags(cmd, w);
  cmd->add_option_function<std::string>(
      "--dtype", [&w](const std::string& v) { w.vllm_dtype = v; }, "vLLM: auto, float16, bfloat16, float32 (default auto)");
  add_source_options(cmd, f.source_options);
}

// A progress line on stderr (a terminal only) once the search has taken more than a second.
std::function<void(size_t, size_t)> progress_line(const char* what) {
  if (!stderr_is_tty()) return {};
  const auto start = std::chrono::steady_clock::now();
  return [start, what](size_t done, size_t total) {
    if (std::chrono::steady_clock::now() - start < std::chrono::seconds(1)) return;
    fmt::print(stderr, "\rllmem: fit: {} of {} {} searched", done, total, what);
    if (done == total) fmt::print(stderr, "\r\033[K");
    std::fflush(stderr);
  };
}

void run_fit(FitFlags f) {
  f.request.workload.cache_type_k = f.request.workload.cache_type_v = f.cache_type;
  f.request.gpu = resolve_gpu(f.gpu);
  f.request.progress = progress_line(f.source.empty() ? "catalog models" : "options");
  if (f.source.empty()) {
    const FitRanking ranking = rank_catalog(f.request);
    if (f.json) fmt::print("{}\n", report::ranking_json(ranking, f.request).dump(2));
    else fmt::print("{}", report::ranking_text(ranking, f.request));
    return;
  }
  const SourceCliOptions source_options = f.source_options;
  const FitResult result = fit(f.request, f.source, source_options.to_options(),
                               [&](const ModelSource& src) { print_source_verbose(src, source_options); });
  if (f.json) fmt::print("{}\n", report::fit_json(result, f.request).dump(2));
  else fmt::print("{}", report::fit_text(result, f.request));
}

const bool registered = register_command(25, [](CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("fit", "Will it run or fine-tune on my GPU? Fits, max context, max batch, GPUs needed");
  auto flags = std::make_shared<FitFlags>();
  add_fit_flags(cmd, *flags);
  cmd->footer(
      "Examples:\n"
      "  llmem fit microsoft/phi-2 --gpu RTX-4090          every precision, inference, full fine-tuning and LoRA\n"
      "  llmem fit mistralai/Mistral-7B-v0.1 --vram 24GiB --prompt 4096 --json\n"
      "  llmem fit meta-llama/Llama-3.1-70B --gpu A100-80GB --gpus 4\n"
      "  llmem fit --vram 24GiB                            what in the embedded catalog runs on a 24 GiB card\n"
      "  llmem fit mistralai/Mistral-7B-v0.1 --engine llamacpp --vram 8GiB   per quantisation: fits, -ngl, max context\n"
      "  llmem fit --engine llamacpp --vram 8GiB           the catalog at the best quantisation that fits\n"
      "  llmem fit meta-llama/Llama-3.1-8B --engine vllm --gpu L4   the largest --max-model-len vLLM starts with\n"
      "  llmem fit Qwen/Qwen3-8B --engine vllm --gpu A100-80GB --max-model-len 32768 --concurrency 16\n"
      "--vram wins over --gpu's memory size (the GPU still gives the CUDA context overhead). Several GPUs are\n"
      "approximated by splitting the footprint evenly, not modelled.");
  cmd->callback([=, &exit_code] {
    exit_code = 0;
    if (flags->list_gpus) {
      fmt::print("{}", report::gpu_catalog_text(false));
      return;
    }
    with_flag_names(fit_flag_names(), [&] { run_fit(*flags); });
  });
});

}  // namespace
}  // namespace llmem::cli
