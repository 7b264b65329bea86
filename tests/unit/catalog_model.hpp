// Test helpers shared by the estimate tests: a catalog model by its id, and one component's bytes of an estimate.
#pragma once

#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "llmem/catalog.hpp"
#include "llmem/estimate.hpp"

namespace llmem::test {

inline ArchModel catalog_model(const std::string& id) {
  auto e = find_in_catalog(id);
  EXPECT_TRUE(e.has_value()) << id;
  return model_from_config(HfConfig::parse(std::string(e->config_json), id));
}

inline uint64_t component(const Estimate& e, const std::string& name) {
  for (const auto& c : e.components)
    if (c.name == name) return c.bytes;
  return 0;
}

}  // namespace llmem::test
