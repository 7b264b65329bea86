#include <atomic>
#include "fake_state.hpp"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace fake {

namespace {
Script load() {
  Script s;
  const char* path = std::getenv("FAKE_NVML_SCRIPT");
  if (!path || !*path) {
    GpuScript g;
    g.name = "Fake H100 80GB HBM3";
    g.uuid = "GPU-6c1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8";
    s.gpus.push_back(g);
    return s;
  }
  std::ifstream f(path);
  if (!f) {
    std::fprintf(stderr, "fake nvml: cannot read FAKE_NVML_SCRIPT %s\n", path);
    std::abort();
  }
  nlohmann::json j = nlohmann::json::parse(f);
  s.driver_version = j.value("driver_version", s.driver_version);
  s.init_error = j.value("init_error", 0);
  for (const auto& gj : j.value("gpus", nlohmann::json::array())) {
    GpuScript g;
    g.name = gj.value("name", g.name);
    g.uuid = gj.value("uuid", g.uuid);
    g.total_mib = gj.value("total_mib", g.total_mib);
    g.reserved_mib = gj.value("reserved_mib", g.reserved_mib);
    g.base_used_mib = gj.value("base_used_mib", g.base_used_mib);
    g.processes_error = gj.value("processes_error", 0);
    g.process_memory_unavailable = gj.value("process_memory_unavailable", false);
    g.lost_after_memory_calls = gj.value("lost_after_memory_calls", -1L);
    g.lost_after_live_memory_calls = gj.value("lost_after_live_memory_calls", -1L);
    g.fail_memory_calls = gj.value("fail_memory_calls", std::vector<long>{});
    for (const auto& pj : gj.value("static_processes", nlohmann::json::array()))
      g.static_processes.push_back({pj.at("pid").get<uint32_t>(), pj.at("used_mib").get<uint64_t>()});
    s.gpus.push_back(g);
  }
  if (j.contains("cuda")) {
    s.cuda_context_mib = j["cuda"].value("context_mib", s.cuda_context_mib);
    s.cuda_driver_version = j["cuda"].value("driver_version", s.cuda_driver_version);
  }
  return s;
}

std::string state_dir() {
  const char* d = std::getenv("FAKE_NVML_STATE_DIR");
  return d && *d ? d : "";
}

// Alive and not a zombie: the driver releases a process's memory when it exits, before it is reaped.
bool alive(uint32_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!f || !std::getline(f, text)) return false;
  auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return false;
  char state = text[close + 2];
  return state != 'Z' && state != 'X';
}
}  // namespace

const Script& script() {
  static const Script s = load();
  return s;
}

std::vector<std::pair<uint32_t, uint64_t>> live_allocations(unsigned gpu) {
  std::vector<std::pair<uint32_t, uint64_t>> out;
  std::string dir = state_dir();
  if (dir.empty()) return out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;  // pid files only (not queries.<pid>, .tmp.<pid>)
    uint32_t pid = static_cast<uint32_t>(std::strtoul(e->d_name, nullptr, 10));
    if (!alive(pid)) continue;
    std::ifstream f(dir + "/" + e->d_name);
    unsigned g;
    uint64_t mib;
    uint64_t total = 0;
    bool any = false;
    while (f >> g >> mib) {
      if (g == gpu) {
        total += mib;
        any = true;
      }
    }
    if (any) out.emplace_back(pid, total);
  }
  ::closedir(d);
  return out;
}

void write_own_state(const std::map<unsigned, uint64_t>& mib_per_gpu) {
  std::string dir = state_dir();
  if (dir.empty()) return;
  std::string final_path = dir + "/" + std::to_string(::getpid());
  if (mib_per_gpu.empty()) {
    std::remove(final_path.c_str());
    return;
  }
  std::string tmp = dir + "/.tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp);
    for (const auto& [g, mib] : mib_per_gpu) f << g << ' ' << mib << '\n';
  }
  std::rename(tmp.c_str(), final_path.c_str());
}

void count_memory_query() {
  static std::atomic<uint64_t> count{0};
  const std::string dir = state_dir();
  const uint64_t n = ++count;
  if (dir.empty()) return;
  const std::string pid = std::to_string(::getpid());
  const std::string tmp = dir + "/.tmp.queries." + pid + "." + std::to_string(n);
  {
    std::ofstream f(tmp);
    f << n << '\n';
  }
  std::rename(tmp.c_str(), (dir + "/queries." + pid).c_str());
}

uint64_t memory_queries() {
  const std::string dir = state_dir();
  if (dir.empty()) return 0;
  uint64_t total = 0;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  while (dirent* e = ::readdir(d)) {
    if (std::string(e->d_name).rfind("queries.", 0) != 0) continue;
    std::ifstream f(dir + "/" + e->d_name);
    uint64_t n = 0;
    if (f >> n) total += n;
  }
  ::closedir(d);
  return total;
}

}  // namespace fake
