// The trainable parameters as the optimizer sees them, AdamW's states and step, and zero_grad.
#include "bnb.hpp"
#include "engine.hpp"

namespace llmem::transformers {

bool targets(const TrainCtx& c, const std::string& module_name) {
  // peft's "all-linear": every linear layer but the output layer (tuners_utils.py _maybe_include_all_linear_layers)
  if (c.w.lora_targets.size() == 1 && c.w.lora_targets[0] == "all-linear") return true;
  return std::find(c.w.lora_targets.begin(), c.w.lora_targets.end(), module_name) != c.w.lora_targets.end();
}

// Each parameter is its own allocation (its weight, its .grad, its exp_avg and exp_avg_sq): one block per tensor,
// not one per layer, is what the caching allocator sees and splits.
std::vector<Param> trainable_params(const TrainCtx& c, const ArchModel& m) {
  std::vector<Param> params;
  if (!c.lora) {
    // A vision-language model trained on text never runs its vision tower or projector: their parameters keep
    // .grad None, and AdamW's _init_group skips a parameter without a gradient, so on one GPU they get no state
    // either. They stay resident as weights (load_weights), not here. Sharded (DDP's buckets, DeepSpeed's flat
    // partitions) every parameter that requires a gradient is provided for: those keep them.
    for (const auto& tt : m.tensors)
      if (tt.role != TensorRole::kVisionTower || c.w.gpus > 1)
        params.push_back({tt.name, mul(tt.numel(), c.p), tt.layer, tt.role, tt.shape});
    return params;
  }
  // peft keeps adapters in fp32: lora_A [r, in] then lora_B [out, r] for every linear of the decoder layers whose
  // module name is a target (q_proj, dense, fc1, ...), in module order. A Linear weight is [out, in]; a Conv1D
  // weight is [in, out] (peft's LoraLayer reads in_features, out_features = weight.shape for Conv1D)
  const bool in_first = c.g.traits.conv1d_weights;
  for (const auto& tt : m.tensors) {
    if (tt.layer < 0 || tt.module_name.empty() || !targets(c, tt.module_name)) continue;
    const uint64_t in_features = tt.shape[in_first ? 0 : 1], out_features = tt.shape[in_first ? 1 : 0];
    params.push_back({tt.name + ".lora_A", mul(c.w.lora_r, in_features, 4), tt.layer, tt.role, {c.w.lora_r, in_features}});
    params.push_back({tt.name + ".lora_B", mul(c.w.lora_r, out_features, 4), tt.layer, tt.role, {out_features, c.w.lora_r}});
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

namespace {

// A 0-dim fp32 tensor on the GPU (fused AdamW's step counts): the allocator's smallest block.
constexpr uint64_t kScalarBytes = 4;

// torch/optim/adam.py _init_group (AdamW is Adam with decoupled weight decay): on the first step, per parameter, the
// step count (a CPU tensor, or for fused a 0-dim tensor on the parameter's device), then exp_avg and exp_avg_sq
// (zeros_like: the parameter's dtype).
void adam_states(const TrainCtx& c, const std::vector<Param>& params, bool fused) {
  for (const auto& prm : params) {
    if (fused) c.t.alloc("optimizer_states/" + prm.name + "/step", kScalarBytes);
    c.t.alloc("optimizer_states/" + prm.name + "/exp_avg", prm.bytes);
    c.t.alloc("optimizer_states/" + prm.name + "/exp_avg_sq", prm.bytes);
  }
}

// transformers/optimization.py Adafactor.step (transformers 5.17; lr=None, relative_step, scale_parameter, no
// beta1, weight_decay 0): a loop over parameters. For a bf16/fp16 parameter, grad.float() and p.float() are fp32
// copies; `update = grad**2 + eps` (the square is a temporary), then the factored estimate
// (_approx_sq_grad: an outer product, a new fp32 tensor of the parameter's size) or exp_avg_sq.rsqrt() * grad for
// 1-D tensors, each new update made before the old one is dropped; `p_data_fp32.add_(-update)` makes one more.
// The loop's locals (grad, p_data_fp32, update) live until they are rebound at the next parameter, and the last
// ones until step() returns. States (first step): exp_avg_sq_row [*shape[:-1]] and exp_avg_sq_col
// [*shape[:-2], shape[-1]] in fp32 for tensors of 2+ dims, else exp_avg_sq like the parameter in fp32; RMS, a
// 0-dim tensor.
void adafactor_step(const TrainCtx& c, const std::vector<Param>& params, uint64_t step) {
  const bool half = c.p == 2;
  std::string update;  // the live `update` local, if any
  int n_update = 0;
  bool have_grad32 = false, have_p32 = false;
  for (const auto& prm : params) {
    const uint64_t numel = prm.bytes / c.p, f32 = mul(numel, 4);
    if (have_grad32) c.t.free("optimizer_temp/adafactor_grad_f32");  // grad = p.grad rebinds the local
    have_grad32 = false;
    if (half) {
      c.t.alloc("optimizer_temp/adafactor_grad_f32", f32);
      have_grad32 = true;
    }
    const bool factored = prm.shape.size() >= 2;
    if (step == 1) {
      if (factored) {
        uint64_t lead = 1;  // prod(shape[:-2])
        for (size_t i = 0; i + 2 < prm.shape.size(); ++i) lead *= prm.shape[i];
        const uint64_t rows = mul(lead, prm.shape[prm.shape.size() - 2]), cols = mul(lead, prm.shape.back());
        c.t.alloc("optimizer_states/" + prm.name + "/exp_avg_sq_row", mul(rows, 4));
        c.t.alloc("optimizer_states/" + prm.name + "/exp_avg_sq_col", mul(cols, 4));
      } else {
        c.t.alloc("optimizer_states/" + prm.name + "/exp_avg_sq", f32);
      }
      c.t.alloc("optimizer_states/" + prm.name + "/RMS", kScalarBytes);
    }
    if (have_p32) c.t.free("optimizer_temp/adafactor_p_f32");
    have_p32 = false;
    if (half) {
      c.t.alloc("optimizer_temp/adafactor_p_f32", f32);
      have_p32 = true;
    }
    auto new_update = [&] {
      const std::string next = concat("optimizer_temp/adafactor_update", n_update++ % 2);
      c.t.alloc(next, f32);
      if (!update.empty()) c.t.free(update);
      update = next;
    };
    c.t.alloc("optimizer_temp/adafactor_grad_sq", f32);  // grad**2, then + eps
    new_update();
    c.t.free("optimizer_temp/adafactor_grad_sq");
    new_update();  // _approx_sq_grad's outer product, or exp_avg_sq.rsqrt()
    c.t.alloc("optimizer_temp/adafactor_neg_update", f32);  // -update
    c.t.free("optimizer_temp/adafactor_neg_update");
  }
  if (have_grad32) c.t.free("optimizer_temp/adafactor_grad_f32");
  if (have_p32) c.t.free("optimizer_temp/adafactor_p_f32");
  if (!update.empty()) c.t.free(update);
}

}  // namespace

// bitsandbytes 0.48.2 AdamW8bit / PagedAdamW8bit (bnb.hpp for the states): Optimizer8bit.step loops over the
// parameters, init_state on the first step (the two shared quantisation maps at the first 8-bit state), then
// update_step: optimizer_update_8bit_blockwise (or optimizer_update_32bit for small tensors) updates parameter and
// states in place, one kernel per parameter; no temporaries. Returns the managed (paged) bytes it created.
static uint64_t adamw_8bit_step(const TrainCtx& c, const std::vector<Param>& params, uint64_t step, bool paged) {
  if (step != 1) return 0;
  uint64_t managed = 0;
  bool qmaps = false;
  for (const auto& prm : params) {
    uint64_t numel = 1;
    for (uint64_t d : prm.shape) numel = mul(numel, d);
    if (!qmaps && numel >= bnb::kMin8bitSize) {
      c.t.alloc("optimizer_states/qmap_dynamic", bnb::kQmapBytes);
      c.t.alloc("optimizer_states/qmap_udynamic", bnb::kQmapBytes);
      qmaps = true;
    }
    const bnb::AdamState s = bnb::adamw_8bit_state(numel, paged);
    for (const auto& piece : s.torch) c.t.alloc("optimizer_states/" + prm.name + "/" + piece.what, piece.bytes);
    for (const auto& piece : s.managed) managed += piece.bytes;
  }
  return managed;
}

void clip_grad_norm(const TrainCtx& c, const std::vector<Param>& params) {
  // torch/nn/utils/clip_grad.py: _foreach_norm gives one 0-dim norm per gradient; they are stacked, reduced to the
  // total norm, and the gradients are scaled in place (_foreach_mul_) by the clamped coefficient
  for (const auto& prm : params) c.t.alloc("optimizer_temp/grad_norm/" + prm.name, kScalarBytes);
  c.t.alloc("optimizer_temp/grad_norm_stack", mul(params.size(), 4));
  for (const auto& prm : params) c.t.free("optimizer_temp/grad_norm/" + prm.name);
  c.t.free("optimizer_temp/grad_norm_stack");
}

uint64_t optimizer_step(const TrainCtx& c, const std::vector<Param>& params, uint64_t step) {
  switch (c.w.optimizer) {
    case OptimizerKind::kAdamW8bit:
    case OptimizerKind::kPagedAdamW8bit:
      return adamw_8bit_step(c, params, step, c.w.optimizer == OptimizerKind::kPagedAdamW8bit);
    case OptimizerKind::kSgd:
      // torch.optim.SGD with its default momentum=0 keeps no state and updates in place (_foreach_add_)
      return 0;
    case OptimizerKind::kSgdMomentum:
      // torch/optim/sgd.py _multi_tensor_sgd: on the first step each momentum buffer is torch.clone(grad); then
      // _foreach_mul_/_foreach_add_ in place, and the parameters' update in place: no temporaries
      if (step == 1)
        for (const auto& prm : params) c.t.alloc("optimizer_states/" + prm.name + "/momentum_buffer", prm.bytes);
      return 0;
    case OptimizerKind::kAdafactor:
      adafactor_step(c, params, step);
      return 0;
    case OptimizerKind::kAdamWFused:
      // torch._fused_adamw_: one kernel over the parameter lists, in place; no temporaries
      if (step == 1) adam_states(c, params, true);
      return 0;
    case OptimizerKind::kAdamWForeach:
      // torch/optim/adam.py _multi_tensor_adam (non-capturable): the moments update in place (_foreach_lerp_,
      // _foreach_mul_, _foreach_addcmul_), then exp_avg_sq_sqrt = torch._foreach_sqrt(exp_avg_sqs) makes one
      // tensor per parameter, all alive together (divided and shifted in place, consumed by _foreach_addcdiv_)
      // until the list is dropped at the end of the group's step: the trainable parameters' size once more
      if (step == 1) adam_states(c, params, false);
      for (const auto& prm : params) c.t.alloc("optimizer_temp/exp_avg_sq_sqrt/" + prm.name, prm.bytes);
      for (const auto& prm : params) c.t.free("optimizer_temp/exp_avg_sq_sqrt/" + prm.name);
      return 0;
    case OptimizerKind::kAdamWForLoop:
      // _single_tensor_adam: (exp_avg_sq.sqrt() / bias_correction2_sqrt) allocates two temporaries per
      // parameter, freed at once
      if (step == 1) adam_states(c, params, false);
      for (const auto& prm : params) {
        c.t.alloc("optimizer_temp/sqrt", prm.bytes);
        c.t.alloc("optimizer_temp/denom", prm.bytes);
        c.t.free("optimizer_temp/sqrt");
        c.t.free("optimizer_temp/denom");
      }
      return 0;
  }
  return 0;
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
