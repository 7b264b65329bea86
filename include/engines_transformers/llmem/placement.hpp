// Where from_pretrained(device_map=...) puts each module of a model over several GPUs: accelerate's placement
// algorithm as transformers 5.17 runs it (src/transformers/integrations/accelerate.py: compute_module_sizes,
// get_balanced_memory, _get_device_map, infer_auto_device_map, which take get_max_layer_size,
// get_module_size_with_ties, clean_device_map and get_max_memory from accelerate 1.15,
// src/accelerate/utils/modeling.py). Reimplemented from that source, step for step (docs/memory-model.md, "Several
// GPUs"); bench/gpu/accelerate_placement.py records what the real functions return for comparison.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "llmem/arch.hpp"
#include "llmem/dtype.hpp"

namespace llmem {

enum class DeviceMapKind { kAuto, kBalanced, kBalancedLow0, kSequential };
// "auto", "balanced", "balanced_low_0", "sequential"
const char* device_map_name(DeviceMapKind k);
std::optional<DeviceMapKind> device_map_from_name(const std::string& name);

// A device as accelerate keys it: a GPU index (0, 1, ...), "cpu" or "disk".
inline constexpr int kCpuDevice = -1;
inline constexpr int kDiskDevice = -2;
std::string device_label(int device);  // "0", "cpu", "disk"

// Whose copy of the functions runs: transformers 5.17's (from_pretrained) or accelerate 1.15's own
// (accelerate.utils.get_balanced_memory / infer_auto_device_map called on a meta model). They differ in the mean
// of the "leaves" get_balanced_memory adds as a buffer (transformers: every module that holds a tensor directly;
// accelerate: get_module_leaves, modules without a sub-module that holds one).
enum class PlacementFlavor { kTransformers, kAccelerate };

struct PlacementRequest {
  DeviceMapKind kind = DeviceMapKind::kAuto;
  DType dtype = DType::F16;
  // max_memory as from_pretrained receives it, in bytes: {device: bytes} in the order given. GPUs are ints >= 0,
  // kCpuDevice for "cpu" (kDiskDevice is added by the algorithm). Values are doubles because Python scales them
  // by 0.9 in floating point (one GPU, no max_memory given) and compares floats with ints from then on.
  std::vector<std::pair<int, double>> max_memory;
  bool user_set_max_memory = true;  // false: these are get_max_memory()'s own (free memory of each GPU, the RAM)
  PlacementFlavor flavor = PlacementFlavor::kTransformers;
  bool operator==(const PlacementRequest&) const = default;
};

struct Placement {
  std::map<std::string, int> device_map;           // cleaned (clean_device_map), module -> device
  std::map<std::string, int> tensor_device;        // every parameter and buffer (tied aliases too) -> device
  std::vector<std::pair<int, double>> max_memory;  // what infer_auto_device_map was given (balanced: per GPU)
  std::map<int, uint64_t> bytes_on;                // parameter and buffer bytes per device (tied counted once)
  uint64_t no_split_buffer = 0;                    // get_balanced_memory's buffer (0 for sequential)
  std::vector<std::string> no_split_modules;       // the decoder layers' paths (the class _no_split_modules names)
  // Decoder layer -> device (the device of its module, or of most of its bytes when the layer was split).
  std::vector<int> layer_device;
  int embed_device = 0, head_device = 0, norm_device = 0;
};

// The model's modules, parameters and buffers in PyTorch's registration order, sized in `dtype` (buffers in
// their own dtype), placed as from_pretrained would. Throws Error(kUsage) when max_memory names no GPU.
Placement place_model(const ArchModel& model, const PlacementRequest& request);

// Parameter and buffer names with their bytes in `dtype` as compute_module_sizes counts them (tied aliases 0), in
// named_parameters() then named_buffers() order: what the placement sizes.
std::vector<std::pair<std::string, uint64_t>> placement_tensors(const ArchModel& model, DType dtype);

}  // namespace llmem
