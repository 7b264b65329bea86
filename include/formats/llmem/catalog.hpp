// The embedded catalog: public config.json files compiled into the binary (data/catalog/), so llmem answers for
// well-known models with no file and no network.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llmem {

struct CatalogEntry {
  std::string id;                // "microsoft/phi-2"
  std::string_view config_json;  // the file's bytes
};

const std::vector<CatalogEntry>& catalog();

// Exact id (case-insensitive), or a name that matches exactly one entry's part after the slash.
std::optional<CatalogEntry> find_in_catalog(std::string_view name);

// Up to `n` catalog ids closest to `name` (edit distance), for "did you mean" messages.
std::vector<std::string> closest_catalog_ids(std::string_view name, size_t n = 3);

// Edit distance, case-insensitive (used for every "did you mean").
size_t edit_distance(std::string_view a, std::string_view b);

// Embedded data files other than catalog configs (e.g. "study/measurements.csv"); empty when absent.
std::string_view embedded_file(std::string_view path);

}  // namespace llmem
