// Sources: where a model's facts come from. A SOURCE on the command line is resolved, in this order, to
//   1. a local path: a config.json, a .safetensors file, a .gguf file, or a directory holding any of them
//      (config.json, model.safetensors.index.json + shards, *.safetensors, one *.gguf);
//   2. org/name[@revision] in the local Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub);
//   3. org/name (or just name, when unique) in the embedded catalog;
//   4. org/name[/file.gguf][@revision] on the Hugging Face Hub, headers only, over HTTP (hub.hpp), through
//      llmem's header cache. --remote (SourceOptions::remote) skips 2 and 3; --offline (or HF_HUB_OFFLINE=1)
//      never touches the network, so 4 is served from the header cache alone.
// Every transport yields the same things — a config and tensor headers — and no reader knows where its bytes
// came from (see byte_source.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llmem/catalog.hpp"
#include "llmem/gguf.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/safetensors.hpp"

namespace llmem {

enum class SourceKind { kConfigFile, kSafetensorsFile, kGgufFile, kDirectory, kHfCache, kCatalog, kHub };
// "config", "safetensors", "gguf", "directory", "hf-cache", "catalog", "hub"
const char* source_kind_name(SourceKind k);

struct SourceOptions {
  std::string revision;   // for org/name: a branch, tag or commit ("" = main); also given as org/name@rev
  std::string gguf_file;  // for org/name: read this .gguf file of the repo; also given as org/name/FILE.gguf
  bool remote = false;    // org/name: skip the local HF cache and the catalog; ask the Hub which commit the
                          // revision names now (headers already cached for that commit are reused)
  bool offline = false;   // never use the network (HF_HUB_OFFLINE=1 too): a Hub model comes from the header cache
};

// What reading a Hub model cost. Every field is safe to print: no token is ever stored here.
struct RemoteReadReport {
  std::string endpoint;            // "https://huggingface.co"
  std::string repo;                // "org/name"
  std::string requested_revision;  // as asked ("main" when none was)
  std::string commit;              // what the Hub resolved it to ("" when the server did not say)
  bool network_used = false;       // false: everything came from the header cache
  uint64_t requests = 0;           // HTTP requests, redirect hops and retries included
  uint64_t bytes_transferred = 0;  // response headers and bodies received
  uint64_t retries = 0;
  uint64_t cached_files = 0;       // files served from the header cache
  std::string cache_dir;           // the header cache root
  std::string cache_note;          // why the header cache was not written ("" when it was, or had no need)
  std::vector<std::string> request_log;  // one line per request (for --verbose)
};

struct ModelSource {
  std::string spec;      // as the user wrote it
  SourceKind kind = SourceKind::kDirectory;
  std::string location;  // path, cache snapshot directory, catalog id, or the Hub's resolve URL at the commit
  std::string revision;  // resolved commit for the HF cache and the Hub, "" otherwise
  std::optional<HfConfig> config;
  std::optional<SafetensorsCheckpoint> safetensors;
  std::optional<GgufFile> gguf;
  std::vector<std::string> files_read;
  uint64_t header_bytes_read = 0;  // bytes of headers read (tensor data is never read)
  std::optional<RemoteReadReport> remote;  // for kHub
  std::string display_name() const;  // catalog/cache id, or the path
};

// Throws Error(kNotFound) with the places it looked and the closest catalog names when nothing matches,
// Error(kInvalidInput) for a file that is neither JSON, safetensors nor GGUF, and the Hub's errors (hub.hpp).
ModelSource open_source(const std::string& spec, const SourceOptions& options = {});

// The Hugging Face hub cache directories llmem searches, in order (existing or not).
std::vector<std::string> hf_cache_roots();

// A catalog entry as a source, without resolving its name (a Hugging Face cache holding the same id is not used):
// what open_source returns for a catalog name.
ModelSource catalog_source(const CatalogEntry& entry);

}  // namespace llmem
