// from_pretrained's device_map placement (src/engines/transformers/placement.cpp): cases worked by hand from
// transformers 5.17 / accelerate 1.15's source, and every record the real functions wrote
// (bench/gpu/accelerate_placement.py -> bench/data/accelerate_placement.jsonl), which must match exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "llmem/arch.hpp"
#include "llmem/error.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/estimate.hpp"
#include "llmem/placement.hpp"
#include "llmem/transformers.hpp"
#include "catalog_model.hpp"

namespace llmem {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ArchModel catalog_model(const std::string& stem) {
  const std::string path = std::string(LLMEM_SOURCE_DIR) + "/data/catalog/" + stem + ".json";
  return model_from_config(HfConfig::parse(slurp(path), path));
}

constexpr double kGiB = 1073741824.0;

// TinyLlama in fp16: embeddings and LM head 131,072,000 B each (untied), 22 layers of 88,088,576 B, final norm
// 4,096 B, rotary buffers 256 B. Sequential over three 1 GiB GPUs: GPU 0 keeps room for the largest layer (the
// LM head, 131,072,000 B), so it takes the embeddings and floor(811,597,824 / 88,088,576) = 9 layers; GPU 1 12;
// GPU 2 the last layer, the norm, the rotary embedding and the head.
TEST(Placement, SequentialReservesTheLargestLayerOnGpu0) {
  PlacementRequest r;
  r.kind = DeviceMapKind::kSequential;
  r.dtype = DType::F16;
  r.max_memory = {{0, kGiB}, {1, kGiB}, {2, kGiB}};
  const Placement p = place_model(catalog_model("TinyLlama__TinyLlama-1.1B-Chat-v1.0"), r);
  ASSERT_EQ(p.layer_device.size(), 22u);
  EXPECT_EQ(p.layer_device[8], 0);
  EXPECT_EQ(p.layer_device[9], 1);
  EXPECT_EQ(p.layer_device[20], 1);
  EXPECT_EQ(p.layer_device[21], 2);
  EXPECT_EQ(p.embed_device, 0);
  EXPECT_EQ(p.head_device, 2);
  EXPECT_EQ(p.bytes_on.at(0), 131'072'000u + 9u * 88'088'576u);
  EXPECT_EQ(p.device_map.at("model.layers.9"), 1);
  EXPECT_EQ(p.device_map.at("lm_head"), 2);
  EXPECT_EQ(p.tensor_device.at("model.rotary_emb.inv_freq"), 2);
}

// balanced over {0: 2 GiB, 1: 2 GiB}: per GPU 2,200,097,024 // 2 = 1,100,048,512 plus 1.25 x the first decoder
// layer (88,088,576 > the mean leaf, 2,200,097,024 / 202) = 110,110,720: GPU 0 gets max_memory 1,210,159,232,
// which less the LM head's reserve holds the embeddings and 10 layers.
TEST(Placement, BalancedMemoryAsGetBalancedMemoryComputesIt) {
  PlacementRequest r;
  r.kind = DeviceMapKind::kBalanced;
  r.max_memory = {{0, 2 * kGiB}, {1, 2 * kGiB}};
  const Placement p = place_model(catalog_model("TinyLlama__TinyLlama-1.1B-Chat-v1.0"), r);
  ASSERT_EQ(p.max_memory.size(), 2u);
  EXPECT_EQ(p.max_memory[0].second, 1'210'159'232.0);
  EXPECT_EQ(p.max_memory[1].second, 2 * kGiB);
  EXPECT_EQ(p.no_split_buffer, 110'110'720u);
  EXPECT_EQ(p.layer_device[9], 0);
  EXPECT_EQ(p.layer_device[10], 1);
  EXPECT_EQ(p.head_device, 1);
}

// A tied LM head (Qwen2.5-0.5B) counts nothing of its own and goes with the embeddings.
TEST(Placement, TiedHeadFollowsTheEmbeddings) {
  PlacementRequest r;
  r.kind = DeviceMapKind::kSequential;
  r.max_memory = {{0, 0.4 * kGiB}, {1, 2 * kGiB}};
  const ArchModel m = catalog_model("Qwen__Qwen2.5-0.5B");
  ASSERT_FALSE(m.tied.empty());
  const Placement p = place_model(m, r);
  EXPECT_EQ(p.head_device, p.embed_device);
  EXPECT_EQ(p.tensor_device.at(m.tied.front().alias), p.tensor_device.at(m.tied.front().target));
}

TEST(Placement, NoGpuIsAUsageError) {
  PlacementRequest r;
  r.max_memory = {{kCpuDevice, 8 * kGiB}};
  EXPECT_THROW(place_model(catalog_model("TinyLlama__TinyLlama-1.1B-Chat-v1.0"), r), Error);
}

int device_of(const std::string& label) {
  if (label == "cpu") return kCpuDevice;
  if (label == "disk") return kDiskDevice;
  return std::stoi(label);
}

// Every record the real functions wrote: the balanced max_memory and each tensor's device, exactly.
TEST(Placement, MatchesEveryRecordedPlacement) {
  const std::string path = std::string(LLMEM_SOURCE_DIR) + "/bench/data/accelerate_placement.jsonl";
  std::ifstream in(path);
  if (!in) GTEST_SKIP() << "no records yet: bench/gpu/accelerate_placement.py writes " << path;
  size_t compared = 0, differing = 0;
  std::vector<std::string> names;  // the model's tensor names, from its first line; records give runs over them
  for (std::string line; std::getline(in, line);) {
    const auto rec = nlohmann::json::parse(line);
    if (rec.contains("names")) {
      names = rec.at("names").get<std::vector<std::string>>();
      continue;
    }
    if (!rec.value("ok", false)) continue;
    PlacementRequest r;
    r.kind = *device_map_from_name(rec.at("device_map").get<std::string>());
    r.dtype = *dtype_from_name(rec.at("dtype").get<std::string>());
    r.flavor = rec.at("flavor") == "accelerate" ? PlacementFlavor::kAccelerate : PlacementFlavor::kTransformers;
    for (const auto& [k, v] : rec.at("max_memory").items()) r.max_memory.emplace_back(device_of(k), v.get<double>());
    const std::string id = rec.at("model").get<std::string>() + " " + rec.at("dtype").get<std::string>() + " " +
                           rec.at("device_map").get<std::string>() + " " + rec.at("flavor").get<std::string>() + " " +
                           rec.at("max_memory").dump();
    const Placement p = place_model(as_built(catalog_model(rec.at("model"))), r);  // as the engine places it
    for (const auto& [k, v] : rec.at("balanced_max_memory").items()) {
      const int d = device_of(k);
      double ours = -1;
      for (const auto& [dd, vv] : p.max_memory)
        if (dd == d) ours = vv;
      // Known, unexplained: DeepSeek-V2-Lite's model size as accelerate sums it is 512 bytes below llmem's (its
      // parameter count agrees with PyTorch's to the unit; the buffers are the rotary embedding's two fp32 tables),
      // so the balanced max_memory of 'auto', 'balanced' and 'balanced_low_0' differs by 256-512 bytes; every
      // tensor's device still matches. Any other difference fails.
      const double tolerance = rec.at("model") == "deepseek-ai__DeepSeek-V2-Lite" ? 512 : 0;
      EXPECT_LE(std::fabs(ours - v.get<double>()), tolerance)
          << std::setprecision(17) << id << ": max_memory of " << k << ": ours " << ours << ", PyTorch's " << v.get<double>();
    }
    // every tensor's device; the first difference of a record is reported (one wrong module moves all after it)
    size_t i = 0;
    std::string first_difference;
    for (const auto& run : rec.at("tensor_device_runs")) {
      const auto dev = run.at(0).get<std::string>();
      for (size_t n = run.at(1).get<size_t>(); n > 0 && first_difference.empty(); --n, ++i) {
        if (i >= names.size()) first_difference = "more devices than tensor names";
        else if (auto it = p.tensor_device.find(names[i]); it == p.tensor_device.end())
          first_difference = "llmem has no tensor " + names[i];
        else if (device_label(it->second) != dev)
          first_difference = names[i] + " on " + device_label(it->second) + ", PyTorch's on " + dev;
      }
    }
    if (first_difference.empty() && i != names.size()) first_difference = "fewer devices than tensor names";
    EXPECT_EQ(first_difference, "") << id;
    if (!first_difference.empty()) ++differing;
    ++compared;
  }
  EXPECT_GT(compared, 0u) << path << " holds no successful record";
  EXPECT_EQ(differing, 0u) << differing << " of " << compared << " placements differ";
}

}  // namespace
}  // namespace llmem

// ---- the per-GPU estimates built on the placement and on the sharding (through the estimate seam) -----------

namespace llmem {
namespace {

using test::component;

EstimateResult run(WorkloadSpec w) {
  EstimateRequest r;
  r.source = "TinyLlama/TinyLlama-1.1B-Chat-v1.0";
  r.workload = std::move(w);
  return estimate(r);
}

// Split inference holds every weight once: the GPUs' weights add up to the single-GPU replay's.
TEST(MultiGpu, SplitWeightsAddUpToTheWholeModel) {
  WorkloadSpec one;
  WorkloadSpec split;
  split.n_gpus = 3;
  split.device_map = "sequential";
  split.max_memory = "0=1GiB,1=1GiB,2=1GiB";
  const Estimate single = run(one).estimate;
  const Estimate multi = run(split).estimate;
  ASSERT_EQ(multi.per_gpu.size(), 3u);
  uint64_t sum = 0;
  for (const auto& g : multi.per_gpu) sum += component(g.components, "weights");
  EXPECT_EQ(sum, component(single.components, "weights"));
  // the top level is the GPU with the largest process peak
  for (const auto& g : multi.per_gpu) EXPECT_LE(g.process_peak_bytes, multi.process_peak_bytes);
  // every GPU pays its own CUDA context
  for (const auto& g : multi.per_gpu) EXPECT_EQ(component(g.components, "cuda_context"), component(single.components, "cuda_context"));
}

// ZeRO-3 shards the weights 1/N (each tensor rounded up); DDP keeps them whole and adds gradient buckets as large
// as the gradients.
TEST(MultiGpu, ShardingDividesWhatEachSchemeShards) {
  WorkloadSpec full;
  full.train = "full";
  const Estimate single = run(full).estimate;
  WorkloadSpec z3 = full;
  z3.n_gpus = 4;
  z3.sharding = "zero3";
  const Estimate zero3 = run(z3).estimate;
  const uint64_t w1 = component(single.components, "weights"), w4 = component(zero3.components, "weights");
  EXPECT_GE(w4, w1 / 4);
  EXPECT_LE(w4, w1 / 4 + 512 * 400);  // one 512-byte rounding per tensor at most (TinyLlama has 201)
  EXPECT_GT(component(zero3.components, "master_weights"), 0u);
  bool said = false;
  for (const auto& l : zero3.multi_gpu_lines) said = said || l.rfind("DeepSpeed's estimator says", 0) == 0;
  EXPECT_TRUE(said);
  WorkloadSpec ddp = full;
  ddp.n_gpus = 2;
  ddp.sharding = "ddp";
  const Estimate d = run(ddp).estimate;
  EXPECT_EQ(component(d.components, "weights"), w1);
  EXPECT_GE(component(d.components, "comm_buffers"), single.weight_bytes);
}

}  // namespace
}  // namespace llmem
