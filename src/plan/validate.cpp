// Validation against bench/data (validate.hpp): each record becomes an estimate request through the seam.
#include "llmem/validate.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "llmem/catalog.hpp"
#include "llmem/error.hpp"
#include "llmem/json_text.hpp"
#include "llmem/estimate.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/units.hpp"

namespace llmem {
namespace {

using nlohmann::json;

// The catalog id of a measurement's model, from the harness's file stem ("microsoft__phi-2").
std::string model_id(const std::string& stem) {
  auto sep = stem.find("__");
  return sep == std::string::npos ? stem : stem.substr(0, sep) + "/" + stem.substr(sep + 2);
}

// A field that may be absent or null.
template <typename T>
T field(const json& rec, const char* key, T fallback) {
  auto it = rec.find(key);
  return it == rec.end() || it->is_null() ? fallback : it->get<T>();
}

// The harness ran llama.cpp with -ngl 999 (or more) for "every layer".
constexpr int64_t kHarnessAllLayers = 900;

// A llama.cpp run (bench/gpu/llamacpp/measure_llamacpp.py): the buffers llama.cpp itself logged (model, KV,
// compute on CUDA0) against the engine's, and the NVML process peak where the run completed.
std::optional<ValidationRow> evaluate_llamacpp(const json& rec, const GpuProfile& gpu) {
  const json& lg = rec.at("llama_log");
  // a run that logged no CUDA buffer at all did not get as far as the context (with -ngl 0 llama.cpp still
  // reserves a CUDA compute buffer, for the ops it offloads)
  auto logged_cuda = [&](const char* k) { return lg.is_object() && lg.contains(k) && lg[k].contains("CUDA0"); };
  if (!logged_cuda("model_buffer_mib") && !logged_cuda("compute_buffer_mib")) return std::nullopt;
  const std::string id = model_id(rec.at("catalog_id"));
  auto entry = find_in_catalog(id);
  if (!entry) return std::nullopt;
  // the run's config: the catalog's, with the harness's overrides (e.g. a shorter context) applied
  json cfg = json::parse(entry->config_json);
  const json overrides = field<json>(rec, "overrides", json::object());  // a named copy: items() does not own it
  for (const auto& [k, v] : overrides.items()) cfg[k] = v;
  ModelSource source = catalog_source(*entry);
  source.config = HfConfig::parse(cfg.dump(), id);

  EstimateRequest req;
  req.source_facts = std::make_shared<const SourceFacts>(read_source_facts(std::move(source)));
  req.engine = "llamacpp";
  req.gpu_profile = gpu;
  WorkloadSpec& w = req.workload;
  w.quant = rec.at("scheme");
  w.n_ctx = rec.at("n_ctx");
  w.batch = rec.at("n_batch").get<int64_t>();
  w.n_ubatch = rec.at("n_ubatch");
  const int64_t ngl = rec.at("n_gpu_layers");
  w.n_gpu_layers = ngl >= kHarnessAllLayers ? -1 : ngl;
  w.flash_attn = rec.at("flash_attn");
  w.cache_type_k = rec.at("cache_type_k");
  w.cache_type_v = rec.at("cache_type_v");
  // tensor placement beyond -ngl (records before 2026-12-05 have none)
  w.n_cpu_moe = field<int64_t>(rec, "n_cpu_moe", 0);
  if (const std::string ot = field<std::string>(rec, "override_tensor", ""); !ot.empty()) w.override_tensor = {ot};
  w.no_mmap = field<bool>(rec, "no_mmap", false);
  const std::string load_mode = field<std::string>(rec, "load_mode", "");
  if (load_mode == "mlock") w.mlock = true;
  else if (load_mode == "none") w.no_mmap = true;
  else if (!load_mode.empty() && load_mode != "mmap" && load_mode != "auto")
    throw Error(ErrorKind::kInvalidInput, "", fmt::format("load_mode \"{}\" is not modelled", load_mode));
  const Estimate e = estimate(req).estimate;

  ValidationRow r;
  r.group = "llama.cpp";
  r.label = fmt::format("{} {} c{} fa-{} {} ngl{}", rec.at("model").get<std::string>(), rec.at("scheme").get<std::string>(), w.n_ctx,
                        w.flash_attn, w.cache_type_k, ngl >= kHarnessAllLayers ? std::string("all") : std::to_string(ngl));
  if (w.n_ubatch != 512) r.label += fmt::format(" ub{}", w.n_ubatch);
  if (w.n_cpu_moe) r.label += fmt::format(" ncmoe{}", w.n_cpu_moe);
  if (!w.override_tensor.empty()) r.label += " ot:" + w.override_tensor.front();
  if (w.no_mmap) r.label += " no-mmap";
  if (w.mlock) r.label += " mlock";
  double logged = 0;
  for (const char* k : {"model_buffer_mib", "kv_buffer_mib", "compute_buffer_mib"})
    if (lg.contains(k) && lg[k].contains("CUDA0")) logged += lg[k]["CUDA0"].get<double>() * kMiB;
  // llama.cpp has no caching allocator: its GPU buffers stand for both the framework and the reserved peak
  r.estimated_framework_bytes = r.estimated_reserved_bytes = static_cast<double>(e.framework_peak_bytes);
  r.measured_framework_bytes = r.measured_reserved_bytes = logged;
  r.estimated_process_bytes = static_cast<double>(e.process_peak_bytes);
  if (field<bool>(rec, "ok", false) && field<double>(rec, "peak_tree_bytes", 0) > 0) {
    r.measured_process_bytes = rec["peak_tree_bytes"].get<double>();
    r.process_measured = true;
  }
  return r;
}

// The transformers workload a harness record describes.
WorkloadSpec transformers_workload(const json& rec, const std::string& mode) {
  WorkloadSpec w;
  w.dtype = field<std::string>(rec, "dtype", "fp16");
  w.batch = field<int64_t>(rec, "batch", 1);
  // The attention implementation transformers used is part of the scenario (the harness reads it back).
  if (rec.contains("attn") && rec["attn"].is_string() && (rec["attn"] == "sdpa" || rec["attn"] == "eager")) w.attn = rec["attn"];
  // the harness builds a model with from_config unless the record loads a saved checkpoint (load: from_pretrained)
  w.from_config = field<std::string>(rec, "load", "") != "from_pretrained";
  w.alloc_conf = field<std::string>(rec, "alloc_conf", "");
  if (mode == "train") {
    w.train = rec.at("train");
    w.precision = field<std::string>(rec, "precision", "bf16");
    // the harness's "adamw" is AdamW(fused=False), which turns the foreach default off: the for-loop;
    // "adamw-default" is AdamW(params); "hf-default" the Trainer's own choice
    w.optimizer = field<std::string>(rec, "optimizer", "adamw");
    if (w.optimizer == "adamw") w.optimizer = "adamw-forloop";
    else if (w.optimizer == "adamw-default") w.optimizer = "adamw";
    w.hf_trainer = field<bool>(rec, "hf_trainer", false);
    if (w.hf_trainer && w.optimizer == "hf-default") w.optimizer.clear();
    w.grad_accum = field<int64_t>(rec, "grad_accum", 1);
    w.seq_tokens = rec.at("seq");
    w.grad_ckpt = field<bool>(rec, "grad_ckpt", false);
    w.lora_r = field<int64_t>(rec, "lora_r", 16);
    if (rec.contains("lora_targets") && rec["lora_targets"].is_array()) w.lora_targets = rec["lora_targets"].get<std::vector<std::string>>();
    // rank 0 of a sharded run with PyTorch's fake process group (bench/gpu/fake_pg_scenarios.py)
    w.n_gpus = field<int64_t>(rec, "gpus", 1);
    w.sharding = field<std::string>(rec, "sharding", "");
  } else {
    w.prompt_tokens = rec.at("prompt");
    w.use_cache = mode != "forward";
    w.new_tokens = field<int64_t>(rec, "new_tokens", 1);
    if (w.use_cache) w.cache_impl = field<std::string>(rec, "cache_impl", "");
    // a quantised checkpoint's loading options: FineGrainedFP8Config(dequantize=True)
    if (rec.contains("quant_options") && rec["quant_options"].is_object())
      w.fp8_dequantize = field<bool>(rec["quant_options"], "dequantize", false);
  }
  return w;
}

std::string transformers_label(const std::string& id, const std::string& mode, const WorkloadSpec& w) {
  const std::string name = id.substr(id.find('/') + 1);
  if (mode == "train")
    return fmt::format("{} {} {} {} b{} s{}{}", name, w.train, w.precision, w.optimizer, *w.batch, w.seq_tokens, w.grad_ckpt ? " ckpt" : "");
  return fmt::format("{} {} {} b{} p{}{}", name, mode, w.dtype, *w.batch, w.prompt_tokens,
                     mode == "generate" ? fmt::format(" n{}", w.new_tokens) : "");
}

std::optional<ValidationRow> evaluate(const json& rec, const GpuProfile& gpu) {
  if (rec.contains("llama_log")) return evaluate_llamacpp(rec, gpu);
  if (!field<bool>(rec, "ok", false)) return std::nullopt;
  const std::string mode = rec.at("mode");
  const std::string id = model_id(rec.at("model"));
  auto entry = find_in_catalog(id);
  if (!entry) throw Error(ErrorKind::kNotFound, id, "measured model is not in the embedded catalog");
  EstimateRequest req;
  ModelSource src = catalog_source(*entry);
  if (rec.contains("config_override") && !rec.at("config_override").is_null()) {
    // the scenario built the catalog config with these keys replaced (a MoE cut to a few layers): estimate the same
    const auto& over = rec.at("config_override");
    if (!over.is_object()) throw Error(ErrorKind::kInvalidInput, id, "config_override is not an object");
    json cfg = json::parse(std::string(entry->config_json));
    for (const auto& [k, v] : over.items()) cfg[k] = v;
    src.config = HfConfig::parse(cfg.dump(), "catalog:" + entry->id + " with " + over.dump());
  }
  req.source_facts = std::make_shared<const SourceFacts>(read_source_facts(src));
  req.engine = "transformers";
  req.workload = transformers_workload(rec, mode);
  req.gpu_profile = gpu;
  const Estimate e = estimate(req).estimate;

  ValidationRow r;
  r.group = mode == "train" ? (req.workload.n_gpus > 1 ? "sharded" : "training") : "inference";
  r.label = transformers_label(id, mode, req.workload) +
            (req.workload.n_gpus > 1 ? fmt::format(" {}x{}", req.workload.sharding, req.workload.n_gpus) : "");
  r.estimated_framework_bytes = static_cast<double>(e.framework_peak_bytes);
  r.measured_framework_bytes = rec.at("max_allocated_bytes").get<double>();
  r.estimated_reserved_bytes = static_cast<double>(e.reserved_peak_bytes);
  r.measured_reserved_bytes = rec.at("max_reserved_bytes").get<double>();
  r.estimated_process_bytes = static_cast<double>(e.process_peak_bytes);
  if (rec.contains("nvml_process_peak_bytes") && rec["nvml_process_peak_bytes"].is_number() &&
      rec["nvml_process_peak_bytes"].get<double>() > 0) {
    r.measured_process_bytes = rec["nvml_process_peak_bytes"].get<double>();
    r.process_measured = true;
  }
  return r;
}

ErrorSummary summarize(std::vector<double> errors) {
  ErrorSummary s;
  s.cases = errors.size();
  if (errors.empty()) return s;
  for (auto& e : errors) e = std::fabs(e);
  std::sort(errors.begin(), errors.end());
  s.median_abs_error = errors.size() % 2 ? errors[errors.size() / 2] : (errors[errors.size() / 2 - 1] + errors[errors.size() / 2]) / 2;
  s.max_abs_error = errors.back();
  return s;
}

// The configs of the models the catalog lacks, from the file beside a vLLM log file ("" when there is none).
std::string configs_beside(const std::string& file) {
  const auto path = std::filesystem::path(file).parent_path() / "vllm_public_logs_configs.jsonl";
  std::ifstream in(path);
  if (!in) return "";
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A published vLLM start-up log: every figure it prints that can be compared becomes a row.
void add_startup_log(ValidationReport& out, const std::string& line, const std::string& configs) {
  const StartupLogCheck c = check_startup_log(line, configs);
  if (!c.not_modelled.empty()) {
    out.serving_not_compared.push_back(c.id + ": " + c.not_modelled);
    return;
  }
  for (const auto& f : c.compared) out.serving_rows.push_back({c.id, c.version_used, f.item, f.unit, f.logged, f.estimated});
  for (const auto& s : c.skipped) out.serving_not_compared.push_back(c.id + ": " + s);
}

std::vector<ServingItemSummary> summarize_serving(const std::vector<ServingLogRow>& rows) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<double>> errors;
  for (const auto& r : rows) {
    if (!errors.count(r.item)) order.push_back(r.item);
    errors[r.item].push_back(relative_error(r.estimated, r.logged));
  }
  std::vector<ServingItemSummary> out;
  for (const auto& item : order) out.push_back({item, summarize(errors[item])});
  return out;
}

std::vector<ValidationGroup> summarize_groups(const std::vector<ValidationRow>& rows) {
  std::map<std::string, std::vector<double>> framework, reserved, process;
  for (const auto& r : rows) {
    framework[r.group].push_back(relative_error(r.estimated_framework_bytes, r.measured_framework_bytes));
    reserved[r.group].push_back(relative_error(r.estimated_reserved_bytes, r.measured_reserved_bytes));
    if (r.process_measured) process[r.group].push_back(relative_error(r.estimated_process_bytes, r.measured_process_bytes));
  }
  std::vector<ValidationGroup> out;
  for (const char* g : {"inference", "training", "sharded", "llama.cpp"})
    out.push_back({g, summarize(framework[g]), summarize(reserved[g]), summarize(process[g])});
  return out;
}

}  // namespace

double relative_error(double estimated, double measured) { return measured > 0 ? (estimated - measured) / measured : 0; }

const ValidationGroup& ValidationReport::group(const std::string& name) const {
  for (const auto& g : groups)
    if (g.name == name) return g;
  throw Error(ErrorKind::kInvalidInput, "", "no validation group '" + name + "'");
}

ValidationReport validate_measurements(const std::vector<std::string>& files, const std::string& gpu_name) {
  GpuSpec gpu_spec;
  gpu_spec.name = gpu_name;
  const GpuProfile gpu = resolve_gpu(gpu_spec);
  ValidationReport out;
  for (const auto& f : files) {
    std::ifstream in(f);
    if (!in) throw Error(ErrorKind::kNotFound, f, "cannot be read");
    std::optional<std::string> configs;  // read when the file holds vLLM logs
    std::string line;
    size_t line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (line.empty()) continue;
      json rec;
      try {
        rec = json::parse(line);
      } catch (const json::exception&) {
        throw Error(ErrorKind::kInvalidInput, f, fmt::format("line {}: invalid JSON", line_no));
      }
      // a vLLM start-up log, or a config its logs name (the configs file given along with them)
      if (rec.contains("printed")) {
        if (!configs) configs = configs_beside(f);
        try {
          add_startup_log(out, line, *configs);
        } catch (const Error& e) {
          throw Error(e.kind(), f, fmt::format("line {}: {}", line_no, e.what()));
        }
        continue;
      }
      if (rec.contains("config") && rec.contains("model") && !rec.contains("mode")) continue;
      try {
        if (auto r = evaluate(rec, gpu)) out.rows.push_back(std::move(*r));
        else ++out.skipped_failed_runs;
      } catch (const json::exception& e) {
        throw Error(ErrorKind::kInvalidInput, f, fmt::format("line {}: missing or mistyped field ({})", line_no, json_error_text(e.what())));
      }
    }
  }
  out.groups = summarize_groups(out.rows);
  out.serving_summary = summarize_serving(out.serving_rows);
  return out;
}

}  // namespace llmem
