// Several GPUs: the single-GPU replay (inference.cpp, training.cpp) run once per GPU or rank through a view that
// keeps what that device holds, plus what a phase boundary adds on it.
//
// Inference (--gpus N --device-map ...): from_pretrained places the modules (placement.cpp); accelerate's
// dispatch_model hooks every placed module (AlignDevicesHook, accelerate 1.15 hooks.py) so that its inputs are
// copied to its device when they arrive from another one: a layer after a device boundary holds a copy of the
// hidden state, and every layer off the rotary embedding's device copies cos and sin (and the mask) for the
// length of its forward. Each GPU has its own CUDA context and, from its first matmul, its own cuBLAS workspace.
// The KV cache of a layer lives on the layer's device.
//
// Training (--gpus N --sharding ...), rank 0 of N with every rank alike:
//  - ddp: PyTorch 2.11 DistributedDataParallel defaults: the Reducer's flat gradient buckets (first bucket 1 MiB,
//    dist._DEFAULT_FIRST_BUCKET_BYTES; then bucket_cap_mb 25), over the parameters in reverse order, allocated at
//    construction and kept (gradient_as_bucket_view=False: .grad and bucket are separate);
//  - fsdp: FSDP2 fully_shard on each decoder layer and the root, defaults (reshard_after_forward=True, no mixed
//    precision policy): parameters, gradients and optimizer states sharded 1/N; a layer's parameters all-gathered
//    for its forward and again for its backward, the next layer's prefetched (one ahead); after a layer's
//    backward its unsharded gradients and the reduce-scatter input (their flat copy) until the scatter; the root
//    (embeddings, final norm, LM head) gathered from the forward to the end of the backward;
//  - zero1/zero2/zero3: DeepSpeed 0.19.6 (deepspeed/runtime/zero/stage_1_and_2.py, stage3.py, config.py defaults:
//    reduce_bucket_size 5e8, allgather_bucket_size 5e8, stage3_prefetch_bucket_size 5e7, stage3_max_live_parameters
//    1e9, contiguous_gradients True, overlap_comm False for stages 1-2 and True for 3) with bf16 enabled: fp32 master
//    weights and fp32 Adam states of the rank's partition; the ipg reduce bucket (reduce_bucket_size elements, in
//    the parameters' dtype; two with overlap_comm), the partition's fp32 gradients during the step (stages 1-2);
//    stage 3 gathers layers as FSDP does, its prefetch capped at stage3_prefetch_bucket_size elements.
// Modelled from the sources. Rank 0 of DDP and FSDP2 measured with the fake process group (bench/gpu/
// fake_pg_scenarios.py -> bench/data/fake_pg_memory*.jsonl): FSDP2's reserved memory is underestimated (the
// all-gather and reduce-scatter streams' own allocator pools are not modelled).
#include <cctype>
#include <cstdlib>

#include "engine.hpp"
#include "llmem/placement.hpp"

namespace llmem::transformers {
namespace {

bool starts(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// "layer 12 (512 tokens)" -> 12; "step 1 forward, layer 3" -> 3; -1 when the phase names no layer.
int64_t phase_layer(const std::string& phase) {
  const size_t at = phase.find("layer ");
  if (at == std::string::npos) return -1;
  return std::strtoll(phase.c_str() + at + 6, nullptr, 10);
}

GpuEstimate finish(unsigned index, const Tracker& t, const Workload& w, const GpuProfile& gpu) {
  Estimate e;
  e.framework_peak_bytes = t.peak_allocated();
  e.reserved_peak_bytes = t.peak_reserved();
  itemise(e, t, w, gpu);
  GpuEstimate g;
  g.index = index;
  g.framework_peak_bytes = e.framework_peak_bytes;
  g.reserved_peak_bytes = e.reserved_peak_bytes;
  g.process_peak_bytes = e.process_peak_bytes;
  g.peak_phase = t.peak_phase();
  g.components = e.components;
  g.fits = g.process_peak_bytes <= gpu.budget_bytes();
  return g;
}

// ---- inference split by from_pretrained's device_map ----------------------------------------------------------

struct Split {
  const Placement& p;
  const Geometry& g;
  int rotary = 0;     // the rotary embedding's device (where cos and sin are made)
  int first_mm = 0;   // the device of the process's first matmul (the replay's workspace/cublas)
  // Whether the replay's layer `l` is placed, and where (the placement numbers the decoder's layers, which the
  // replay may skip some of: Geometry::decoder_layer).
  bool placed(uint64_t l) const { return g.decoder_index(l) < p.layer_device.size(); }
  int layer_device(uint64_t l) const { return p.layer_device[g.decoder_index(l)]; }
};

int tensor_device_or(const Placement& p, const std::string& name, int fallback) {
  auto it = p.tensor_device.find(name);
  return it == p.tensor_device.end() ? fallback : it->second;
}

// The whole number a name part starts with (its leading digits; 0 for none), as strtoull reads the replay's names.
uint64_t leading_number(std::string_view text) {
  uint64_t n = 0;
  for (size_t i = 0; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) n = n * 10 + (text[i] - '0');
  return n;
}

// The device that holds a tensor of the inference replay, by its name (read in place: the replay routes each of its
// allocations).
int route(const Split& s, const std::string& name) {
  const Placement& p = s.p;
  const size_t slash = name.find('/');
  const std::string_view cat = std::string_view(name).substr(0, slash);
  const std::string_view rest = slash == std::string::npos ? std::string_view() : std::string_view(name).substr(slash + 1);
  auto layer_dev = [&](std::string_view num) {
    const uint64_t l = leading_number(num);
    return s.placed(l) ? s.layer_device(l) : p.embed_device;
  };
  if (cat == "weights") return rest == "untied_head" ? p.head_device : tensor_device_or(p, std::string(rest), p.embed_device);
  if (cat == "kv_cache") return layer_dev(rest);
  if (cat == "workspace")
    return rest == "cublas" ? s.first_mm : static_cast<int>(leading_number(rest.substr(rest.rfind('_') + 1)));
  if (cat == "logits") return rest == "next_token_f32" ? p.embed_device : p.head_device;
  if (cat == "activations") {
    if (!rest.empty() && std::isdigit(static_cast<unsigned char>(rest[0]))) return layer_dev(rest);
    if (rest.starts_with("hidden")) return layer_dev(rest.substr(6));
    if (rest.starts_with("hook/")) return static_cast<int>(leading_number(rest.substr(5)));
    if (rest.starts_with("final_norm")) return p.norm_device;
    if (rest == "cos" || rest == "sin") return s.rotary;
  }
  return p.embed_device;  // inputs, the embeddings' output, the masks
}

// The copies a device's hooks make at a phase boundary: a layer's inputs that come from another device.
struct InferenceHooks {
  const Split& s;
  const Geometry& g;
  const Workload& w;
  const Tracker& replay;  // what is live on any device
  int device;
  bool workspace;
  std::vector<std::string> copies;

  void copy(Tracker& t, const std::string& what, uint64_t bytes) {
    const std::string n = concat("activations/hook/", device, "/", what);
    t.alloc(n, bytes);
    copies.push_back(n);
  }
  void first_matmul_here(Tracker& t) {
    if (workspace) return;
    t.alloc(concat("workspace/cublas_", device), kCublasWorkspaceBytes);
    workspace = true;
  }
  void operator()(Tracker& t, const std::string& phase) {
    for (const auto& n : copies) t.free(n);
    copies.clear();
    const uint64_t B = w.batch, P = w.prompt_tokens, el = dtype_info(w.dtype).block_bytes;
    const Placement& p = s.p;
    if (starts(phase, "layer ")) {
      const int64_t L = phase_layer(phase);
      if (L < 0 || !s.placed(static_cast<uint64_t>(L)) || s.layer_device(static_cast<uint64_t>(L)) != device) return;
      first_matmul_here(t);
      const int prev = L == 0 ? p.embed_device : s.layer_device(static_cast<uint64_t>(L) - 1);
      if (prev != device) copy(t, "hidden", mul(B, P, g.hidden, el));
      if (s.rotary != device && replay.live("activations/cos")) {
        copy(t, "cos", mul(B, P, g.head_dim, el));
        copy(t, "sin", mul(B, P, g.head_dim, el));
      }
      if (p.embed_device != device && replay.live("activations/causal_mask")) copy(t, "causal_mask", mul(B, P, P, el));
      if (p.embed_device != device && replay.live("activations/sdpa_mask")) copy(t, "sdpa_mask", mul(B, P, P));
    } else if (starts(phase, "final norm")) {
      if (p.norm_device == device && !p.layer_device.empty() && p.layer_device.back() != device)
        copy(t, "hidden", mul(B, P, g.hidden, el));
      if (p.head_device == device) first_matmul_here(t);
    }
  }
};

std::string device_role(const Placement& p, int d) {
  std::vector<std::string> parts;
  if (p.embed_device == d) parts.push_back("embeddings");
  int64_t lo = -1, hi = -1;
  for (size_t l = 0; l < p.layer_device.size(); ++l)
    if (p.layer_device[l] == d) {
      if (lo < 0) lo = static_cast<int64_t>(l);
      hi = static_cast<int64_t>(l);
    }
  if (lo >= 0) parts.push_back(lo == hi ? fmt::format("layer {}", lo) : fmt::format("layers {}-{}", lo, hi));
  if (p.norm_device == d) parts.push_back("final norm");
  if (p.head_device == d) parts.push_back("LM head and logits");
  if (parts.empty()) return "nothing placed";
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
  return out;
}

PlacementRequest placement_request(const Workload& w, const GpuProfile& gpu) {
  PlacementRequest r;
  r.kind = device_map_from_name(w.device_map.empty() ? "auto" : w.device_map).value_or(DeviceMapKind::kAuto);
  r.dtype = w.dtype;
  if (!w.max_memory.empty()) {
    for (const auto& [i, b] : w.max_memory) r.max_memory.emplace_back(i, static_cast<double>(b));
    r.user_set_max_memory = true;
    return r;
  }
  // get_max_memory(): torch.cuda.mem_get_info(i)[0] after torch.tensor([0], device=i), which creates the CUDA
  // context and a 2 MiB segment; and psutil's available RAM for "cpu" (unknown here: taken as unbounded)
  const uint64_t taken = gpu.in_use_bytes + gpu.cuda_context_bytes + (uint64_t{2} << 20);
  const uint64_t free = gpu.memory_bytes > taken ? gpu.memory_bytes - taken : 0;
  for (uint64_t i = 0; i < w.gpus; ++i) r.max_memory.emplace_back(static_cast<int>(i), static_cast<double>(free));
  r.max_memory.emplace_back(kCpuDevice, 1e18);
  r.user_set_max_memory = false;
  return r;
}

// place_model's answer, from the cache where an earlier estimate of the model placed it the same way
std::shared_ptr<const Placement> placed(const ArchModel& m, const PlacementRequest& r, ReplayCache* cache) {
  if (!cache) return std::make_shared<const Placement>(place_model(m, r));
  ReplayCache::Placements& placements = cache->placements();
  {
    std::lock_guard<std::mutex> lock(placements.mutex);
    for (const auto& [model, request, placement] : placements.done)
      if (model == &m && request == r) return placement;
  }
  auto placement = std::make_shared<const Placement>(place_model(m, r));
  std::lock_guard<std::mutex> lock(placements.mutex);
  placements.done.emplace_back(&m, r, placement);
  return placement;
}

void split_inference(Estimate& e, const ArchModel& m, const Geometry& g, const Workload& w, const GpuProfile& gpu,
                     ReplayCache* cache) {
  const std::shared_ptr<const Placement> placement = placed(m, placement_request(w, gpu), cache);
  Split s{*placement, g};
  s.rotary = tensor_device_or(s.p, "", s.p.embed_device);
  for (const auto& [name, dev] : s.p.tensor_device)
    if (name.find("rotary_emb.inv_freq") != std::string::npos) s.rotary = dev;
  s.first_mm = g.rope ? s.rotary : (s.p.layer_device.empty() ? s.p.embed_device : s.p.layer_device[0]);
  // one replay, each tensor's events on its own device's tracker (Tracker::fan_out)
  Tracker replay(true, w.expandable_segments);
  std::vector<Tracker> trackers;
  trackers.reserve(w.gpus);
  std::vector<InferenceHooks> hooks;
  hooks.reserve(w.gpus);
  std::vector<Tracker*> devices;
  for (uint64_t d = 0; d < w.gpus; ++d) {
    const int dev = static_cast<int>(d);
    trackers.emplace_back(true, w.expandable_segments);
    hooks.push_back(InferenceHooks{s, g, w, replay, dev, dev == s.first_mm, {}});
    trackers.back().set_phase_hook([&h = hooks.back()](Tracker& tr, const std::string& phase) { h(tr, phase); });
    devices.push_back(&trackers.back());
  }
  replay.fan_out(devices, [&](const std::string& name) {
    const int dev = route(s, name);  // the CPU or the disk: on no GPU
    return dev >= 0 && static_cast<uint64_t>(dev) < w.gpus ? static_cast<size_t>(dev) : SIZE_MAX;
  });
  const std::string attn = run_inference(replay, m, g, w);
  for (uint64_t d = 0; d < w.gpus; ++d) {
    const int dev = static_cast<int>(d);
    GpuEstimate ge = finish(static_cast<unsigned>(d), trackers[d], w, gpu);
    ge.role = device_role(s.p, dev);
    for (const auto& [module, mdev] : s.p.device_map)
      if (mdev == dev) ge.modules.push_back(module.empty() ? "(the whole model)" : module);
    auto it = s.p.bytes_on.find(dev);
    ge.weight_bytes = it == s.p.bytes_on.end() ? 0 : it->second;
    e.per_gpu.push_back(std::move(ge));
  }
  e.notes.push_back("attention implementation: " + attn);
  std::string mm;
  for (const auto& [d, v] : s.p.max_memory)
    mm += fmt::format("{}{}: {}", mm.empty() ? "" : ", ", device_label(d),
                      d == kCpuDevice && v >= 1e17 ? std::string("unbounded") : fmt::format("{:.2f} GiB", v / 1073741824.0));
  e.multi_gpu_lines.push_back(fmt::format(
      "from_pretrained(device_map=\"{}\") as transformers 5.17 places it (accelerate 1.15's algorithm); "
      "infer_auto_device_map's max_memory: {}{}",
      device_map_name(placement_request(w, gpu).kind), mm,
      w.max_memory.empty() ? " (get_max_memory: each GPU's free memory after its CUDA context; host RAM unbounded)" : ""));
  if (s.p.no_split_buffer)
    e.multi_gpu_lines.push_back(fmt::format("get_balanced_memory's buffer: {:.2f} GiB (1.25 x the largest of the first "
                                            "no-split layer and the mean leaf module)",
                                            static_cast<double>(s.p.no_split_buffer) / 1073741824.0));
  uint64_t off = 0;
  for (const auto& [d, b] : s.p.bytes_on)
    if (d < 0) off += b;
  e.offloaded_weight_bytes = off;
  if (off)
    e.notes.push_back(fmt::format("{:.2f} GiB of weights do not fit the GPUs' max_memory and go to {} (accelerate "
                                  "offloads them; their per-forward copies to GPU 0 are not modelled)",
                                  static_cast<double>(off) / 1073741824.0, s.p.bytes_on.count(kDiskDevice) ? "the CPU or disk" : "the CPU"));
}

}  // namespace

// The training half lives in sharding.cpp.
void estimate_sharded_training(Estimate& e, const ArchModel& m, const Geometry& g, const Workload& w, const GpuProfile& gpu);

void estimate_multi_gpu(Estimate& e, const ArchModel& m, const Geometry& g, const Workload& w, const GpuProfile& gpu,
                        ReplayCache* cache) {
  if (w.mode == RunMode::kTrain) estimate_sharded_training(e, m, g, w, gpu);
  else split_inference(e, m, g, w, gpu, cache);
  // the top-level figures: the GPU with the largest process peak (what decides whether the run fits)
  const GpuEstimate* worst = &e.per_gpu.front();
  for (const auto& ge : e.per_gpu)
    if (ge.process_peak_bytes > worst->process_peak_bytes) worst = &ge;
  e.framework_peak_bytes = worst->framework_peak_bytes;
  e.reserved_peak_bytes = worst->reserved_peak_bytes;
  e.process_peak_bytes = worst->process_peak_bytes;
  e.components = worst->components;
  e.peak_phase = fmt::format("GPU {}: {}", worst->index, worst->peak_phase);
  const DType weight_dtype = w.mode != RunMode::kTrain ? w.dtype
                             : w.precision == TrainPrecision::kAmpBf16 ? DType::F32 : DType::BF16;
  e.weight_bytes = weight_bytes_in(m, weight_dtype);
  e.notes.push_back(fmt::format(
      "{} GPUs: every figure is per GPU, modelled from the frameworks' source; the top-level peak is GPU {}'s, the "
      "largest. {}",
      w.gpus, worst->index,
      w.mode == RunMode::kTrain
          ? "Rank 0 of DDP and FSDP2 was measured with PyTorch's fake process group on one H200 (bench/data/"
            "fake_pg_memory*.jsonl): framework peak within 8.4 %, but FSDP2's reserved and process peaks run up to "
            "29 % above these figures; ZeRO is not measured"
          : "The placement equals from_pretrained's own device_map (4,000 settings checked); the per-GPU memory is "
            "not measured on several GPUs"));
}

}  // namespace llmem::transformers
