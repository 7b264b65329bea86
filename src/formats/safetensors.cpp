#include "llmem/safetensors.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <set>
#include <system_error>
#include <thread>

#include <nlohmann/json.hpp>

#include "llmem/checked.hpp"
#include "llmem/error.hpp"

namespace llmem {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A valid header nests three levels (header object, tensor object, shape array). The parser itself is iterative,
// but a hostile 100 MB header of brackets would still build tens of millions of DOM nodes; refuse it early.
constexpr int kMaxHeaderDepth = 16;
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

uint64_t as_u64(const json& v, const std::string& file, const std::string& what) {
  if (!v.is_number_unsigned()) {
    if (v.is_number_integer() && v.get<int64_t>() < 0) bad(file, what + " is negative");
    bad(file, what + " is not a non-negative integer");
  }
  return v.get<uint64_t>();
}

TensorInfo parse_tensor(const std::string& file, const std::string& name, const json& t) {
  if (!t.is_object()) bad(file, "tensor '" + name + "' is not an object");
  auto dt = t.find("dtype"), sh = t.find("shape"), off = t.find("data_offsets");
  if (dt == t.end() || sh == t.end() || off == t.end())
    bad(file, "tensor '" + name + "' lacks dtype, shape or data_offsets");
  if (!dt->is_string()) bad(file, "tensor '" + name + "' has a dtype that is not a string");
  auto dtype = dtype_from_safetensors(dt->get<std::string>());
  // Well-formed but unknown to llmem (a dtype newer than this table, or garbage): kUnsupported per error.hpp.
  if (!dtype)
    throw Error(ErrorKind::kUnsupported, file, "tensor '" + name + "' has unknown dtype '" + dt->get<std::string>() + "'");
  if (!sh->is_array()) bad(file, "tensor '" + name + "' has a shape that is not an array");
  TensorInfo ti;
  ti.name = name;
  ti.dtype = *dtype;
  ti.file = file;
  for (const auto& d : *sh) ti.shape.push_back(as_u64(d, file, "a dimension of tensor '" + name + "'"));
  auto numel = shape_numel(ti.shape);
  if (!numel) bad(file, "tensor '" + name + "' has shape " + shape_to_string(ti.shape) + " whose size overflows 64 bits");
  auto bytes = dtype_bytes(ti.dtype, *numel);
  if (!bytes)
    bad(file, "tensor '" + name + "': " + std::to_string(*numel) + " elements are not a whole number of " +
                  std::string(dtype_name(ti.dtype)) + " blocks, or their size overflows");
  if (!off->is_array() || off->size() != 2) bad(file, "tensor '" + name + "' data_offsets is not [begin, end]");
  uint64_t begin = as_u64((*off)[0], file, "data_offsets of '" + name + "'");
  uint64_t end = as_u64((*off)[1], file, "data_offsets of '" + name + "'");
  if (end < begin) bad(file, "tensor '" + name + "' ends before it begins");
  if (end - begin != *bytes)
    bad(file, "tensor '" + name + "' spans " + std::to_string(end - begin) + " bytes but " +
                  std::string(dtype_name(ti.dtype)) + " " + shape_to_string(ti.shape) + " needs " + std::to_string(*bytes));
  ti.offset_bytes = begin;
  ti.data_bytes = *bytes;
  return ti;
}

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

  // The DOM (std::map) forgets key order and silently keeps the last of duplicate keys; the parse callback
  // records the top-level keys in header order, counts keys per object to catch duplicates, and bounds nesting.
  std::vector<std::string> top_keys;
  std::vector<size_t> keys_per_object;  // one counter per open object
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxHeaderDepth) bad(file, "header nests deeper than " + std::to_string(kMaxHeaderDepth) + " levels");
        if (event == json::parse_event_t::object_start) keys_per_object.push_back(0);
        break;
      case json::parse_event_t::key:
        ++keys_per_object.back();
        if (depth == 1) top_keys.push_back(parsed.get_ref<const std::string&>());
        break;
      case json::parse_event_t::object_end:
        if (keys_per_object.back() != parsed.size()) {
          if (depth == 0) {
            auto sorted = top_keys;
            std::sort(sorted.begin(), sorted.end());
            auto dup = std::adjacent_find(sorted.begin(), sorted.end());
            bad(file, "header names '" + (dup != sorted.end() ? *dup : std::string()) + "' twice");
          }
          bad(file, "an object under '" + (top_keys.empty() ? std::string() : top_keys.back()) + "' has a duplicate key");
        }
        keys_per_object.pop_back();
        break;
      default:
        break;
    }
    return true;
  };
  json h;
  try {
    h = json::parse(raw.begin(), raw.end(), on_event);
  } catch (const json::exception& e) {
    bad(file, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!h.is_object()) bad(file, "header is not a JSON object");

  SafetensorsHeader out;
  out.file = file;
  out.header_bytes = n;
  for (const auto& key : top_keys) {
    const json& value = h.at(key);
    if (key == "__metadata__") {
      if (!value.is_object()) bad(file, "__metadata__ is not an object");
      for (auto m = value.begin(); m != value.end(); ++m) {
        if (!m->is_string()) bad(file, "__metadata__ value '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    out.tensors.push_back(parse_tensor(file, key, value));
  }

  // Spans must tile the data section exactly: sorted, contiguous, no overlap, ending at the end of the file.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : out.tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->offset_bytes != b->offset_bytes ? a->offset_bytes < b->offset_bytes : a->data_bytes < b->data_bytes;
  });
  uint64_t cursor = 0;
  for (const auto* t : by_offset) {
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
    bad(name, std::string("not valid JSON (") + e.what() + ")");
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
  size_t n_threads = std::min<size_t>(files.size(), std::max(2u, std::thread::hardware_concurrency()) * 2);
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
