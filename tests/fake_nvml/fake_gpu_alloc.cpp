// A stand-in for a GPU program in tests: holds fake GPU memory (reported by the fake NVML) in phases.
//
//   fake_gpu_alloc [--gpu N] [--host-mib N] [--exit CODE] [--signal SIG] [--ignore SIG] [--pidfile PATH] PHASE [PHASE ...]
//
// A phase MIB:MS holds MIB MiB on GPU N for MS milliseconds and until the fake NVML has answered 3 memory
// queries since it began (a sampler sees every phase, however loaded the machine: tests count what was sampled,
// not how fast); MIB:sN holds it until N queries, without a time. Then the memory is released and the program
// exits with CODE (0) or raises SIG. --ignore SIG ignores a signal (a program that ignores Ctrl-C). When no
// query comes for 10 s (nothing samples: the measuring llmem is gone), a phase ends anyway.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>
#include <thread>

#include "fake_state.hpp"

namespace {

// Until the fake NVML has answered `target` memory queries in all, or none has come for 10 s.
void hold_until_queries(uint64_t target) {
  uint64_t last = fake::memory_queries();
  auto last_change = std::chrono::steady_clock::now();
  while (last < target) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const uint64_t now = fake::memory_queries();
    if (now != last) {
      last = now;
      last_change = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - last_change > std::chrono::seconds(10)) {
      return;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  unsigned gpu = 0;
  int exit_code = 0, raise_signal = 0;
  std::vector<char> host;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--gpu" && i + 1 < argc) {
      gpu = static_cast<unsigned>(std::atoi(argv[++i]));
    } else if (a == "--host-mib" && i + 1 < argc) {
      // host memory, touched so that it is resident (measure's host peak RSS reads it)
      const size_t bytes = static_cast<size_t>(std::strtoull(argv[++i], nullptr, 10)) << 20;
      host.assign(bytes, 1);
    } else if (a == "--exit" && i + 1 < argc) {
      exit_code = std::atoi(argv[++i]);
    } else if (a == "--signal" && i + 1 < argc) {
      raise_signal = std::atoi(argv[++i]);
    } else if (a == "--ignore" && i + 1 < argc) {
      ::signal(std::atoi(argv[++i]), SIG_IGN);
    } else if (a == "--pidfile" && i + 1 < argc) {
      const std::string path = argv[++i], tmp = path + ".tmp";  // whole or absent for a reader
      std::ofstream(tmp) << ::getpid() << "\n";
      std::rename(tmp.c_str(), path.c_str());
    } else {
      auto colon = a.find(':');
      if (colon == std::string::npos) {
        std::fprintf(stderr, "fake_gpu_alloc: bad phase %s (want MIB:MS)\n", a.c_str());
        return 2;
      }
      uint64_t mib = std::strtoull(a.substr(0, colon).c_str(), nullptr, 10);
      const bool by_queries = colon + 1 < a.size() && a[colon + 1] == 's';
      const long value = std::atol(a.substr(colon + (by_queries ? 2 : 1)).c_str());
      if (mib > 0) fake::write_own_state({{gpu, mib}});
      else fake::write_own_state({});
      const uint64_t start = fake::memory_queries();
      if (!by_queries) std::this_thread::sleep_for(std::chrono::milliseconds(value));
      hold_until_queries(start + static_cast<uint64_t>(by_queries ? value : 3));
    }
  }
  fake::write_own_state({});
  if (raise_signal) {
    ::signal(raise_signal, SIG_DFL);
    ::raise(raise_signal);
  }
  return exit_code;
}
