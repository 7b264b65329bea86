// GGUF reader: valid files of both versions, metadata of every value type, tensor sizes derived independently
// from ggml's block structs (by the fixture writer's own table), progressive reading, and hostile input.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "fixtures/gguf_writer.hpp"
#include "llmem/byte_source.hpp"
#include "llmem/error.hpp"
#include "llmem/gguf.hpp"

using namespace llmem;
using namespace llmem::fixtures;
namespace fs = std::filesystem;

namespace {

using V = GgufValue;

// A temp directory unique to one test.
fs::path temp_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path d = fs::path(::testing::TempDir()) / (std::string("llmem_gguf_") + info->test_suite_name() + "_" + info->name());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

GgufFile parse(const std::vector<uint8_t>& bytes, const std::string& name = "model.gguf") {
  auto src = memory_source(name, bytes);
  return read_gguf(*src);
}

// Parses `bytes` as "hostile.gguf", expects an Error of kind kInvalidInput whose message names the file and
// contains `needle`; returns the message ("" when nothing was thrown).
std::string expect_error(const std::vector<uint8_t>& bytes, const std::string& needle) {
  const std::string name = "hostile.gguf";
  auto src = memory_source(name, bytes);
  try {
    read_gguf(*src);
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput) << msg;
    EXPECT_EQ(e.where(), name) << msg;
    EXPECT_EQ(msg.rfind(name + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg << "\nexpected to contain: " << needle;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    return msg;
  }
  ADD_FAILURE() << "no error; expected one containing: " << needle;
  return "";
}

uint64_t pad32(uint64_t x) { return (x + 31) / 32 * 32; }

std::vector<std::string> make_tokens(size_t n) {
  std::vector<std::string> t;
  for (size_t i = 0; i < n; ++i) t.push_back("tok" + std::to_string(i));
  return t;
}

// A small but complete llama-like file: every metadata type, a vocabulary, tensors of several types.
GgufWriter rich_file(uint32_t version = 3) {
  GgufWriter w(version);
  w.kv("general.architecture", V::string("llama"))
      .kv("general.name", V::string("tiny ✓ model"))
      .kv("llama.block_count", V::u32(1))
      .kv("llama.context_length", V::u64(1ull << 40))
      .kv("llama.embedding_length", V::u32(256))
      .kv("llama.attention.layer_norm_rms_epsilon", V::f32(1e-5f))
      .kv("llama.rope.freq_base", V::f64(500000.0))
      .kv("t.u8", V::u8(200))
      .kv("t.i8", V::i8(-100))
      .kv("t.u16", V::u16(60000))
      .kv("t.i16", V::i16(-30000))
      .kv("t.u32", V::u32(4000000000u))
      .kv("t.i32", V::i32(-2000000000))
      .kv("t.f32", V::f32(0.5f))
      .kv("t.bool", V::boolean(true))
      .kv("t.bool_false", V::boolean(false))
      .kv("t.u64", V::u64(UINT64_MAX))
      .kv("t.i64", V::i64(-(1ll << 40)))
      .kv("t.i64_positive", V::i64(7))
      .kv("t.f64", V::f64(-2.25))
      .kv("t.empty_string", V::string(""))
      .kv("t.empty_array", V::array(GgufType::U32, {}))
      .kv("t.nested", V::array(GgufType::ARRAY, {V::u32s({1, 2}), V::u32s({3}), V::u32s({})}))
      .kv("t.nested_strings", V::array(GgufType::ARRAY, {V::strings({"a", "b"}), V::strings({})}))
      .kv("t.bools", V::array(GgufType::BOOL, {V::boolean(true), V::boolean(false)}))
      .kv("t.i16s", V::array(GgufType::I16, {V::i16(-1), V::i16(2)}))
      .kv("t.u32s_64", V::u32s(std::vector<uint32_t>(64, 9)))
      .kv("t.u32s_65", V::u32s(std::vector<uint32_t>(65, 9)))
      .kv("tokenizer.ggml.model", V::string("gpt2"))
      .kv("tokenizer.ggml.tokens", V::strings(make_tokens(1000)))
      .kv("tokenizer.ggml.scores", V::f32s(std::vector<float>(1000, -1.0f)))
      .kv("tokenizer.ggml.merges", V::strings({"t o", "k 1"}));
  w.tensor("token_embd.weight", {256, 1000}, ggml::Q4_K)
      .tensor("blk.0.attn_norm.weight", {256}, ggml::F32)
      .tensor("blk.0.attn_q.weight", {256, 256}, ggml::Q6_K)
      .tensor("blk.0.attn_k.weight", {256, 10}, ggml::BF16)
      .tensor("blk.0.ffn_up.weight", {256, 64}, ggml::Q8_0)
      .tensor("blk.0.ffn_down.weight", {64, 256}, ggml::Q4_0)
      .tensor("blk.0.ffn_gate_exps.weight", {64, 32, 4}, ggml::MXFP4)
      .tensor("blk.0.four_d", {2, 3, 4, 5}, ggml::F32)
      .tensor("output.weight", {256, 1000}, ggml::F16);
  return w;
}

// A few hundred bytes: two key-values, two tensors; used for byte-by-byte truncation.
GgufWriter small_file() {
  GgufWriter w;
  w.kv("general.architecture", V::string("llama"))
      .kv("tokenizer.ggml.tokens", V::strings({"a", "b", "c"}))
      .kv("t.nested", V::array(GgufType::ARRAY, {V::u32s({1, 2})}))
      .kv("t.f32", V::f32(1.5f));
  w.tensor("a", {32, 2}, ggml::Q8_0).tensor("b", {3}, ggml::F32);
  return w;
}

// A ByteSource wrapper that records the largest single read, to check the reader works in bounded windows.
class CountingSource final : public ByteSource {
 public:
  explicit CountingSource(std::unique_ptr<ByteSource> inner) : inner_(std::move(inner)) {}
  const std::string& name() const override { return inner_->name(); }
  uint64_t size() const override { return inner_->size(); }
  uint64_t bytes_read() const override { return inner_->bytes_read(); }
  std::vector<uint8_t> read(uint64_t offset, uint64_t len) override {
    max_read = std::max(max_read, len);
    ++reads;
    return inner_->read(offset, len);
  }
  uint64_t max_read = 0;
  uint64_t reads = 0;

 private:
  std::unique_ptr<ByteSource> inner_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Valid files

TEST(GgufRead, V3WithEveryValueTypeAndSeveralTensorTypes) {
  GgufWriter w = rich_file();
  auto bytes = w.bytes();
  GgufFile g = parse(bytes);
  EXPECT_EQ(g.file, "model.gguf");
  EXPECT_EQ(g.version, 3u);
  EXPECT_EQ(g.alignment, 32u);
  EXPECT_EQ(g.architecture(), "llama");

  // Scalars of every type.
  const auto& m = g.metadata;
  EXPECT_EQ(m["t.u8"], 200);
  EXPECT_EQ(m["t.i8"], -100);
  EXPECT_EQ(m["t.u16"], 60000);
  EXPECT_EQ(m["t.i16"], -30000);
  EXPECT_EQ(m["t.u32"], 4000000000u);
  EXPECT_EQ(m["t.i32"], -2000000000);
  EXPECT_EQ(m["t.f32"], 0.5);
  EXPECT_EQ(m["t.bool"], true);
  EXPECT_EQ(m["t.bool_false"], false);
  EXPECT_EQ(m["t.u64"].get<uint64_t>(), UINT64_MAX);
  EXPECT_EQ(m["t.i64"].get<int64_t>(), -(1ll << 40));
  EXPECT_EQ(m["t.f64"], -2.25);
  EXPECT_EQ(m["t.empty_string"], "");
  EXPECT_EQ(m["general.name"], "tiny ✓ model");
  // Arrays: short ones kept (nested too), long ones summarised.
  EXPECT_EQ(m["t.empty_array"], nlohmann::json::array());
  EXPECT_EQ(m["t.nested"], nlohmann::json::parse("[[1,2],[3],[]]"));
  EXPECT_EQ(m["t.nested_strings"], nlohmann::json::parse(R"([["a","b"],[]])"));
  EXPECT_EQ(m["t.bools"], nlohmann::json::parse("[true,false]"));
  EXPECT_EQ(m["t.i16s"], nlohmann::json::parse("[-1,2]"));
  EXPECT_EQ(m["t.u32s_64"].size(), 64u);
  EXPECT_EQ(m["t.u32s_65"], nlohmann::json::parse(R"({"type":"uint32","count":65})"));
  EXPECT_EQ(m["tokenizer.ggml.tokens"], nlohmann::json::parse(R"({"type":"string","count":1000})"));
  EXPECT_EQ(m["tokenizer.ggml.scores"], nlohmann::json::parse(R"({"type":"float32","count":1000})"));
  EXPECT_EQ(m["tokenizer.ggml.merges"], nlohmann::json::parse(R"(["t o","k 1"])"));
  EXPECT_EQ(m.size(), 32u);
  // Every top-level array's length, kept or not.
  EXPECT_EQ(g.array_lengths.at("tokenizer.ggml.tokens"), 1000u);
  EXPECT_EQ(g.array_lengths.at("tokenizer.ggml.scores"), 1000u);
  EXPECT_EQ(g.array_lengths.at("tokenizer.ggml.merges"), 2u);
  EXPECT_EQ(g.array_lengths.at("t.nested"), 3u);
  EXPECT_EQ(g.array_lengths.at("t.empty_array"), 0u);
  EXPECT_EQ(g.array_lengths.at("t.u32s_65"), 65u);
  EXPECT_EQ(g.array_lengths.size(), 10u);
  EXPECT_FALSE(g.array_lengths.count("general.name"));

  // Tensors: shapes reversed from ne[], bytes from ggml's block sizes written out by hand here.
  struct Expect {
    const char* name;
    std::vector<uint64_t> shape;
    DType dtype;
    uint64_t bytes;
  };
  const std::vector<Expect> expect = {
      {"token_embd.weight", {1000, 256}, DType::Q4_K, 1000 * 256 / 256 * 144},
      {"blk.0.attn_norm.weight", {256}, DType::F32, 256 * 4},
      {"blk.0.attn_q.weight", {256, 256}, DType::Q6_K, 256 * 256 / 256 * 210},
      {"blk.0.attn_k.weight", {10, 256}, DType::BF16, 10 * 256 * 2},
      {"blk.0.ffn_up.weight", {64, 256}, DType::Q8_0, 64 * 256 / 32 * 34},
      {"blk.0.ffn_down.weight", {256, 64}, DType::Q4_0, 256 * 64 / 32 * 18},
      {"blk.0.ffn_gate_exps.weight", {4, 32, 64}, DType::MXFP4, 4 * 32 * 64 / 32 * 17},
      {"blk.0.four_d", {5, 4, 3, 2}, DType::F32, 120 * 4},
      {"output.weight", {1000, 256}, DType::F16, 1000 * 256 * 2},
  };
  ASSERT_EQ(g.tensors.size(), expect.size());
  uint64_t offset = 0, total = 0;
  for (size_t i = 0; i < expect.size(); ++i) {
    const auto& t = g.tensors[i];
    SCOPED_TRACE(expect[i].name);
    EXPECT_EQ(t.name, expect[i].name);
    EXPECT_EQ(t.shape, expect[i].shape);
    EXPECT_EQ(t.dtype, expect[i].dtype);
    EXPECT_EQ(t.data_bytes, expect[i].bytes);
    EXPECT_EQ(t.offset_bytes, offset);
    EXPECT_EQ(t.file, "model.gguf");
    offset = pad32(offset + expect[i].bytes);
    total += expect[i].bytes;
  }
  EXPECT_EQ(g.tensor_data_bytes, total);
  EXPECT_EQ(g.tensor_data_bytes, 144000u + 1024 + 53760 + 5120 + 17408 + 9216 + 4352 + 480 + 512000);
  EXPECT_EQ(g.data_offset, pad32(w.header().size()));
  EXPECT_EQ(g.data_offset + offset, bytes.size());  // the writer pads after the last tensor too
}

TEST(GgufRead, V2) {
  GgufWriter w = rich_file(2);
  GgufFile g = parse(w.bytes());
  EXPECT_EQ(g.version, 2u);
  EXPECT_EQ(g.tensors.size(), 9u);
  EXPECT_EQ(g.array_lengths.at("tokenizer.ggml.tokens"), 1000u);
  EXPECT_EQ(g.tensors[0].data_bytes, 144000u);
}

TEST(GgufRead, CustomAlignment) {
  for (uint32_t a : {1u, 8u, 64u, 4096u}) {
    SCOPED_TRACE(a);
    GgufWriter w;
    w.alignment(a).kv("general.architecture", V::string("qwen2"));
    w.tensor("a", {3}, ggml::F32).tensor("b", {5}, ggml::F16).tensor("c", {32}, ggml::Q4_0);
    auto bytes = w.bytes();
    GgufFile g = parse(bytes);
    EXPECT_EQ(g.alignment, a);
    EXPECT_EQ(g.metadata["general.alignment"], a);
    EXPECT_EQ(g.data_offset % a, 0u);
    EXPECT_EQ(g.data_offset, (w.header().size() + a - 1) / a * a);
    auto up = [a](uint64_t x) { return (x + a - 1) / a * a; };
    EXPECT_EQ(g.tensors[0].offset_bytes, 0u);
    EXPECT_EQ(g.tensors[1].offset_bytes, up(12));
    EXPECT_EQ(g.tensors[2].offset_bytes, up(up(12) + 10));
    EXPECT_EQ(g.tensor_data_bytes, 12u + 10 + 18);
  }
}

TEST(GgufRead, FileWithoutTensorsOrPadding) {
  GgufWriter w;
  w.kv("general.architecture", V::string("llama"));
  auto bytes = w.bytes();
  GgufFile g = parse(bytes);
  EXPECT_TRUE(g.tensors.empty());
  EXPECT_EQ(g.data_offset, bytes.size());
  EXPECT_EQ(g.tensor_data_bytes, 0u);
}

TEST(GgufRead, LastTensorNeedNotBePadded) {
  GgufWriter w = small_file();
  w.pad_after_last_tensor(false);
  auto bytes = w.bytes();
  GgufFile g = parse(bytes);
  EXPECT_EQ(g.data_offset + g.tensors.back().offset_bytes + g.tensors.back().data_bytes, bytes.size());
}

TEST(GgufRead, ZeroSizedDimensionIsAcceptedAsLlamaCppDoes) {
  // llama.cpp only rejects negative dimensions; a zero-element tensor takes no bytes.
  GgufWriter w;
  w.tensor("empty", {0, 4}, ggml::F32).tensor("after", {8}, ggml::F32).tensor("scalar", {}, ggml::F32);
  GgufFile g = parse(w.bytes());
  EXPECT_EQ(g.tensors[0].shape, (std::vector<uint64_t>{4, 0}));
  EXPECT_EQ(g.tensors[0].data_bytes, 0u);
  EXPECT_EQ(g.tensors[1].offset_bytes, 0u);
  EXPECT_EQ(g.tensors[2].shape, std::vector<uint64_t>{});
  EXPECT_EQ(g.tensors[2].data_bytes, 4u);
  EXPECT_EQ(g.tensors[2].offset_bytes, 32u);
}

TEST(GgufRead, GettersTypedAndNamingTheKey) {
  GgufFile g = parse(rich_file().bytes());
  EXPECT_EQ(g.get_uint("llama.block_count"), 1u);
  EXPECT_EQ(g.get_uint("llama.context_length"), 1ull << 40);
  EXPECT_EQ(g.get_uint("t.i64_positive"), 7u);  // a non-negative signed integer is fine
  EXPECT_FLOAT_EQ(static_cast<float>(*g.get_float("llama.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_EQ(g.get_float("llama.rope.freq_base"), 500000.0);
  EXPECT_EQ(g.get_float("llama.block_count"), 1.0);  // integers read as floats
  EXPECT_EQ(g.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_FALSE(g.get_uint("no.such.key").has_value());
  EXPECT_FALSE(g.get_string("no.such.key").has_value());
  EXPECT_EQ(g.require_uint("llama.embedding_length"), 256u);
  EXPECT_EQ(g.require_string("general.architecture"), "llama");

  auto expect_throw = [](auto&& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected " << needle;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
      EXPECT_EQ(e.where(), "model.gguf");
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  expect_throw([&] { (void)g.get_uint("general.architecture"); }, "key 'general.architecture' should be an unsigned integer but is a string");
  expect_throw([&] { (void)g.get_uint("t.i8"); }, "key 't.i8' should be a non-negative integer but is -100");
  expect_throw([&] { (void)g.get_uint("t.f32"); }, "key 't.f32'");
  expect_throw([&] { (void)g.get_uint("t.bool"); }, "key 't.bool'");
  expect_throw([&] { (void)g.get_float("t.bool"); }, "key 't.bool' should be a number but is a bool");
  expect_throw([&] { (void)g.get_string("llama.block_count"); }, "key 'llama.block_count' should be a string but is an integer");
  expect_throw([&] { (void)g.get_string("tokenizer.ggml.tokens"); }, "is an array of 1000 elements");
  expect_throw([&] { (void)g.get_uint("t.nested"); }, "key 't.nested'");
  expect_throw([&] { (void)g.require_uint("llama.expert_count"); }, "key 'llama.expert_count' is missing");
  expect_throw([&] { (void)g.require_float("x.y"); }, "key 'x.y' is missing");
  expect_throw([&] { (void)g.require_string("x.z"); }, "key 'x.z' is missing");
}

TEST(GgufRead, ArchitectureEmptyWhenAbsent) {
  GgufWriter w;
  w.kv("general.name", V::string("x"));
  EXPECT_EQ(parse(w.bytes()).architecture(), "");
}

TEST(GgufRead, LongStringIsSummarisedAndSkippedUnread) {
  // tokenizer.huggingface.json embeds a whole tokenizer.json: llmem neither keeps nor reads it.
  GgufWriter w;
  w.kv("general.architecture", V::string("llama"))
      .kv("tokenizer.huggingface.json", V::string(std::string(3u << 20, 'x')))
      .kv("general.name", V::string("after"));
  w.tensor("a", {4}, ggml::F32);
  auto counting = std::make_unique<CountingSource>(memory_source("big.gguf", w.bytes()));
  GgufFile g = read_gguf(*counting);
  EXPECT_EQ(g.metadata["tokenizer.huggingface.json"], nlohmann::json::parse(R"({"type":"string","bytes":3145728})"));
  EXPECT_EQ(g.get_string("general.name"), "after");
  EXPECT_LT(counting->bytes_read(), 512u << 10);
  try {
    (void)g.get_string("tokenizer.huggingface.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("3145728-byte string"), std::string::npos) << e.what();
  }
}

TEST(GgufRead, FromFileProgressivelyNeverTheData) {
  // A 3.3 GB model whose data section is a hole in a sparse file; a 150k-token vocabulary makes the header
  // about 2 MB, read in windows of at most 1 MiB.
  GgufWriter w;
  w.kv("general.architecture", V::string("llama")).kv("tokenizer.ggml.tokens", V::strings(make_tokens(150000)));
  w.tensor("token_embd.weight", {4096, 150000}, ggml::F32).tensor("output.weight", {4096, 100000}, ggml::F16);
  fs::path p = temp_dir() / "sparse.gguf";
  w.write_file(p.string());
  ASSERT_EQ(fs::file_size(p), w.file_bytes());
  ASSERT_GT(w.file_bytes(), 3ull << 30);

  auto counting = std::make_unique<CountingSource>(open_file_source(p.string()));
  GgufFile g = read_gguf(*counting);
  EXPECT_EQ(g.file, p.string());
  EXPECT_EQ(g.array_lengths.at("tokenizer.ggml.tokens"), 150000u);
  EXPECT_EQ(g.tensors[0].data_bytes, 4096ull * 150000 * 4);
  EXPECT_EQ(g.tensors[1].data_bytes, 4096ull * 100000 * 2);
  EXPECT_EQ(g.tensors[1].offset_bytes, 4096ull * 150000 * 4);  // already a multiple of 32
  EXPECT_EQ(g.data_offset, pad32(w.header().size()));
  EXPECT_LE(counting->max_read, 1u << 20);
  EXPECT_LE(counting->bytes_read(), g.data_offset + (1u << 20));  // the header plus at most one read-ahead

  GgufFile again = read_gguf_file(p.string());
  EXPECT_EQ(again.tensor_data_bytes, g.tensor_data_bytes);
}

TEST(GgufRead, MissingFileIsNotFound) {
  try {
    read_gguf_file((temp_dir() / "absent.gguf").string());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Hostile input

TEST(GgufHostile, TruncatedAtEveryByteIsACleanError) {
  for (bool with_tensors : {true, false}) {
    GgufWriter w = small_file();
    if (!with_tensors) w = GgufWriter().kv("a.b", V::strings({"x", "yy"})).kv("c", V::u64(3));
    auto full = w.bytes();
    GgufFile g = parse(full);
    uint64_t data_end = with_tensors ? g.data_offset + g.tensors.back().offset_bytes + g.tensors.back().data_bytes : full.size();
    for (size_t n = 0; n < full.size(); ++n) {
      SCOPED_TRACE(n);
      std::vector<uint8_t> prefix(full.begin(), full.begin() + static_cast<ptrdiff_t>(n));
      if (n < data_end) {
        expect_error(prefix, "truncated");
      } else {
        EXPECT_NO_THROW(parse(prefix));  // only the padding after the last tensor is missing
      }
    }
  }
}

TEST(GgufHostile, BadMagic) {
  expect_error(GgufWriter().magic("GGML").bytes(), "not a GGUF file: magic is 'GGML'");
  expect_error(GgufWriter().magic(std::string("\0\1GU", 4)).bytes(), "magic is '??GU'");
  expect_error({}, "truncated file: the magic");
}

TEST(GgufHostile, Versions) {
  expect_error(GgufWriter(1).bytes(), "unsupported GGUF version 1");
  expect_error(GgufWriter(0).bytes(), "bad GGUF version 0");
  expect_error(GgufWriter(4).bytes(), "unsupported GGUF version 4");
  expect_error(GgufWriter(0x03000000).bytes(), "big-endian");
  expect_error(GgufWriter(0x02000000).bytes(), "0x02000000");
}

TEST(GgufHostile, ImplausibleCounts) {
  expect_error(GgufWriter().counts(std::nullopt, 1ull << 40).bytes(), "kv_count 1099511627776 is implausible");
  expect_error(GgufWriter().counts(std::nullopt, UINT64_MAX).bytes(), "kv_count");
  expect_error(GgufWriter().counts(1ull << 62, std::nullopt).bytes(), "tensor_count 4611686018427387904 exceeds");
  expect_error(GgufWriter().counts(UINT64_MAX, UINT64_MAX).bytes(), "kv_count");
  // Plausible for the file at first sight, but more than what follows the metadata.
  GgufWriter w = small_file();
  w.counts(10, std::nullopt);
  expect_error(w.bytes(), "tensor_count 10 is implausible");
  // One key-value more than the file holds: the reader runs out of bytes in the tensor infos.
  GgufWriter w2 = small_file();
  w2.counts(std::nullopt, 5);
  expect_error(w2.bytes(), "hostile.gguf: ");
}

TEST(GgufHostile, Strings) {
  // A string length far past the end of the file.
  GgufBytes kv;
  kv.str("general.name").u32(8).u64(1ull << 60);
  expect_error(GgufWriter().kv_raw(kv).bytes(), "key 'general.name': string length");
  GgufBytes kv_max;
  kv_max.str("general.name").u32(8).u64(UINT64_MAX);
  expect_error(GgufWriter().kv_raw(kv_max).bytes(), "string length 18446744073709551615 exceeds the limit");
  GgufBytes kv_past;
  kv_past.str("general.name").u32(8).u64(1000).raw("abc");
  expect_error(GgufWriter().kv_raw(kv_past).bytes(), "truncated file: string length 1000");
  // A key longer than the spec's 65535 bytes, all of it present.
  expect_error(GgufWriter().kv(std::string(70000, 'k'), V::u8(1)).bytes(), "key length 70000 exceeds the limit of 65535");
  // (Trailing bytes keep the kv_count plausible, so that the field itself is what fails.)
  auto padded = [](std::vector<uint8_t> b) {
    b.resize(b.size() + 64, 0);
    return b;
  };
  GgufBytes huge_key;
  huge_key.u64(1ull << 62);
  expect_error(padded(GgufWriter().kv_raw(huge_key).kv("x", V::u8(0)).bytes()), "key-value #0: key length 4611686018427387904 exceeds");
  expect_error(padded(GgufWriter().kv("", V::u8(1)).bytes()), "key-value #0: key is empty");
  expect_error(GgufWriter().kv("a.b", V::u8(1)).kv("a.b", V::u8(2)).bytes(), "duplicate key 'a.b'");
  expect_error(GgufWriter().kv("ok", V::u8(1)).kv("bad\xff", V::u8(1)).bytes(), "key-value #1: key is not valid UTF-8");
  expect_error(GgufWriter().kv("k", V::string("\xc0\x80")).bytes(), "key 'k': a string value is not valid UTF-8");
  expect_error(GgufWriter().kv("k", V::strings({"ok", "\xed\xa0\x80"})).bytes(), "not valid UTF-8");
}

TEST(GgufHostile, ValueTypes) {
  GgufBytes bad_type;
  bad_type.str("k").u32(13).u32(0);
  expect_error(GgufWriter().kv_raw(bad_type).bytes(), "key 'k': value type 13 is not a GGUF value type");
  GgufBytes bad_elem;
  bad_elem.str("k").u32(9).u32(200).u64(0);
  expect_error(GgufWriter().kv_raw(bad_elem).bytes(), "key 'k': array element type 200");
  // Inside an array too long to keep, element types are still checked.
  std::vector<GgufValue> inner(100, V::array(GgufType::U8, {}));
  GgufBytes skipped;
  skipped.str("k").u32(9).u32(9).u64(70);
  for (int i = 0; i < 69; ++i) skipped.u32(0).u64(0);
  skipped.u32(77).u64(0);
  expect_error(GgufWriter().kv_raw(skipped).bytes(), "array element type 77");
  EXPECT_NO_THROW(parse(GgufWriter().kv("k", V::array(GgufType::ARRAY, inner)).bytes()));
}

TEST(GgufHostile, ArrayCounts) {
  GgufBytes u8s;
  u8s.str("k").u32(9).u32(0).u64(1ull << 40);
  expect_error(GgufWriter().kv_raw(u8s).bytes(), "exceeds the limit");
  GgufBytes u8s_small;
  u8s_small.str("k").u32(9).u32(0).u64(100000).raw("abc");
  expect_error(GgufWriter().kv_raw(u8s_small).bytes(), "key 'k': truncated or corrupt file: an array of 100000 uint8");
  GgufBytes strings;
  strings.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(1u << 29);
  strings.u64(1).raw("a");
  expect_error(GgufWriter().kv_raw(strings).bytes(), "an array of 536870912 string needs at least");
  GgufBytes arrays;
  arrays.str("k").u32(9).u32(9).u64(1000).u32(0).u64(0);
  expect_error(GgufWriter().kv_raw(arrays).bytes(), "an array of 1000 array");
  // A vocabulary whose strings run past the end of the file, in an array too long to keep.
  GgufBytes vocab;
  vocab.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(100);
  for (int i = 0; i < 99; ++i) vocab.str("t");
  vocab.u64(1u << 29);
  for (int i = 0; i < 10; ++i) vocab.u64(0);
  expect_error(GgufWriter().kv_raw(vocab).bytes(), "key 'tokenizer.ggml.tokens': truncated file: string length 536870912");
}

TEST(GgufHostile, NestingDepth) {
  auto nest = [](int levels) {
    GgufValue v = V::u32s({1});
    for (int i = 1; i < levels; ++i) v = V::array(GgufType::ARRAY, {v});
    return v;
  };
  EXPECT_NO_THROW(parse(GgufWriter().kv("k", nest(kGgufMaxArrayDepth)).bytes()));
  expect_error(GgufWriter().kv("k", nest(kGgufMaxArrayDepth + 1)).bytes(), "arrays nested more than 8 deep");
  // Deep nesting inside an array that is not kept is refused as well.
  std::vector<GgufValue> many(70, nest(3));
  many.push_back(nest(kGgufMaxArrayDepth));
  expect_error(GgufWriter().kv("k", V::array(GgufType::ARRAY, many)).bytes(), "nested more than");
}

TEST(GgufHostile, Alignment) {
  expect_error(GgufWriter().alignment(0).bytes(), "general.alignment 0 is not a power of two");
  expect_error(GgufWriter().kv("general.alignment", V::u32(3)).bytes(), "general.alignment 3 is not a power of two");
  expect_error(GgufWriter().kv("general.alignment", V::u32(96)).bytes(), "not a power of two");
  expect_error(GgufWriter().kv("general.alignment", V::u64(32)).bytes(), "general.alignment must be a uint32 but is a uint64");
  expect_error(GgufWriter().kv("general.alignment", V::string("32")).bytes(), "must be a uint32");
  // A huge alignment pushes the data section past the end of the file.
  GgufWriter w;
  w.kv("general.alignment", V::u32(1u << 31)).tensor("a", {4}, ggml::F32);
  auto b = w.header();
  b.resize(b.size() + 64);
  expect_error(b, "truncated file: the tensor data section would start at byte 2147483648");
}

TEST(GgufHostile, Dimensions) {
  GgufBytes five;
  five.str("t5").u32(5);
  for (int i = 0; i < 5; ++i) five.u64(2);
  five.u32(ggml::F32).u64(0);
  expect_error(GgufWriter().tensor_raw(five).bytes(), "tensor 't5': has 5 dimensions; GGUF allows at most 4");
  GgufBytes big_ndims;
  big_ndims.str("t").u32(UINT32_MAX).u64(1).u32(0).u64(0);
  expect_error(GgufWriter().tensor_raw(big_ndims).bytes(), "4294967295 dimensions");

  expect_error(GgufWriter().tensor("neg", {4, 1ull << 63}, ggml::F32).bytes(),
               "tensor 'neg': dimension 1 is negative (-9223372036854775808)");
  expect_error(GgufWriter().tensor("ovf", {1ull << 32, 1ull << 32}, ggml::F32).bytes(), "tensor 'ovf': element count overflows");
  expect_error(GgufWriter().tensor("ovf", {1ull << 62, 2}, ggml::F32).bytes(), "element count overflows");
  // an empty tensor whose other dimensions multiply past 2^63 (found by fuzz_gguf): refused, in either order
  expect_error(GgufWriter().tensor("ovf", {0, 1ull << 40, 1ull << 40}, ggml::F32).bytes(), "element count overflows");
  expect_error(GgufWriter().tensor("ovf", {1ull << 40, 1ull << 40, 0}, ggml::F32).bytes(), "element count overflows");
  expect_error(GgufWriter().tensor("ovf", {1ull << 62}, ggml::F32).bytes(), "tensor 'ovf': size in bytes");
}

TEST(GgufHostile, TypeIds) {
  for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 40u, 200u, UINT32_MAX}) {
    SCOPED_TRACE(id);
    GgufWriter w;
    w.tensor(GgufTensorSpec{"blk.0.w", {32}, id, std::nullopt, 32});
    expect_error(w.bytes(), "tensor 'blk.0.w': unknown or removed ggml type id " + std::to_string(id));
  }
  // A row must be whole blocks even when the tensor as a whole is.
  expect_error(GgufWriter().tensor("q", {128, 2}, ggml::Q4_K).bytes(),
               "tensor 'q': rows of 128 elements are not a whole number of Q4_K blocks (256 elements each)");
  expect_error(GgufWriter().tensor("q", {33}, ggml::Q8_0).bytes(), "Q8_0 blocks");
}

TEST(GgufHostile, Offsets) {
  auto two = [](std::optional<uint64_t> second_offset) {
    GgufWriter w;
    w.tensor("first", {16}, ggml::F32);  // 64 bytes
    w.tensor(GgufTensorSpec{"second", {16}, ggml::F32, second_offset, std::nullopt});
    return w;
  };
  EXPECT_NO_THROW(parse(two(64).bytes()));
  expect_error(two(80).bytes(), "tensor 'second': data offset 80 is not a multiple of the alignment 32");
  expect_error(two(0).bytes(), "tensor 'second': data offset 0 overlaps tensor 'first', which ends at 64");
  expect_error(two(32).bytes(), "overlaps tensor 'first'");
  expect_error(two(96).bytes(), "tensor 'second': data offset 96 leaves a gap: expected 64");
  GgufWriter first_off;
  first_off.tensor(GgufTensorSpec{"a", {4}, ggml::F32, 32, std::nullopt});
  expect_error(first_off.bytes(), "expected 0 for the first tensor");
  GgufWriter huge_off;
  huge_off.tensor(GgufTensorSpec{"a", {4}, ggml::F32, 0, std::nullopt});
  huge_off.tensor(GgufTensorSpec{"b", {4}, ggml::F32, UINT64_MAX - 31, std::nullopt});
  auto hb = huge_off.header();
  hb.resize(hb.size() + 256);
  expect_error(hb, "tensor 'b': data offset 18446744073709551584");
}

TEST(GgufHostile, TensorNames) {
  expect_error(GgufWriter().tensor("w", {4}, ggml::F32).tensor("w", {4}, ggml::F32).bytes(), "duplicate tensor name 'w'");
  expect_error(GgufWriter().tensor("", {4}, ggml::F32).bytes(), "tensor #0: name is empty");
  expect_error(GgufWriter().tensor(std::string(64, 'n'), {4}, ggml::F32).bytes(), "tensor #0: name length 64 exceeds the limit of 63");
  EXPECT_NO_THROW(parse(GgufWriter().tensor(std::string(63, 'n'), {4}, ggml::F32).bytes()));
  expect_error(GgufWriter().tensor("a\x80", {4}, ggml::F32).bytes(), "tensor #0: name is not valid UTF-8");
}

TEST(GgufHostile, DataPastEndOfFile) {
  GgufWriter w = small_file();
  auto full = w.bytes();
  GgufFile g = parse(full);
  auto cut = full;
  cut.resize(g.data_offset + g.tensors.back().offset_bytes + g.tensors.back().data_bytes - 1);
  expect_error(cut, "truncated file: tensor 'b' data ends at byte");
  // A 4 GiB tensor described by a 200-byte file.
  GgufWriter big;
  big.tensor("huge", {1u << 30}, ggml::F32);
  auto hb = big.header();
  hb.resize(hb.size() + 100);
  expect_error(hb, "truncated file: tensor 'huge' data ends at byte");
  // Padding before the data section missing.
  auto h = small_file().header();
  expect_error(h, "truncated file");
}

// ---------------------------------------------------------------------------------------------------------------
// Fuzz seeds: LLMEM_GGUF_SEED_DIR=tests/fuzz/corpus/gguf ./llmem_tests --gtest_filter=GgufSeeds.*

TEST(GgufSeeds, WriteWhenAsked) {
  const char* dir = std::getenv("LLMEM_GGUF_SEED_DIR");
  if (!dir) GTEST_SKIP() << "set LLMEM_GGUF_SEED_DIR to write the fuzz seeds";
  fs::create_directories(dir);
  write_bytes((fs::path(dir) / "small_v3.gguf").string(), small_file().bytes());
  GgufWriter v2(2);
  v2.alignment(64).kv("general.architecture", V::string("gpt2")).kv("t.nested", V::array(GgufType::ARRAY, {V::f32s({1, 2})}));
  v2.tensor("token_embd.weight", {32, 3}, ggml::Q4_0).tensor("output_norm.weight", {32}, ggml::F16);
  write_bytes((fs::path(dir) / "aligned_v2.gguf").string(), v2.bytes());
  GgufWriter types;
  types.kv("a", V::u8(1)).kv("b", V::i8(-1)).kv("c", V::u16(2)).kv("d", V::i16(-2)).kv("e", V::u32(3)).kv("f", V::i32(-3));
  types.kv("g", V::f32(1)).kv("h", V::boolean(true)).kv("i", V::string("s")).kv("j", V::u64(4)).kv("k", V::i64(-4));
  types.kv("l", V::f64(2)).kv("m", V::strings(make_tokens(70)));
  types.tensor("q4k", {256}, ggml::Q4_K).tensor("q6k", {256}, ggml::Q6_K).tensor("mx", {32}, ggml::MXFP4).tensor("z", {0}, ggml::BF16);
  write_bytes((fs::path(dir) / "every_type.gguf").string(), types.bytes());
  write_bytes((fs::path(dir) / "no_tensors.gguf").string(), GgufWriter().kv("general.architecture", V::string("llama")).bytes());
}
