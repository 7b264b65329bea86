// The safetensors reader: valid files and checkpoints, and every kind of hostile header it must refuse cleanly.
//
// Expected byte counts are worked out by hand from the format spec (bits per dtype × elements), and parameter
// counts of real layouts come from PyTorch (bench/data/transformers_params.jsonl, measured on the GPU machine).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "fixtures/safetensors_writer.hpp"
#include "llmem/error.hpp"
#include "llmem/safetensors.hpp"

using namespace llmem;
using namespace llmem::fixtures;

namespace {

constexpr const char* kMem = "mem.safetensors";

SafetensorsHeader read_bytes(const std::vector<uint8_t>& bytes, const std::string& name = kMem) {
  auto src = memory_source(name, bytes);
  return read_safetensors(*src);
}
SafetensorsHeader read_bytes(const std::string& bytes, const std::string& name = kMem) {
  return read_bytes(std::vector<uint8_t>(bytes.begin(), bytes.end()), name);
}
// A header text followed by `data_bytes` zeros, read from memory.
SafetensorsHeader read_header(const std::string& header_json, uint64_t data_bytes) {
  return read_bytes(raw_safetensors_bytes(header_json, data_bytes));
}

// `"name":{"dtype":..,"shape":..,"data_offsets":..}` with the values spliced in verbatim (so they can be wrong).
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

// Runs f, which must throw llmem::Error of `kind` naming `where`, whose message contains `cause`.
void expect_error_impl(const std::function<void()>& f, ErrorKind kind, const std::string& where, const std::string& cause) {
  try {
    f();
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(kind)) << what;
    EXPECT_EQ(e.where(), where) << what;
    EXPECT_EQ(what.rfind(where + ": ", 0), 0u) << "message does not start with the file: " << what;
    EXPECT_NE(what.find(cause), std::string::npos) << "expected '" << cause << "' in: " << what;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-llmem exception: " << e.what();
    return;
  }
  ADD_FAILURE() << "no error; expected one containing '" << cause << "'";
}
#define EXPECT_LLMEM_ERROR(stmt, kind, where, cause)                          \
  do {                                                                        \
    SCOPED_TRACE(#stmt);                                                      \
    expect_error_impl([&] { (void)(stmt); }, ErrorKind::kind, where, cause); \
  } while (0)

// Header errors on an in-memory file.
#define EXPECT_HEADER_ERROR(header_json, data_bytes, cause) \
  EXPECT_LLMEM_ERROR(read_header(header_json, data_bytes), kInvalidInput, kMem, cause)

uint64_t total_numel(const std::vector<TensorInfo>& ts) {
  uint64_t n = 0;
  for (const auto& t : ts) n += t.numel();
  return n;
}

// Bytes this process has read through read()/pread() so far, as the kernel counts them (rchar).
uint64_t process_rchar() {
  std::ifstream io("/proc/self/io");
  std::string key;
  uint64_t value;
  while (io >> key >> value)
    if (key == "rchar:") return value;
  return 0;
}

// One record of PyTorch's ground truth (bench/data/transformers_params.jsonl).
struct GroundTruth {
  uint64_t total_params = 0;
  uint64_t total_params_with_tied = 0;
  std::vector<FakeTensor> tensors;  // named_parameters() of the model: tied weights appear once
  std::vector<std::string> tied;
};
GroundTruth ground_truth(const std::string& config) {
  std::ifstream in(std::string(LLMEM_SOURCE_DIR) + "/bench/data/transformers_params.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.at("config") != config) continue;
    GroundTruth g;
    g.total_params = j.at("total_params").get<uint64_t>();
    g.total_params_with_tied = j.at("total_params_with_tied").get<uint64_t>();
    for (const auto& t : j.at("tensors"))
      g.tensors.push_back({t.at("name").get<std::string>(), "BF16", t.at("shape").get<std::vector<uint64_t>>()});
    for (const auto& t : j.at("tied")) g.tied.push_back(t.at("name").get<std::string>());
    return g;
  }
  throw std::runtime_error("no ground truth for " + config);
}

}  // namespace

// --- valid single files ------------------------------------------------------------------------------------

TEST(SafetensorsRead, SeveralDtypesHaveTheSpecsByteSizes) {
  // Bytes by hand: F32 [2,3] 24; F16 [4] 8; BF16 [3,5] 30; F8_E4M3 [7] 7; I64 [2] 16; BOOL [5] 5;
  // F4 [2,3] 6 elements at 2 per byte = 3; F6_E2M3 [4] 4 × 6 bits = 3; C64 [3] 3 × (2 × 4) = 24.
  std::vector<FakeTensor> ts = {
      {"w.f32", "F32", {2, 3}}, {"w.f16", "F16", {4}},    {"w.bf16", "BF16", {3, 5}}, {"w.f8", "F8_E4M3", {7}},
      {"w.i64", "I64", {2}},    {"w.bool", "BOOL", {5}}, {"w.f4", "F4", {2, 3}},     {"w.f6", "F6_E2M3", {4}},
      {"w.c64", "C64", {3}},
  };
  const uint64_t bytes[] = {24, 8, 30, 7, 16, 5, 3, 3, 24};
  const DType dtypes[] = {DType::F32, DType::F16, DType::BF16, DType::F8_E4M3,
                          DType::I64, DType::BOOL, DType::F4, DType::F6_E2M3, DType::C64};
  TempDir tmp;
  auto path = write_safetensors(tmp.file("model.safetensors"), ts);
  auto h = read_safetensors_file(path);
  EXPECT_EQ(h.file, path);
  ASSERT_EQ(h.tensors.size(), ts.size());
  uint64_t offset = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    SCOPED_TRACE(ts[i].name);
    EXPECT_EQ(h.tensors[i].name, ts[i].name);  // header order, not alphabetical
    EXPECT_EQ(h.tensors[i].dtype, dtypes[i]);
    EXPECT_EQ(h.tensors[i].shape, ts[i].shape);
    EXPECT_EQ(h.tensors[i].offset_bytes, offset);
    EXPECT_EQ(h.tensors[i].data_bytes, bytes[i]);
    EXPECT_EQ(h.tensors[i].file, path);
    offset += bytes[i];
  }
  EXPECT_EQ(h.data_bytes, 120u);
  EXPECT_EQ(total_numel(h.tensors), 6u + 4 + 15 + 7 + 2 + 5 + 6 + 4 + 3);
  EXPECT_EQ(h.header_bytes % 8, 0u);  // the writer pads with spaces as the reference does; JSON allows it
  EXPECT_EQ(8 + h.header_bytes + h.data_bytes, std::filesystem::file_size(path));
  EXPECT_TRUE(h.metadata.empty());

  // The same bytes from memory read the same.
  auto m = read_bytes(safetensors_bytes(ts));
  ASSERT_EQ(m.tensors.size(), h.tensors.size());
  for (size_t i = 0; i < ts.size(); ++i) EXPECT_EQ(m.tensors[i].data_bytes, h.tensors[i].data_bytes);
}

TEST(SafetensorsRead, HeaderOrderIsKept) {
  auto h = read_bytes(safetensors_bytes({{"b", "F32", {1}}, {"a", "F32", {1}}, {"c", "F32", {1}}}));
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.tensors[0].name, "b");
  EXPECT_EQ(h.tensors[1].name, "a");
  EXPECT_EQ(h.tensors[2].name, "c");
  // Offsets need not follow header order: "a" first in the data, "b" second.
  auto swapped = read_header("{" + entry("b", "\"F32\"", "[1]", "[4,8]") + "," + entry("a", "\"F32\"", "[1]", "[0,4]") + "}", 8);
  EXPECT_EQ(swapped.tensors[0].name, "b");
  EXPECT_EQ(swapped.tensors[0].offset_bytes, 4u);
}

TEST(SafetensorsRead, MetadataIsAStringMapAndNotATensor) {
  auto h = read_bytes(safetensors_bytes({{"w", "BF16", {2, 2}}}, {{"format", "pt"}, {"note", "x y"}}));
  ASSERT_EQ(h.tensors.size(), 1u);
  EXPECT_EQ(h.metadata, (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x y"}}));
  EXPECT_EQ(h.data_bytes, 8u);
}

TEST(SafetensorsRead, ScalarHasOneElement) {
  auto h = read_bytes(safetensors_bytes({{"step", "I64", {}}, {"scale", "F32", {}}}));
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_TRUE(h.tensors[0].shape.empty());
  EXPECT_EQ(h.tensors[0].numel(), 1u);
  EXPECT_EQ(h.tensors[0].data_bytes, 8u);
  EXPECT_EQ(h.tensors[1].data_bytes, 4u);
  EXPECT_EQ(h.data_bytes, 12u);
}

TEST(SafetensorsRead, ZeroSizeTensorsTakeNoBytesAnywhere) {
  // Zero-size tensors at the start, between two tensors, and at the end, all at the cursor.
  auto h = read_bytes(safetensors_bytes(
      {{"z0", "F16", {0}}, {"a", "F32", {1}}, {"z1", "BF16", {3, 0}}, {"b", "F32", {1}}, {"z2", "F4", {0, 5}}}));
  ASSERT_EQ(h.tensors.size(), 5u);
  EXPECT_EQ(h.tensors[0].data_bytes, 0u);
  EXPECT_EQ(h.tensors[2].numel(), 0u);
  EXPECT_EQ(h.tensors[2].offset_bytes, 4u);
  EXPECT_EQ(h.tensors[4].offset_bytes, 8u);
  EXPECT_EQ(h.data_bytes, 8u);

  auto only_empty = read_bytes(safetensors_bytes({{"z", "F32", {0}}}));
  EXPECT_EQ(only_empty.data_bytes, 0u);
  EXPECT_EQ(only_empty.tensors.size(), 1u);
}

TEST(SafetensorsRead, EmptyHeaderIsAValidEmptyFile) {
  auto h = read_bytes(raw_safetensors_bytes("{}", 0, /*pad=*/false));
  EXPECT_EQ(h.header_bytes, 2u);
  EXPECT_TRUE(h.tensors.empty());
  EXPECT_EQ(h.data_bytes, 0u);
}

TEST(SafetensorsRead, ReadsOnlyTheHeaderOfAHugeFile) {
  TempDir tmp;
  // 2^31 BF16 elements: a 4 GiB data section that is one sparse hole.
  auto path = write_safetensors(tmp.file("big.safetensors"), {{"w", "BF16", {65536, 32768}}});
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  ASSERT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 1u << 20) << "the fixture should be sparse";

  auto src = open_file_source(path);
  auto h = read_safetensors(*src);
  EXPECT_EQ(h.data_bytes, 4ull << 30);
  EXPECT_EQ(h.tensors.at(0).numel(), 1ull << 31);
  EXPECT_EQ(src->bytes_read(), 8 + h.header_bytes);  // the length, then the header: nothing else
}

// --- hostile single files ----------------------------------------------------------------------------------

TEST(SafetensorsHostile, TruncatedAtEveryLengthIsACleanError) {
  auto full = safetensors_bytes({{"a", "F32", {2, 2}}, {"b", "F16", {3}}, {"c", "BF16", {}}}, {{"format", "pt"}});
  ASSERT_NO_THROW(read_bytes(full));
  const size_t header_end = 8 + read_bytes(full).header_bytes;
  TempDir tmp;
  const std::string path = tmp.file("t.safetensors");
  for (size_t len = 0; len < full.size(); ++len) {
    SCOPED_TRACE("length " + std::to_string(len));
    std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<ptrdiff_t>(len));
    // The cause depends on where the cut falls; each must be named.
    const char* cause = len < 8 ? "shorter than its 8-byte header length" : len < header_end ? "runs past the end" : "data runs past the end of the file";
    EXPECT_LLMEM_ERROR(read_bytes(cut), kInvalidInput, kMem, cause);
    write_file(path, cut);
    EXPECT_LLMEM_ERROR(read_safetensors_file(path), kInvalidInput, path, cause);
  }
}

TEST(SafetensorsHostile, CorruptingAnyByteIsSuccessOrACleanError) {
  auto full = safetensors_bytes({{"a", "F32", {2, 2}}, {"b", "F16", {3}}}, {{"k", "v"}});
  const uint8_t values[] = {0x00, 0xff, '{', '}', '[', ']', '"', ',', ':', '-', '9', '.', 'e', '\\'};
  for (size_t i = 0; i < full.size(); ++i)
    for (uint8_t v : values) {
      auto bad = full;
      bad[i] = v;
      try {
        read_bytes(bad);
      } catch (const Error& e) {
        EXPECT_EQ(e.where(), kMem);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "byte " << i << " = " << int(v) << ": non-llmem exception " << e.what();
      }
    }
}

TEST(SafetensorsHostile, HeaderLengthPastEndOfFile) {
  EXPECT_LLMEM_ERROR(read_bytes(le64(100) + "{}"), kInvalidInput, kMem, "header length 100 runs past the end of the file (10 bytes)");
  EXPECT_LLMEM_ERROR(read_bytes(le64(0) + "{}"), kInvalidInput, kMem, "too short");
  EXPECT_LLMEM_ERROR(read_bytes(le64(1) + "{"), kInvalidInput, kMem, "too short");
  EXPECT_LLMEM_ERROR(read_bytes(std::string("{}")), kInvalidInput, kMem, "shorter than its 8-byte header length");
}

TEST(SafetensorsHostile, HeaderLengthOverTheCapFailsBeforeReadingIt) {
  EXPECT_LLMEM_ERROR(read_bytes(le64(kSafetensorsMaxHeaderBytes + 1) + "{}"), kInvalidInput, kMem,
                     "header length 100000001 exceeds the 100000000-byte cap");
  EXPECT_LLMEM_ERROR(read_bytes(le64(UINT64_MAX) + "{}"), kInvalidInput, kMem, "exceeds the 100000000-byte cap");
  // Exactly the cap passes the cap check and fails on the file's size instead.
  EXPECT_LLMEM_ERROR(read_bytes(le64(kSafetensorsMaxHeaderBytes) + "{}"), kInvalidInput, kMem, "runs past the end");

  // A (sparse) file big enough to hold a 150 MB header: refused after reading the 8-byte length only.
  TempDir tmp;
  const std::string path = tmp.file("cap.safetensors");
  write_sparse_file(path, le64(150'000'000) + "{", 8 + 150'000'000);
  auto src = open_file_source(path);
  EXPECT_LLMEM_ERROR(read_safetensors(*src), kInvalidInput, path, "exceeds the 100000000-byte cap");
  EXPECT_EQ(src->bytes_read(), 8u);
}

TEST(SafetensorsHostile, InvalidJsonIsReportedBeforeAnyFieldProblem) {
  // The first tensor is wrong, but the header is not even JSON: that is what the user needs to hear.
  EXPECT_HEADER_ERROR("{\"a\":5,\"b\":", 0, "header is not valid JSON");
  EXPECT_HEADER_ERROR("{" + entry("a", "\"F99\"", "[1]", "[0,4]") + ",}", 4, "header is not valid JSON");
}

TEST(SafetensorsHostile, HeaderIsNotJsonOrNotAnObject) {
  EXPECT_HEADER_ERROR("{\"a\":", 0, "header is not valid JSON");
  EXPECT_HEADER_ERROR("{} x", 0, "header is not valid JSON");
  EXPECT_HEADER_ERROR("{\"\xff\xfe\":1}", 0, "header is not valid JSON");  // not UTF-8
  EXPECT_HEADER_ERROR("{\"a\":{\"dtype\":\"F32\",}}", 0, "header is not valid JSON");
  EXPECT_HEADER_ERROR("[]", 0, "header does not start with '{'");
  EXPECT_HEADER_ERROR("\"{}\"", 0, "header does not start with '{'");
  EXPECT_HEADER_ERROR(" {}", 0, "header does not start with '{'");  // the spec: the header begins with '{'
  EXPECT_HEADER_ERROR("{\"a\":5}", 0, "tensor 'a' is not an object");
  EXPECT_HEADER_ERROR("{\"a\":[0,4]}", 0, "tensor 'a' is not an object");
}

TEST(SafetensorsHostile, NestingDeeperThanAHeaderNeedsIsRefused) {
  // In a field nobody reads, where only the nesting itself is wrong.
  std::string deep = "{\"a\":{\"x\":" + std::string(200000, '[') + std::string(200000, ']') +
                     ",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
  EXPECT_HEADER_ERROR(deep, 4, "header nests deeper than 16 levels");
  std::string deep_obj = "{\"a\":";
  for (int i = 0; i < 1000; ++i) deep_obj += "{\"a\":";
  deep_obj += "1" + std::string(1001, '}');
  EXPECT_HEADER_ERROR(deep_obj, 0, "header nests deeper than");
}

TEST(SafetensorsHostile, ManyTensorsParseInLinearTime) {
  // Twice the tensors, about twice the parser's work (its sorts add a log factor: 2 x (1 + ln 2 / ln n), 2.14 at
  // n = 20,000): a parser that rescanned the header object per tensor would do four times the work. The work is
  // counted, not timed, so a loaded machine passes alike; bench/bench_safetensors.cpp times 200,000 tensors.
  auto header_of = [](int n) {
    std::string h = "{";
    for (int i = 0; i < n; ++i) h += (i ? "," : "") + entry("t" + std::to_string(i), "\"U8\"", "[0]", "[0,0]");
    return h + "}";
  };
  const auto small = read_header(header_of(20000), 0);
  const auto large = read_header(header_of(40000), 0);
  ASSERT_EQ(small.tensors.size(), 20000u);
  ASSERT_EQ(large.tensors.size(), 40000u);
  EXPECT_EQ(large.tensors.back().name, "t39999");
  const double ratio = static_cast<double>(large.parse_steps) / static_cast<double>(small.parse_steps);
  EXPECT_GT(ratio, 1.9) << small.parse_steps << " steps for 20,000 tensors, " << large.parse_steps << " for 40,000";
  EXPECT_LT(ratio, 2.4) << small.parse_steps << " steps for 20,000 tensors, " << large.parse_steps << " for 40,000";
  // and every tensor costs its JSON events at least: the count is the parser's, not a constant
  EXPECT_GT(small.parse_steps, 20000u * 10);
}

TEST(SafetensorsHostile, DuplicateKeysAreRefusedNotSilentlyDropped) {
  // A JSON DOM keeps the last of two equal keys; the first tensor would vanish from the count.
  EXPECT_HEADER_ERROR("{" + entry("a", "\"F32\"", "[1]", "[0,4]") + "," + entry("a", "\"F32\"", "[1]", "[4,8]") + "}", 8,
                      "header names 'a' twice");
  EXPECT_HEADER_ERROR("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                      "tensor 'a' has 'dtype' twice");
  EXPECT_HEADER_ERROR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"data_offsets\":[0,4]}}", 4,
                      "tensor 'a' has 'data_offsets' twice");
  EXPECT_HEADER_ERROR("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "__metadata__ names 'k' twice");
  EXPECT_HEADER_ERROR("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "header names '__metadata__' twice");
  // Unknown fields are ignored, repeated or not (the format may grow).
  EXPECT_NO_THROW(read_header("{\"a\":{\"x\":1,\"x\":[{}],\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4));
}

TEST(SafetensorsHostile, MetadataMustBeAStringMap) {
  EXPECT_HEADER_ERROR("{\"__metadata__\":[]}", 0, "__metadata__ is not an object");
  EXPECT_HEADER_ERROR("{\"__metadata__\":{\"n\":1}}", 0, "__metadata__ value 'n' is not a string");
}

TEST(SafetensorsHostile, UnknownOrMistypedDtype) {
  EXPECT_LLMEM_ERROR(read_header("{" + entry("w", "\"F12\"", "[1]", "[0,2]") + "}", 2), kUnsupported, kMem,
                     "tensor 'w' has unknown dtype 'F12'");
  EXPECT_LLMEM_ERROR(read_header("{" + entry("w", "\"f32\"", "[1]", "[0,4]") + "}", 4), kUnsupported, kMem,
                     "unknown dtype 'f32'");  // the spec's spellings are upper case
  EXPECT_HEADER_ERROR("{" + entry("w", "5", "[1]", "[0,4]") + "}", 4, "tensor 'w' has a dtype that is not a string");
  EXPECT_HEADER_ERROR("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'w' lacks dtype, shape or data_offsets");
  EXPECT_HEADER_ERROR("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "lacks dtype, shape or data_offsets");
  EXPECT_HEADER_ERROR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "lacks dtype, shape or data_offsets");
}

TEST(SafetensorsHostile, ShapeEntriesMustBeNonNegativeIntegers) {
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[-1]", "[0,4]") + "}", 4, "a dimension of tensor 'w' is negative");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[2.0]", "[0,8]") + "}", 8, "a dimension of tensor 'w' is not a non-negative integer");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[1.5]", "[0,4]") + "}", 4, "is not a non-negative integer");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[\"2\"]", "[0,8]") + "}", 8, "is not a non-negative integer");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[[2]]", "[0,8]") + "}", 8, "is not a non-negative integer");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[null]", "[0,4]") + "}", 4, "is not a non-negative integer");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[1e30]", "[0,4]") + "}", 4, "is not a non-negative integer");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "2", "[0,8]") + "}", 8, "tensor 'w' has a shape that is not an array");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "{}", "[0,4]") + "}", 4, "has a shape that is not an array");
}

TEST(SafetensorsHostile, DataOffsetsMustBeTwoNonNegativeIntegers) {
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[1]", "[4]") + "}", 4, "tensor 'w' data_offsets is not [begin, end]");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[1]", "[0,4,8]") + "}", 8, "data_offsets is not [begin, end]");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[1]", "\"0-4\"") + "}", 4, "data_offsets is not [begin, end]");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[1]", "[-4,0]") + "}", 4, "data_offsets of 'w' is negative");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[1]", "[0.0,4.0]") + "}", 4, "data_offsets of 'w' is not a non-negative integer");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[1]", "[0,\"4\"]") + "}", 4, "data_offsets of 'w' is not a non-negative integer");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[1]", "[8,4]") + "}", 4, "tensor 'w' ends before it begins");
}

TEST(SafetensorsHostile, ShapeProductOverflowingSixtyFourBits) {
  EXPECT_HEADER_ERROR("{" + entry("w", "\"U8\"", "[4294967296,4294967296]", "[0,0]") + "}", 0,
                      "tensor 'w' has shape [4294967296, 4294967296] whose size overflows 64 bits");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"U8\"", "[18446744073709551615,2]", "[0,0]") + "}", 0, "overflows 64 bits");
  // The element count fits but its bytes do not: 2^62 F64 elements are 2^65 bytes.
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F64\"", "[4611686018427387904]", "[0,0]") + "}", 0, "or their size overflows");
}

TEST(SafetensorsHostile, ByteSpanMustMatchDtypeTimesShape) {
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[2]", "[0,4]") + "}", 4, "tensor 'w' spans 4 bytes but F32 [2] needs 8");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"BF16\"", "[2,3]", "[0,24]") + "}", 24, "spans 24 bytes but BF16 [2, 3] needs 12");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F32\"", "[]", "[0,0]") + "}", 0, "spans 0 bytes but F32 [] needs 4");
  // F4 packs two elements per byte: an odd count is no whole number of bytes.
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F4\"", "[3]", "[0,2]") + "}", 2, "not a whole number of F4 blocks");
  EXPECT_HEADER_ERROR("{" + entry("w", "\"F6_E3M2\"", "[2]", "[0,2]") + "}", 2, "not a whole number of F6_E3M2 blocks");
}

TEST(SafetensorsHostile, SpansMustTileTheDataSection) {
  auto two = [](const std::string& a_off, const std::string& b_off) {
    return "{" + entry("a", "\"F32\"", "[2]", a_off) + "," + entry("b", "\"F32\"", "[2]", b_off) + "}";
  };
  EXPECT_HEADER_ERROR(two("[0,8]", "[4,12]"), 12, "tensor 'b' overlaps the tensor before it");
  EXPECT_HEADER_ERROR(two("[0,8]", "[0,8]"), 8, "overlaps the tensor before it");
  EXPECT_HEADER_ERROR(two("[0,8]", "[12,20]"), 20, "a gap of 4 bytes precedes tensor 'b'");
  EXPECT_HEADER_ERROR(two("[4,12]", "[12,20]"), 20, "a gap of 4 bytes precedes tensor 'a'");
  // A zero-size tensor inside another's span is an overlap too (the reference implementation agrees).
  EXPECT_HEADER_ERROR("{" + entry("a", "\"F32\"", "[2]", "[0,8]") + "," + entry("z", "\"F32\"", "[0]", "[4,4]") + "}", 8,
                      "tensor 'z' overlaps");
}

TEST(SafetensorsHostile, DataMustEndExactlyAtTheEndOfTheFile) {
  const std::string h = "{" + entry("a", "\"F32\"", "[4]", "[0,16]") + "}";
  EXPECT_HEADER_ERROR(h, 12, "tensor data needs 16 bytes after the header but the file has 12: data runs past the end of the file");
  EXPECT_HEADER_ERROR(h, 20, "4 bytes after the last tensor are not described by the header");
  EXPECT_HEADER_ERROR("{}", 1, "1 bytes after the last tensor");
  // A span near 2^64 is reported with its true size, not a wrapped sum.
  EXPECT_HEADER_ERROR("{" + entry("a", "\"U8\"", "[18446744073709551615]", "[0,18446744073709551615]") + "}", 0,
                      "needs 18446744073709551615 bytes after the header but the file has 0");
}

TEST(SafetensorsHostile, MissingFileIsNotFound) {
  TempDir tmp;
  const std::string path = tmp.file("absent.safetensors");
  EXPECT_LLMEM_ERROR(read_safetensors_file(path), kNotFound, path, "cannot open");
  EXPECT_LLMEM_ERROR(read_safetensors_file(tmp.path()), kInvalidInput, tmp.path(), "not a regular file");
}

// --- checkpoints ---------------------------------------------------------------------------------------------

namespace {

std::vector<FakeShard> three_shards() {
  return {{"model-00001-of-00003.safetensors", {{"model.embed_tokens.weight", "BF16", {10, 4}}, {"model.norm.weight", "F32", {4}}}},
          {"model-00002-of-00003.safetensors", {{"model.layers.0.mlp.up_proj.weight", "F16", {4, 4}}}},
          {"model-00003-of-00003.safetensors", {{"lm_head.weight", "BF16", {10, 4}}}}};
}

}  // namespace

TEST(SafetensorsCheckpoint, ShardedWithIndex) {
  TempDir tmp;
  auto dir = tmp.dir("ck");
  write_sharded_checkpoint(dir, three_shards(), /*with_index=*/true);
  auto ck = read_safetensors_dir(dir);
  ASSERT_EQ(ck.shards.size(), 3u);
  ASSERT_EQ(ck.tensors.size(), 4u);
  // 80 + 16 + 32 + 80 bytes; 40 + 4 + 16 + 40 parameters.
  EXPECT_EQ(ck.data_bytes, 208u);
  EXPECT_EQ(total_numel(ck.tensors), 100u);
  ASSERT_TRUE(ck.index_total_size.has_value());
  EXPECT_EQ(*ck.index_total_size, 208u);
  uint64_t headers = 0;
  for (const auto& s : ck.shards) headers += 8 + s.header_bytes;
  EXPECT_EQ(ck.bytes_read, headers);
  std::set<std::string> names;
  for (const auto& t : ck.tensors) {
    names.insert(t.name);
    EXPECT_EQ(t.file.rfind(dir + "/model-0000", 0), 0u) << t.file;
  }
  EXPECT_TRUE(names.count("lm_head.weight"));
  for (const auto& t : ck.tensors) {
    if (t.name == "lm_head.weight") {
      EXPECT_EQ(t.file, dir + "/model-00003-of-00003.safetensors");
    }
  }
}

TEST(SafetensorsCheckpoint, DirectoryOfShardsWithoutIndex) {
  TempDir tmp;
  auto dir = tmp.dir("ck");
  write_sharded_checkpoint(dir, three_shards(), /*with_index=*/false);
  write_file(dir + "/config.json", std::string("{}"));
  write_file(dir + "/README.md", std::string("not a shard"));
  auto ck = read_safetensors_dir(dir);
  ASSERT_EQ(ck.shards.size(), 3u);
  EXPECT_EQ(ck.shards[0].file, dir + "/model-00001-of-00003.safetensors");  // sorted by name
  EXPECT_EQ(ck.shards[2].file, dir + "/model-00003-of-00003.safetensors");
  EXPECT_EQ(ck.tensors.size(), 4u);
  EXPECT_EQ(ck.data_bytes, 208u);
  EXPECT_FALSE(ck.index_total_size.has_value());
}

TEST(SafetensorsCheckpoint, SingleFileDirectory) {
  TempDir tmp;
  auto dir = tmp.dir("ck");
  write_safetensors(dir + "/model.safetensors", {{"w", "F32", {3, 3}}});
  auto ck = read_safetensors_dir(dir);
  EXPECT_EQ(ck.tensors.size(), 1u);
  EXPECT_EQ(ck.data_bytes, 36u);
}

TEST(SafetensorsCheckpoint, IndexDecidesWhichFilesAreRead) {
  // Some repositories ship consolidated.safetensors beside the sharded files (Mistral's do): with an index,
  // only the indexed shards count, or every weight would be counted twice.
  TempDir tmp;
  auto dir = tmp.dir("ck");
  auto shards = three_shards();
  write_sharded_checkpoint(dir, shards, true);
  std::vector<FakeTensor> all;
  for (const auto& s : shards) all.insert(all.end(), s.tensors.begin(), s.tensors.end());
  write_safetensors(dir + "/consolidated.safetensors", all);
  EXPECT_EQ(read_safetensors_dir(dir).tensors.size(), 4u);
}

// Parameter counts of real layouts against PyTorch's count of the instantiated model.
TEST(SafetensorsCheckpoint, Llama31_8BCountMatchesPyTorch) {
  auto gt = ground_truth("meta-llama__Llama-3.1-8B.json");
  ASSERT_TRUE(gt.tied.empty());
  TempDir tmp;
  auto dir = tmp.dir("llama");
  write_sharded_checkpoint(dir, split_into_shards(gt.tensors, 4), true);  // 16 GB of BF16, all sparse
  auto ck = read_safetensors_dir(dir);
  EXPECT_EQ(ck.tensors.size(), 291u);
  EXPECT_EQ(total_numel(ck.tensors), gt.total_params);
  EXPECT_EQ(total_numel(ck.tensors), 8'030'261'248u);
  EXPECT_EQ(ck.data_bytes, 2 * gt.total_params);
  EXPECT_EQ(ck.index_total_size, ck.data_bytes);
}

TEST(SafetensorsCheckpoint, TiedWeightsAreStoredOnce) {
  // Qwen2.5-0.5B ties lm_head.weight to model.embed_tokens.weight: save_pretrained stores the embedding only.
  auto gt = ground_truth("Qwen__Qwen2.5-0.5B.json");
  ASSERT_EQ(gt.tied, std::vector<std::string>{"lm_head.weight"});
  TempDir tmp;
  auto dir = tmp.dir("qwen");
  write_sharded_checkpoint(dir, split_into_shards(gt.tensors, 2), true);
  auto ck = read_safetensors_dir(dir);
  uint64_t embed = 0;
  for (const auto& t : ck.tensors) {
    EXPECT_NE(t.name, "lm_head.weight");
    if (t.name == "model.embed_tokens.weight") embed = t.numel();
  }
  EXPECT_EQ(total_numel(ck.tensors), gt.total_params);
  EXPECT_EQ(total_numel(ck.tensors), 494'032'768u);
  EXPECT_EQ(embed, 151936u * 896u);
  EXPECT_EQ(total_numel(ck.tensors) + embed, gt.total_params_with_tied);
}

TEST(SafetensorsCheckpoint, ReadsHeadersOnlyFromHugeShards) {
  TempDir tmp;
  auto dir = tmp.dir("big");
  // Two shards of 4 GiB each (sparse): reading them must touch a few hundred bytes, not 8 GiB.
  write_sharded_checkpoint(dir, {{"model-00001-of-00002.safetensors", {{"a", "BF16", {65536, 32768}}}},
                                 {"model-00002-of-00002.safetensors", {{"b", "BF16", {65536, 32768}}, {"c", "F32", {7}}}}},
                           true);
  uint64_t before = process_rchar();
  auto ck = read_safetensors_dir(dir);
  uint64_t read = process_rchar() - before;
  EXPECT_EQ(ck.data_bytes, (8ull << 30) + 28);
  EXPECT_LT(ck.bytes_read, 1024u);
  // The kernel's count includes the index file and anything else this process read meanwhile.
  EXPECT_LT(read, 64u * 1024) << "read " << read << " bytes";
}

// --- hostile checkpoints -------------------------------------------------------------------------------------

TEST(SafetensorsCheckpointHostile, DuplicateTensorAcrossShards) {
  TempDir tmp;
  auto dir = tmp.dir("dup");
  write_sharded_checkpoint(dir, {{"a.safetensors", {{"w", "F32", {1}}}}, {"b.safetensors", {{"w", "F32", {1}}}}}, false);
  EXPECT_LLMEM_ERROR(read_safetensors_dir(dir), kInvalidInput, dir + "/b.safetensors", "tensor 'w' also appears in " + dir + "/a.safetensors");

  // With an index naming one of them, the duplicate is still refused.
  write_file(dir + "/model.safetensors.index.json", std::string(R"({"weight_map": {"w": "a.safetensors", "x": "b.safetensors"}})"));
  write_safetensors(dir + "/b.safetensors", {{"w", "F32", {1}}, {"x", "F32", {1}}});
  EXPECT_LLMEM_ERROR(read_safetensors_dir(dir), kInvalidInput, dir + "/b.safetensors", "tensor 'w' also appears in");
}

TEST(SafetensorsCheckpointHostile, IndexNamesAMissingShard) {
  TempDir tmp;
  auto dir = tmp.dir("ck");
  auto shards = three_shards();
  write_sharded_checkpoint(dir, shards, true);
  std::filesystem::remove(dir + "/model-00002-of-00003.safetensors");
  EXPECT_LLMEM_ERROR(read_safetensors_dir(dir), kNotFound, dir + "/model.safetensors.index.json",
                     "shard 'model-00002-of-00003.safetensors' is missing");
}

TEST(SafetensorsCheckpointHostile, IndexAndShardsDisagree) {
  TempDir tmp;
  auto dir = tmp.dir("ck");
  const std::string index = dir + "/model.safetensors.index.json";
  write_sharded_checkpoint(dir, {{"s1.safetensors", {{"a", "F32", {1}}}}, {"s2.safetensors", {{"b", "F32", {1}}}}}, false);

  write_file(index, std::string(R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"}})"));
  EXPECT_LLMEM_ERROR(read_safetensors_dir(dir), kInvalidInput, index, "tensor 'b' is listed in s1.safetensors but found in " + dir + "/s2.safetensors");

  write_file(index, std::string(R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors", "ghost": "s2.safetensors"}})"));
  EXPECT_LLMEM_ERROR(read_safetensors_dir(dir), kInvalidInput, index, "tensor 'ghost' is listed in the index but in no shard");

  write_file(index, std::string(R"({"weight_map": {"a": "s1.safetensors"}, "metadata": {}})"));
  write_safetensors(dir + "/s1.safetensors", {{"a", "F32", {1}}, {"stray", "F32", {1}}});
  EXPECT_LLMEM_ERROR(read_safetensors_dir(dir), kInvalidInput, dir + "/s1.safetensors", "tensor 'stray' is not listed in the index " + index);
}

TEST(SafetensorsCheckpointHostile, UnsafeShardPathsInIndex) {
  TempDir tmp;
  auto dir = tmp.dir("ck");
  const std::string index = dir + "/model.safetensors.index.json";
  // A valid file outside the checkpoint: the index must not reach it.
  write_safetensors(tmp.file("x.safetensors"), {{"w", "F32", {1}}});
  const std::vector<std::string> unsafe = {"../x.safetensors", tmp.file("x.safetensors"), "sub/x.safetensors", "..", ".", "",
                                           "a\\\\b.safetensors", "x\\u0000.safetensors"};
  for (const auto& shard : unsafe) {
    SCOPED_TRACE(shard);
    const std::string text = "{\"weight_map\": {\"w\": \"" + shard + "\"}}";
    write_file(index, text);
    EXPECT_LLMEM_ERROR(read_safetensors_dir(dir), kInvalidInput, index, "weight_map entry 'w' names an unsafe shard path");
    EXPECT_LLMEM_ERROR(parse_safetensors_index(text, "idx"), kInvalidInput, "idx", "unsafe shard path");
  }
}

TEST(SafetensorsCheckpointHostile, BadShardIsNamed) {
  TempDir tmp;
  auto dir = tmp.dir("ck");
  write_sharded_checkpoint(dir, three_shards(), true);
  const std::string shard = dir + "/model-00002-of-00003.safetensors";
  ASSERT_EQ(::truncate(shard.c_str(), 20), 0);
  EXPECT_LLMEM_ERROR(read_safetensors_dir(dir), kInvalidInput, shard, "runs past the end");
}

TEST(SafetensorsCheckpointHostile, NoCheckpointThere) {
  TempDir tmp;
  EXPECT_LLMEM_ERROR(read_safetensors_dir(tmp.file("absent")), kNotFound, tmp.file("absent"), "not a directory");
  auto empty = tmp.dir("empty");
  EXPECT_LLMEM_ERROR(read_safetensors_dir(empty), kNotFound, empty, "no *.safetensors files");
  write_file(tmp.file("file"), std::string("x"));
  EXPECT_LLMEM_ERROR(read_safetensors_dir(tmp.file("file")), kNotFound, tmp.file("file"), "not a directory");
}

// --- the index on its own ------------------------------------------------------------------------------------

TEST(SafetensorsIndex, ParsesWeightMapAndTotalSize) {
  auto idx = parse_safetensors_index(
      R"({"metadata": {"total_size": 1234}, "weight_map": {"b": "s2.safetensors", "a": "s1.safetensors", "c": "s1.safetensors"}})", "i.json");
  EXPECT_EQ(idx.file, "i.json");
  EXPECT_EQ(idx.total_size, 1234u);
  EXPECT_EQ(idx.weight_map.size(), 3u);
  EXPECT_EQ(idx.weight_map.at("b"), "s2.safetensors");
  EXPECT_EQ(idx.shards, (std::vector<std::string>{"s1.safetensors", "s2.safetensors"}));

  EXPECT_FALSE(parse_safetensors_index(R"({"weight_map": {}})", "i").total_size.has_value());
  EXPECT_FALSE(parse_safetensors_index(R"({"metadata": {"total_size": null}, "weight_map": {}})", "i").total_size.has_value());
  // Some exporters write total_size as a float; an integral one is accepted.
  EXPECT_EQ(parse_safetensors_index(R"({"metadata": {"total_size": 1.5e3}, "weight_map": {}})", "i").total_size, 1500u);
}

TEST(SafetensorsIndex, HostileIndex) {
  EXPECT_LLMEM_ERROR(parse_safetensors_index("{", "i"), kInvalidInput, "i", "not valid JSON");
  EXPECT_LLMEM_ERROR(parse_safetensors_index("[]", "i"), kInvalidInput, "i", "not a JSON object");
  EXPECT_LLMEM_ERROR(parse_safetensors_index("{}", "i"), kInvalidInput, "i", "no weight_map object");
  EXPECT_LLMEM_ERROR(parse_safetensors_index(R"({"weight_map": []})", "i"), kInvalidInput, "i", "no weight_map object");
  EXPECT_LLMEM_ERROR(parse_safetensors_index(R"({"weight_map": {"w": 3}})", "i"), kInvalidInput, "i",
                     "weight_map entry 'w' is not a file name");
  for (const char* ts : {"-5", "\"12\"", "2.5", "1e300", "[]"}) {
    SCOPED_TRACE(ts);
    EXPECT_LLMEM_ERROR(parse_safetensors_index(std::string(R"({"metadata": {"total_size": )") + ts + R"(}, "weight_map": {}})", "i"),
                       kInvalidInput, "i", "metadata.total_size is not a non-negative integer");
  }
  // The same through the directory reader: the error names the index file.
  TempDir tmp;
  auto dir = tmp.dir("ck");
  write_file(dir + "/model.safetensors.index.json", std::string("{\"weight_map\": "));
  EXPECT_LLMEM_ERROR(read_safetensors_dir(dir), kInvalidInput, dir + "/model.safetensors.index.json", "not valid JSON");
}
