// llmem estimate SOURCE: an itemised GPU memory estimate for inference or training.
#include <fmt/core.h>

#include <sstream>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "request_options.hpp"
#include "source_flags.hpp"
#include "llmem/error.hpp"
#include "llmem/estimate.hpp"
#include "llmem/llamacpp.hpp"
#include "llmem/params.hpp"
#include "llmem/units.hpp"

namespace llmem::cli {

using nlohmann::json;

void add_estimate_options(CLI::App* cmd, EstimateOptions& o) {
  cmd->add_option("--dtype", o.dtype, "Inference dtype: fp32, fp16, bf16")->capture_default_str();
  cmd->add_option_function<int64_t>(
         "--batch", [&o](const int64_t& v) { o.batch = v; o.batch_given = true; },
         "Batch size (transformers, default 1); llama.cpp: logical batch n_batch (default 2048)");
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
  // llama.cpp (--engine llamacpp)
  cmd->add_option("--quant", o.quant, "llama.cpp: quantisation scheme the file would have (Q4_K_M, Q8_0, ...; see --list-quants)");
  cmd->add_option("--ctx", o.ctx, "llama.cpp: context size n_ctx")->capture_default_str();
  cmd->add_option("--ubatch", o.ubatch, "llama.cpp: physical batch n_ubatch")->capture_default_str();
  cmd->add_option("--ngl", o.ngl, "llama.cpp: layers on the GPU (-1 = all, llama.cpp's default)")->capture_default_str();
  cmd->add_option("--cache-type-k", o.cache_type_k, "llama.cpp: K cache type: f16, bf16, f32, q8_0, q5_1, q5_0, q4_1, q4_0, iq4_nl")->capture_default_str();
  cmd->add_option("--cache-type-v", o.cache_type_v, "llama.cpp: V cache type (quantised V needs flash attention)")->capture_default_str();
  cmd->add_option("--flash-attn", o.flash_attn, "llama.cpp: flash attention on, off or auto")->capture_default_str();
  cmd->add_option("--parallel", o.parallel, "llama.cpp: parallel sequences (-np); each gets its own n_ctx/N slice of the KV cache (llama.cpp's default, non-unified)")->capture_default_str();
  cmd->add_flag("--tensors", o.tensors, "llama.cpp: list every tensor with the type it has (or would have) in the file");
}

llamacpp::RunOptions llamacpp_run_from(const EstimateOptions& o) {
  auto positive = [](int64_t v, const char* name) {
    if (v <= 0) throw Error(ErrorKind::kUsage, "", std::string(name) + " must be a positive integer, got " + std::to_string(v));
    return static_cast<uint64_t>(v);
  };
  llamacpp::RunOptions r;
  r.n_ctx = positive(o.ctx, "--ctx");
  r.n_batch = o.batch_given ? positive(o.batch, "--batch") : 2048;
  r.n_ubatch = positive(o.ubatch, "--ubatch");
  // llama.cpp: n_ubatch = min(n_batch, n_ubatch) (llama-context.cpp)
  r.n_ubatch = std::min(r.n_ubatch, r.n_batch);
  if (o.ngl < -1) throw Error(ErrorKind::kUsage, "", "--ngl must be -1 (all) or a layer count, got " + std::to_string(o.ngl));
  r.n_gpu_layers = o.ngl;
  r.n_parallel = positive(o.parallel, "--parallel");
  auto cache_type = [](const std::string& name, const char* opt) {
    static const std::vector<std::pair<std::string, DType>> kTypes = {
        {"f32", DType::F32},   {"f16", DType::F16},   {"bf16", DType::BF16},  {"q8_0", DType::Q8_0},
        {"q4_0", DType::Q4_0}, {"q4_1", DType::Q4_1}, {"iq4_nl", DType::IQ4_NL}, {"q5_0", DType::Q5_0},
        {"q5_1", DType::Q5_1}};
    std::string lower = name;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto& [n, t] : kTypes)
      if (n == lower) return t;
    throw Error(ErrorKind::kUsage, "", std::string(opt) + " '" + name + "' is not a llama.cpp cache type (f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1)");
  };
  r.type_k = cache_type(o.cache_type_k, "--cache-type-k");
  r.type_v = cache_type(o.cache_type_v, "--cache-type-v");
  if (o.flash_attn == "on" || o.flash_attn == "1" || o.flash_attn == "true") r.flash_attn = llamacpp::FlashAttn::kOn;
  else if (o.flash_attn == "off" || o.flash_attn == "0" || o.flash_attn == "false") r.flash_attn = llamacpp::FlashAttn::kOff;
  else if (o.flash_attn == "auto") r.flash_attn = llamacpp::FlashAttn::kAuto;
  else throw Error(ErrorKind::kUsage, "", "--flash-attn must be on, off or auto, got '" + o.flash_attn + "'");
  return r;
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
  cmd->add_option("--engine", r.engine, "Inference engine: transformers or llamacpp")->capture_default_str();
}

namespace {

const char* flash_name(llamacpp::FlashAttn f) {
  return f == llamacpp::FlashAttn::kOn ? "on" : f == llamacpp::FlashAttn::kOff ? "off" : "auto";
}

json llamacpp_json(const Estimate& e, const llamacpp::Model& m, const llamacpp::RunOptions& run, const ModelSource& src,
                   bool with_tensors) {
  json comps = json::array();
  for (const auto& c : e.components)
    comps.push_back({{"name", c.name}, {"bytes", c.bytes}, {"device", c.device}, {"detail", c.detail}});
  const int64_t ngl = run.n_gpu_layers < 0 ? static_cast<int64_t>(m.hp.n_layer) + 1 : run.n_gpu_layers;
  json wl = {{"quant", m.scheme},
             {"quant_predicted", m.predicted},
             {"n_ctx", run.n_ctx},
             {"n_batch", run.n_batch},
             {"n_ubatch", run.n_ubatch},
             {"n_gpu_layers", ngl},
             {"cache_type_k", dtype_name(run.type_k)},
             {"cache_type_v", dtype_name(run.type_v)},
             {"flash_attn", flash_name(run.flash_attn)},
             {"n_parallel", run.n_parallel}};
  json j = {{"schema_version", 1},
            {"source", src.spec},
            {"engine", e.engine},
            {"engine_version", e.engine_version},
            {"architecture", m.hp.arch},
            {"gpu", {{"name", e.gpu.name}, {"memory_bytes", e.gpu.memory_bytes}, {"cuda_context_bytes", e.gpu.cuda_context_bytes},
                     {"cuda_context_source", e.gpu.context_source}}},
            {"workload", wl},
            {"weight_bytes", e.weight_bytes},
            {"framework_peak_bytes", e.framework_peak_bytes},
            {"process_peak_bytes", e.process_peak_bytes},
            {"host_bytes", e.host_bytes},
            {"fits", e.process_peak_bytes <= e.gpu.memory_bytes},
            {"components", comps},
            {"notes", e.notes}};
  if (with_tensors) {
    json ts = json::array();
    for (const auto& t : m.tensors) ts.push_back({{"name", t.name}, {"type", dtype_name(t.type)}, {"ne", t.ne}, {"bytes", t.bytes()}});
    j["tensors"] = ts;
  }
  return j;
}

EstimateOutcome run_llamacpp(const EstimateRequest& r, const GpuProfile& gpu) {
  EstimateOutcome out;
  const llamacpp::RunOptions run = llamacpp_run_from(r.opts);
  ModelSource src = open_source(r.source, r.src.to_options());
  print_source_verbose(src, r.src);
  llamacpp::Model m;
  if (src.gguf) {
    m = llamacpp::from_gguf(*src.gguf);
    if (!r.opts.quant.empty() && llamacpp::find_scheme(r.opts.quant).name != m.scheme)
      throw Error(ErrorKind::kUsage, src.spec,
                  "is a GGUF file already quantised (" + m.scheme + "); --quant predicts the file for config and safetensors sources");
  } else {
    if (r.opts.quant.empty())
      throw Error(ErrorKind::kUsage, "", "--engine llamacpp needs --quant SCHEME for a source that is not a .gguf file (e.g. --quant Q4_K_M)");
    const auto& scheme = llamacpp::find_scheme(r.opts.quant);
    ParamsReport p = count_params(src);
    if (!p.model) throw Error(ErrorKind::kUnsupported, src.spec, "predicting a GGUF needs a config.json of a known architecture");
    m = llamacpp::from_config(*p.model, src.display_name());
    llamacpp::quantize(m, scheme);
  }
  out.estimate = llamacpp::estimate(m, run, gpu);
  out.json = llamacpp_json(out.estimate, m, run, src, r.opts.tensors);
  const int64_t ngl = run.n_gpu_layers < 0 ? static_cast<int64_t>(m.hp.n_layer) + 1 : run.n_gpu_layers;
  out.description = fmt::format("llama.cpp, {}{}, n_ctx {}, n_ubatch {}, {} of {} layers on the GPU{}, KV {}/{}, flash attention {}",
                                m.scheme, m.predicted ? " (predicted file)" : "", run.n_ctx, run.n_ubatch,
                                std::min<int64_t>(ngl, static_cast<int64_t>(m.hp.n_layer) + 1), m.hp.n_layer + 1,
                                " (+1 = output layer)", dtype_name(run.type_k), dtype_name(run.type_v),
                                out.json["workload"]["flash_attn"].get<std::string>());
  out.source = std::move(src);
  out.llama_model = std::move(m);
  return out;
}

}  // namespace

EstimateOutcome run_estimate(const EstimateRequest& r, const GpuProfile* gpu_override) {
  if (r.source.empty()) throw Error(ErrorKind::kUsage, "", "an estimate needs a SOURCE");
  const std::string engine = canonical_engine_name(r.engine);
  const GpuProfile& gpu = gpu_override ? *gpu_override : r.opts.gpu.empty() ? default_gpu() : find_gpu(r.opts.gpu);
  if (engine == "llamacpp") return run_llamacpp(r, gpu);
  EstimateOutcome out;
  out.workload = workload_from(r.opts);
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

void print_llamacpp(const EstimateOutcome& out, bool tensors) {
  const Estimate& e = out.estimate;
  const llamacpp::Model& m = *out.llama_model;
  fmt::print("{} ({}) on {} with {}\n{}\n\n", out.source.display_name(), m.hp.arch, e.gpu.display_name, e.engine_version,
             out.description);
  if (tensors) {
    fmt::print("{:<36} {:>8} {:>26} {:>14}\n", "Tensor", "type", "ne", "bytes");
    for (const auto& t : m.tensors) {
      std::string ne;
      for (size_t i = 0; i < t.ne.size(); ++i) ne += (i ? " x " : "") + std::to_string(t.ne[i]);
      fmt::print("{:<36} {:>8} {:>26} {:>14}\n", t.name, dtype_name(t.type), ne, format_thousands(t.bytes()));
    }
    fmt::print("\n");
  }
  fmt::print("{:<22}{:>6}{:>12}  {}\n", "Component", "where", "GiB", "what");
  fmt::print("{}\n", std::string(100, '-'));
  for (const auto& c : e.components)
    fmt::print("{:<22}{:>6}{:>12.3f}  {}\n", c.name, c.device, static_cast<double>(c.bytes) / kGiB, c.detail);
  fmt::print("{}\n", std::string(100, '-'));
  fmt::print("{:<28}{:>12.3f}  tensor data of the {} file ({} bytes)\n", "Weights (file)", static_cast<double>(e.weight_bytes) / kGiB,
             m.scheme, format_thousands(e.weight_bytes));
  fmt::print("{:<28}{:>12.3f}  llama.cpp's GPU buffers (model, KV cache, compute)\n", "GPU buffers",
             static_cast<double>(e.framework_peak_bytes) / kGiB);
  fmt::print("{:<28}{:>12.3f}  what nvidia-smi / NVML shows for the process\n", "GPU process peak",
             static_cast<double>(e.process_peak_bytes) / kGiB);
  fmt::print("{:<28}{:>12.3f}  host memory: mmap'd weights not on the GPU, CPU buffers\n", "Host",
             static_cast<double>(e.host_bytes) / kGiB);
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
  auto list_quants = std::make_shared<bool>(false);
  add_estimate_request(cmd, *req);
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
      "  llmem estimate model-Q4_K_M.gguf --engine llamacpp --ctx 32768 --ngl 20 --cache-type-k q8_0 --cache-type-v q8_0 --flash-attn on");
  cmd->callback([=, &exit_code] {
    if (*list_quants) {
      fmt::print("{:<8} {:<8} {}\n", "Scheme", "default", "what (llama-quantize's mixture, no imatrix)");
      for (const auto& q : llamacpp::quant_schemes()) fmt::print("{:<8} {:<8} {}\n", q.name, dtype_name(q.base), q.description);
      exit_code = 0;
      return;
    }
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
    else if (out.llama_model) print_llamacpp(out, req->opts.tensors);
    else print_estimate(out.estimate, out.source, out.workload);
    exit_code = 0;
  });
});

}  // namespace
}  // namespace llmem::cli
