// Measurements rendered (measure_report.hpp).
#include "llmem/measure_report.hpp"

#include <signal.h>

#include <cstring>

#include "llmem/units.hpp"
#include "text.hpp"

namespace llmem::report {
namespace {

std::string mib_gib(uint64_t bytes) {
  // MiB rounded up, as nvidia-smi and `llmem gpus` print them.
  return fmt::format("{} MiB ({:.2f} GiB)", format_thousands((bytes + (1u << 20) - 1) >> 20),
                     static_cast<double>(bytes) / kGiB);
}

std::string signal_name(int sig) {
  switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGSEGV: return "SIGSEGV";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    default: return fmt::format("signal {}", sig);
  }
}

std::string command_line(const std::vector<std::string>& cmd, size_t max_chars) {
  std::string s;
  for (const auto& a : cmd) {
    if (!s.empty()) s += ' ';
    s += a.find(' ') != std::string::npos ? "'" + a + "'" : a;
  }
  if (s.size() > max_chars) s = s.substr(0, max_chars - 3) + "...";
  return s;
}

const char* tree_source_name(TreeSource s) {
  return s == TreeSource::kPerProcess ? "per_process" : "device_minus_baseline";
}

double cpu_percent(const MeasureResult& r) { return r.duration_ms > 0 ? 100.0 * r.llmem_cpu_ms / r.duration_ms : 0; }

// nvidia-smi rounds partial MiB up (on an H200: 615.06 MiB reserved shows as 616, 143155.94 MiB free as 143156;
// bench/data/measure_h200.txt); llmem prints the same integers so the two can be compared digit for digit.
uint64_t mib_rounded_up(uint64_t bytes) { return (bytes + (1u << 20) - 1) >> 20; }
std::string gib_text(uint64_t bytes) { return fmt::format("{:.2f}", static_cast<double>(bytes) / kGiB); }

nlohmann::json memory_json(const nvml::DeviceMemory& m) {
  nlohmann::json j = {{"total_bytes", m.total_bytes},
                      {"used_bytes", m.used_bytes},
                      {"free_bytes", m.free_bytes},
                      {"total_mib", mib_rounded_up(m.total_bytes)},
                      {"used_mib", mib_rounded_up(m.used_bytes)},
                      {"free_mib", mib_rounded_up(m.free_bytes)}};
  if (m.reserved_known) {
    j["reserved_bytes"] = m.reserved_bytes;
    j["reserved_mib"] = mib_rounded_up(m.reserved_bytes);
  } else {
    j["reserved_bytes"] = nullptr;
    j["reserved_mib"] = nullptr;
  }
  return j;
}

}  // namespace

nlohmann::json measure_json(const MeasureResult& r, const std::vector<std::string>& timeline_files) {
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& g : r.gpus) {
    gpus.push_back({{"index", g.index},
                    {"name", g.name},
                    {"uuid", g.uuid},
                    {"total_bytes", g.total_bytes},
                    {"baseline_used_bytes", g.baseline_used_bytes},
                    {"peak_device_used_bytes", g.peak_device_used_bytes},
                    {"peak_device_time_ms", g.peak_device_time_ms},
                    {"peak_device_minus_baseline_bytes", g.peak_device_minus_baseline_bytes},
                    {"peak_tree_bytes", g.peak_tree_bytes},
                    {"peak_tree_mib", (g.peak_tree_bytes + (1u << 20) - 1) >> 20},
                    {"peak_tree_time_ms", g.peak_tree_time_ms},
                    {"peak_tree_processes", g.peak_tree_processes},
                    {"tree_source", tree_source_name(g.tree_source)},
                    {"tree_fallback_reason", g.tree_fallback_reason},
                    {"lost", g.lost},
                    {"lost_at_ms", g.lost ? nlohmann::json(g.lost_at_ms) : nlohmann::json(nullptr)},
                    {"failed_samples", g.failed_samples},
                    {"samples", g.samples}});
  }
  nlohmann::json forwarded = nlohmann::json::array();
  for (int s : r.forwarded_signals) forwarded.push_back(signal_name(s));
  return {{"schema_version", 1},
          {"command", r.command},
          {"started", r.command_started},
          {"exec_error", r.exec_errno ? nlohmann::json(std::strerror(r.exec_errno)) : nlohmann::json(nullptr)},
          {"exit_status", r.exit_status},
          {"term_signal", r.term_signal ? nlohmann::json(signal_name(r.term_signal)) : nlohmann::json(nullptr)},
          {"duration_ms", r.duration_ms},
          {"interval_ms", r.interval_ms},
          {"sample_rounds", r.sample_rounds},
          {"max_sample_gap_ms", r.max_sample_gap_ms},
          {"llmem_cpu_ms", r.llmem_cpu_ms},
          {"llmem_cpu_percent_of_core", cpu_percent(r)},
          {"peak_tree_bytes", r.peak_tree_bytes},
          {"peak_tree_mib", (r.peak_tree_bytes + (1u << 20) - 1) >> 20},
          {"peak_tree_time_ms", r.peak_tree_time_ms},
          {"gpus", gpus},
          {"forwarded_signals", forwarded},
          {"leftover_processes_killed", r.leftover_processes_killed},
          {"host_peak_rss_bytes", r.command_started ? nlohmann::json(r.host_peak_rss_bytes) : nlohmann::json(nullptr)},
          {"host_sampled_peak_rss_bytes", r.host_sampled_peak_rss_bytes},
          {"host_sampled_peak_rss_time_ms", r.host_sampled_peak_rss_time_ms},
          {"timeline_files", timeline_files},
          {"warnings", r.warnings},
          {"driver_version", r.driver_version},
          {"nvml_library", r.nvml_library}};
}

std::string measure_text(const MeasureResult& r) {
  std::string out;
  // each line within 100 columns: a longer one continues under its first word, indented
  auto line = [&out](const std::string& s) {
    if (columns(s) <= kColumns) {
      out += s + "\n";
      return;
    }
    const size_t lead = s.find_first_not_of(' ');
    const size_t indent = (lead == std::string::npos ? 0 : lead) + 4;
    out += paragraph(s.substr(0, lead == std::string::npos ? 0 : lead), s.substr(lead == std::string::npos ? s.size() : lead), indent);
  };
  std::string cmd = command_line(r.command, 80);
  std::string ending;
  if (r.term_signal)
    ending = fmt::format("was killed by {}{} (exit status {})", signal_name(r.term_signal),
                         r.core_dumped ? ", core dumped" : "", r.exit_status);
  else
    ending = fmt::format("exited with status {}", r.exit_status);
  const std::string first = fmt::format("llmem measure: `{}` {} after {:.3f} s", cmd, ending, r.duration_ms / 1000.0);
  if (columns(first) <= kColumns) {
    line(first);
  } else {  // the command on its line, what became of it on the next
    line(fmt::format("llmem measure: `{}`", cmd));
    line(fmt::format("  {} after {:.3f} s", ending, r.duration_ms / 1000.0));
  }
  line(fmt::format("  sampled every {} ms: {} rounds, largest gap {:.1f} ms; llmem's own CPU {:.1f} ms ({:.2f}% of a core)",
                   r.interval_ms, r.sample_rounds, r.max_sample_gap_ms, r.llmem_cpu_ms, cpu_percent(r)));
  for (const auto& g : r.gpus) {
    line(fmt::format("GPU {}  {}  (total {})", g.index, g.name, mib_gib(g.total_bytes)));
    line(fmt::format("  baseline, device used before the start:  {}", mib_gib(g.baseline_used_bytes)));
    if (g.tree_source == TreeSource::kPerProcess)
      line(fmt::format("  peak of the command's processes:         {} at {:.3f} s ({} process{})",
                       mib_gib(g.peak_tree_bytes), g.peak_tree_time_ms / 1000.0, g.peak_tree_processes,
                       g.peak_tree_processes == 1 ? "" : "es"));
    else
      line(fmt::format("  peak of the command (device - baseline): {} at {:.3f} s  [fallback: per-process memory "
                       "unavailable]",
                       mib_gib(g.peak_tree_bytes), g.peak_tree_time_ms / 1000.0));
    line(fmt::format("  peak of device used (all processes):     {} at {:.3f} s (+{} over baseline)",
                     mib_gib(g.peak_device_used_bytes), g.peak_device_time_ms / 1000.0,
                     mib_gib(g.peak_device_minus_baseline_bytes)));
  }
  if (r.command_started)
    line(fmt::format("Host: peak resident set of the command's largest process: {}; sampled, of the command: {} "
                     "at {:.3f} s", mib_gib(r.host_peak_rss_bytes), mib_gib(r.host_sampled_peak_rss_bytes),
                     r.host_sampled_peak_rss_time_ms / 1000.0));
  if (r.gpus.size() > 1)
    line(fmt::format("peak of the command over all {} GPUs: {} at {:.3f} s", r.gpus.size(), mib_gib(r.peak_tree_bytes),
                     r.peak_tree_time_ms / 1000.0));
  for (const auto& w : r.warnings) line("warning: " + w);
  return out;
}

chart::Chart timeline_chart(const MeasureResult& r) {
  chart::Chart c;
  c.title = "GPU memory of " + command_line(r.command, 70);
  c.subtitle = fmt::format("sampled every {} ms by llmem measure; exit status {}; {:.2f} s", r.interval_ms,
                           r.exit_status, r.duration_ms / 1000.0);
  c.x_label = "time since start (s)";
  c.y_label = "GPU memory (GiB)";
  const size_t n = chart::palette().size();
  size_t color = 0;
  for (const auto& g : r.gpus) {
    chart::Series device;
    device.name = fmt::format("GPU {} device used (all processes)", g.index);
    device.kind = chart::SeriesKind::kStep;
    device.color = chart::palette()[color++ % n];
    device.line_width = 1.5;
    chart::Series tree;
    tree.name = g.tree_source == TreeSource::kPerProcess ? fmt::format("GPU {} command's processes", g.index)
                                                         : fmt::format("GPU {} device used - baseline (fallback)", g.index);
    tree.kind = chart::SeriesKind::kStep;
    tree.color = chart::palette()[color++ % n];
    tree.line_width = 2.5;
    for (const auto& s : r.timeline) {
      if (s.gpu_index != g.index) continue;
      device.points.push_back({s.time_ms / 1000.0, static_cast<double>(s.device_used_bytes) / kGiB});
      tree.points.push_back({s.time_ms / 1000.0, static_cast<double>(s.tree_used_bytes) / kGiB});
    }
    c.series.push_back(std::move(device));
    c.series.push_back(std::move(tree));
    chart::ReferenceLine baseline;
    baseline.axis = chart::Axis::kY;
    baseline.value = static_cast<double>(g.baseline_used_bytes) / kGiB;
    baseline.label = fmt::format("GPU {} baseline {:.2f} GiB", g.index, baseline.value);
    c.reference_lines.push_back(baseline);
    if (g.peak_tree_bytes > 0) {
      chart::Annotation peak;
      peak.x = g.peak_tree_time_ms / 1000.0;
      peak.y = static_cast<double>(g.peak_tree_bytes) / kGiB;
      peak.text = fmt::format("peak {:.2f} GiB at {:.2f} s", peak.y, peak.x);
      c.annotations.push_back(peak);
    }
  }
  c.x_min = 0;
  return c;
}


nlohmann::json inventory_json(const nvml::Inventory& inv, nvml::Library& nvml) {
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& g : inv.gpus) {
    nlohmann::json procs = nlohmann::json::array();
    for (size_t i = 0; i < g.processes.size(); ++i) {
      const auto& p = g.processes[i];
      nlohmann::json pj = {{"pid", p.pid}, {"name", g.process_names[i]}};
      pj["used_bytes"] = p.used_bytes ? nlohmann::json(*p.used_bytes) : nlohmann::json(nullptr);
      pj["used_mib"] = p.used_bytes ? nlohmann::json(mib_rounded_up(*p.used_bytes)) : nlohmann::json(nullptr);
      procs.push_back(pj);
    }
    gpus.push_back({{"index", g.index},
                    {"name", g.name},
                    {"uuid", g.uuid},
                    {"memory", memory_json(g.memory)},
                    {"processes_status", g.processes_status == nvml::kSuccess ? "ok" : nvml.error_string(g.processes_status)},
                    {"processes", procs}});
  }
  return {{"schema_version", 1},
          {"driver_version", inv.driver_version},
          {"nvml_library", inv.nvml_library},
          {"gpu_count", inv.gpus.size()},
          {"gpus", gpus},
          {"notes", inv.notes}};
}

std::string inventory_text(const nvml::Inventory& inv, nvml::Library& nvml) {
  std::string out;
  out += fitted(fmt::format("NVIDIA driver {}, {} GPU{} (NVML from {})", inv.driver_version, inv.gpus.size(),
                            inv.gpus.size() == 1 ? "" : "s", inv.nvml_library),
                2);
  for (const auto& g : inv.gpus) {
    const auto& m = g.memory;
    append(out, "\nGPU {}  {}  {}\n", g.index, g.name, g.uuid);
    std::string reserved_mib = m.reserved_known ? std::to_string(mib_rounded_up(m.reserved_bytes)) : "n/a";
    std::string reserved_gib = m.reserved_known ? gib_text(m.reserved_bytes) : "n/a";
    append(out, "  {:<22}{:>12}{:>12}{:>12}{:>12}\n", "memory", "total", "used", "free", "reserved");
    append(out, "  {:<22}{:>12}{:>12}{:>12}{:>12}\n", "MiB (as nvidia-smi)", mib_rounded_up(m.total_bytes), mib_rounded_up(m.used_bytes),
               mib_rounded_up(m.free_bytes), reserved_mib);
    append(out, "  {:<22}{:>12}{:>12}{:>12}{:>12}\n", "GiB (2^30 bytes)", gib_text(m.total_bytes), gib_text(m.used_bytes),
               gib_text(m.free_bytes), reserved_gib);
    if (g.processes_status != nvml::kSuccess) {
      append(out, "  processes: unavailable ({})\n", nvml.error_string(g.processes_status));
    } else if (g.processes.empty()) {
      append(out, "  processes: none\n");
    } else {
      append(out, "  processes ({}):\n", g.processes.size());
      for (size_t i = 0; i < g.processes.size(); ++i) {
        const auto& p = g.processes[i];
        std::string name = g.process_names[i].empty() ? "(not visible here)" : g.process_names[i];
        std::string used = p.used_bytes ? fmt::format("{:>9} MiB  {:>7} GiB", mib_rounded_up(*p.used_bytes), gib_text(*p.used_bytes))
                                        : std::string("memory n/a");
        append(out, "    pid {:<9} {:<20} {}\n", p.pid, name, used);
      }
    }
  }
  for (const auto& n : inv.notes) out += paragraph("note: ", n, 6);
  return out;
}

nlohmann::json comparison_json(const EstimateResult& estimate, const MeasuredComparison& c) {
  nlohmann::json j = estimate_json(estimate);
  j["measured_process_peak_bytes"] = c.measured_bytes;
  j["error_percent"] = c.error_percent ? nlohmann::json(*c.error_percent) : nlohmann::json(nullptr);
  return j;
}

std::string comparison_text(const EstimateResult& estimate, const MeasuredComparison& c) {
  std::string out;
  out += paragraph("", fmt::format("estimate ({}, {}; {}):", estimate.source.display_name(), workload_description(estimate),
                                   estimate.estimate.gpu.display_name),
                   2);
  append(out, "  framework peak, estimated:               {}\n", mib_gib(estimate.estimate.framework_peak_bytes));
  append(out, "  process peak,   estimated:               {}\n", mib_gib(c.estimated_bytes));
  append(out, "  process peak,   measured:                {}\n", mib_gib(c.measured_bytes));
  if (c.error_percent)
    append(out, "  estimate - measurement:                  {:+.1f} MiB ({:+.1f} %)\n",
           (static_cast<double>(c.estimated_bytes) - static_cast<double>(c.measured_bytes)) / kMiB, *c.error_percent);
  else
    append(out, "  no GPU memory was measured for the command, so there is nothing to compare\n");
  return out;
}

nlohmann::json probe_json(const cuda::ProbeResult& r) {
  auto opt_bytes = [](const std::optional<uint64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  return {{"schema_version", 1},
          {"gpu_index", r.gpu_index},
          {"cuda_ordinal", r.cuda_ordinal},
          {"name", r.name},
          {"uuid", r.uuid},
          {"driver_version", r.driver_version},
          {"cuda_driver_version", r.cuda_driver_version},
          {"total_bytes", r.total_bytes},
          {"used_before_bytes", r.used_before_bytes},
          {"used_after_init_bytes", r.used_after_init_bytes},
          {"used_after_context_bytes", r.used_after_context_bytes},
          {"used_after_allocation_bytes", r.used_after_allocation_bytes},
          {"first_allocation_bytes", r.first_allocation_bytes},
          {"context_overhead_bytes", r.context_overhead_bytes()},
          {"context_overhead_mib", static_cast<double>(r.context_overhead_bytes()) / kMiB},
          {"first_allocation_cost_bytes", r.first_allocation_cost_bytes()},
          {"process_after_context_bytes", opt_bytes(r.process_after_context_bytes)},
          {"process_after_allocation_bytes", opt_bytes(r.process_after_allocation_bytes)},
          {"notes", r.notes}};
}

std::string probe_text(const cuda::ProbeResult& r) {
  auto delta_mib = [](uint64_t after, uint64_t before) {
    return fmt::format("{:+.0f} MiB", (static_cast<double>(after) - static_cast<double>(before)) / kMiB);
  };
  std::string out;
  out += fitted(fmt::format("GPU {}  {}  (CUDA device {}, NVIDIA driver {}, CUDA driver API {}.{})", r.gpu_index, r.name,
                            r.cuda_ordinal, r.driver_version, r.cuda_driver_version / 1000, (r.cuda_driver_version % 1000) / 10),
                2);
  append(out, "  device used before cuInit:            {:>24}\n", mib_gib(r.used_before_bytes));
  append(out, "  after cuInit:                         {:>24}  {}\n", mib_gib(r.used_after_init_bytes),
         delta_mib(r.used_after_init_bytes, r.used_before_bytes));
  append(out, "  after the primary context:            {:>24}  {}\n", mib_gib(r.used_after_context_bytes),
         delta_mib(r.used_after_context_bytes, r.used_after_init_bytes));
  append(out, "  after a first {} MiB allocation:       {:>24}  {}\n", r.first_allocation_bytes >> 20,
         mib_gib(r.used_after_allocation_bytes), delta_mib(r.used_after_allocation_bytes, r.used_after_context_bytes));
  append(out, "context overhead: {} (device used after the context minus before cuInit)\n", mib_gib(r.context_overhead_bytes()));
  if (r.process_after_context_bytes)
    append(out, "  NVML attributes to this process: {} after the context, {} after the allocation\n",
           mib_gib(*r.process_after_context_bytes),
           r.process_after_allocation_bytes ? mib_gib(*r.process_after_allocation_bytes) : "n/a");
  for (const auto& n : r.notes) out += paragraph("note: ", n, 6);
  return out;
}

}  // namespace llmem::report
