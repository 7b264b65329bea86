// `measure`: start a command in its own process group, sample NVML while it runs, clean up after it.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>

#include <fmt/core.h>

#include "sampler.hpp"
#include "llmem/error.hpp"
#include "llmem/units.hpp"

namespace llmem {

namespace {

// ---- signal forwarding ---------------------------------------------------------------------------------------
// Plain atomics (lock-free) are what a signal handler may touch.
std::atomic<pid_t> g_child_pgid{0};
std::atomic<int> g_interrupts{0};
constexpr int kMaxRecordedSignals = 16;
std::atomic<int> g_forwarded[kMaxRecordedSignals];
std::atomic<int> g_forwarded_count{0};
// A signal that came before the command's group existed (between the handler's installation and the fork, or
// in another thread while the group was being set up): forwarded as soon as the group exists, exactly once.
std::atomic<int> g_pending_signal{0};
static_assert(std::atomic<pid_t>::is_always_lock_free && std::atomic<int>::is_always_lock_free);

constexpr int kForwardedSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

void send_to_group(pid_t pgid, int sig) {
  int to_send = sig;
  if (sig == SIGINT && g_interrupts.fetch_add(1) + 1 >= 3) to_send = SIGKILL;
  ::kill(-pgid, to_send);
  int i = g_forwarded_count.fetch_add(1);
  if (i < kMaxRecordedSignals) g_forwarded[i].store(to_send);
}

// The signal kept for later, if any, to the group (called once the group is known, and by the handler when the
// group appeared while it ran): whoever takes it from g_pending_signal sends it.
void flush_pending_signal() {
  const pid_t pgid = g_child_pgid.load();
  if (pgid <= 0) return;
  if (int sig = g_pending_signal.exchange(0); sig != 0) send_to_group(pgid, sig);
}

// Forward to the command's whole group. A third SIGINT escalates to SIGKILL: a command that ignores Ctrl-C
// must not leave the user with an llmem that cannot be stopped without orphaning it. A signal that arrives before
// the group exists is kept, never dropped (a SIGTERM sent as the command starts used to vanish, and llmem then
// waited for the whole command).
void forward_signal(int sig) {
  int saved_errno = errno;
  pid_t pgid = g_child_pgid.load();
  if (pgid > 0) {
    send_to_group(pgid, sig);
  } else {
    g_pending_signal.store(sig);
    flush_pending_signal();  // the group may have appeared meanwhile
  }
  errno = saved_errno;
}

class SignalForwarding {
 public:
  SignalForwarding() {
    g_child_pgid = 0;
    g_interrupts = 0;
    g_forwarded_count = 0;
    g_pending_signal = 0;
    struct sigaction sa{};
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < std::size(kForwardedSignals); ++i) ::sigaction(kForwardedSignals[i], &sa, &old_[i]);
  }
  ~SignalForwarding() {
    for (size_t i = 0; i < std::size(kForwardedSignals); ++i) ::sigaction(kForwardedSignals[i], &old_[i], nullptr);
    g_child_pgid = 0;
  }
  std::vector<int> forwarded() const {
    std::vector<int> out;
    int n = std::min(g_forwarded_count.load(), kMaxRecordedSignals);
    for (int i = 0; i < n; ++i) out.push_back(g_forwarded[i].load());
    return out;
  }

 private:
  struct sigaction old_[std::size(kForwardedSignals)];
};

// ---- start the command ---------------------------------------------------------------------------------------
struct Started {
  pid_t pid = -1;
  int exec_errno = 0;
  bool has_terminal = false;   // the command's group was made the terminal's foreground group
};

// fork + execvp, with a close-on-exec pipe that carries execvp's errno back: the parent learns "not found"
// before it starts sampling. The child is the leader of a new process group so the whole tree can be
// signalled at once.
Started start_command(const std::vector<std::string>& command) {
  std::vector<char*> argv;
  for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  // Interactive use: when llmem owns the terminal, the command gets it (Ctrl-C then reaches the command's group
  // directly, and a command reading the terminal is not stopped by SIGTTIN).
  bool give_terminal = ::isatty(STDIN_FILENO) == 1 && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp();

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw Error(ErrorKind::kRuntime, "", fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  // The forwarded signals wait while the child is made: the child inherits them blocked (its handlers are still
  // llmem's until it resets them) and unblocks them with their default actions; the parent takes them once the
  // child's group is known.
  sigset_t forwarded, before;
  sigemptyset(&forwarded);
  for (int sig : kForwardedSignals) sigaddset(&forwarded, sig);
  ::pthread_sigmask(SIG_BLOCK, &forwarded, &before);
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    ::close(fds[0]);
    ::close(fds[1]);
    throw Error(ErrorKind::kRuntime, "", fmt::format("cannot fork: {}", std::strerror(e)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::setpgid(0, 0);
    if (give_terminal) {
      ::signal(SIGTTOU, SIG_IGN);
      ::tcsetpgrp(STDIN_FILENO, ::getpid());
    }
    for (int sig : kForwardedSignals) ::signal(sig, SIG_DFL);
    ::signal(SIGTTOU, SIG_DFL);
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvp(argv[0], argv.data());
    int e = errno;
    ssize_t ignored = ::write(fds[1], &e, sizeof e);
    (void)ignored;
    ::_exit(e == ENOENT || e == ENOTDIR ? 127 : 126);
  }
  // Parent: set the group too, so that it exists before any signal is forwarded (EACCES once the child
  // has exec'd is fine: it did it itself).
  ::setpgid(pid, pid);
  g_child_pgid = pid;
  flush_pending_signal();
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);  // a signal that waited is forwarded now
  ::close(fds[1]);
  Started s;
  s.pid = pid;
  s.has_terminal = give_terminal;
  int e = 0;
  ssize_t n;
  do {
    n = ::read(fds[0], &e, sizeof e);
  } while (n < 0 && errno == EINTR);
  ::close(fds[0]);
  if (n == static_cast<ssize_t>(sizeof e)) s.exec_errno = e;
  return s;
}

void take_back_terminal() {
  // llmem is a background group now: tcsetpgrp would stop it with SIGTTOU unless that is blocked.
  sigset_t ttou, old;
  sigemptyset(&ttou);
  sigaddset(&ttou, SIGTTOU);
  ::pthread_sigmask(SIG_BLOCK, &ttou, &old);
  ::tcsetpgrp(STDIN_FILENO, ::getpgrp());
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

// ---- leftovers -----------------------------------------------------------------------------------------------
// Processes of the tree still alive after the command ended: its group, and anything re-parented to llmem
// (which is a child subreaper) — daemons that left the group with setsid included.
std::vector<uint32_t> leftovers(pid_t pgid) {
  std::vector<uint32_t> out;
  uint32_t self = static_cast<uint32_t>(::getpid());
  for (const auto& p : gpu::list_processes()) {
    if (p.state == 'Z' || p.pid == self) continue;
    if (p.pgrp == static_cast<uint32_t>(pgid) || p.ppid == self) out.push_back(p.pid);
  }
  return out;
}

void reap_zombies() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

unsigned kill_leftovers(pid_t pgid) {
  std::set<uint32_t> killed;
  auto deadline_term = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  bool sent_kill = false;
  for (int round = 0; round < 200; ++round) {
    reap_zombies();
    auto left = leftovers(pgid);
    if (left.empty()) break;
    bool hard = std::chrono::steady_clock::now() >= deadline_term;
    for (uint32_t pid : left) {
      bool fresh = killed.insert(pid).second;
      // SIGTERM first so that a program can release its GPU memory cleanly; SIGKILL after 500 ms.
      if (fresh) ::kill(static_cast<pid_t>(pid), SIGTERM);
      if (hard) ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
    if (hard) sent_kill = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(sent_kill ? 10 : 5));
  }
  reap_zombies();
  return static_cast<unsigned>(killed.size());
}

double cpu_ms_self() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto ms = [](const timeval& tv) { return tv.tv_sec * 1000.0 + tv.tv_usec / 1000.0; };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

// The GPUs to watch (--gpu or all) and each one's memory just before the start: the last of a few readings (the
// first NVML calls can be slow).
void read_baselines(nvml::Library& nvml, const MeasureOptions& options, gpu::TimelineHeader& header,
                    std::vector<gpu::SamplerGpu>& sampler_gpus) {
  unsigned count = nvml.device_count();
  if (count == 0) throw Error(ErrorKind::kRuntime, "", "NVML sees no GPU");
  std::vector<unsigned> indices;
  if (options.gpu_index) {
    if (*options.gpu_index >= count)
      throw Error(ErrorKind::kUsage, "",
                  fmt::format("--gpu {}: there {} {} GPU{} (0 .. {})", *options.gpu_index, count == 1 ? "is" : "are",
                              count, count == 1 ? "" : "s", count - 1));
    indices.push_back(*options.gpu_index);
  } else {
    for (unsigned i = 0; i < count; ++i) indices.push_back(i);
  }

  for (unsigned idx : indices) {
    nvml::DeviceMemory mem;
    int rc = nvml::kSuccess;
    for (unsigned i = 0; i < std::max(1u, options.baseline_samples); ++i) rc = nvml.memory(idx, mem);
    if (rc != nvml::kSuccess)
      throw Error(ErrorKind::kRuntime, fmt::format("GPU {}", idx),
                  fmt::format("cannot read memory before the start: {} (NVML error {})", nvml.error_string(rc), rc));
    gpu::SamplerGpu sg{idx, mem.used_bytes};
    sampler_gpus.push_back(sg);
    header.gpus.push_back({idx, nvml.name(idx), nvml.uuid(idx), mem.total_bytes, mem.used_bytes});
  }

}

// Names the GPUs of a finished measurement, falls back to device-used-minus-baseline where NVML attributed nothing
// to the command, and words the warnings.
void resolve_tree_sources(MeasureResult& result, const gpu::TimelineHeader& header) {
  for (size_t i = 0; i < result.gpus.size(); ++i) {
    auto& g = result.gpus[i];
    g.name = header.gpus[i].name;
    g.uuid = header.gpus[i].uuid;
    g.total_bytes = header.gpus[i].total_bytes;
    // NVML answered, but attributed nothing to the command while the device filled up: the usual cause is a
    // container whose PID namespace differs from the driver's, so NVML's pids are not ours.
    constexpr uint64_t kUnexplainedBytes = 64ull << 20;
    if (g.tree_source == TreeSource::kPerProcess && g.peak_tree_bytes == 0 &&
        g.peak_device_minus_baseline_bytes > kUnexplainedBytes) {
      g.tree_source = TreeSource::kDeviceMinusBaseline;
      g.tree_fallback_reason = fmt::format(
          "NVML attributed no memory to the command's processes while device used rose by {} "
          "(processes in another PID namespace?)",
          format_bytes(g.peak_device_minus_baseline_bytes));
      g.peak_tree_bytes = g.peak_device_minus_baseline_bytes;
      g.peak_tree_time_ms = g.peak_device_time_ms;
    }
  }
  bool all_fallback = !result.gpus.empty();
  bool any_fallback = false;
  for (const auto& g : result.gpus) {
    bool fb = g.tree_source == TreeSource::kDeviceMinusBaseline;
    all_fallback = all_fallback && fb;
    any_fallback = any_fallback || fb;
    if (fb)
      result.warnings.push_back(fmt::format(
          "GPU {}: {}; the command's figure is device used minus baseline, which counts other processes' changes "
          "too",
          g.index, g.tree_fallback_reason));
  }
  if (all_fallback) {
    result.peak_tree_bytes = result.peak_device_minus_baseline_sum_bytes;
    result.peak_tree_time_ms = result.peak_device_minus_baseline_sum_time_ms;
  } else if (any_fallback) {
    // Mixed sources across GPUs: the per-round sum mixed them as they came; keep the larger of it and the sum of
    // the per-GPU peaks' lower bound.
    uint64_t max_single = 0;
    for (const auto& g : result.gpus) max_single = std::max(max_single, g.peak_tree_bytes);
    result.peak_tree_bytes = std::max(result.peak_tree_bytes, max_single);
  }
  if (result.leftover_processes_killed > 0)
    result.warnings.push_back(fmt::format("{} process{} of the command's tree outlived it and {} killed",
                                          result.leftover_processes_killed,
                                          result.leftover_processes_killed == 1 ? "" : "es",
                                          result.leftover_processes_killed == 1 ? "was" : "were"));
}

}  // namespace

MeasureResult measure_command(nvml::Library& nvml, const MeasureOptions& options) {
  if (options.command.empty()) throw Error(ErrorKind::kUsage, "", "no command to measure (give it after --)");
  if (options.interval_ms < 1 || options.interval_ms > 60000)
    throw Error(ErrorKind::kUsage, "", fmt::format("--interval {} ms is outside 1 .. 60000 ms", options.interval_ms));

  MeasureResult result;
  result.command = options.command;
  result.interval_ms = options.interval_ms;
  result.nvml_library = nvml.library_path();
  result.driver_version = nvml.driver_version();
  for (const auto& f : nvml.fallbacks()) result.warnings.push_back("NVML: " + f);

  gpu::TimelineHeader header;
  header.command = options.command;
  header.interval_ms = options.interval_ms;
  std::vector<gpu::SamplerGpu> sampler_gpus;
  read_baselines(nvml, options, header, sampler_gpus);

  std::vector<std::unique_ptr<gpu::TimelineWriter>> writers;
  for (const auto& path : options.timeline_paths) {
    auto format = timeline_format_for(path);
    if (!format)
      throw Error(ErrorKind::kUsage, path, "a timeline file ends in .csv, .json or .jsonl");
    writers.push_back(std::make_unique<gpu::TimelineWriter>(path, *format, header));
  }

  // Orphans of the command's tree are re-parented to llmem instead of init, so they stay visible as part of
  // the tree and can be cleaned up.
  int old_subreaper = 0;
  ::prctl(PR_GET_CHILD_SUBREAPER, &old_subreaper);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  gpu::Sampler sampler(nvml, sampler_gpus, options.interval_ms, writers.empty() ? nullptr : &writers,
                       options.keep_timeline);
  SignalForwarding forwarding;
  double cpu_before_ms = cpu_ms_self();
  auto t0 = std::chrono::steady_clock::now();
  Started started = start_command(options.command);

  if (started.exec_errno != 0) {
    int status = 0;
    while (::waitpid(started.pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (started.has_terminal) take_back_terminal();
    ::prctl(PR_SET_CHILD_SUBREAPER, old_subreaper);
    result.exec_errno = started.exec_errno;
    result.exit_status = (started.exec_errno == ENOENT || started.exec_errno == ENOTDIR) ? 127 : 126;
    for (const auto& g : header.gpus) {
      GpuMeasurement m;
      m.index = g.index;
      m.name = g.name;
      m.uuid = g.uuid;
      m.total_bytes = g.total_bytes;
      m.baseline_used_bytes = g.baseline_used_bytes;
      result.gpus.push_back(m);
    }
    return result;
  }
  result.command_started = true;
  sampler.start(t0, {static_cast<uint32_t>(started.pid), static_cast<uint32_t>(::getpid())});

  int status = 0;
  while (true) {
    pid_t w = ::waitpid(started.pid, &status, 0);
    if (w == started.pid) {
      // The command is llmem's only child waited for so far, so RUSAGE_CHILDREN's ru_maxrss (KiB) is its peak
      // resident set, or that of the largest descendant it waited for (the kernel folds those in). getrusage
      // rather than wait4: POSIX, and the WebAssembly build's libc has no wait4.
      rusage children{};
      if (::getrusage(RUSAGE_CHILDREN, &children) == 0)
        result.host_peak_rss_bytes = static_cast<uint64_t>(children.ru_maxrss) * 1024u;
      break;
    }
    if (w < 0 && errno != EINTR) break;
  }
  auto t_end = std::chrono::steady_clock::now();
  if (started.has_terminal) take_back_terminal();
  sampler.stop();
  result.duration_ms = std::chrono::duration<double, std::milli>(t_end - t0).count();
  result.llmem_cpu_ms = cpu_ms_self() - cpu_before_ms;

  result.leftover_processes_killed = kill_leftovers(started.pid);
  result.forwarded_signals = forwarding.forwarded();
  ::prctl(PR_SET_CHILD_SUBREAPER, old_subreaper);

  if (WIFEXITED(status)) {
    result.exit_status = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
    result.core_dumped = WCOREDUMP(status);
    result.exit_status = 128 + result.term_signal;
  }

  sampler.fill(result);
  resolve_tree_sources(result, header);
  for (const auto& w : writers)
    if (w->failed()) result.warnings.push_back(fmt::format("{}: the timeline is incomplete (a write failed)", w->path()));
  return result;
}

}  // namespace llmem
