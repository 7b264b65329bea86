// safetensors headers: an 8-byte little-endian header length, a JSON header, then tensor data (never read).
//
// The header is untrusted input (see the format spec and its tests): its length is capped before anything is
// allocated, every dtype must be known, every shape's product must fit 64 bits, every tensor's byte span must
// equal dtype × shape, and the spans must lie inside the file, without overlap and without gaps.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "llmem/byte_source.hpp"
#include "llmem/tensor.hpp"

namespace llmem {

// The spec's reference implementation refuses headers over 100 MB; so does llmem.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

struct SafetensorsHeader {
  std::string file;                              // source name
  uint64_t header_bytes = 0;                     // length of the JSON header
  uint64_t data_bytes = 0;                       // bytes of the tensor data section (as spanned by tensors)
  std::vector<TensorInfo> tensors;               // in header order (not offset order)
  std::map<std::string, std::string> metadata;   // the optional "__metadata__" string map
  // The parser's work: JSON events handled, and the comparisons and checks of its validation. A header of n
  // tensors costs O(n log n) of them (tests compare 2n with n instead of timing a parse).
  uint64_t parse_steps = 0;
};

// Reads and validates one file's header: two reads (8 bytes, then the header), never tensor data. The tensor
// data must end exactly at the end of the source (a local file or a remote one: both know their size). Throws
// llmem::Error naming the source: kInvalidInput for a malformed header, kUnsupported for a dtype llmem does not
// know.
SafetensorsHeader read_safetensors(ByteSource& src);
SafetensorsHeader read_safetensors_file(const std::string& path);

// model.safetensors.index.json: {"metadata": {"total_size": N}, "weight_map": {tensor: shard}}.
struct SafetensorsIndex {
  std::string file;
  std::optional<uint64_t> total_size;
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file name
  std::vector<std::string> shards;                // distinct shard names, sorted
};
SafetensorsIndex parse_safetensors_index(const std::string& json_text, const std::string& name);

// A whole checkpoint: every shard of an index, or every *.safetensors file of a directory. Checks that each
// tensor the index names is in the shard it names, that every tensor of the shards is in the index, and that
// no tensor appears twice. The index's total_size is informational in the Hub's format (exporters compute it
// differently), so it is returned in index_total_size for the caller to compare, never checked here.
struct SafetensorsCheckpoint {
  std::vector<SafetensorsHeader> shards;
  std::vector<TensorInfo> tensors;   // all shards, in index/shard order
  uint64_t data_bytes = 0;
  uint64_t bytes_read = 0;           // header bytes actually read (never tensor data)
  std::optional<uint64_t> index_total_size;  // metadata.total_size of the index, when there is one
};

// Shards are read in parallel threads when there are many (a 191-shard layout reads 191 small headers).
// A missing directory, a missing shard named by the index, or a directory without shards is kNotFound.
SafetensorsCheckpoint read_safetensors_dir(const std::string& dir);

// Merges already-read shards (used by every transport): validates duplicates and the index.
SafetensorsCheckpoint merge_safetensors_shards(std::vector<SafetensorsHeader> shards, const SafetensorsIndex* index);

}  // namespace llmem
