// GGUF headers (versions 2 and 3, little-endian): magic, counts, metadata key-values, tensor infos, then an
// aligned data section that is never read.
//
// The header is untrusted input. The rules follow the GGUF spec (ggml docs/gguf.md) and are at least as strict
// as llama.cpp's loader (ggml/src/gguf.cpp): counts must be plausible for the file size before anything is
// allocated, strings and arrays must fit in what remains of the file, keys and tensor names are unique, every
// tensor has at most 4 dimensions, a known ggml type, rows of whole blocks, and an offset equal to the padded
// end of the tensor before it; the data section must fit in the file. llmem additionally caps what it keeps in
// memory (see the constants below), so a hostile file cannot make it allocate more than a few tens of MiB.
//
// The reader pulls the header through ByteSource::read in windows of 64 KiB growing to 1 MiB, so the same code
// runs over a local file, a memory buffer or HTTP range requests, and costs about the header's size in reads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "llmem/byte_source.hpp"
#include "llmem/tensor.hpp"

namespace llmem {

inline constexpr uint64_t kGgufDefaultAlignment = 32;
// Arrays with more elements than this are summarised in GgufFile::metadata as {"type": ..., "count": N}.
inline constexpr uint64_t kGgufMaxKeptArrayElements = 64;
// Strings longer than this (tokenizer.huggingface.json embeds a whole tokenizer.json) are summarised as
// {"type": "string", "bytes": N} and skipped without being read.
inline constexpr uint64_t kGgufMaxKeptStringBytes = 1 << 20;
// The spec: "[a key] must be at most 2^16-1 bytes long".
inline constexpr uint64_t kGgufMaxKeyBytes = 65535;
// ggml's GGML_MAX_NAME is 64 including the terminating NUL; llama.cpp refuses longer tensor names.
inline constexpr uint64_t kGgufMaxTensorNameBytes = 63;
// ggml's GGML_MAX_DIMS.
inline constexpr uint32_t kGgufMaxDims = 4;
// Arrays of arrays are allowed by the spec (llama.cpp refuses them); llmem allows this many levels.
inline constexpr int kGgufMaxArrayDepth = 8;
// Real files have a few thousand tensors (tens of thousands with unmerged MoE experts).
inline constexpr uint64_t kGgufMaxTensors = 1 << 20;

struct GgufFile {
  std::string file;                 // source name
  uint32_t version = 0;             // 2 or 3
  uint64_t alignment = kGgufDefaultAlignment;
  uint64_t data_offset = 0;         // absolute offset of the tensor data section
  uint64_t tensor_data_bytes = 0;   // sum of the tensors' data bytes (without padding)
  // key -> value. Integers, floats, bools and strings as JSON scalars; arrays of up to kGgufMaxKeptArrayElements
  // elements as JSON arrays (nested arrays likewise); longer arrays as {"type": "<elem type>", "count": N} and
  // strings over kGgufMaxKeptStringBytes as {"type": "string", "bytes": N}. Type names are the spec's:
  // uint8 int8 uint16 int16 uint32 int32 float32 bool string array uint64 int64 float64.
  nlohmann::json metadata = nlohmann::json::object();
  std::map<std::string, uint64_t> array_lengths;  // every top-level array key -> its element count
  // In file order. shape is outermost-first (GGUF's ne[] reversed, so an embedding reads [vocab, hidden]);
  // offset_bytes is relative to data_offset.
  std::vector<TensorInfo> tensors;

  // general.architecture, "" when absent.
  std::string architecture() const;

  // Typed getters: nullopt when the key is absent; Error(kInvalidInput, file, ...) naming the key when the value
  // has another type (a summarised array or string is "another type"). get_uint accepts any non-negative
  // integer type; get_float accepts floats and integers.
  std::optional<uint64_t> get_uint(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;
  // The same, but an absent key is an Error naming it too.
  uint64_t require_uint(const std::string& key) const;
  double require_float(const std::string& key) const;
  std::string require_string(const std::string& key) const;
};

// Reads and validates a GGUF header. Throws Error(kInvalidInput, src.name(), "<cause>") on any malformed,
// truncated or hostile input; never reads the tensor data (beyond the read-ahead of the last window).
GgufFile read_gguf(ByteSource& src);
GgufFile read_gguf_file(const std::string& path);

}  // namespace llmem
