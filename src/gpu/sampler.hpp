// Private to src/gpu: the pieces of `measure` — /proc helpers, timeline writers, the sampler thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "llmem/measure.hpp"
#include "llmem/nvml.hpp"

namespace llmem::gpu {

// ---- /proc ---------------------------------------------------------------------------------------------------
struct ProcStat {
  uint32_t pid = 0;
  uint32_t ppid = 0;
  uint32_t pgrp = 0;
  char state = '?';
  uint64_t start_ticks = 0;   // field 22: start time since boot, identifies a pid across reuse
};

// /proc/<pid>/stat, nullopt when the process is gone or not visible.
std::optional<ProcStat> read_proc_stat(uint32_t pid);
// Every visible process (readdir of /proc lists thread-group leaders only).
std::vector<ProcStat> list_processes();

// Decides whether a pid NVML reports belongs to the command's tree, caching the answer per (pid, start time)
// so that the sampler reads one small /proc file per listed process and sample.
class TreeMembership {
 public:
  explicit TreeMembership(std::vector<uint32_t> roots) : roots_(std::move(roots)) {}
  bool contains(uint32_t pid);
  // Pids NVML listed that /proc does not show at all (a sign of another PID namespace).
  uint64_t invisible_pids() const { return invisible_; }

 private:
  struct Entry {
    uint64_t start_ticks;
    bool member;
  };
  std::vector<uint32_t> roots_;
  std::unordered_map<uint32_t, Entry> cache_;
  uint64_t invisible_ = 0;
};

// ---- timeline files ------------------------------------------------------------------------------------------
struct TimelineHeader {
  std::vector<std::string> command;
  unsigned interval_ms = 0;
  struct Gpu {
    unsigned index;
    std::string name;
    std::string uuid;
    uint64_t total_bytes;
    uint64_t baseline_used_bytes;
  };
  std::vector<Gpu> gpus;
};

// Writes samples as they come and flushes after each round, so a file is valid whenever llmem stops: CSV and
// JSON Lines are line-based; the JSON document ends with its closing "]}" after every round, which the next
// round overwrites.
class TimelineWriter {
 public:
  TimelineWriter(std::string path, TimelineFormat format, const TimelineHeader& header);
  ~TimelineWriter();
  TimelineWriter(const TimelineWriter&) = delete;
  TimelineWriter& operator=(const TimelineWriter&) = delete;

  // Returns false (once) when a write failed; the writer then stops writing.
  bool write_round(const std::vector<TimelineSample>& round);
  const std::string& path() const { return path_; }
  bool failed() const { return failed_; }

 private:
  std::string path_;
  TimelineFormat format_;
  std::FILE* file_ = nullptr;
  bool failed_ = false;
  bool first_sample_ = true;
  long tail_offset_ = 0;   // JSON: where the closing "]}" starts
};

// ---- the sampler ---------------------------------------------------------------------------------------------
struct SamplerGpu {
  unsigned index = 0;
  uint64_t baseline_used_bytes = 0;
};

class Sampler {
 public:
  using Clock = std::chrono::steady_clock;

  Sampler(nvml::Library& nvml, std::vector<SamplerGpu> gpus, unsigned interval_ms,
          std::vector<std::unique_ptr<TimelineWriter>>* writers, bool keep_timeline);
  ~Sampler();

  // Starts the thread; samples are timed from t0 and attributed to processes descending from `roots`.
  void start(Clock::time_point t0, std::vector<uint32_t> roots);
  // Takes a last round, stops and joins the thread.
  void stop();

  // Valid after stop().
  void fill(MeasureResult& result);   // moves the in-memory timeline out

 private:
  void run();
  bool round();   // false when no GPU is left to sample

  struct GpuState {
    SamplerGpu gpu;
    GpuMeasurement m;
    bool per_process = true;
    bool saw_tree_without_memory = false;
    int last_error = 0;
    // The process list is re-read only while device used is changing (and now and then regardless): an
    // unchanged device total means no process allocated or freed, and the query is half of each round's cost.
    uint64_t last_used_bytes = UINT64_MAX;
    unsigned rounds_since_change = 0;
    unsigned rounds_since_process_query = 0;
    uint64_t cached_tree_bytes = 0;
    uint32_t cached_tree_processes = 0;
  };
  unsigned process_refresh_rounds_ = 1;
  uint32_t command_pid_ = 0;          // the first root: the command's own process
  uint64_t host_peak_rss_ = 0;
  double host_peak_rss_ms_ = 0;

  nvml::Library& nvml_;
  std::vector<GpuState> gpus_;
  unsigned interval_ms_;
  std::vector<std::unique_ptr<TimelineWriter>>* writers_;
  bool keep_timeline_;

  Clock::time_point t0_;
  std::optional<TreeMembership> tree_;
  std::vector<nvml::GpuProcess> processes_;   // reused buffer
  std::vector<TimelineSample> round_samples_;
  std::vector<TimelineSample> timeline_;
  std::vector<std::string> warnings_;
  uint64_t rounds_ = 0;
  double last_round_ms_ = -1;
  double max_gap_ms_ = 0;
  uint64_t peak_tree_bytes_ = 0;
  double peak_tree_time_ms_ = 0;
  uint64_t peak_delta_sum_bytes_ = 0;   // device used minus baseline, summed over GPUs within a round
  double peak_delta_sum_time_ms_ = 0;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_requested_ = false;
  std::thread thread_;
};

}  // namespace llmem::gpu
