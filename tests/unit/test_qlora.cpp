// QLoRA and bitsandbytes' 8-bit optimizers (issue 14), modelled from bitsandbytes 0.48.2 and peft 0.20.0 source (no
// GPU run: bitsandbytes is not installed on the GPU machine). The storage arithmetic is checked to the byte
// against figures worked out by hand from the source's shapes.
#include <gtest/gtest.h>

#include <string>

#include "bnb.hpp"
#include "llmem/arch.hpp"
#include "llmem/catalog.hpp"
#include "llmem/estimate.hpp"
#include "llmem/transformers.hpp"
#include "catalog_model.hpp"

using namespace llmem;
namespace bnb = llmem::transformers::bnb;

namespace {

using test::catalog_model;
using test::component;

Workload qlora(uint64_t seq, OptimizerKind opt = OptimizerKind::kAdamWForeach) {
  Workload w;
  w.mode = RunMode::kTrain;
  w.train = TrainMethod::kQLora;
  w.grad_ckpt = true;
  w.dtype = DType::BF16;
  w.prompt_tokens = seq;
  w.optimizer = opt;
  w.lora_targets = {"all-linear"};
  return w;
}

}  // namespace

// Llama-3.1-8B (hidden 4096, MLP 14336, 32 layers, 8 KV heads of 128): per layer q and o are 4096 x 4096 =
// 16,777,216 values, k and v 1024 x 4096 = 4,194,304, gate/up/down 14336 x 4096 = 58,720,256.
// NF4 + double quantisation, blocksize 64 (bitsandbytes 0.48.2 quantize_4bit), per weight:
//   q, o:    packed 8,388,608 + absmax uint8 262,144 + absmax2 fp32 ceil(262,144/256)=1,024 x 4 = 4,096
//            + code2 1,024 + offset 4 + NF4 code 64                                     = 8,655,940
//   k, v:    2,097,152 + 65,536 + 256 x 4 = 1,024 + 1,024 + 4 + 64                      = 2,164,804
//   MLP:     29,360,128 + 917,504 + 3,584 x 4 = 14,336 + 1,024 + 4 + 64                 = 30,293,060
//   a layer: 2 x 8,655,940 + 2 x 2,164,804 + 3 x 30,293,060                            = 112,520,668
//   32 layers:                                                                            3,600,661,376 bytes
// Without double quantisation (fp32 absmax): q, o 8,388,608 + 1,048,576 + 64 = 9,437,248; k, v 2,097,152 +
// 262,144 + 64 = 2,359,360; MLP 29,360,128 + 3,670,016 + 64 = 33,030,208; a layer 122,683,840; 32 layers
// 3,925,882,880 bytes.
// Not quantised: embed_tokens and lm_head 128,256 x 4096 = 525,336,576 values each, norms 32 x 2 x 4096 + 4096 =
// 266,240 values: in bf16 2,101,346,304 + 532,480 bytes (as loaded: 5,702,540,160 in all), in fp32 after
// prepare_model_for_kbit_training 4,202,692,608 + 1,064,960 (7,804,418,944 in all).
TEST(QLoRA, Llama31_8B_Nf4DoubleQuantMatchesBitsandbytesToTheByte) {
  const ArchModel m = catalog_model("meta-llama/Llama-3.1-8B");
  uint64_t quantised = 0, plain = 0, single = 0, count = 0;
  for (const auto& t : m.tensors) {
    if (bnb::quantized_4bit(t)) {
      quantised += bnb::quantized_4bit_bytes(t.numel(), true);
      single += bnb::quantized_4bit_bytes(t.numel(), false);
      ++count;
    } else {
      plain += t.numel();
    }
  }
  EXPECT_EQ(count, 32u * 7);
  EXPECT_EQ(quantised, 3'600'661'376u);
  EXPECT_EQ(single, 3'925'882'880u);
  EXPECT_EQ(plain, 2 * 525'336'576u + 266'240u);
  EXPECT_EQ(quantised + plain * 2, 5'702'540'160u);
  // the estimate's weights: after prepare_model_for_kbit_training
  const Estimate e = estimate_transformers(m, qlora(512), default_gpu());
  EXPECT_EQ(e.weight_bytes, 7'804'418'944u);
}

TEST(QLoRA, PiecesOfOneWeight) {
  // a 4096 x 4096 weight, as listed in the comment above
  const auto pieces = bnb::quantized_4bit_pieces(16'777'216, true);
  ASSERT_EQ(pieces.size(), 6u);
  EXPECT_EQ(pieces[0].what, "weight");
  EXPECT_EQ(pieces[0].bytes, 8'388'608u);
  EXPECT_EQ(bnb::quantized_4bit_bytes(16'777'216, true), 8'655'940u);
  // an odd count packs its last value alone: (n + 1) // 2 bytes; 65 values are two blocks
  EXPECT_EQ(bnb::quantized_4bit_bytes(65, false), 33u + 64 + 2 * 4);
}

// bitsandbytes 0.48.2 Optimizer2State.init_state
TEST(QLoRA, EightBitAdamStates) {
  // 4096 x 4096: two uint8 states and two fp32 absmax of 65,536 blocks of 256
  auto s = bnb::adamw_8bit_state(16'777'216, false);
  uint64_t torch = 0;
  for (const auto& p : s.torch) torch += p.bytes;
  EXPECT_EQ(torch, 2 * 16'777'216u + 2 * 65'536u * 4);
  EXPECT_TRUE(s.managed.empty());
  // below min_8bit_size (4096 elements): 32-bit states
  s = bnb::adamw_8bit_state(4095, true);
  ASSERT_EQ(s.torch.size(), 2u);
  EXPECT_EQ(s.torch[0].bytes + s.torch[1].bytes, 2 * 4095u * 4);
  // paged: only tensors of 1e5+ elements get managed buffers (a r=16 lora_A of 4096 inputs has 65,536)
  s = bnb::adamw_8bit_state(65'536, true);
  EXPECT_TRUE(s.managed.empty());
  s = bnb::adamw_8bit_state(16 * 14'336, true);  // down_proj's lora_A
  uint64_t managed = 0;
  for (const auto& p : s.managed) managed += p.bytes;
  EXPECT_EQ(managed, 2 * 229'376u);
  ASSERT_EQ(s.torch.size(), 2u);  // absmax1, absmax2 stay torch tensors
  EXPECT_EQ(s.torch[0].bytes, 896u * 4);
}

TEST(QLoRA, EachPieceIsItsOwnAllocationAndTheLmHeadIsCastUnderAutocast) {
  const ArchModel m = catalog_model("meta-llama/Llama-3.1-8B");
  const Estimate e = estimate_transformers(m, qlora(16), default_gpu());
  // every 4-bit piece is a tensor of its own, so the allocator rounds each to 512 bytes (the 4-byte offset and the
  // 64-byte code take a block each); the fp32 parameters likewise
  uint64_t rounded = 0;
  auto block = [](uint64_t b) { return (b + 511) / 512 * 512; };
  for (const auto& t : m.tensors) {
    if (!bnb::quantized_4bit(t)) {
      rounded += block(t.numel() * 4);
      continue;
    }
    for (const auto& p : bnb::quantized_4bit_pieces(t.numel(), true)) rounded += block(p.bytes);
  }
  EXPECT_EQ(component(e, "weights"), rounded);
  // at 16 tokens the backward's peak holds autocast's bf16 copy of the fp32 lm_head (128256 x 4096 x 2 bytes)
  EXPECT_GE(component(e, "saved_activations"), 128'256ull * 4096 * 2) << e.peak_phase;
  bool noted = false;
  for (const auto& n : e.notes) noted |= n.find("not measured") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST(QLoRA, PagedStatesAreOutsideTheAllocatorButInTheProcess) {
  const ArchModel m = catalog_model("meta-llama/Llama-3.1-8B");
  const Estimate plain = estimate_transformers(m, qlora(512, OptimizerKind::kAdamW8bit), default_gpu());
  const Estimate paged = estimate_transformers(m, qlora(512, OptimizerKind::kPagedAdamW8bit), default_gpu());
  EXPECT_EQ(component(plain, "optimizer_paged"), 0u);
  // all-linear r=16: per layer the adapters with 1e5+ values are gate/up's lora_B (14336 x 16 = 229,376) and
  // down's lora_A (16 x 14336): three tensors, two uint8 states each
  EXPECT_EQ(component(paged, "optimizer_paged"), 32u * 3 * 2 * 229'376);
  EXPECT_EQ(paged.process_peak_bytes,
            paged.reserved_peak_bytes + paged.gpu.cuda_context_bytes + paged.gpu.training_extra_bytes +
                component(paged, "optimizer_paged"));
  EXPECT_LT(paged.framework_peak_bytes, plain.framework_peak_bytes + 1);
}

TEST(QLoRA, EightBitStatesOnAFullFineTune) {
  // Qwen2.5-0.5B full bf16: AdamW keeps 2 x 2 bytes per value, AdamW8bit 2 x 1 plus 2 x 4 per 256
  const ArchModel m = catalog_model("Qwen/Qwen2.5-0.5B");
  Workload w;
  w.mode = RunMode::kTrain;
  w.dtype = DType::BF16;
  w.prompt_tokens = 64;
  w.optimizer = OptimizerKind::kAdamW8bit;
  const Estimate e8 = estimate_transformers(m, w, default_gpu());
  w.optimizer = OptimizerKind::kAdamWFused;
  const Estimate e32 = estimate_transformers(m, w, default_gpu());
  EXPECT_LT(component(e8, "optimizer_states"), component(e32, "optimizer_states") * 6 / 10);
  EXPECT_EQ(component(e8, "optimizer_temp"), 0u);
}
