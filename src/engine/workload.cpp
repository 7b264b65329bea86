#include "llmem/engine.hpp"

namespace llmem {

const char* flash_attention_name(FlashAttention f) {
  switch (f) {
    case FlashAttention::kOn: return "on";
    case FlashAttention::kOff: return "off";
    case FlashAttention::kAuto: return "auto";
  }
  return "auto";
}

const char* kv_cache_impl_name(KvCacheImpl c) {
  switch (c) {
    case KvCacheImpl::kStatic: return "static";
    case KvCacheImpl::kOffloaded: return "offloaded";
    case KvCacheImpl::kDynamic: return "dynamic";
  }
  return "dynamic";
}

}  // namespace llmem

namespace llmem {

const char* optimizer_name(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::kAdamWForeach: return "adamw-foreach";
    case OptimizerKind::kAdamWFused: return "adamw-fused";
    case OptimizerKind::kAdamWForLoop: return "adamw-forloop";
    case OptimizerKind::kSgd: return "sgd";
    case OptimizerKind::kSgdMomentum: return "sgd-momentum";
    case OptimizerKind::kAdafactor: return "adafactor";
    case OptimizerKind::kAdamW8bit: return "adamw-8bit";
    case OptimizerKind::kPagedAdamW8bit: return "paged-adamw-8bit";
  }
  return "?";
}

}  // namespace llmem
