// Test helpers shared by the unit tests: a catalog model by its id (or a record's file stem), bench/data's JSON-lines
// records, and one component's bytes of an estimate.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "llmem/catalog.hpp"
#include "llmem/estimate.hpp"

namespace llmem::test {

// The catalog id of a bench/gpu record's model: its catalog file stem ("Qwen__Qwen2.5-0.5B", ".json" allowed).
inline std::string catalog_id(std::string stem) {
  if (stem.ends_with(".json")) stem.resize(stem.size() - 5);
  if (const size_t at = stem.find("__"); at != std::string::npos) stem.replace(at, 2, "/");
  return stem;
}

// The records of a JSON-lines file under bench/data (measured on the GPU machine); a test fails when it is missing.
inline std::vector<nlohmann::json> bench_records(const std::string& file) {
  std::ifstream in(std::string(LLMEM_SOURCE_DIR) + "/bench/data/" + file);
  EXPECT_TRUE(in) << "bench/data/" << file << " missing";
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

inline ArchModel catalog_model(const std::string& id) {
  auto e = find_in_catalog(id);
  EXPECT_TRUE(e.has_value()) << id;
  return model_from_config(HfConfig::parse(std::string(e->config_json), id));
}

inline uint64_t component(const std::vector<MemoryComponent>& cs, const std::string& name) {
  for (const auto& c : cs)
    if (c.name == name) return c.bytes;
  return 0;
}

inline uint64_t component(const Estimate& e, const std::string& name) { return component(e.components, name); }

}  // namespace llmem::test
