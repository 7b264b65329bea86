// llmem estimate SOURCE: an itemised GPU memory estimate for inference or training.
#include <fmt/core.h>

#include <sstream>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "estimate_options.hpp"
#include "source_options.hpp"
#include "llmem/error.hpp"
#include "llmem/estimate.hpp"
#include "llmem/params.hpp"
#include "llmem/units.hpp"

namespace llmem::cli {

using nlohmann::json;

void add_estimate_options(CLI::App* cmd, EstimateOptions& o) {
  cmd->add_option("--dtype", o.dtype, "Inference dtype: fp32, fp16, bf16")->capture_default_str();
  cmd->add_option("--batch", o.batch, "Batch size")->capture_default_str();
  cmd->add_option("--prompt", o.prompt, "Prompt tokens (inference)")->capture_default_str();
  cmd->add_option("--new-tokens", o.new_tokens, "Tokens to generate")->capture_default_str();
  cmd->add_flag("--no-cache", o.no_cache, "A single forward pass without KV cache (use_cache=False)");
  cmd->add_option("--attn", o.attn, "Attention implementation: sdpa or eager (default: transformers' choice)");
  cmd->add_option("--train", o.train, "Training: full or lora");
  cmd->add_option("--precision", o.precision, "Training precision: bf16 or amp-bf16")->capture_default_str();
  cmd->add_option("--optimizer", o.optimizer, "Optimizer: adamw or sgd")->capture_default_str();
  cmd->add_option("--seq", o.seq, "Training sequence length")->capture_default_str();
  cmd->add_flag("--grad-ckpt", o.grad_ckpt, "Gradient checkpointing");
  cmd->add_option("--lora-r", o.lora_r, "LoRA rank")->capture_default_str();
  cmd->add_option("--lora-targets", o.lora_targets, "LoRA target modules, comma-separated")->capture_default_str();
  cmd->add_option("--gpu", o.gpu, "GPU whose runtime overhead applies (default: the measured reference GPU)");
}

Workload workload_from(const EstimateOptions& o) {
  Workload w;
  auto dt = dtype_from_name(o.dtype);
  if (!dt) throw Error(ErrorKind::kUsage, "", "unknown --dtype '" + o.dtype + "' (fp32, fp16, bf16)");
  w.dtype = *dt;
  auto positive = [](int64_t v, const char* name) {
    if (v <= 0) throw Error(ErrorKind::kUsage, "", std::string(name) + " must be a positive integer, got " + std::to_string(v));
    return static_cast<uint64_t>(v);
  };
  w.batch = positive(o.batch, "--batch");
  w.attn = o.attn;
  if (!o.train.empty()) {
    w.mode = RunMode::kTrain;
    if (o.train == "full") w.train = TrainMethod::kFull;
    else if (o.train == "lora") w.train = TrainMethod::kLora;
    else throw Error(ErrorKind::kUsage, "", "--train must be full or lora, got '" + o.train + "'");
    if (o.precision == "bf16") w.precision = TrainPrecision::kBf16;
    else if (o.precision == "amp-bf16") w.precision = TrainPrecision::kAmpBf16;
    else throw Error(ErrorKind::kUsage, "", "--precision must be bf16 or amp-bf16, got '" + o.precision + "'");
    if (o.optimizer == "adamw") w.optimizer = OptimizerKind::kAdamW;
    else if (o.optimizer == "sgd") w.optimizer = OptimizerKind::kSgd;
    else throw Error(ErrorKind::kUsage, "", "--optimizer must be adamw or sgd, got '" + o.optimizer + "'");
    w.prompt_tokens = positive(o.seq, "--seq");
    w.grad_ckpt = o.grad_ckpt;
    w.lora_r = positive(o.lora_r, "--lora-r");
    w.lora_targets.clear();
    std::stringstream ss(o.lora_targets);
    for (std::string t; std::getline(ss, t, ',');)
      if (!t.empty()) w.lora_targets.push_back(t);
    if (w.lora_targets.empty()) throw Error(ErrorKind::kUsage, "", "--lora-targets names no module");
    w.dtype = w.precision == TrainPrecision::kBf16 ? DType::BF16 : DType::F32;
  } else {
    w.mode = o.no_cache ? RunMode::kForward : RunMode::kGenerate;
    w.prompt_tokens = positive(o.prompt, "--prompt");
    w.new_tokens = positive(o.new_tokens, "--new-tokens");
  }
  return w;
}

json estimate_json(const Estimate& e, const ModelSource& src, const Workload& w) {
  json comps = json::array();
  for (const auto& c : e.components) comps.push_back({{"name", c.name}, {"bytes", c.bytes}, {"detail", c.detail}});
  const char* mode = w.mode == RunMode::kGenerate ? "generate" : w.mode == RunMode::kForward ? "forward" : "train";
  json wl = {{"mode", mode}, {"dtype", dtype_name(w.dtype)}, {"batch", w.batch}};
  if (w.mode == RunMode::kTrain) {
    wl["seq"] = w.prompt_tokens;
    wl["train"] = w.train == TrainMethod::kFull ? "full" : "lora";
    wl["precision"] = w.precision == TrainPrecision::kBf16 ? "bf16" : "amp-bf16";
    wl["optimizer"] = w.optimizer == OptimizerKind::kAdamW ? "adamw" : "sgd";
    wl["grad_ckpt"] = w.grad_ckpt;
  } else {
    wl["prompt"] = w.prompt_tokens;
    if (w.mode == RunMode::kGenerate) wl["new_tokens"] = w.new_tokens;
  }
  return {{"schema_version", 1},
          {"source", src.spec},
          {"engine", e.engine},
          {"engine_version", e.engine_version},
          {"gpu", {{"name", e.gpu.name}, {"memory_bytes", e.gpu.memory_bytes}, {"cuda_context_bytes", e.gpu.cuda_context_bytes},
                   {"cuda_context_source", e.gpu.context_source}}},
          {"workload", wl},
          {"framework_peak_bytes", e.framework_peak_bytes},
          {"reserved_peak_bytes", e.reserved_peak_bytes},
          {"process_peak_bytes", e.process_peak_bytes},
          {"weight_bytes", e.weight_bytes},
          {"peak_phase", e.peak_phase},
          {"fits", e.process_peak_bytes <= e.gpu.memory_bytes},
          {"components", comps},
          {"notes", e.notes}};
}

std::string describe_workload(const Workload& w) {
  if (w.mode == RunMode::kTrain)
    return fmt::format("{} fine-tuning, {}, {}, batch {} × {} tokens{}", w.train == TrainMethod::kFull ? "full" : "LoRA",
                       w.precision == TrainPrecision::kBf16 ? "bf16" : "amp-bf16",
                       w.optimizer == OptimizerKind::kAdamW ? "AdamW" : "SGD", w.batch, w.prompt_tokens,
                       w.grad_ckpt ? ", gradient checkpointing" : "");
  if (w.mode == RunMode::kGenerate)
    return fmt::format("generate {} tokens from a {}-token prompt, batch {}, {}", w.new_tokens, w.prompt_tokens, w.batch,
                       dtype_name(w.dtype));
  return fmt::format("one forward pass of {} tokens, batch {}, {}, no KV cache", w.prompt_tokens, w.batch, dtype_name(w.dtype));
}

void add_estimate_request(CLI::App* cmd, EstimateRequest& r) {
  cmd->add_option("SOURCE", r.source, "Model: config.json, weights, a directory, org/name (cache or catalog)");
  add_estimate_options(cmd, r.opts);
  add_source_options(cmd, r.src);
  cmd->add_option("--engine", r.engine, "Inference engine (transformers)")->capture_default_str();
}

EstimateOutcome run_estimate(const EstimateRequest& r, const GpuProfile* gpu_override) {
  if (r.source.empty()) throw Error(ErrorKind::kUsage, "", "an estimate needs a SOURCE");
  if (r.engine != "transformers")
    throw Error(ErrorKind::kUsage, "", "unknown --engine '" + r.engine + "' (this build knows: transformers)");
  EstimateOutcome out;
  out.workload = workload_from(r.opts);
  const GpuProfile& gpu = gpu_override ? *gpu_override : r.opts.gpu.empty() ? default_gpu() : find_gpu(r.opts.gpu);
  ModelSource src = open_source(r.source, r.src.to_options());
  print_source_verbose(src, r.src);
  ParamsReport p = count_params(src);
  if (!p.model) throw Error(ErrorKind::kUnsupported, src.spec, "estimates need a config.json of a known architecture");
  out.estimate = estimate_transformers(*p.model, out.workload, gpu);
  out.source = std::move(p.source);
  out.json = estimate_json(out.estimate, out.source, out.workload);
  out.description = describe_workload(out.workload);
  return out;
}

namespace {

void print_estimate(const Estimate& e, const ModelSource& src, const Workload& w) {
  fmt::print("{} on {} with {}\n{}\n\n", src.display_name(), e.gpu.display_name, e.engine_version, describe_workload(w));
  fmt::print("{:<20}{:>14}  {}\n", "Component", "GiB", "what");
  fmt::print("{}\n", std::string(90, '-'));
  for (const auto& c : e.components) fmt::print("{:<20}{:>14.3f}  {}\n", c.name, static_cast<double>(c.bytes) / kGiB, c.detail);
  fmt::print("{}\n", std::string(90, '-'));
  fmt::print("{:<20}{:>14.3f}  torch.cuda.max_memory_allocated() (peak: {})\n", "Framework peak",
             static_cast<double>(e.framework_peak_bytes) / kGiB, e.peak_phase);
  fmt::print("{:<20}{:>14.3f}  torch.cuda.max_memory_reserved()\n", "Reserved peak", static_cast<double>(e.reserved_peak_bytes) / kGiB);
  fmt::print("{:<20}{:>14.3f}  what nvidia-smi / NVML shows for the process\n", "Process peak",
             static_cast<double>(e.process_peak_bytes) / kGiB);
  const double free_gib = (static_cast<double>(e.gpu.memory_bytes) - static_cast<double>(e.process_peak_bytes)) / kGiB;
  fmt::print("\n{} on {} ({:.1f} GiB): {}\n", e.process_peak_bytes <= e.gpu.memory_bytes ? "Fits" : "Does NOT fit",
             e.gpu.display_name, static_cast<double>(e.gpu.memory_bytes) / kGiB,
             free_gib >= 0 ? fmt::format("{:.2f} GiB to spare", free_gib) : fmt::format("{:.2f} GiB short", -free_gib));
  for (const auto& n : e.notes) fmt::print("note: {}\n", n);
}

const bool registered = register_command(20, [](CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("estimate", "Itemised GPU memory estimate for inference or fine-tuning (transformers)");
  auto req = std::make_shared<EstimateRequest>();
  auto as_json = std::make_shared<bool>(false);
  auto list_gpus = std::make_shared<bool>(false);
  add_estimate_request(cmd, *req);
  cmd->add_flag("--json", *as_json, "Machine-readable output (framework_peak_bytes, process_peak_bytes, components)");
  cmd->add_flag("--list-gpus", *list_gpus, "List the GPU catalog and exit");
  cmd->footer(
      "Examples:\n"
      "  llmem estimate microsoft/phi-2                         the study's scenario: fp16, 6-token prompt, 20 tokens\n"
      "  llmem estimate mistralai/Mistral-7B-v0.1 --prompt 8192 --batch 4 --gpu A100-80GB\n"
      "  llmem estimate Qwen/Qwen2.5-7B-Instruct --no-cache --prompt 4096 --attn eager\n"
      "  llmem estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --train full --precision amp-bf16 --seq 2048 --grad-ckpt\n"
      "  llmem estimate meta-llama/Llama-3.1-8B --train lora --lora-r 16 --json | jq .process_peak_bytes");
  cmd->callback([=, &exit_code] {
    if (*list_gpus) {
      fmt::print("{:<20} {:<36} {:>10}  {}\n", "Name", "GPU", "GiB", "CUDA context (MiB) and its source");
      for (const auto& g : gpu_catalog())
        fmt::print("{:<20} {:<36} {:>10.1f}  {:.0f}: {}\n", g.name, g.display_name, static_cast<double>(g.memory_bytes) / kGiB,
                   static_cast<double>(g.cuda_context_bytes) / kMiB, g.context_source);
      exit_code = 0;
      return;
    }
    if (req->source.empty()) throw Error(ErrorKind::kUsage, "", "estimate needs a SOURCE (or --list-gpus)");
    EstimateOutcome out = run_estimate(*req);
    if (*as_json) fmt::print("{}\n", out.json.dump(2));
    else print_estimate(out.estimate, out.source, out.workload);
    exit_code = 0;
  });
});

}  // namespace
}  // namespace llmem::cli
