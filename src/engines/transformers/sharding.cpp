// Training over several GPUs, rank 0 of N (see multi_gpu.cpp for the mechanisms and their sources): the
// single-GPU training replay through a view that shards what each scheme shards, and a phase hook that adds the
// communication buffers; DeepSpeed's own model-state estimators beside it.
#include <cstdlib>
#include <map>
#include <set>

#include "engine.hpp"
#include "llmem/units.hpp"

namespace llmem::transformers {
namespace {

// DeepSpeed 0.19.6 defaults (deepspeed/runtime/zero/config.py), in elements
constexpr uint64_t kReduceBucketElements = 500000000;  // reduce_bucket_size
constexpr uint64_t kPrefetchElements = 50000000;       // stage3_prefetch_bucket_size
// PyTorch 2.11 DDP: torch.distributed._DEFAULT_FIRST_BUCKET_BYTES and bucket_cap_mb=25
constexpr uint64_t kDdpFirstBucket = uint64_t{1} << 20;
constexpr uint64_t kDdpBucketCap = uint64_t{25} << 20;

bool zero(const std::string& s) { return s == "zero1" || s == "zero2" || s == "zero3"; }
uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

int64_t phase_layer(const std::string& phase) {
  const size_t at = phase.find("layer ");
  return at == std::string::npos ? -1 : std::strtoll(phase.c_str() + at + 6, nullptr, 10);
}

struct Shape {
  std::vector<uint64_t> unit;  // per decoder layer: parameter bytes in the trained dtype
  uint64_t root = 0;           // embeddings, final norm, LM head (FSDP2's root unit)
  uint64_t total_bytes = 0, total_params = 0;
  std::vector<uint64_t> reverse_bytes;  // per tensor, model.parameters() reversed (DDP's bucket order)
  uint64_t p = 2;                       // bytes per parameter
};

Shape shape_of(const ArchModel& m, const Workload& w) {
  Shape s;
  s.p = w.precision == TrainPrecision::kAmpBf16 ? 4 : 2;
  s.unit.assign(m.facts.n_layers, 0);
  for (const auto& t : m.tensors) {
    const uint64_t b = mul(t.numel(), s.p);
    if (t.layer >= 0 && static_cast<uint64_t>(t.layer) < s.unit.size()) s.unit[t.layer] += b;
    else s.root += b;
    s.total_bytes += b;
    s.total_params += t.numel();
    s.reverse_bytes.insert(s.reverse_bytes.begin(), b);
  }
  return s;
}

struct ShardHooks {
  const Shape& s;
  const Workload& w;
  bool init = false, ipg = false;
  std::set<std::string> live;

  uint64_t n() const { return w.gpus; }
  bool gathers() const { return w.sharding == "fsdp" || w.sharding == "zero3"; }
  void alloc(Tracker& t, const std::string& name, uint64_t bytes) {
    if (live.count(name) || bytes == 0) return;
    t.alloc("comm_buffers/" + name, bytes);
    live.insert(name);
  }
  void free(Tracker& t, const std::string& name) {
    if (!live.erase(name)) return;
    t.free("comm_buffers/" + name);
  }
  void free_prefix(Tracker& t, const std::string& prefix) {
    std::vector<std::string> v;
    for (const auto& n : live)
      if (n.rfind(prefix, 0) == 0) v.push_back(n);
    for (const auto& n : v) free(t, n);
  }
  uint64_t prefetch_bytes(uint64_t layer) const {
    const uint64_t b = s.unit[layer];
    return w.sharding == "zero3" ? std::min(b, kPrefetchElements * s.p) : b;
  }
  void gather(Tracker& t, int64_t layer, bool prefetch) {
    if (layer < 0 || static_cast<uint64_t>(layer) >= s.unit.size()) return;
    alloc(t, concat("all_gather/", layer), prefetch ? prefetch_bytes(layer) : s.unit[layer]);
  }
  void init_buffers(Tracker& t) {
    init = true;
    if (w.sharding == "ddp") {
      // Reducer: buckets filled in reverse parameter order, the first up to 1 MiB, the rest up to 25 MiB
      uint64_t bucket = 0, limit = kDdpFirstBucket;
      int i = 0;
      for (uint64_t b : s.reverse_bytes) {
        bucket += b;
        if (bucket >= limit) {
          alloc(t, concat("ddp_bucket/", i++), bucket);
          bucket = 0;
          limit = kDdpBucketCap;
        }
      }
      alloc(t, concat("ddp_bucket/", i), bucket);
    }
    if (zero(w.sharding) && w.precision == TrainPrecision::kBf16) {
      t.alloc("master_weights/fp32_partition", ceil_div(mul(s.total_params, 4), n()));
    }
    if (w.sharding == "zero3") alloc(t, "ipg_bucket", kReduceBucketElements * s.p);  // at the optimizer's init
  }
  void operator()(Tracker& t, const std::string& phase) {
    if (!init && phase.rfind("step 1", 0) == 0) init_buffers(t);
    const int64_t L = phase_layer(phase);
    const bool forward = phase.find("forward") != std::string::npos, backward = phase.find("backward") != std::string::npos;
    if (phase.find("optimizer") != std::string::npos) {
      free_prefix(t, "all_gather/");
      free_prefix(t, "reduce_scatter/");
      free(t, "all_gather_root");
      if ((w.sharding == "zero1" || w.sharding == "zero2") && w.precision == TrainPrecision::kBf16)
        alloc(t, "fp32_grad_partition", ceil_div(mul(s.total_params, 4), n()));  // single_grad_partition
      return;
    }
    free(t, "fp32_grad_partition");
    if (backward && !ipg && (w.sharding == "zero1" || w.sharding == "zero2")) {
      ipg = true;  // allocated at the first backward (stage_1_and_2.py, contiguous_gradients)
      alloc(t, "ipg_bucket", kReduceBucketElements * s.p);
    }
    if (!gathers()) return;
    if (forward) {
      alloc(t, "all_gather_root", s.root);
      if (L < 0) return;
      free(t, concat("all_gather/", L - 1));  // resharded after its forward
      free(t, concat("all_gather/", L));      // a prefetch becomes the layer's own gather
      gather(t, L, false);
      gather(t, L + 1, true);
    } else if (phase.find("loss") != std::string::npos) {
      free_prefix(t, "all_gather/");
    } else if (backward && L >= 0) {
      free(t, concat("all_gather/", L + 1));
      free(t, concat("reduce_scatter/", L + 2));
      free(t, concat("all_gather/", L));
      gather(t, L, false);
      gather(t, L - 1, true);
      // the layer just finished: its unsharded gradients and their flat reduce-scatter input (FSDP2); ZeRO-3
      // copies them into its ipg bucket, which exists already
      if (static_cast<uint64_t>(L + 1) < s.unit.size())
        alloc(t, concat("reduce_scatter/", L + 1), s.unit[L + 1] * (w.sharding == "fsdp" ? 2 : 1));
    }
  }
};

// What rank 0 holds of each allocation of the single-GPU replay.
uint64_t rank_view(const Workload& w, const std::string& name, uint64_t bytes) {
  const std::string cat = name.substr(0, name.find('/'));
  const uint64_t n = w.gpus;
  const bool z = zero(w.sharding), fsdp = w.sharding == "fsdp";
  if (cat == "weights" || cat == "lora") return (fsdp || w.sharding == "zero3") ? ceil_div(bytes, n) : bytes;
  if (cat == "gradients") return (fsdp || w.sharding == "zero2" || w.sharding == "zero3") ? ceil_div(bytes, n) : bytes;
  if (cat == "optimizer_states") {
    if (z) return ceil_div(mul(bytes, w.precision == TrainPrecision::kBf16 ? 2 : 1), n);  // fp32 Adam states
    return fsdp ? ceil_div(bytes, n) : bytes;
  }
  if (cat == "optimizer_temp") return z ? 0 : fsdp ? ceil_div(bytes, n) : bytes;  // FusedAdam: no temporaries
  return bytes;
}

// DeepSpeed 0.19.6's own estimators (no offload), as written in stage_1_and_2.py and stage3.py.
void deepspeed_line(Estimate& e, const ArchModel& m, const Workload& w, const GpuEstimate& rank) {
  if (!zero(w.sharding)) return;
  if (w.sharding == "zero1") {
    e.multi_gpu_lines.push_back("DeepSpeed has no estimator for stage 1 (only estimate_zero2_/zero3_model_states_mem_needs)");
    return;
  }
  uint64_t total = 0, largest = 0;
  std::map<std::string, uint64_t> by_module;  // model_to_params: direct parameters of each module
  for (const auto& t : m.tensors) {
    total += t.numel();
    by_module[t.name.substr(0, t.name.rfind('.'))] += t.numel();
  }
  for (const auto& [mod, params] : by_module) largest = std::max(largest, params);
  const double n = static_cast<double>(w.gpus);
  uint64_t gpu_mem = 0;
  std::string fn;
  if (w.sharding == "zero2") {
    gpu_mem = 2 * total + static_cast<uint64_t>(18.0 * static_cast<double>(total) / n);
    fn = "estimate_zero2_model_states_mem_needs (stage_1_and_2.py): 2 x params + int(18 x params / GPUs)";
  } else {
    gpu_mem = 4 * largest + static_cast<uint64_t>(18.0 * static_cast<double>(total) / n);
    fn = fmt::format("estimate_zero3_model_states_mem_needs (stage3.py): 4 x largest layer ({} params) + int(18 x "
                     "params / GPUs)", format_thousands(largest));
  }
  uint64_t acts = 0, comm = 0, other = 0;
  for (const auto& c : rank.components) {
    if (c.name == "activations" || c.name == "saved_activations" || c.name == "logits" || c.name == "loss") acts += c.bytes;
    else if (c.name == "comm_buffers") comm += c.bytes;
    else if (c.name == "allocator_cached" || c.name == "cuda_context" || c.name == "workspace") other += c.bytes;
  }
  auto gib = [](uint64_t b) { return static_cast<double>(b) / 1073741824.0; };
  e.multi_gpu_lines.push_back(fmt::format(
      "DeepSpeed's estimator says {:.2f} GiB per GPU ({}, cpu_offload=False, DeepSpeed 0.19.6); it counts model "
      "states only and omits activations ({:.2f} GiB here), communication buffers ({:.2f} GiB) and the CUDA "
      "context, cuBLAS workspace and allocator cache ({:.2f} GiB)",
      gib(gpu_mem), fn, gib(acts), gib(comm), gib(other)));
}

}  // namespace

void estimate_sharded_training(Estimate& e, const ArchModel& m, const Geometry& g, const Workload& w, const GpuProfile& gpu) {
  const Shape s = shape_of(m, w);
  Tracker t(true, w.expandable_segments);
  t.set_view([&w](const std::string& name, uint64_t bytes) { return rank_view(w, name, bytes); });
  if (w.sharding == "fsdp") t.set_side_stream_category("comm_buffers");
  ShardHooks hooks{s, w, false, false, {}};
  t.set_phase_hook([&hooks](Tracker& tr, const std::string& phase) { hooks(tr, phase); });
  run_training(t, m, g, w);
  Estimate one;
  one.framework_peak_bytes = t.peak_allocated();
  one.reserved_peak_bytes = t.peak_reserved();
  itemise(one, t, w, gpu);
  for (auto& c : one.components) {
    if (c.name == "optimizer_states" && zero(w.sharding))
      c.detail = "AdamW exp_avg and exp_avg_sq of this rank's partition, fp32 (DeepSpeed's optimizer over the flat partition)";
    else if ((c.name == "weights" || c.name == "gradients" || c.name == "optimizer_states") && c.detail.find("1/N") == std::string::npos &&
             rank_view(w, c.name + "/x", 1u << 20) < (1u << 20))
      c.detail += fmt::format(" (this rank's 1/{} shard)", w.gpus);
  }
  // every rank alike (the same shard sizes, padded): rank 0 stands for all of them
  for (uint64_t r = 0; r < w.gpus; ++r) {
    GpuEstimate ge;
    ge.index = static_cast<unsigned>(r);
    ge.role = fmt::format("rank {} of {} ({})", r, w.gpus, w.sharding);
    ge.framework_peak_bytes = one.framework_peak_bytes;
    ge.reserved_peak_bytes = one.reserved_peak_bytes;
    ge.process_peak_bytes = one.process_peak_bytes;
    ge.peak_phase = t.peak_phase();
    ge.components = one.components;
    ge.weight_bytes = rank_view(w, "weights/all", s.total_bytes);
    ge.fits = ge.process_peak_bytes <= gpu.budget_bytes();
    e.per_gpu.push_back(std::move(ge));
  }
  e.notes.push_back("attention implementation: sdpa");
  const char* what = w.sharding == "ddp"     ? "DDP (PyTorch 2.11): replicated model, flat gradient buckets (1 MiB, then 25 MiB)"
                     : w.sharding == "fsdp"  ? "FSDP2 fully_shard per decoder layer and root (PyTorch 2.11 defaults): parameters, gradients and optimizer states sharded; one layer gathered, the next prefetched"
                     : w.sharding == "zero1" ? "DeepSpeed 0.19.6 ZeRO stage 1: optimizer states (and fp32 master weights) sharded; 5e8-element reduce bucket"
                     : w.sharding == "zero2" ? "DeepSpeed 0.19.6 ZeRO stage 2: gradients and optimizer states sharded; 5e8-element reduce bucket"
                                             : "DeepSpeed 0.19.6 ZeRO stage 3: parameters, gradients and optimizer states sharded; layers gathered, prefetch up to 5e7 elements";
  e.multi_gpu_lines.push_back(fmt::format("{} over {} GPUs; every rank holds what rank 0 does", what, w.gpus));
  deepspeed_line(e, m, w, e.per_gpu.front());
}

}  // namespace llmem::transformers
