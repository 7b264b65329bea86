// llmem fit [SOURCE]: will it run (or fine-tune) on my GPU? Searches over the estimator (plan.hpp).
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "llmem/nvml.hpp"
#include "llmem/error.hpp"
#include "llmem/estimate.hpp"
#include "llmem/params.hpp"
#include "llmem/plan.hpp"
#include "llmem/units.hpp"
#include "source_flags.hpp"
#include "request_options.hpp"
#include "llmem/llamacpp.hpp"

namespace llmem::cli {
namespace {

using nlohmann::json;

constexpr const char* kMultiGpuText =
    "several GPUs are approximated by splitting the process footprint evenly (each GPU also\n"
    "pays the CUDA context), not modelled: real tensor/pipeline parallelism adds communication buffers and uneven layers";
constexpr const char* kMultiGpuNote =
    "several GPUs are approximated by splitting the process footprint evenly (each GPU also pays the CUDA "
    "context), not modelled: real tensor/pipeline parallelism adds communication buffers and uneven layers";

struct FitCliOptions {
  std::string gpu;
  std::string vram;
  bool vram_given = false;  // --vram '' is an error, not "no --vram"
  int64_t gpus = 1;
  int64_t prompt = 6;
  int64_t new_tokens = 14;
  int64_t seq = 512;
  std::string engine = "transformers";
  int64_t ctx = 4096;
  std::string quant;  // one scheme, or all of kFitSchemes
  std::string flash_attn = "auto";
  std::string cache_type = "f16";
};

double gib(uint64_t b) { return static_cast<double>(b) / kGiB; }

// The schemes `fit --engine llamacpp` tries, most bits first (the list).
const std::vector<std::string> kFitSchemes = {"F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S",
                                              "Q4_0", "IQ4_XS", "Q3_K_M", "Q2_K"};

llamacpp::RunOptions llama_run(const FitCliOptions& o) {
  EstimateOptions e;
  e.ctx = o.ctx;
  e.flash_attn = o.flash_attn;
  e.cache_type_k = e.cache_type_v = o.cache_type;
  return llamacpp_run_from(e);
}

json llama_option_json(const LlamaFitOption& o) {
  return {{"quant", o.scheme},
          {"quant_predicted", o.predicted},
          {"weight_bytes", o.weight_bytes},
          {"process_peak_bytes", o.process_peak_bytes},
          {"all_layers_fit", o.all_layers_fit},
          {"max_ngl", o.max_ngl},
          {"n_layer", o.n_layer},
          {"max_context", o.max_context},
          {"context_cap", o.context_cap},
          {"context_capped", o.context_capped}};
}

std::string ngl_cell(const LlamaFitOption& o) {
  if (o.all_layers_fit) return "all";
  if (o.max_ngl < 0) return "none";
  return fmt::format("{} of {}", o.max_ngl, o.n_layer + 1);
}

void print_llama_options(const std::string& name, const std::vector<LlamaFitOption>& opts, const FitRequest& req,
                         const FitCliOptions& o) {
  fmt::print("{} under llama.cpp on {} ({:.1f} GiB), n_ctx {}, flash attention {}, KV {}\n\n", name,
             req.gpu.display_name, gib(req.gpu.memory_bytes), o.ctx, o.flash_attn, o.cache_type);
  fmt::print("{:<8} {:>11} {:>13} {:>6} {:>12} {:>14}\n", "quant", "file GiB", "GPU peak GiB", "fits", "-ngl", "max context");
  for (const auto& x : opts)
    fmt::print("{:<8} {:>11.2f} {:>13.2f} {:>6} {:>12} {:>14}\n", x.scheme, gib(x.weight_bytes), gib(x.process_peak_bytes),
               x.all_layers_fit ? "yes" : "no", ngl_cell(x),
               x.max_context ? format_thousands(x.max_context) + (x.context_capped ? "*" : "") : "—");
  fmt::print("\nfile GiB: tensor data of the GGUF{}; GPU peak: every layer on the GPU at n_ctx {}; -ngl: layers that fit "
             "(the output layer counts as one); max context: every layer on the GPU, multiples of 256 (* = the model's "
             "training context)\n",
             opts.empty() || opts[0].predicted ? " llama-quantize would write (predicted)" : "", o.ctx);
}

uint64_t positive(int64_t v, const char* name) {
  if (v <= 0) throw Error(ErrorKind::kUsage, "", std::string(name) + " must be a positive integer, got " + std::to_string(v));
  return static_cast<uint64_t>(v);
}

// --gpu picks the card (its memory and its runtime overhead); --vram, when given, replaces the memory size (and
// wins over --gpu's), keeping that card's overhead (the reference GPU's without --gpu).
FitRequest request_from(const FitCliOptions& o) {
  FitRequest r;
  if (o.gpu == "auto") {
    // The GPUs present, through NVML: the first one's name and total memory; its runtime overhead from the
    // catalog when the catalog knows the card, else the reference measurement's.
    auto nvml = nvml::Library::open();
    if (nvml->device_count() == 0) throw Error(ErrorKind::kRuntime, "", "--gpu auto: NVML reports no GPU");
    nvml::DeviceMemory mem;
    if (int st = nvml->memory(0, mem); st != nvml::kSuccess)
      throw Error(ErrorKind::kRuntime, "", "--gpu auto: cannot read GPU 0's memory: " + nvml->error_string(st));
    const std::string name = nvml->name(0);
    try {
      r.gpu = find_gpu(name);
    } catch (const Error&) {
      r.gpu = default_gpu();
      r.gpu.name = name;
    }
    r.gpu.display_name = name + " (GPU 0 of " + std::to_string(nvml->device_count()) + ", found by NVML)";
    r.gpu.memory_bytes = mem.total_bytes;
    r.gpu.memory_source = "NVML";
  } else {
    r.gpu = o.gpu.empty() ? default_gpu() : find_gpu(o.gpu);
  }
  if (o.vram_given) {
    auto bytes = parse_bytes(o.vram);
    if (!bytes)
      throw Error(ErrorKind::kUsage, "",
                  "--vram '" + o.vram + "' is not a positive memory size (e.g. 24GiB, 80GB, 512MiB; GB = 10^9, GiB = 2^30)");
    r.gpu.memory_bytes = *bytes;
    r.gpu.memory_source = "--vram " + o.vram;
    if (o.gpu.empty()) {
      r.gpu.name = "custom";
      r.gpu.display_name = "a GPU of --vram " + o.vram;
    } else {
      r.gpu.display_name += " (--vram " + o.vram + ")";
    }
  }
  r.gpus = positive(o.gpus, "--gpus");
  r.prompt_tokens = positive(o.prompt, "--prompt");
  r.new_tokens = positive(o.new_tokens, "--new-tokens");
  r.seq = positive(o.seq, "--seq");
  return r;
}

double gib_signed(int64_t b) { return static_cast<double>(b) / kGiB; }

json gpu_json(const FitRequest& r) {
  return {{"name", r.gpu.name},
          {"display_name", r.gpu.display_name},
          {"memory_bytes", r.gpu.memory_bytes},
          {"memory_source", r.gpu.memory_source},
          {"cuda_context_bytes", r.gpu.cuda_context_bytes},
          {"count", r.gpus}};
}

json option_json(const FitOption& o) {
  const bool training = o.mode != FitMode::kInference;
  json j = {{"precision", o.precision},
            {"mode", fit_mode_name(o.mode)},
            {"fits", o.fits},
            {"max_context", o.max_context},
            {"context_cap", o.context_cap},
            {"context_capped", o.context_capped},
            {"max_batch", o.max_batch},
            {"batch_capped", o.batch_capped},
            {"gpus_needed", o.gpus_needed},
            {"process_peak_bytes", o.process_peak_bytes},
            {"per_gpu_bytes", o.per_gpu_bytes},
            {"headroom_bytes", o.headroom_bytes}};
  if (training) {
    j["seq"] = o.workload.prompt_tokens;
    j["optimizer"] = "adamw";
    if (o.mode == FitMode::kLora) j["lora_r"] = o.workload.lora_r;
  } else {
    j["prompt"] = o.workload.prompt_tokens;
    j["new_tokens"] = o.workload.new_tokens;
  }
  return j;
}

std::string context_cell(const FitOption& o) {
  if (o.max_context == 0) return "—";
  return format_thousands(o.max_context) + (o.context_capped ? "*" : "");
}

std::string gpus_cell(const FitOption& o) { return o.gpus_needed == 0 ? "none" : std::to_string(o.gpus_needed); }

void print_options(const ParamsReport& r, const FitRequest& req, const std::vector<FitOption>& opts) {
  const auto& f = r.model->facts;
  fmt::print("{} ({} params{}) on {}, {:.2f} GiB{}\n", r.source.display_name(), format_params_short(r.primary().total_params),
             f.max_positions ? fmt::format(", max context {}", format_thousands(f.max_positions)) : "", req.gpu.display_name,
             gib(req.gpu.memory_bytes), req.gpus > 1 ? fmt::format(" × {} GPUs", req.gpus) : "");
  fmt::print("inference: generate {} tokens after a {}-token prompt; training: {}-token sequences, AdamW, LoRA r 16 on q/k/v/o\n\n",
             req.new_tokens, req.prompt_tokens, req.seq);
  fmt::print("{:<10} {:<9} {:>5} {:>9} {:>9} {:>12} {:>10} {:>6}\n", "Mode", "Precision", "Fits", "Peak", "Headroom",
             "Max context", "Max batch", "GPUs");
  fmt::print("{:<10} {:<9} {:>5} {:>9} {:>9} {:>12} {:>10} {:>6}\n", "", "", "", "GiB", "GiB", "tokens", "", "needed");
  fmt::print("{}\n", std::string(77, '-'));
  for (const auto& o : opts)
    fmt::print("{:<10} {:<9} {:>5} {:>9.2f} {:>9.2f} {:>12} {:>10} {:>6}\n", fit_mode_name(o.mode), o.precision, o.fits ? "yes" : "no",
               gib(o.per_gpu_bytes), gib_signed(o.headroom_bytes), context_cell(o),
               o.max_batch ? format_thousands(o.max_batch) + (o.batch_capped ? "*" : "") : "—", gpus_cell(o));
  fmt::print("{}\n", std::string(77, '-'));
  fmt::print("Peak and headroom at the given context and batch 1{}; max context at batch 1 (prompt tokens for inference,\n"
             "sequence length for training); max batch at the given context. All from llmem's estimate (llmem estimate).\n",
             req.gpus > 1 ? ", per GPU" : "");
  bool capped = false;
  for (const auto& o : opts) capped = capped || o.context_capped || o.batch_capped;
  if (capped) fmt::print("* the search's limit (the model's max_position_embeddings, or 2^20), not memory's.\n");
  fmt::print("GPUs needed: {}.\n", kMultiGpuText);
  bool any = false;
  for (const auto& o : opts) any = any || o.fits;
  if (!any) {
    const FitOption* best = nullptr;
    for (const auto& o : opts)
      if (o.gpus_needed && (!best || o.gpus_needed < best->gpus_needed)) best = &o;
    if (best)
      fmt::print("\nNothing fits on one {:.2f} GiB GPU{}: the smallest option ({} {}) needs {} such GPUs.\n", gib(req.gpu.memory_bytes),
                 req.gpus > 1 ? fmt::format(" × {}", req.gpus) : "", fit_mode_name(best->mode), best->precision, best->gpus_needed);
    else
      fmt::print("\nNothing fits: {:.2f} GiB is below the per-process overhead of {:.2f} GiB.\n", gib(req.gpu.memory_bytes),
                 gib(req.gpu.cuda_context_bytes));
  }
}

void print_ranking(const CatalogRanking& rk, const FitRequest& req) {
  fmt::print("What the embedded catalog runs on {}, {:.2f} GiB{}: inference, {}-token prompt + {} new tokens, batch 1\n\n",
             req.gpu.display_name, gib(req.gpu.memory_bytes), req.gpus > 1 ? fmt::format(" × {} GPUs", req.gpus) : "",
             req.prompt_tokens, req.new_tokens);
  fmt::print("{:<44} {:>8} {:<9} {:>9} {:>9} {:>12}\n", "Model", "Params", "Precision", "Peak", "Headroom", "Max context");
  fmt::print("{:<44} {:>8} {:<9} {:>9} {:>9} {:>12}\n", "", "B", "", "GiB", "GiB", "tokens");
  fmt::print("{}\n", std::string(96, '-'));
  for (const auto& m : rk.fits)
    fmt::print("{:<44} {:>8.2f} {:<9} {:>9.2f} {:>9.2f} {:>12}\n", m.id.substr(0, 44), static_cast<double>(m.params) / 1e9,
               m.best.precision, gib(m.best.per_gpu_bytes), gib_signed(m.best.headroom_bytes), context_cell(m.best));
  fmt::print("{}\n", std::string(96, '-'));
  fmt::print("{} of {} catalog models fit (fp16/bf16; fp32 needs twice the weights). Largest first.\n", rk.fits.size(),
             rk.fits.size() + rk.does_not_fit.size());
  if (!rk.does_not_fit.empty()) {
    fmt::print("Does not fit:");
    for (size_t i = 0; i < rk.does_not_fit.size(); ++i) {
      const auto& m = rk.does_not_fit[i];
      fmt::print("{} {} ({:.1f} GiB, {} GPUs)", i ? "," : "", m.id, gib(m.best.process_peak_bytes), gpus_cell(m.best));
    }
    fmt::print("\n");
  }
  for (const auto& s : rk.skipped) fmt::print("skipped: {}\n", s);
  if (rk.fits.empty()) fmt::print("Nothing in the catalog fits on {:.2f} GiB.\n", gib(req.gpu.memory_bytes));
  if (req.gpus > 1 || !rk.does_not_fit.empty()) fmt::print("GPUs: {}.\n", kMultiGpuText);
}

json ranked_json(const RankedModel& m) {
  json j = option_json(m.best);
  j["model"] = m.id;
  j["params"] = m.params;
  j["family"] = m.family;
  return j;
}

const bool registered = register_command(25, [](CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("fit", "Will it run or fine-tune on my GPU? Fits, max context, max batch, GPUs needed");
  auto opts = std::make_shared<FitCliOptions>();
  auto src_opts = std::make_shared<SourceCliOptions>();
  auto source = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  auto list_gpus = std::make_shared<bool>(false);
  cmd->add_option("SOURCE", *source, "Model: config.json, weights, a directory, org/name; none: rank the embedded catalog");
  cmd->add_option("--gpu", opts->gpu, "GPU from the catalog (--list-gpus; default: the measured reference GPU). 'auto' is not available yet");
  auto* vram_opt = cmd->add_option("--vram", opts->vram, "Memory per GPU, e.g. 24GiB or 80GB (wins over --gpu's size; --gpu still gives the overhead)");
  cmd->add_option("--gpus", opts->gpus, "Number of GPUs (approximated: the footprint split evenly)")->capture_default_str();
  cmd->add_option("--prompt", opts->prompt, "Inference prompt tokens")->capture_default_str();
  cmd->add_option("--new-tokens", opts->new_tokens, "Tokens generated after the prompt")->capture_default_str();
  cmd->add_option("--seq", opts->seq, "Training sequence length")->capture_default_str();
  cmd->add_flag("--json", *as_json, "Machine-readable output (options[]: precision, mode, fits, max_context, ...)");
  cmd->add_option("--engine", opts->engine, "transformers or llamacpp (quantised GGUF)")->capture_default_str();
  cmd->add_option("--ctx", opts->ctx, "llama.cpp: context n_ctx")->capture_default_str();
  cmd->add_option("--quant", opts->quant, "llama.cpp: one scheme only (default: F16 Q8_0 Q6_K Q5_K_M Q5_K_S Q4_K_M Q4_K_S Q4_0 IQ4_XS Q3_K_M Q2_K)");
  cmd->add_option("--flash-attn", opts->flash_attn, "llama.cpp: on, off or auto")->capture_default_str();
  cmd->add_option("--cache-type", opts->cache_type, "llama.cpp: K and V cache type (f16, q8_0, q4_0)")->capture_default_str();
  cmd->add_flag("--list-gpus", *list_gpus, "List the GPU catalog and exit");
  add_source_options(cmd, *src_opts);
  cmd->footer(
      "Examples:\n"
      "  llmem fit microsoft/phi-2 --gpu RTX-4090          every precision, inference, full fine-tuning and LoRA\n"
      "  llmem fit mistralai/Mistral-7B-v0.1 --vram 24GiB --prompt 4096 --json\n"
      "  llmem fit meta-llama/Llama-3.1-70B --gpu A100-80GB --gpus 4\n"
      "  llmem fit --vram 24GiB                            what in the embedded catalog runs on a 24 GiB card\n"
      "  llmem fit mistralai/Mistral-7B-v0.1 --engine llamacpp --vram 8GiB   per quantisation: fits, -ngl, max context\n"
      "  llmem fit --engine llamacpp --vram 8GiB           the catalog at the best quantisation that fits\n"
      "--vram wins over --gpu's memory size (the GPU still gives the CUDA context overhead). Several GPUs are\n"
      "approximated by splitting the footprint evenly, not modelled.");
  cmd->callback([=, &exit_code] {
    if (*list_gpus) {
      fmt::print("{:<20} {:<36} {:>10}\n", "Name", "GPU", "GiB");
      for (const auto& g : gpu_catalog())
        fmt::print("{:<20} {:<36} {:>10.1f}\n", g.name, g.display_name, gib(g.memory_bytes));
      exit_code = 0;
      return;
    }
    opts->vram_given = vram_opt->count() > 0;
    const FitRequest req = request_from(*opts);
    if (opts->engine == "llamacpp" || opts->engine == "llama.cpp") {
      const llamacpp::RunOptions run = llama_run(*opts);
      std::vector<std::string> schemes = kFitSchemes;
      if (!opts->quant.empty()) schemes = {llamacpp::find_scheme(opts->quant).name};
      const uint64_t budget = req.gpu.memory_bytes;
      if (source->empty()) {
        const LlamaCatalogRanking rk = rank_catalog_llamacpp(schemes, run, req.gpu, budget);
        if (*as_json) {
          json fits = json::array(), not_fit = json::array();
          for (const auto& m : rk.fits) { json j = llama_option_json(m.best); j["model"] = m.id; j["params"] = m.params; fits.push_back(j); }
          for (const auto& m : rk.does_not_fit) { json j = llama_option_json(m.best); j["model"] = m.id; j["params"] = m.params; not_fit.push_back(j); }
          fmt::print("{}\n", json{{"schema_version", 1}, {"engine", "llama.cpp"}, {"gpu", gpu_json(req)}, {"n_ctx", opts->ctx},
                                  {"models", fits}, {"does_not_fit", not_fit}, {"skipped", rk.skipped}}.dump(2));
        } else {
          fmt::print("The embedded catalog under llama.cpp on {} ({:.1f} GiB), n_ctx {}: the best quantisation with every layer on the GPU\n\n",
                     req.gpu.display_name, gib(budget), opts->ctx);
          fmt::print("{:<44} {:>9} {:>8} {:>10} {:>13} {:>14}\n", "model", "params B", "quant", "file GiB", "GPU peak GiB", "max context");
          for (const auto& m : rk.fits)
            fmt::print("{:<44} {:>9.2f} {:>8} {:>10.2f} {:>13.2f} {:>14}\n", m.id, m.params / 1e9, m.best.scheme,
                       gib(m.best.weight_bytes), gib(m.best.process_peak_bytes), format_thousands(m.best.max_context));
          if (!rk.does_not_fit.empty()) {
            fmt::print("\ndoes not fit even at {} (layers that fit with -ngl):\n", schemes.back());
            for (const auto& m : rk.does_not_fit)
              fmt::print("  {:<44} {:>9.2f} B  {:.2f} GiB needed, -ngl {}\n", m.id, m.params / 1e9, gib(m.best.process_peak_bytes), ngl_cell(m.best));
          }
          for (const auto& s : rk.skipped) fmt::print("skipped: {}\n", s);
        }
        exit_code = 0;
        return;
      }
      ModelSource src = open_source(*source, src_opts->to_options());
      print_source_verbose(src, *src_opts);
      llamacpp::Model base;
      if (src.gguf) {
        base = llamacpp::from_gguf(*src.gguf);
      } else {
        ParamsReport r = count_params(src);
        if (!r.model) throw Error(ErrorKind::kUnsupported, src.spec, "fit needs a config.json of a known architecture or a GGUF");
        base = llamacpp::from_config(*r.model, src.display_name());
      }
      const auto options = fit_llamacpp(base, schemes, run, req.gpu, budget);
      if (*as_json) {
        json arr = json::array();
        for (const auto& x : options) arr.push_back(llama_option_json(x));
        fmt::print("{}\n", json{{"schema_version", 1}, {"engine", "llama.cpp"}, {"source", source_json(src)},
                                {"architecture", base.hp.arch}, {"gpu", gpu_json(req)}, {"n_ctx", opts->ctx}, {"options", arr}}.dump(2));
      } else {
        print_llama_options(src.display_name(), options, req, *opts);
      }
      exit_code = 0;
      return;
    }
    if (opts->engine != "transformers") throw Error(ErrorKind::kUsage, "", "unknown --engine '" + opts->engine + "' (transformers or llamacpp)");
    if (source->empty()) {
      const CatalogRanking rk = rank_catalog(req);
      if (*as_json) {
        json fits = json::array(), not_fit = json::array();
        for (const auto& m : rk.fits) fits.push_back(ranked_json(m));
        for (const auto& m : rk.does_not_fit) not_fit.push_back(ranked_json(m));
        fmt::print("{}\n", json{{"schema_version", 1},
                                {"gpu", gpu_json(req)},
                                {"prompt", req.prompt_tokens},
                                {"new_tokens", req.new_tokens},
                                {"models", fits},
                                {"does_not_fit", not_fit},
                                {"skipped", rk.skipped},
                                {"multi_gpu", kMultiGpuNote}}
                               .dump(2));
      } else {
        print_ranking(rk, req);
      }
      exit_code = 0;
      return;
    }
    ModelSource src = open_source(*source, src_opts->to_options());
    print_source_verbose(src, *src_opts);
    ParamsReport r = count_params(std::move(src));
    if (!r.model) throw Error(ErrorKind::kUnsupported, r.source.spec, "fit needs a config.json of a known architecture");
    const std::vector<FitOption> options = fit_options(*r.model, req);
    if (*as_json) {
      json arr = json::array();
      for (const auto& o : options) arr.push_back(option_json(o));
      fmt::print("{}\n", json{{"schema_version", 1},
                              {"source", source_json(r.source)},
                              {"params", r.primary().total_params},
                              {"max_positions", r.model->facts.max_positions},
                              {"gpu", gpu_json(req)},
                              {"prompt", req.prompt_tokens},
                              {"new_tokens", req.new_tokens},
                              {"seq", req.seq},
                              {"options", arr},
                              {"multi_gpu", kMultiGpuNote}}
                             .dump(2));
    } else {
      print_options(r, req, options);
    }
    exit_code = 0;
  });
});

}  // namespace
}  // namespace llmem::cli
