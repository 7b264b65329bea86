// The seed study rendered (study_report.hpp).
#include "llmem/study_report.hpp"

#include <algorithm>
#include <cmath>

#include "llmem/units.hpp"
#include "text.hpp"

namespace llmem::report {

using nlohmann::json;

namespace {

std::string opt_fixed(bool present, double v, int decimals) {
  return present ? fmt::format("{:.{}f}", v, decimals) : std::string("—");
}

std::string short_name(const std::string& id) {
  auto slash = id.find('/');
  return slash == std::string::npos ? id : id.substr(slash + 1);
}

}  // namespace

std::string study_text(const std::vector<StudyRow>& rows) {
  std::string out;
  append(out, "The seed study (fp16, transformers, \"Hello, world!\" and 20 tokens of generation), reproduced.\n");
  append(out, "Params in B = 10^9, from exact PyTorch counts of each model's config.json (every digit: llmem study\n"
             "--json, llmem params MODEL). Memory in GiB = 2^30 bytes.\n\n");
  append(out, "{:<34} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}\n", "Model", "Params", "Study", "fp16", "2×B", "Study",
             "llmem", "meas.", "Q4_K_M");
  append(out, "{:<34} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}\n", "", "B", "B", "wts GiB", "rule GiB", "GiB", "est GiB",
             "GiB", "GiB");
  append(out, "{}\n", std::string(kColumns, '-'));
  bool any_tied_diff = false, any_impossible = false, any_missing = false;
  for (const auto& r : rows) {
    std::string mark;
    if (r.in_catalog && r.measured && r.params_with_tied != r.params &&
        std::abs(static_cast<double>(r.params_with_tied) / 1e9 - r.measured->params_billion) < 0.006) {
      mark += "†";
      any_tied_diff = true;
    }
    if (r.impossible) {
      mark += "!";
      any_impossible = true;
    }
    if (!r.in_catalog) {
      mark += "*";
      any_missing = true;
    }
    append(out, "{:<34} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {}\n", r.model.substr(0, 34),
               opt_fixed(r.in_catalog, static_cast<double>(r.params) / 1e9, 2),
               opt_fixed(r.measured.has_value(), r.measured ? r.measured->params_billion : 0, 2),
               opt_fixed(r.in_catalog, static_cast<double>(r.fp16_weight_bytes) / kGiB, 2),
               opt_fixed(r.in_catalog, 2.0 * static_cast<double>(r.params) / 1e9, 2),
               opt_fixed(r.measured.has_value(), r.measured ? r.measured->memory_gib : 0, 2),
               opt_fixed(r.in_catalog, static_cast<double>(r.estimate_process_bytes) / kGiB, 2),
               opt_fixed(r.measured_process_bytes.has_value(), static_cast<double>(r.measured_process_bytes.value_or(0)) / kGiB, 2),
               opt_fixed(r.llamacpp_q4km_process_bytes.has_value(), static_cast<double>(r.llamacpp_q4km_process_bytes.value_or(0)) / kGiB, 2),
               mark);
  }
  append(out, "{}\n", std::string(kColumns, '-'));
  out += paragraph("", "2×B rule: the study's \"2 × billions of params\", read in GiB as its chart did. llmem est: the "
                       "process peak llmem expects for the study's scenario on an H200 (weights, KV cache, activations, "
                       "caching allocator, CUDA context). meas.: NVML per-process peak of the same scenario on an H200 "
                       "(bench/data, models built with from_config, so tied models also briefly hold an untied LM head); "
                       "GPUtil's device-wide reading counts the same things, plus whatever else was running. Q4_K_M: the GPU "
                       "process peak llmem expects under llama.cpp (CUDA, every layer on the GPU, n_ctx 4096, flash "
                       "attention) with the file llama-quantize writes at Q4_K_M; — where llama.cpp's layout for the "
                       "architecture is not modelled (llmem estimate --engine llamacpp says which).",
                   0);
  if (any_tied_diff)
    out += paragraph("† ", "the study's torchinfo counted the tied LM head a second time (torchinfo issues #322/#377); the "
                           "weights are stored once, so memory follows the unique count.",
                     2);
  if (any_impossible)
    out += paragraph("! ", "the study's reading is below the fp16 weights alone: impossible for a model fully on the GPU. A "
                           "whole-device \"memory used\" delta (GPUtil) is polluted by other processes and by memory freed "
                           "or cached before the first reading; llmem measures per process instead (llmem measure).",
                     2);
  if (any_missing) out += paragraph("* ", "not in the embedded catalog: no config.json to count from.", 2);
  return out;
}

json study_json(const std::vector<StudyRow>& rows) {
  json out = json::array();
  for (const auto& r : rows) {
    json j = {{"model", r.model}, {"in_catalog", r.in_catalog}};
    j["family"] = r.in_catalog ? json(r.family) : json(nullptr);
    j["params"] = r.in_catalog ? json(r.params) : json(nullptr);
    j["params_with_tied"] = r.in_catalog ? json(r.params_with_tied) : json(nullptr);
    j["fp16_weight_bytes"] = r.in_catalog ? json(r.fp16_weight_bytes) : json(nullptr);
    j["study"] = r.measured ? json{{"params_billion", r.measured->params_billion}, {"memory_gib", r.measured->memory_gib}}
                            : json(nullptr);
    j["study_reading_impossible"] = r.impossible;
    j["rule_2x_gib"] = r.in_catalog ? json(2.0 * static_cast<double>(r.params) / 1e9) : json(nullptr);
    j["estimate_framework_peak_bytes"] = r.in_catalog ? json(r.estimate_framework_bytes) : json(nullptr);
    j["estimate_process_peak_bytes"] = r.in_catalog ? json(r.estimate_process_bytes) : json(nullptr);
    j["measured_process_peak_bytes"] = r.measured_process_bytes ? json(*r.measured_process_bytes) : json(nullptr);
    j["measured_gpu"] = r.measured_process_bytes ? json(r.measured_gpu) : json(nullptr);
    j["llamacpp_q4_k_m_ctx4096_process_peak_bytes"] =
        r.llamacpp_q4km_process_bytes ? json(*r.llamacpp_q4km_process_bytes) : json(nullptr);
    out.push_back(j);
  }
  return {{"schema_version", 1}, {"rows", out}};
}

// Memory against parameters, log-log (the catalog spans 0.1 B to 671 B): the study's readings, llmem's estimate of
// the same scenario, the H200 measurements, and the 2×B and 4×B rules.
chart::Chart study_chart(const std::vector<StudyRow>& rows) {
  chart::Chart c;
  c.title = "GPU memory vs parameters: fp16, \"Hello, world!\" + 20 tokens (transformers)";
  c.subtitle = "llmem study. llmem and measured: process peak on an H200 (NVML). Labels: the study's models, where they do not overlap";
  c.x_label = "parameters (B = 10^9, log scale)";
  c.y_label = "GPU memory (GiB, log scale)";
  c.x_log = true;
  c.y_log = true;
  c.legend = chart::LegendPosition::kTopLeft;
  c.x_min = 0.08;
  c.x_max = 1000;
  c.y_min = 0.5;
  c.y_max = 2000;
  double lo = 1e9, hi = 0;
  chart::Series study, est, meas;
  study.name = "the study's reading (GPUtil, device-wide)";
  study.kind = chart::SeriesKind::kScatter;
  study.marker_radius = 6;
  study.color = chart::palette()[3];
  est.name = "llmem estimate (process peak)";
  est.kind = chart::SeriesKind::kScatter;
  est.marker_radius = 4;
  est.color = chart::palette()[0];
  meas.name = "measured on an H200 (NVML process peak)";
  meas.kind = chart::SeriesKind::kScatter;
  meas.marker_radius = 3;
  meas.color = chart::palette()[2];
  // Labels beside the study's points, greedily, skipping one that would overlap a label already placed (the
  // geometry is estimated from the axis ranges and the image size below); points at the same place share one.
  struct Box {
    double x0, x1, y0, y1;
  };
  std::vector<Box> placed;
  auto px_x = [](double v) { return std::log10(v / 0.08) / std::log10(1000 / 0.08) * 1180.0; };
  auto px_y = [](double v) { return std::log10(v / 0.5) / std::log10(2000 / 0.5) * 700.0; };
  for (const auto& r : rows) {
    if (r.measured) {
      const double x = r.measured->params_billion, y = r.measured->memory_gib;
      std::string label = short_name(r.model);
      for (size_t i = 0; i < study.points.size(); ++i)
        if (study.points[i].x == x && study.points[i].y == y) {
          if (!study.point_labels[i].empty()) study.point_labels[i] += ", " + label;
          label.clear();
        }
      const Box b{px_x(x), px_x(x) + 14 + 7.5 * static_cast<double>(label.size()), px_y(y) - 7, px_y(y) + 7};
      for (const auto& o : placed)
        if (!label.empty() && b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1) label.clear();
      if (!label.empty()) placed.push_back(b);
      study.points.push_back({x, y});
      study.point_labels.push_back(label);
      lo = std::min(lo, r.measured->params_billion);
      hi = std::max(hi, r.measured->params_billion);
    }
    if (!r.in_catalog) continue;
    const double b = static_cast<double>(r.params) / 1e9;
    lo = std::min(lo, b);
    hi = std::max(hi, b);
    est.points.push_back({b, static_cast<double>(r.estimate_process_bytes) / kGiB});
    if (r.measured_process_bytes) meas.points.push_back({b, static_cast<double>(*r.measured_process_bytes) / kGiB});
  }
  if (hi <= 0) {
    lo = 0.1;
    hi = 10;
  }
  chart::Series two, four;
  two.name = "2×B rule (GiB = 2 × billions of params)";
  two.dashed = true;
  two.color = chart::Color{0.45, 0.45, 0.45};
  two.line_width = 1.5;
  four.name = "4×B rule (GiB = 4 × billions of params)";
  four.dashed = true;
  four.color = chart::Color{0.75, 0.6, 0.2};
  four.line_width = 1.5;
  for (double x : {std::min(lo * 0.8, 0.08), std::max(hi * 1.25, 1000.0)}) {
    two.points.push_back({x, 2 * x});
    four.points.push_back({x, 4 * x});
  }
  c.series = {two, four, est, meas, study};
  return c;
}

}  // namespace llmem::report
