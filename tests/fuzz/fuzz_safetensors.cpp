// libFuzzer target for the safetensors header reader: any input must either parse or throw llmem::Error.
// Anything else (a crash, a sanitizer report, another exception escaping) is a bug.
//   ./fuzz_safetensors -max_total_time=60 tests/fuzz/corpus/safetensors
#include <cstddef>
#include <cstdint>
#include <vector>

#include "llmem/error.hpp"
#include "llmem/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto src = llmem::memory_source("fuzz.safetensors", std::vector<uint8_t>(data, data + size));
    auto h = llmem::read_safetensors(*src);
    // What a caller does with a header that passed: sum parameters and bytes; both must be consistent.
    uint64_t bytes = 0;
    for (const auto& t : h.tensors) {
      (void)t.numel();
      bytes += t.data_bytes;
    }
    if (bytes != h.data_bytes || 8 + h.header_bytes + h.data_bytes != size) __builtin_trap();
  } catch (const llmem::Error&) {
  }
  return 0;
}
