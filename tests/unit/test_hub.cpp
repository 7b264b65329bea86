// Reading models from the Hub over HTTP, against a fake Hub on 127.0.0.1 (tests/fixtures/fake_hub.hpp): range
// requests, CDN redirects, the Hub's errors, retries, timeouts, hostile answers, the header cache, and the CLI
// end to end. No test touches the internet.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "fixtures/cli_run.hpp"
#include "fixtures/fake_hub.hpp"
#include "fixtures/gguf_writer.hpp"
#include "fixtures/safetensors_writer.hpp"
#include "llmem/error.hpp"
#include "llmem/gguf.hpp"
#include "llmem/hub.hpp"
#include "llmem/params.hpp"
#include "llmem/source.hpp"

using namespace llmem;
using namespace llmem::fixtures;
using nlohmann::json;

namespace {

const std::string kCommit1 = "1111111111111111111111111111111111111111";
const std::string kCommit2 = "2222222222222222222222222222222222222222";
const std::string kToken = "hf_SecretTestToken0123456789";

// A two-layer Llama, hidden 64, 4 heads (2 KV heads), MLP 128, vocab 100.
std::string tiny_llama_config(int layers = 2) {
  return R"({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": )" +
         std::to_string(layers) + R"(, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
  "vocab_size": 100, "torch_dtype": "bfloat16", "tie_word_embeddings": false})";
}

// The tensors transformers' LlamaForCausalLM saves for that config, written out by hand.
std::vector<FakeTensor> tiny_llama_tensors(int layers = 2) {
  std::vector<FakeTensor> t = {{"model.embed_tokens.weight", "BF16", {100, 64}}};
  for (int i = 0; i < layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    t.push_back({p + "self_attn.q_proj.weight", "BF16", {64, 64}});
    t.push_back({p + "self_attn.k_proj.weight", "BF16", {32, 64}});
    t.push_back({p + "self_attn.v_proj.weight", "BF16", {32, 64}});
    t.push_back({p + "self_attn.o_proj.weight", "BF16", {64, 64}});
    t.push_back({p + "mlp.gate_proj.weight", "BF16", {128, 64}});
    t.push_back({p + "mlp.up_proj.weight", "BF16", {128, 64}});
    t.push_back({p + "mlp.down_proj.weight", "BF16", {64, 128}});
    t.push_back({p + "input_layernorm.weight", "BF16", {64}});
    t.push_back({p + "post_attention_layernorm.weight", "BF16", {64}});
  }
  t.push_back({"model.norm.weight", "BF16", {64}});
  t.push_back({"lm_head.weight", "BF16", {100, 64}});
  return t;
}

// By hand: 2·100·64 (embedding, head) + 64 (norm) + per layer 64·64·2 + 32·64·2 + 128·64·3 + 64·2.
constexpr uint64_t kTinyLlamaParams = 2 * 6400 + 64 + 2 * (8192 + 4096 + 24576 + 128);


// A checkpoint directory: config.json, model.safetensors.index.json and three shards.
struct ShardedRepo {
  TempDir tmp;
  std::string dir = tmp.dir("tiny");
  std::vector<FakeShard> shards = split_into_shards(tiny_llama_tensors(), 3);
  ShardedRepo() {
    write_sharded_checkpoint(dir, shards, /*with_index=*/true);
    write_file(dir + "/config.json", tiny_llama_config());
  }
  // Body bytes a client that reads only headers needs: config, index, and 8 + header of every shard.
  uint64_t header_traffic() const {
    uint64_t n = slurp(dir + "/config.json").size() + slurp(dir + "/model.safetensors.index.json").size();
    for (const auto& s : shards) n += safetensors_prefix(safetensors_header_json(s.tensors)).size();
    return n;
  }
};

HubSettings test_settings(const FakeHub& hub, const std::string& cache_dir) {
  HubSettings s;
  s.endpoint = hub.endpoint();
  s.cache_dir = cache_dir;
  s.timeout_ms = 5000;
  s.connect_timeout_ms = 2000;
  s.backoff_ms = 1;
  s.max_backoff_ms = 20;
  s.max_attempts = 4;
  return s;
}

std::string url_of(const FakeHub& hub, const std::string& repo, const std::string& file, const std::string& rev = "main") {
  return hub.endpoint() + "/" + repo + "/resolve/" + rev + "/" + file;
}

std::string blob(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

// The error's message when `f` throws llmem::Error, with its kind.
template <typename F>
std::pair<ErrorKind, std::string> error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return {e.kind(), e.what()};
  }
  ADD_FAILURE() << "no llmem::Error thrown";
  return {ErrorKind::kRuntime, ""};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// --- HttpSession ---------------------------------------------------------------------------------------------

TEST(HttpSession, RangeRequestReturnsExactlyTheBytesAndTheCommit) {
  FakeHub hub;
  hub.add_repo("acme/files", kCommit1);
  hub.add_file("acme/files", kCommit1, "blob.bin", blob(1000));
  HttpSession http(test_settings(hub, ""));
  auto r = http.fetch_one({url_of(hub, "acme/files", "blob.bin"), "blob", HttpFetch::Mode::kRange, 100, 50, 0});
  ASSERT_EQ(r.status, 206);
  EXPECT_EQ(std::string(r.body.begin(), r.body.end()), blob(1000).substr(100, 50));
  EXPECT_EQ(r.file_size, 1000u);
  EXPECT_EQ(r.repo_commit, kCommit1);
  ASSERT_EQ(hub.seen().size(), 1u);
  EXPECT_EQ(hub.seen()[0].range, "bytes=100-149");
}

TEST(HttpSession, RedirectToTheCdnKeepsTheRangeHeader) {
  FakeHub hub;
  hub.add_repo("acme/files", kCommit1);
  hub.add_file("acme/files", kCommit1, "w.safetensors", blob(5000));
  HttpSession http(test_settings(hub, ""));
  auto r = http.fetch_one({url_of(hub, "acme/files", "w.safetensors"), "w", HttpFetch::Mode::kRange, 4000, 1000, 5000});
  ASSERT_EQ(r.status, 206);
  EXPECT_EQ(std::string(r.body.begin(), r.body.end()), blob(5000).substr(4000));
  EXPECT_EQ(r.repo_commit, kCommit1) << "the commit comes from the Hub's redirect, not from the CDN";
  auto seen = hub.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_NE(seen[0].target.find("/resolve/main/"), std::string::npos);
  EXPECT_EQ(seen[1].target.rfind("/cdn/acme/files/" + kCommit1 + "/w.safetensors", 0), 0u) << seen[1].target;
  EXPECT_EQ(seen[0].range, "bytes=4000-4999");
  EXPECT_EQ(seen[1].range, "bytes=4000-4999");
  EXPECT_EQ(http.stats().requests, 2u) << "a redirect hop is a request";
}

TEST(HttpSession, ProbeLearnsTheSizeAndClampsAtTheEndOfShortFiles) {
  FakeHub hub;
  hub.add_repo("acme/files", kCommit1);
  hub.add_file("acme/files", kCommit1, "small.gguf", blob(1000));
  hub.add_file("acme/files", kCommit1, "empty.bin", "");
  HttpSession http(test_settings(hub, ""));
  auto small = http.fetch({{url_of(hub, "acme/files", "small.gguf"), "s", HttpFetch::Mode::kProbe, 0, 65536, 0},
                           {url_of(hub, "acme/files", "small.gguf"), "s", HttpFetch::Mode::kProbe, 0, 8, 0},
                           {url_of(hub, "acme/files", "empty.bin"), "e", HttpFetch::Mode::kProbe, 0, 8, 0}});
  EXPECT_EQ(small[0].body.size(), 1000u);
  EXPECT_EQ(small[0].file_size, 1000u);
  EXPECT_EQ(small[1].body.size(), 8u);
  EXPECT_EQ(small[1].file_size, 1000u);
  EXPECT_TRUE(small[2].ok());
  EXPECT_EQ(small[2].file_size, 0u);
}

TEST(HttpSession, RetriesOn429And503ThenSucceeds) {
  FakeHub hub;
  hub.add_repo("acme/files", kCommit1);
  hub.add_file("acme/files", kCommit1, "blob.bin", blob(100));
  HttpSession http(test_settings(hub, ""));
  hub.fail_next(2, 429);
  auto r = http.fetch_one({url_of(hub, "acme/files", "blob.bin"), "blob", HttpFetch::Mode::kRange, 0, 10, 0});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.attempts, 3u);
  EXPECT_EQ(http.stats().retries, 2u);
  hub.fail_next(1, 503);
  r = http.fetch_one({url_of(hub, "acme/files", "blob.bin"), "blob", HttpFetch::Mode::kRange, 0, 10, 0});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(http.stats().retries, 3u);
  EXPECT_EQ(http.stats().requests, 5u);
}

TEST(HttpSession, ARetryAfterLongerThanLlmemWaitsIsAnsweredAtOnce) {
  FakeHub hub;
  hub.add_repo("acme/files", kCommit1);
  hub.add_file("acme/files", kCommit1, "blob.bin", blob(100));
  HttpSession http(test_settings(hub, ""));
  hub.fail_next(5, 429, "", /*retry_after_s=*/3600);
  auto r = http.fetch_one({url_of(hub, "acme/files", "blob.bin"), "blob", HttpFetch::Mode::kRange, 0, 10, 0});
  EXPECT_EQ(r.status, 429);
  // answered at once: one request, no retry after the hour the server asked for (counted, not timed)
  EXPECT_EQ(http.stats().requests, 1u);
  EXPECT_EQ(http.stats().retries, 0u);
}

TEST(HttpSession, ASlowServerTimesOutInWellUnderTwoSeconds) {
  FakeHub hub;
  hub.add_repo("acme/files", kCommit1);
  hub.add_file("acme/files", kCommit1, "blob.bin", blob(100));
  auto s = test_settings(hub, "");
  s.timeout_ms = 300;
  HttpSession http(s);
  // The server stalls a minute; llmem gives up after its 300 ms (with its retries): far before the server answers,
  // however loaded the machine (a bound of half the stall, not a measurement).
  hub.set_slow(60000);
  auto t0 = std::chrono::steady_clock::now();
  auto [kind, msg] = error_of([&] { http.fetch_one({url_of(hub, "acme/files", "blob.bin"), "acme/files/blob.bin", HttpFetch::Mode::kRange, 0, 10, 0}); });
  EXPECT_LT(seconds_since(t0), 30.0);
  EXPECT_EQ(kind, ErrorKind::kRuntime);
  EXPECT_NE(msg.find("acme/files/blob.bin: no complete answer from 127.0.0.1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("within 300 ms"), std::string::npos) << msg;
  EXPECT_NE(msg.find("HF_HUB_OFFLINE"), std::string::npos) << msg;
  hub.set_slow(0);
}

TEST(HttpSession, AnUnreachableHostFailsAtOnce) {
  int port;
  {
    FakeHub gone;  // a port that was just free, now closed
    port = gone.port();
  }
  HubSettings s;
  s.endpoint = "http://127.0.0.1:" + std::to_string(port);
  s.backoff_ms = 1;
  HttpSession http(s);
  auto [kind, msg] = error_of([&] { http.fetch_one({s.endpoint + "/a/b/resolve/main/config.json", "a/b/config.json", HttpFetch::Mode::kWhole, 0, 100, 0}); });
  // at once: a refused connection is not a server's answer to wait for again (counted, not timed)
  EXPECT_EQ(http.stats().retries, 0u);
  EXPECT_EQ(kind, ErrorKind::kRuntime);
  EXPECT_NE(msg.find("cannot connect to 127.0.0.1:" + std::to_string(port)), std::string::npos) << msg;
}

TEST(HttpSession, ATruncatedBodyIsAnErrorAfterRetries) {
  FakeHub hub;
  hub.add_repo("acme/files", kCommit1);
  hub.add_file("acme/files", kCommit1, "blob.bin", blob(1000));
  HttpSession http(test_settings(hub, ""));
  hub.set_truncate(true);
  auto [kind, msg] = error_of([&] { http.fetch_one({url_of(hub, "acme/files", "blob.bin"), "blob", HttpFetch::Mode::kRange, 0, 800, 1000}); });
  EXPECT_EQ(kind, ErrorKind::kRuntime);
  EXPECT_NE(msg.find("response shorter than announced"), std::string::npos) << msg;
  EXPECT_NE(msg.find("400 of 800 bytes after 4 attempts"), std::string::npos) << msg;
  hub.set_truncate(false);
}

TEST(HttpSession, AServerThatIgnoresRangeIsRefusedBeforeItSendsTheFile) {
  FakeHub hub;
  hub.add_repo("acme/files", kCommit1);
  hub.add_file("acme/files", kCommit1, "blob.bin", blob(100'000));
  hub.set_ignore_range(true);
  HttpSession http(test_settings(hub, ""));
  auto [k1, m1] = error_of([&] { http.fetch_one({url_of(hub, "acme/files", "blob.bin"), "blob", HttpFetch::Mode::kRange, 100, 10, 100'000}); });
  EXPECT_NE(m1.find("ignored the Range header"), std::string::npos) << m1;
  auto [k2, m2] = error_of([&] { http.fetch_one({url_of(hub, "acme/files", "blob.bin"), "blob", HttpFetch::Mode::kProbe, 0, 8, 0}); });
  EXPECT_NE(m2.find("ignored the Range header"), std::string::npos) << m2;
  // libcurl hands over its first buffer before the check refuses it; the rest of the file never arrives.
  EXPECT_LT(http.stats().body_bytes, 100'000u);
}

TEST(HttpSession, AWholeFileOverItsCapIsRefusedFromItsContentLength) {
  FakeHub hub;
  hub.add_repo("acme/files", kCommit1);
  hub.add_file("acme/files", kCommit1, "config.json", blob(100'000));
  HttpSession http(test_settings(hub, ""));
  auto [kind, msg] = error_of([&] { http.fetch_one({url_of(hub, "acme/files", "config.json"), "cfg", HttpFetch::Mode::kWhole, 0, 1000, 0}); });
  EXPECT_NE(msg.find("the file is 100000 bytes, over the 1000-byte cap"), std::string::npos) << msg;
  EXPECT_LT(http.stats().body_bytes, 100'000u);
}

TEST(HttpSession, TheTokenGoesToTheHubButNotToTheCdnOnAnotherHost) {
  FakeHub hub;
  hub.add_token(kToken);
  hub.add_repo("acme/files", kCommit1);
  hub.add_file("acme/files", kCommit1, "w.safetensors", blob(100));
  hub.set_cdn_host("localhost");
  auto s = test_settings(hub, "");
  s.token = kToken;
  s.token_origin = "HF_TOKEN";
  HttpSession http(s);
  auto r = http.fetch_one({url_of(hub, "acme/files", "w.safetensors"), "w", HttpFetch::Mode::kRange, 0, 10, 0});
  ASSERT_EQ(r.status, 206);
  auto seen = hub.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].authorization, "Bearer " + kToken);
  EXPECT_EQ(seen[1].host.rfind("localhost:", 0), 0u);
  EXPECT_EQ(seen[1].authorization, "") << "a redirect to another host must not carry the token";
  for (const auto& line : http.stats().log) EXPECT_EQ(line.find(kToken), std::string::npos) << line;
}

// --- HttpRangeSource -----------------------------------------------------------------------------------------

TEST(HttpRangeSource, ServesHeldBytesFromMemoryAndFetchesTheRest) {
  FakeHub hub;
  hub.add_repo("acme/files", kCommit1);
  hub.add_file("acme/files", kCommit1, "blob.bin", blob(1000));
  HttpSession http(test_settings(hub, ""));
  auto src = HttpRangeSource::open(http, "acme/files/blob.bin", url_of(hub, "acme/files", "blob.bin"), 16);
  EXPECT_EQ(src->size(), 1000u);
  EXPECT_EQ(hub.seen().size(), 1u);
  auto a = src->read(4, 8);
  EXPECT_EQ(std::string(a.begin(), a.end()), blob(1000).substr(4, 8));
  EXPECT_EQ(hub.seen().size(), 1u) << "the probe holds bytes 0-15";
  auto b = src->read(900, 100);
  EXPECT_EQ(std::string(b.begin(), b.end()), blob(1000).substr(900));
  EXPECT_EQ(hub.seen().size(), 2u);
  EXPECT_EQ(src->bytes_read(), 108u);
  auto [kind, msg] = error_of([&] { src->read(990, 20); });
  EXPECT_EQ(kind, ErrorKind::kInvalidInput);
  EXPECT_NE(msg.find("truncated file"), std::string::npos) << msg;
  EXPECT_EQ(hub.seen().size(), 2u) << "a range past the end is refused without a request";
}

TEST(HttpRangeSource, AnExpiredCdnUrlFallsBackToTheHub) {
  FakeHub hub;
  hub.add_repo("acme/files", kCommit1);
  hub.add_file("acme/files", kCommit1, "w.safetensors", blob(1000));
  HttpSession http(test_settings(hub, ""));
  auto src = HttpRangeSource::open(http, "acme/files/w.safetensors", url_of(hub, "acme/files", "w.safetensors"), 8);
  EXPECT_NE(src->data_url().find("/cdn/"), std::string::npos);
  auto a = src->read(100, 10);  // straight to the CDN
  EXPECT_EQ(hub.seen().size(), 3u);
  hub.expire_cdn_urls();
  auto b = src->read(200, 10);  // the CDN refuses, the Hub redirects to a fresh URL
  EXPECT_EQ(std::string(b.begin(), b.end()), blob(1000).substr(200, 10));
  auto seen = hub.seen();
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_NE(seen[3].target.find("/cdn/"), std::string::npos);
  EXPECT_NE(seen[4].target.find("/resolve/"), std::string::npos);
  for (const auto& line : http.stats().log) EXPECT_EQ(line.find("Signature"), std::string::npos) << "signed queries are not logged: " << line;
}

// --- open_hub_source -----------------------------------------------------------------------------------------

TEST(HubSource, ShardedSafetensorsCountsWhatTheLocalCheckpointCounts) {
  ShardedRepo repo;
  FakeHub hub;
  hub.add_repo("acme/tiny", kCommit1);
  hub.add_dir("acme/tiny", kCommit1, repo.dir);
  TempDir cache;
  ModelSource remote = open_hub_source({"acme/tiny", "", ""}, test_settings(hub, cache.path()), HubMode::kCacheFirst);
  ParamsReport local = count_params(repo.dir);
  ParamsReport r = count_params(remote);
  EXPECT_EQ(r.source.kind, SourceKind::kHub);
  EXPECT_EQ(r.source.revision, kCommit1);
  ASSERT_TRUE(r.from_config && r.from_weights);
  EXPECT_EQ(r.from_config->total_params, kTinyLlamaParams);
  EXPECT_EQ(r.from_weights->total_params, kTinyLlamaParams);
  EXPECT_EQ(r.from_weights->total_params, local.from_weights->total_params);
  EXPECT_EQ(r.from_weights->tensors.size(), local.from_weights->tensors.size());
  EXPECT_TRUE(r.comparison && r.comparison->same_count);
  EXPECT_EQ(r.source.header_bytes_read, local.source.header_bytes_read);
  ASSERT_EQ(r.source.files_read.size(), 5u);  // config, index, three shards
  EXPECT_EQ(r.source.files_read[0], hub.endpoint() + "/acme/tiny/resolve/" + kCommit1 + "/config.json");
  // Only headers crossed the wire, and every request the server saw is counted.
  const auto& rr = *r.source.remote;
  EXPECT_EQ(rr.commit, kCommit1);
  EXPECT_EQ(rr.requested_revision, "main");
  EXPECT_TRUE(rr.network_used);
  EXPECT_EQ(rr.requests, hub.seen().size());
  EXPECT_LE(hub.body_bytes_sent(), repo.header_traffic() + 200) << "only 404 bodies on top of the headers";
  // config (1) + index and model.safetensors (2) + per shard a redirected probe and a header read straight from
  // the CDN URL the probe landed on (3 × 3).
  EXPECT_EQ(rr.requests, 12u);
  size_t resolve_requests = 0;
  for (const auto& s : hub.seen()) resolve_requests += s.target.find("/resolve/") != std::string::npos;
  EXPECT_EQ(resolve_requests, 6u) << "the Hub itself sees one request per file";
  for (const auto& s : hub.seen()) {
    if (s.target.find("/resolve/") != std::string::npos && s.target.find("config.json") == std::string::npos) {
      EXPECT_NE(s.target.find("/resolve/" + kCommit1 + "/"), std::string::npos) << "after resolution, URLs pin the commit: " << s.target;
    }
  }
}

TEST(HubSource, ASecondRunComesFromTheHeaderCacheWithoutARequest) {
  ShardedRepo repo;
  FakeHub hub;
  hub.add_repo("acme/tiny", kCommit1);
  hub.add_dir("acme/tiny", kCommit1, repo.dir);
  TempDir cache;
  auto s = test_settings(hub, cache.path());
  ModelSource first = open_hub_source({"acme/tiny", "", ""}, s, HubMode::kCacheFirst);
  EXPECT_TRUE(std::filesystem::exists(cache.path() + "/models--acme--tiny/refs/main"));
  for (HubMode mode : {HubMode::kCacheFirst, HubMode::kOffline}) {
    hub.clear_seen();
    ModelSource again = open_hub_source({"acme/tiny", "", ""}, s, mode);
    EXPECT_TRUE(hub.seen().empty());
    EXPECT_FALSE(again.remote->network_used);
    EXPECT_EQ(again.remote->requests, 0u);
    EXPECT_EQ(again.remote->cached_files, 6u);  // config, index, model.safetensors (absent), three shards
    EXPECT_EQ(again.revision, kCommit1);
    EXPECT_EQ(count_params(again).from_weights->total_params, kTinyLlamaParams);
    EXPECT_EQ(again.header_bytes_read, first.header_bytes_read);
  }
  // --remote asks which commit main is now (one request) and reuses the cached headers of that commit.
  hub.clear_seen();
  ModelSource refreshed = open_hub_source({"acme/tiny", "", ""}, s, HubMode::kRefresh);
  EXPECT_EQ(hub.seen().size(), 1u);
  EXPECT_EQ(count_params(refreshed).from_weights->total_params, kTinyLlamaParams);
  // Offline with the server gone works too.
  hub.stop();
  auto offline = s;
  offline.offline = true;
  EXPECT_EQ(count_params(open_hub_source({"acme/tiny", "", ""}, offline, HubMode::kCacheFirst)).from_weights->total_params, kTinyLlamaParams);
}

TEST(HubSource, OfflineWithoutACachedCopySaysWhatToDo) {
  FakeHub hub;
  TempDir cache;
  auto [kind, msg] = error_of([&] { open_hub_source({"acme/tiny", "", ""}, test_settings(hub, cache.path()), HubMode::kOffline); });
  EXPECT_EQ(kind, ErrorKind::kNotFound);
  EXPECT_NE(msg.find("acme/tiny: not in llmem's header cache"), std::string::npos) << msg;
  EXPECT_NE(msg.find("run once online"), std::string::npos) << msg;
  EXPECT_TRUE(hub.seen().empty());
}

TEST(HubSource, OneSafetensorsFileWithoutAnIndex) {
  TempDir tmp;
  write_safetensors(tmp.file("model.safetensors"), tiny_llama_tensors(), {{"format", "pt"}});
  FakeHub hub;
  hub.add_repo("acme/one", kCommit1);
  hub.add_disk_file("acme/one", kCommit1, "model.safetensors", tmp.file("model.safetensors"));
  TempDir cache;
  ModelSource src = open_hub_source({"acme/one", "", ""}, test_settings(hub, cache.path()), HubMode::kCacheFirst);
  EXPECT_FALSE(src.config);
  ASSERT_TRUE(src.safetensors);
  EXPECT_EQ(count_params(src).from_weights->total_params, kTinyLlamaParams);
  EXPECT_EQ(src.revision, kCommit1) << "the commit comes from config.json's 404";
}

// A small GGUF: token embedding, one block's attention and MLP in Q8_0, norms in F32.
GgufWriter tiny_gguf() {
  GgufWriter w;
  w.kv("general.architecture", GgufValue::string("llama"));
  w.kv("llama.block_count", GgufValue::u32(1));
  w.kv("tokenizer.ggml.tokens", GgufValue::strings(std::vector<std::string>(300, "tok")));
  w.tensor("token_embd.weight", {64, 100}, ggml::Q8_0);
  w.tensor("blk.0.attn_q.weight", {64, 64}, ggml::Q8_0);
  w.tensor("blk.0.ffn_up.weight", {64, 128}, ggml::Q8_0);
  w.tensor("blk.0.attn_norm.weight", {64}, ggml::F32);
  return w;
}
constexpr uint64_t kTinyGgufParams = 64 * 100 + 64 * 64 + 64 * 128 + 64;

TEST(HubSource, ANamedGgufFileIsReadByRangesAndCachedToo) {
  TempDir tmp;
  tiny_gguf().write_file(tmp.file("tiny.gguf"));
  FakeHub hub;
  hub.add_repo("acme/tiny-GGUF", kCommit1);
  hub.add_disk_file("acme/tiny-GGUF", kCommit1, "tiny-Q8_0.gguf", tmp.file("tiny.gguf"));
  hub.add_disk_file("acme/tiny-GGUF", kCommit1, "Q8_0/tiny-Q8_0.gguf", tmp.file("tiny.gguf"));
  TempDir cache;
  auto s = test_settings(hub, cache.path());
  for (const std::string file : {"tiny-Q8_0.gguf", "Q8_0/tiny-Q8_0.gguf"}) {
    ModelSource src = open_hub_source({"acme/tiny-GGUF", file, ""}, s, HubMode::kCacheFirst);
    ASSERT_TRUE(src.gguf);
    EXPECT_EQ(count_params(src).from_weights->total_params, kTinyGgufParams);
    EXPECT_EQ(src.gguf->tensors.size(), read_gguf_file(tmp.file("tiny.gguf")).tensors.size());
    EXPECT_EQ(src.files_read.back(), hub.endpoint() + "/acme/tiny-GGUF/resolve/" + kCommit1 + "/" + file);
    hub.clear_seen();
    ModelSource again = open_hub_source({"acme/tiny-GGUF", file, ""}, s, HubMode::kOffline);
    EXPECT_EQ(count_params(again).from_weights->total_params, kTinyGgufParams);
    EXPECT_TRUE(hub.seen().empty());
  }
}

TEST(HubSource, RevisionsResolveToTheCommitTheHubReports) {
  ShardedRepo repo;
  FakeHub hub;
  hub.add_repo("acme/tiny", kCommit1);
  hub.add_dir("acme/tiny", kCommit1, repo.dir);
  hub.add_ref("acme/tiny", "v0.1", kCommit2);
  hub.add_file("acme/tiny", kCommit2, "config.json", tiny_llama_config(1));
  TempDir cache;
  auto s = test_settings(hub, cache.path());
  ModelSource tag = open_hub_source({"acme/tiny", "", "v0.1"}, s, HubMode::kCacheFirst);
  EXPECT_EQ(tag.revision, kCommit2);
  EXPECT_EQ(tag.remote->requested_revision, "v0.1");
  EXPECT_LT(count_params(tag).primary().total_params, kTinyLlamaParams);
  // A full commit names itself: no resolution request, straight to the files at that commit.
  TempDir cache2;
  hub.clear_seen();
  ModelSource pinned = open_hub_source({"acme/tiny", "", kCommit1}, test_settings(hub, cache2.path()), HubMode::kCacheFirst);
  EXPECT_EQ(pinned.revision, kCommit1);
  for (const auto& seen : hub.seen()) EXPECT_EQ(seen.target.find("/resolve/main/"), std::string::npos) << seen.target;
  auto [kind, msg] = error_of([&] { open_hub_source({"acme/tiny", "", "no-such-branch"}, s, HubMode::kCacheFirst); });
  EXPECT_EQ(kind, ErrorKind::kNotFound);
  EXPECT_NE(msg.find("acme/tiny@no-such-branch/config.json: revision 'no-such-branch' does not exist in acme/tiny"), std::string::npos) << msg;
}

TEST(HubSource, EveryRefusalIsOneLineThatSaysWhichAndWhatToDo) {
  ShardedRepo repo;
  FakeHub hub;
  hub.add_token(kToken);
  hub.add_token("hf_OtherValidToken");
  for (const std::string name : {"acme/gated", "acme/private", "acme/tiny"}) {
    hub.add_repo(name, kCommit1);
    hub.add_dir(name, kCommit1, repo.dir);
  }
  hub.set_gated("acme/gated", {kToken});
  hub.set_private("acme/private", {kToken});
  hub.add_repo("acme/empty", kCommit1);
  hub.add_file("acme/empty", kCommit1, "README.md", "# nothing");
  hub.add_repo("acme/broken", kCommit1);
  hub.add_file("acme/broken", kCommit1, "model.safetensors.index.json", slurp(repo.dir + "/model.safetensors.index.json"));
  TempDir cache;
  auto anon = test_settings(hub, cache.path());
  auto with = [&](const std::string& token) {
    auto s = anon;
    s.token = token;
    s.token_origin = "HF_TOKEN";
    return s;
  };
  struct Case {
    HubRef ref;
    HubSettings settings;
    ErrorKind kind;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{"acme/gated", "", ""}, anon, ErrorKind::kNotFound, "acme/gated/config.json: gated repo: accept its conditions at " + hub.endpoint() + "/acme/gated, then set HF_TOKEN"},
      {{"acme/gated", "", ""}, with("hf_OtherValidToken"), ErrorKind::kNotFound, "gated repo: the token from HF_TOKEN has no access yet"},
      {{"acme/private", "", ""}, anon, ErrorKind::kNotFound, "repository acme/private not found on " + hub.endpoint() + ": check the name; a private repo needs HF_TOKEN"},
      {{"acme/tiny", "", ""}, with("hf_WrongToken"), ErrorKind::kNotFound, "the Hub refused the token from HF_TOKEN (invalid or expired)"},
      {{"acme/nope", "", ""}, anon, ErrorKind::kNotFound, "repository acme/nope not found"},
      {{"acme/nope", "", ""}, with(kToken), ErrorKind::kNotFound, "or the token from HF_TOKEN cannot read it"},
      {{"acme/tiny", "missing.gguf", ""}, anon, ErrorKind::kNotFound, "acme/tiny/missing.gguf: no such file in acme/tiny at revision main"},
      {{"acme/tiny", "config.json", ""}, anon, ErrorKind::kUsage, "only a .gguf file can be named"},
      {{"acme/empty", "", ""}, anon, ErrorKind::kNotFound, "acme/empty: has no config.json, model.safetensors or model.safetensors.index.json at revision main; for a GGUF repo name the file"},
      {{"acme/broken", "", ""}, anon, ErrorKind::kNotFound, "shard 'model-00001-of-00003.safetensors' named by the index is not in acme/broken"},
      {{"../etc", "", ""}, anon, ErrorKind::kUsage, "not a Hub repo id"},
      {{"acme/tiny", "../../x.gguf", ""}, anon, ErrorKind::kUsage, "not a safe file path"},
  };
  for (const auto& c : cases) {
    auto [kind, msg] = error_of([&] { open_hub_source(c.ref, c.settings, HubMode::kRefresh); });
    EXPECT_EQ(kind, c.kind) << msg;
    EXPECT_NE(msg.find(c.needle), std::string::npos) << msg << "\n  wanted: " << c.needle;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_EQ(msg.find("hf_OtherValidToken"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("hf_WrongToken"), std::string::npos) << msg;
    EXPECT_EQ(msg.find(kToken), std::string::npos) << msg;
  }
  // With the right token, the gated and the private repo open.
  EXPECT_EQ(count_params(open_hub_source({"acme/gated", "", ""}, with(kToken), HubMode::kRefresh)).primary().total_params, kTinyLlamaParams);
  EXPECT_EQ(count_params(open_hub_source({"acme/private", "", ""}, with(kToken), HubMode::kRefresh)).primary().total_params, kTinyLlamaParams);
}

TEST(HubSource, RateLimitingIsRetriedThenReportedAsSuch) {
  ShardedRepo repo;
  FakeHub hub;
  hub.add_repo("acme/tiny", kCommit1);
  hub.add_dir("acme/tiny", kCommit1, repo.dir);
  TempDir cache;
  auto s = test_settings(hub, cache.path());
  hub.fail_next(2, 429, "model-00002");
  ModelSource src = open_hub_source({"acme/tiny", "", ""}, s, HubMode::kRefresh);
  EXPECT_EQ(src.remote->retries, 2u);
  EXPECT_EQ(count_params(src).primary().total_params, kTinyLlamaParams);
  TempDir cache2;
  hub.fail_next(100, 429, "model.safetensors.index.json");
  auto [kind, msg] = error_of([&] { open_hub_source({"acme/tiny", "", ""}, test_settings(hub, cache2.path()), HubMode::kRefresh); });
  EXPECT_EQ(kind, ErrorKind::kRuntime);
  EXPECT_NE(msg.find("acme/tiny/model.safetensors.index.json: rate limited by 127.0.0.1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("HTTP 429 after 4 attempts"), std::string::npos) << msg;
  EXPECT_NE(msg.find("set HF_TOKEN"), std::string::npos) << msg;
  hub.fail_next(0, 429);
}

TEST(HubSource, AHeaderLengthThatLiesIsRefusedWithoutFetchingIt) {
  TempDir tmp;
  // 8-byte lengths larger than the file, and larger than any cap.
  const std::string header = safetensors_header_json(tiny_llama_tensors(1));
  for (uint64_t lie : {uint64_t{5000}, uint64_t{1} << 62}) {
    std::string bytes = le64(lie) + header;
    FakeHub hub;
    hub.add_repo("acme/liar", kCommit1);
    hub.add_file("acme/liar", kCommit1, "model.safetensors", bytes);
    TempDir cache;
    auto [kind, msg] = error_of([&] { open_hub_source({"acme/liar", "", ""}, test_settings(hub, cache.path()), HubMode::kRefresh); });
    EXPECT_EQ(kind, ErrorKind::kInvalidInput);
    EXPECT_NE(msg.find("acme/liar/model.safetensors: header length " + std::to_string(lie)), std::string::npos) << msg;
    EXPECT_NE(msg.find(lie == 5000 ? "runs past the end of the file" : "exceeds the"), std::string::npos) << msg;
    for (const auto& s : hub.seen()) EXPECT_NE(s.range.rfind("bytes=8-", 0), 0u) << "the lying range was requested: " << s.range;
    EXPECT_FALSE(std::filesystem::exists(cache.path() + "/models--acme--liar/refs/main")) << "a failed read is not cached";
  }
}

TEST(HubSource, AServerWithoutCommitHeadersWorksButCachesNothing) {
  ShardedRepo repo;
  FakeHub hub;
  hub.add_repo("acme/tiny", kCommit1);
  hub.add_dir("acme/tiny", kCommit1, repo.dir);
  hub.set_send_commit(false);
  TempDir cache;
  ModelSource src = open_hub_source({"acme/tiny", "", ""}, test_settings(hub, cache.path()), HubMode::kCacheFirst);
  EXPECT_EQ(count_params(src).primary().total_params, kTinyLlamaParams);
  EXPECT_EQ(src.revision, "");
  EXPECT_NE(src.remote->cache_note.find("X-Repo-Commit"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(cache.path() + "/models--acme--tiny"));
}

// --- settings from the environment ---------------------------------------------------------------------------

using EnvVars = std::vector<std::pair<std::string, std::optional<std::string>>>;

class ScopedEnv {
 public:
  explicit ScopedEnv(EnvVars vars) {
    for (auto& [k, v] : vars) {
      const char* old = std::getenv(k.c_str());
      saved_.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }
  ~ScopedEnv() {
    for (auto& [k, v] : saved_) {
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST(HubSettings, ComeFromTheEnvironmentAsHuggingfaceHubReadsIt) {
  TempDir tmp;
  write_file(tmp.file("token"), std::string("  hf_FromTheFile \n"));
  {
    ScopedEnv env({{"HF_ENDPOINT", "http://mirror.example/"}, {"HF_TOKEN", std::nullopt}, {"HF_TOKEN_PATH", std::nullopt},
                   {"HF_HOME", tmp.path()}, {"HF_HUB_OFFLINE", "1"}, {"LLMEM_HEADER_CACHE", std::nullopt},
                   {"LLMEM_HTTP_TIMEOUT_MS", "250"}, {"LLMEM_HTTP_RETRIES", "2"}, {"LLMEM_HTTP_BACKOFF_MS", "7"}});
    HubSettings s = hub_settings_from_env();
    EXPECT_EQ(s.endpoint, "http://mirror.example");
    EXPECT_EQ(s.token, "hf_FromTheFile");
    EXPECT_EQ(s.token_origin, tmp.file("token"));
    EXPECT_EQ(s.cache_dir, tmp.path() + "/llmem-headers");
    EXPECT_TRUE(s.offline);
    EXPECT_EQ(s.timeout_ms, 250u);
    EXPECT_EQ(s.max_attempts, 3u);
    EXPECT_EQ(s.backoff_ms, 7u);
  }
  {
    ScopedEnv env({{"HF_ENDPOINT", std::nullopt}, {"HF_TOKEN", "hf_FromTheEnv"}, {"HF_HOME", tmp.path()}, {"HF_HUB_OFFLINE", "0"},
                   {"LLMEM_HEADER_CACHE", tmp.file("c")}, {"LLMEM_HTTP_TIMEOUT_MS", std::nullopt}});
    HubSettings s = hub_settings_from_env();
    EXPECT_EQ(s.endpoint, "https://huggingface.co");
    EXPECT_EQ(s.token, "hf_FromTheEnv");
    EXPECT_EQ(s.token_origin, "HF_TOKEN");
    EXPECT_EQ(s.cache_dir, tmp.file("c"));
    EXPECT_FALSE(s.offline);
  }
  {
    ScopedEnv env(EnvVars{{"LLMEM_HTTP_TIMEOUT_MS", "soon"}});
    auto [kind, msg] = error_of([] { hub_settings_from_env(); });
    EXPECT_EQ(kind, ErrorKind::kUsage);
    EXPECT_NE(msg.find("LLMEM_HTTP_TIMEOUT_MS: 'soon' is not a whole number"), std::string::npos) << msg;
  }
  {
    ScopedEnv env(EnvVars{{"HF_TOKEN", "hf_bad token\r\nX-Injected: 1"}, {"LLMEM_HTTP_TIMEOUT_MS", std::nullopt}});
    auto [kind, msg] = error_of([] { hub_settings_from_env(); });
    EXPECT_EQ(kind, ErrorKind::kUsage);
    EXPECT_EQ(msg.find("hf_bad"), std::string::npos) << "the token is never shown: " << msg;
  }
}

// --- the CLI end to end --------------------------------------------------------------------------------------

// A clean environment: the fake Hub, a private HF_HOME, no token, no other cache.
std::string cli_env(const FakeHub& hub, const std::string& hf_home, const std::string& extra = "") {
  return "HF_ENDPOINT=" + shell_quote(hub.endpoint()) + " HF_HOME=" + shell_quote(hf_home) +
         " HF_HUB_CACHE= HUGGINGFACE_HUB_CACHE= XDG_CACHE_HOME= HOME=/nonexistent HF_TOKEN= HF_TOKEN_PATH= HF_HUB_OFFLINE= "
         "LLMEM_HEADER_CACHE= LLMEM_HTTP_BACKOFF_MS=1 " + extra;
}

TEST(HubCli, RemoteJsonEqualsTheLocalCountAndASecondRunIsOffline) {
  ShardedRepo repo;
  FakeHub hub;
  hub.add_repo("acme/tiny", kCommit1);
  hub.add_dir("acme/tiny", kCommit1, repo.dir);
  TempDir home;
  const std::string env = cli_env(hub, home.path());
  CliRun local = run_llmem("params " + shell_quote(repo.dir) + " --json", env);
  ASSERT_EQ(local.exit_code, 0) << local.err;
  CliRun remote = run_llmem("params acme/tiny --remote --json", env);
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  json l = json::parse(local.out), r = json::parse(remote.out);
  EXPECT_EQ(r["total_params"], l["total_params"]);
  EXPECT_EQ(r["total_params"].get<uint64_t>(), kTinyLlamaParams);
  EXPECT_EQ(r["weights"]["total_params"], l["weights"]["total_params"]);
  EXPECT_EQ(r["comparison"]["match"], true);
  EXPECT_EQ(r["source"]["kind"], "hub");
  EXPECT_EQ(r["source"]["revision"], kCommit1);
  EXPECT_EQ(r["source"]["files_read"].size(), 5u);
  EXPECT_EQ(r["source"]["remote"]["endpoint"], hub.endpoint());
  EXPECT_EQ(r["source"]["remote"]["requests"].get<uint64_t>(), hub.seen().size());
  EXPECT_GT(r["source"]["remote"]["bytes_transferred"].get<uint64_t>(), repo.header_traffic());
  EXPECT_EQ(r["source"]["remote"]["cache_dir"], home.path() + "/llmem-headers");
  // The second run: --offline, then HF_HUB_OFFLINE=1, then with the server gone and no flag at all.
  hub.clear_seen();
  CliRun offline = run_llmem("params acme/tiny --offline --json", env);
  ASSERT_EQ(offline.exit_code, 0) << offline.err;
  json o = json::parse(offline.out);
  EXPECT_EQ(o["total_params"], l["total_params"]);
  EXPECT_EQ(o["source"]["remote"]["network_used"], false);
  EXPECT_EQ(o["source"]["remote"]["requests"], 0);
  EXPECT_EQ(o["source"]["revision"], kCommit1);
  CliRun env_offline = run_llmem("params acme/tiny@main --json", env + " HF_HUB_OFFLINE=1");
  ASSERT_EQ(env_offline.exit_code, 0) << env_offline.err;
  EXPECT_TRUE(hub.seen().empty());
  hub.stop();
  CliRun plain = run_llmem("params acme/tiny --json", env);
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(json::parse(plain.out)["total_params"], l["total_params"]);
}

TEST(HubCli, VerboseListsRequestsAndBytesOnStderrAndNeverTheToken) {
  ShardedRepo repo;
  FakeHub hub;
  hub.add_token(kToken);
  hub.add_repo("acme/tiny", kCommit1);
  hub.add_dir("acme/tiny", kCommit1, repo.dir);
  hub.set_gated("acme/tiny", {kToken});
  TempDir home;
  CliRun r = run_llmem("params acme/tiny --verbose --depth 0", cli_env(hub, home.path(), "HF_TOKEN=" + kToken));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("-> commit " + kCommit1), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("206 GET " + hub.endpoint() + "/acme/tiny/resolve/" + kCommit1 + "/model-00001-of-00003.safetensors [bytes 0-7]"),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("12 request(s)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(kToken), std::string::npos);
  EXPECT_EQ(r.out.find(kToken), std::string::npos);
  EXPECT_NE(r.out.find("Total params:"), std::string::npos) << r.out;
}

TEST(HubCli, FailuresAreOneLineWithTheRightExitCode) {
  ShardedRepo repo;
  FakeHub hub;
  hub.add_repo("acme/gated", kCommit1);
  hub.add_dir("acme/gated", kCommit1, repo.dir);
  hub.set_gated("acme/gated", {});
  TempDir home;
  const std::string env = cli_env(hub, home.path());
  auto one_line = [](const CliRun& r, int code, const std::string& needle) {
    EXPECT_EQ(r.exit_code, code) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("llmem: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  };
  one_line(run_llmem("params acme/gated", env), 2, "gated repo: accept its conditions");
  // Not asked for by name, unknown everywhere: the catalog's suggestions come first, then what the Hub said.
  one_line(run_llmem("params acme/nothing-here", env), 2, "not in the embedded catalog (");
  one_line(run_llmem("params acme/nothing-here", env), 2, "not on the Hub either (repository acme/nothing-here not found");
  one_line(run_llmem("params acme/nothing-here --offline", env), 2, "not in llmem's header cache either, and offline");
  one_line(run_llmem("params acme/nothing-here --remote --offline", env), 2, "acme/nothing-here: not in llmem's header cache");
  one_line(run_llmem("params acme/gated@v2 --revision v3", env), 2, "two different revisions");
  one_line(run_llmem("params acme/gated/a.gguf --gguf-file b.gguf", env), 2, "two different files");
  one_line(run_llmem("params tinyllama --remote", env), 2, "--remote needs a Hub repo id");
  // A slow Hub (it stalls a minute): the request gives up after LLMEM_HTTP_TIMEOUT_MS, far before the answer.
  hub.set_slow(60000);
  auto t0 = std::chrono::steady_clock::now();
  one_line(run_llmem("params acme/gated --remote", env + " LLMEM_HTTP_TIMEOUT_MS=300"), 1, "no complete answer from 127.0.0.1");
  EXPECT_LT(seconds_since(t0), 30.0);
  hub.set_slow(0);
}

TEST(HubCli, CatalogNamesStayOfflineUnlessRemoteIsAsked) {
  FakeHub hub;
  hub.add_repo("TinyLlama/TinyLlama-1.1B-Chat-v1.0", kCommit1);
  hub.add_file("TinyLlama/TinyLlama-1.1B-Chat-v1.0", kCommit1, "config.json", tiny_llama_config());
  TempDir home;
  const std::string env = cli_env(hub, home.path());
  CliRun catalog = run_llmem("params TinyLlama/TinyLlama-1.1B-Chat-v1.0 --json", env);
  ASSERT_EQ(catalog.exit_code, 0) << catalog.err;
  EXPECT_EQ(json::parse(catalog.out)["source"]["kind"], "catalog");
  EXPECT_TRUE(hub.seen().empty());
  CliRun remote = run_llmem("params TinyLlama/TinyLlama-1.1B-Chat-v1.0 --remote --json", env);
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  json j = json::parse(remote.out);
  EXPECT_EQ(j["source"]["kind"], "hub");
  EXPECT_EQ(j["total_params"].get<uint64_t>(), kTinyLlamaParams) << "the Hub's config, not the catalog's";
  EXPECT_FALSE(hub.seen().empty());
}

}  // namespace
