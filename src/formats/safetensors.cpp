#include "llmem/safetensors.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <set>
#include <system_error>
#include <thread>

#include <nlohmann/json.hpp>

#include "llmem/json_text.hpp"

#include "llmem/checked.hpp"
#include "llmem/error.hpp"

namespace llmem {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Nesting a valid header never needs more than three levels (header, tensor, shape); refuse absurd nesting so
// that no later consumer of these bytes has to think about it.
constexpr size_t kMaxHeaderDepth = 16;
// model.safetensors.index.json of the largest public checkpoints is a few MB; refuse absurd ones before reading.
constexpr uint64_t kMaxIndexBytes = 100'000'000;

[[noreturn]] void bad(const std::string& file, const std::string& cause) {
  throw Error(ErrorKind::kInvalidInput, file, cause);
}

uint64_t read_le64(const std::vector<uint8_t>& b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[static_cast<size_t>(i)];
  return v;
}

// One entry of a shape or data_offsets array, as the JSON had it.
struct RawInt {
  enum Kind : uint8_t { kUnsigned, kNegative, kOther } kind;
  uint64_t value;
};

// A tensor's fields as they streamed by; validated once its object closes.
struct RawTensor {
  std::string name;
  unsigned seen = 0;  // bit per known field: a repeated one is refused
  bool dtype_is_string = false, shape_is_array = false, offsets_is_array = false;
  std::string dtype;
  std::vector<RawInt> shape, offsets;
};
constexpr unsigned kDtype = 1, kShape = 2, kOffsets = 4;

uint64_t as_u64(const RawInt& v, const std::string& file, const std::string& what) {
  if (v.kind == RawInt::kNegative) bad(file, what + " is negative");
  if (v.kind == RawInt::kOther) bad(file, what + " is not a non-negative integer");
  return v.value;
}

// Checks in the order a reader of the error would want them: presence, dtype, shape, size, offsets, span.
TensorInfo finish_tensor(const std::string& file, const RawTensor& t) {
  const std::string& name = t.name;
  if (t.seen != (kDtype | kShape | kOffsets)) bad(file, "tensor '" + name + "' lacks dtype, shape or data_offsets");
  if (!t.dtype_is_string) bad(file, "tensor '" + name + "' has a dtype that is not a string");
  auto dtype = dtype_from_safetensors(t.dtype);
  // Well-formed but unknown to llmem (a dtype newer than this table, or garbage): kUnsupported per error.hpp.
  if (!dtype) throw Error(ErrorKind::kUnsupported, file, "tensor '" + name + "' has unknown dtype '" + t.dtype + "'");
  if (!t.shape_is_array) bad(file, "tensor '" + name + "' has a shape that is not an array");
  TensorInfo ti;
  ti.name = name;
  ti.dtype = *dtype;
  ti.file = file;
  ti.shape.reserve(t.shape.size());
  for (const auto& d : t.shape) {
    if (d.kind != RawInt::kUnsigned) as_u64(d, file, "a dimension of tensor '" + name + "'");
    ti.shape.push_back(d.value);
  }
  auto numel = shape_numel(ti.shape);
  if (!numel) bad(file, "tensor '" + name + "' has shape " + shape_to_string(ti.shape) + " whose size overflows 64 bits");
  auto bytes = dtype_bytes(ti.dtype, *numel);
  if (!bytes)
    bad(file, "tensor '" + name + "': " + std::to_string(*numel) + " elements are not a whole number of " +
                  std::string(dtype_name(ti.dtype)) + " blocks, or their size overflows");
  if (!t.offsets_is_array || t.offsets.size() != 2) bad(file, "tensor '" + name + "' data_offsets is not [begin, end]");
  for (const auto& o : t.offsets)
    if (o.kind != RawInt::kUnsigned) as_u64(o, file, "data_offsets of '" + name + "'");
  uint64_t begin = t.offsets[0].value, end = t.offsets[1].value;
  if (end < begin) bad(file, "tensor '" + name + "' ends before it begins");
  if (end - begin != *bytes)
    bad(file, "tensor '" + name + "' spans " + std::to_string(end - begin) + " bytes but " +
                  std::string(dtype_name(ti.dtype)) + " " + shape_to_string(ti.shape) + " needs " + std::to_string(*bytes));
  ti.offset_bytes = begin;
  ti.data_bytes = *bytes;
  return ti;
}

// Streams the header JSON straight into tensors, without a DOM: a DOM (std::map) would forget the header's
// order and silently keep only the last of two equal keys, and nlohmann's callback parser rescans the parent
// object at every object end, which makes a header of n tensors cost O(n²). Here each event costs O(1).
//
// The first problem found is kept and parsing continues, so that a header that is not even valid JSON is
// reported as such rather than by whichever field happened to come first.
class HeaderSax final : public nlohmann::json_sax<json> {
 public:
  HeaderSax(const std::string& file, SafetensorsHeader& out) : file_(file), out_(out) {}

  // The first semantic problem, thrown after a successful parse.
  const std::optional<Error>& problem() const { return problem_; }
  const std::string& syntax_error() const { return syntax_error_; }

  bool null() override { ++out_.parse_steps; return scalar(RawInt::kOther, 0, nullptr); }
  bool boolean(bool) override { ++out_.parse_steps; return scalar(RawInt::kOther, 0, nullptr); }
  bool number_integer(number_integer_t v) override { ++out_.parse_steps; return scalar(v < 0 ? RawInt::kNegative : RawInt::kOther, 0, nullptr); }
  bool number_unsigned(number_unsigned_t v) override { ++out_.parse_steps; return scalar(RawInt::kUnsigned, v, nullptr); }
  bool number_float(number_float_t, const string_t&) override { ++out_.parse_steps; return scalar(RawInt::kOther, 0, nullptr); }
  bool string(string_t& s) override { ++out_.parse_steps; return scalar(RawInt::kOther, 0, &s); }
  bool binary(binary_t&) override { ++out_.parse_steps; return scalar(RawInt::kOther, 0, nullptr); }

  bool start_object(std::size_t) override { ++out_.parse_steps; return open(true); }
  bool start_array(std::size_t) override { ++out_.parse_steps; return open(false); }
  bool end_object() override { ++out_.parse_steps; return close(); }
  bool end_array() override { ++out_.parse_steps; return close(); }

  bool key(string_t& k) override {
    ++out_.parse_steps;
    if (problem_ || stack_.empty()) return true;
    switch (stack_.back()) {
      case Frame::kTop: key_ = std::move(k); break;
      case Frame::kMetadata: meta_key_ = std::move(k); break;
      case Frame::kTensor: field_ = std::move(k); break;
      default: break;
    }
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) override {
    syntax_error_ = json_error_text(ex.what());
    return false;
  }

 private:
  enum class Frame : uint8_t { kTop, kMetadata, kTensor, kShape, kOffsets, kSkip };

  void fail(const std::string& cause) {
    if (!problem_) problem_.emplace(ErrorKind::kInvalidInput, file_, cause);
  }

  // Where a value lands, given the innermost open container and its current key. Returns the frame to push
  // when the value is a container (kSkip for containers nobody reads).
  Frame place(RawInt::Kind kind, uint64_t value, string_t* str, bool is_object, bool is_array) {
    if (stack_.empty()) {  // the header itself; '{' was checked before parsing
      if (!is_object) fail("header is not a JSON object");
      return Frame::kTop;
    }
    switch (stack_.back()) {
      case Frame::kTop:
        if (key_ == "__metadata__") {
          if (has_metadata_) fail("header names '__metadata__' twice");
          has_metadata_ = true;
          if (is_object) return Frame::kMetadata;
          fail("__metadata__ is not an object");
          return Frame::kSkip;
        }
        if (!is_object) {
          fail("tensor '" + key_ + "' is not an object");
          return Frame::kSkip;
        }
        tensor_ = RawTensor{};
        tensor_.name = key_;
        return Frame::kTensor;
      case Frame::kMetadata:
        if (!str) {
          fail("__metadata__ value '" + meta_key_ + "' is not a string");
          return Frame::kSkip;
        }
        if (!out_.metadata.emplace(meta_key_, std::move(*str)).second) fail("__metadata__ names '" + meta_key_ + "' twice");
        return Frame::kSkip;
      case Frame::kTensor: {
        unsigned bit = field_ == "dtype" ? kDtype : field_ == "shape" ? kShape : field_ == "data_offsets" ? kOffsets : 0;
        if (bit & tensor_.seen) fail("tensor '" + tensor_.name + "' has '" + field_ + "' twice");
        tensor_.seen |= bit;
        if (bit == kDtype && str) {
          tensor_.dtype_is_string = true;
          tensor_.dtype = std::move(*str);
        } else if (bit == kShape && is_array) {
          tensor_.shape_is_array = true;
          return Frame::kShape;
        } else if (bit == kOffsets && is_array) {
          tensor_.offsets_is_array = true;
          return Frame::kOffsets;
        }
        return Frame::kSkip;  // a wrong type is reported when the tensor closes; unknown fields are ignored
      }
      case Frame::kShape:
      case Frame::kOffsets:
        (stack_.back() == Frame::kShape ? tensor_.shape : tensor_.offsets).push_back({kind, value});
        return Frame::kSkip;
      case Frame::kSkip:
        return Frame::kSkip;
    }
    return Frame::kSkip;
  }

  bool scalar(RawInt::Kind kind, uint64_t value, string_t* str) {
    if (!problem_) place(kind, value, str, false, false);
    return true;
  }

  bool open(bool is_object) {
    if (problem_) return true;
    if (stack_.size() >= kMaxHeaderDepth) {
      fail("header nests deeper than " + std::to_string(kMaxHeaderDepth) + " levels");
      return true;
    }
    stack_.push_back(place(RawInt::kOther, 0, nullptr, is_object, !is_object));
    return true;
  }

  bool close() {
    if (problem_) return true;
    Frame f = stack_.back();
    stack_.pop_back();
    if (f == Frame::kTensor) {
      try {
        out_.tensors.push_back(finish_tensor(file_, tensor_));
      } catch (const Error& e) {
        if (!problem_) problem_ = e;
      }
    }
    return true;
  }

  const std::string& file_;
  SafetensorsHeader& out_;
  std::vector<Frame> stack_;
  std::string key_, meta_key_, field_;
  RawTensor tensor_;
  bool has_metadata_ = false;
  std::optional<Error> problem_;
  std::string syntax_error_;
};

}  // namespace

SafetensorsHeader read_safetensors(ByteSource& src) {
  const std::string& file = src.name();
  if (src.size() < 8) bad(file, "not a safetensors file: shorter than its 8-byte header length");
  uint64_t n = read_le64(src.read(0, 8));
  if (n > kSafetensorsMaxHeaderBytes)
    bad(file, "header length " + std::to_string(n) + " exceeds the " + std::to_string(kSafetensorsMaxHeaderBytes) + "-byte cap");
  if (n > src.size() - 8)
    bad(file, "header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(src.size()) + " bytes)");
  if (n < 2) bad(file, "header length " + std::to_string(n) + " is too short for a JSON object");
  auto raw = src.read(8, n);
  if (raw[0] != '{') bad(file, "header does not start with '{': not a safetensors file");

  SafetensorsHeader out;
  out.file = file;
  out.header_bytes = n;
  HeaderSax sax(file, out);
  if (!json::sax_parse(raw.begin(), raw.end(), &sax)) bad(file, "header is not valid JSON (" + sax.syntax_error() + ")");
  if (sax.problem()) throw *sax.problem();

  // Two tensors of one name: a JSON DOM would have kept the last and lost the other from every count.
  {
    std::vector<const std::string*> names;
    names.reserve(out.tensors.size());
    for (const auto& t : out.tensors) names.push_back(&t.name);
    uint64_t& steps = out.parse_steps;
    std::sort(names.begin(), names.end(), [&steps](const std::string* a, const std::string* b) { return ++steps, *a < *b; });
    auto dup = std::adjacent_find(names.begin(), names.end(),
                                  [&steps](const std::string* a, const std::string* b) { return ++steps, *a == *b; });
    if (dup != names.end()) bad(file, "header names '" + **dup + "' twice");
  }

  // Spans must tile the data section exactly: sorted, contiguous, no overlap, ending at the end of the file.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : out.tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [&out](const TensorInfo* a, const TensorInfo* b) {
    ++out.parse_steps;
    return a->offset_bytes != b->offset_bytes ? a->offset_bytes < b->offset_bytes : a->data_bytes < b->data_bytes;
  });
  uint64_t cursor = 0;
  for (const auto* t : by_offset) {
    ++out.parse_steps;
    if (t->offset_bytes < cursor) bad(file, "tensor '" + t->name + "' overlaps the tensor before it");
    if (t->offset_bytes > cursor)
      bad(file, "a gap of " + std::to_string(t->offset_bytes - cursor) + " bytes precedes tensor '" + t->name + "'");
    cursor = t->offset_bytes + t->data_bytes;  // cannot overflow: end offset was read as a u64
  }
  out.data_bytes = cursor;
  uint64_t available = src.size() - 8 - n;
  if (cursor != available)
    bad(file, cursor > available ? "tensor data needs " + std::to_string(cursor) + " bytes after the header but the file has " +
                                       std::to_string(available) + ": data runs past the end of the file (truncated file?)"
                                 : std::to_string(available - cursor) + " bytes after the last tensor are not described by the header");
  return out;
}

SafetensorsHeader read_safetensors_file(const std::string& path) {
  auto src = open_file_source(path);
  return read_safetensors(*src);
}

SafetensorsIndex parse_safetensors_index(const std::string& text, const std::string& name) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    bad(name, "not valid JSON (" + json_error_text(e.what()) + ")");
  }
  if (!j.is_object()) bad(name, "not a JSON object");
  SafetensorsIndex idx;
  idx.file = name;
  if (auto m = j.find("metadata"); m != j.end() && m->is_object()) {
    if (auto ts = m->find("total_size"); ts != m->end() && !ts->is_null()) {
      // Some exporters write total_size as a float (e.g. 1.5e10); accept integral values only.
      if (ts->is_number_unsigned()) idx.total_size = ts->get<uint64_t>();
      else if (ts->is_number_float() && ts->get<double>() >= 0 && ts->get<double>() < 1.8e19 &&
               static_cast<double>(static_cast<uint64_t>(ts->get<double>())) == ts->get<double>())
        idx.total_size = static_cast<uint64_t>(ts->get<double>());
      else bad(name, "metadata.total_size is not a non-negative integer");
    }
  }
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) bad(name, "no weight_map object");
  std::set<std::string> shards;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string()) bad(name, "weight_map entry '" + it.key() + "' is not a file name");
    std::string shard = it->get<std::string>();
    // Shards are plain file names beside the index: no directories, no "." or "..", no NUL (which would cut
    // the path short at open()).
    if (shard.empty() || shard == "." || shard == ".." || shard.find_first_of(std::string("/\\\0", 3)) != std::string::npos)
      bad(name, "weight_map entry '" + it.key() + "' names an unsafe shard path '" + shard + "'");
    idx.weight_map[it.key()] = shard;
    shards.insert(shard);
  }
  idx.shards.assign(shards.begin(), shards.end());
  return idx;
}

SafetensorsCheckpoint merge_safetensors_shards(std::vector<SafetensorsHeader> shards, const SafetensorsIndex* index) {
  SafetensorsCheckpoint ck;
  std::map<std::string, std::string> where;  // tensor -> shard
  for (const auto& s : shards) {
    for (const auto& t : s.tensors) {
      auto [it, inserted] = where.emplace(t.name, s.file);
      if (!inserted) bad(s.file, "tensor '" + t.name + "' also appears in " + it->second);
      ck.tensors.push_back(t);
    }
    auto sum = checked_add(ck.data_bytes, s.data_bytes);
    if (!sum) bad(s.file, "total tensor bytes overflow 64 bits");
    ck.data_bytes = *sum;
    ck.bytes_read += 8 + s.header_bytes;
  }
  if (index) {
    for (const auto& [tensor, shard] : index->weight_map) {
      auto it = where.find(tensor);
      if (it == where.end()) bad(index->file, "tensor '" + tensor + "' is listed in the index but in no shard");
      if (fs::path(it->second).filename() != shard)
        bad(index->file, "tensor '" + tensor + "' is listed in " + shard + " but found in " + it->second);
    }
    if (where.size() != index->weight_map.size()) {
      for (const auto& [tensor, file] : where)
        if (!index->weight_map.count(tensor)) bad(file, "tensor '" + tensor + "' is not listed in the index " + index->file);
    }
    // total_size is informational in the Hub's format, and some exporters count it differently; a mismatch is
    // only reported by the caller (see params), never fatal.
  }
  if (index) ck.index_total_size = index->total_size;
  ck.shards = std::move(shards);
  return ck;
}

namespace {

std::string read_index_file(const fs::path& p) {
  auto src = open_file_source(p.string());
  if (src->size() > kMaxIndexBytes)
    bad(p.string(), "index is " + std::to_string(src->size()) + " bytes, over the " + std::to_string(kMaxIndexBytes) + "-byte cap");
  auto bytes = src->read(0, src->size());
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

SafetensorsCheckpoint read_safetensors_dir(const std::string& dir) {
  fs::path d(dir);
  std::vector<fs::path> files;
  std::optional<SafetensorsIndex> index;
  std::error_code ec;
  if (!fs::is_directory(d, ec)) throw Error(ErrorKind::kNotFound, dir, "not a directory");
  fs::path index_path = d / "model.safetensors.index.json";
  if (fs::exists(index_path, ec)) {
    index = parse_safetensors_index(read_index_file(index_path), index_path.string());
    for (const auto& s : index->shards) {
      if (!fs::exists(d / s, ec)) throw Error(ErrorKind::kNotFound, index_path.string(), "shard '" + s + "' is missing from " + dir);
      files.push_back(d / s);
    }
  } else {
    for (const auto& e : fs::directory_iterator(d, ec))
      if (e.path().extension() == ".safetensors") files.push_back(e.path());
    if (ec) throw Error(ErrorKind::kRuntime, dir, "cannot list directory: " + ec.message());
    std::sort(files.begin(), files.end());
  }
  if (files.empty()) throw Error(ErrorKind::kNotFound, dir, "no *.safetensors files");

  // Headers are small and independent: read them on a few threads so that many shards cost about one latency.
  std::vector<SafetensorsHeader> shards(files.size());
  std::vector<std::exception_ptr> errors(files.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < files.size();) {
      try {
        shards[i] = read_safetensors_file(files[i].string());
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  // Local headers come from the page cache: parsing, not I/O, is the cost, so one thread per core (measured with
  // bench_safetensors: 4 threads on 2 cores were slower than 1).
  size_t n_threads = std::min<size_t>(files.size(), std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (size_t i = 1; i < n_threads; ++i) {
    try {
      pool.emplace_back(worker);
    } catch (const std::system_error&) {
      break;  // out of threads: the ones started and this one share the work
    }
  }
  worker();
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return merge_safetensors_shards(std::move(shards), index ? &*index : nullptr);
}

}  // namespace llmem
