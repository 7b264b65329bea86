// The optimizers users get (issue 14): each implementation's states and step temporaries as PyTorch 2.11 and
// transformers 5.17 make them, gradient accumulation, and the HF Trainer's resolved choices.
#include <gtest/gtest.h>

#include <string>

#include "alloc_sim.hpp"
#include "llmem/arch.hpp"
#include "llmem/catalog.hpp"
#include "llmem/estimate.hpp"
#include "llmem/transformers.hpp"
#include "catalog_model.hpp"

using namespace llmem;

namespace {

using test::catalog_model;
using test::component;

// Qwen2.5-0.5B, full bf16 fine-tuning of a short sequence: the peak is the optimizer step.
Workload short_full(OptimizerKind k) {
  Workload w;
  w.mode = RunMode::kTrain;
  w.dtype = DType::BF16;
  w.prompt_tokens = 64;
  w.optimizer = k;
  return w;
}

constexpr uint64_t kQwen05Embedding = 151'936ull * 896;  // vocab x hidden

// One bf16 copy of every parameter, each tensor its own allocation rounded to the allocator's 512 bytes (the
// biases of 896 and 128 values are not multiples of 512 bytes).
uint64_t bf16_copy_bytes(const ArchModel& m) {
  uint64_t total = 0;
  for (const auto& t : m.tensors) total += (t.numel() * 2 + 511) / 512 * 512;
  return total;
}

}  // namespace

TEST(Optimizers, ForeachAdamWHoldsOneTemporaryPerParameterAtOnce) {
  ArchModel m = catalog_model("Qwen/Qwen2.5-0.5B");
  const GpuProfile gpu = default_gpu();
  Estimate foreach_ = estimate_transformers(m, short_full(OptimizerKind::kAdamWForeach), gpu);
  Estimate fused = estimate_transformers(m, short_full(OptimizerKind::kAdamWFused), gpu);
  Estimate forloop = estimate_transformers(m, short_full(OptimizerKind::kAdamWForLoop), gpu);
  EXPECT_NE(foreach_.peak_phase.find("optimizer"), std::string::npos) << foreach_.peak_phase;
  // _foreach_sqrt(exp_avg_sqs): every parameter's size once more, in bf16 (each tensor a multiple of 512 bytes)
  const uint64_t copy = bf16_copy_bytes(m);
  EXPECT_EQ(component(foreach_, "optimizer_temp"), copy);
  // the fused kernel makes no temporary (its peak is elsewhere: the tied embedding's gradient sum)
  EXPECT_EQ(component(fused, "optimizer_temp"), 0u);
  EXPECT_GT(foreach_.framework_peak_bytes, fused.framework_peak_bytes);
  // the for-loop's two temporaries are those of one parameter, the largest being the embedding
  EXPECT_LE(component(forloop, "optimizer_temp"), 2 * 2 * kQwen05Embedding);
  EXPECT_LT(forloop.framework_peak_bytes, foreach_.framework_peak_bytes);
  // the states: exp_avg and exp_avg_sq in bf16
  EXPECT_EQ(component(foreach_, "optimizer_states"), 2 * copy);
}

TEST(Optimizers, SgdMomentumKeepsOneBufferAndAdafactorFactoredMoments) {
  ArchModel m = catalog_model("Qwen/Qwen2.5-0.5B");
  const GpuProfile gpu = default_gpu();
  Estimate sgd = estimate_transformers(m, short_full(OptimizerKind::kSgd), gpu);
  Estimate momentum = estimate_transformers(m, short_full(OptimizerKind::kSgdMomentum), gpu);
  EXPECT_EQ(component(sgd, "optimizer_states"), 0u);
  EXPECT_EQ(component(momentum, "optimizer_states"), bf16_copy_bytes(m));  // torch.clone(grad) per parameter
  EXPECT_EQ(component(momentum, "optimizer_temp"), 0u);

  Estimate ada = estimate_transformers(m, short_full(OptimizerKind::kAdafactor), gpu);
  // factored second moments of a [151936, 896] embedding: 151936 + 896 fp32 values, far below one parameter copy
  EXPECT_LT(component(ada, "optimizer_states"), bf16_copy_bytes(m) / 100);
  // at the embedding's update (the first parameter): grad.float(), p.float(), and two fp32 tensors of its size
  // (grad**2 and + eps; the old and new update; the update and -update)
  EXPECT_EQ(component(ada, "optimizer_temp"), 4 * 4 * kQwen05Embedding);
  EXPECT_NE(ada.peak_phase.find("optimizer"), std::string::npos) << ada.peak_phase;
}

TEST(Optimizers, GradientAccumulationKeepsGradientsThroughTheNextMicroBatch) {
  ArchModel m = catalog_model("TinyLlama/TinyLlama-1.1B-Chat-v1.0");
  const GpuProfile gpu = default_gpu();
  Workload w;
  w.mode = RunMode::kTrain;
  w.dtype = DType::BF16;
  w.prompt_tokens = 2048;
  w.batch = 4;
  w.grad_ckpt = true;
  w.optimizer = OptimizerKind::kAdamWFused;
  Estimate one = estimate_transformers(m, w, gpu);
  w.grad_accum = 2;
  Estimate two = estimate_transformers(m, w, gpu);
  w.grad_accum = 8;
  Estimate eight = estimate_transformers(m, w, gpu);
  // the second micro-batch's forward and backward run beside every .grad of the first
  EXPECT_GT(two.framework_peak_bytes, one.framework_peak_bytes);
  EXPECT_EQ(eight.framework_peak_bytes, two.framework_peak_bytes);
  EXPECT_EQ(eight.reserved_peak_bytes, two.reserved_peak_bytes);
  w.grad_accum = 0;
  EXPECT_THROW(estimate_transformers(m, w, gpu), Error);
}

TEST(Optimizers, HfTrainerResolvesFusedAdamWAndItsFp32LogitsStayBelowTheBackwardPeak) {
  ArchModel m = catalog_model("Qwen/Qwen2.5-0.5B");
  const GpuProfile gpu = default_gpu();
  Workload w;
  w.mode = RunMode::kTrain;
  w.dtype = DType::F32;
  w.precision = TrainPrecision::kAmpBf16;
  w.prompt_tokens = 2048;
  w.batch = 2;
  w.optimizer = OptimizerKind::kAdamWFused;
  Estimate plain = estimate_transformers(m, w, gpu);
  w.hf_trainer = true;
  Estimate hf = estimate_transformers(m, w, gpu);
  // accelerate's fp32 logits copy (T x V x 4 bytes) lives at the end of the forward beside the bf16 logits and the
  // fp32 log-softmax (10 bytes per logit); the backward's gradient chain holds 12 per logit, so the peak stays there
  EXPECT_EQ(hf.framework_peak_bytes, plain.framework_peak_bytes);
  EXPECT_NE(hf.peak_phase.find("backward"), std::string::npos) << hf.peak_phase;
  bool said = false;
  for (const auto& n : hf.notes) said |= n == "optimizer: adamw_torch_fused, because torch >= 2.8 (TrainingArguments' default)";
  EXPECT_TRUE(said);
}

TEST(AllocSimExpandable, GrowsOneSegmentIn20MiBPagesAndExtendsItsFreeTail) {
  sim::CachingAllocator a(true);
  const uint64_t MiB = 1u << 20;
  auto h1 = a.malloc(30 * MiB + 1);  // 30 MiB + 512 bytes: two 20 MiB pages
  EXPECT_EQ(a.reserved(), 40 * MiB);
  auto h2 = a.malloc(4 * MiB);  // fits in the 10 MiB - 512 bytes left at the end (split: >= 512 bytes remain)
  EXPECT_EQ(a.reserved(), 40 * MiB);
  a.free(h1);
  // 50 MiB: no free block fits (30 MiB + 512 at the start, 6 MiB - 512 at the end); the free tail (6 MiB - 512)
  // grows by what is missing, rounded up to 20 MiB pages: 60 MiB more
  auto h3 = a.malloc(50 * MiB);
  EXPECT_EQ(a.reserved(), 100 * MiB);
  a.free(h2);
  a.free(h3);
  // everything is free and merged into one 100 MiB block: a 90 MiB request needs no new page
  auto h4 = a.malloc(90 * MiB);
  EXPECT_EQ(a.reserved(), 100 * MiB);
  EXPECT_EQ(a.peak_reserved(), 100 * MiB);
  a.free(h4);
  auto s = a.malloc(1000);  // the small pool's own segment, in 2 MiB pages
  EXPECT_EQ(a.reserved(), 102 * MiB);
  a.free(s);
}

TEST(AllocSimExpandable, ReservesNoMoreThanTheDefaultAllocatorForATrainingRun) {
  ArchModel m = catalog_model("TinyLlama/TinyLlama-1.1B-Chat-v1.0");
  Workload w;
  w.mode = RunMode::kTrain;
  w.dtype = DType::BF16;
  w.prompt_tokens = 1024;
  w.batch = 4;
  Estimate plain = estimate_transformers(m, w, default_gpu());
  w.expandable_segments = true;
  Estimate exp = estimate_transformers(m, w, default_gpu());
  EXPECT_EQ(exp.framework_peak_bytes, plain.framework_peak_bytes);  // the allocator changes no tensor
  EXPECT_LE(exp.reserved_peak_bytes, plain.reserved_peak_bytes);
  EXPECT_GE(exp.reserved_peak_bytes, exp.framework_peak_bytes);
}
