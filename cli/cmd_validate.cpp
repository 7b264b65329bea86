// llmem validate FILE.jsonl...: every measured scenario beside llmem's estimate of it, and the error summary.
//
// The measurements come from bench/gpu/measure_transformers.py run on a real GPU (bench/data/*.jsonl); the
// estimates are computed here from the model's config alone. Nothing of a measurement feeds the estimate except
// the scenario's description (model, workload) and the GPU's name.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "request_options.hpp"
#include "llmem/catalog.hpp"
#include "llmem/error.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/llamacpp.hpp"
#include "llmem/params.hpp"
#include "llmem/units.hpp"

namespace llmem::cli {
namespace {

using nlohmann::json;

struct Row {
  std::string label, group;  // group: "inference" or "training"
  double est_alloc = 0, meas_alloc = 0, est_reserved = 0, meas_reserved = 0, est_process = 0, meas_process = 0;
  bool has_process = false;
};

double rel_err(double est, double meas) { return meas > 0 ? (est - meas) / meas : 0; }

struct Summary {
  size_t n = 0;
  double median = 0, max = 0;
};

Summary summarize(std::vector<double> errs) {
  Summary s;
  s.n = errs.size();
  if (errs.empty()) return s;
  for (auto& e : errs) e = std::fabs(e);
  std::sort(errs.begin(), errs.end());
  s.median = errs.size() % 2 ? errs[errs.size() / 2] : (errs[errs.size() / 2 - 1] + errs[errs.size() / 2]) / 2;
  s.max = errs.back();
  return s;
}

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

// A llama.cpp run (bench/gpu/llamacpp/measure_llamacpp.py): the buffers llama.cpp itself logged (model, KV,
// compute on CUDA0) against the engine's, and the NVML process peak where the run completed.
std::optional<Row> evaluate_llamacpp(const json& rec, const std::string& gpu_override) {
  const json& lg = rec.at("llama_log");
  if (!lg.is_object() || !lg.contains("model_buffer_mib") || !lg["model_buffer_mib"].contains("CUDA0")) return std::nullopt;
  const std::string id = model_id(rec.at("catalog_id"));
  auto entry = find_in_catalog(id);
  if (!entry) return std::nullopt;
  json cfg = json::parse(entry->config_json);
  const json overrides = field<json>(rec, "overrides", json::object());  // a named copy: items() does not own it
  for (const auto& [k, v] : overrides.items()) cfg[k] = v;
  const ArchModel am = model_from_config(HfConfig::parse(cfg.dump(), id));
  llamacpp::Model m = llamacpp::from_config(am, id);
  llamacpp::quantize(m, llamacpp::find_scheme(rec.at("scheme")));
  EstimateOptions o;
  o.ctx = rec.at("n_ctx");
  o.batch = rec.at("n_batch");
  o.batch_given = true;
  o.ubatch = rec.at("n_ubatch");
  const int64_t ngl = rec.at("n_gpu_layers");
  o.ngl = ngl >= 900 ? -1 : ngl;
  o.flash_attn = rec.at("flash_attn");
  o.cache_type_k = rec.at("cache_type_k");
  o.cache_type_v = rec.at("cache_type_v");
  const GpuProfile& gpu = gpu_override.empty() ? default_gpu() : find_gpu(gpu_override);
  const Estimate e = llamacpp::estimate(m, llamacpp_run_from(o), gpu);
  Row r;
  r.group = "llama.cpp";
  r.label = fmt::format("{} {} c{} fa-{} {} ngl{}", rec.at("model").get<std::string>(), rec.at("scheme").get<std::string>(),
                        o.ctx, o.flash_attn, o.cache_type_k, ngl >= 900 ? std::string("all") : std::to_string(ngl));
  double logged = 0;
  for (const char* k : {"model_buffer_mib", "kv_buffer_mib", "compute_buffer_mib"})
    if (lg.contains(k) && lg[k].contains("CUDA0")) logged += lg[k]["CUDA0"].get<double>() * kMiB;
  r.est_alloc = r.est_reserved = static_cast<double>(e.framework_peak_bytes);
  r.meas_alloc = r.meas_reserved = logged;
  r.est_process = static_cast<double>(e.process_peak_bytes);
  if (field<bool>(rec, "ok", false) && field<double>(rec, "peak_tree_bytes", 0) > 0) {
    r.meas_process = rec["peak_tree_bytes"].get<double>();
    r.has_process = true;
  }
  return r;
}

std::optional<Row> evaluate(const json& rec, const std::string& gpu_override) {
  if (rec.contains("llama_log")) return evaluate_llamacpp(rec, gpu_override);
  if (!field<bool>(rec, "ok", false)) return std::nullopt;
  const std::string mode = rec.at("mode");
  EstimateOptions o;
  o.dtype = field<std::string>(rec, "dtype", "fp16");
  o.batch = field<int64_t>(rec, "batch", 1);
  // The attention implementation transformers used is part of the scenario (the harness reads it back).
  if (rec.contains("attn") && rec["attn"].is_string() && (rec["attn"] == "sdpa" || rec["attn"] == "eager")) o.attn = rec["attn"];
  if (mode == "train") {
    o.train = rec.at("train");
    o.precision = field<std::string>(rec, "precision", "bf16");
    o.optimizer = field<std::string>(rec, "optimizer", "adamw");
    o.seq = rec.at("seq");
    o.grad_ckpt = field<bool>(rec, "grad_ckpt", false);
    o.lora_r = field<int64_t>(rec, "lora_r", 16);
    if (rec.contains("lora_targets") && rec["lora_targets"].is_array()) {
      o.lora_targets.clear();
      for (const auto& t : rec["lora_targets"]) o.lora_targets += (o.lora_targets.empty() ? "" : ",") + t.get<std::string>();
    }
  } else {
    o.prompt = rec.at("prompt");
    o.no_cache = mode == "forward";
    o.new_tokens = field<int64_t>(rec, "new_tokens", 1);
  }
  Workload w = workload_from(o);
  w.from_config = true;  // the harness builds every model with from_config
  const std::string id = model_id(rec.at("model"));
  auto entry = find_in_catalog(id);
  if (!entry) throw Error(ErrorKind::kNotFound, id, "measured model is not in the embedded catalog");
  ArchModel m = model_from_config(HfConfig::parse(std::string(entry->config_json), "catalog:" + entry->id));
  const GpuProfile& gpu = gpu_override.empty() ? default_gpu() : find_gpu(gpu_override);
  Estimate e = estimate_transformers(m, w, gpu);
  Row r;
  r.group = mode == "train" ? "training" : "inference";
  if (mode == "train")
    r.label = fmt::format("{} {} {} {} b{} s{}{}", id.substr(id.find('/') + 1), o.train, o.precision, o.optimizer, o.batch, o.seq,
                          o.grad_ckpt ? " ckpt" : "");
  else
    r.label = fmt::format("{} {} {} b{} p{}{}", id.substr(id.find('/') + 1), mode, o.dtype, o.batch, o.prompt,
                          mode == "generate" ? fmt::format(" n{}", o.new_tokens) : "");
  r.est_alloc = static_cast<double>(e.framework_peak_bytes);
  r.meas_alloc = rec.at("max_allocated_bytes").get<double>();
  r.est_reserved = static_cast<double>(e.reserved_peak_bytes);
  r.meas_reserved = rec.at("max_reserved_bytes").get<double>();
  r.est_process = static_cast<double>(e.process_peak_bytes);
  if (rec.contains("nvml_process_peak_bytes") && rec["nvml_process_peak_bytes"].is_number() &&
      rec["nvml_process_peak_bytes"].get<double>() > 0) {
    r.meas_process = rec["nvml_process_peak_bytes"].get<double>();
    r.has_process = true;
  }
  return r;
}

const bool registered = register_command(30, [](CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("validate", "Compare llmem's estimates with GPU measurements (bench/data/*.jsonl)");
  auto files = std::make_shared<std::vector<std::string>>();
  auto markdown = std::make_shared<bool>(false);
  auto quiet = std::make_shared<bool>(false);
  auto as_json = std::make_shared<bool>(false);
  auto gpu = std::make_shared<std::string>();
  cmd->add_option("FILES", *files, "JSON Lines written by bench/gpu/measure_transformers.py")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--markdown", *markdown, "Print only the summary as a Markdown table (for the README)");
  cmd->add_flag("--summary", *quiet, "Print only the summary");
  cmd->add_flag("--json", *as_json, "Machine-readable rows and summary");
  cmd->add_option("--gpu", *gpu, "GPU profile for the estimates (default: the reference GPU)");
  cmd->footer("Example:\n  llmem validate bench/data/transformers_memory.jsonl");
  cmd->callback([=, &exit_code] {
    std::vector<Row> rows;
    size_t skipped = 0;
    for (const auto& f : *files) {
      std::ifstream in(f);
      std::string line;
      size_t line_no = 0;
      while (std::getline(in, line)) {
        ++line_no;
        if (line.empty()) continue;
        json rec;
        try {
          rec = json::parse(line);
        } catch (const json::exception& e) {
          throw Error(ErrorKind::kInvalidInput, f, fmt::format("line {}: invalid JSON", line_no));
        }
        try {
          if (auto r = evaluate(rec, *gpu)) rows.push_back(*r);
          else ++skipped;
        } catch (const json::exception& e) {
          throw Error(ErrorKind::kInvalidInput, f, fmt::format("line {}: missing or mistyped field ({})", line_no, e.what()));
        }
      }
    }
    std::map<std::string, std::vector<double>> alloc_err, reserved_err, process_err;
    for (const auto& r : rows) {
      alloc_err[r.group].push_back(rel_err(r.est_alloc, r.meas_alloc));
      reserved_err[r.group].push_back(rel_err(r.est_reserved, r.meas_reserved));
      if (r.has_process) process_err[r.group].push_back(rel_err(r.est_process, r.meas_process));
    }
    if (*as_json) {
      json jr = json::array();
      for (const auto& r : rows)
        jr.push_back({{"case", r.label}, {"group", r.group}, {"estimated_framework_peak_bytes", r.est_alloc},
                      {"measured_framework_peak_bytes", r.meas_alloc}, {"estimated_reserved_peak_bytes", r.est_reserved},
                      {"measured_reserved_peak_bytes", r.meas_reserved}, {"estimated_process_peak_bytes", r.est_process},
                      {"measured_process_peak_bytes", r.has_process ? json(r.meas_process) : json(nullptr)}});
      json js = json::object();
      for (const char* g : {"inference", "training"}) {
        auto a = summarize(alloc_err[g]), p = summarize(process_err[g]);
        js[g] = {{"cases", a.n}, {"framework_median_abs_error", a.median}, {"framework_max_abs_error", a.max},
                 {"process_median_abs_error", p.median}, {"process_max_abs_error", p.max}};
      }
      fmt::print("{}\n", json{{"rows", jr}, {"summary", js}, {"skipped_failed_runs", skipped}}.dump(2));
      exit_code = 0;
      return;
    }
    if (!*markdown && !*quiet) {
      fmt::print("{:<52}{:>10}{:>10}{:>8}{:>10}{:>10}{:>8}\n", "Case (GiB)", "est", "alloc", "err", "est", "NVML", "err");
      for (const auto& r : rows)
        fmt::print("{:<52}{:>10.3f}{:>10.3f}{:>+7.1f}%{:>10.3f}{:>10}{:>8}\n", r.label.substr(0, 51), r.est_alloc / kGiB,
                   r.meas_alloc / kGiB, 100 * rel_err(r.est_alloc, r.meas_alloc), r.est_process / kGiB,
                   r.has_process ? fmt::format("{:.3f}", r.meas_process / kGiB) : "—",
                   r.has_process ? fmt::format("{:+.1f}%", 100 * rel_err(r.est_process, r.meas_process)) : "—");
      fmt::print("\n");
    }
    if (*markdown) {
      fmt::print("| workload | cases | framework peak: median / max abs error | reserved: median / max | process (NVML): median / max |\n");
      fmt::print("|---|---:|---:|---:|---:|\n");
    }
    for (const char* g : {"inference", "training", "llama.cpp"}) {
      auto a = summarize(alloc_err[g]), rs = summarize(reserved_err[g]), p = summarize(process_err[g]);
      if (a.n == 0) continue;
      if (std::string(g) == "llama.cpp") {
        // llama.cpp has no caching allocator: its "framework peak" is the sum of the GPU buffers it logs
        if (*markdown)
          fmt::print("| llama.cpp (GPU buffers as llama.cpp logs them: model + KV + compute) | {} | {:.2f} % / {:.2f} % | — | {} |\n", a.n,
                     100 * a.median, 100 * a.max, p.n ? fmt::format("{:.1f} % / {:.1f} %", 100 * p.median, 100 * p.max) : "not measured");
        else
          fmt::print("{:<10} {:>4} cases   GPU buffers vs llama.cpp's log |err| median {:.2f} %, max {:.2f} %   process {}\n", g, a.n,
                     100 * a.median, 100 * a.max,
                     p.n ? fmt::format("median {:.1f} %, max {:.1f} % ({} runs)", 100 * p.median, 100 * p.max, p.n) : "not measured");
        continue;
      }
      if (*markdown)
        fmt::print("| {} | {} | {:.1f} % / {:.1f} % | {:.1f} % / {:.1f} % | {:.1f} % / {:.1f} % |\n", g, a.n, 100 * a.median,
                   100 * a.max, 100 * rs.median, 100 * rs.max, 100 * p.median, 100 * p.max);
      else
        fmt::print("{:<10} {:>4} cases   framework peak |err| median {:.1f} %, max {:.1f} %   reserved median {:.1f} %, max {:.1f} %"
                   "   process median {:.1f} %, max {:.1f} %\n",
                   g, a.n, 100 * a.median, 100 * a.max, 100 * rs.median, 100 * rs.max, 100 * p.median, 100 * p.max);
    }
    if (skipped && !*markdown) fmt::print("({} measured runs that failed, e.g. out of memory, are not compared)\n", skipped);
    exit_code = 0;
  });
});

}  // namespace
}  // namespace llmem::cli
