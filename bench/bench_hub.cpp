// Reading a Llama-3.1-405B-sized checkpoint from a Hub over HTTP: config.json, the index, and the headers of 191
// shards, against the fake Hub of the tests (127.0.0.1, HTTP/1.1, CDN redirects for the shards).
//
// The checkpoint is synthetic, laid out as on the Hub: transformers' LlamaForCausalLM tensors with
// Llama-3.1-405B's config (126 layers, hidden 16384, intermediate 53248, 128 heads, 8 KV heads, vocab 128256,
// bf16, untied), spread over model-00001-of-00191.safetensors ... as sparse files: ~812 GB of tensor data that
// costs no disk and that no request ever touches.
//
// Reported per run: requests (redirect hops included), bytes transferred (response headers and bodies), the
// body bytes alone, and the parameter count. The cold run starts with an empty header cache; the warm run reads
// everything from it (no request); "refresh" is --remote with a warm cache (one request: which commit is main).
// The latency variants add a delay to every server answer, as a distant Hub would, to show what concurrency buys.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "fixtures/fake_hub.hpp"
#include "fixtures/safetensors_writer.hpp"
#include "llmem/hub.hpp"
#include "llmem/params.hpp"

using namespace llmem;
using namespace llmem::fixtures;

namespace {

const std::string kCommit = "405b405b405b405b405b405b405b405b405b405b";

// By hand from the config: 2·vocab·hidden + hidden + 126 · (2·hidden² + 2·1024·hidden + 3·hidden·intermediate
// + 2·hidden) = 4,202,692,608 + 16,384 + 126 · 3,187,703,808.
constexpr uint64_t kLlama31_405BParams = 405'853'388'800;

std::vector<FakeTensor> llama_405b_tensors() {
  const uint64_t layers = 126, hidden = 16384, inter = 53248, heads = 128, kv = 8, hd = 128, vocab = 128256;
  std::vector<FakeTensor> ts;
  ts.push_back({"model.embed_tokens.weight", "BF16", {vocab, hidden}});
  for (uint64_t i = 0; i < layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    ts.push_back({p + "input_layernorm.weight", "BF16", {hidden}});
    ts.push_back({p + "self_attn.q_proj.weight", "BF16", {heads * hd, hidden}});
    ts.push_back({p + "self_attn.k_proj.weight", "BF16", {kv * hd, hidden}});
    ts.push_back({p + "self_attn.v_proj.weight", "BF16", {kv * hd, hidden}});
    ts.push_back({p + "self_attn.o_proj.weight", "BF16", {hidden, heads * hd}});
    ts.push_back({p + "post_attention_layernorm.weight", "BF16", {hidden}});
    ts.push_back({p + "mlp.gate_proj.weight", "BF16", {inter, hidden}});
    ts.push_back({p + "mlp.up_proj.weight", "BF16", {inter, hidden}});
    ts.push_back({p + "mlp.down_proj.weight", "BF16", {hidden, inter}});
  }
  ts.push_back({"model.norm.weight", "BF16", {hidden}});
  ts.push_back({"lm_head.weight", "BF16", {vocab, hidden}});
  return ts;
}

const char* kConfig = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16384,
  "intermediate_size": 53248, "num_hidden_layers": 126, "num_attention_heads": 128, "num_key_value_heads": 8,
  "head_dim": 128, "vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16"})";

// Written on first use, served for the whole run.
struct Fixture {
  TempDir tmp;
  std::string dir = tmp.dir("Llama-3.1-405B");
  FakeHub hub;
  Fixture() {
    write_sharded_checkpoint(dir, split_into_shards(llama_405b_tensors(), 191), /*with_index=*/true);
    write_file(dir + "/config.json", std::string(kConfig));
    hub.add_repo("meta-llama/Llama-3.1-405B", kCommit);
    hub.add_dir("meta-llama/Llama-3.1-405B", kCommit, dir);
  }
};
Fixture& fixture() {
  static Fixture f;
  return f;
}

HubSettings settings(const std::string& cache_dir, uint32_t parallel) {
  HubSettings s;
  s.endpoint = fixture().hub.endpoint();
  s.cache_dir = cache_dir;
  s.max_parallel = parallel;
  return s;
}

void report(benchmark::State& state, const ModelSource& src, uint64_t server_body_bytes) {
  const uint64_t params = count_params(src).from_weights->total_params;
  if (params != kLlama31_405BParams || src.safetensors->shards.size() != 191) state.SkipWithError("wrong count");
  const auto& r = *src.remote;
  state.counters["requests"] = static_cast<double>(r.requests);
  state.counters["KB_transferred"] = static_cast<double>(r.bytes_transferred) / 1e3;
  state.counters["KB_bodies"] = static_cast<double>(server_body_bytes) / 1e3;
  state.counters["KB_headers_read"] = static_cast<double>(src.header_bytes_read) / 1e3;
  state.counters["shards"] = static_cast<double>(src.safetensors->shards.size());
  state.counters["data_GB"] = static_cast<double>(src.safetensors->data_bytes) / 1e9;
  state.SetLabel(std::to_string(params) + " params");
}

// Empty header cache: every header over the network. Args: transfers in flight, server latency in ms.
void BM_Hub_Llama405B_191Shards_Cold(benchmark::State& state) {
  auto& f = fixture();
  f.hub.set_slow(static_cast<int>(state.range(1)));
  ModelSource src;
  uint64_t body = 0;
  for (auto _ : state) {
    TempDir cache;
    const uint64_t before = f.hub.body_bytes_sent();
    src = open_hub_source({"meta-llama/Llama-3.1-405B", "", ""}, settings(cache.path(), static_cast<uint32_t>(state.range(0))),
                          HubMode::kCacheFirst);
    body = f.hub.body_bytes_sent() - before;
  }
  f.hub.set_slow(0);
  report(state, src, body);
}
BENCHMARK(BM_Hub_Llama405B_191Shards_Cold)
    ->ArgNames({"parallel", "latency_ms"})
    ->Args({32, 0})
    ->Args({8, 20})
    ->Args({32, 20})
    ->Args({64, 20})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Everything from the header cache: the second run of `llmem params meta-llama/Llama-3.1-405B`.
void BM_Hub_Llama405B_191Shards_WarmCache(benchmark::State& state) {
  TempDir cache;
  ModelSource src = open_hub_source({"meta-llama/Llama-3.1-405B", "", ""}, settings(cache.path(), 32), HubMode::kCacheFirst);
  for (auto _ : state) {
    src = open_hub_source({"meta-llama/Llama-3.1-405B", "", ""}, settings(cache.path(), 32),
                          state.range(0) ? HubMode::kRefresh : HubMode::kOffline);
    benchmark::DoNotOptimize(src.safetensors->tensors.data());
  }
  report(state, src, 0);
}
BENCHMARK(BM_Hub_Llama405B_191Shards_WarmCache)->ArgName("refresh")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
