#include "llmem/tensor.hpp"

#include <algorithm>
#include <optional>

#include "llmem/checked.hpp"

namespace llmem {

std::optional<uint64_t> shape_numel(const std::vector<uint64_t>& shape) {
  // a zero dimension makes zero elements whatever the others are (no overflow in any order)
  if (std::find(shape.begin(), shape.end(), uint64_t{0}) != shape.end()) return 0;
  uint64_t n = 1;
  for (uint64_t d : shape) {
    auto m = checked_mul(n, d);
    if (!m) return std::nullopt;
    n = *m;
  }
  return n;
}

uint64_t TensorInfo::numel() const { return shape_numel(shape).value_or(0); }

std::string shape_to_string(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace llmem
