// Sources: where a model's facts come from. A SOURCE on the command line is resolved, in this order, to
//   1. a local path: a config.json, a .safetensors file, a .gguf file, or a directory holding any of them
//      (config.json, model.safetensors.index.json + shards, *.safetensors, one *.gguf);
//   2. org/name[@revision] in the local Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub);
//   3. org/name (or just name, when unique) in the embedded catalog.
// Every transport yields the same things — a config and tensor headers — and no reader knows where its bytes
// came from (see byte_source.hpp). Remote reads from the Hub plug in here as one more transport.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llmem/gguf.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/safetensors.hpp"

namespace llmem {

enum class SourceKind { kConfigFile, kSafetensorsFile, kGgufFile, kDirectory, kHfCache, kCatalog };
const char* source_kind_name(SourceKind k);  // "config", "safetensors", "gguf", "directory", "hf-cache", "catalog"

struct SourceOptions {
  std::string revision;  // for org/name: a branch, tag or commit ("" = main); also given as org/name@rev
};

struct ModelSource {
  std::string spec;      // as the user wrote it
  SourceKind kind = SourceKind::kDirectory;
  std::string location;  // path, cache snapshot directory, or catalog id
  std::string revision;  // resolved commit for the cache, "" otherwise
  std::optional<HfConfig> config;
  std::optional<SafetensorsCheckpoint> safetensors;
  std::optional<GgufFile> gguf;
  std::vector<std::string> files_read;
  uint64_t header_bytes_read = 0;  // bytes of headers read (tensor data is never read)
  std::string display_name() const;  // catalog/cache id, or the path
};

// Throws Error(kNotFound) with the places it looked and the closest catalog names when nothing matches, and
// Error(kInvalidInput) for a file that is neither JSON, safetensors nor GGUF.
ModelSource open_source(const std::string& spec, const SourceOptions& options = {});

// The Hugging Face hub cache directories llmem searches, in order (existing or not).
std::vector<std::string> hf_cache_roots();

}  // namespace llmem
