// libFuzzer target for model.safetensors.index.json: parse or throw llmem::Error, and never accept a shard name
// that could leave the checkpoint directory.
//   ./fuzz_safetensors_index -max_total_time=60 tests/fuzz/corpus/safetensors_index
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <string>

#include "llmem/error.hpp"
#include "llmem/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto idx = llmem::parse_safetensors_index(std::string(reinterpret_cast<const char*>(data), size), "fuzz.index.json");
    for (const auto& s : idx.shards)
      if (s.empty() || s == "." || s == ".." || s.find_first_of(std::string("/\\\0", 3)) != std::string::npos) __builtin_trap();
    for (const auto& [tensor, shard] : idx.weight_map)
      if (!std::binary_search(idx.shards.begin(), idx.shards.end(), shard)) __builtin_trap();
  } catch (const llmem::Error&) {
  }
  return 0;
}
