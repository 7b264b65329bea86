#include "estimate_flags.hpp"

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

#include <fmt/core.h>

#include "safe_text.hpp"

namespace llmem::cli {

void add_vllm_flags(CLI::App* cmd, WorkloadSpec& w) {
  // vLLM's own flag names (`vllm serve --help`) and defaults.
  cmd->add_option("--vllm-version", w.vllm_version, "vLLM: the version whose start-up arithmetic applies (0.11.0, 0.7.3, 0.6.4; default the newest)");
  cmd->add_option("--gpu-memory-utilization", w.gpu_memory_utilization, "vLLM: fraction of the GPU's total it budgets")->capture_default_str();
  cmd->add_option_function<int64_t>("--max-model-len", [&w](const int64_t& v) { w.max_model_len = v; }, "vLLM: context length (default: the model's)");
  cmd->add_option_function<int64_t>("--max-num-seqs", [&w](const int64_t& v) { w.max_num_seqs = v; }, "vLLM: sequences per step (default: vLLM's for the version and GPU)");
  cmd->add_option_function<int64_t>("--max-num-batched-tokens", [&w](const int64_t& v) { w.max_num_batched_tokens = v; }, "vLLM: tokens per step (default: vLLM's)");
  cmd->add_option("--kv-cache-dtype", w.kv_cache_dtype, "vLLM: auto, fp8, fp8_e4m3, fp8_e5m2")->capture_default_str();
  cmd->add_option_function<int64_t>("--block-size", [&w](const int64_t& v) { w.block_size = v; }, "vLLM: tokens per KV block (default 16; 64 for MLA on 0.11)");
  cmd->add_flag("--enforce-eager", w.enforce_eager, "vLLM: no CUDA graphs");
  cmd->add_option("--tensor-parallel-size", w.tensor_parallel_size, "vLLM: GPUs the model is split over (figures are per GPU)")->capture_default_str();
  cmd->add_option("--kv-cache-memory", w.kv_cache_memory, "vLLM 0.11: KV cache size (e.g. 20GiB) instead of the utilisation budget");
  cmd->add_flag("--llm-class", w.vllm_llm_class, "vLLM: the LLM class's defaults instead of vllm serve's");
  cmd->add_flag("--allow-long-max-model-len", w.allow_long_max_model_len, "vLLM: as VLLM_ALLOW_LONG_MAX_MODEL_LEN=1");
  cmd->add_flag("--mxfp4-marlin", w.mxfp4_marlin,
                "vLLM, MXFP4 experts (gpt-oss) on Hopper: Marlin's layout, as VLLM_MXFP4_USE_MARLIN=1 or an install "
                "without the triton_kernels package (default: Triton's)");
  cmd->add_option("--concurrency", w.serving_concurrency,
                  "vLLM: requests of --max-model-len tokens to hold at once: the --gpu-memory-utilization and "
                  "--kv-cache-memory that do");
}

void add_estimate_flags(CLI::App* cmd, EstimateFlags& f) {
  f.cmd = cmd;
  EstimateRequest& r = f.request;
  WorkloadSpec& w = r.workload;
  cmd->add_option("SOURCE", r.source, "Model: config.json, weights, a directory, org/name (cache or catalog)");
  cmd->add_option("--engine", r.engine,
                  "transformers, llamacpp or vllm (default: llamacpp for a GGUF file, transformers otherwise)");
  // transformers (--engine transformers)
  cmd->add_option_function<std::string>(
      "--dtype", [&w](const std::string& v) { w.dtype = v; w.vllm_dtype = v; },
      "Inference dtype: transformers fp32, fp16, bf16 (default fp16); vLLM auto, float16, bfloat16, float32 (default auto)");
  cmd->add_option_function<int64_t>(
      "--batch", [&w](const int64_t& v) { w.batch = v; },
      "Batch: transformers sequences (default 1); llama.cpp logical batch n_batch in tokens (default 2048)");
  cmd->add_option("--prompt", w.prompt_tokens, "transformers inference: prompt tokens")->capture_default_str();
  cmd->add_option("--new-tokens", w.new_tokens, "transformers inference: tokens to generate")->capture_default_str();
  cmd->add_flag_callback("--no-cache", [&w] { w.use_cache = false; },
                         "transformers inference: one forward pass without KV cache (use_cache=False)");
  cmd->add_option("--cache", w.cache_impl,
                  "transformers generation: generate's cache_implementation dynamic (alias hybrid), static or "
                  "offloaded (default: dynamic, what generate picks)");
  cmd->add_option("--mxfp4-kernels", w.mxfp4_kernels,
                  "transformers inference of an MXFP4 checkpoint (gpt-oss): yes if Triton >= 3.4 and the kernels "
                  "package are installed (experts stay packed), no (default: experts dequantised to bf16)");
  cmd->add_flag("--fp8-dequantize", w.fp8_dequantize,
                "transformers inference of an FP8 checkpoint loaded with FineGrainedFP8Config(dequantize=True): weights "
                "in the compute dtype (default: kept in FP8 from compute capability 8.9, which needs the kernels package)");
  cmd->add_option("--attn", w.attn, "transformers: attention sdpa or eager (default: transformers' choice)");
  cmd->add_option("--train", w.train, "transformers training: full, lora, or qlora (LoRA on a bitsandbytes 4-bit base)");
  cmd->add_option("--precision", w.precision, "with --train: bf16 or amp-bf16")->capture_default_str();
  cmd->add_option("--optimizer", w.optimizer,
                  "with --train: adamw (default: what torch.optim.AdamW(params) runs on CUDA, foreach), adamw-foreach, "
                  "adamw-fused, adamw-forloop, sgd, sgd-momentum, adafactor (transformers'), adamw-8bit, "
                  "paged-adamw-8bit (bitsandbytes); with --hf-trainer the Trainer's default, adamw_torch_fused");
  cmd->add_flag("--hf-trainer", w.hf_trainer,
                "with --train: transformers.Trainer and TrainingArguments defaults, bf16=True (--precision bf16: "
                "weights as from_pretrained loads a bf16 checkpoint; amp-bf16: loaded in fp32)");
  cmd->add_option("--alloc-conf", w.alloc_conf,
                  "transformers: PYTORCH_CUDA_ALLOC_CONF of the run, expandable_segments:True or the default allocator");
  cmd->add_option("--grad-accum", w.grad_accum, "with --train: gradient accumulation steps (micro-batches of --batch per optimizer step)")
      ->capture_default_str();
  cmd->add_option("--seq", w.seq_tokens, "with --train: sequence length in tokens")->capture_default_str();
  cmd->add_flag("--grad-ckpt", w.grad_ckpt, "with --train: gradient checkpointing");
  cmd->add_option("--lora-r", w.lora_r, "with --train lora: LoRA rank")->capture_default_str();
  cmd->add_option("--gpus", w.n_gpus, "GPUs of --gpu's kind: transformers inference split by --device-map, training sharded by --sharding; llama.cpp layers split by --split-mode")
      ->capture_default_str();
  cmd->add_option("--device-map", w.device_map,
                  "transformers inference with --gpus: from_pretrained's device_map auto, balanced, balanced_low_0 or sequential (default auto)");
  cmd->add_option("--max-memory", w.max_memory, "transformers inference with --gpus: from_pretrained's max_memory, e.g. 0=20GiB,1=24GiB");
  cmd->add_option("--sharding", w.sharding, "with --train and --gpus: ddp, zero1, zero2, zero3 (DeepSpeed 0.19.6) or fsdp (FSDP2)");
  cmd->add_option("--lora-targets", f.lora_targets, "with --train lora or qlora: target modules, comma-separated, or all-linear")->capture_default_str();
  cmd->add_option("--bnb-4bit-quant-type", w.bnb_4bit_quant_type, "with --train qlora: the 4-bit type, nf4 or fp4")->capture_default_str();
  cmd->add_option("--bnb-double-quant", w.bnb_double_quant,
                  "with --train qlora: quantise the blocks' absmax again (bnb_4bit_use_double_quant), true or false")
      ->capture_default_str();
  // llama.cpp (--engine llamacpp)
  cmd->add_option("--quant", w.quant, "llama.cpp: quantisation scheme the file would have (Q4_K_M, Q8_0, ...; see --list-quants)");
  cmd->add_option("--ctx", w.n_ctx, "llama.cpp: context size n_ctx in tokens")->capture_default_str();
  cmd->add_option("--ubatch", w.n_ubatch, "llama.cpp: physical batch n_ubatch in tokens")->capture_default_str();
  cmd->add_option("--ngl", w.n_gpu_layers, "llama.cpp: layers on the GPU (-1 = all, llama.cpp's default)")->capture_default_str();
  // one line of --help (the web page reads the types from it)
  cmd->add_option("--cache-type-k", w.cache_type_k, "K cache type: f16, bf16, f32, q8_0, q5_1, q5_0, q4_1, q4_0, iq4_nl")->capture_default_str();
  cmd->add_option("--cache-type-v", w.cache_type_v, "llama.cpp: V cache type (quantised V needs flash attention)")->capture_default_str();
  cmd->add_option("--flash-attn", w.flash_attn, "llama.cpp: flash attention on, off or auto")->capture_default_str();
  cmd->add_option("--parallel", w.n_parallel, "llama.cpp: parallel sequences (-np); each gets its own n_ctx/N slice of the KV cache")->capture_default_str();
  cmd->add_option("--n-cpu-moe", w.n_cpu_moe, "llama.cpp: keep the routed experts of the first N layers in host memory")
      ->capture_default_str();
  cmd->add_flag("--cpu-moe", w.cpu_moe, "llama.cpp: keep every layer's routed experts in host memory");
  cmd->add_option("--override-tensor", w.override_tensor,
                  "llama.cpp: PATTERN=BUFFER[,...]: tensors whose name matches the regex go to CPU or CUDA0 (e.g. exps=CPU)")
      ->delimiter(',');
  cmd->add_option("--tensor-split", w.tensor_split, "llama.cpp with --gpus: each GPU's share of the layers, e.g. 3,1 (default: equal)");
  cmd->add_option("--split-mode", w.split_mode, "llama.cpp with --gpus: layer (default) or none (everything on --main-gpu)")
      ->capture_default_str();
  cmd->add_option("--main-gpu", w.main_gpu, "llama.cpp with --gpus and --split-mode none: the GPU used")->capture_default_str();
  cmd->add_flag("--no-mmap", w.no_mmap, "llama.cpp: read host-resident weights into pinned memory instead of mapping the file");
  cmd->add_flag("--mlock", w.mlock, "llama.cpp: as its --mlock: read host-resident weights (not mapped) and lock them in RAM");
  cmd->add_option("--ram", w.ram, "llama.cpp: the machine's RAM with a unit, e.g. 32GiB: does the host side fit?");
  cmd->add_flag("--mmproj", w.mmproj,
                "llama.cpp: a vision-language model's projector too (the mmproj GGUF its converter writes), as loaded by "
                "llama-server --mmproj");
  cmd->add_option("--mmproj-type", w.mmproj_type,
                  "llama.cpp with --mmproj: the converter's --outtype f16, f32, bf16 or q8_0 (default: its auto: bf16 "
                  "for a bf16 checkpoint, else f16)");
  cmd->add_flag("--no-mmproj-offload", w.no_mmproj_offload, "llama.cpp with --mmproj: the projector on the CPU, as llama-server's");
  cmd->add_flag("--tensors", r.list_tensors, "llama.cpp: list every tensor with the type it has (or would have) in the file");
  // the GPU
  cmd->add_option("--gpu", r.gpu.name,
                  "GPU from the catalog (--list-gpus), or 'auto': GPU 0 as NVML finds it, with its free memory "
                  "(default: the measured reference GPU)");
  cmd->add_option_function<std::string>(
      "--reserve", [&r](const std::string& v) { r.gpu.reserve = v; r.gpu.reserve_origin = "--reserve " + v; },
      "Memory kept free on the GPU, e.g. 1GiB or 0 (default 512MiB: the driver's own share and a display)");
  cmd->add_option_function<std::string>(
      "--vram", [&r](const std::string& v) { r.gpu.memory = v; r.gpu.memory_origin = "--vram " + v; },
      "Memory per GPU with a unit, e.g. 24GiB (wins over --gpu's size); vLLM: the total torch reports, which it budgets against");
  // vLLM (--engine vllm)
  add_vllm_flags(cmd, w);
  add_source_options(cmd, f.source);
}

EstimateRequest estimate_request(const EstimateFlags& f) {
  EstimateRequest r = f.request;
  r.workload.lora_targets.clear();
  std::stringstream list(f.lora_targets);
  for (std::string target; std::getline(list, target, ',');) r.workload.lora_targets.push_back(target);
  r.source_options = f.source.to_options();
  const SourceCliOptions source = f.source;
  r.source_opened = [source](const ModelSource& src) { print_source_verbose(src, source); };
  if (f.cmd) r.set_fields = fields_given(*f.cmd, estimate_flag_names());
  return r;
}

const FlagNames& estimate_flag_names() {
  static const FlagNames names = {
      {"source", "SOURCE"},           {"engine", "--engine"},           {"gpu", "--gpu"},
      {"reserve", "--reserve"},       {"memory", "--vram"},             {"dtype", "--dtype"},
      {"batch", "--batch"},           {"prompt_tokens", "--prompt"},    {"new_tokens", "--new-tokens"},
      {"use_cache", "--no-cache"},    {"cache_impl", "--cache"},    {"mxfp4_kernels", "--mxfp4-kernels"}, {"fp8_dequantize", "--fp8-dequantize"}, {"attn", "--attn"},               {"train", "--train"},
      {"precision", "--precision"},   {"optimizer", "--optimizer"},     {"seq_tokens", "--seq"},
      {"grad_ckpt", "--grad-ckpt"},   {"grad_accum", "--grad-accum"},   {"alloc_conf", "--alloc-conf"},
      {"hf_trainer", "--hf-trainer"}, {"lora_r", "--lora-r"},           {"lora_targets", "--lora-targets"},
      {"bnb_4bit_quant_type", "--bnb-4bit-quant-type"}, {"bnb_double_quant", "--bnb-double-quant"},
      {"n_gpus", "--gpus"},           {"device_map", "--device-map"},   {"max_memory", "--max-memory"},
      {"sharding", "--sharding"},
      {"quant", "--quant"},           {"n_ctx", "--ctx"},               {"n_ubatch", "--ubatch"},
      {"n_gpu_layers", "--ngl"},      {"cache_type_k", "--cache-type-k"}, {"cache_type_v", "--cache-type-v"},
      {"flash_attn", "--flash-attn"}, {"n_parallel", "--parallel"},     {"list_tensors", "--tensors"},
      {"n_cpu_moe", "--n-cpu-moe"},   {"cpu_moe", "--cpu-moe"},         {"override_tensor", "--override-tensor"},
      {"no_mmap", "--no-mmap"},       {"tensor_split", "--tensor-split"}, {"split_mode", "--split-mode"},
      {"main_gpu", "--main-gpu"},     {"mlock", "--mlock"},             {"ram", "--ram"},
      {"mmproj", "--mmproj"},         {"mmproj_type", "--mmproj-type"}, {"no_mmproj_offload", "--no-mmproj-offload"},
      {"vllm_version", "--vllm-version"}, {"vllm_dtype", "--dtype"}, {"gpu_memory_utilization", "--gpu-memory-utilization"},
      {"max_model_len", "--max-model-len"}, {"max_num_seqs", "--max-num-seqs"},
      {"max_num_batched_tokens", "--max-num-batched-tokens"}, {"kv_cache_dtype", "--kv-cache-dtype"},
      {"block_size", "--block-size"}, {"enforce_eager", "--enforce-eager"}, {"tensor_parallel_size", "--tensor-parallel-size"},
      {"kv_cache_memory", "--kv-cache-memory"}, {"vllm_llm_class", "--llm-class"},
      {"allow_long_max_model_len", "--allow-long-max-model-len"}, {"serving_concurrency", "--concurrency"},
      {"mxfp4_marlin", "--mxfp4-marlin"}};
  return names;
}

std::string flag_for(const FlagNames& names, const std::string& field) {
  for (const auto& [f, flag] : names)
    if (f == field) return flag;
  return field;
}

std::vector<std::string> fields_given(const CLI::App& cmd, const FlagNames& names) {
  // the library's own fields only: the request's SOURCE, engine and GPU are not workload fields
  static const std::set<std::string> not_workload = {"source", "engine", "gpu", "reserve", "memory", "gpus"};
  std::vector<std::string> flags, out;  // one entry per flag given: its fields, '|'-separated (--dtype sets two)
  for (const auto& [field, flag] : names) {
    if (not_workload.count(field) || flag.rfind("--", 0) != 0) continue;
    const CLI::Option* opt = cmd.get_option_no_throw(flag);
    if (!opt || opt->count() == 0) continue;
    const auto at = std::find(flags.begin(), flags.end(), flag);
    if (at == flags.end()) {
      flags.push_back(flag);
      out.push_back(field);
    } else if (("|" + out[at - flags.begin()] + "|").find("|" + field + "|") == std::string::npos) {
      out[at - flags.begin()] += "|" + field;
    }
  }
  return out;
}

void print_warnings(const FlagNames& names, const std::vector<FieldWarning>& warnings) {
  std::fflush(stdout);
  for (const auto& w : warnings)
    fmt::print(stderr, "llmem: warning: {}\n",
               printable(w.message_for([&](const std::string& field) { return flag_for(names, field); })));
}

}  // namespace llmem::cli
