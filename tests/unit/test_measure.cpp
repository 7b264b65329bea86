// End-to-end tests of `llmem measure` against the fake NVML (tests/fake_nvml): real processes, real pids, fake
// GPU memory that each process declares through fake_gpu_alloc. Every expected number is what the script and
// the phases given to fake_gpu_alloc say, not what llmem printed before.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "fake_nvml/fake_run.hpp"
#include "llmem/estimate.hpp"
#include "llmem/transformers.hpp"
#include "llmem/params.hpp"

namespace {

using fake::alloc;
using fake::FakeGpu;
using nlohmann::json;

const char* kOneGpu = R"({"driver_version": "555.42.06", "gpus": [
  {"name": "Fake H100 80GB HBM3", "uuid": "GPU-6c1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8",
   "total_mib": 81559, "reserved_mib": 527, "base_used_mib": 4,
   "static_processes": [{"pid": 4000001, "used_mib": 1000}]}]})";

const char* kTwoGpus = R"({"gpus": [
  {"name": "Fake A", "uuid": "GPU-00000000-0000-0000-0000-00000000000a", "total_mib": 40960, "base_used_mib": 2},
  {"name": "Fake B", "uuid": "GPU-00000000-0000-0000-0000-00000000000b", "total_mib": 40960, "base_used_mib": 3}]})";

// Waits are guards against a hang, not measurements: generous, so that a loaded machine passes.
constexpr int kHangGuardMs = 120000;

json parse_report(const fake::RunResult& r) {
  try {
    return json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON: " << e.what() << "\nstdout: " << r.out << "\nstderr: " << r.err;
    return json::object();
  }
}

constexpr uint64_t kMiB = 1ull << 20;

TEST(Measure, ExitStatusIsPassedThrough) {
  FakeGpu gpu(kOneGpu);
  auto r = gpu.run({"measure", "--", alloc(), "50:20", "--exit", "7"});
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_NE(r.err.find("exited with status 7"), std::string::npos) << r.err;
  auto ok = gpu.run({"measure", "--", "true"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

TEST(Measure, HostPeakResidentSetOfTheCommand) {
  FakeGpu gpu(kOneGpu);
  auto r = gpu.run({"measure", "--json", "--", alloc(), "--host-mib", "96", "10:20"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = parse_report(r);
  // 96 MiB touched, plus the program's own pages (a few MiB), never the measuring llmem's
  EXPECT_GE(j["host_peak_rss_bytes"].get<uint64_t>(), 96 * kMiB);
  EXPECT_LT(j["host_peak_rss_bytes"].get<uint64_t>(), 96 * kMiB + 64 * kMiB);
  // the sampler saw the 96 MiB too (the phase is held until it was sampled); the kernel's high-water mark and
  // statm's count come from per-CPU batched counters, so they agree within a few hundred KiB, not to the page
  EXPECT_GE(j["host_sampled_peak_rss_bytes"].get<uint64_t>(), 96 * kMiB);
  EXPECT_LE(j["host_sampled_peak_rss_bytes"].get<uint64_t>(), j["host_peak_rss_bytes"].get<uint64_t>() + kMiB);
  auto text = gpu.run({"measure", "--", alloc(), "--host-mib", "96", "10:20"});
  EXPECT_NE(text.err.find("Host: peak resident set of the command's largest process: "), std::string::npos) << text.err;
  auto missing = gpu.run({"measure", "--json", "--", "llmem-no-such-command-xyz"});
  EXPECT_TRUE(parse_report(missing)["host_peak_rss_bytes"].is_null());
}

TEST(Measure, CommandNotFoundIs127LikeAShell) {
  FakeGpu gpu(kOneGpu);
  auto r = gpu.run({"measure", "--", "llmem-no-such-command-xyz", "arg"});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.err.find("llmem-no-such-command-xyz: command not found"), std::string::npos) << r.err;
  auto path = gpu.run({"measure", "--json", "--", "/nonexistent/dir/prog"});
  EXPECT_EQ(path.exit_code, 127);
  json j = parse_report(path);
  EXPECT_EQ(j["schema_version"], 1);
  EXPECT_EQ(j["started"], false);
  EXPECT_EQ(j["exit_status"], 127);
}

TEST(Measure, NotExecutableIs126) {
  FakeGpu gpu(kOneGpu);
  std::ofstream(gpu.path("script.sh")) << "#!/bin/sh\nexit 0\n";   // no execute bit
  auto r = gpu.run({"measure", "--", gpu.path("script.sh")});
  EXPECT_EQ(r.exit_code, 126) << r.err;
}

TEST(Measure, SignalDeathIs128PlusSignal) {
  FakeGpu gpu(kOneGpu);
  auto r = gpu.run({"measure", "--json", "--", alloc(), "64:20", "--signal", "9"});
  EXPECT_EQ(r.exit_code, 128 + 9);
  json j = parse_report(r);
  EXPECT_EQ(j["term_signal"], "SIGKILL");
  EXPECT_EQ(j["exit_status"], 137);
  EXPECT_EQ(j["gpus"][0]["peak_tree_bytes"], 64 * kMiB);
  auto seg = gpu.run({"measure", "--", alloc(), "1:5", "--signal", "11"});
  EXPECT_EQ(seg.exit_code, 128 + 11);
  EXPECT_NE(seg.err.find("killed by SIGSEGV"), std::string::npos) << seg.err;
}

TEST(Measure, SumsTheProcessTreeAndIgnoresOtherProcesses) {
  FakeGpu gpu(kOneGpu);
  // Two children of a shell hold 300 and 200 MiB at the same time; a foreign process (static, pid 4000001)
  // holds 1000 MiB all along and must not count as the command's.
  std::string cmd = alloc() + " 300:400 & " + alloc() + " 50:100 200:300 & wait";
  auto r = gpu.run({"measure", "--json", "--", "sh", "-c", cmd});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = parse_report(r);
  const json& g = j["gpus"][0];
  EXPECT_EQ(g["baseline_used_bytes"], (4 + 1000) * kMiB);
  EXPECT_EQ(g["peak_tree_bytes"], 500 * kMiB);
  EXPECT_EQ(g["peak_tree_processes"], 2);
  EXPECT_EQ(g["peak_device_used_bytes"], (4 + 1000 + 500) * kMiB);
  EXPECT_EQ(g["tree_source"], "per_process");
  EXPECT_EQ(j["peak_tree_bytes"], 500 * kMiB);
  EXPECT_GT(j["peak_tree_time_ms"].get<double>(), 80.0);   // the 200 MiB phase starts after 100 ms
  EXPECT_GE(j["duration_ms"].get<double>(), 400.0);
}

TEST(Measure, GrandchildrenAndOrphansCount) {
  FakeGpu gpu(kOneGpu);
  // The grandchild's parent shell exits at once: the grandchild is re-parented (to llmem, a subreaper) and
  // still belongs to the command. The outer shell lives on for 20 sampler queries (not a time), the grandchild's
  // phase lasts 10 of them.
  std::string cmd = "sh -c '" + alloc() + " 256:s10 &' ; " + alloc() + " 0:s20";
  auto r = gpu.run({"measure", "--json", "--", "sh", "-c", cmd});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(parse_report(r)["gpus"][0]["peak_tree_bytes"], 256 * kMiB);
}

TEST(Measure, CatchesASpikeThatTheSamplerSeesOnce) {
  FakeGpu gpu(kOneGpu);
  // 2 GiB held for 20 ms between idle phases, and for no more than 3 of the sampler's queries (fake_gpu_alloc
  // holds a phase until 3 queries have seen it, however slowly a loaded machine runs the sampler): the spike is
  // the peak, and the idle phases around it are not. How short a spike the default 5 ms interval catches on an
  // idle machine is a matter of timing, not of this test.
  auto r = gpu.run({"measure", "--json", "--", alloc(), "0:30", "2048:20", "0:30"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = parse_report(r);
  EXPECT_EQ(j["gpus"][0]["peak_tree_bytes"], 2048 * kMiB) << r.out;
}

TEST(Measure, TimelineFilesFollowTheScript) {
  FakeGpu gpu(kOneGpu);
  std::string csv = gpu.path("t.csv"), js = gpu.path("t.json"), jl = gpu.path("t.jsonl");
  auto r = gpu.run({"measure", "--interval", "2", "--timeline", csv, "--timeline", js, "--timeline", jl, "--",
                    alloc(), "100:s12", "300:s12"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  std::ifstream f(csv);
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line, "time_ms,gpu_index,device_used_bytes,tree_used_bytes,tree_processes,host_rss_bytes");
  std::set<uint64_t> tree_values;
  double last_t = -1;
  int rows = 0, rows_with_host = 0;
  while (std::getline(f, line)) {
    double t;
    unsigned idx, procs;
    unsigned long long dev, tree, host;
    ASSERT_EQ(std::sscanf(line.c_str(), "%lf,%u,%llu,%llu,%u,%llu", &t, &idx, &dev, &tree, &procs, &host), 6) << line;
    if (host) ++rows_with_host;
    EXPECT_GT(t, last_t);
    last_t = t;
    tree_values.insert(tree);
    ++rows;
  }
  EXPECT_GT(rows, 20);
  EXPECT_GT(rows_with_host, 0);   // the command's resident set, sampled while it ran
  EXPECT_TRUE(tree_values.count(100 * kMiB));
  EXPECT_TRUE(tree_values.count(300 * kMiB));
  EXPECT_FALSE(tree_values.count(400 * kMiB));

  json doc = json::parse(fake::read_text(js));
  EXPECT_EQ(doc["format"], "llmem-timeline");
  EXPECT_EQ(doc["gpus"][0]["baseline_used_bytes"], 1004 * kMiB);
  EXPECT_EQ(static_cast<int>(doc["samples"].size()), rows);
  std::ifstream lines(jl);
  int jl_rows = 0;
  while (std::getline(lines, line)) {
    json row = json::parse(line);
    if (!row.contains("type")) ++jl_rows;
  }
  EXPECT_EQ(jl_rows, rows);
}

TEST(Measure, TimelineStaysValidWhenTheCommandOrLlmemIsKilled) {
  FakeGpu gpu(kOneGpu);
  std::string js = gpu.path("k.json"), csv = gpu.path("k.csv"), pidfile = gpu.path("cmd.pid");
  // The command is killed from outside.
  pid_t llmem = gpu.spawn({"measure", "--timeline", js, "--timeline", csv, "--", alloc(), "--pidfile", pidfile,
                           "128:10000"});
  pid_t cmd = gpu.wait_for_pidfile(pidfile);
  ASSERT_GT(cmd, 0);
  ASSERT_TRUE(gpu.wait_for_queries(gpu.memory_queries() + 8));  // sampled a few times (counted, not slept)
  ::kill(cmd, SIGKILL);
  auto r = gpu.wait(llmem);
  EXPECT_EQ(r.exit_code, 137) << r.err;
  json doc = json::parse(fake::read_text(js));
  EXPECT_GE(doc["samples"].size(), 3u);

  // llmem itself is killed: whatever it wrote is a whole document.
  std::string js2 = gpu.path("k2.json"), pidfile2 = gpu.path("cmd2.pid");
  pid_t llmem2 = gpu.spawn({"measure", "--timeline", js2, "--", alloc(), "--pidfile", pidfile2, "128:10000"}, 1);
  pid_t cmd2 = gpu.wait_for_pidfile(pidfile2);
  ASSERT_GT(cmd2, 0);
  ASSERT_TRUE(gpu.wait_for_queries(gpu.memory_queries() + 8));
  ::kill(llmem2, SIGKILL);
  gpu.wait(llmem2, 120000, 1);
  ::kill(cmd2, SIGKILL);   // llmem had no chance to clean up; the test does
  json doc2;
  ASSERT_NO_THROW(doc2 = json::parse(fake::read_text(js2)));
  EXPECT_GE(doc2["samples"].size(), 3u);
  bool saw_allocation = false;
  for (const auto& row : doc2["samples"]) saw_allocation = saw_allocation || row[3] == 128 * kMiB;
  EXPECT_TRUE(saw_allocation);
}

TEST(Measure, SigintIsForwardedAndNothingIsOrphaned) {
  FakeGpu gpu(kOneGpu);
  std::string p1 = gpu.path("c1.pid"), p2 = gpu.path("c2.pid"), p3 = gpu.path("c3.pid");
  // Background jobs of a non-interactive shell ignore SIGINT, and one child has left the process group
  // (setsid): both would survive Ctrl-C on their own.
  std::string cmd = alloc() + " --pidfile " + p1 + " 64:30000 & setsid " + alloc() + " --pidfile " + p2 +
                    " 64:30000 & " + alloc() + " --ignore 2 --pidfile " + p3 + " 64:30000 & wait";
  pid_t llmem = gpu.spawn({"measure", "--json", "--", "sh", "-c", cmd});
  pid_t c1 = gpu.wait_for_pidfile(p1), c2 = gpu.wait_for_pidfile(p2), c3 = gpu.wait_for_pidfile(p3);
  ASSERT_GT(c1, 0);
  ASSERT_GT(c2, 0);
  ASSERT_GT(c3, 0);
  ASSERT_TRUE(gpu.wait_for_queries(gpu.memory_queries() + 6));  // all three sampled (counted, not slept)
  ::kill(llmem, SIGINT);
  auto r = gpu.wait(llmem, kHangGuardMs);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 130) << r.err;   // the shell died of SIGINT
  json j = parse_report(r);
  EXPECT_EQ(j["forwarded_signals"], json::array({"SIGINT"}));
  EXPECT_EQ(j["leftover_processes_killed"], 3);
  EXPECT_EQ(j["gpus"][0]["peak_tree_bytes"], 3 * 64 * kMiB);
  for (pid_t c : {c1, c2, c3}) EXPECT_FALSE(fake::process_alive(c)) << "pid " << c << " outlived llmem";
}

TEST(Measure, SigtermIsForwarded) {
  FakeGpu gpu(kOneGpu);
  std::string p = gpu.path("c.pid");
  pid_t llmem = gpu.spawn({"measure", "--", alloc(), "--pidfile", p, "10:600000"});
  ASSERT_GT(gpu.wait_for_pidfile(p, kHangGuardMs), 0);
  ::kill(llmem, SIGTERM);
  auto r = gpu.wait(llmem, kHangGuardMs);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.err;
}

// A SIGTERM at any moment of llmem's start (before its handler, between its handler and the fork, while the child
// starts) ends the run: llmem either dies of it (before there is a command) or forwards it to the command, which
// ends. It used to be dropped when it came before the command's group was known, and llmem then waited for the
// whole command (here 10 minutes).
TEST(Measure, SigtermAtAnyMomentOfTheStartEndsTheRun) {
  FakeGpu gpu(kOneGpu);
  for (int delay_us : {0, 100, 300, 1000, 2000, 5000, 10000, 20000, 50000, 100000}) {
    SCOPED_TRACE("SIGTERM " + std::to_string(delay_us) + " us after the start");
    pid_t llmem = gpu.spawn({"measure", "--", alloc(), "10:600000"});
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
    ::kill(llmem, SIGTERM);
    auto r = gpu.wait(llmem, kHangGuardMs);
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.err;
  }
}

TEST(Measure, GpuLostMidRunEndsSamplingWithAWarning) {
  FakeGpu gpu(R"({"gpus": [{"name": "Fake", "uuid": "GPU-00000000-0000-0000-0000-000000000001",
                 "base_used_mib": 10, "lost_after_live_memory_calls": 3}]})");
  // Lost after 3 queries that saw the command's memory (however slowly the command started on a loaded
  // machine); the command outlives the loss.
  auto r = gpu.run({"measure", "--json", "--", alloc(), "100:300", "--exit", "3"});
  EXPECT_EQ(r.exit_code, 3) << r.err;   // the command still runs to its end
  json j = parse_report(r);
  EXPECT_EQ(j["gpus"][0]["lost"], true);
  EXPECT_EQ(j["gpus"][0]["peak_tree_bytes"], 100 * kMiB);
  EXPECT_LT(j["gpus"][0]["lost_at_ms"].get<double>(), j["duration_ms"].get<double>());
  bool warned = false;
  for (const auto& w : j["warnings"]) warned = warned || w.get<std::string>().find("was lost") != std::string::npos;
  EXPECT_TRUE(warned) << j["warnings"];
}

TEST(Measure, FailedQueriesMidRunAreSkipped) {
  FakeGpu gpu(R"({"gpus": [{"name": "Fake", "base_used_mib": 10, "fail_memory_calls": [6, 7, 8]}]})");
  auto r = gpu.run({"measure", "--json", "--", alloc(), "100:150"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  json j = parse_report(r);
  EXPECT_EQ(j["gpus"][0]["failed_samples"], 3);
  EXPECT_EQ(j["gpus"][0]["peak_tree_bytes"], 100 * kMiB);
}

TEST(Measure, PerProcessNotSupportedFallsBackAndSaysSo) {
  FakeGpu gpu(R"({"gpus": [{"name": "Fake", "base_used_mib": 10, "processes_error": 3}]})");
  auto r = gpu.run({"measure", "--", alloc(), "300:150"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("fallback"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Not Supported"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("300 MiB"), std::string::npos) << r.err;
  auto j = parse_report(gpu.run({"measure", "--json", "--", alloc(), "300:150"}));
  EXPECT_EQ(j["gpus"][0]["tree_source"], "device_minus_baseline");
  EXPECT_EQ(j["gpus"][0]["peak_tree_bytes"], 300 * kMiB);
  EXPECT_EQ(j["peak_tree_bytes"], 300 * kMiB);
}

TEST(Measure, ProcessMemoryNotAvailableFallsBack) {
  FakeGpu gpu(R"({"gpus": [{"name": "Fake", "base_used_mib": 10, "process_memory_unavailable": true}]})");
  auto j = parse_report(gpu.run({"measure", "--json", "--", alloc(), "200:150"}));
  EXPECT_EQ(j["gpus"][0]["tree_source"], "device_minus_baseline");
  EXPECT_EQ(j["gpus"][0]["peak_tree_bytes"], 200 * kMiB);
  EXPECT_NE(j["gpus"][0]["tree_fallback_reason"].get<std::string>().find("without their memory"), std::string::npos);
}

TEST(Measure, MemoryNobodyInTheTreeHoldsIsFlagged) {
  FakeGpu gpu(kOneGpu);
  // Another process fills the GPU while the command runs; NVML lists it, but it is not the command's. llmem
  // then cannot tell the command's share (as with pids from another PID namespace) and says so.
  // The outsider allocates at the 4th memory query, after llmem's baseline (the last of its first 3), and holds
  // it for 60 more; the command (holding nothing) lasts 30 queries: counted, so a slow machine passes alike.
  gpu.start_outside({"0:s4", "700:s60"});
  auto j = parse_report(gpu.run({"measure", "--json", "--", alloc(), "0:s30"}));
  EXPECT_EQ(j["gpus"][0]["tree_source"], "device_minus_baseline");
  EXPECT_NE(j["gpus"][0]["tree_fallback_reason"].get<std::string>().find("PID namespace"), std::string::npos);
  EXPECT_EQ(j["gpus"][0]["peak_device_minus_baseline_bytes"], 700 * kMiB);
}

TEST(Measure, SeveralGpus) {
  FakeGpu gpu(kTwoGpus);
  std::string cmd = alloc() + " --gpu 0 100:300 & " + alloc() + " --gpu 1 400:300 & wait";
  auto j = parse_report(gpu.run({"measure", "--json", "--", "sh", "-c", cmd}));
  ASSERT_EQ(j["gpus"].size(), 2u);
  EXPECT_EQ(j["gpus"][0]["peak_tree_bytes"], 100 * kMiB);
  EXPECT_EQ(j["gpus"][1]["peak_tree_bytes"], 400 * kMiB);
  EXPECT_EQ(j["gpus"][1]["baseline_used_bytes"], 3 * kMiB);
  EXPECT_EQ(j["peak_tree_bytes"], 500 * kMiB);

  auto one = parse_report(gpu.run({"measure", "--json", "--gpu", "1", "--", "sh", "-c", cmd}));
  ASSERT_EQ(one["gpus"].size(), 1u);
  EXPECT_EQ(one["gpus"][0]["index"], 1);
  EXPECT_EQ(one["peak_tree_bytes"], 400 * kMiB);

  auto bad = gpu.run({"measure", "--gpu", "2", "--", "true"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--gpu 2"), std::string::npos) << bad.err;
}

TEST(Measure, OneMillisecondInterval) {
  FakeGpu gpu(kOneGpu);
  // The command lasts 80 of the sampler's queries: the rounds are counted, whatever the machine's speed (how
  // many rounds a millisecond interval makes in a second is timing, not this test's).
  auto j = parse_report(gpu.run({"measure", "--json", "--interval", "1", "--", alloc(), "10:s80"}));
  EXPECT_EQ(j["interval_ms"], 1);
  EXPECT_GE(j["sample_rounds"].get<int>(), 60);
}

TEST(Measure, ChartsArePngAndSvg) {
  FakeGpu gpu(kOneGpu);
  std::string png = gpu.path("c.png"), svg = gpu.path("c.svg");
  auto r = gpu.run({"measure", "--timeline", png, "--timeline", svg, "--", alloc(), "100:40", "500:40", "0:20"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string p = fake::read_text(png);
  ASSERT_GT(p.size(), 1000u);
  EXPECT_EQ(p.substr(1, 3), "PNG");
  std::string s = fake::read_text(svg);
  EXPECT_NE(s.find("<svg"), std::string::npos);
}

TEST(Measure, BadOptions) {
  FakeGpu gpu(kOneGpu);
  EXPECT_EQ(gpu.run({"measure"}).exit_code, 2);
  EXPECT_EQ(gpu.run({"measure", "--timeline", gpu.path("x.txt"), "--", "true"}).exit_code, 2);
  EXPECT_EQ(gpu.run({"measure", "--interval", "0", "--", "true"}).exit_code, 2);
  EXPECT_EQ(gpu.run({"measure", "--gpu", "first", "--", "true"}).exit_code, 2);
}

TEST(Measure, CommandWordsAfterItsNameAreItsOwn) {
  FakeGpu gpu(kOneGpu);
  // Without "--", options after the command's name belong to the command.
  auto r = gpu.run({"measure", "sh", "-c", "exit 4", "--json"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
}

TEST(Measure, NoDriverIsOneClearLine) {
  FakeGpu gpu(kOneGpu);
  gpu.set_env("LLMEM_NVML_LIBRARY", "libnvidia-ml-missing.so.1");
  auto r = gpu.run({"measure", "--", "true"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "llmem: no NVIDIA driver found (libnvidia-ml-missing.so.1 could not be loaded)\n");
}

// --estimate: the same request `llmem estimate` takes, computed for the GPU being measured (the fake card is not in
// the catalog, so the reference GPU's overhead applies, with the fake card's name), printed beside the measurement.
TEST(Measure, EstimateBesideTheMeasurement) {
  FakeGpu gpu(kOneGpu);
  auto r = gpu.run({"measure", "--json", "--estimate", "TinyLlama/TinyLlama-1.1B-Chat-v1.0 --dtype bf16 --prompt 128",
                    "--", alloc(), "2600:60"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = parse_report(r);
  ASSERT_TRUE(j.contains("estimate")) << r.out;
  const json& e = j["estimate"];

  // The expected figure from the library, with the workload and GPU the command line asked for.
  llmem::ParamsReport p = llmem::count_params("TinyLlama/TinyLlama-1.1B-Chat-v1.0");
  llmem::Workload w;
  w.dtype = llmem::DType::BF16;
  w.prompt_tokens = 128;
  llmem::GpuProfile g = llmem::default_gpu();
  g.name = g.display_name = "Fake H100 80GB HBM3";
  g.memory_bytes = 81559 * kMiB;
  const llmem::Estimate want = llmem::estimate_transformers(*p.model, w, g);

  EXPECT_EQ(e["process_peak_bytes"], want.process_peak_bytes);
  EXPECT_EQ(e["framework_peak_bytes"], want.framework_peak_bytes);
  EXPECT_EQ(e["gpu"]["name"], "Fake H100 80GB HBM3");
  EXPECT_EQ(e["gpu"]["memory_bytes"], 81559 * kMiB);
  EXPECT_EQ(e["workload"]["dtype"], "BF16");
  EXPECT_EQ(e["measured_process_peak_bytes"], 2600 * kMiB);
  const double err = 100.0 * (static_cast<double>(want.process_peak_bytes) - 2600.0 * kMiB) / (2600.0 * kMiB);
  EXPECT_NEAR(e["error_percent"].get<double>(), err, 1e-9);

  auto text = gpu.run({"measure", "--estimate", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "--", alloc(), "100:20"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.err.find("process peak,   estimated:"), std::string::npos) << text.err;
  EXPECT_NE(text.err.find("process peak,   measured:                100 MiB"), std::string::npos) << text.err;
  EXPECT_NE(text.err.find("estimate - measurement:"), std::string::npos) << text.err;
}

TEST(Measure, EstimateGpuOptionWins) {
  FakeGpu gpu(kOneGpu);
  auto r = gpu.run({"measure", "--json", "--estimate", "microsoft/phi-2 --gpu A100-80GB", "--", alloc(), "10:10"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(parse_report(r)["estimate"]["gpu"]["name"], llmem::find_gpu("A100-80GB").name);
}

// A bad estimate request is a usage error before the command starts: the command must not run.
TEST(Measure, BadEstimateFailsBeforeTheCommandRuns) {
  FakeGpu gpu(kOneGpu);
  const std::string marker = gpu.path("ran");
  gpu.set_env("HF_HUB_OFFLINE", "1");
  const std::vector<std::string> bad = {"", "--dtype fp16", "TinyLlama/TinyLlama-1.1B-Chat-v1.0 --dtype fp8",
                                        "TinyLlama/TinyLlama-1.1B-Chat-v1.0 --batch 0", "no-such-org/no-such-model",
                                        "TinyLlama/TinyLlama-1.1B-Chat-v1.0 --no-such-option",
                                        "TinyLlama/TinyLlama-1.1B-Chat-v1.0 --gpu NoSuchGPU",
                                        "TinyLlama/TinyLlama-1.1B-Chat-v1.0 --quant Q4_0"};
  for (const auto& args : bad) {
    auto r = gpu.run({"measure", "--estimate", args, "--", "touch", marker});
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\n" << r.err;
    EXPECT_FALSE(std::filesystem::exists(marker)) << args;
  }
  // worded as estimate's own errors: the closest flag, and where a flag applies
  auto typo = gpu.run({"measure", "--estimate", "TinyLlama/TinyLlama-1.1B-Chat-v1.0 --promt 5", "--", "touch", marker});
  EXPECT_NE(typo.err.find("unknown flag --promt (did you mean --prompt?)"), std::string::npos) << typo.err;
  auto wrong = gpu.run({"measure", "--estimate", "TinyLlama/TinyLlama-1.1B-Chat-v1.0 --quant Q4_0", "--", "touch", marker});
  EXPECT_NE(wrong.err.find("--quant applies to --engine llamacpp"), std::string::npos) << wrong.err;
}

}  // namespace
