// Estimates rendered (estimate_report.hpp).
#include "llmem/estimate_report.hpp"

#include <algorithm>

#include "llmem/units.hpp"
#include "text.hpp"

namespace llmem::report {

using nlohmann::json;

namespace {

// The engine whose estimates carry a file's facts (architecture, scheme, tensors) and per-device components.
bool is_llamacpp(const EstimateResult& r) { return r.engine == "llamacpp"; }
// Serving engines (vLLM) carry their start-up figures.
bool is_serving(const EstimateResult& r) { return r.estimate.serving.has_value(); }

json gpu_json(const GpuProfile& gpu) {
  return {{"name", gpu.name},
          {"memory_bytes", gpu.memory_bytes},
          {"in_use_bytes", gpu.in_use_bytes},
          {"reserve_bytes", gpu.reserve_bytes},
          {"budget_bytes", gpu.budget_bytes()},
          {"cuda_context_bytes", gpu.cuda_context_bytes},
          {"cuda_context_source", gpu.context_source}};
}

// Weights that device_map offloads to the CPU (several GPUs) do not fit, whatever the GPUs' own peaks.
bool fits(const Estimate& e) { return e.fits_within(e.process_peak_bytes, e.gpu.budget_bytes()); }

// -ngl as llama.cpp applies it: -1 is every layer and the output layer.
int64_t gpu_layers(const EstimateResult& r) {
  return r.workload.n_gpu_layers < 0 ? static_cast<int64_t>(r.estimate.layers) + 1 : r.workload.n_gpu_layers;
}

// --gpus N: each GPU (inference) or rank (training) with its own peaks and breakdown.
json per_gpu_json(const Estimate& e) {
  json arr = json::array();
  for (const auto& g : e.per_gpu) {
    json comps = json::array();
    for (const auto& c : g.components) comps.push_back({{"name", c.name}, {"bytes", c.bytes}, {"detail", c.detail}});
    arr.push_back({{"index", g.index},
                   {"role", g.role},
                   {"modules", g.modules},
                   {"weight_bytes", g.weight_bytes},
                   {"framework_peak_bytes", g.framework_peak_bytes},
                   {"reserved_peak_bytes", g.reserved_peak_bytes},
                   {"process_peak_bytes", g.process_peak_bytes},
                   {"peak_phase", g.peak_phase},
                   {"fits", g.fits},
                   {"modelled_not_measured", true},
                   {"components", comps}});
  }
  return arr;
}

json transformers_json(const EstimateResult& r) {
  const Estimate& e = r.estimate;
  const Workload& w = r.workload;
  json comps = json::array();
  for (const auto& c : e.components) comps.push_back({{"name", c.name}, {"bytes", c.bytes}, {"detail", c.detail}});
  const char* mode = w.mode == RunMode::kGenerate ? "generate" : w.mode == RunMode::kForward ? "forward" : "train";
  json wl = {{"mode", mode}, {"dtype", dtype_name(w.dtype)}, {"batch", w.batch}};
  if (w.expandable_segments) wl["expandable_segments"] = true;
  if (w.mode == RunMode::kTrain) {
    wl["seq"] = w.prompt_tokens;
    wl["train"] = w.train == TrainMethod::kFull ? "full" : w.train == TrainMethod::kLora ? "lora" : "qlora";
    if (w.train == TrainMethod::kQLora) {
      wl["bnb_4bit_quant_type"] = w.bnb_fp4 ? "fp4" : "nf4";
      wl["bnb_double_quant"] = w.bnb_double_quant;
      wl["lora_targets"] = w.lora_targets;
    }
    wl["precision"] = w.precision == TrainPrecision::kBf16 ? "bf16" : "amp-bf16";
    wl["optimizer"] = optimizer_name(w.optimizer);
    wl["grad_ckpt"] = w.grad_ckpt;
    wl["grad_accum"] = w.grad_accum;
    wl["hf_trainer"] = w.hf_trainer;
  } else {
    wl["prompt"] = w.prompt_tokens;
    if (w.mode == RunMode::kGenerate) {
      wl["new_tokens"] = w.new_tokens;
      wl["cache"] = kv_cache_impl_name(w.cache);
    }
  }
  if (!e.per_gpu.empty()) {
    wl["gpus"] = w.gpus;
    if (w.mode == RunMode::kTrain) wl["sharding"] = w.sharding;
    else wl["device_map"] = w.device_map;
    if (!w.max_memory.empty()) {
      json mm = json::object();
      for (const auto& [i, b] : w.max_memory) mm[fmt::format("{}", i)] = b;
      wl["max_memory"] = mm;
    }
  }
  json out = {{"schema_version", 1},
          {"source", r.source.spec},
          {"engine", e.engine},
          {"engine_version", e.engine_version},
          {"gpu", gpu_json(e.gpu)},
          {"workload", wl},
          {"framework_peak_bytes", e.framework_peak_bytes},
          {"reserved_peak_bytes", e.reserved_peak_bytes},
          {"process_peak_bytes", e.process_peak_bytes},
          {"weight_bytes", e.weight_bytes},
          {"peak_phase", e.peak_phase},
          {"fits", fits(e)},
          {"components", comps},
          {"notes", e.notes}};
  if (!e.per_gpu.empty()) out["per_gpu"] = per_gpu_json(e);
  if (!e.multi_gpu_lines.empty()) out["multi_gpu"] = e.multi_gpu_lines;
  return out;
}

json llamacpp_json(const EstimateResult& r) {
  const Estimate& e = r.estimate;
  const Workload& w = r.workload;
  json comps = json::array();
  for (const auto& c : e.components)
    comps.push_back({{"name", c.name}, {"bytes", c.bytes}, {"device", c.device}, {"detail", c.detail}});
  json wl = {{"quant", e.weights_scheme},
             {"quant_predicted", e.weights_predicted},
             {"n_ctx", w.n_ctx},
             {"n_batch", w.n_batch},
             {"n_ubatch", w.n_ubatch},
             {"n_gpu_layers", gpu_layers(r)},
             {"cache_type_k", dtype_name(w.cache_type_k)},
             {"cache_type_v", dtype_name(w.cache_type_v)},
             {"flash_attn", flash_attention_name(w.flash_attn)},
             {"n_parallel", w.n_parallel}};
  // tensors kept in host memory beyond -ngl: the layers whose routed experts stay there, the overrides, mmap
  wl["cpu_moe_layers"] = std::min<uint64_t>(w.cpu_moe_layers, e.layers);
  json overrides = json::array();
  for (const auto& [pattern, buffer] : w.tensor_overrides) overrides.push_back(pattern + "=" + buffer);
  wl["override_tensor"] = overrides;
  wl["mmap"] = w.mmap;
  wl["mlock"] = w.mlock;
  json j = {{"schema_version", 1},
            {"source", r.source.spec},
            {"engine", e.engine},
            {"engine_version", e.engine_version},
            {"architecture", e.architecture},
            {"gpu", gpu_json(e.gpu)},
            {"workload", wl},
            {"weight_bytes", e.weight_bytes},
            {"framework_peak_bytes", e.framework_peak_bytes},
            {"process_peak_bytes", e.process_peak_bytes},
            {"host_bytes", e.host_bytes},
            {"fits", fits(e)},
            {"components", comps},
            {"notes", e.notes}};
  if (!e.weight_tensors.empty()) {
    json ts = json::array();
    for (const auto& t : e.weight_tensors) ts.push_back({{"name", t.name}, {"type", t.type}, {"ne", t.ne}, {"bytes", t.bytes}});
    j["tensors"] = ts;
  }
  if (!e.per_gpu.empty()) j["per_gpu"] = per_gpu_json(e);
  if (e.mmproj) {
    const MmprojFigures& m = *e.mmproj;
    j["mmproj"] = {{"projector_type", m.projector},
                   {"outtype", m.outtype},
                   {"n_tensors", m.n_tensors},
                   {"params", m.params},
                   {"file_tensor_bytes", m.file_tensor_bytes},
                   {"device", m.device},
                   {"weights_bytes", m.weights_bytes},
                   {"compute_bytes", m.compute_bytes},
                   {"host_input_bytes", m.host_compute_bytes},
                   {"warmup_image_size", m.warmup_image_size},
                   {"flash_attn", m.flash_attn}};
  }
  // --ram: the machine's RAM and whether the host side fits it (null when not given)
  j["host_peak_bytes"] = e.host_peak_bytes ? json(e.host_peak_bytes) : json(nullptr);
  j["host_ram_bytes"] = e.host_ram_bytes ? json(e.host_ram_bytes) : json(nullptr);
  j["host_fits"] = e.host_ram_bytes ? json(e.host_fits()) : json(nullptr);
  return j;
}

// Long provenance ("measured on an NVIDIA H200 (driver ..., CUDA ...): median ...") goes to numbered footnotes
// under the table, so that every line keeps to kColumns.
struct Footnotes {
  std::vector<std::string> texts;
  std::string ref(const std::string& text) {
    auto it = std::find(texts.begin(), texts.end(), text);
    if (it == texts.end()) it = texts.insert(texts.end(), text);
    return fmt::format("[{}]", it - texts.begin() + 1);
  }
  void append_to(std::string& out) const {
    for (size_t i = 0; i < texts.size(); ++i) out += paragraph(fmt::format("[{}] ", i + 1), texts[i], 4);
  }
};

// A component's "what": its description, wrapped into the column, with where its figure comes from (after the
// first ": ", when the description says) as a footnote.
void append_detail(std::string& out, const std::string& left, const std::string& detail, Footnotes& notes) {
  std::string text = detail;
  if (const size_t colon = detail.find(": "); colon != std::string::npos && columns(detail) > kColumns - columns(left)) {
    // "f() (peak: layer 31 (100000 tokens))" -> "f() (peak [2])" and "[2] layer 31 (100000 tokens)": a parenthesis
    // open before the colon closes after the reference, not inside the footnote.
    std::string head = detail.substr(0, colon);
    std::string tail = detail.substr(colon + 2);
    std::string close;
    const auto open = std::count(head.begin(), head.end(), '(') - std::count(head.begin(), head.end(), ')');
    for (auto i = open; i > 0 && !tail.empty() && tail.back() == ')'; --i) {
      tail.pop_back();
      close += ')';
    }
    text = head + " " + notes.ref(tail) + close;
  }
  const std::vector<std::string> lines = wrap(text, kColumns - columns(left));
  for (size_t i = 0; i < lines.size(); ++i) out += (i == 0 ? left : std::string(columns(left), ' ')) + lines[i] + "\n";
}

void append_notes(std::string& out, const std::vector<std::string>& notes) {
  for (const auto& n : notes) out += paragraph("note: ", n, 6);
}

// vLLM: the keys of issue 17 (integers, bytes) at the top level, per GPU, and the settings they are for.
json vllm_json(const EstimateResult& r) {
  const Estimate& e = r.estimate;
  const ServingFigures& s = *e.serving;
  const Workload& w = r.workload;
  json comps = json::array();
  for (const auto& c : e.components) comps.push_back({{"name", c.name}, {"bytes", c.bytes}, {"detail", c.detail}});
  json wl = {{"gpu_memory_utilization", s.gpu_memory_utilization},
             {"max_model_len", s.max_model_len},
             {"max_num_seqs", s.max_num_seqs},
             {"max_num_batched_tokens", s.max_num_batched_tokens},
             {"block_size", s.block_size},
             {"dtype", w.vllm_dtype},
             {"kv_cache_dtype", w.kv_cache_dtype},
             {"enforce_eager", w.enforce_eager},
             {"tensor_parallel_size", s.tensor_parallel_size},
             {"entrypoint", w.vllm_llm_class ? "LLM" : "vllm serve"}};
  if (w.kv_cache_memory_bytes) wl["kv_cache_memory_bytes"] = w.kv_cache_memory_bytes;
  json j = {{"schema_version", 1},
            {"source", r.source.spec},
            {"engine", e.engine},
            {"engine_version", e.engine_version},
            {"architecture", e.architecture},
            {"gpu", gpu_json(e.gpu)},
            {"workload", wl},
            {"total_memory_bytes", s.total_memory_bytes},
            {"total_memory_basis", s.total_memory_basis},
            {"requested_memory_bytes", s.requested_memory_bytes},
            {"weight_bytes", e.weight_bytes},
            {"activation_peak_bytes", s.activation_peak_bytes},
            {"non_torch_bytes", s.non_torch_bytes},
            {"cuda_graph_bytes", s.cuda_graph_bytes},
            {"available_kv_cache_bytes", s.available_kv_bytes},
            {"kv_cache_bytes", s.kv_cache_bytes},
            {"kv_cache_blocks", s.kv_blocks},
            {"kv_cache_tokens", s.kv_cache_tokens},
            {"max_concurrency", s.max_concurrency},
            {"kv_needed_bytes", s.kv_needed_bytes},
            {"process_peak_bytes", e.process_peak_bytes},
            {"starts", s.refusal.empty()},
            {"refusal", s.refusal},
            {"components", comps},
            {"notes", e.notes}};
  if (s.estimated_max_model_len) j["estimated_max_model_len"] = s.estimated_max_model_len;
  if (w.serving_concurrency) {
    j["target_concurrency"] = w.serving_concurrency;
    j["min_gpu_memory_utilization"] = s.min_gpu_memory_utilization ? json(*s.min_gpu_memory_utilization) : json(nullptr);
    j["kv_cache_memory_bytes_for_target"] = s.kv_cache_memory_bytes;
  }
  return j;
}

std::string vllm_description(const EstimateResult& r) {
  const ServingFigures& s = *r.estimate.serving;
  const Workload& w = r.workload;
  return fmt::format("{}, gpu_memory_utilization {:.2f}, max_model_len {}, max_num_seqs {}, max_num_batched_tokens {}, "
                     "KV {}{}{}",
                     w.vllm_llm_class ? "LLM()" : "vllm serve", s.gpu_memory_utilization, s.max_model_len, s.max_num_seqs,
                     s.max_num_batched_tokens, w.kv_cache_dtype == "auto" ? "in the model dtype" : w.kv_cache_dtype,
                     s.tensor_parallel_size > 1 ? fmt::format(", tensor parallel {} (figures per GPU)", s.tensor_parallel_size) : "",
                     w.enforce_eager ? ", eager" : "");
}

std::string vllm_text(const EstimateResult& r) {
  const Estimate& e = r.estimate;
  const ServingFigures& s = *e.serving;
  std::string out;
  Footnotes notes;
  out += paragraph("", fmt::format("{} on {} with {}", r.source.display_name(), e.gpu.display_name, e.engine_version), 2);
  out += paragraph("", vllm_description(r), 2);
  out += "\n";
  auto gib = [](double b) { return b / kGiB; };
  append(out, "What vLLM's start-up log will say (per GPU):\n");
  const std::string total_label = s.total_memory_basis == "torch"   ? "total (torch) x utilisation"
                                  : s.total_memory_basis == "given" ? "total (given) x utilisation"
                                                                    : "total (card size) x utilisation";
  append(out, "  {:<34}{:>10.2f} GiB x {:.2f} = {:.2f} GiB\n", total_label, gib(s.total_memory_bytes),
         s.gpu_memory_utilization, gib(s.requested_memory_bytes));
  append(out, "  {:<34}{:>10.4f} GiB\n", "Model loading took", gib(e.weight_bytes));
  append(out, "  {:<34}{:>10.2f} GiB\n", "activation peak (profile run)", gib(s.activation_peak_bytes));
  append(out, "  {:<34}{:>10.2f} GiB\n", "non-torch memory", gib(s.non_torch_bytes));
  append(out, "  {:<34}{:>10.2f} GiB\n", "Available KV cache memory", static_cast<double>(s.available_kv_bytes) / kGiB);
  append(out, "  {:<34}{:>10} tokens ({} blocks of {})\n", "GPU KV cache size", format_thousands(s.kv_cache_tokens),
         format_thousands(s.kv_blocks), s.block_size);
  append(out, "  {:<34}{:>10.2f}x for {} tokens per request\n", "Maximum concurrency", s.max_concurrency,
         format_thousands(s.max_model_len));
  if (s.cuda_graph_bytes) append(out, "  {:<34}{:>10.2f} GiB (after the KV cache; not in the budget)\n", "CUDA graphs", gib(s.cuda_graph_bytes));
  append(out, "\n{:<20}{:>14}  {}\n", "Component", "GiB", "what");
  append(out, "{}\n", std::string(kColumns, '-'));
  for (const auto& c : e.components)
    append_detail(out, fmt::format("{:<20}{:>14.3f}  ", c.name, gib(c.bytes)), c.detail, notes);
  append(out, "{}\n", std::string(kColumns, '-'));
  append(out, "{:<20}{:>14.3f}  {}\n", "Process peak", gib(e.process_peak_bytes),
         s.refusal.empty() ? "what nvidia-smi / NVML shows for the process, per GPU" : "the GPU memory it would need to start");
  if (r.workload.serving_concurrency) {
    append(out, "\nFor {} requests of {} tokens at once: ", r.workload.serving_concurrency, format_thousands(s.max_model_len));
    if (s.min_gpu_memory_utilization) append(out, "--gpu-memory-utilization {:.3f}", *s.min_gpu_memory_utilization);
    else append(out, "no --gpu-memory-utilization is enough");
    append(out, ", or --kv-cache-memory {} ({:.2f} GiB)\n", s.kv_cache_memory_bytes, gib(s.kv_cache_memory_bytes));
  }
  out += "\n" + paragraph("", s.refusal.empty() ? "vLLM starts." : "vLLM would not start: " + s.refusal, 2);
  for (const auto& n : e.notes)
    if (n.rfind("vLLM would not start", 0) != 0) out += paragraph("note: ", n, 6);
  notes.append_to(out);
  return out;
}

static const char* optimizer_label(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::kAdamWForeach: return "AdamW (foreach)";
    case OptimizerKind::kAdamWFused: return "AdamW (fused)";
    case OptimizerKind::kAdamWForLoop: return "AdamW (for-loop)";
    case OptimizerKind::kSgd: return "SGD";
    case OptimizerKind::kSgdMomentum: return "SGD (momentum)";
    case OptimizerKind::kAdafactor: return "Adafactor";
    case OptimizerKind::kAdamW8bit: return "AdamW 8-bit (bitsandbytes)";
    case OptimizerKind::kPagedAdamW8bit: return "paged AdamW 8-bit (bitsandbytes)";
  }
  return "?";
}

std::string transformers_description(const Workload& w) {
  if (w.mode == RunMode::kTrain)
    return fmt::format("{} fine-tuning{}, {}, {}, batch {} × {} tokens{}{}",
                       w.train == TrainMethod::kFull ? "full" : w.train == TrainMethod::kLora ? "LoRA" : "QLoRA",
                       w.hf_trainer ? " with the HF Trainer" : "",
                       w.train == TrainMethod::kQLora ? (w.bnb_fp4 ? "FP4 base" : "NF4 base")
                       : w.precision == TrainPrecision::kBf16 ? "bf16" : "amp-bf16",
                       optimizer_label(w.optimizer), w.batch, w.prompt_tokens,
                       w.grad_accum > 1 ? fmt::format(", {} micro-batches per step", w.grad_accum) : std::string(),
                       w.grad_ckpt ? ", gradient checkpointing" : "");
  if (w.mode == RunMode::kGenerate)
    return fmt::format("generate {} tokens from a {}-token prompt, batch {}, {}{}", w.new_tokens, w.prompt_tokens, w.batch,
                       dtype_name(w.dtype),
                       w.cache == KvCacheImpl::kDynamic ? "" : fmt::format(", {} cache", kv_cache_impl_name(w.cache)));
  return fmt::format("one forward pass of {} tokens, batch {}, {}, no KV cache", w.prompt_tokens, w.batch, dtype_name(w.dtype));
}

std::string llamacpp_description(const EstimateResult& r) {
  const Estimate& e = r.estimate;
  const Workload& w = r.workload;
  const int64_t all_layers = static_cast<int64_t>(e.layers) + 1;
  return fmt::format("llama.cpp, {}{}, n_ctx {}, n_ubatch {}, {} of {} layers on the GPU{}, KV {}/{}, flash attention {}",
                     e.weights_scheme, e.weights_predicted ? " (predicted file)" : "", w.n_ctx, w.n_ubatch,
                     std::min<int64_t>(gpu_layers(r), all_layers), all_layers, " (+1 = output layer)",
                     dtype_name(w.cache_type_k), dtype_name(w.cache_type_v), flash_attention_name(w.flash_attn));
}

void append_fit_line(std::string& out, const Estimate& e) {
  const double free_gib = (static_cast<double>(e.gpu.budget_bytes()) - static_cast<double>(e.process_peak_bytes)) / kGiB;
  append(out, "\n{} on {}: {}{}\n", fits(e) ? "Fits" : "Does NOT fit", e.gpu.display_name,
         free_gib >= 0 ? fmt::format("{:.2f} GiB to spare", free_gib) : fmt::format("{:.2f} GiB short", -free_gib),
         e.offloaded_weight_bytes ? " on the GPUs" : !e.host_fits() ? " on the GPU, but not in the machine's RAM" : "");
  if (e.offloaded_weight_bytes)
    append(out, "but {:.2f} GiB of weights do not fit them: device_map offloads those to the CPU\n",
           static_cast<double>(e.offloaded_weight_bytes) / kGiB);
  append(out, "{}\n", gpu_budget_text(e.gpu));
}

// --gpus N: one line per GPU (its share, its peaks), then the placement or sharding in words.
void append_per_gpu(std::string& out, const Estimate& e) {
  if (e.per_gpu.empty()) return;
  unsigned worst = e.per_gpu.front().index;
  uint64_t worst_bytes = 0;
  for (const auto& g : e.per_gpu)
    if (g.process_peak_bytes > worst_bytes) worst_bytes = g.process_peak_bytes, worst = g.index;
  append(out, "\nPer GPU (modelled from source, see the note; the table above is GPU {}'s, the largest):\n", worst);
  append(out, "{:<5}{:>9}{:>10}{:>11}{:>11}  {}\n", "GPU", "weights", "KV cache", "framework", "process", "holds");
  for (const auto& g : e.per_gpu) {
    uint64_t kv = 0;
    for (const auto& c : g.components)
      if (c.name == "kv_cache") kv = c.bytes;
    const std::string left = fmt::format("{:<5}{:>9.2f}{:>10.2f}{:>11.2f}{:>11.2f}  ", g.index, static_cast<double>(g.weight_bytes) / kGiB,
                                         static_cast<double>(kv) / kGiB, static_cast<double>(g.framework_peak_bytes) / kGiB,
                                         static_cast<double>(g.process_peak_bytes) / kGiB);
    const std::vector<std::string> lines = wrap(fmt::format("{}{}", g.role, g.fits ? "" : " (does NOT fit)"), kColumns - columns(left));
    for (size_t i = 0; i < lines.size(); ++i) append(out, "{}{}\n", i == 0 ? left : std::string(columns(left), ' '), lines[i]);
  }
  append(out, "{}\n", "(GiB; KV cache and the rest at that GPU's own peak)");
  for (const auto& l : e.multi_gpu_lines) out += paragraph("", l, 2);
}

std::string transformers_text(const EstimateResult& r) {
  const Estimate& e = r.estimate;
  std::string out;
  Footnotes notes;
  out += paragraph("", fmt::format("{} on {} with {}", r.source.display_name(), e.gpu.display_name, e.engine_version), 2);
  append(out, "{}\n\n", transformers_description(r.workload));
  append(out, "{:<20}{:>14}  {}\n", "Component", "GiB", "what");
  append(out, "{}\n", std::string(kColumns, '-'));
  for (const auto& c : e.components)
    append_detail(out, fmt::format("{:<20}{:>14.3f}  ", c.name, static_cast<double>(c.bytes) / kGiB), c.detail, notes);
  append(out, "{}\n", std::string(kColumns, '-'));
  append_detail(out, fmt::format("{:<20}{:>14.3f}  ", "Framework peak", static_cast<double>(e.framework_peak_bytes) / kGiB),
                fmt::format("torch.cuda.max_memory_allocated() (peak: {})", e.peak_phase), notes);
  append(out, "{:<20}{:>14.3f}  torch.cuda.max_memory_reserved()\n", "Reserved peak", static_cast<double>(e.reserved_peak_bytes) / kGiB);
  append(out, "{:<20}{:>14.3f}  what nvidia-smi / NVML shows for the process\n", "Process peak",
         static_cast<double>(e.process_peak_bytes) / kGiB);
  append_per_gpu(out, e);
  append_fit_line(out, e);
  append_notes(out, e.notes);
  notes.append_to(out);
  return out;
}

void append_tensor_table(std::string& out, const std::vector<WeightTensor>& tensors) {
  append(out, "{:<36} {:>8} {:>26} {:>14}\n", "Tensor", "type", "ne", "bytes");
  for (const auto& t : tensors) {
    std::string ne;
    for (size_t i = 0; i < t.ne.size(); ++i) ne += (i ? " x " : "") + std::to_string(t.ne[i]);
    append(out, "{:<36} {:>8} {:>26} {:>14}\n", t.name, t.type, ne, format_thousands(t.bytes));
  }
  append(out, "\n");
}

std::string llamacpp_text(const EstimateResult& r) {
  const Estimate& e = r.estimate;
  std::string out;
  Footnotes notes;
  out += paragraph("", fmt::format("{} ({}) on {} with {}", r.source.display_name(), e.architecture, e.gpu.display_name, e.engine_version), 2);
  out += paragraph("", llamacpp_description(r), 2);
  out += "\n";
  if (!e.weight_tensors.empty()) append_tensor_table(out, e.weight_tensors);
  append(out, "{:<22}{:>6}{:>12}  {}\n", "Component", "where", "GiB", "what");
  append(out, "{}\n", std::string(kColumns, '-'));
  for (const auto& c : e.components)
    append_detail(out, fmt::format("{:<22}{:>6}{:>12.3f}  ", c.name, c.device, static_cast<double>(c.bytes) / kGiB), c.detail, notes);
  append(out, "{}\n", std::string(kColumns, '-'));
  append(out, "{:<28}{:>12.3f}  tensor data of the {} file ({} bytes)\n", "Weights (file)", static_cast<double>(e.weight_bytes) / kGiB,
         e.weights_scheme, format_thousands(e.weight_bytes));
  const bool several = !e.per_gpu.empty();
  append(out, "{:<28}{:>12.3f}  {}\n", "GPU buffers", static_cast<double>(e.framework_peak_bytes) / kGiB,
         several ? "llama.cpp's buffers on the fullest GPU (model, KV, compute)"
         : e.mmproj && e.mmproj->device == "gpu" ? "GPU buffers (model, KV cache, compute, projector)"
                                                 : "llama.cpp's GPU buffers (model, KV cache, compute)");
  append(out, "{:<28}{:>12.3f}  {}\n", "GPU process peak", static_cast<double>(e.process_peak_bytes) / kGiB,
         several ? "what NVML shows for the process on the fullest GPU" : "what nvidia-smi / NVML shows for the process");
  append(out, "{:<28}{:>12.3f}  weights off the GPU ({}), CPU buffers, the process\n", "Host",
         static_cast<double>(e.host_bytes) / kGiB, r.workload.mmap ? "mapped" : r.workload.mlock ? "locked" : "pinned");
  if (e.host_peak_bytes > e.host_bytes)
    append(out, "{:<28}{:>12.3f}  while loading: the whole file mapped (page cache)\n",
           "Host peak", static_cast<double>(e.host_peak_bytes) / kGiB);
  if (e.mmproj) {
    const MmprojFigures& m = *e.mmproj;
    append(out, "{:<28}{:>12.3f}  {} mmproj, {}: {} bytes of tensor data\n", "Projector (file)",
           static_cast<double>(m.file_tensor_bytes) / kGiB, m.projector, m.outtype, format_thousands(m.file_tensor_bytes));
    append(out, "{:<28}{:>12.3f}  clip's weights {:.1f} + compute {:.1f} MiB, {}\n", "Projector buffers",
           static_cast<double>(m.weights_bytes + m.compute_bytes) / kGiB, static_cast<double>(m.weights_bytes) / kMiB,
           static_cast<double>(m.compute_bytes) / kMiB, m.device == "gpu" ? "on the GPU" : "host memory");
  }
  if (e.host_ram_bytes) {
    const double spare = (static_cast<double>(e.host_ram_bytes) - static_cast<double>(e.host_bytes)) / kGiB;
    append(out, "{:<28}{:>12.3f}  --ram: {}\n", "Host RAM", static_cast<double>(e.host_ram_bytes) / kGiB,
           spare >= 0 ? fmt::format("the host side fits, {:.2f} GiB to spare", spare)
           : r.workload.mmap ? fmt::format("{:.2f} GiB short (mapped weights re-read from disk)", -spare)
                             : fmt::format("{:.2f} GiB short (pinned buffers fail to allocate)", -spare));
  }
  append_fit_line(out, e);
  append_per_gpu(out, e);
  append_notes(out, e.notes);
  notes.append_to(out);
  return out;
}

}  // namespace

json estimate_json(const EstimateResult& result) {
  if (is_serving(result)) return vllm_json(result);
  return is_llamacpp(result) ? llamacpp_json(result) : transformers_json(result);
}

bool estimate_fits(const EstimateResult& result) { return fits(result.estimate); }

std::string estimate_text(const EstimateResult& result) {
  if (is_serving(result)) return vllm_text(result);
  return is_llamacpp(result) ? llamacpp_text(result) : transformers_text(result);
}

std::string workload_description(const EstimateResult& result) {
  if (is_serving(result)) return vllm_description(result);
  return is_llamacpp(result) ? llamacpp_description(result) : transformers_description(result.workload);
}

std::string gpu_budget_text(const GpuProfile& gpu, bool per_gpu) {
  std::string out = fmt::format("budget {:.2f} GiB{}: {:.2f} GiB", static_cast<double>(gpu.budget_bytes()) / kGiB,
                                per_gpu ? " per GPU" : "", static_cast<double>(gpu.memory_bytes) / kGiB);
  if (gpu.in_use_bytes) out += fmt::format(" less {:.2f} GiB in use now (NVML),", static_cast<double>(gpu.in_use_bytes) / kGiB);
  if (gpu.reserve_bytes || !gpu.reserve_source.empty())
    out += fmt::format(" less a {:.2f} GiB reserve{}", static_cast<double>(gpu.reserve_bytes) / kGiB,
                       gpu.reserve_source == "the default" ? " (the default; --reserve sets it)" : " (" + gpu.reserve_source + ")");
  return out;
}

namespace {

// The catalog by memory, smallest first (then by name).
std::vector<GpuProfile> gpus_by_memory() {
  std::vector<GpuProfile> gpus = gpu_catalog();
  std::stable_sort(gpus.begin(), gpus.end(), [](const GpuProfile& a, const GpuProfile& b) {
    return a.memory_bytes != b.memory_bytes ? a.memory_bytes < b.memory_bytes : a.name < b.name;
  });
  return gpus;
}

}  // namespace

std::string gpu_catalog_text(bool with_overheads) {
  std::string out;
  Footnotes notes;
  if (with_overheads) append(out, "{:<20} {:<32} {:>7} {:>8} {:>12}  {}\n", "Name", "GPU", "GiB", "MiB", "context MiB", "sources");
  else append(out, "{:<20} {:<32} {:>7} {:>8}  {}\n", "Name", "GPU", "GiB", "MiB", "source");
  for (const auto& g : gpus_by_memory()) {
    const std::string memory = notes.ref("memory: " + g.memory_source);
    if (with_overheads)
      append(out, "{:<20} {:<32} {:>7.2f} {:>8} {:>12.0f}  {} {}\n", g.name, g.display_name, static_cast<double>(g.memory_bytes) / kGiB,
             format_thousands(g.memory_bytes >> 20), static_cast<double>(g.cuda_context_bytes) / kMiB, memory,
             notes.ref("CUDA context: " + g.context_source));
    else
      append(out, "{:<20} {:<32} {:>7.2f} {:>8}  {}\n", g.name, g.display_name, static_cast<double>(g.memory_bytes) / kGiB,
             format_thousands(g.memory_bytes >> 20), memory);
  }
  out += "\n" + paragraph("", "GiB = 2^30 bytes, MiB = 2^20 bytes: the total memory the NVIDIA driver reports for the card "
                               "(nvidia-smi, NVML), smallest first; a 'nominal' source is the vendor's size, not yet a driver's.",
                           0);
  notes.append_to(out);
  return out;
}

json gpu_catalog_json() {
  json gpus = json::array();
  for (const auto& g : gpus_by_memory())
    gpus.push_back({{"name", g.name},
                    {"display_name", g.display_name},
                    {"memory_bytes", g.memory_bytes},
                    {"memory_source", g.memory_source},
                    {"cuda_context_bytes", g.cuda_context_bytes},
                    {"cuda_context_source", g.context_source}});
  return {{"schema_version", 1}, {"gpus", gpus}};
}

std::string weight_schemes_text(const std::vector<WeightScheme>& schemes) {
  std::string out;
  append(out, "{:<8} {:<8} {}\n", "Scheme", "default", "what (llama-quantize's mixture, no imatrix)");
  for (const auto& q : schemes) out += paragraph(fmt::format("{:<8} {:<8} ", q.name, q.default_type), q.description, 18);
  return out;
}

json weight_schemes_json(const std::vector<WeightScheme>& schemes) {
  json out = json::array();
  for (const auto& q : schemes) out.push_back({{"name", q.name}, {"default_type", q.default_type}, {"description", q.description}, {"needs_imatrix", q.needs_imatrix}});
  return {{"schema_version", 1}, {"engine", "llamacpp"}, {"schemes", out}};
}

json source_json(const ModelSource& src) {
  json j = {{"spec", src.spec},
            {"kind", source_kind_name(src.kind)},
            {"location", src.location},
            {"revision", src.revision},
            {"files_read", src.files_read},
            {"header_bytes_read", src.header_bytes_read}};
  if (src.remote) {
    const RemoteReadReport& r = *src.remote;
    j["remote"] = {{"endpoint", r.endpoint},
                   {"repo", r.repo},
                   {"requested_revision", r.requested_revision},
                   {"commit", r.commit},
                   {"network_used", r.network_used},
                   {"requests", r.requests},
                   {"bytes_transferred", r.bytes_transferred},
                   {"retries", r.retries},
                   {"cached_files", r.cached_files},
                   {"cache_dir", r.cache_dir}};
  } else {
    j["remote"] = nullptr;
  }
  return j;
}

std::string source_read_text(const ModelSource& src) {
  std::string out;
  if (!src.remote) {
    append(out, "llmem: {} ({}): {} of headers from {} file(s)\n", src.display_name(), source_kind_name(src.kind),
           format_bytes(src.header_bytes_read), src.files_read.size());
    return out;
  }
  const RemoteReadReport& r = *src.remote;
  append(out, "llmem: hub {} {}@{} -> commit {}\n", r.endpoint, r.repo, r.requested_revision,
         r.commit.empty() ? "(not reported)" : r.commit);
  for (const auto& line : r.request_log) append(out, "llmem:   {}\n", line);
  append(out, "llmem: {} request(s), {} transferred ({} bytes), {} retr{}; {} file(s) from the header cache{}\n", r.requests,
         format_bytes(r.bytes_transferred), r.bytes_transferred, r.retries, r.retries == 1 ? "y" : "ies", r.cached_files,
         r.cache_dir.empty() ? "" : " (" + r.cache_dir + ")");
  if (!r.cache_note.empty()) append(out, "llmem: {}\n", r.cache_note);
  return out;
}

}  // namespace llmem::report
