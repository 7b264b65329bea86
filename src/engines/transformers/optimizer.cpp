// The trainable parameters as the optimizer sees them, AdamW's states and step, and zero_grad.
#include "engine.hpp"

namespace llmem::transformers {

bool targets(const TrainCtx& c, const std::string& module_name) {
  return std::find(c.w.lora_targets.begin(), c.w.lora_targets.end(), module_name) != c.w.lora_targets.end();
}

// Each parameter is its own allocation (its weight, its .grad, its exp_avg and exp_avg_sq): one block per tensor,
// not one per layer, is what the caching allocator sees and splits.
std::vector<Param> trainable_params(const TrainCtx& c, const ArchModel& m) {
  std::vector<Param> params;
  if (!c.lora) {
    for (const auto& tt : m.tensors) params.push_back({tt.name, mul(tt.numel(), c.p), tt.layer, tt.role});
    return params;
  }
  // peft keeps adapters in fp32: lora_A [r, in] then lora_B [out, r] for every linear of the decoder layers whose
  // module name is a target (q_proj, dense, fc1, ...), in module order. A Linear weight is [out, in]; a Conv1D
  // weight is [in, out] (peft's LoraLayer reads in_features, out_features = weight.shape for Conv1D)
  const bool in_first = c.g.traits.conv1d_weights;
  for (const auto& tt : m.tensors) {
    if (tt.layer < 0 || tt.module_name.empty() || !targets(c, tt.module_name)) continue;
    const uint64_t in_features = tt.shape[in_first ? 0 : 1], out_features = tt.shape[in_first ? 1 : 0];
    params.push_back({tt.name + ".lora_A", mul(c.w.lora_r, in_features, 4), tt.layer, tt.role});
    params.push_back({tt.name + ".lora_B", mul(c.w.lora_r, out_features, 4), tt.layer, tt.role});
  }
  return params;
}

std::vector<TensorRole> adapted_roles(const std::vector<Param>& lora_params) {
  std::vector<TensorRole> roles;
  for (const auto& prm : lora_params)
    if (std::find(roles.begin(), roles.end(), prm.role) == roles.end()) roles.push_back(prm.role);
  return roles;
}

bool is_head_or_embedding(const Param& prm) {
  return prm.layer < 0 && (prm.role == TensorRole::kTokenEmbedding || prm.role == TensorRole::kLmHead);
}

void optimizer_step(const TrainCtx& c, const std::vector<Param>& params, uint64_t step) {
  // torch.optim.SGD with its default momentum=0 keeps no state and updates in place
  if (c.w.optimizer != OptimizerKind::kAdamW) return;
  // torch/optim/adam.py: _init_group creates exp_avg then exp_avg_sq (zeros_like) for each parameter on the first
  // step; AdamW(fused=False) on bf16/fp32 parameters runs _single_tensor_adam, where
  // (exp_avg_sq.sqrt() / bias_correction2_sqrt) allocates two temporaries per parameter, freed at once
  if (step == 1)
    for (const auto& prm : params) {
      c.t.alloc("optimizer_states/" + prm.name + "/exp_avg", prm.bytes);
      c.t.alloc("optimizer_states/" + prm.name + "/exp_avg_sq", prm.bytes);
    }
  for (const auto& prm : params) {
    c.t.alloc("optimizer_temp/sqrt", prm.bytes);
    c.t.alloc("optimizer_temp/denom", prm.bytes);
    c.t.free("optimizer_temp/sqrt");
    c.t.free("optimizer_temp/denom");
  }
}

void zero_grad(const TrainCtx& c, const ArchModel& m, const std::vector<Param>& params) {
  // zero_grad(set_to_none=True): every .grad the backward made (see training.cpp for the embedding and head)
  for (const auto& prm : params)
    if (!is_head_or_embedding(prm)) c.t.free("gradients/" + prm.name);
  if (c.lora) return;
  if (m.tied.empty()) {
    c.t.free("gradients/lm_head");
    c.t.free("gradients/embedding_new");
  } else {
    c.t.free("gradients/embedding_sum");
  }
}

}  // namespace llmem::transformers
