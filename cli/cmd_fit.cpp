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
  const CLI::App* cmd = nullptr;
};

const FlagNames& fit_flag_names() {
  static const FlagNames names = {
      {"engine", "--engine"},         {"gpu", "--gpu"},           {"memory", "--vram"},
      {"reserve", "--reserve"},       {"gpus", "--gpus"},         {"prompt_tokens", "--prompt"},
      {"new_tokens", "--new-tokens"}, {"seq_tokens", "--seq"},    {"n_ctx", "--ctx"},
      {"quant", "--quant"},           {"flash_attn", "--flash-attn"}, {"cache_type_k", "--cache-type"},
      {"cache_type_v", "--cache-type"}, {"mmproj", "--mmproj"}, {"mmproj_type", "--mmproj-type"},
      {"no_mmproj_offload", "--no-mmproj-offload"}, {"train", "--train"},     {"optimizer", "--optimizer"},
      {"grad_ckpt", "--grad-ckpt"},   {"batch", "--batch"},       {"lora_r", "--lora-r"},
      {"vllm_version", "--vllm-version"}, {"vllm_dtype", "--dtype"}, {"gpu_memory_utilization", "--gpu-memory-utilization"},
      {"max_model_len", "--max-model-len"}, {"max_num_seqs", "--max-num-seqs"},
      {"max_num_batched_tokens", "--max-num-batched-tokens"}, {"kv_cache_dtype", "--kv-cache-dtype"},
      {"block_size", "--block-size"}, {"enforce_eager", "--enforce-eager"}, {"tensor_parallel_size", "--tensor-parallel-size"},
      {"kv_cache_memory", "--kv-cache-memory"}, {"vllm_llm_class", "--llm-class"},
      {"allow_long_max_model_len", "--allow-long-max-model-len"}, {"serving_concurrency", "--concurrency"},
      {"mxfp4_marlin", "--mxfp4-marlin"}};
  return names;
}

void add_fit_flags(CLI::App* cmd, FitFlags& f) {
  f.cmd = cmd;
  WorkloadSpec& w = f.request.workload;
  cmd->add_option("SOURCE", f.source, "Model: config.json, weights, a directory, org/name; none: rank the embedded catalog");
  cmd->add_option("--engine", f.request.engine,
                  "transformers or llamacpp (default: llamacpp for a GGUF file, transformers otherwise)");
  cmd->add_option("--gpu", f.gpu.name,
                  "GPU from the catalog (--list-gpus), or 'auto': every GPU NVML finds, each with its free memory "
                  "(default: the measured reference GPU)");
  cmd->add_option_function<std::string>(
      "--vram", [&f](const std::string& v) { f.gpu.memory = v; f.gpu.memory_origin = "--vram " + v; },
      "Memory per GPU with a unit, e.g. 24GiB or 24GB (wins over --gpu's size; --gpu still gives the overhead)");
  cmd->add_option_function<std::string>(
      "--reserve", [&f](const std::string& v) { f.gpu.reserve = v; f.gpu.reserve_origin = "--reserve " + v; },
      "Memory kept free on each GPU, e.g. 1GiB or 0 (default 512MiB: the driver's own share and a display)");
  cmd->add_option("--gpus", f.request.gpus,
                  "transformers: number of GPUs, approximated by splitting the footprint evenly (default 1; with --gpu "
                  "auto, the GPUs NVML finds)");
  cmd->add_option("--prompt", w.prompt_tokens, "transformers inference: prompt tokens")->capture_default_str();
  cmd->add_option("--new-tokens", w.new_tokens, "transformers inference: tokens generated after the prompt")->capture_default_str();
  cmd->add_option("--seq", w.seq_tokens, "transformers training: sequence length")->capture_default_str();
  cmd->add_option("--train", w.train, "transformers: one fine-tuning method only, full, lora or qlora (default: inference and all three)");
  cmd->add_option("--optimizer", w.optimizer, "transformers training: as estimate's --optimizer (default adamw: foreach)");
  cmd->add_flag("--grad-ckpt", w.grad_ckpt, "transformers training: gradient checkpointing (QLoRA has it on)");
  cmd->add_option_function<int64_t>("--batch", [&w](const int64_t& v) { w.batch = v; },
                                    "transformers training: the batch the max context is searched at (default 1)");
  cmd->add_option("--lora-r", w.lora_r, "transformers, lora and qlora: LoRA rank")->capture_default_str();
  cmd->add_option("--ctx", w.n_ctx, "llama.cpp: context n_ctx in tokens")->capture_default_str();
  cmd->add_option("--quant", w.quant, "llama.cpp: one scheme only (default: F16 Q8_0 Q6_K Q5_K_M Q5_K_S Q4_K_M Q4_K_S Q4_0 IQ4_XS Q3_K_M Q2_K)");
  cmd->add_option("--flash-attn", w.flash_attn, "llama.cpp: on, off or auto")->capture_default_str();
  cmd->add_option("--cache-type", f.cache_type, "llama.cpp: K and V cache type (f16, q8_0, q4_0)")->capture_default_str();
  cmd->add_flag("--mmproj", w.mmproj, "llama.cpp: a vision-language model's projector too, as estimate's --mmproj");
  cmd->add_option("--mmproj-type", w.mmproj_type,
                  "llama.cpp with --mmproj: f16, f32, bf16 or q8_0 (default: the converter's auto)");
  cmd->add_flag("--no-mmproj-offload", w.no_mmproj_offload, "llama.cpp with --mmproj: the projector on the CPU");
  cmd->add_flag("--json", f.json, "Machine-readable output (schema: docs/json.md); also for --list-gpus");
  cmd->add_flag("--list-gpus", f.list_gpus, "List the GPU catalog (by memory) and exit");
  // vLLM (--engine vllm)
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
  f.request.set_fields = fields_given(*f.cmd, fit_flag_names());
  const bool gpus_given = f.cmd->get_option("--gpus")->count() > 0;
  if (gpus_given) f.request.set_fields.push_back("gpus");
  std::vector<FieldWarning> warnings;
  const FitGpus gpus = resolve_fit_gpus(f.gpu, &warnings);
  f.request.gpu = gpus.tightest;
  if (gpus.count > 0) {  // --gpu auto: the GPUs NVML finds
    if (!gpus_given) f.request.gpus = gpus.count;
    else if (f.request.gpus > static_cast<int64_t>(gpus.count))
      throw usage_error("gpus", fmt::format("{{field}} {} but NVML finds {} GPU{}", f.request.gpus, gpus.count, gpus.count == 1 ? "" : "s"));
  }
  print_warnings(fit_flag_names(), warnings);
  f.request.progress = progress_line(f.source.empty() ? "catalog models" : "options");
  if (f.source.empty()) {
    const FitRanking ranking = rank_catalog(f.request);
    if (f.json) fmt::print("{}\n", report::ranking_json(ranking, f.request).dump(2));
    else fmt::print("{}", report::ranking_text(ranking, f.request));
    return;
  }
  const SourceCliOptions source_options = f.source_options;
  // vLLM with no GPU named: every catalog card, which one serves the model at which --max-model-len
  const bool gpu_named = f.cmd->get_option("--gpu")->count() > 0 || f.cmd->get_option("--vram")->count() > 0;
  if (f.request.engine == "vllm" && !gpu_named) {
    f.request.progress = progress_line("GPUs");
    const auto fits = fit_every_gpu(f.request, f.source, source_options.to_options(),
                                    [&](const ModelSource& src) { print_source_verbose(src, source_options); });
    if (f.json) fmt::print("{}\n", report::gpus_fit_json(fits, f.request).dump(2));
    else fmt::print("{}", report::gpus_fit_text(fits, f.request));
    return;
  }
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
      "  llmem fit microsoft/phi-2 --gpu RTX-4090        every precision: inference, full fine-tuning, LoRA\n"
      "  llmem fit mistralai/Mistral-7B-v0.1 --vram 24GiB --prompt 4096 --json\n"
      "  llmem fit meta-llama/Llama-3.1-70B --gpu A100-80GB --gpus 4\n"
      "  llmem fit meta-llama/Llama-3.1-8B --vram 16GiB --train qlora --optimizer paged-adamw-8bit\n"
      "  llmem fit microsoft/phi-2 --gpu auto            this machine's GPUs, with what is free on them now\n"
      "  llmem fit --vram 24GiB                          what in the embedded catalog runs on 24 GiB\n"
      "  llmem fit mistralai/Mistral-7B-v0.1 --engine llamacpp --vram 8GiB    per quantisation scheme\n"
      "  llmem fit --engine llamacpp --vram 8GiB         the catalog at the best scheme that fits\n"
      "  llmem fit meta-llama/Llama-3.1-8B --engine vllm --gpu L4    the largest --max-model-len\n"
      "  llmem fit Qwen/Qwen3-8B --engine vllm             every catalog GPU: KV tokens, largest length\n"
      "  llmem fit Qwen/Qwen3-8B --engine vllm --gpu A100-80GB --max-model-len 32768 --concurrency 16\n"
      "\n"
      "The budget per GPU is its memory (--vram wins over --gpu's size; --gpu still gives the CUDA context) less "
      "--reserve (default 512MiB), and with --gpu auto less what other processes use now. --gpus splits the "
      "footprint evenly: an approximation, not a model of tensor or pipeline parallelism (transformers only).\n"
      "--prompt, --new-tokens, --seq, --train, --optimizer, --grad-ckpt, --batch and --lora-r apply to transformers; --ctx, --quant, --flash-attn, --cache-type and the "
      "--mmproj flags to llama.cpp; the vLLM flags to vLLM. A flag given where it does not apply is an error (docs/cli.md).");
  cmd->callback([=, &exit_code] {
    exit_code = 0;
    if (flags->list_gpus) {
      if (flags->json) fmt::print("{}\n", report::gpu_catalog_json().dump(2));
      else fmt::print("{}", report::gpu_catalog_text(false));
      return;
    }
    with_flag_names(fit_flag_names(), [&] { run_fit(*flags); });
  });
});

}  // namespace
}  // namespace llmem::cli
