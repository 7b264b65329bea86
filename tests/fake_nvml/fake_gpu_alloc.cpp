// A stand-in for a GPU program in tests: holds fake GPU memory (reported by the fake NVML) in phases.
//
//   fake_gpu_alloc [--gpu N] [--exit CODE] [--signal SIG] [--ignore SIG] [--pidfile PATH] MIB:MS [MIB:MS ...]
//
// Each MIB:MS phase holds MIB MiB on GPU N for MS milliseconds; then the memory is released and the program
// exits with CODE (0) or raises SIG. --ignore SIG ignores a signal (a program that ignores Ctrl-C).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "fake_state.hpp"

int main(int argc, char** argv) {
  unsigned gpu = 0;
  int exit_code = 0, raise_signal = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--gpu" && i + 1 < argc) {
      gpu = static_cast<unsigned>(std::atoi(argv[++i]));
    } else if (a == "--exit" && i + 1 < argc) {
      exit_code = std::atoi(argv[++i]);
    } else if (a == "--signal" && i + 1 < argc) {
      raise_signal = std::atoi(argv[++i]);
    } else if (a == "--ignore" && i + 1 < argc) {
      ::signal(std::atoi(argv[++i]), SIG_IGN);
    } else if (a == "--pidfile" && i + 1 < argc) {
      std::ofstream(argv[++i]) << ::getpid() << "\n";
    } else {
      auto colon = a.find(':');
      if (colon == std::string::npos) {
        std::fprintf(stderr, "fake_gpu_alloc: bad phase %s (want MIB:MS)\n", a.c_str());
        return 2;
      }
      uint64_t mib = std::strtoull(a.substr(0, colon).c_str(), nullptr, 10);
      long ms = std::atol(a.substr(colon + 1).c_str());
      if (mib > 0) fake::write_own_state({{gpu, mib}});
      else fake::write_own_state({});
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    }
  }
  fake::write_own_state({});
  if (raise_signal) {
    ::signal(raise_signal, SIG_DFL);
    ::raise(raise_signal);
  }
  return exit_code;
}
