// Parameter counts rendered: `llmem params` (totals, tied copies, dtypes, the module tree, config vs weights), and
// what llmem knows without a file (`llmem catalog`, `llmem families`).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "llmem/params.hpp"
#include "llmem/plan.hpp"

namespace llmem::report {

nlohmann::json params_json(const ParamsReport& report);
// The module tree to `depth` levels (0: totals only).
std::string params_text(const ParamsReport& report, int depth);

nlohmann::json catalog_json(const std::vector<CatalogModel>& models);
std::string catalog_text(const std::vector<CatalogModel>& models);

nlohmann::json families_json(const std::vector<FamilyInfo>& families);
std::string families_text(const std::vector<FamilyInfo>& families);

}  // namespace llmem::report
