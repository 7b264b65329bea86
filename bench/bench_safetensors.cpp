// Reading safetensors headers of a Llama-3.1-405B-sized checkpoint: 191 shards with an index, as on the Hub.
//
// The checkpoint is synthetic: the tensor layout of transformers' LlamaForCausalLM with Llama-3.1-405B's
// config.json (126 layers, hidden 16384, intermediate 53248, 128 heads, 8 KV heads, head_dim 128, vocab 128256,
// bf16, untied embeddings), spread over model-00001-of-00191.safetensors ... and written once into a temporary
// directory as sparse files: about 812 GB of tensor data that costs no disk. The target is < 50 ms for the
// whole checkpoint on a 2-core machine (warm page cache: the headers' pages are cached after the first read).
#include <benchmark/benchmark.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "fixtures/safetensors_writer.hpp"
#include "llmem/safetensors.hpp"

using namespace llmem;
using namespace llmem::fixtures;

namespace {

struct LlamaShape {
  uint64_t layers, hidden, intermediate, heads, kv_heads, head_dim, vocab;
  bool tied;
};
constexpr LlamaShape kLlama31_405B = {126, 16384, 53248, 128, 8, 128, 128256, false};
// By hand from the config: 2·vocab·hidden (embedding, lm_head) + hidden (final norm) + per layer
// 2·hidden² (q, o) + 2·1024·hidden (k, v) + 3·hidden·intermediate (MLP) + 2·hidden (norms)
// = 4,202,692,608 + 16,384 + 126 · 3,187,703,808.
constexpr uint64_t kLlama31_405BParams = 405'853'388'800;

// Tensor names and shapes as transformers' modeling_llama.py creates them (nn.Linear weights are [out, in]).
std::vector<FakeTensor> llama_tensors(const LlamaShape& s, const std::string& dtype) {
  std::vector<FakeTensor> ts;
  ts.push_back({"model.embed_tokens.weight", dtype, {s.vocab, s.hidden}});
  for (uint64_t i = 0; i < s.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    ts.push_back({p + "input_layernorm.weight", dtype, {s.hidden}});
    ts.push_back({p + "self_attn.q_proj.weight", dtype, {s.heads * s.head_dim, s.hidden}});
    ts.push_back({p + "self_attn.k_proj.weight", dtype, {s.kv_heads * s.head_dim, s.hidden}});
    ts.push_back({p + "self_attn.v_proj.weight", dtype, {s.kv_heads * s.head_dim, s.hidden}});
    ts.push_back({p + "self_attn.o_proj.weight", dtype, {s.hidden, s.heads * s.head_dim}});
    ts.push_back({p + "post_attention_layernorm.weight", dtype, {s.hidden}});
    ts.push_back({p + "mlp.gate_proj.weight", dtype, {s.intermediate, s.hidden}});
    ts.push_back({p + "mlp.up_proj.weight", dtype, {s.intermediate, s.hidden}});
    ts.push_back({p + "mlp.down_proj.weight", dtype, {s.hidden, s.intermediate}});
  }
  ts.push_back({"model.norm.weight", dtype, {s.hidden}});
  if (!s.tied) ts.push_back({"lm_head.weight", dtype, {s.vocab, s.hidden}});
  return ts;
}

// Written on first use, removed at exit.
struct Fixture {
  TempDir tmp;
  std::vector<FakeTensor> tensors = llama_tensors(kLlama31_405B, "BF16");
  std::vector<FakeShard> shards = split_into_shards(tensors, 191);
  std::string dir = tmp.dir("Llama-3.1-405B");
  std::string one_file = tmp.file("all-in-one.safetensors");
  Fixture() {
    write_sharded_checkpoint(dir, shards, /*with_index=*/true);
    write_safetensors(one_file, tensors);
  }
};
Fixture& fixture() {
  static Fixture f;
  return f;
}

uint64_t params_of(const std::vector<TensorInfo>& ts) {
  uint64_t n = 0;
  for (const auto& t : ts) n += t.numel();
  return n;
}

void BM_ReadSafetensorsDir_Llama405B_191Shards(benchmark::State& state) {
  auto& f = fixture();
  SafetensorsCheckpoint ck;
  for (auto _ : state) {
    ck = read_safetensors_dir(f.dir);
    benchmark::DoNotOptimize(ck.tensors.data());
  }
  const uint64_t params = params_of(ck.tensors);
  if (params != kLlama31_405BParams || ck.shards.size() != 191) state.SkipWithError("wrong count");
  state.counters["params"] = benchmark::Counter(static_cast<double>(params));
  state.counters["tensors"] = static_cast<double>(ck.tensors.size());
  state.counters["shards"] = static_cast<double>(ck.shards.size());
  state.counters["data_GB"] = static_cast<double>(ck.data_bytes) / 1e9;
  state.counters["header_bytes_read"] = static_cast<double>(ck.bytes_read);
  state.SetLabel(std::to_string(params) + " params");
}
BENCHMARK(BM_ReadSafetensorsDir_Llama405B_191Shards)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same checkpoint read shard after shard on one thread, through the public pieces: what the thread pool
// in read_safetensors_dir saves.
void BM_ReadSafetensorsShardsSequential_Llama405B(benchmark::State& state) {
  auto& f = fixture();
  const std::string index_path = f.dir + "/model.safetensors.index.json";
  uint64_t params = 0;
  for (auto _ : state) {
    std::ifstream in(index_path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const SafetensorsIndex index = parse_safetensors_index(text, index_path);
    std::vector<SafetensorsHeader> headers;
    headers.reserve(f.shards.size());
    for (const auto& s : f.shards) headers.push_back(read_safetensors_file(f.dir + "/" + s.file));
    auto ck = merge_safetensors_shards(std::move(headers), &index);
    params = params_of(ck.tensors);
  }
  if (params != kLlama31_405BParams) state.SkipWithError("wrong count");
  state.SetLabel(std::to_string(params) + " params");
}
BENCHMARK(BM_ReadSafetensorsShardsSequential_Llama405B)->Unit(benchmark::kMillisecond)->UseRealTime();

// One shard of the 191: open, two preads, parse, validate.
void BM_ReadSafetensorsFile_OneShard(benchmark::State& state) {
  auto& f = fixture();
  const std::string path = f.dir + "/" + f.shards[1].file;
  SafetensorsHeader h;
  for (auto _ : state) {
    h = read_safetensors_file(path);
    benchmark::DoNotOptimize(h.tensors.data());
  }
  state.counters["tensors"] = static_cast<double>(h.tensors.size());
  state.counters["header_bytes"] = static_cast<double>(h.header_bytes);
}
BENCHMARK(BM_ReadSafetensorsFile_OneShard)->Unit(benchmark::kMicrosecond);

// All 1,137 tensors in one file: the header is ~150 KB of JSON, the data section ~812 GB of hole.
void BM_ReadSafetensorsFile_AllTensorsOneFile(benchmark::State& state) {
  auto& f = fixture();
  SafetensorsHeader h;
  for (auto _ : state) {
    h = read_safetensors_file(f.one_file);
    benchmark::DoNotOptimize(h.tensors.data());
  }
  const uint64_t params = params_of(h.tensors);
  if (params != kLlama31_405BParams) state.SkipWithError("wrong count");
  state.counters["params"] = benchmark::Counter(static_cast<double>(params));
  state.counters["tensors"] = static_cast<double>(h.tensors.size());
  state.counters["header_bytes"] = static_cast<double>(h.header_bytes);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * (8 + h.header_bytes)));
  state.SetLabel(std::to_string(params) + " params");
}
BENCHMARK(BM_ReadSafetensorsFile_AllTensorsOneFile)->Unit(benchmark::kMillisecond);

// The same header from memory: parsing and validation alone, no system calls.
void BM_ParseSafetensorsHeader_AllTensorsInMemory(benchmark::State& state) {
  auto& f = fixture();
  const std::string head = safetensors_prefix(safetensors_header_json(f.tensors));
  const uint64_t header_bytes = head.size() - 8;
  // A memory source must hold the whole file, so describe the tensors as zero-size here (same JSON work).
  std::vector<FakeTensor> empty = f.tensors;
  for (auto& t : empty) t.shape.insert(t.shape.begin(), 0);
  const auto bytes = safetensors_bytes(empty);
  for (auto _ : state) {
    auto src = memory_source("mem.safetensors", bytes);
    auto h = read_safetensors(*src);
    benchmark::DoNotOptimize(h.tensors.data());
  }
  state.counters["header_bytes"] = static_cast<double>(header_bytes);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
}
BENCHMARK(BM_ParseSafetensorsHeader_AllTensorsInMemory)->Unit(benchmark::kMillisecond);

// A hostile header: n zero-size tensors (200,000 make an 11 MB header). The parse is linear: twice n takes about
// twice the time (tests/unit/test_safetensors.cpp asserts it on the parser's counted work instead of a clock).
void BM_ParseSafetensorsHeader_ManyZeroSizeTensors(benchmark::State& state) {
  const auto n = static_cast<int>(state.range(0));
  std::vector<FakeTensor> tensors;
  for (int i = 0; i < n; ++i) tensors.push_back({"t" + std::to_string(i), "U8", {0}});
  const auto bytes = safetensors_bytes(tensors);
  uint64_t steps = 0;
  for (auto _ : state) {
    auto src = memory_source("many.safetensors", bytes);
    auto h = read_safetensors(*src);
    steps = h.parse_steps;
    benchmark::DoNotOptimize(h.tensors.data());
  }
  state.counters["parse_steps"] = static_cast<double>(steps);
  state.SetComplexityN(n);
}
BENCHMARK(BM_ParseSafetensorsHeader_ManyZeroSizeTensors)->RangeMultiplier(2)->Range(25000, 200000)->Unit(benchmark::kMillisecond)->Complexity();

}  // namespace

BENCHMARK_MAIN();
