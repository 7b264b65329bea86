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

// Up to `n` catalog ids closest to `name` (closest_names over the ids and their names after the slash), for "did
// you mean" messages.
std::vector<std::string> closest_catalog_ids(std::string_view name, size_t n = 3);

// Edit distance, case-insensitive.
size_t edit_distance(std::string_view a, std::string_view b);

// Up to `n` of `candidates` a person probably meant by `want`, best first, for every "did you mean": compared
// case-insensitively without punctuation ("rtx-4090" = "RTX 4090"), a candidate that contains `want` (a prefix
// first) ranks before one whose words all appear in `want`'s order, and those before one within a small edit
// distance (a third of the length, at least 2); nothing further off is suggested. `aliases` (parallel to
// `candidates`, may be empty) are other spellings matched the same way, such as a name after its org's slash.
std::vector<std::string> closest_names(std::string_view want, const std::vector<std::string>& candidates, size_t n = 3,
                                       const std::vector<std::string>& aliases = {});

// Embedded data files other than catalog configs (e.g. "study/measurements.csv"); empty when absent.
std::string_view embedded_file(std::string_view path);

}  // namespace llmem
