// Validation rendered (validate_report.hpp).
#include "llmem/validate_report.hpp"

#include "llmem/units.hpp"
#include "text.hpp"

namespace llmem::report {

using nlohmann::json;

namespace {

// A table row: its label, then its figures right-aligned at the end of kColumns; a label too long to share the
// line with them gets a line of its own (labels are never cut).
// `first`: what stands before the label on its first line (a blank column for a row whose id had its own line).
void append_row(std::string& out, const std::string& label, const std::string& figures, size_t indent = 2,
                const std::string& first = "") {
  const size_t room = kColumns - columns(figures);
  if (columns(first) + columns(label) < room) {
    out += first + label + std::string(room - columns(first) - columns(label), ' ') + figures + "\n";
  } else {
    out += paragraph(first, label, indent) + std::string(room, ' ') + figures + "\n";
  }
}

void append_rows(std::string& out, const ValidationReport& report) {
  append_row(out, "Case (GiB)", fmt::format("{:>9}{:>9}{:>8}{:>9}{:>9}{:>8}", "est", "alloc", "err", "est", "NVML", "err"));
  for (const auto& r : report.rows)
    append_row(out, r.label,
               fmt::format("{:>9.3f}{:>9.3f}{:>+7.1f}%{:>9.3f}{:>9}{:>8}", r.estimated_framework_bytes / kGiB,
                           r.measured_framework_bytes / kGiB,
                           100 * relative_error(r.estimated_framework_bytes, r.measured_framework_bytes),
                           r.estimated_process_bytes / kGiB,
                           r.process_measured ? fmt::format("{:.3f}", r.measured_process_bytes / kGiB) : "—",
                           r.process_measured
                               ? fmt::format("{:+.1f}%", 100 * relative_error(r.estimated_process_bytes, r.measured_process_bytes))
                               : "—"));
  append(out, "\n");
}

// llama.cpp has no caching allocator: its "framework peak" is the sum of the GPU buffers it logs.
void append_llamacpp_summary(std::string& out, const ValidationGroup& g, bool markdown) {
  const ErrorSummary& a = g.framework;
  const ErrorSummary& p = g.process;
  if (markdown)
    append(out, "| llama.cpp (GPU buffers as llama.cpp logs them: model + KV + compute) | {} | {:.2f} % / {:.2f} % | — | {} |\n", a.cases,
           100 * a.median_abs_error, 100 * a.max_abs_error,
           p.cases ? fmt::format("{:.1f} % / {:.1f} %", 100 * p.median_abs_error, 100 * p.max_abs_error) : "not measured");
  else
    out += paragraph(fmt::format("{:<10} {:>4} cases   ", g.name, a.cases),
                     fmt::format("|err| median / max: GPU buffers vs llama.cpp's log {:.2f} / {:.2f} %, process {}",
                                 100 * a.median_abs_error, 100 * a.max_abs_error,
                                 p.cases ? fmt::format("{:.1f} / {:.1f} % ({} runs)", 100 * p.median_abs_error,
                                                       100 * p.max_abs_error, p.cases)
                                         : "not measured"),
                     24);
}

void append_summary(std::string& out, const ValidationGroup& g, bool markdown) {
  const ErrorSummary& a = g.framework;
  const ErrorSummary& rs = g.reserved;
  const ErrorSummary& p = g.process;
  if (markdown)
    append(out, "| {} | {} | {:.1f} % / {:.1f} % | {:.1f} % / {:.1f} % | {:.1f} % / {:.1f} % |\n", g.name, a.cases,
           100 * a.median_abs_error, 100 * a.max_abs_error, 100 * rs.median_abs_error, 100 * rs.max_abs_error,
           100 * p.median_abs_error, 100 * p.max_abs_error);
  else
    out += paragraph(fmt::format("{:<10} {:>4} cases   ", g.name, a.cases),
                     fmt::format("|err| median / max: framework peak {:.1f} / {:.1f} %, reserved {:.1f} / {:.1f} %, "
                                 "process {:.1f} / {:.1f} %",
                                 100 * a.median_abs_error, 100 * a.max_abs_error, 100 * rs.median_abs_error,
                                 100 * rs.max_abs_error, 100 * p.median_abs_error, 100 * p.max_abs_error),
                     24);
}

// A figure in its log's unit: GiB to the hundredth (as vLLM prints them), counts whole, ratios as printed.
std::string serving_figure(double v, const std::string& unit) {
  if (unit == "GiB") return fmt::format("{:.2f}", v);
  if (unit == "x") return fmt::format("{:.2f}", v);
  return fmt::format("{:.0f}", v);
}

// vLLM start-up logs: each printed figure beside llmem's, in the log's unit.
void append_serving_rows(std::string& out, const ValidationReport& report) {
  append_row(out, fmt::format("{:<38}{}", "vLLM start-up log", "figure"), fmt::format("{:>10}{:>10}{:>9}", "logged", "llmem", "err"));
  for (const auto& r : report.serving_rows) {
    // an id too long for its column gets a line of its own (it ran into the figure's name before)
    const bool own_line = columns(r.id) >= 38;
    if (own_line) out += r.id + "\n";
    append_row(out, r.item + " (" + r.unit + ")",
               fmt::format("{:>10}{:>10}{:>+8.2f}%", serving_figure(r.logged, r.unit), serving_figure(r.estimated, r.unit),
                           100 * relative_error(r.estimated, r.logged)),
               38, fmt::format("{:<38}", own_line ? std::string() : r.id));
  }
  append(out, "\n");
}

void append_serving_summary(std::string& out, const ValidationReport& report, bool markdown) {
  if (markdown) {
    append(out, "\n| vLLM start-up logs: figure | cases | median / max abs error |\n|---|---:|---:|\n");
    for (const auto& s : report.serving_summary)
      append(out, "| {} | {} | {:.2f} % / {:.2f} % |\n", s.item, s.error.cases, 100 * s.error.median_abs_error,
             100 * s.error.max_abs_error);
    return;
  }
  for (const auto& s : report.serving_summary)
    out += paragraph("vLLM ", fmt::format("{}: {} logs, |err| median {:.2f} %, max {:.2f} %", s.item, s.error.cases,
                                          100 * s.error.median_abs_error, 100 * s.error.max_abs_error),
                     7);
  if (!report.serving_not_compared.empty()) {
    append(out, "not compared:\n");
    for (const auto& n : report.serving_not_compared) out += paragraph("  ", n, 4);
  }
}

json serving_json(const ValidationReport& report) {
  json rows = json::array();
  for (const auto& r : report.serving_rows)
    rows.push_back({{"id", r.id}, {"version_used", r.version_used}, {"figure", r.item}, {"unit", r.unit},
                    {"logged", r.logged}, {"estimated", r.estimated}, {"relative_error", relative_error(r.estimated, r.logged)}});
  json summary = json::object();
  for (const auto& s : report.serving_summary)
    summary[s.item] = {{"cases", s.error.cases},
                       {"median_abs_error", s.error.median_abs_error},
                       {"max_abs_error", s.error.max_abs_error}};
  return {{"rows", rows}, {"summary", summary}, {"not_compared", report.serving_not_compared}};
}

}  // namespace

json validation_json(const ValidationReport& report) {
  json rows = json::array();
  for (const auto& r : report.rows)
    rows.push_back({{"case", r.label},
                    {"group", r.group},
                    {"estimated_framework_peak_bytes", r.estimated_framework_bytes},
                    {"measured_framework_peak_bytes", r.measured_framework_bytes},
                    {"estimated_reserved_peak_bytes", r.estimated_reserved_bytes},
                    {"measured_reserved_peak_bytes", r.measured_reserved_bytes},
                    {"estimated_process_peak_bytes", r.estimated_process_bytes},
                    {"measured_process_peak_bytes", r.process_measured ? json(r.measured_process_bytes) : json(nullptr)}});
  json summary = json::object();
  // the JSON summary keeps its two transformers groups (llama.cpp rows are in `rows`), and "sharded" when such
  // records were read
  for (const char* name : {"inference", "training", "sharded"}) {
    const ValidationGroup& g = report.group(name);
    if (std::string(name) == "sharded" && g.framework.cases == 0) continue;
    summary[name] = {{"cases", g.framework.cases},
                     {"framework_median_abs_error", g.framework.median_abs_error},
                     {"framework_max_abs_error", g.framework.max_abs_error},
                     {"process_median_abs_error", g.process.median_abs_error},
                     {"process_max_abs_error", g.process.max_abs_error}};
  }
  json j = {{"schema_version", 1}, {"rows", rows}, {"summary", summary}, {"skipped_failed_runs", report.skipped_failed_runs}};
  // present only when vLLM logs were read, so the other files' output stays as it was
  if (!report.serving_rows.empty() || !report.serving_not_compared.empty()) j["vllm"] = serving_json(report);
  return j;
}

std::string validation_text(const ValidationReport& report, ValidationView view) {
  const bool markdown = view == ValidationView::kMarkdown;
  std::string out;
  const bool serving = !report.serving_rows.empty() || !report.serving_not_compared.empty();
  const bool transformers_or_llamacpp = !serving || !report.rows.empty() || report.skipped_failed_runs;
  if (view == ValidationView::kTable && transformers_or_llamacpp) append_rows(out, report);
  if (view == ValidationView::kTable && !report.serving_rows.empty()) append_serving_rows(out, report);
  if (markdown && transformers_or_llamacpp) {
    append(out, "| workload | cases | framework peak: median / max abs error | reserved: median / max | process (NVML): median / max |\n");
    append(out, "|---|---:|---:|---:|---:|\n");
  }
  for (const auto& g : report.groups) {
    if (g.framework.cases == 0) continue;
    if (g.name == "llama.cpp") append_llamacpp_summary(out, g, markdown);
    else append_summary(out, g, markdown);
  }
  if (report.skipped_failed_runs && !markdown)
    append(out, "({} measured runs that failed, e.g. out of memory, are not compared)\n", report.skipped_failed_runs);
  if (serving) append_serving_summary(out, report, markdown);
  return out;
}

}  // namespace llmem::report
