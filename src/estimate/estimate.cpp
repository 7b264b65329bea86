// The estimate seam: a request names an engine; this module resolves it and runs it.
#include "llmem/estimate.hpp"

#include "llmem/error.hpp"

namespace llmem {

std::string canonical_engine_name(const std::string& e) {
  if (e == "transformers" || e == "hf") return "transformers";
  if (e == "llamacpp" || e == "llama.cpp" || e == "llama-cpp") return "llamacpp";
  throw Error(ErrorKind::kUsage, "", "unknown --engine '" + e + "' (transformers or llamacpp)");
}

}  // namespace llmem
