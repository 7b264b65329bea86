// The model as transformers builds it (as_built: MoE experts fused, load-time renames) against PyTorch's own
// parameter list for every catalog model (bench/data/transformers_params_catalog.jsonl, measured on the GPU
// machine with bench/gpu/count_params.py, transformers 5.17): the same names with the same shapes, the same tied
// aliases. The allocator replay and the device_map placement run on this list.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "catalog_model.hpp"
#include "llmem/transformers.hpp"

namespace llmem {
namespace {

TEST(Layout, EveryCatalogModelIsBuiltAsPyTorchBuildsIt) {
  int checked = 0;
  for (const auto& rec : test::bench_records("transformers_params_catalog.jsonl")) {
    if (rec.contains("error")) continue;  // remote-code models transformers cannot build
    const std::string id = test::catalog_id(rec.at("config"));
    SCOPED_TRACE(id);
    const ArchModel built = as_built(test::catalog_model(id));
    std::map<std::string, std::vector<uint64_t>> ours;
    for (const auto& t : built.tensors) ours[t.name] = t.shape;
    std::map<std::string, std::vector<uint64_t>> theirs;
    for (const auto& t : rec.at("tensors")) theirs[t.at("name")] = t.at("shape").get<std::vector<uint64_t>>();
    for (const auto& [name, shape] : theirs) {
      auto it = ours.find(name);
      if (it == ours.end()) {
        ADD_FAILURE() << "PyTorch has " << name << ", llmem does not";
        continue;
      }
      EXPECT_EQ(it->second, shape) << name;
    }
    for (const auto& [name, shape] : ours)
      if (!theirs.count(name)) ADD_FAILURE() << "llmem has " << name << ", PyTorch does not";
    EXPECT_EQ(built.tied.size(), rec.at("tied").size());
    ++checked;
  }
  EXPECT_GE(checked, 80);
}

}  // namespace
}  // namespace llmem
