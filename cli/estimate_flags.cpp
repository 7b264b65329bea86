#include "estimate_flags.hpp"

#include <sstream>

namespace llmem::cli {

void add_estimate_flags(CLI::App* cmd, EstimateFlags& f) {
  EstimateRequest& r = f.request;
  WorkloadSpec& w = r.workload;
  cmd->add_option("SOURCE", r.source, "Model: config.json, weights, a directory, org/name (cache or catalog)");
  cmd->add_option("--dtype", w.dtype, "Inference dtype: fp32, fp16, bf16")->capture_default_str();
  cmd->add_option_function<int64_t>(
      "--batch", [&w](const int64_t& v) { w.batch = v; },
      "Batch size (transformers, default 1); llama.cpp: logical batch n_batch (default 2048)");
  cmd->add_option("--prompt", w.prompt_tokens, "Prompt tokens (inference)")->capture_default_str();
  cmd->add_option("--new-tokens", w.new_tokens, "Tokens to generate")->capture_default_str();
  cmd->add_flag_callback("--no-cache", [&w] { w.use_cache = false; }, "A single forward pass without KV cache (use_cache=False)");
  cmd->add_option("--attn", w.attn, "Attention implementation: sdpa or eager (default: transformers' choice)");
  cmd->add_option("--train", w.train, "Training: full or lora");
  cmd->add_option("--precision", w.precision, "Training precision: bf16 or amp-bf16")->capture_default_str();
  cmd->add_option("--optimizer", w.optimizer, "Optimizer: adamw or sgd")->capture_default_str();
  cmd->add_option("--seq", w.seq_tokens, "Training sequence length")->capture_default_str();
  cmd->add_flag("--grad-ckpt", w.grad_ckpt, "Gradient checkpointing");
  cmd->add_option("--lora-r", w.lora_r, "LoRA rank")->capture_default_str();
  cmd->add_option("--lora-targets", f.lora_targets, "LoRA target modules, comma-separated")->capture_default_str();
  cmd->add_option("--gpu", r.gpu.name, "GPU whose runtime overhead applies (default: the measured reference GPU)");
  // llama.cpp (--engine llamacpp)
  cmd->add_option("--quant", w.quant, "llama.cpp: quantisation scheme the file would have (Q4_K_M, Q8_0, ...; see --list-quants)");
  cmd->add_option("--ctx", w.n_ctx, "llama.cpp: context size n_ctx")->capture_default_str();
  cmd->add_option("--ubatch", w.n_ubatch, "llama.cpp: physical batch n_ubatch")->capture_default_str();
  cmd->add_option("--ngl", w.n_gpu_layers, "llama.cpp: layers on the GPU (-1 = all, llama.cpp's default)")->capture_default_str();
  cmd->add_option("--cache-type-k", w.cache_type_k, "llama.cpp: K cache type: f16, bf16, f32, q8_0, q5_1, q5_0, q4_1, q4_0, iq4_nl")->capture_default_str();
  cmd->add_option("--cache-type-v", w.cache_type_v, "llama.cpp: V cache type (quantised V needs flash attention)")->capture_default_str();
  cmd->add_option("--flash-attn", w.flash_attn, "llama.cpp: flash attention on, off or auto")->capture_default_str();
  cmd->add_option("--parallel", w.n_parallel, "llama.cpp: parallel sequences (-np); each gets its own n_ctx/N slice of the KV cache (llama.cpp's default, non-unified)")->capture_default_str();
  cmd->add_flag("--tensors", r.list_tensors, "llama.cpp: list every tensor with the type it has (or would have) in the file");
  add_source_options(cmd, f.source);
  cmd->add_option("--engine", r.engine, "Inference engine: transformers or llamacpp")->capture_default_str();
}

EstimateRequest estimate_request(const EstimateFlags& f) {
  EstimateRequest r = f.request;
  r.workload.lora_targets.clear();
  std::stringstream list(f.lora_targets);
  for (std::string target; std::getline(list, target, ',');) r.workload.lora_targets.push_back(target);
  r.source_options = f.source.to_options();
  const SourceCliOptions source = f.source;
  r.source_opened = [source](const ModelSource& src) { print_source_verbose(src, source); };
  return r;
}

const FlagNames& estimate_flag_names() {
  static const FlagNames names = {
      {"source", "SOURCE"},           {"engine", "--engine"},           {"gpu", "--gpu"},
      {"dtype", "--dtype"},           {"batch", "--batch"},             {"prompt_tokens", "--prompt"},
      {"new_tokens", "--new-tokens"}, {"attn", "--attn"},               {"train", "--train"},
      {"precision", "--precision"},   {"optimizer", "--optimizer"},     {"seq_tokens", "--seq"},
      {"lora_r", "--lora-r"},         {"lora_targets", "--lora-targets"}, {"quant", "--quant"},
      {"n_ctx", "--ctx"},             {"n_ubatch", "--ubatch"},         {"n_gpu_layers", "--ngl"},
      {"cache_type_k", "--cache-type-k"}, {"cache_type_v", "--cache-type-v"}, {"flash_attn", "--flash-attn"},
      {"n_parallel", "--parallel"}};
  return names;
}

}  // namespace llmem::cli
