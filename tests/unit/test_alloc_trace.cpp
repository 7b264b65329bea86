// The caching-allocator model (src/estimate/alloc_sim.cpp) checked on its own, against PyTorch itself: real
// allocator traces recorded on the H200 (bench/gpu/trace_cases.sh: every block alloc/free of a transformers run,
// from torch.cuda.memory._snapshot) are replayed through the model, which must reach the segment total PyTorch
// reached: torch.cuda.max_memory_reserved() of the same run (bench/data/transformers_traces.jsonl).
//
// This separates the two halves of the transformers estimate: if this holds, what remains of an estimate's
// reserved-memory error comes from the allocation sequence llmem predicts, not from the allocator's rules.
#include <gtest/gtest.h>
#include <lzma.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "alloc_sim.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Decompresses an .xz file (liblzma's stream decoder).
std::string read_xz(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string packed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  lzma_stream s = LZMA_STREAM_INIT;
  if (lzma_stream_decoder(&s, UINT64_MAX, 0) != LZMA_OK) throw std::runtime_error("lzma init");
  std::string out;
  std::vector<uint8_t> buf(1 << 20);
  s.next_in = reinterpret_cast<const uint8_t*>(packed.data());
  s.avail_in = packed.size();
  lzma_ret r = LZMA_OK;
  while (r == LZMA_OK) {
    s.next_out = buf.data();
    s.avail_out = buf.size();
    r = lzma_code(&s, LZMA_FINISH);
    out.append(reinterpret_cast<const char*>(buf.data()), buf.size() - s.avail_out);
  }
  lzma_end(&s);
  if (r != LZMA_STREAM_END) throw std::runtime_error("lzma: corrupt " + path.string());
  return out;
}

struct Replay {
  uint64_t peak_reserved = 0, real_segment_peak = 0, events = 0;
};

Replay replay(const std::string& text) {
  llmem::sim::CachingAllocator a;
  std::unordered_map<uint64_t, uint64_t> handles;  // address -> model handle
  Replay out;
  uint64_t segments = 0;
  bool emptied = false;
  size_t pos = text.find('\n') + 1;  // line 1: header
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    pos = end == std::string::npos ? text.size() : end + 1;
    if (line.empty() || line[0] != '[') continue;  // the last line holds the frames
    const json e = json::parse(line);
    const std::string action = e[0];
    const uint64_t addr = e[1], size = e[2];
    if (action == "alloc") {
      handles[addr] = a.malloc(size);
      ++out.events;
    } else if (action == "free_completed") {
      auto it = handles.find(addr);
      if (it != handles.end()) {
        a.free(it->second);
        handles.erase(it);
      }
    } else if (action == "segment_alloc") {
      segments += size;
      out.real_segment_peak = std::max(out.real_segment_peak, segments);
    } else if (action == "segment_free") {
      // only torch.cuda.empty_cache() gives segments back (a CUDA-graph tree calls it before its first capture):
      // the first of a run of frees is the call
      if (!emptied) a.empty_cache();
      emptied = true;
      segments -= size;
    }
    if (action != "segment_free") emptied = false;
  }
  out.peak_reserved = a.peak_reserved();
  return out;
}

}  // namespace

TEST(AllocatorModel, ReplaysRealTracesToTheReservedPeakPyTorchReached) {
  const fs::path data = fs::path(LLMEM_SOURCE_DIR) / "bench" / "data";
  std::map<std::string, uint64_t> measured;
  for (const char* runs : {"transformers_traces.jsonl", "transformers_issue15_traces.jsonl",
                           "transformers_issue15b_traces.jsonl", "transformers_issue15c_traces.jsonl",
                           "transformers_issue15d_traces.jsonl", "transformers_issue15e_traces.jsonl",
                           "transformers_finetune_b_traces.jsonl", "transformers_issue15_fp8.jsonl", "transformers_issue15_fp8_dequant.jsonl",
                           "transformers_issue15_fp8_deep.jsonl"}) {
    std::ifstream in(data / runs);
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      const json r = json::parse(line);
      // a traced run that failed after loading (issue 15's FP8 checkpoints: the forward needs the `kernels`
      // package) still has a whole trace and its reserved peak
      if (r.value("ok", false) || r.contains("trace_file")) measured[r.at("id")] = r.at("max_reserved_bytes");
    }
  }
  int checked = 0, exact = 0;
  double worst = 0;
  for (const auto& f : fs::directory_iterator(data / "traces")) {
    const std::string name = f.path().filename().string();
    const std::string id = name.substr(0, name.find(".trace.jsonl.xz"));
    ASSERT_TRUE(measured.count(id)) << name << " has no run record";
    const Replay r = replay(read_xz(f.path()));
    ASSERT_GT(r.events, 100u) << name;
    // the trace is complete: its own segments reach the measured reserved peak
    EXPECT_EQ(r.real_segment_peak, measured[id]) << name;
    const double err = std::fabs(static_cast<double>(r.peak_reserved) / static_cast<double>(measured[id]) - 1);
    worst = std::max(worst, err);
    exact += r.peak_reserved == measured[id];
    // Where the model differs it is by a few segments: among free blocks of equal size PyTorch takes the one at
    // the lowest address, which the model can only approximate (newest segment first, see alloc_sim.hpp).
    // Measured over the 67 traces: 60 exact, the rest within 0.45 % (the offloaded cache's 0.53 % and two static
    // caches', below).
    // An offloaded cache prefetches on its own stream, whose blocks the caching allocator keeps in that stream's
    // pool; the trace does not say which stream an event is on, so its replay here is one pool (0.53 % over).
    // A static cache's generate compiles its decoding step, whose CUDA-graph tree allocates from a private pool
    // (torch.cuda.graph_pool_handle) that cannot reuse the default pool's free blocks; the trace does not say which
    // pool an event is in, so these replay as one pool and come out short: 5.8 % (gemma-2-2b) and 7.4 %
    // (Qwen2.5-0.5B b8) under, the other two static traces within 0.5 %. The estimate itself replays that pool
    // (inference.cpp: compiled_decode_first_call).
    const double limit = id.ends_with("-offloaded") ? 0.01 : id.ends_with("-static") ? 0.08 : 0.005;
    EXPECT_LE(err, limit) << name << ": model " << r.peak_reserved << " B, PyTorch " << measured[id] << " B";
    ++checked;
  }
  EXPECT_GE(checked, 40);
  EXPECT_GE(exact, checked * 9 / 10) << "exact replays";
  std::printf("replayed %d traces: %d exact, worst %.3f %%\n", checked, exact, 100 * worst);
}
