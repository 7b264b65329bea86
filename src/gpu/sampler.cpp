// The sampler thread and the /proc helpers it needs.
#include "sampler.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <fmt/core.h>

#include "llmem/units.hpp"

namespace llmem::gpu {

// ---- /proc ---------------------------------------------------------------------------------------------------

std::optional<ProcStat> read_proc_stat(uint32_t pid) {
  char path[48];
  std::snprintf(path, sizeof path, "/proc/%u/stat", pid);
  // open/read/close rather than iostreams: this runs for every listed process at every sample.
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so parse after the last ')'.
  const char* close_paren = std::strrchr(buf, ')');
  if (!close_paren) return std::nullopt;
  ProcStat st;
  st.pid = pid;
  const char* p = close_paren + 1;
  // Fields from 3 (state) on, separated by single spaces.
  int field = 3;
  while (*p && field <= 22) {
    while (*p == ' ') ++p;
    const char* start = p;
    while (*p && *p != ' ') ++p;
    switch (field) {
      case 3: st.state = *start; break;
      case 4: st.ppid = static_cast<uint32_t>(std::strtoul(start, nullptr, 10)); break;
      case 5: st.pgrp = static_cast<uint32_t>(std::strtoul(start, nullptr, 10)); break;
      case 22: st.start_ticks = std::strtoull(start, nullptr, 10); break;
      default: break;
    }
    ++field;
  }
  if (field <= 5) return std::nullopt;
  return st;
}

std::vector<ProcStat> list_processes() {
  std::vector<ProcStat> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    const char* name = e->d_name;
    if (*name < '0' || *name > '9') continue;
    char* end = nullptr;
    unsigned long pid = std::strtoul(name, &end, 10);
    if (*end != '\0') continue;
    if (auto st = read_proc_stat(static_cast<uint32_t>(pid))) out.push_back(*st);
  }
  ::closedir(d);
  return out;
}

bool TreeMembership::contains(uint32_t pid) {
  auto st = read_proc_stat(pid);
  if (!st) {
    ++invisible_;
    return false;
  }
  if (auto it = cache_.find(pid); it != cache_.end() && it->second.start_ticks == st->start_ticks)
    return it->second.member;
  // Walk the ancestry. A process that lost its parent was re-parented to llmem (a child subreaper), which is
  // one of the roots, so orphans of the tree still count.
  bool member = false;
  ProcStat cur = *st;
  for (int depth = 0; depth < 256; ++depth) {
    if (std::find(roots_.begin(), roots_.end(), cur.pid) != roots_.end()) {
      member = true;
      break;
    }
    if (cur.ppid <= 1) break;
    auto parent = read_proc_stat(cur.ppid);
    if (!parent) break;
    cur = *parent;
  }
  cache_[pid] = Entry{st->start_ticks, member};
  return member;
}

}  // namespace llmem::gpu

namespace llmem {
bool process_descends_from(uint32_t pid, const std::vector<uint32_t>& roots) {
  gpu::TreeMembership t(roots);
  return t.contains(pid);
}
}  // namespace llmem

namespace llmem::gpu {

// ---- the sampler ---------------------------------------------------------------------------------------------

namespace {
// While device used holds still, the process list is re-read at least this often (a safety net for a change
// that leaves the device total unchanged, such as one process freeing what another takes).
constexpr unsigned kProcessRefreshMs = 200;
const uint64_t kPageBytes = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
// After a change of device used, the list is read for this many more rounds, in case the per-process figures
// settle a little after the device total.
constexpr unsigned kRoundsAfterChange = 2;
}  // namespace

Sampler::Sampler(nvml::Library& nvml, std::vector<SamplerGpu> gpus, unsigned interval_ms,
                 std::vector<std::unique_ptr<TimelineWriter>>* writers, bool keep_timeline)
    : nvml_(nvml), interval_ms_(interval_ms), writers_(writers), keep_timeline_(keep_timeline) {
  for (const auto& g : gpus) {
    GpuState s;
    s.gpu = g;
    s.m.index = g.index;
    s.m.baseline_used_bytes = g.baseline_used_bytes;
    gpus_.push_back(std::move(s));
  }
  processes_.reserve(64);
  round_samples_.reserve(gpus_.size());
  process_refresh_rounds_ = std::max(1u, kProcessRefreshMs / std::max(1u, interval_ms_));
}

Sampler::~Sampler() {
  if (thread_.joinable()) stop();
}

void Sampler::start(Clock::time_point t0, std::vector<uint32_t> roots) {
  t0_ = t0;
  command_pid_ = roots.empty() ? 0 : roots.front();
  tree_.emplace(std::move(roots));
  thread_ = std::thread([this] { run(); });
}

void Sampler::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_requested_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Sampler::run() {
  // Signals are for the main thread, which forwards them to the command.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);

  const auto interval = std::chrono::milliseconds(interval_ms_);
  auto next = Clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    bool stopping = stop_requested_;
    lock.unlock();
    bool any_left = round();
    lock.lock();
    if (stopping || !any_left) break;
    // Fixed cadence: the next deadline follows the previous one, but a round that overran does not cause a
    // burst of catch-up samples.
    next += interval;
    auto now = Clock::now();
    if (next < now) next = now;
    wake_.wait_until(lock, next, [this] { return stop_requested_; });
  }
}

bool Sampler::round() {
  round_samples_.clear();
  // The command's resident set this round: one small read of /proc/PID/statm (its second field, in pages).
  uint64_t host_rss = 0;
  if (command_pid_) {
    if (FILE* f = std::fopen(fmt::format("/proc/{}/statm", command_pid_).c_str(), "r")) {
      unsigned long long size = 0, resident = 0;
      if (std::fscanf(f, "%llu %llu", &size, &resident) == 2) host_rss = resident * kPageBytes;
      std::fclose(f);
    }
    const double t = std::chrono::duration<double, std::milli>(Clock::now() - t0_).count();
    if (host_rss > host_peak_rss_) {
      host_peak_rss_ = host_rss;
      host_peak_rss_ms_ = t;
    }
  }
  bool any_left = false;
  uint64_t round_tree_bytes = 0;
  uint64_t round_delta_bytes = 0;
  double round_ms = -1;
  for (auto& g : gpus_) {
    if (g.m.lost) continue;
    double t_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0_).count();
    if (round_ms < 0) round_ms = t_ms;
    nvml::DeviceMemory mem;
    int rc = nvml_.memory(g.gpu.index, mem);
    if (rc == nvml::kGpuIsLost) {
      g.m.lost = true;
      g.m.lost_at_ms = t_ms;
      warnings_.push_back(fmt::format("GPU {} was lost at {:.3f} s ({}); its sampling stopped there", g.gpu.index,
                                      t_ms / 1000.0, nvml_.error_string(rc)));
      continue;
    }
    any_left = true;
    if (rc != nvml::kSuccess) {
      if (g.m.failed_samples++ == 0)
        warnings_.push_back(fmt::format("GPU {}: a memory query failed at {:.3f} s ({}); such samples are skipped",
                                        g.gpu.index, t_ms / 1000.0, nvml_.error_string(rc)));
      g.last_error = rc;
      continue;
    }
    ++g.m.samples;
    uint64_t delta = mem.used_bytes > g.gpu.baseline_used_bytes ? mem.used_bytes - g.gpu.baseline_used_bytes : 0;
    if (mem.used_bytes > g.m.peak_device_used_bytes || g.m.samples == 1) {
      g.m.peak_device_used_bytes = mem.used_bytes;
      g.m.peak_device_time_ms = t_ms;
    }
    g.m.peak_device_minus_baseline_bytes = std::max(g.m.peak_device_minus_baseline_bytes, delta);

    if (mem.used_bytes != g.last_used_bytes) {
      g.last_used_bytes = mem.used_bytes;
      g.rounds_since_change = 0;
    } else if (g.rounds_since_change < UINT32_MAX) {
      ++g.rounds_since_change;
    }
    const bool read_processes = g.rounds_since_change <= kRoundsAfterChange ||
                                g.rounds_since_process_query + 1 >= process_refresh_rounds_;

    uint64_t tree_bytes = 0;
    uint32_t tree_procs = 0;
    if (g.per_process && !read_processes) {
      ++g.rounds_since_process_query;
      tree_bytes = g.cached_tree_bytes;
      tree_procs = g.cached_tree_processes;
    } else if (g.per_process) {
      g.rounds_since_process_query = 0;
      int prc = nvml_.processes(g.gpu.index, processes_);
      if (prc == nvml::kSuccess) {
        for (const auto& p : processes_) {
          if (!tree_->contains(p.pid)) continue;
          ++tree_procs;
          if (p.used_bytes) tree_bytes += *p.used_bytes;
          else g.saw_tree_without_memory = true;
        }
        if (g.saw_tree_without_memory) {
          g.per_process = false;
          g.m.tree_fallback_reason = "NVML lists the command's processes without their memory";
        }
        g.cached_tree_bytes = tree_bytes;
        g.cached_tree_processes = tree_procs;
      } else if (prc == nvml::kGpuIsLost) {
        g.m.lost = true;
        g.m.lost_at_ms = t_ms;
        warnings_.push_back(fmt::format("GPU {} was lost at {:.3f} s ({}); its sampling stopped there",
                                        g.gpu.index, t_ms / 1000.0, nvml_.error_string(prc)));
      } else {
        // NOT_SUPPORTED (containers, vGPU), NO_PERMISSION, a missing entry point, or an error mid-run: from here
        // on this GPU is measured as device used minus baseline.
        g.per_process = false;
        g.m.tree_fallback_reason =
            fmt::format("per-process memory unavailable from NVML ({})", nvml_.error_string(prc));
      }
    }
    if (!g.per_process) {
      tree_bytes = delta;
      tree_procs = 0;
    }
    if (tree_bytes > g.m.peak_tree_bytes) {
      g.m.peak_tree_bytes = tree_bytes;
      g.m.peak_tree_time_ms = t_ms;
      g.m.peak_tree_processes = tree_procs;
    }
    round_tree_bytes += tree_bytes;
    round_delta_bytes += delta;
    round_samples_.push_back(TimelineSample{t_ms, g.gpu.index, mem.used_bytes, tree_bytes, tree_procs, host_rss});
  }
  if (round_ms >= 0) {
    ++rounds_;
    if (last_round_ms_ >= 0) max_gap_ms_ = std::max(max_gap_ms_, round_ms - last_round_ms_);
    last_round_ms_ = round_ms;
    if (round_tree_bytes > peak_tree_bytes_) {
      peak_tree_bytes_ = round_tree_bytes;
      peak_tree_time_ms_ = round_ms;
    }
    if (round_delta_bytes > peak_delta_sum_bytes_) {
      peak_delta_sum_bytes_ = round_delta_bytes;
      peak_delta_sum_time_ms_ = round_ms;
    }
  }
  if (!round_samples_.empty()) {
    if (writers_) {
      for (auto& w : *writers_) {
        if (!w->write_round(round_samples_))
          warnings_.push_back(fmt::format("{}: writing the timeline failed ({}); it ends here", w->path(),
                                          std::strerror(errno)));
      }
    }
    if (keep_timeline_) {
      try {
        timeline_.insert(timeline_.end(), round_samples_.begin(), round_samples_.end());
      } catch (const std::bad_alloc&) {
        keep_timeline_ = false;
        warnings_.push_back("out of memory for the in-memory timeline; the chart ends early");
      }
    }
  }
  return any_left;
}

void Sampler::fill(MeasureResult& r) {
  r.sample_rounds = rounds_;
  r.host_sampled_peak_rss_bytes = host_peak_rss_;
  r.host_sampled_peak_rss_time_ms = host_peak_rss_ms_;
  r.max_sample_gap_ms = max_gap_ms_;
  r.peak_tree_bytes = peak_tree_bytes_;
  r.peak_tree_time_ms = peak_tree_time_ms_;
  r.peak_device_minus_baseline_sum_bytes = peak_delta_sum_bytes_;
  r.peak_device_minus_baseline_sum_time_ms = peak_delta_sum_time_ms_;
  r.warnings.insert(r.warnings.end(), warnings_.begin(), warnings_.end());
  for (const auto& g : gpus_) {
    GpuMeasurement m = g.m;
    m.tree_source = g.per_process ? TreeSource::kPerProcess : TreeSource::kDeviceMinusBaseline;
    if (!g.per_process) {
      // A GPU that switched mid-run: its peak is the larger of the per-process part and the fallback's.
      if (m.peak_device_minus_baseline_bytes >= m.peak_tree_bytes) {
        m.peak_tree_bytes = m.peak_device_minus_baseline_bytes;
        m.peak_tree_time_ms = m.peak_device_time_ms;
      }
    }
    r.gpus.push_back(std::move(m));
  }
  r.timeline = std::move(timeline_);
}

}  // namespace llmem::gpu
