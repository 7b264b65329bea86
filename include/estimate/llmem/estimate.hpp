// The estimate seam: one request (source, engine, workload, GPU) -> the engine registry -> one Estimate.
#pragma once

#include "llmem/engine.hpp"
#include "llmem/llamacpp.hpp"
#include "llmem/transformers.hpp"

#include <string>

namespace llmem {

// The engine a user's name stands for: "transformers" (also "hf") or "llamacpp" (also "llama.cpp",
// "llama-cpp"). Throws Error(kUsage) naming the known engines.
std::string canonical_engine_name(const std::string& name);

}  // namespace llmem
