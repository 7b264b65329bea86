// Measuring the GPU memory of a command: start it, sample NVML on a thread, report the peaks.
//
// What is measured, per selected GPU:
//   - the baseline: device used memory just before the command starts;
//   - the peak of the command's process tree: at each sample, the per-process memory NVML reports for every
//     process whose ancestry reaches the command (children, grandchildren, and orphans re-parented to llmem,
//     which makes itself a child subreaper), summed — summed over the selected GPUs too for the overall peak;
//   - the peak of device used memory (every process on the GPU, the command's or not);
//   - when each peak happened, from the command's start.
// When NVML cannot give per-process memory (NVML_ERROR_NOT_SUPPORTED in some containers, or no visible pid of
// the tree), the tree figure falls back to device used minus baseline, and the result says so.
//
// The command runs in its own process group; SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to llmem are forwarded to
// that group while it runs; when it ends, whatever is left of its tree is killed, so nothing is orphaned.
// Nothing here prints: warnings are returned in MeasureResult::warnings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llmem/nvml.hpp"

namespace llmem {

struct TimelineSample {
  double time_ms = 0;              // since the command started
  unsigned gpu_index = 0;          // NVML index
  uint64_t device_used_bytes = 0;
  uint64_t tree_used_bytes = 0;    // the command's processes (or device used minus baseline in fallback)
  uint32_t tree_processes = 0;     // processes of the tree seen on this GPU
  uint64_t host_rss_bytes = 0;     // the command's own process: resident set (/proc/PID/statm) in this round
};

enum class TimelineFormat { kCsv, kJson, kJsonLines };

// The format a timeline path asks for by its extension (.csv, .json, .jsonl), nullopt otherwise.
std::optional<TimelineFormat> timeline_format_for(const std::string& path);

struct MeasureOptions {
  std::vector<std::string> command;             // argv; command[0] is looked up in PATH
  unsigned interval_ms = 5;                     // 1 .. 60000
  std::optional<unsigned> gpu_index;            // nullopt: every GPU
  std::vector<std::string> timeline_paths;      // .csv/.json/.jsonl, written and flushed as samples come
  bool keep_timeline = false;                   // keep samples in memory (for charts)
  unsigned baseline_samples = 3;                // baseline = the last of these, taken before the start
};

enum class TreeSource {
  kPerProcess,            // NVML per-process memory of the command's processes
  kDeviceMinusBaseline,   // fallback: device used minus baseline (includes other processes' changes)
};

struct GpuMeasurement {
  unsigned index = 0;
  std::string name;
  std::string uuid;
  uint64_t total_bytes = 0;
  uint64_t baseline_used_bytes = 0;
  uint64_t peak_device_used_bytes = 0;
  double peak_device_time_ms = 0;
  uint64_t peak_tree_bytes = 0;                 // per TreeSource
  double peak_tree_time_ms = 0;
  uint32_t peak_tree_processes = 0;
  uint64_t peak_device_minus_baseline_bytes = 0;
  TreeSource tree_source = TreeSource::kPerProcess;
  std::string tree_fallback_reason;             // why the fallback was used ("" when per-process)
  bool lost = false;                            // NVML_ERROR_GPU_IS_LOST ended its sampling
  double lost_at_ms = 0;
  uint64_t failed_samples = 0;                  // NVML calls that failed with another error
  uint64_t samples = 0;
};

struct MeasureResult {
  std::vector<std::string> command;
  unsigned interval_ms = 0;
  // Shell conventions: the exit code, 128 + signal for a signal death, 127 when not found, 126 when not
  // executable.
  int exit_status = 0;
  bool command_started = false;
  int exec_errno = 0;                           // when the command could not be started
  int term_signal = 0;                          // the signal that ended the command, 0 if none
  bool core_dumped = false;
  double duration_ms = 0;                       // from start to exit of the command
  uint64_t sample_rounds = 0;                   // rounds of samples (one sample per GPU per round)
  double max_sample_gap_ms = 0;                 // the largest time between two rounds
  double llmem_cpu_ms = 0;                      // llmem's own CPU time (user + system) during the run
  std::vector<GpuMeasurement> gpus;
  uint64_t peak_tree_bytes = 0;                 // summed over GPUs within one round
  double peak_tree_time_ms = 0;
  uint64_t peak_device_minus_baseline_sum_bytes = 0;   // the fallback's figure, summed over GPUs per round
  double peak_device_minus_baseline_sum_time_ms = 0;
  std::vector<int> forwarded_signals;           // signals forwarded to the command's process group
  unsigned leftover_processes_killed = 0;       // processes of the tree still alive after the command ended
  // Host memory: the largest peak resident set of one process of the command's tree (the kernel's ru_maxrss,
  // getrusage(RUSAGE_CHILDREN) once it ended: the command and the descendants it waited for; file-backed pages
  // it mapped and touched, pinned buffers and the CUDA driver's own host memory included). 0 when it did not
  // start.
  uint64_t host_peak_rss_bytes = 0;
  // The command's own process (not its children), sampled each round: the largest resident set seen and when.
  uint64_t host_sampled_peak_rss_bytes = 0;
  double host_sampled_peak_rss_time_ms = 0;
  std::vector<std::string> warnings;
  std::vector<TimelineSample> timeline;         // when MeasureOptions::keep_timeline
  std::string nvml_library;
  std::string driver_version;
};

// Runs the command to its end and measures it. Throws llmem::Error for bad options (kUsage: interval, GPU
// index, timeline path) and for NVML failures before the start (kRuntime). A command that cannot be started is
// not an exception: exit_status is 127 (or 126) and exec_errno says why.
MeasureResult measure_command(nvml::Library& nvml, const MeasureOptions& options);

// Exposed for tests: whether `pid`'s ancestry reaches one of `roots` (reads /proc/<pid>/stat).
bool process_descends_from(uint32_t pid, const std::vector<uint32_t>& roots);

}  // namespace llmem
