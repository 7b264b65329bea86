// The engine adapters this module registers (one file each: engine_<name>.cpp), and the checks they share.
// Private to src/estimate: modules above see engines only through the Engine interface.
#pragma once

#include <cstdint>
#include <string>

#include "llmem/estimate.hpp"

namespace llmem::adapters {

const Engine& transformers_engine();
const Engine& llamacpp_engine();
const Engine& vllm_engine();

// A count a user typed: positive, or a FieldError naming the field.
inline uint64_t positive_count(int64_t value, const char* field) {
  if (value <= 0) throw usage_error(field, "{field} must be a positive integer, got " + std::to_string(value));
  return static_cast<uint64_t>(value);
}

// A size a person typed, in bytes (gpu_profile.cpp): a number and a unit (24GiB, 80GB), never a bare number; "0"
// where zero_allowed. A FieldError naming the field otherwise.
uint64_t parse_size(const std::string& text, const std::string& field, bool zero_allowed);

}  // namespace llmem::adapters
