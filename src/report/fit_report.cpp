// Fit results rendered (fit_report.hpp).
#include "llmem/fit_report.hpp"

#include "llmem/estimate_report.hpp"
#include "llmem/units.hpp"
#include "text.hpp"

namespace llmem::report {

using nlohmann::json;

namespace {

constexpr const char* kMultiGpuNote =
    "several GPUs: inference is modelled per GPU as device_map places the layers, full fine-tuning per rank under "
    "the sharding (DDP, ZeRO 1-3, FSDP) with the smallest peak; LoRA/QLoRA and figures marked approximate split the "
    "process footprint evenly (each GPU also paying the CUDA context); tensor parallelism is not modelled";
// The legend of the "~" that marks each approximated figure in text.
constexpr const char* kApproxLegend =
    "~ an approximation: the process footprint split evenly over the GPUs, each also paying the CUDA context; not a "
    "model of tensor or pipeline parallelism, which adds communication buffers and uneven layers.";

// llama.cpp's results have their own shape: per scheme, the file, -ngl and the context.
bool is_llamacpp(const std::string& engine) { return engine == "llamacpp"; }

double gib(uint64_t b) { return static_cast<double>(b) / kGiB; }
double gib_signed(int64_t b) { return static_cast<double>(b) / kGiB; }

json gpu_json(const FitRequest& r) {
  return {{"name", r.gpu.name},
          {"display_name", r.gpu.display_name},
          {"memory_bytes", r.gpu.memory_bytes},
          {"memory_source", r.gpu.memory_source},
          {"in_use_bytes", r.gpu.in_use_bytes},
          {"reserve_bytes", r.gpu.reserve_bytes},
          {"reserve_source", r.gpu.reserve_source},
          {"budget_bytes", r.gpu.budget_bytes()},
          {"cuda_context_bytes", r.gpu.cuda_context_bytes},
          {"count", r.gpus}};
}

double budget_gib(const FitRequest& r) { return gib(r.gpu.budget_bytes()); }

// ---- transformers

json option_json(const FitOption& o) {
  json j = {{"precision", o.precision},
            {"mode", fit_mode_name(o.mode)},
            {"fits", o.fits},
            {"max_context", o.max_context},
            {"context_cap", o.context_cap},
            {"context_capped", o.context_capped},
            {"max_batch", o.max_batch},
            {"batch_capped", o.batch_capped},
            {"gpus_needed", o.gpus_needed},
            {"gpus_needed_approximate", o.gpus_needed > 1 && !o.gpus_needed_modelled},
            {"gpus_needed_modelled", o.gpus_needed_modelled},
            {"process_peak_bytes", o.process_peak_bytes},
            {"per_gpu_bytes", o.per_gpu_bytes},
            {"per_gpu_approximate", !o.per_gpu_modelled && o.per_gpu_bytes != o.process_peak_bytes},
            {"per_gpu_modelled", o.per_gpu_modelled},
            {"headroom_bytes", o.headroom_bytes}};
  if (!o.sharding.empty()) j["sharding"] = o.sharding;
  if (!o.gpus_needed_sharding.empty()) j["gpus_needed_sharding"] = o.gpus_needed_sharding;
  if (o.mode != FitMode::kInference) {
    j["seq"] = o.workload.prompt_tokens;
    // --optimizer's name ("adamw" for its default, foreach)
    j["optimizer"] = o.workload.optimizer == OptimizerKind::kAdamWForeach ? "adamw" : optimizer_name(o.workload.optimizer);
    if (o.mode == FitMode::kLora || o.mode == FitMode::kQLora) j["lora_r"] = o.workload.lora_r;
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

// GPUs needed beyond one: the per-GPU model's answer, or the even split's (marked as an approximation).
std::string gpus_cell(const FitOption& o) {
  if (o.gpus_needed == 0) return "none";
  return (o.gpus_needed == 1 || o.gpus_needed_modelled ? "" : "~") + std::to_string(o.gpus_needed);
}

// The mode, with the sharding of a full fine-tune estimated per rank ("full/zero3").
std::string mode_cell(const FitOption& o) { return fit_mode_name(o.mode) + (o.sharding.empty() ? "" : "/" + o.sharding); }

// A figure per GPU of several is the even split's: marked as an approximation.
std::string per_gpu_cell(double value, bool split) { return fmt::format("{}{:.2f}", split ? "~" : "", value); }

void append_nothing_fits(std::string& out, const FitResult& r, const FitRequest& req) {
  const FitOption* best = nullptr;
  for (const auto& o : r.options)
    if (o.gpus_needed && (!best || o.gpus_needed < best->gpus_needed)) best = &o;
  if (best)
    out += paragraph("", fmt::format("Nothing fits a {:.2f} GiB budget{}: the smallest option ({} {}) needs {} such GPUs.",
                                     budget_gib(req), req.gpus > 1 ? fmt::format(" × {}", req.gpus) : "", fit_mode_name(best->mode),
                                     best->precision, gpus_cell(*best)),
                     0);
  else
    out += paragraph("", fmt::format("Nothing fits: a {:.2f} GiB budget is below the per-process overhead of {:.2f} GiB.",
                                     budget_gib(req), gib(req.gpu.cuda_context_bytes)),
                     0);
}

void append_notes(std::string& out, const std::vector<std::string>& notes) {
  for (const auto& n : notes) out += paragraph("note: ", n, 6);
}

std::string transformers_fit_text(const FitResult& r, const FitRequest& req) {
  std::string out;
  const bool split = req.gpus > 1;
  out += paragraph("", fmt::format("{} ({} params{}) on {}{}", r.source.display_name(), format_params_short(r.params),
                                   r.max_positions ? fmt::format(", max context {}", format_thousands(r.max_positions)) : "",
                                   req.gpu.display_name, split ? fmt::format(" × {} GPUs", req.gpus) : ""),
                   2);
  out += paragraph("", gpu_budget_text(req.gpu, split), 2);
  // the training knobs as asked (fit's --optimizer, --lora-r, --grad-ckpt, --batch); "AdamW" is --optimizer's default
  const WorkloadSpec& w = req.workload;
  const int64_t batch = w.batch.value_or(1);
  const std::string training =
      fmt::format("{}-token sequences, {}, LoRA r {}{}", w.seq_tokens, w.optimizer.empty() ? "AdamW" : w.optimizer, w.lora_r,
                  w.grad_ckpt ? ", gradient checkpointing" : "");
  const bool any_training = std::any_of(r.options.begin(), r.options.end(),
                                        [](const FitOption& o) { return o.mode != FitMode::kInference; });
  if (w.train.empty() && !any_training)  // a model whose training the engine does not model (mllama)
    out += paragraph("", fmt::format("inference: {}-token prompt + {} new tokens; training: not modelled for {}",
                                     w.prompt_tokens, w.new_tokens, r.architecture.empty() ? "this model" : r.architecture),
                     2);
  else if (w.train.empty())
    out += paragraph("", fmt::format("inference: {}-token prompt + {} new tokens; training: {}", w.prompt_tokens,
                                     w.new_tokens, training),
                     2);
  else
    out += paragraph("", fmt::format("{} fine-tuning only (--train): {}", w.train, training), 2);
  out += "\n";
  append(out, "{:<10} {:<9} {:>5} {:>9} {:>9} {:>12} {:>10} {:>6}\n", "Mode", "Precision", "Fits", "Peak", "Headroom",
         "Max context", "Max batch", "GPUs");
  append(out, "{:<10} {:<9} {:>5} {:>9} {:>9} {:>12} {:>10} {:>6}\n", "", "", "", "GiB", "GiB", "tokens", "", "needed");
  append(out, "{}\n", std::string(77, '-'));
  for (const auto& o : r.options)
    append(out, "{:<10} {:<9} {:>5} {:>9} {:>9} {:>12} {:>10} {:>6}\n", mode_cell(o), o.precision, o.fits ? "yes" : "no",
           per_gpu_cell(gib(o.per_gpu_bytes), split && !o.per_gpu_modelled),
           per_gpu_cell(gib_signed(o.headroom_bytes), split && !o.per_gpu_modelled), context_cell(o),
           o.max_batch ? format_thousands(o.max_batch) + (o.batch_capped ? "*" : "") : "—", gpus_cell(o));
  append(out, "{}\n", std::string(77, '-'));
  const std::string at_batch = batch == 1 || !w.train.empty()
                                   ? fmt::format("batch {}", batch)
                                   : fmt::format("batch {} (training; inference at batch 1)", batch);
  out += paragraph("", fmt::format("Peak and headroom at the given context and {}{}; max context at {} (prompt tokens for "
                                   "inference, sequence length for training); max batch at the given context. All from "
                                   "llmem's estimate (llmem estimate).",
                                   at_batch, split ? ", per GPU" : "", at_batch),
                   0);
  bool capped = false, any = false, approximate = false, modelled = false, sharded = false, needed_modelled = false;
  std::string needed_shardings;
  for (const auto& o : r.options) {
    capped = capped || o.context_capped || o.batch_capped;
    any = any || o.fits;
    approximate = approximate || (o.gpus_needed > 1 && !o.gpus_needed_modelled) || (split && !o.per_gpu_modelled);
    modelled = modelled || (o.per_gpu_modelled && o.mode == FitMode::kInference);
    sharded = sharded || !o.sharding.empty();
    needed_modelled = needed_modelled || o.gpus_needed_modelled;
    if (!o.gpus_needed_sharding.empty())
      needed_shardings += fmt::format("{}{} {}: {} on {}", needed_shardings.empty() ? "" : "; ", fit_mode_name(o.mode), o.precision,
                                      o.gpus_needed_sharding, o.gpus_needed);
  }
  if (capped) out += paragraph("", "* the search's limit (the model's max_position_embeddings, or 2^20), not memory's.", 2);
  if (approximate) out += paragraph("", kApproxLegend, 2);
  if (modelled)
    out += paragraph("", "Inference over several GPUs: per GPU as from_pretrained(device_map=\"auto\") places the layers "
                         "(llmem estimate --gpus), the largest GPU's peak; the placement is accelerate's own, the memory modelled from "
                         "source and not measured on several GPUs.", 2);
  if (sharded)
    out += paragraph("", "full/SHARDING: full fine-tuning per rank (llmem estimate --gpus --sharding), each of ddp, zero1, "
                         "zero2, zero3 and fsdp estimated and the one with the most headroom shown; modelled from source "
                         "(rank 0 of DDP and FSDP2 measured on one GPU: FSDP2's process peak up to 26 % higher).", 2);
  if (needed_modelled)
    out += paragraph("", "GPUs needed without ~: the fewest of 2, 4, 8, ..., 64 GPUs on which the per-GPU model fits "
                         "(inference: device_map=\"auto\"; full training: the first sharding that fits" +
                         (needed_shardings.empty() ? std::string(")") : "; " + needed_shardings + ")") + ".", 2);
  if (!any) append_nothing_fits(out, r, req);
  append_notes(out, r.notes);
  return out;
}

json ranked_json(const RankedModel& m) {
  json j = option_json(m.best);
  j["model"] = m.id;
  j["params"] = m.params;
  j["family"] = m.family;
  return j;
}

std::string transformers_ranking_text(const FitRanking& rk, const FitRequest& req) {
  std::string out;
  const bool split = req.gpus > 1;
  out += paragraph("", fmt::format("The embedded catalog on {}{}: inference at batch 1, {}-token prompt + {} new tokens",
                                   req.gpu.display_name, split ? fmt::format(" × {} GPUs", req.gpus) : "",
                                   req.workload.prompt_tokens, req.workload.new_tokens),
                   2);
  out += paragraph("", gpu_budget_text(req.gpu, split), 2);
  out += "\n";
  append(out, "{:<44} {:>8} {:<9} {:>9} {:>9} {:>12}\n", "Model", "Params", "Precision", "Peak", "Headroom", "Max context");
  append(out, "{:<44} {:>8} {:<9} {:>9} {:>9} {:>12}\n", "", "B", "", "GiB", "GiB", "tokens");
  append(out, "{}\n", std::string(96, '-'));
  for (const auto& m : rk.fits)
    append(out, "{:<44} {:>8.2f} {:<9} {:>9} {:>9} {:>12}\n", m.id.substr(0, 44), static_cast<double>(m.params) / 1e9,
           m.best.precision, per_gpu_cell(gib(m.best.per_gpu_bytes), split && !m.best.per_gpu_modelled),
           per_gpu_cell(gib_signed(m.best.headroom_bytes), split && !m.best.per_gpu_modelled),
           context_cell(m.best));
  append(out, "{}\n", std::string(96, '-'));
  out += paragraph("", fmt::format("{} of {} catalog models fit (fp16/bf16; fp32 needs twice the weights). Largest first.",
                                   rk.fits.size(), rk.fits.size() + rk.does_not_fit.size()),
                   0);
  if (!rk.does_not_fit.empty()) {
    std::string list;
    for (size_t i = 0; i < rk.does_not_fit.size(); ++i) {
      const auto& m = rk.does_not_fit[i];
      list += fmt::format("{}{} ({:.1f} GiB, {} GPUs)", i ? ", " : "", m.id, gib(m.best.process_peak_bytes), gpus_cell(m.best));
    }
    out += paragraph("Does not fit: ", list, 2);
  }
  for (const auto& s : rk.skipped) out += paragraph("skipped: ", s, 2);
  if (rk.fits.empty()) out += paragraph("", fmt::format("Nothing in the catalog fits a {:.2f} GiB budget.", budget_gib(req)), 0);
  if (split || !rk.does_not_fit.empty()) out += paragraph("", kApproxLegend, 2);
  append_notes(out, rk.notes);
  return out;
}

// ---- llama.cpp

json llama_option_json(const FitOption& o) {
  return {{"quant", o.precision},
          {"quant_predicted", o.weights_predicted},
          {"weight_bytes", o.weight_bytes},
          {"process_peak_bytes", o.process_peak_bytes},
          {"all_layers_fit", o.fits},
          {"max_ngl", o.max_gpu_layers},
          {"min_n_cpu_moe", o.min_n_cpu_moe ? json(*o.min_n_cpu_moe) : json(nullptr)},
          {"n_layer", o.layers},
          {"max_context", o.max_context},
          {"context_cap", o.context_cap},
          {"context_capped", o.context_capped}};
}

json llama_ranked_json(const RankedModel& m) {
  json j = llama_option_json(m.best);
  j["model"] = m.id;
  j["params"] = m.params;
  return j;
}

std::string ngl_cell(const FitOption& o) {
  if (o.fits) return "all";
  if (o.max_gpu_layers < 0) return "none";
  return fmt::format("{} of {}", o.max_gpu_layers, o.layers + 1);
}

// The smallest --n-cpu-moe that fits with every layer on the GPU: "—" for a dense model.
std::string ncmoe_cell(const FitOption& o) {
  if (!o.min_n_cpu_moe) return "—";
  if (*o.min_n_cpu_moe < 0) return "none";
  return std::to_string(*o.min_n_cpu_moe);
}

std::string llama_fit_text(const FitResult& r, const FitRequest& req) {
  const WorkloadSpec& w = req.workload;
  std::string out;
  out += paragraph("", fmt::format("{} under llama.cpp on {}, n_ctx {}, flash attention {}, KV {}", r.source.display_name(),
                                   req.gpu.display_name, w.n_ctx, w.flash_attn, w.cache_type_k),
                   2);
  out += paragraph("", gpu_budget_text(req.gpu), 2) + "\n";
  const bool moe = std::any_of(r.options.begin(), r.options.end(), [](const FitOption& o) { return o.min_n_cpu_moe.has_value(); });
  append(out, "{:<8} {:>11} {:>13} {:>6} {:>12}{} {:>14}\n", "quant", "file GiB", "GPU peak GiB", "fits", "-ngl",
         moe ? fmt::format(" {:>11}", "--n-cpu-moe") : "", "max context");
  for (const auto& x : r.options)
    append(out, "{:<8} {:>11.2f} {:>13.2f} {:>6} {:>12}{} {:>14}\n", x.precision, gib(x.weight_bytes), gib(x.process_peak_bytes),
           x.fits ? "yes" : "no", ngl_cell(x), moe ? fmt::format(" {:>11}", ncmoe_cell(x)) : "",
           x.max_context ? format_thousands(x.max_context) + (x.context_capped ? "*" : "") : "—");
  out += "\n";
  out += paragraph("", fmt::format("file GiB: tensor data of the GGUF{}; GPU peak: every layer on the GPU at n_ctx {}; -ngl: "
                                   "layers that fit (the output layer counts as one);{} max context: every layer on the GPU, "
                                   "multiples of 256 (* = the model's training context)",
                                   r.options.empty() || r.options[0].weights_predicted ? " llama-quantize would write (predicted)" : "",
                                   w.n_ctx,
                                   moe ? " --n-cpu-moe: with every layer on the GPU, the fewest layers (the first) whose routed "
                                         "experts stay in host memory for the rest to fit (the GPU multiplies them from copies "
                                         "for batches of 32 or more);"
                                       : ""),
                   0);
  append_notes(out, r.notes);
  return out;
}

std::string llama_ranking_text(const FitRanking& rk, const FitRequest& req) {
  std::string out;
  out += paragraph("", fmt::format("The embedded catalog under llama.cpp on {}, n_ctx {}: the best quantisation with every "
                                   "layer on the GPU",
                                   req.gpu.display_name, req.workload.n_ctx),
                   2);
  out += paragraph("", gpu_budget_text(req.gpu), 2) + "\n";
  append(out, "{:<40} {:>8} {:>7} {:>9} {:>12} {:>12}\n", "model", "params B", "quant", "file GiB", "GPU peak GiB", "max context");
  for (const auto& m : rk.fits)
    append(out, "{:<40} {:>8.2f} {:>7} {:>9.2f} {:>12.2f} {:>12}\n", m.id, static_cast<double>(m.params) / 1e9, m.best.precision,
           gib(m.best.weight_bytes), gib(m.best.process_peak_bytes), format_thousands(m.best.max_context));
  if (!rk.does_not_fit.empty()) {
    // a model that fits at no scheme is shown at the last one tried, the smallest
    append(out, "\ndoes not fit even at {} (GiB needed; the layers that fit with -ngl, or for MoE models the fewest\n"
                "layers whose experts stay in host memory, --n-cpu-moe):\n",
           rk.does_not_fit.front().best.precision);
    for (const auto& m : rk.does_not_fit)
      append(out, "  {:<40} {:>8.2f} B {:>7.2f} GiB  -ngl {}{}\n", m.id, static_cast<double>(m.params) / 1e9,
             gib(m.best.process_peak_bytes), ngl_cell(m.best),
             m.best.min_n_cpu_moe && *m.best.min_n_cpu_moe >= 0 ? fmt::format(", --n-cpu-moe {}", *m.best.min_n_cpu_moe) : "");
  }
  for (const auto& s : rk.skipped) out += paragraph("skipped: ", s, 2);
  append_notes(out, rk.notes);
  return out;
}

// ---- vLLM: the largest --max-model-len that starts, the concurrency at the requested one, and for --concurrency
// the utilisation and --kv-cache-memory that hold it

bool is_vllm(const std::string& engine) { return engine == "vllm"; }

json vllm_option_json(const FitOption& o) {
  json j = {{"starts", o.fits},
            {"largest_max_model_len", o.max_context},
            {"model_max_len", o.context_cap},
            {"weight_bytes", o.weight_bytes},
            {"process_peak_bytes", o.process_peak_bytes}};
  if (o.serving) {
    const ServingFigures& s = *o.serving;
    j["max_model_len"] = s.max_model_len;
    j["total_memory_bytes"] = s.total_memory_bytes;
    j["total_memory_basis"] = s.total_memory_basis;
    j["gpu_memory_utilization"] = s.gpu_memory_utilization;
    j["available_kv_cache_bytes"] = s.available_kv_bytes;
    j["kv_cache_tokens"] = s.kv_cache_tokens;
    j["max_concurrency"] = s.max_concurrency;
    if (o.workload.serving_concurrency) {
      j["target_concurrency"] = o.workload.serving_concurrency;
      j["min_gpu_memory_utilization"] = s.min_gpu_memory_utilization ? json(*s.min_gpu_memory_utilization) : json(nullptr);
      j["kv_cache_memory_bytes"] = s.kv_cache_memory_bytes;
    }
  }
  return j;
}

std::string vllm_fit_text(const FitResult& r, const FitRequest& req) {
  std::string out;
  append(out, "{} under vLLM {} on {} ({:.1f} GiB)\n\n", r.source.display_name(),
         r.options.empty() ? std::string() : r.options.front().workload.vllm_version, req.gpu.display_name, gib(req.gpu.memory_bytes));
  for (const auto& o : r.options) {
    if (!o.serving) continue;
    const ServingFigures& s = *o.serving;
    append(out, "At --max-model-len {} and --gpu-memory-utilization {:.2f}: {}; KV cache {} tokens, {:.2f}x concurrency.\n",
           format_thousands(s.max_model_len), s.gpu_memory_utilization, o.fits ? "starts" : "does not start",
           format_thousands(s.kv_cache_tokens), s.max_concurrency);
    append(out, "Largest --max-model-len that starts: {}\n",
           o.max_context ? format_thousands(o.max_context) + (o.context_capped ? " (the model's maximum)" : "") : "none");
    if (o.workload.serving_concurrency) {
      append(out, "For {} requests of {} tokens at once: ", o.workload.serving_concurrency, format_thousands(s.max_model_len));
      if (s.min_gpu_memory_utilization) append(out, "--gpu-memory-utilization {:.3f}", *s.min_gpu_memory_utilization);
      else append(out, "no --gpu-memory-utilization is enough");
      append(out, ", or --kv-cache-memory {} ({:.2f} GiB)\n", s.kv_cache_memory_bytes, gib(s.kv_cache_memory_bytes));
    }
    // vLLM budgets against the total torch reports; only some cards' totals are known from public logs
    if (s.total_memory_basis == "nominal")
      append(out, "note: budgeted against the card's size ({:.2f} GiB); torch reports a few hundred MiB less "
                  "(give that as the GPU's memory)\n", gib(s.total_memory_bytes));
  }
  return out;
}

std::string vllm_ranking_text(const FitRanking& rk, const FitRequest& req) {
  std::string out;
  out += paragraph("", fmt::format("The embedded catalog under vLLM on {} ({:.1f} GiB): the largest --max-model-len that starts",
                                   req.gpu.display_name, gib(req.gpu.memory_bytes)),
                   0);
  out += "\n";
  append(out, "{:<44} {:>9} {:>12} {:>16}\n", "model", "params B", "weights GiB", "max-model-len");
  for (const auto& m : rk.fits)
    append(out, "{:<44} {:>9.2f} {:>12.2f} {:>16}\n", m.id, static_cast<double>(m.params) / 1e9, gib(m.best.weight_bytes),
           format_thousands(m.best.max_context));
  if (!rk.does_not_fit.empty()) {
    append(out, "\ndoes not start:\n");
    for (const auto& m : rk.does_not_fit)
      append(out, "  {:<44} {:>9.2f} B  {:.2f} GiB needed\n", m.id, static_cast<double>(m.params) / 1e9, gib(m.best.process_peak_bytes));
  }
  for (const auto& s : rk.skipped) out += paragraph("skipped: ", s, 2);
  return out;
}

}  // namespace

json fit_json(const FitResult& r, const FitRequest& req) {
  json options = json::array();
  if (is_vllm(r.engine)) {
    for (const auto& o : r.options) options.push_back(vllm_option_json(o));
    return {{"schema_version", 1}, {"engine", "vllm"}, {"source", source_json(r.source)}, {"params", r.params},
            {"gpu", gpu_json(req)}, {"options", options}};
  }
  if (is_llamacpp(r.engine)) {
    for (const auto& o : r.options) options.push_back(llama_option_json(o));
    return {{"schema_version", 1}, {"engine", "llama.cpp"}, {"source", source_json(r.source)}, {"architecture", r.architecture},
            {"gpu", gpu_json(req)},  {"n_ctx", req.workload.n_ctx}, {"options", options}, {"notes", r.notes}};
  }
  for (const auto& o : r.options) options.push_back(option_json(o));
  return {{"schema_version", 1},
          {"source", source_json(r.source)},
          {"params", r.params},
          {"max_positions", r.max_positions},
          {"gpu", gpu_json(req)},
          {"prompt", req.workload.prompt_tokens},
          {"new_tokens", req.workload.new_tokens},
          {"seq", req.workload.seq_tokens},
          {"options", options},
          {"notes", r.notes},
          {"multi_gpu", kMultiGpuNote}};
}

std::string fit_text(const FitResult& r, const FitRequest& req) {
  if (is_vllm(r.engine)) return vllm_fit_text(r, req);
  return is_llamacpp(r.engine) ? llama_fit_text(r, req) : transformers_fit_text(r, req);
}

json ranking_json(const FitRanking& rk, const FitRequest& req) {
  json fits = json::array(), not_fit = json::array();
  if (is_vllm(rk.engine)) {
    auto ranked = [](const RankedModel& m) {
      json j = vllm_option_json(m.best);
      j["model"] = m.id;
      j["params"] = m.params;
      return j;
    };
    for (const auto& m : rk.fits) fits.push_back(ranked(m));
    for (const auto& m : rk.does_not_fit) not_fit.push_back(ranked(m));
    return {{"schema_version", 1}, {"engine", "vllm"}, {"gpu", gpu_json(req)}, {"models", fits},
            {"does_not_fit", not_fit}, {"skipped", rk.skipped}};
  }
  const bool llama = is_llamacpp(rk.engine);
  for (const auto& m : rk.fits) fits.push_back(llama ? llama_ranked_json(m) : ranked_json(m));
  for (const auto& m : rk.does_not_fit) not_fit.push_back(llama ? llama_ranked_json(m) : ranked_json(m));
  if (llama)
    return {{"schema_version", 1}, {"engine", "llama.cpp"}, {"gpu", gpu_json(req)},         {"n_ctx", req.workload.n_ctx},
            {"models", fits},      {"does_not_fit", not_fit}, {"skipped", rk.skipped}, {"notes", rk.notes}};
  return {{"schema_version", 1},
          {"gpu", gpu_json(req)},
          {"prompt", req.workload.prompt_tokens},
          {"new_tokens", req.workload.new_tokens},
          {"models", fits},
          {"does_not_fit", not_fit},
          {"skipped", rk.skipped},
          {"notes", rk.notes},
          {"multi_gpu", kMultiGpuNote}};
}

json gpus_fit_json(const std::vector<GpuFit>& fits, const FitRequest& req) {
  json gpus = json::array();
  for (const auto& f : fits) {
    FitRequest r = req;
    r.gpu = f.gpu;
    json j = {{"gpu", gpu_json(r)}, {"options", json::array()}};
    for (const auto& o : f.result.options) j["options"].push_back(vllm_option_json(o));
    gpus.push_back(std::move(j));
  }
  const FitResult* first = fits.empty() ? nullptr : &fits.front().result;
  return {{"schema_version", 1},
          {"engine", first ? first->engine : std::string("vllm")},
          {"source", first ? source_json(first->source) : json(nullptr)},
          {"params", first ? first->params : 0},
          {"engine_version", first && !first->options.empty() ? first->options.front().workload.vllm_version : ""},
          {"gpus", gpus}};
}

std::string gpus_fit_text(const std::vector<GpuFit>& fits, const FitRequest& req) {
  std::string out;
  if (fits.empty()) return out;
  const FitResult& first = fits.front().result;
  const FitOption* o0 = first.options.empty() ? nullptr : &first.options.front();
  const uint64_t asked = o0 && o0->serving ? o0->serving->max_model_len : 0;
  append(out, "{} under vLLM {} on every GPU of the catalog (--gpu NAME for one)\n", first.source.display_name(),
         o0 ? o0->workload.vllm_version : std::string());
  append(out, "--gpu-memory-utilization {:.2f}; KV cache and concurrency at --max-model-len {}\n\n",
         o0 ? o0->workload.gpu_memory_utilization : 0.0, format_thousands(asked));
  append(out, "{:<24} {:>8} {:>7} {:>16} {:>14} {:>12}\n", "GPU", "GiB", "starts", "KV tokens", "concurrency", "largest len");
  append(out, "{}\n", std::string(86, '-'));
  bool nominal = false, other = false;
  for (const auto& f : fits) {
    if (f.result.options.empty() || !f.result.options.front().serving) continue;
    const FitOption& o = f.result.options.front();
    const ServingFigures& s = *o.serving;
    nominal = nominal || s.total_memory_basis == "nominal";
    other = other || f.gpu.context_source.find("not known for this card") != std::string::npos;
    append(out, "{:<24} {:>8.1f} {:>7} {:>16} {:>14} {:>12}\n", f.gpu.name + (f.gpu.context_source.find("not known for this card") == std::string::npos ? "" : " (!)"),
           gib(f.gpu.memory_bytes), o.fits ? "yes" : "no", o.fits ? format_thousands(s.kv_cache_tokens) : std::string("-"),
           o.fits ? fmt::format("{:.2f}x", s.max_concurrency) : std::string("-"), o.max_context ? format_thousands(o.max_context) + (o.context_capped ? "*" : "") : "none");
  }
  append(out, "{}\n", std::string(86, '-'));
  append(out, "largest len: the largest --max-model-len that starts on that card; * the model's maximum.\n");
  if (nominal)
    append(out, "Cards without a driver-reported total are budgeted against their nominal size; torch reports a\n"
                "few hundred MiB less.\n");
  if (other) append(out, "(!) a card whose per-process overheads are not known (llmem --list-gpus says which).\n");
  (void)req;
  return out;
}

std::string ranking_text(const FitRanking& rk, const FitRequest& req) {
  if (is_vllm(rk.engine)) return vllm_ranking_text(rk, req);
  return is_llamacpp(rk.engine) ? llama_ranking_text(rk, req) : transformers_ranking_text(rk, req);
}

}  // namespace llmem::report
