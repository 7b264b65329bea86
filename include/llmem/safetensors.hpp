// safetensors headers: an 8-byte little-endian header length, a JSON header, then tensor data (never read).
//
// The header is untrusted input (see the format spec and its tests): its length is capped before anything is
// allocated, every dtype must be known, every shape's product must fit 64 bits, every tensor's byte span must
// equal dtype × shape, and the spans must lie inside the file, without overlap and without gaps.
#pragma once

#include <cstdint>
#include <map>
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
  std::vector<TensorInfo> tensors;               // in header order
  std::map<std::string, std::string> metadata;   // the optional "__metadata__" string map
};

// Reads and validates one file's header: two reads (8 bytes, then the header). With `check_file_size`, the
// tensor data must end exactly at the end of the file (true for local files; a remote source knows its size
// too).
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
// tensor the index names is in the shard it names, that no tensor appears twice, and that the index's
// total_size (when present) equals the sum of the shards' tensor bytes.
struct SafetensorsCheckpoint {
  std::vector<SafetensorsHeader> shards;
  std::vector<TensorInfo> tensors;   // all shards, in index/shard order
  uint64_t data_bytes = 0;
  uint64_t bytes_read = 0;           // header bytes actually read (never tensor data)
};

// Shards are read in parallel threads when there are many (a 191-shard layout reads 191 small headers).
SafetensorsCheckpoint read_safetensors_dir(const std::string& dir);

// Merges already-read shards (used by every transport): validates duplicates and the index.
SafetensorsCheckpoint merge_safetensors_shards(std::vector<SafetensorsHeader> shards, const SafetensorsIndex* index);

}  // namespace llmem
