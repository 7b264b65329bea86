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

}  // namespace llmem
