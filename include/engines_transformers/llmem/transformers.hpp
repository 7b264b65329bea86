// The Hugging Face transformers (PyTorch) engine: what transformers 5.17 on PyTorch 2.11 allocates for a workload,
// replayed allocation by allocation through a model of PyTorch's caching allocator (src/engines/transformers/).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "llmem/arch.hpp"
#include "llmem/engine.hpp"
#include "llmem/quantization.hpp"

namespace llmem {

// The versions whose mechanisms this engine replays (every Estimate's engine_version).
inline constexpr const char* kTransformersVersion = "transformers 5.17, PyTorch 2.11";

// Validates sizes (zero, negative-as-huge, products overflowing 64 bits): throws Error(kUsage) naming the option.
void validate_workload(const Workload& w);

// What the estimates of one model share, worked out once: fit's searches run hundreds of estimates over one
// prepared model. A quantised checkpoint's weights as its quantiser keeps them (weights_as_loaded), per compute
// dtype and load options; and a replay's state once the weights are loaded (the loading depends on no knob fit
// searches), per model, dtype, load path and allocator mode. The models asked about must outlive the cache. Safe
// to share between threads.
class ReplayCache {
 public:
  ReplayCache();
  ~ReplayCache();
  std::shared_ptr<const LoadedWeights> loaded_weights(const ArchModel& model, DType compute, const LoadOptions& options);
  // Where `model`'s tensors as stored come from (stored_tensors of them, derived once per source and shared by
  // the caches of its prepared models), asked when loaded_weights first needs them: loaded_weights starts from them.
  using StoredSource = std::function<std::shared_ptr<const std::vector<TensorInfo>>()>;
  void use_stored(const ArchModel& model, StoredSource stored);
  struct Loads;  // replays with their weights loaded (src/engines/transformers/engine.hpp)
  Loads& loads() { return *loads_; }
  struct Placements;  // from_pretrained's placements over several GPUs (src/engines/transformers/engine.hpp)
  Placements& placements() { return *placements_; }

 private:
  struct Entry {
    const ArchModel* model;
    DType compute;
    LoadOptions options;
    std::shared_ptr<const LoadedWeights> weights;
  };
  std::mutex mutex_;
  std::vector<Entry> entries_;
  const ArchModel* stored_model_ = nullptr;
  StoredSource stored_;
  std::unique_ptr<Loads> loads_;
  std::unique_ptr<Placements> placements_;
};

// Throws Error(kUsage) for a workload the engine cannot run (e.g. a prompt beyond 64-bit arithmetic). `cache`: what
// the model's estimates share (none: everything worked out for this estimate alone).
Estimate estimate_transformers(const ArchModel& model, const Workload& w, const GpuProfile& gpu, ReplayCache* cache = nullptr);

// Whether the model transformers builds differs from the tensor table's checkpoint names: MoE experts fused
// (ArchTraits::experts), the output projection renamed (ArchTraits::built_lm_head). A quantised checkpoint's
// inference keeps the stored names, on which its quantiser's load is modelled; its other workloads use as_built.
bool differs_when_built(const ArchModel& m);
// The model as transformers 5 builds it: each MoE layer's per-expert weights fused into experts.gate_up_proj
// [E, 2I, H] and experts.down_proj [E, H, I], the router before or after them as PyTorch registers it, and the
// built names (PyTorch's own parameter lists, bench/data/transformers_params_catalog.jsonl).
ArchModel as_built(const ArchModel& m);

// The names of the model's linear layers inside its decoder layers, as LoRA targets name them ("q_proj", "dense",
// "c_attn", ...), in module order.
std::vector<std::string> linear_module_names(const ArchModel& model);
// LoRA targets on the attention projections the model has: q/k/v/o_proj where it has them, else its fused
// QKV projection (query_key_value, c_attn, qkv_proj, Wqkv). Empty when it has neither.
std::vector<std::string> attention_lora_targets(const ArchModel& model);

}  // namespace llmem
