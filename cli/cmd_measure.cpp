// llmem measure -- CMD ARGS...: run a command and report the GPU memory it used, sampled from NVML.
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "estimate_flags.hpp"
#include "usage.hpp"
#include "llmem/chart.hpp"
#include "llmem/error.hpp"
#include "llmem/estimate.hpp"
#include "llmem/measure.hpp"
#include "llmem/measure_report.hpp"
#include "llmem/nvml.hpp"

namespace llmem::cli {
namespace {

struct MeasureCliOptions {
  unsigned interval_ms = 5;
  std::string estimate;  // the arguments of `llmem estimate`, as one string
  std::string gpu = "all";
  std::vector<std::string> timelines;
  bool json = false;
  std::string output;
  std::vector<std::string> command;
};

// `--estimate "SOURCE --dtype bf16 ..."`: parsed by the same flags as `llmem estimate` (CLI11 splits the string
// with shell-like quoting), so a typo is an error before the command starts, not after an hour of training.
EstimateFlags parse_estimate_flags(const std::string& args) {
  CLI::App app("llmem measure --estimate", "--estimate");
  EstimateFlags flags;
  add_estimate_flags(&app, flags);
  try {
    app.parse(args, false);
  } catch (const CLI::ParseError& e) {
    std::vector<std::string> words;
    std::istringstream in(args);
    for (std::string w; in >> w;) words.push_back(w);
    throw Error(ErrorKind::kUsage, "", fmt::format("--estimate '{}': {}", args, flags_usage_message(app, words, e)));
  }
  if (flags.request.source.empty())
    throw Error(ErrorKind::kUsage, "", "--estimate needs a SOURCE first, e.g. --estimate 'microsoft/phi-2 --dtype fp16'");
  // the flags given, while the parser that knows them is alive
  flags.request.set_fields = fields_given(app, estimate_flag_names());
  flags.cmd = nullptr;
  return flags;
}

// The estimate of the measured run, before the command starts (so a bad source fails fast and costs the measured
// run nothing): on the GPU being measured, unless the request names its own --gpu.
EstimateResult estimate_for(const EstimateFlags& flags, nvml::Library& nvml, unsigned gpu_index) {
  EstimateRequest request = estimate_request(flags);
  if (request.gpu.name.empty() && nvml.device_count() > 0) request.gpu_profile = gpu_profile_from_nvml(nvml, gpu_index);
  return with_flag_names(estimate_flag_names(), [&] { return estimate(request); });
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
      "The report goes to stderr (JSON to stdout) after the command ends; the command's own output passes through. "
      "The command runs in its own process group; SIGINT/SIGTERM/SIGHUP/SIGQUIT are forwarded to it, and whatever "
      "is left of its process tree when it ends is killed. llmem exits with the command's status (128+N when it "
      "died of signal N, 127 when it was not found).\n"
      "Memory in MiB (2^20 bytes) and GiB (2^30 bytes).\n"
      "\nExamples:\n"
      "  llmem measure -- python3 train.py --batch 8\n"
      "  llmem measure --interval 1 --gpu 0 --timeline run.csv --timeline run.png -- ./serve.sh\n"
      "  llmem measure --estimate 'microsoft/phi-2 --prompt 6 --new-tokens 14' -- python3 run_phi2.py\n"
      "  llmem measure --json --output report.json -- python3 -c 'import torch; torch.ones(1).cuda()'\n"
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

    std::optional<EstimateFlags> est_flags;
    if (estimate_opt->count() > 0) est_flags = parse_estimate_flags(o->estimate);

    auto nvml = nvml::Library::open();
    std::optional<EstimateResult> est;
    if (est_flags) est = estimate_for(*est_flags, *nvml, opts.gpu_index.value_or(0));
    MeasureResult r = measure_command(*nvml, opts);

    if (!r.command_started) {
      std::fflush(stdout);
      fmt::print(stderr, "llmem: {}: {}\n", o->command[0],
                 r.exit_status == 127 ? "command not found" : std::strerror(r.exec_errno));
      if (o->json) write_report(report::measure_json(r, o->timelines).dump(2) + "\n", o->output, stdout);
      exit_code = r.exit_status;
      return;
    }
    for (const auto& path : charts) {
      try {
        chart::render(report::timeline_chart(r), path);
      } catch (const Error& e) {
        r.warnings.push_back(fmt::format("chart not written: {}", e.what()));
      }
    }
    if (o->json) {
      nlohmann::json j = report::measure_json(r, o->timelines);
      if (est) j["estimate"] = report::comparison_json(*est, compare_with_measurement(est->estimate, r.peak_tree_bytes));
      write_report(j.dump(2) + "\n", o->output, stdout);
    } else {
      std::string text = report::measure_text(r);
      if (est) text += report::comparison_text(*est, compare_with_measurement(est->estimate, r.peak_tree_bytes));
      write_report(text, o->output, stderr);
    }
    exit_code = r.exit_status;
  });
});

}  // namespace
}  // namespace llmem::cli
