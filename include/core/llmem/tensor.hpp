// A tensor as a weight file's header describes it: never its data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llmem/dtype.hpp"

namespace llmem {

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> shape;  // outermost first, as PyTorch prints it (GGUF's ne[] is reversed on reading)
  DType dtype = DType::F32;
  uint64_t offset_bytes = 0;    // from the start of the file's tensor data section
  uint64_t data_bytes = 0;      // bytes of tensor data (dtype_bytes(dtype, numel))
  std::string file;             // the shard or file that holds it ("" for tensors derived from a config)
  int64_t layer = -1;           // decoder layer of a tensor derived from a config (its {layers} row), else -1

  uint64_t numel() const;       // product of shape; callers have validated it does not overflow
};

// Product of a shape, nullopt on 64-bit overflow. An empty shape is a scalar (1 element).
std::optional<uint64_t> shape_numel(const std::vector<uint64_t>& shape);

std::string shape_to_string(const std::vector<uint64_t>& shape);

}  // namespace llmem
