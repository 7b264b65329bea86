// The Hugging Face transformers (PyTorch) engine: what transformers 5.17 on PyTorch 2.11 allocates for a workload,
// replayed allocation by allocation through a model of PyTorch's caching allocator (src/engines/transformers/).
#pragma once

#include <string>
#include <vector>

#include "llmem/arch.hpp"
#include "llmem/engine.hpp"

namespace llmem {

// The versions whose mechanisms this engine replays (every Estimate's engine_version).
inline constexpr const char* kTransformersVersion = "transformers 5.17, PyTorch 2.11";

// Validates sizes (zero, negative-as-huge, products overflowing 64 bits): throws Error(kUsage) naming the option.
void validate_workload(const Workload& w);

// Throws Error(kUsage) for a workload the engine cannot run (e.g. a prompt beyond 64-bit arithmetic).
Estimate estimate_transformers(const ArchModel& model, const Workload& w, const GpuProfile& gpu);

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
