// Test helper: run the llmem executable against the fake NVML / CUDA driver, in a scratch directory.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fake {

struct RunResult {
  int exit_code = -1;      // the shell's view: code, or 128 + signal
  std::string out;
  std::string err;
  bool timed_out = false;
};

inline std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline bool process_alive(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!f || !std::getline(f, text)) return false;
  auto close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] != 'Z';
}

// One scratch directory with a state directory and a script for the fake NVML.
class FakeGpu {
 public:
  explicit FakeGpu(const std::string& script_json = "") {
    const char* base = std::getenv("LLMEM_TEST_TMP");
    std::string root = base && *base ? base : "/tmp";
    std::filesystem::create_directories(root);
    std::string templ = root + "/fake-gpu-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    dir_ = ::mkdtemp(buf.data());
    state_ = dir_ + "/state";
    std::filesystem::create_directories(state_);
    if (!script_json.empty()) set_script(script_json);
    env_["LLMEM_NVML_LIBRARY"] = FAKE_NVML_LIBRARY;
    env_["LLMEM_CUDA_LIBRARY"] = FAKE_CUDA_LIBRARY;
    env_["FAKE_NVML_STATE_DIR"] = state_;
  }
  ~FakeGpu() {
    for (pid_t p : background_) {
      ::kill(p, SIGKILL);
      ::waitpid(p, nullptr, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void set_script(const std::string& json) {
    std::ofstream(dir_ + "/script.json") << json;
    env_["FAKE_NVML_SCRIPT"] = dir_ + "/script.json";
  }
  void set_env(const std::string& k, const std::string& v) { env_[k] = v; }
  void unset_env(const std::string& k) { env_.erase(k); unset_.push_back(k); }
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // Starts llmem with args; stdout and stderr go to files.
  pid_t spawn(const std::vector<std::string>& args, int slot = 0) {
    std::string out = path("out" + std::to_string(slot)), err = path("err" + std::to_string(slot));
    pid_t pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);
      for (const auto& k : unset_) ::unsetenv(k.c_str());
      for (const auto& [k, v] : env_) ::setenv(k.c_str(), v.c_str(), 1);
      int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int in = ::open("/dev/null", O_RDONLY);
      ::dup2(o, 1);
      ::dup2(e, 2);
      ::dup2(in, 0);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(LLMEM_CLI_PATH));
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(LLMEM_CLI_PATH, argv.data());
      ::_exit(255);
    }
    return pid;
  }

  RunResult wait(pid_t pid, int timeout_ms = 120000, int slot = 0) {
    RunResult r;
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      pid_t w = ::waitpid(pid, &status, WNOHANG);
      if (w == pid) break;
      if (std::chrono::steady_clock::now() > deadline) {
        r.timed_out = true;
        ::kill(-pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) r.exit_code = 128 + WTERMSIG(status);
    r.out = read_text(path("out" + std::to_string(slot)));
    r.err = read_text(path("err" + std::to_string(slot)));
    return r;
  }

  // The timeouts here are hang guards, not measurements: generous, so that a loaded machine passes.
  RunResult run(const std::vector<std::string>& args, int timeout_ms = 120000) { return wait(spawn(args), timeout_ms); }

  // The memory queries the fake NVML has answered in every process (fake_state.hpp), and a wait until there are
  // `n`: what a test waits for instead of a sleep, so that "sampled a few times" holds on a slow machine.
  uint64_t memory_queries() const {
    uint64_t total = 0;
    for (const auto& e : std::filesystem::directory_iterator(state_)) {
      if (e.path().filename().string().rfind("queries.", 0) != 0) continue;
      std::ifstream f(e.path());
      uint64_t n = 0;
      if (f >> n) total += n;
    }
    return total;
  }
  bool wait_for_queries(uint64_t n, int timeout_ms = 120000) const {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (memory_queries() < n) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }

  // A fake GPU program outside llmem's tree (another user's job), killed at the end of the test.
  pid_t start_outside(const std::vector<std::string>& alloc_args) {
    pid_t pid = ::fork();
    if (pid == 0) {
      for (const auto& [k, v] : env_) ::setenv(k.c_str(), v.c_str(), 1);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(FAKE_GPU_ALLOC));
      for (const auto& a : alloc_args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(FAKE_GPU_ALLOC, argv.data());
      ::_exit(255);
    }
    background_.push_back(pid);
    return pid;
  }

  // Waits until a file exists and holds a pid.
  pid_t wait_for_pidfile(const std::string& file, int timeout_ms = 120000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream f(file);
      long pid = 0;
      if (f >> pid && pid > 0) return static_cast<pid_t>(pid);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return -1;
  }

 private:
  std::string dir_, state_;
  std::map<std::string, std::string> env_;
  std::vector<std::string> unset_;
  std::vector<pid_t> background_;
};

inline std::string alloc() { return FAKE_GPU_ALLOC; }

}  // namespace fake
