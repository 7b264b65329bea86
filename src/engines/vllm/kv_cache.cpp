// The KV cache as vLLM lays it out on one tensor-parallel rank, and how it counts blocks, tokens and concurrency.
//
// Per layer and token (vllm/v1/kv_cache_interface.py AttentionSpec.page_size_bytes; V0 worker/cache_engine.py
// get_cache_block_size): 2 (K and V) x KV heads on the rank x head size x element size; MLA caches one latent
// vector (kv_lora_rank + qk_rope_head_dim) per token and layer, shared by all heads, so it is not split by TP.
// KV heads per rank: max(1, kv_heads / tp) (config/model.py get_num_kv_heads: replicated when tp > kv heads).
// fp8 KV (--kv-cache-dtype fp8*) stores one byte per element.
//
// V1 0.11 (vllm/v1/core/kv_cache_utils.py):
//   - all full-attention layers form one group; with the hybrid allocator, sliding-window layers form their own
//     groups of the same size (_get_kv_cache_groups_uniform_page_size: group size = the smallest layer count);
//   - blocks = available // page_size // layers_per_group (get_num_blocks), shared by all groups;
//   - "GPU KV cache size" = blocks // groups x block_size tokens;
//   - one request needs cdiv(max_model_len, block) blocks per full-attention group and
//     cdiv(min(window - 1 + max_num_batched_tokens, max_model_len), block) + 1 per sliding group
//     (FullAttentionSpec / SlidingWindowSpec.max_memory_usage_bytes);
//   - "Maximum concurrency" = blocks / cdiv(bytes per request, bytes per block)
//     (get_max_concurrency_for_kv_cache_config).
// V0 (worker/worker.py, executor/executor_base.py): blocks = available // (block_size x bytes per token over all
// layers); concurrency = blocks x block_size / max_model_len; sliding windows do not shrink the allocation.
#include <algorithm>

#include "llmem/error.hpp"
#include "llmem/field_error.hpp"
#include "vllm_internal.hpp"

namespace llmem::vllm::detail {
namespace {

uint64_t cdiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

}  // namespace

KvLayout kv_layout(const ArchModel& model, const Checkpoint& ckpt, const VersionRules& rules, uint64_t tp,
                   uint64_t kv_elem_bytes, std::optional<uint64_t> block_size_flag) {
  const ModelFacts& f = model.facts;
  KvLayout kv;
  kv.mla = f.attention_kind == "mla";
  kv.block_size = block_size_flag.value_or(kv.mla ? rules.mla_block_size : 16);
  if (kv.block_size == 0) throw usage_error("block_size", "{field} must be positive");
  uint64_t per_token_layer = 0;
  for (const auto& a : f.attention) {
    if (!a.caches_kv) continue;
    uint64_t bytes;
    if (kv.mla) {
      if (ckpt.mla_latent_dim == 0)
        throw Error(ErrorKind::kInvalidInput, "", "MLA model without kv_lora_rank/qk_rope_head_dim in its config");
      bytes = ckpt.mla_latent_dim * kv_elem_bytes;
    } else {
      const uint64_t heads = a.kv_heads >= tp ? a.kv_heads / tp : 1;
      bytes = heads * (a.k_head_dim + a.v_head_dim) * kv_elem_bytes;
    }
    // vLLM requires one page size for all layers (kv_cache_utils: is_kv_cache_page_size_uniform); the models
    // llmem knows keep one per-token size across layers, and the largest is used if one ever differs.
    per_token_layer = std::max(per_token_layer, bytes);
    const bool sliding = rules.hybrid_kv_groups && a.sliding_window > 0;
    (sliding ? kv.sliding_layers : kv.full_layers) += 1;
    if (sliding) kv.sliding_window = std::max(kv.sliding_window, a.sliding_window);
  }
  kv.bytes_per_token_layer = per_token_layer;
  if (kv.full_layers && kv.sliding_layers) {
    const uint64_t group = std::min(kv.full_layers, kv.sliding_layers);
    kv.layers_per_group = group;
    kv.groups = cdiv(kv.full_layers, group) + cdiv(kv.sliding_layers, group);
  } else {
    kv.layers_per_group = kv.full_layers + kv.sliding_layers;
    kv.groups = kv.layers_per_group ? 1 : 0;
  }
  return kv;
}

uint64_t kv_needed_bytes(const KvLayout& kv, uint64_t max_model_len, uint64_t max_num_batched_tokens) {
  if (kv.groups == 0) return 0;
  const uint64_t page = kv.block_size * kv.bytes_per_token_layer;  // one block of one layer
  uint64_t per_layer_blocks_full = cdiv(max_model_len, kv.block_size);
  uint64_t bytes = kv.full_layers * per_layer_blocks_full * page;
  if (kv.sliding_layers) {
    const uint64_t tokens = std::min(kv.sliding_window - 1 + max_num_batched_tokens, max_model_len);
    bytes += kv.sliding_layers * (cdiv(tokens, kv.block_size) + 1) * page;
  }
  return bytes;
}

KvCount kv_count(const KvLayout& kv, const VersionRules& rules, int64_t available_bytes, uint64_t max_model_len,
                 uint64_t max_num_batched_tokens) {
  KvCount c;
  if (kv.groups == 0 || available_bytes <= 0) return c;
  const uint64_t avail = static_cast<uint64_t>(available_bytes);
  const uint64_t per_block = kv.bytes_per_block();
  c.blocks = avail / per_block;
  c.allocated_bytes = c.blocks * per_block;
  if (!rules.v1) {
    c.tokens = c.blocks * kv.block_size;
    c.max_concurrency = static_cast<double>(c.tokens) / static_cast<double>(max_model_len);
    return c;
  }
  c.tokens = c.blocks / kv.groups * kv.block_size;
  // Blocks one request takes: each group counts once, with its per-layer need in pages.
  const uint64_t group = kv.layers_per_group;
  uint64_t pages = cdiv(kv.full_layers, group) * cdiv(max_model_len, kv.block_size);
  if (kv.sliding_layers) {
    const uint64_t tokens = std::min(kv.sliding_window - 1 + max_num_batched_tokens, max_model_len);
    pages += cdiv(kv.sliding_layers, group) * (cdiv(tokens, kv.block_size) + 1);
  }
  const double per_request = rules.concurrency_whole_blocks
                                 ? static_cast<double>(pages)
                                 : static_cast<double>(max_model_len) / static_cast<double>(kv.block_size);
  c.max_concurrency = static_cast<double>(c.blocks) / std::max(per_request, 1e-9);
  return c;
}

uint64_t kv_max_len_for(const KvLayout& kv, int64_t available_bytes, uint64_t limit, uint64_t max_num_batched_tokens) {
  // kv_cache_utils.estimate_max_model_len: binary search for the longest request that fits.
  if (available_bytes <= 0 || kv.groups == 0) return 0;
  const uint64_t avail = static_cast<uint64_t>(available_bytes);
  if (kv_needed_bytes(kv, 1, max_num_batched_tokens) > avail) return 0;
  uint64_t lo = 1, hi = limit, best = 1;
  while (lo <= hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if (kv_needed_bytes(kv, mid, max_num_batched_tokens) <= avail) {
      best = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return best;
}

}  // namespace llmem::vllm::detail
