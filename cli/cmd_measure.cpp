// llmem measure -- CMD ARGS...: run a command and report the GPU memory it used, sampled from NVML.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "request_options.hpp"
#include "llmem/chart.hpp"
#include "llmem/error.hpp"
#include "llmem/measure.hpp"
#include "llmem/nvml.hpp"
#include "llmem/units.hpp"

namespace llmem::cli {
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

std::string command_line(const std::vector<std::string>& cmd, size_t max_chars = 80) {
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

nlohmann::json result_json(const MeasureResult& r, const std::vector<std::string>& timeline_files) {
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
  return {{"command", r.command},
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
          {"timeline_files", timeline_files},
          {"warnings", r.warnings},
          {"driver_version", r.driver_version},
          {"nvml_library", r.nvml_library}};
}

std::string result_text(const MeasureResult& r) {
  std::string out;
  auto line = [&out](const std::string& s) { out += s + "\n"; };
  std::string cmd = command_line(r.command);
  std::string ending;
  if (r.term_signal)
    ending = fmt::format("was killed by {}{} (exit status {})", signal_name(r.term_signal),
                         r.core_dumped ? ", core dumped" : "", r.exit_status);
  else
    ending = fmt::format("exited with status {}", r.exit_status);
  line(fmt::format("llmem measure: `{}` {} after {:.3f} s", cmd, ending, r.duration_ms / 1000.0));
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

struct MeasureCliOptions {
  unsigned interval_ms = 5;
  std::string estimate;  // the arguments of `llmem estimate`, as one string
  std::string gpu = "all";
  std::vector<std::string> timelines;
  bool json = false;
  std::string output;
  std::vector<std::string> command;
};

// `--estimate "SOURCE --dtype bf16 ..."`: parsed by the same options as `llmem estimate` (CLI11 splits the string
// with shell-like quoting), so a typo is an error before the command starts, not after an hour of training.
EstimateRequest parse_estimate_request(const std::string& args) {
  CLI::App app("llmem measure --estimate", "--estimate");
  EstimateRequest req;
  add_estimate_request(&app, req);
  try {
    app.parse(args, false);
  } catch (const CLI::ParseError& e) {
    throw Error(ErrorKind::kUsage, "", fmt::format("--estimate '{}': {}", args, e.what()));
  }
  if (req.source.empty()) throw Error(ErrorKind::kUsage, "", "--estimate needs a SOURCE first, e.g. --estimate 'microsoft/phi-2 --dtype fp16'");
  return req;
}

// The card whose runtime overhead the estimate uses: --gpu inside --estimate when given, else the GPU being
// measured (its catalog entry when the catalog knows its NVML name; else the reference GPU's overhead with the
// real name and memory size).
GpuProfile measured_gpu_profile(nvml::Library& nvml, unsigned index) {
  GpuProfile g;
  const std::string name = nvml.name(index);
  try {
    g = find_gpu(name);
  } catch (const Error&) {
    g = default_gpu();
    g.name = name;
    g.display_name = name;
  }
  nvml::DeviceMemory mem;
  if (nvml.memory(index, mem) == nvml::kSuccess) {
    g.memory_bytes = mem.total_bytes;
    g.memory_source = "NVML";
  }
  return g;
}

struct Comparison {
  uint64_t estimated = 0;
  uint64_t measured = 0;
  double error_percent = 0;
};

Comparison compare(const Estimate& e, const MeasureResult& r) {
  Comparison c;
  c.estimated = e.process_peak_bytes;
  c.measured = r.peak_tree_bytes;
  c.error_percent = c.measured ? 100.0 * (static_cast<double>(c.estimated) - static_cast<double>(c.measured)) /
                                     static_cast<double>(c.measured)
                               : 0.0;
  return c;
}

std::string comparison_text(const EstimateOutcome& est, const Comparison& c) {
  std::string out = fmt::format("estimate ({}, {}; {}):\n", est.source.display_name(), est.description, est.estimate.gpu.display_name);
  out += fmt::format("  framework peak, estimated:               {}\n", mib_gib(est.estimate.framework_peak_bytes));
  out += fmt::format("  process peak,   estimated:               {}\n", mib_gib(c.estimated));
  out += fmt::format("  process peak,   measured:                {}\n", mib_gib(c.measured));
  if (c.measured)
    out += fmt::format("  estimate - measurement:                  {:+.1f} MiB ({:+.1f} %)\n",
                       (static_cast<double>(c.estimated) - static_cast<double>(c.measured)) / kMiB, c.error_percent);
  else
    out += "  no GPU memory was measured for the command, so there is nothing to compare\n";
  return out;
}

void write_report(const std::string& text, const std::string& output_path, std::FILE* default_stream) {
  if (output_path.empty()) {
    std::fputs(text.c_str(), default_stream);
    std::fflush(default_stream);
    return;
  }
  std::FILE* f = std::fopen(output_path.c_str(), "w");
  if (!f) throw Error(ErrorKind::kRuntime, output_path, fmt::format("cannot write: {}", std::strerror(errno)));
  std::fputs(text.c_str(), f);
  std::fclose(f);
}

const bool registered = register_command(51, [](CLI::App& root, int& exit_code) {
  auto o = std::make_shared<MeasureCliOptions>();
  CLI::App* sub = root.add_subcommand("measure", "Run a command and measure its peak GPU memory (NVML, every 5 ms)");
  sub->add_option("--interval", o->interval_ms, "Sampling interval in ms (1 .. 60000)")
      ->default_val(5)
      ->check(CLI::Range(1u, 60000u));
  sub->add_option("--gpu", o->gpu, "GPUs to sample: 'all' or an NVML index")->default_val("all");
  sub->add_option("--timeline", o->timelines,
                  "Write the samples to FILE: .csv, .json, .jsonl (written as they come) or a chart .png, .svg "
                  "(drawn at the end); repeatable")
      ->type_name("FILE")
      ->allow_extra_args(false);   // one file per --timeline, so the command's words are never taken as files
  CLI::Option* estimate_opt = sub->add_option("--estimate", o->estimate,
                  "Also estimate: the arguments of `llmem estimate` as one quoted string, printed beside the measurement")
      ->type_name("'SOURCE [OPTIONS]'");
  sub->add_flag("--json", o->json, "Report as JSON on stdout (keys in docs/measure.md)");
  sub->add_option("--output", o->output, "Write the report to FILE instead of stderr (text) or stdout (JSON)")
      ->type_name("FILE");
  sub->add_option("command", o->command, "The command and its arguments, after --")->required()->allow_extra_args();
  // Everything from the command's first word on belongs to the command, with or without "--".
  sub->positionals_at_end();
  sub->footer(
      "The report goes to stderr (JSON to stdout) after the command ends; the command's own output passes through.\n"
      "The command runs in its own process group; SIGINT/SIGTERM/SIGHUP/SIGQUIT are forwarded to it, and whatever\n"
      "is left of its process tree when it ends is killed. llmem exits with the command's status (128+N when it\n"
      "died of signal N, 127 when it was not found).\n"
      "Memory in MiB (2^20 bytes) and GiB (2^30 bytes).\n"
      "\nExamples:\n"
      "  llmem measure -- python3 train.py --batch 8\n"
      "  llmem measure --interval 1 --gpu 0 --timeline run.csv --timeline run.png -- ./serve.sh\n"
      "  llmem measure --estimate 'microsoft/phi-2 --dtype fp16 --prompt 6 --new-tokens 14' -- python3 run_phi2.py\n"
      "  llmem measure --json --output report.json -- python3 -c 'import torch; torch.ones(1, device=\"cuda\")'\n"
      "\nExit codes: the command's; 1 when NVML is missing or fails before the start; 2 for bad options.");
  sub->callback([o, estimate_opt, &exit_code] {
    MeasureOptions opts;
    opts.command = o->command;
    opts.interval_ms = o->interval_ms;
    if (o->gpu != "all") {
      try {
        size_t used = 0;
        long v = std::stol(o->gpu, &used);
        if (used != o->gpu.size() || v < 0) throw std::invalid_argument("");
        opts.gpu_index = static_cast<unsigned>(v);
      } catch (const std::exception&) {
        throw Error(ErrorKind::kUsage, "", fmt::format("--gpu {}: give 'all' or a GPU index", o->gpu));
      }
    }
    std::vector<std::string> charts;
    for (const auto& t : o->timelines) {
      if (chart::is_chart_path(t)) {
        charts.push_back(t);
      } else if (timeline_format_for(t)) {
        opts.timeline_paths.push_back(t);
      } else {
        throw Error(ErrorKind::kUsage, t, "--timeline takes a .csv, .json, .jsonl, .png or .svg file");
      }
    }
    opts.keep_timeline = !charts.empty();

    std::optional<EstimateRequest> est_req;
    if (estimate_opt->count() > 0) est_req = parse_estimate_request(o->estimate);

    auto nvml = nvml::Library::open();
    // The estimate runs before the command, so a bad source fails fast and costs the measured run nothing.
    std::optional<EstimateOutcome> est;
    if (est_req) {
      if (est_req->opts.gpu.empty() && nvml->device_count() > 0) {
        const GpuProfile g = measured_gpu_profile(*nvml, opts.gpu_index.value_or(0));
        est = run_estimate(*est_req, &g);
      } else {
        est = run_estimate(*est_req);
      }
    }
    MeasureResult r = measure_command(*nvml, opts);

    if (!r.command_started) {
      std::fflush(stdout);
      fmt::print(stderr, "llmem: {}: {}\n", o->command[0],
                 r.exit_status == 127 ? "command not found" : std::strerror(r.exec_errno));
      if (o->json) write_report(result_json(r, o->timelines).dump(2) + "\n", o->output, stdout);
      exit_code = r.exit_status;
      return;
    }
    for (const auto& path : charts) {
      try {
        chart::render(timeline_chart(r), path);
      } catch (const Error& e) {
        r.warnings.push_back(fmt::format("chart not written: {}", e.what()));
      }
    }
    if (o->json) {
      nlohmann::json j = result_json(r, o->timelines);
      if (est) {
        const Comparison c = compare(est->estimate, r);
        nlohmann::json e = est->json;
        e["measured_process_peak_bytes"] = c.measured;
        e["error_percent"] = c.measured ? nlohmann::json(c.error_percent) : nlohmann::json(nullptr);
        j["estimate"] = e;
      }
      write_report(j.dump(2) + "\n", o->output, stdout);
    } else {
      std::string text = result_text(r);
      if (est) text += comparison_text(*est, compare(est->estimate, r));
      write_report(text, o->output, stderr);
    }
    exit_code = r.exit_status;
  });
});

}  // namespace
}  // namespace llmem::cli
