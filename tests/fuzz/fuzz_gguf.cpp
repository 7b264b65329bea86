// libFuzzer target for the GGUF header reader: any input must either parse or throw llmem::Error.
// Anything else (a crash, a sanitizer report, another exception escaping, a broken invariant) is a bug.
//   ./fuzz_gguf -max_total_time=60 tests/fuzz/corpus/gguf
// Seeds: LLMEM_GGUF_SEED_DIR=tests/fuzz/corpus/gguf ./llmem_test_gguf --gtest_filter=GgufSeeds.*
#include <cstddef>
#include <cstdint>
#include <vector>

#include "llmem/error.hpp"
#include "llmem/gguf.hpp"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto src = llmem::memory_source("fuzz.gguf", std::vector<uint8_t>(data, data + size));
    llmem::GgufFile g = llmem::read_gguf(*src);

    // What a caller relies on once a header passed.
    check(g.version == 2 || g.version == 3);
    check(g.alignment != 0 && (g.alignment & (g.alignment - 1)) == 0);
    check(g.data_offset <= size);
    check(src->bytes_read() <= size);
    uint64_t bytes = 0, end = 0;
    for (const auto& t : g.tensors) {
      check(t.shape.size() <= llmem::kGgufMaxDims);
      check(llmem::shape_numel(t.shape).has_value());
      check(llmem::dtype_bytes(t.dtype, t.numel()) == t.data_bytes);
      check(t.offset_bytes % g.alignment == 0 && t.offset_bytes >= end);
      end = t.offset_bytes + t.data_bytes;
      bytes += t.data_bytes;
    }
    check(bytes == g.tensor_data_bytes);
    check(g.tensors.empty() || (g.data_offset % g.alignment == 0 && end <= size - g.data_offset));
    for (const auto& [key, n] : g.array_lengths) check(g.metadata.contains(key));

    // Everything kept must serialise (the JSON report does this); nlohmann throws on invalid UTF-8.
    (void)g.metadata.dump();
    (void)g.architecture();
    for (const auto& [key, value] : g.metadata.items()) {
      try { (void)g.get_uint(key); } catch (const llmem::Error&) {}
      try { (void)g.get_float(key); } catch (const llmem::Error&) {}
      try { (void)g.get_string(key); } catch (const llmem::Error&) {}
    }
  } catch (const llmem::Error&) {
  }
  return 0;
}
