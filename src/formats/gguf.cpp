#include "llmem/gguf.hpp"

#include <algorithm>
#include <cstring>
#include <set>

#include "llmem/checked.hpp"
#include "llmem/dtype.hpp"
#include "llmem/error.hpp"

namespace llmem {
using nlohmann::json;

namespace {

// Metadata value types, from the spec's gguf_metadata_value_type.
enum ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12, kValueTypeCount = 13,
};

const char* type_name(uint32_t t) {
  static const char* const kNames[kValueTypeCount] = {"uint8", "int8",  "uint16", "int16",  "uint32", "int32", "float32",
                                                      "bool",  "string", "array", "uint64", "int64",  "float64"};
  return t < kValueTypeCount ? kNames[t] : "invalid";
}

// Bytes of one value of a fixed-size type; 0 for string and array.
uint64_t fixed_bytes(uint32_t t) {
  switch (t) {
    case kU8: case kI8: case kBool: return 1;
    case kU16: case kI16: return 2;
    case kU32: case kI32: case kF32: return 4;
    case kU64: case kI64: case kF64: return 8;
    default: return 0;
  }
}

// The least bytes one value of type t can take: a string is at least its u64 length, an array its u32 element
// type and u64 count.
uint64_t min_bytes(uint32_t t) {
  if (t == kString) return 8;
  if (t == kArray) return 12;
  return fixed_bytes(t);
}

// Smallest possible key-value: u64 key length, a 1-byte key, u32 type, a 1-byte value.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
// Smallest possible tensor info: u64 name length, a 1-byte name, u32 n_dims, no dims, u32 type, u64 offset.
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 4 + 8;
// llama.cpp's GGUF_MAX_ARRAY_ELEMENTS and GGUF_MAX_STRING_LENGTH.
constexpr uint64_t kMaxArrayElements = 1ull << 30;
constexpr uint64_t kMaxStringBytes = 1ull << 30;
// What llmem keeps of the metadata in memory: JSON values and string bytes. Real files keep a few hundred
// values and well under 1 MiB; the caps bound what a hostile file full of tiny values can make us allocate.
constexpr uint64_t kMaxKeptValues = 1 << 20;
constexpr uint64_t kMaxKeptStringTotal = 64ull << 20;

constexpr uint64_t kFirstWindow = 64 << 10;
constexpr uint64_t kMaxWindow = 1 << 20;

// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). Strings llmem keeps end up in JSON, whose
// serialiser refuses invalid UTF-8.
bool valid_utf8(const uint8_t* s, uint64_t n) {
  uint64_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) { ++i; continue; }
    uint64_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (n - i < len) return false;
    for (uint64_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::string hex32(uint32_t v) {
  static const char* const d = "0123456789abcdef";
  std::string s = "0x";
  for (int i = 7; i >= 0; --i) s += d[(v >> (4 * i)) & 0xF];
  return s;
}

// A forward-only reader over a ByteSource that fetches windows on demand: 64 KiB first (a small file or a
// header-only fetch costs one read), doubling up to 1 MiB for the long vocabulary arrays. Skipping past the
// window (a long string that is not kept) costs no read at all.
class Cursor {
 public:
  explicit Cursor(ByteSource& src) : src_(src), size_(src.size()) {}

  uint64_t pos() const { return pos_; }
  uint64_t size() const { return size_; }
  uint64_t remaining() const { return size_ - pos_; }
  const std::string& file() const { return src_.name(); }

  // What is being read, for error messages: "key 'general.name'", "tensor 'output.weight'".
  void set_context(std::string c) { context_ = std::move(c); }
  const std::string& context() const { return context_; }

  [[noreturn]] void fail(const std::string& cause) const {
    throw Error(ErrorKind::kInvalidInput, src_.name(), context_.empty() ? cause : context_ + ": " + cause);
  }

  // Returns a pointer to the next n bytes (valid until the next call) and moves past them.
  const uint8_t* take(uint64_t n, const char* what) {
    require(n, what);
    if (pos_ < buf_start_ || pos_ + n > buf_start_ + buf_.size()) {
      uint64_t len = std::min(std::max(n, window_), remaining());
      buf_ = src_.read(pos_, len);
      buf_start_ = pos_;
      window_ = std::min(window_ * 2, kMaxWindow);
    }
    const uint8_t* p = buf_.data() + (pos_ - buf_start_);
    pos_ += n;
    return p;
  }

  void skip(uint64_t n, const char* what) {
    require(n, what);
    pos_ += n;
  }

  uint8_t u8(const char* what) { return *take(1, what); }
  uint32_t u32(const char* what) { return static_cast<uint32_t>(le(take(4, what), 4)); }
  uint64_t u64(const char* what) { return le(take(8, what), 8); }

  void require(uint64_t n, const char* what) const {
    if (n > remaining())
      fail(std::string("truncated file: ") + what + " at byte " + std::to_string(pos_) + " needs " + std::to_string(n) +
           " bytes but the file ends at byte " + std::to_string(size_));
  }

  static uint64_t le(const uint8_t* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }

 private:
  ByteSource& src_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::vector<uint8_t> buf_;
  uint64_t buf_start_ = 0;
  uint64_t window_ = kFirstWindow;
  std::string context_;
};

class Parser {
 public:
  explicit Parser(ByteSource& src) : cur_(src) {}

  GgufFile parse() {
    GgufFile out;
    out.file = cur_.file();
    read_preamble(out);
    read_metadata(out);
    read_tensor_infos(out);
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& cause) const { cur_.fail(cause); }

  void read_preamble(GgufFile& out) {
    const uint8_t* m = cur_.take(4, "the magic");
    if (std::memcmp(m, "GGUF", 4) != 0) {
      std::string shown;
      for (int i = 0; i < 4; ++i) shown += (m[i] >= 0x20 && m[i] < 0x7F) ? static_cast<char>(m[i]) : '?';
      fail("not a GGUF file: magic is '" + shown + "', expected 'GGUF'");
    }
    uint32_t v = cur_.u32("the version");
    if (v == 0) fail("bad GGUF version 0");
    // A big-endian file's version 3 reads as 0x03000000 here (llama.cpp uses the same test).
    if ((v & 0xFFFF) == 0)
      fail("GGUF version reads as " + hex32(v) + ": a big-endian file? llmem reads little-endian GGUF only");
    if (v == 1) fail("unsupported GGUF version 1 (GGUFv1 is obsolete; llmem reads versions 2 and 3)");
    if (v > 3) fail("unsupported GGUF version " + std::to_string(v) + " (llmem reads versions 2 and 3)");
    out.version = v;

    tensor_count_ = cur_.u64("tensor_count");
    kv_count_ = cur_.u64("kv_count");
    // Both counts are checked against what the rest of the file could hold before anything is sized by them.
    // llama.cpp reads them as int64 and refuses negative values; any such value fails these checks too.
    uint64_t rest = cur_.remaining();
    if (kv_count_ > rest / kMinKvBytes)
      fail("kv_count " + std::to_string(kv_count_) + " is implausible: that many key-values need at least " +
           std::to_string(kMinKvBytes) + " bytes each but only " + std::to_string(rest) +
           " bytes follow the header (truncated or corrupt file)");
    if (tensor_count_ > kGgufMaxTensors)
      fail("tensor_count " + std::to_string(tensor_count_) + " exceeds llmem's limit of " + std::to_string(kGgufMaxTensors));
    if (tensor_count_ > (rest - kv_count_ * kMinKvBytes) / kMinTensorInfoBytes)
      fail("tensor_count " + std::to_string(tensor_count_) + " is implausible: that many tensor infos need at least " +
           std::to_string(kMinTensorInfoBytes) + " bytes each but only " + std::to_string(rest) +
           " bytes follow the header (truncated or corrupt file)");
  }

  // Reads a GGUF string's length and checks it against `cap` and the rest of the file.
  uint64_t string_length(uint64_t cap, const char* what) {
    uint64_t n = cur_.u64(what);
    if (n > cap) fail(std::string(what) + " " + std::to_string(n) + " exceeds the limit of " + std::to_string(cap) + " bytes");
    if (n > cur_.remaining())
      fail("truncated file: " + std::string(what) + " " + std::to_string(n) + " at byte " + std::to_string(cur_.pos() - 8) +
           " runs past the end of the file (" + std::to_string(cur_.remaining()) + " bytes remain)");
    return n;
  }

  std::string read_name(uint64_t cap, const char* length_what, const char* what) {
    uint64_t n = string_length(cap, length_what);
    if (n == 0) fail(std::string(what) + " is empty");
    const uint8_t* p = cur_.take(n, what);
    if (!valid_utf8(p, n)) fail(std::string(what) + " is not valid UTF-8");
    return std::string(reinterpret_cast<const char*>(p), n);
  }

  void count_kept(uint64_t values, uint64_t string_bytes) {
    kept_values_ += values;
    kept_string_bytes_ += string_bytes;
    if (kept_values_ > kMaxKeptValues)
      fail("metadata is implausibly large: more than " + std::to_string(kMaxKeptValues) + " values");
    if (kept_string_bytes_ > kMaxKeptStringTotal)
      fail("metadata is implausibly large: its strings exceed " + std::to_string(kMaxKeptStringTotal) + " bytes");
  }

  // Reads one value of type t. With keep, returns it as JSON (summarising long arrays and strings); without,
  // validates and skips it. `depth` is the number of arrays enclosing it.
  json read_value(uint32_t t, int depth, bool keep) {
    switch (t) {
      case kString: {
        uint64_t n = string_length(kMaxStringBytes, "string length");
        if (!keep) {
          cur_.skip(n, "a string");
          return nullptr;
        }
        if (n > kGgufMaxKeptStringBytes) {
          cur_.skip(n, "a string");
          count_kept(3, 0);
          return json{{"type", "string"}, {"bytes", n}};
        }
        const uint8_t* p = cur_.take(n, "a string");
        if (!valid_utf8(p, n)) fail("a string value is not valid UTF-8");
        count_kept(1, n);
        return std::string(reinterpret_cast<const char*>(p), n);
      }
      case kArray: {
        uint32_t elem = cur_.u32("an array element type");
        if (elem >= kValueTypeCount)
          fail("array element type " + std::to_string(elem) + " is not a GGUF value type (0..12)");
        if (elem == kArray && depth + 1 >= kGgufMaxArrayDepth)
          fail("arrays nested more than " + std::to_string(kGgufMaxArrayDepth) + " deep");
        uint64_t n = cur_.u64("an array length");
        if (n > kMaxArrayElements)
          fail("array of " + std::to_string(n) + " elements exceeds the limit of " + std::to_string(kMaxArrayElements));
        if (n > cur_.remaining() / min_bytes(elem))
          fail("truncated or corrupt file: an array of " + std::to_string(n) + " " + type_name(elem) + " needs at least " +
               std::to_string(n) + " x " + std::to_string(min_bytes(elem)) + " bytes but only " +
               std::to_string(cur_.remaining()) + " remain");
        if (depth == 0) last_array_length_ = n;
        if (keep && n <= kGgufMaxKeptArrayElements) {
          json a = json::array();
          count_kept(1, 0);
          for (uint64_t i = 0; i < n; ++i) a.push_back(read_value(elem, depth + 1, true));
          return a;
        }
        if (uint64_t b = fixed_bytes(elem)) {
          cur_.skip(n * b, "array elements");  // n * b <= remaining: checked above
        } else {
          for (uint64_t i = 0; i < n; ++i) read_value(elem, depth + 1, false);
        }
        if (!keep) return nullptr;
        count_kept(3, 0);
        return json{{"type", type_name(elem)}, {"count", n}};
      }
      case kBool: {
        uint8_t b = cur_.u8("a bool");  // any non-zero byte is true, as in llama.cpp
        if (!keep) return nullptr;
        count_kept(1, 0);
        return b != 0;
      }
      default:
        break;
    }
    uint64_t nb = fixed_bytes(t);
    if (nb == 0) fail("value type " + std::to_string(t) + " is not a GGUF value type (0..12)");
    const uint8_t* p = cur_.take(nb, type_name(t));
    if (!keep) return nullptr;
    count_kept(1, 0);
    uint64_t raw = Cursor::le(p, static_cast<int>(nb));
    switch (t) {
      case kU8: case kU16: case kU32: case kU64: return raw;
      case kI8: return static_cast<int64_t>(static_cast<int8_t>(raw));
      case kI16: return static_cast<int64_t>(static_cast<int16_t>(raw));
      case kI32: return static_cast<int64_t>(static_cast<int32_t>(raw));
      case kI64: return static_cast<int64_t>(raw);
      case kF32: {
        float f;
        uint32_t r32 = static_cast<uint32_t>(raw);
        std::memcpy(&f, &r32, 4);
        return static_cast<double>(f);
      }
      default: {  // kF64
        double d;
        std::memcpy(&d, &raw, 8);
        return d;
      }
    }
  }

  void read_metadata(GgufFile& out) {
    std::optional<uint64_t> alignment;
    for (uint64_t i = 0; i < kv_count_; ++i) {
      cur_.set_context("key-value #" + std::to_string(i));
      std::string key = read_name(kGgufMaxKeyBytes, "key length", "key");
      if (out.metadata.contains(key)) fail("duplicate key '" + key + "'");
      cur_.set_context("key '" + key + "'");
      uint32_t t = cur_.u32("the value type");
      if (t >= kValueTypeCount) fail("value type " + std::to_string(t) + " is not a GGUF value type (0..12)");
      if (key == "general.alignment") {
        // llama.cpp requires uint32 here; so does llmem.
        if (t != kU32) fail(std::string("general.alignment must be a uint32 but is a ") + type_name(t));
        uint32_t a = cur_.u32("general.alignment");
        if (a == 0 || (a & (a - 1)) != 0) fail("general.alignment " + std::to_string(a) + " is not a power of two");
        alignment = a;
        count_kept(1, 0);
        out.metadata[key] = a;
        continue;
      }
      count_kept(1, key.size());
      out.metadata[key] = read_value(t, 0, true);
      if (t == kArray) out.array_lengths[key] = last_array_length_;
    }
    cur_.set_context("");
    out.alignment = alignment.value_or(kGgufDefaultAlignment);
  }

  void read_tensor_infos(GgufFile& out) {
    if (tensor_count_ > cur_.remaining() / kMinTensorInfoBytes)
      fail("tensor_count " + std::to_string(tensor_count_) + " is implausible: that many tensor infos need at least " +
           std::to_string(kMinTensorInfoBytes) + " bytes each but only " + std::to_string(cur_.remaining()) +
           " bytes follow the metadata (truncated or corrupt file)");
    const uint64_t align = out.alignment;
    auto align_up = [align](uint64_t x) -> std::optional<uint64_t> {
      auto y = checked_add(x, align - 1);
      if (!y) return std::nullopt;
      return *y & ~(align - 1);
    };

    out.tensors.reserve(std::min<uint64_t>(tensor_count_, 1 << 16));  // bounded by the plausibility checks anyway
    std::set<std::string> names;
    uint64_t expected_offset = 0;  // llama.cpp: each offset is the padded end of the tensor before it
    for (uint64_t i = 0; i < tensor_count_; ++i) {
      cur_.set_context("tensor #" + std::to_string(i));
      TensorInfo ti;
      ti.file = out.file;
      ti.name = read_name(kGgufMaxTensorNameBytes, "name length", "name");
      if (!names.insert(ti.name).second) fail("duplicate tensor name '" + ti.name + "'");
      cur_.set_context("tensor '" + ti.name + "'");

      uint32_t n_dims = cur_.u32("n_dims");
      if (n_dims > kGgufMaxDims)
        fail("has " + std::to_string(n_dims) + " dimensions; GGUF allows at most " + std::to_string(kGgufMaxDims));
      uint64_t ne[kGgufMaxDims] = {1, 1, 1, 1};
      uint64_t numel = 1, nonzero = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        ne[d] = cur_.u64("a dimension");
        // ne[] is int64 in ggml: a value with the top bit set is negative there.
        if (ne[d] > static_cast<uint64_t>(INT64_MAX))
          fail("dimension " + std::to_string(d) + " is negative (" + std::to_string(static_cast<int64_t>(ne[d])) + ")");
        // The non-zero dimensions' product must fit too: an empty tensor with absurd other dimensions would
        // overflow any product taken in another order (ggml's own checks divide by each dimension).
        auto m = checked_mul(nonzero, ne[d] == 0 ? 1 : ne[d]);
        if (!m || *m > static_cast<uint64_t>(INT64_MAX))
          fail("element count overflows: ne[0.." + std::to_string(d) + "] multiply past 2^63");
        nonzero = *m;
        numel = ne[d] == 0 ? 0 : numel * ne[d];  // <= nonzero: cannot overflow
      }
      for (uint32_t d = n_dims; d-- > 0;) ti.shape.push_back(ne[d]);  // outermost first

      uint32_t type_id = cur_.u32("the ggml type");
      auto dtype = dtype_from_ggml_id(type_id);
      if (!dtype) fail("unknown or removed ggml type id " + std::to_string(type_id));
      ti.dtype = *dtype;
      const auto& info = dtype_info(ti.dtype);
      if (ne[0] % info.block_elems != 0)
        fail("rows of " + std::to_string(ne[0]) + " elements are not a whole number of " + std::string(info.name) +
             " blocks (" + std::to_string(info.block_elems) + " elements each)");
      auto bytes = dtype_bytes(ti.dtype, numel);
      if (!bytes) fail("size in bytes of " + std::to_string(numel) + " " + std::string(info.name) + " elements overflows");
      ti.data_bytes = *bytes;

      uint64_t offset = cur_.u64("the data offset");
      if (offset % align != 0)
        fail("data offset " + std::to_string(offset) + " is not a multiple of the alignment " + std::to_string(align));
      if (offset < expected_offset)
        fail("data offset " + std::to_string(offset) + " overlaps tensor '" + out.tensors.back().name +
             "', which ends at " + std::to_string(expected_offset) + " with padding");
      if (offset > expected_offset)
        fail("data offset " + std::to_string(offset) + " leaves a gap: expected " + std::to_string(expected_offset) +
             (out.tensors.empty() ? std::string(" for the first tensor") : ", the padded end of '" + out.tensors.back().name + "'"));
      ti.offset_bytes = offset;
      auto end = checked_add(offset, ti.data_bytes);
      auto next = end ? align_up(*end) : std::nullopt;
      if (!next) fail("data offset " + std::to_string(offset) + " plus " + std::to_string(ti.data_bytes) + " bytes overflows");
      expected_offset = *next;
      out.tensor_data_bytes += ti.data_bytes;  // <= *end: cannot overflow
      out.tensors.push_back(std::move(ti));
    }
    cur_.set_context("");

    // The data section starts at the next multiple of the alignment (llama.cpp pads only when there are tensors).
    if (out.tensors.empty()) {
      out.data_offset = cur_.pos();
      return;
    }
    auto data_offset = align_up(cur_.pos());
    if (!data_offset || *data_offset > cur_.size())
      fail("truncated file: the tensor data section would start at byte " +
           (data_offset ? std::to_string(*data_offset) : std::string("2^64")) + " (aligned to " + std::to_string(align) +
           ") but the file has " + std::to_string(cur_.size()) + " bytes");
    out.data_offset = *data_offset;
    const TensorInfo& last = out.tensors.back();
    uint64_t data_end = last.offset_bytes + last.data_bytes;  // checked above
    if (data_end > cur_.size() - out.data_offset)
      fail("truncated file: tensor '" + last.name + "' data ends at byte " +
           (checked_add(out.data_offset, data_end) ? std::to_string(out.data_offset + data_end) : std::string("past 2^64")) +
           " but the file has " + std::to_string(cur_.size()) + " bytes");
  }

  Cursor cur_;
  uint64_t tensor_count_ = 0;
  uint64_t kv_count_ = 0;
  uint64_t last_array_length_ = 0;
  uint64_t kept_values_ = 0;
  uint64_t kept_string_bytes_ = 0;
};

const json* find_value(const GgufFile& g, const std::string& key) {
  auto it = g.metadata.find(key);
  return it == g.metadata.end() ? nullptr : &*it;
}

std::string describe(const json& v) {
  if (v.is_object()) {
    if (v.contains("count")) return "an array of " + std::to_string(v.value("count", uint64_t{0})) + " elements";
    return "a " + std::to_string(v.value("bytes", uint64_t{0})) + "-byte string (too long to keep)";
  }
  if (v.is_array()) return "an array";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a bool";
  if (v.is_number_float()) return "a float";
  if (v.is_number_integer()) return "an integer";
  return "a null";
}

[[noreturn]] void wrong_type(const GgufFile& g, const std::string& key, const char* wanted, const json& v) {
  throw Error(ErrorKind::kInvalidInput, g.file, "key '" + key + "' should be " + wanted + " but is " + describe(v));
}

[[noreturn]] void missing(const GgufFile& g, const std::string& key) {
  throw Error(ErrorKind::kInvalidInput, g.file, "key '" + key + "' is missing");
}

}  // namespace

std::string GgufFile::architecture() const { return get_string("general.architecture").value_or(""); }

std::optional<uint64_t> GgufFile::get_uint(const std::string& key) const {
  const json* v = find_value(*this, key);
  if (!v) return std::nullopt;
  if (v->is_number_unsigned()) return v->get<uint64_t>();
  if (v->is_number_integer()) {
    int64_t s = v->get<int64_t>();
    if (s < 0) throw Error(ErrorKind::kInvalidInput, file, "key '" + key + "' should be a non-negative integer but is " + std::to_string(s));
    return static_cast<uint64_t>(s);
  }
  wrong_type(*this, key, "an unsigned integer", *v);
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  const json* v = find_value(*this, key);
  if (!v) return std::nullopt;
  if (v->is_number()) return v->get<double>();
  wrong_type(*this, key, "a number", *v);
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const json* v = find_value(*this, key);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  wrong_type(*this, key, "a string", *v);
}

uint64_t GgufFile::require_uint(const std::string& key) const {
  if (auto v = get_uint(key)) return *v;
  missing(*this, key);
}

double GgufFile::require_float(const std::string& key) const {
  if (auto v = get_float(key)) return *v;
  missing(*this, key);
}

std::string GgufFile::require_string(const std::string& key) const {
  if (auto v = get_string(key)) return *v;
  missing(*this, key);
}

GgufFile read_gguf(ByteSource& src) { return Parser(src).parse(); }

GgufFile read_gguf_file(const std::string& path) {
  auto src = open_file_source(path);
  return read_gguf(*src);
}

}  // namespace llmem
