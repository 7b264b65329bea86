// The engine adapters this module registers (one file each: engine_<name>.cpp), and the checks they share.
// Private to src/estimate: modules above see engines only through the Engine interface.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

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

// A value an engine derives from a source's model (SourceFacts::arch), made once while that model lives: fit
// prepares the same source once per candidate, on several threads, and the catalog ranking prepares each model's
// candidates in turn. Each value is made outside the table's lock (other models' go on meanwhile); a make that
// throws leaves none, and the next asker tries again (and throws the same).
template <class T>
class PerModel {
 public:
  template <class Make>
  std::shared_ptr<const T> get(const std::shared_ptr<const ArchModel>& model, Make make) {
    std::shared_ptr<Slot> slot;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      std::erase_if(slots_, [](const auto& s) { return s.first.expired(); });
      for (const auto& [key, s] : slots_)
        if (key.lock() == model) slot = s;  // alive, so no other model has its address
      if (!slot) slots_.emplace_back(model, slot = std::make_shared<Slot>());
    }
    std::call_once(slot->once, [&] { slot->value = std::make_shared<const T>(make()); });
    return slot->value;
  }

 private:
  struct Slot {
    std::once_flag once;
    std::shared_ptr<const T> value;
  };
  std::mutex mutex_;
  std::vector<std::pair<std::weak_ptr<const ArchModel>, std::shared_ptr<Slot>>> slots_;
};

}  // namespace llmem::adapters
