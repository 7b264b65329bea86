// libFuzzer target: config.json text -> HfConfig -> architecture tables -> counts. Only llmem::Error may escape
// the library (as a clean error); anything else — a crash, UB, another exception — is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "llmem/arch.hpp"
#include "llmem/error.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/params.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto cfg = llmem::HfConfig::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
    llmem::ArchModel m = llmem::model_from_config(cfg);
    llmem::ParamCount c = llmem::count_from_model(m);
    (void)llmem::module_tree(c.tensors);
  } catch (const llmem::Error&) {
  }
  return 0;
}
