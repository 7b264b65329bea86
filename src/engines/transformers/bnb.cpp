// bitsandbytes 0.48.2 storage arithmetic (see bnb.hpp): bitsandbytes/functional.py quantize_4bit,
// quantize_blockwise, get_4bit_type; backends/cuda/ops.py; nn/modules.py Params4bit._quantize;
// optim/optimizer.py Optimizer2State.init_state, get_state_buffer.
#include "bnb.hpp"

namespace llmem::transformers::bnb {
namespace {

uint64_t ceil_div(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

}  // namespace

std::vector<Piece> quantized_4bit_pieces(uint64_t numel, bool double_quant) {
  const uint64_t blocks = ceil_div(numel, kBlocksize4bit);
  std::vector<Piece> out = {{"weight", (numel + 1) / 2}, {"code", 16 * 4}};
  if (!double_quant) {
    out.push_back({"absmax", blocks * 4});
    return out;
  }
  out.push_back({"absmax", blocks});
  out.push_back({"absmax2", ceil_div(blocks, kBlocksizeNested) * 4});
  out.push_back({"code2", 256 * 4});
  out.push_back({"offset", 4});
  return out;
}

uint64_t quantized_4bit_bytes(uint64_t numel, bool double_quant) {
  uint64_t total = 0;
  for (const auto& p : quantized_4bit_pieces(numel, double_quant)) total += p.bytes;
  return total;
}

// bitsandbytes replaces nn.Linear modules only. transformers 5 holds MoE experts as fused 3-D nn.Parameters of an
// experts module (e.g. Qwen3MoeExperts.gate_up_proj [E, 2I, H]) and routers as plain parameters (Qwen3MoeTopKRouter),
// so both stay unquantised, and peft's prepare_model_for_kbit_training then casts them to fp32 with the rest
// (bitsandbytes issue #1849, open; the fused-experts Experts4bit of PR #1965 is not in 0.48.2).
bool quantized_4bit(const TensorInfo& t) {
  return t.layer >= 0 && t.shape.size() == 2 && is_linear_role(t.role) && t.role != TensorRole::kLmHead &&
         t.role != TensorRole::kExpert && t.role != TensorRole::kRouter;
}

AdamState adamw_8bit_state(uint64_t numel, bool paged) {
  AdamState s;
  const bool is_paged = paged && numel >= kPagedMinNumel;
  auto& states = is_paged ? s.managed : s.torch;
  if (numel < kMin8bitSize) {
    states.push_back({"state1", numel * 4});
    states.push_back({"state2", numel * 4});
    return s;
  }
  states.push_back({"state1", numel});
  states.push_back({"state2", numel});
  const uint64_t absmax = ceil_div(numel, kBlocksize8bitState) * 4;
  s.torch.push_back({"absmax1", absmax});
  s.torch.push_back({"absmax2", absmax});
  return s;
}

}  // namespace llmem::transformers::bnb
