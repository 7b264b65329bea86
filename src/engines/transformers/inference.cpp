// Inference: the weights, then a forward pass over the prompt (all positions' logits) or a generate (prefill, then
// one forward per new token through DynamicCache).
#include <algorithm>
#include <deque>
#include <map>
#include <string_view>

#include "engine.hpp"

namespace llmem::transformers {

uint64_t weight_bytes_in(const ArchModel& m, DType dtype, const LoadedWeights* loaded) {
  if (loaded) return loaded->bytes;
  uint64_t total = 0;
  for (const auto& t : m.tensors) total += dtype_bytes(dtype, t.numel()).value_or(0);
  return total;
}

namespace {

// core_model_loading.dot_natural_key: the checkpoint's names split at dots, whole-number parts compared as numbers
// ("layers.2" before "layers.10"); a name that is a prefix of the other (in whole parts) sorts first. Each name is
// written once as a byte string whose plain order (memcmp) is that order, so that a replay's sort of tens of
// thousands of names (an MoE's expert copies) compares bytes: per part a marker (1 a whole number, 2 text), then a
// number's length (8 bytes, most significant first) and its digits, or the text (a 0 byte as 0 255) ended by 0 0;
// after the last part a 0 (fewer parts first).
void append_natural_key(std::string& out, std::string_view name) {
  while (!name.empty()) {
    const size_t end = std::min(name.find('.'), name.size());
    const std::string_view part = name.substr(0, end);
    if (!part.empty() && part.find_first_not_of("0123456789") == std::string_view::npos) {
      char length[9] = {'\1'};
      for (int i = 0; i < 8; ++i) length[1 + i] = static_cast<char>((part.size() >> (56 - 8 * i)) & 0xff);
      out.append(length, sizeof length).append(part);
    } else if (part.find('\0') == std::string_view::npos) {
      out.append(1, '\2').append(part).append(2, '\0');
    } else {
      out += '\2';
      for (const char c : part) {
        out += c;
        if (c == '\0') out += '\xff';
      }
      out.append(2, '\0');
    }
    name.remove_prefix(std::min(end + 1, name.size()));
  }
  out += '\0';
}

// Stable-sorts `items` by the natural order of key(item).
template <class T, class Key>
void natural_sort(std::vector<T>& items, Key key) {
  std::string keys;
  std::vector<size_t> ends;  // keys of item i: [ends[i - 1], ends[i])
  ends.reserve(items.size());
  keys.reserve(items.size() * 96);
  for (const T& item : items) {
    append_natural_key(keys, key(item));
    ends.push_back(keys.size());
  }
  auto key_of = [&](size_t i) { return std::string_view(keys).substr(i ? ends[i - 1] : 0, ends[i] - (i ? ends[i - 1] : 0)); };
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key_of(a) < key_of(b); });
  std::vector<T> sorted;
  sorted.reserve(items.size());
  for (const size_t i : order) sorted.push_back(std::move(items[i]));
  items = std::move(sorted);
}

// from_pretrained of a checkpoint that stores MoE experts one by one (what save_pretrained writes), as transformers
// 5.17 loads it (core_model_loading.convert_and_load_state_dict_in_model): every tensor of the checkpoint, in
// natural name order, is submitted to a pool of GLOBAL_WORKERS = 4 threads that copy it to the GPU; the main thread
// takes the model's parameters in order and waits for each one's copies; a layer's expert parameters are converted
// as they complete (MergeModulelist: torch.stack of a projection's per-expert copies; Concatenate: torch.cat of the
// gate and up stacks), the converter whose first source sorts first going first (Mixtral's w1: gate_up, then down;
// Qwen3-MoE's and DeepSeek's down_proj: down first), each source's copies dropped when its conversion is done.
// Meanwhile the threads keep copying the next tensors into the holes the dropped copies leave, so the stacks and the
// concatenation find no room there (allocator traces of Mixtral-8x7B, Qwen3-30B-A3B and DeepSeek-V2-Lite loads,
// bench/data/traces). The thread race is replayed as the copy stream running kLookahead tensors ahead of the
// converter at each wait and after each conversion op: one worker's copy per op and thread, as the Mixtral trace
// shows it (3-5 copies between ops). A layer's copies of more than kMaxCopyChunks experts are replayed in that many
// groups, so that a fit of DeepSeek-V3 (58 layers of 256 experts) stays fast.
// One layer's experts, as the loader converts them: its fused targets and their bytes, and how many experts.
struct ExpertGroup {
  std::string down, gate_up;  // the tracker's names of the fused parameters
  uint64_t down_bytes = 0, gate_up_bytes = 0, experts = 0;
  // dequantised from FP8 as they load: the copies' bytes (one byte per element, as stored)
  uint64_t down_copy_bytes = 0, gate_up_copy_bytes = 0;
};
// A checkpoint tensor loaded without conversion: its checkpoint name (the model's) and bytes; from FP8, dequantised
// as it is set (its copy is in the parameter's dtype, `bytes`).
struct PlainTensor {
  std::string_view key;
  uint64_t bytes = 0;
  bool from_fp8 = false;
  uint64_t elements = 0;  // from FP8: its elements (the float32 temporaries' size)
};

// `dequantise` (FineGrainedFP8Config(dequantize=True) on an FP8 checkpoint whose experts are stored one by one): the
// experts' copies stay in F8_E4M3 (a renamed source keeps the stored dtype: convert_and_load_state_dict_in_model's
// `_dtype = None`), and the converter first dequantises each expert's copy (finegrained_fp8.py _dequantize_one: a
// float32 copy, the float32 product with the block scales, the result in the model's dtype, the float32 pair dropped
// at once), then drops a projection's copies, then stacks its results (gate's and up's both dequantised before
// either is stacked). The plain FP8 weights (attention) go through the same _dequantize_one from a copy already in
// the model's dtype, and their copy is dropped after. Each dequantisation is one op of the main thread, after which
// the four copy threads have each copied one more tensor: two weights and their two block-scale tensors. The
// allocator trace of a dequantised Qwen3-30B-A3B-FP8 load (bench/data/traces/*-dequant) shows 4.4-6 copies per
// dequantised expert, every copy of the 4-layer model made before the second layer converts. The scales (hundreds
// of bytes each, in the small pool) are not replayed.
void replay_stacking(Tracker& t, const std::vector<PlainTensor>& plain, std::map<std::string, ExpertGroup>& experts,
                     bool gate_up_first, bool dequantise) {
  constexpr size_t kLookahead = 4;
  constexpr uint64_t kDequantLookahead = 2;  // weights copied per dequantisation (four threads: two weights, two scales)
  constexpr uint64_t kMaxCopyChunks = 32;
  struct Group {  // one layer's experts
    const ExpertGroup* e = nullptr;
    uint64_t chunks = 1;
    size_t last = 0;    // the queue index of its last copy
    bool done = false;  // converted
  };
  struct Item {
    std::string_view key;  // the checkpoint name it sorts by
    std::string name;      // the tracker's name
    uint64_t bytes = 0;
    Group* group = nullptr;  // a layer's expert copy: its layer's experts
    uint64_t tensors = 1;    // the checkpoint tensors it stands for (a chunk of experts: its experts)
    bool from_fp8 = false;   // a plain tensor dequantised as it is set
    uint64_t elements = 0;   // ... and its elements
  };
  std::vector<Item> queue;
  queue.reserve(plain.size() + experts.size() * 3 * kMaxCopyChunks);
  for (const auto& p : plain) {
    const bool deq = dequantise && p.from_fp8;
    std::string name;
    name.reserve(13 + p.key.size());
    name.append("weights/").append(p.key).append(deq ? "/copy" : "");
    queue.push_back({p.key, std::move(name), p.bytes, nullptr, 1, deq, p.elements});
  }
  std::vector<Group> groups;
  groups.reserve(experts.size());
  std::deque<std::string> copy_keys;  // the expert copies' checkpoint names (a deque: the queue's views stay valid)
  for (auto& [module, e] : experts) {
    // dequantised, at most two experts to a chunk: the allocator trace's per-expert blocks (1.5 MiB copies, 3 MiB
    // results, 6 MiB float32 temporaries) fragment the segment so that 4 experts to a chunk missed a layer's new
    // segments (process peak -7 % and -8 % on Qwen3-30B-A3B-FP8), 2 and 1 both matched them
    const uint64_t chunks = dequantise ? std::max(kMaxCopyChunks, (e.experts + 1) / 2) : kMaxCopyChunks;
    Group& g = groups.emplace_back(Group{&e, std::min(std::max<uint64_t>(1, e.experts), chunks)});
    // the stored names sort expert by expert: Mixtral's w1 (gate), w2 (down), w3 (up); the others' down_proj,
    // gate_proj, up_proj
    const char* order[3] = {"down", "gate", "up"};
    if (gate_up_first) order[0] = "gate", order[1] = "down";
    for (uint64_t c = 0; c < g.chunks; ++c)
      for (int p = 0; p < 3; ++p) {
        const std::string proj = order[p];
        const bool down = proj == "down";
        const uint64_t total = dequantise ? (down ? e.down_copy_bytes : e.gate_up_copy_bytes / 2)
                                          : (down ? e.down_bytes : e.gate_up_bytes / 2);
        const std::string target = down ? e.down : e.gate_up + "/" + proj;
        const uint64_t in_chunk = e.experts / g.chunks + (c < e.experts % g.chunks);
        copy_keys.push_back(fmt::format("{}.experts.{}.{}{}", module, c, p, proj));
        queue.push_back({copy_keys.back(), concat(target, "/copy/", c), total / g.chunks, &g,
                         std::max<uint64_t>(1, in_chunk)});
      }
  }
  natural_sort(queue, [](const Item& item) -> std::string_view { return item.key; });
  for (size_t i = 0; i < queue.size(); ++i)
    if (queue[i].group) queue[i].group->last = i;
  size_t next = 0;  // the copy stream: queue[0, next) allocated
  auto copy_until = [&](size_t end) {
    for (end = std::min(end, queue.size()); next < end; ++next) t.alloc(queue[next].name, queue[next].bytes);
  };
  auto copy_tensors = [&](uint64_t n) {  // the copy stream moves on by n checkpoint tensors
    for (uint64_t moved = 0; next < queue.size() && moved < n; ++next) {
      t.alloc(queue[next].name, queue[next].bytes);
      moved += queue[next].tensors;
    }
  };
  // the main thread: parameters in the order their first checkpoint tensor appears; after each conversion op the
  // copy stream moves kLookahead tensors on
  for (size_t i = 0; i < queue.size(); ++i) {
    Group* g = queue[i].group;
    if (!g) {  // a plain tensor: waited for, then set (nothing converted) or dequantised
      copy_until(std::max(next, i + 1 + kLookahead));
      if (queue[i].from_fp8) {
        const std::string name = std::string("weights/").append(queue[i].key);
        t.alloc(name + "/fp32", 4 * queue[i].elements);
        t.alloc(name + "/scaled", 4 * queue[i].elements);
        t.alloc(name, queue[i].bytes);
        t.free(name + "/scaled");
        t.free(name + "/fp32");
        t.free(queue[i].name);
        copy_tensors(kDequantLookahead);
      }
      continue;
    }
    if (g->done) continue;
    g->done = true;
    copy_until(std::max(next, g->last + 1 + kLookahead));
    const ExpertGroup& e = *g->e;
    const uint64_t experts_per_chunk = std::max<uint64_t>(1, e.experts / g->chunks);
    // dequantise: each chunk's experts one after the other, their results kept as target/deq/<chunk>
    auto dequant = [&](const std::string& target, uint64_t copy_bytes, uint64_t result_bytes) {
      const uint64_t elements = copy_bytes / std::max<uint64_t>(1, e.experts);  // one expert's, one byte each
      for (uint64_t c = 0; c < g->chunks; ++c) {
        t.alloc(target + "/fp32", 4 * elements);
        t.alloc(target + "/scaled", 4 * elements);
        t.alloc(concat(target, "/deq/", c), result_bytes / g->chunks);
        t.free(target + "/scaled");
        t.free(target + "/fp32");
        copy_tensors(kDequantLookahead * experts_per_chunk);
      }
    };
    auto drop_copies = [&](const std::string& target) {
      for (uint64_t c = 0; c < g->chunks; ++c) t.free(concat(target, "/copy/", c));
    };
    auto stack = [&](const std::string& target, uint64_t bytes) {
      t.alloc(target, bytes);
      copy_until(next + kLookahead);
      for (uint64_t c = 0; c < g->chunks; ++c) t.free(concat(target, "/", dequantise ? "deq" : "copy", "/", c));
    };
    auto gate_up = [&] {
      if (dequantise) {
        dequant(e.gate_up + "/gate", e.gate_up_copy_bytes / 2, e.gate_up_bytes / 2);
        dequant(e.gate_up + "/up", e.gate_up_copy_bytes / 2, e.gate_up_bytes / 2);
        drop_copies(e.gate_up + "/gate");
        drop_copies(e.gate_up + "/up");
      }
      stack(e.gate_up + "/gate", e.gate_up_bytes / 2);
      stack(e.gate_up + "/up", e.gate_up_bytes / 2);
      t.alloc(e.gate_up, e.gate_up_bytes);
      copy_until(next + kLookahead);
      t.free(e.gate_up + "/gate");
      t.free(e.gate_up + "/up");
    };
    auto down = [&] {
      if (dequantise) {
        dequant(e.down, e.down_copy_bytes, e.down_bytes);
        drop_copies(e.down);
      }
      stack(e.down, e.down_bytes);
    };
    if (gate_up_first) gate_up();
    down();
    if (!gate_up_first) gate_up();
  }
  copy_until(queue.size());
}

// The unquantised model: its fused expert parameters (the built model's) and every other parameter in `dtype`.
void load_stacking_experts(Tracker& t, const ArchModel& m, DType dtype) {
  // a fused expert parameter's experts module ("model.layers.3.mlp") and whether it is gate_up_proj; "" otherwise
  constexpr std::string_view kGateUp = ".experts.gate_up_proj", kDown = ".experts.down_proj";
  auto module_of = [&](const TensorInfo& w) -> std::pair<std::string, bool> {
    if (w.role != TensorRole::kExpert) return {"", false};
    if (w.name.ends_with(kGateUp)) return {w.name.substr(0, w.name.size() - kGateUp.size()), true};
    if (w.name.ends_with(kDown)) return {w.name.substr(0, w.name.size() - kDown.size()), false};
    return {"", false};
  };
  std::map<std::string, ExpertGroup> groups;  // by experts module
  for (const auto& w : m.tensors) {
    const auto [module, gu] = module_of(w);
    if (module.empty()) continue;
    ExpertGroup& g = groups[module];
    g.experts = w.shape.empty() ? 1 : w.shape[0];
    (gu ? g.gate_up : g.down) = "weights/" + w.name;
    (gu ? g.gate_up_bytes : g.down_bytes) = dtype_bytes(dtype, w.numel()).value_or(0);
  }
  auto complete = [](const ExpertGroup& g) { return !g.down.empty() && !g.gate_up.empty(); };
  // the checkpoint's tensors: every parameter but a complete group's experts, which it stores per expert
  std::vector<PlainTensor> plain;
  for (const auto& w : m.tensors) {
    const auto module = module_of(w).first;
    if (!module.empty() && complete(groups.at(module))) continue;
    plain.push_back({w.name, dtype_bytes(dtype, w.numel()).value_or(0)});
  }
  std::erase_if(groups, [&](const auto& g) { return !complete(g.second); });
  replay_stacking(t, plain, groups, m.facts.traits.experts == ExpertsLayout::kFusedRouterFirst, false);
}

// A quantised checkpoint that stores its experts one by one (Qwen3-30B-A3B-FP8, DeepSeek-V3): `loaded` is the list
// as the quantiser keeps it, per expert. transformers 5.17 stacks and concatenates them as it does unquantised ones
// (FP8Experts holds gate_up_proj [E, 2I, H] and down_proj [E, H, I] in F8_E4M3; measured: the load's peak is the
// weights plus one layer's gate_up, bench/data/transformers_issue15_fp8.jsonl). Their per-expert scales are
// replayed as plain copies (KiB per layer). Dequantised (`loaded.dequantised`: the list is the model's, in its
// dtype), the FP8 experts and weights are dequantised as replay_stacking says. False when `loaded` has no
// per-expert weights.
bool load_stacking_loaded_experts(Tracker& t, const ArchModel& m, const LoadedWeights& loaded) {
  const bool gate_up_first = m.facts.traits.experts == ExpertsLayout::kFusedRouterFirst;
  std::map<std::string, ExpertGroup> groups;
  std::vector<PlainTensor> plain;
  plain.reserve(loaded.tensors.size());
  bool dequantise = false;  // FP8 experts dequantised as they load
  for (const LoadedTensor& l : loaded.tensors) {
    const TensorInfo& w = *l.tensor;
    // "<module>.experts.<e>.<proj>.weight"; Mixtral's w1 (gate), w3 (up), w2 (down)
    const auto at = w.name.find(".experts.");
    const auto dot = at == std::string::npos ? at : w.name.find('.', at + 9);
    constexpr std::string_view kWeight = ".weight";
    const bool weight = w.role == TensorRole::kExpert && dot != std::string::npos && w.name.ends_with(kWeight);
    const std::string proj = weight ? w.name.substr(dot + 1, w.name.size() - kWeight.size() - dot - 1) : "";
    const bool down = proj == "down_proj" || proj == "w2", gate_up = proj == "gate_proj" || proj == "up_proj" ||
                                                                      proj == "w1" || proj == "w3";
    if (!down && !gate_up) {
      plain.push_back({w.name, l.data_bytes, loaded.dequantised && l.from_fp8, w.numel()});
      continue;
    }
    const std::string module = w.name.substr(0, at);
    ExpertGroup& g = groups[module];
    if (g.down.empty()) {
      g.down = "weights/" + module + ".experts.down_proj";
      g.gate_up = "weights/" + module + ".experts.gate_up_proj";
    }
    (down ? g.down_bytes : g.gate_up_bytes) += l.data_bytes;
    // dequantised: the copy is the stored F8_E4M3, one byte per element
    (down ? g.down_copy_bytes : g.gate_up_copy_bytes) += loaded.dequantised && l.from_fp8 ? w.numel() : l.data_bytes;
    dequantise = dequantise || (loaded.dequantised && l.from_fp8);
    if (down) ++g.experts;
  }
  if (groups.empty()) return false;
  replay_stacking(t, plain, groups, gate_up_first, dequantise);
  return true;
}

}  // namespace

namespace {

// from_pretrained of an FP8 checkpoint with FineGrainedFP8Config(dequantize=True) (or below compute capability 8.9):
// the loader's copy of each FP8 weight is already cast to the model's dtype (core_model_loading._materialize_copy),
// then dequantised as it is set (integrations/finegrained_fp8.py Fp8Dequantize._dequantize_one: .to(float32), the
// product with the broadcast block scales in float32, .to(the parameter's dtype)); the two float32 temporaries and
// the copy are dropped after (the allocator trace of a dense load, bench/data/traces/*-dequant: 2 + 4 + 4 bytes per
// element above the weights at the peak). The tensors in the checkpoint's name order; the copy threads' lookahead
// is not replayed.
void load_dequantising(Tracker& t, const LoadedWeights& loaded) {
  std::vector<const LoadedTensor*> order;
  order.reserve(loaded.tensors.size());
  for (const LoadedTensor& l : loaded.tensors) order.push_back(&l);
  natural_sort(order, [](const LoadedTensor* l) -> std::string_view { return l->tensor->name; });
  for (const LoadedTensor* l : order) {
    const std::string name = "weights/" + l->tensor->name;
    if (!l->from_fp8) {
      t.alloc(name, l->data_bytes);
      continue;
    }
    const uint64_t n = l->tensor->numel();
    t.alloc(name + "/copy", l->data_bytes);
    t.alloc(name + "/fp32", 4 * n);
    t.alloc(name + "/scaled", 4 * n);
    t.alloc(name, l->data_bytes);
    t.free(name + "/scaled");
    t.free(name + "/fp32");
    t.free(name + "/copy");
  }
}

void replay_load(Tracker& t, const ArchModel& m, DType dtype, const LoadedWeights* loaded, const LoadPath& path) {
  t.set_phase("loading weights");
  if (path.from_pretrained) {
    // modeling_utils.caching_allocator_warmup: one torch.empty of the weights' total bytes, dropped at once, so
    // the caching allocator starts with one segment that holds them
    uint64_t total = 0;
    if (loaded) for (const auto& w : loaded->tensors) total += w.data_bytes;
    else for (const auto& w : m.tensors) total += dtype_bytes(dtype, w.numel()).value_or(0);
    t.alloc("weights/warmup", total);
    t.free("weights/warmup");
  }
  t.reserve(loaded ? loaded->tensors.size() : m.tensors.size());
  if (loaded) {
    if (path.from_pretrained && load_stacking_loaded_experts(t, m, *loaded)) return;
    if (path.from_pretrained && loaded->dequantised) return load_dequantising(t, *loaded);
    // one allocation per stored tensor as the quantiser keeps it (packed weights, scales, zero points)
    for (const LoadedTensor& w : loaded->tensors)
      t.alloc("weights/" + w.tensor->name, w.data_bytes);
    return;
  }
  if (path.from_pretrained && path.experts_stacked) {
    load_stacking_experts(t, m, dtype);
    return;
  }
  // from_pretrained materialises the checkpoint's tensors in its name order (lm_head and the embedding before the
  // layers); from_config builds module by module
  std::vector<const TensorInfo*> order;
  for (const auto& w : m.tensors) order.push_back(&w);
  if (path.from_pretrained) natural_sort(order, [](const TensorInfo* w) -> std::string_view { return w->name; });
  for (const TensorInfo* w : order) t.alloc("weights/" + w->name, dtype_bytes(dtype, w->numel()).value_or(0));
}

}  // namespace

void load_weights(Tracker& t, const ArchModel& m, DType dtype, const LoadedWeights* loaded, const LoadPath& path,
                  ReplayCache* cache) {
  if (!cache || !t.fresh()) return replay_load(t, m, dtype, loaded, path);
  const ReplayCache::Loads::Key key{&m, dtype, loaded, path.from_pretrained, path.experts_stacked, t.expandable_segments()};
  ReplayCache::Loads& loads = cache->loads();
  {
    std::lock_guard<std::mutex> lock(loads.mutex);
    for (const auto& [k, done] : loads.done)
      if (k == key) {
        t = *done;
        return;
      }
  }
  replay_load(t, m, dtype, loaded, path);
  t.share_live();  // the copies made from the cached state share its names
  std::lock_guard<std::mutex> lock(loads.mutex);
  for (const auto& [k, done] : loads.done)
    if (k == key) return;  // another thread's, the same
  loads.done.emplace_back(key, std::make_shared<const Tracker>(t));
}

namespace {

struct KvState {
  std::vector<uint64_t> len;  // tokens held per layer (storage)
};

std::string kv_name(uint64_t layer, const char* which, uint64_t step) {
  return concat("kv_cache/", layer, "/", which, "/", step);
}

// An offloaded cache's copy of a layer brought back to the GPU ahead of its update (Cache.prefetch, on the cache's
// prefetch stream: its blocks form that stream's pool).
std::string prefetch_name(uint64_t layer, const char* which) { return concat("kv_prefetch/", layer, "/", which); }

void prefetch_layer(Tracker& t, const Geometry& g, const Workload& w, uint64_t s, const KvState& kv, uint64_t layer) {
  if (kv.len[layer] == 0) return;  // not initialised yet (prefill): nothing to bring back
  t.alloc(prefetch_name(layer, "k"), mul(w.batch, kv.len[layer], g.cache_k_dim, s));
  t.alloc(prefetch_name(layer, "v"), mul(w.batch, kv.len[layer], g.cache_v_dim, s));
}

// What the base model's forward holds beside the layers: inputs_embeds, the mask, the rotary tables.
struct BaseLocals {
  bool causal_mask = false;  // eager: the additive [B, 1, P, P] mask
  bool sdpa_mask = false;    // SDPA with a sliding window: a boolean [B, 1, P, P] mask
  bool rotary = false;       // cos and sin
};

// The model's forward up to the first layer: embeddings, the mask, then the rotary tables (whose inv_freq @
// positions is the first matmul, so cuBLAS's workspace comes here; without rotary it comes at the first
// projection). `kv_tokens`: the keys a full-attention layer reads (the prompt, or a StaticCache's max_length).
BaseLocals embed_and_mask(Ctx& c, uint64_t prompt_tokens, uint64_t kv_tokens) {
  const auto& g = c.g;
  const uint64_t B = c.batch, P = prompt_tokens, s = c.s;
  BaseLocals locals;
  c.t.alloc("activations/embed", mul(B, P, g.hidden, s));
  if (c.eager) {
    // masking_utils.eager_mask: sdpa_mask builds a boolean [B, 1, P, kv] mask, turned into the additive one
    c.t.alloc("activations/causal_mask_bool", mul(B, P, kv_tokens));
    c.t.alloc("activations/causal_mask", mul(B, P, kv_tokens, s));
    c.t.free("activations/causal_mask_bool");
    locals.causal_mask = true;
  }
  if (!c.eager && (c.always_masked || sdpa_mask_needed(g, 0, P))) {
    c.t.alloc("activations/sdpa_mask", mul(B, P, kv_tokens));  // boolean [B, 1, P, kv]
    locals.sdpa_mask = true;
  }
  if (g.rope) {
    first_matmul(c);
    c.t.alloc("activations/cos", mul(B, P, g.head_dim, s));
    c.t.alloc("activations/sin", mul(B, P, g.head_dim, s));
    locals.rotary = true;
  }
  return locals;
}

void free_base_locals(Tracker& t, const BaseLocals& locals) {
  t.free("activations/embed");
  if (locals.rotary) {
    t.free("activations/cos");
    t.free("activations/sin");
  }
  if (locals.causal_mask) t.free("activations/causal_mask");
  if (locals.sdpa_mask) t.free("activations/sdpa_mask");
}

// The final norm and the LM head on the last layer's output `last_hidden`: logits for the last position when
// generating (logits_to_keep=1), for every position otherwise, in the model dtype.
void final_norm_and_head(Ctx& c, const ArchModel& m, const std::string& last_hidden, const BaseLocals& locals,
                         uint64_t prompt_tokens, bool generate) {
  const auto& g = c.g;
  const uint64_t rows = mul(c.batch, prompt_tokens), logit_rows = generate ? c.batch : rows;
  c.t.set_phase("final norm and LM head");
  norm(c, "activations/final_norm", rows, g.hidden, "activations/final_norm_tmp");
  // the last block's outputs, released when the base model returns (block_returns_attn_weights)
  if (keeps_attn_weights(c) && g.traits.block_returns_attn_weights) free_attn_weights(c, g.layers - 1);
  // the base model returns: its locals go (the last layer's output, inputs_embeds, the rotary tables, the masks);
  // only the normed hidden state, in its outputs, reaches the LM head
  c.t.free(last_hidden);
  if (!generate) free_base_locals(c.t, locals);
  c.t.alloc("logits/logits", mul(logit_rows, g.vocab, c.s));
  c.t.free("activations/final_norm");
  if (m.facts.traits.final_logit_softcap) {
    // logits = tanh(logits / cap) * cap, one new tensor per step (Gemma2ForCausalLM.forward)
    c.t.alloc("logits/div", mul(logit_rows, g.vocab, c.s));
    c.t.free("logits/logits");
    c.t.alloc("logits/tanh", mul(logit_rows, g.vocab, c.s));
    c.t.free("logits/div");
    c.t.alloc("logits/logits", mul(logit_rows, g.vocab, c.s));
    c.t.free("logits/tanh");
  }
}

// A static cache makes generate compile the decoding step: _valid_auto_compile_criteria (a compileable cache on
// CUDA, no quantiser that cannot compile) and get_compiled_call with the default CompileConfig (torch.compile,
// mode "reduce-overhead": inductor and CUDA-graph trees). The first compiled call, from the allocator traces of
// four static-cache generates (bench/data/traces, inductor frames kept):
//  - inductor's pad_mm pass (torch/_inductor/fx_passes/pad_mm.py) benchmarks each distinct matmul of the step whose
//    M (the batch: one token per sequence), K or N is not a multiple of the alignment (8 elements in 16-bit, 4 in
//    fp32; a size of 1 is left alone), on random copies of both operands (realize_tensor): the LM head's whole
//    weight among them, beside everything live. Each benchmark clears the L2 cache with a buffer of its size
//    (benchmark_gpu) and pads M into a new output. Whether the mm is compute bound is asked first
//    (is_mm_compute_bound); on the H100 and H200 with PyTorch 2.11 it benchmarked at M = 2, so it is taken as yes.
//    A warm inductor cache (a second run) skips the benchmarks; this is the first run's peak.
//  - the CUDA-graph tree empties the caching allocator's cache (torch.cuda.empty_cache) before its first capture;
//  - the warm-up and the capture run in the graph's private memory pool: cuBLAS's workspace for the capture stream,
//    the step's activations and its logits (the graph's output, kept); Triton's autotuning clears the L2 cache
//    again and clones the kernel arguments it mutates (one layer's cache keys).
// From then on the process also holds the compiled kernels and the CUDA graph outside the caching allocator.
constexpr uint64_t kL2FlushBytes = uint64_t{50} << 20;  // the H100's and H200's L2 cache (the traces' buffer)
// NVML's process memory beyond max_memory_reserved, static-cache generate against the same models' dynamic-cache
// runs: 62 MiB more on the H200 (0.738 GiB against 0.676, bench/data/transformers_issue15.jsonl) and 66 MiB on
// the H100 (756 MiB against 690, transformers_issue15b_traces.jsonl)
constexpr uint64_t kCompiledOutsideBytes = uint64_t{64} << 20;

// pad_mm.get_padded_length
uint64_t padded_length(uint64_t x, uint64_t align) { return x == 1 || x % align == 0 ? 0 : (x / align + 1) * align - x; }

void compiled_decode_first_call(Tracker& t, const ArchModel& m, const Geometry& g, const Workload& w, uint64_t s,
                                uint64_t cache_len) {
  t.set_phase("decode step 1 (torch.compile)");
  const uint64_t M = w.batch, align = s == 4 ? 4 : 8;
  // the step's distinct matmuls (K, N) from the model's linear weights (an expert's run through grouped_mm, not
  // mm), biggest first as the traces show them benchmarked
  std::vector<std::pair<uint64_t, uint64_t>> mms;
  for (const auto& tt : m.tensors) {
    if (tt.shape.size() != 2 || (!is_linear_role(tt.role) && tt.role != TensorRole::kTokenEmbedding) ||
        tt.role == TensorRole::kExpert)
      continue;
    if (tt.role == TensorRole::kTokenEmbedding && m.tied.empty()) continue;  // a lookup, unless it is the head too
    const bool conv1d = m.facts.traits.conv1d_weights && tt.role != TensorRole::kLmHead && tt.role != TensorRole::kTokenEmbedding;
    const uint64_t K = conv1d ? tt.shape[0] : tt.shape[1], N = conv1d ? tt.shape[1] : tt.shape[0];
    if (std::find(mms.begin(), mms.end(), std::pair{K, N}) == mms.end()) mms.push_back({K, N});
  }
  std::sort(mms.begin(), mms.end(), [](auto a, auto b) { return a.first * a.second > b.first * b.second; });
  const uint64_t pm = padded_length(M, align);
  for (const auto& [K, N] : mms) {
    const uint64_t pk = padded_length(K, align), pn = padded_length(N, align);
    if (pm == 0 && pk == 0 && pn == 0) continue;
    t.alloc("compile/mat1", mul(M, K, s));  // realize_tensor: torch.randn of each operand's storage
    t.alloc("compile/mat2", mul(K, N, s));
    if (pm || pk) t.alloc("compile/mat1_pad", mul(M + pm, K + pk, s));  // the activation: padding planned away
    t.alloc("compile/out", mul(M, N, s));  // the unpadded mm, timed
    t.alloc("compile/l2_flush", kL2FlushBytes);
    t.free("compile/out");
    t.free("compile/l2_flush");
    if (pk || pn) t.alloc("compile/mat2_pad", mul(K + pk, N + pn, s));  // the weight: padded inside the timed call
    t.alloc("compile/l2_flush", kL2FlushBytes);
    t.alloc("compile/out_pad", mul(M + pm, N + pn, s));
    t.free("compile/out_pad");
    t.free("compile/l2_flush");
    if (pk || pn) t.free("compile/mat2_pad");
    if (pm || pk) t.free("compile/mat1_pad");
    t.free("compile/mat2");
    t.free("compile/mat1");
  }
  // the CUDA-graph tree: empty_cache, then the warm-up and the capture in the graph's own pool
  t.empty_cache();
  t.set_side_stream_category("cudagraph");
  t.add_outside(kCompiledOutsideBytes);
  t.alloc("cudagraph/cublas_workspace", kCublasWorkspaceBytes);
  t.alloc("cudagraph/hidden", mul(M, g.hidden, s));
  // a full sliding layer (StaticSlidingWindowLayer.update once the prompt fills its window): torch.cat of the
  // window's last positions and the new token, copied into the cache; the compiled step keeps every such layer's
  // concatenated keys and values at once (the gemma-2 trace: 26 buffers of a window's keys or values)
  std::vector<std::string> full_windows;
  for (uint64_t layer = 0; layer < g.layers; ++layer) {
    if (!g.window[layer] || w.prompt_tokens < g.window[layer]) continue;
    for (const char* which : {"k", "v"}) {
      full_windows.push_back(concat("cudagraph/window/", layer, "/", which));
      t.alloc(full_windows.back(), mul(w.batch, g.window[layer], which[0] == 'k' ? g.cache_k_dim : g.cache_v_dim, s));
    }
  }
  t.alloc("cudagraph/logits", mul(M, g.vocab, s));  // the graph's output, kept in its pool
  t.alloc("cudagraph/l2_flush", kL2FlushBytes);     // Triton's autotuning
  t.alloc("cudagraph/arg_clone", mul(w.batch, cache_len, g.cache_k_dim, s));  // a mutated argument's clone
  t.free("cudagraph/arg_clone");
  t.free("cudagraph/l2_flush");
  for (const auto& name : full_windows) t.free(name);
  t.free("cudagraph/hidden");
}

// A MoE layer of a decoding step. generate runs its decoding steps with the experts' "batched_mm" implementation
// (integrations/moe.py batched_mm_experts_forward; the allocator traces of Mixtral and Qwen3-MoE generates show
// grouped_mm in the prefill and batched_mm in every decoding step, batch 1 and 8): each of the S = tokens x top_k
// selected (token, expert) pairs gets its own copy of that expert's weights, gate_up_proj[expert_ids] [S, 2I, H]
// and then down_proj[expert_ids] [S, H, I] (made before the first is dropped), with bmm's small outputs between.
// The same every layer and step: replayed once per step, after the step's last cache update.
void batched_experts_step(Tracker& t, const Geometry& g, const Workload& w, uint64_t s) {
  const uint64_t T = w.batch, S = mul(T, std::max<uint64_t>(1, g.top_k)), H = g.hidden, I = g.moe_ffn;
  const uint64_t ws = g.weighted_experts_bytes(s);
  t.alloc("activations/decode_moe/rows", mul(S, H, s));
  if (g.experts_bias) t.alloc("activations/decode_moe/gate_up_bias", mul(S, 2 * I, s));
  t.alloc("activations/decode_moe/gate_up_w", mul(mul(S, 2 * I), H, s));
  t.alloc("activations/decode_moe/gate_up", mul(S, 2 * I, s));
  t.alloc("activations/decode_moe/act", mul(S, I, s));
  t.alloc("activations/decode_moe/act_up", mul(S, I, s));
  t.free("activations/decode_moe/act");
  t.free("activations/decode_moe/gate_up");
  if (g.experts_bias) t.free("activations/decode_moe/gate_up_bias");
  t.alloc("activations/decode_moe/down_w", mul(mul(S, H), I, s));
  t.free("activations/decode_moe/gate_up_w");
  t.alloc("activations/decode_moe/down", mul(S, H, s));
  t.free("activations/decode_moe/act_up");
  t.alloc("activations/decode_moe/weighted", mul(S, H, ws));
  t.alloc("activations/decode_moe/sum", mul(T, H, ws));
  for (const char* local : {"rows", "down_w", "down", "weighted", "sum"})
    t.free(std::string("activations/decode_moe/") + local);
}

// Decode: each of the remaining new_tokens - 1 forward passes appends one token to every layer's cache
// (DynamicLayer.update: torch.cat allocates the grown tensor before the old one goes); a sliding layer's stored
// view keeps the whole cat result alive, so the next cat starts from the window. A StaticCache writes in place
// (index_copy_): nothing grows. An offloaded cache (Cache.update with offloading) first prefetches the next layer
// back to the GPU on its own stream, then cats onto this layer's prefetched copy (which goes), and moves the result
// to the CPU once the layer has used it.
void decode(Tracker& t, const ArchModel& m, const Geometry& g, const Workload& w, uint64_t s, KvState& kv,
            bool compiled, uint64_t cache_len, bool batched_experts) {
  const bool offloaded = w.cache == KvCacheImpl::kOffloaded;
  for (uint64_t step = 1; step < w.new_tokens; ++step) {
    t.set_phase(concat("decode step ", step));
    if (compiled && step == 1) compiled_decode_first_call(t, m, g, w, s, cache_len);
    for (uint64_t layer = 0; w.cache != KvCacheImpl::kStatic && layer < g.layers; ++layer) {
      const uint64_t new_len = kv.len[layer] + 1;
      if (offloaded) prefetch_layer(t, g, w, s, kv, (layer + 1) % g.layers);
      for (const char* which : {"k", "v"}) {
        const uint64_t dim = which[0] == 'k' ? g.cache_k_dim : g.cache_v_dim;
        t.alloc(kv_name(layer, which, step), mul(w.batch, new_len, dim, s));  // torch.cat([cache, new], dim=-2)
        t.free(offloaded ? prefetch_name(layer, which) : kv_name(layer, which, step - 1));
      }
      kv.len[layer] = g.window[layer] ? std::min(new_len, g.window[layer] - 1) : new_len;
      if (offloaded)
        for (const char* which : {"k", "v"}) t.free(kv_name(layer, which, step));  // .to("cpu") once attended
    }
    if (batched_experts) batched_experts_step(t, g, w, s);
    t.free("logits/next_token_f32");
    t.alloc("logits/next_token_f32", mul(w.batch, g.vocab, 4));
  }
}

}  // namespace

std::string run_inference(Tracker& t, const ArchModel& m, const Geometry& g, const Workload& w, const LoadedWeights* loaded,
                          ReplayCache* cache) {
  const uint64_t s = dtype_info(w.dtype).block_bytes;
  const std::string attn = w.attn.empty() ? default_attention(g) : w.attn;
  // sdpa_math_backend (falcon) under "sdpa": the allocator traces show PyTorch's math backend (bench/data/traces)
  const bool math_upcast = g.traits.sdpa_math_backend && attn == "sdpa" && s < 4;
  Ctx c{t, g, s, w.batch, !math_upcast && (attn == "eager" || g.traits.materialises_scores), w.dtype == DType::BF16,
        math_upcast, w.mode == RunMode::kGenerate};
  // the warm-up is per device (the bytes placed on it); the multi-GPU replay's view maps whole tensors only, so it
  // is replayed on one GPU
  load_weights(t, m, w.dtype, loaded,
               {.from_pretrained = !w.from_config && w.gpus <= 1, .experts_stacked = w.experts_stacked_at_load}, cache);
  if (!m.tied.empty() && w.from_config) {
    // from_config builds lm_head, then ties it to the embedding: one untied copy lives until the tie
    t.alloc("weights/untied_head", mul(g.vocab, g.hidden, s));
    t.free("weights/untied_head");
  }
  const uint64_t P = w.prompt_tokens, B = w.batch;
  const bool generate = w.mode == RunMode::kGenerate;
  const bool static_cache = generate && w.cache == KvCacheImpl::kStatic;
  const bool offloaded = generate && w.cache == KvCacheImpl::kOffloaded;
  // StaticCache (generate's max_length = prompt + new tokens): every layer's keys and values preallocated at its
  // first update (StaticLayer.lazy_initialization: torch.zeros), a sliding layer's at min(window, max_length);
  // attention reads the whole preallocated length, or a sliding layer's longer prompt as given
  const uint64_t max_len = P + w.new_tokens;
  auto static_len = [&](uint64_t layer) { return g.window[layer] ? std::min(g.window[layer], max_len) : max_len; };
  auto kv_len = [&](uint64_t layer) {
    if (!static_cache) return P;
    return g.window[layer] && P > static_len(layer) ? P : static_len(layer);
  };
  c.always_masked = static_cache;
  if (offloaded) t.set_side_stream_category("kv_prefetch");
  t.set_phase("inputs");
  t.alloc("inputs/input_ids", mul(B, P, 8));
  if (generate) t.alloc("inputs/attention_mask", mul(B, P, 8));
  const BaseLocals locals = embed_and_mask(c, P, static_cache ? max_len : P);
  KvState kv;
  kv.len.assign(g.layers, 0);
  std::string h = "activations/embed";
  for (uint64_t layer = 0; layer < g.layers; ++layer) {
    auto update = [&] {
      if (!generate) return;  // use_cache=False: nothing is kept
      // the last layer's update prefetches layer 0 (the prefetch wraps around), already offloaded
      if (offloaded) prefetch_layer(t, g, w, s, kv, (layer + 1) % g.layers);
      const uint64_t len = static_cache ? static_len(layer) : P;
      t.alloc(kv_name(layer, "k", 0), mul(B, len, g.cache_k_dim, s));
      t.alloc(kv_name(layer, "v", 0), mul(B, len, g.cache_v_dim, s));
      kv.len[layer] = P;
    };
    const std::string out = concat("activations/hidden", layer);
    decoder_layer(c, layer, P, kv_len(layer), out, update);
    if (offloaded)  // moved to the CPU (Cache.offload) once the layer has attended over it
      for (const char* which : {"k", "v"}) t.free(kv_name(layer, which, 0));
    if (h != "activations/embed") t.free(h);  // inputs_embeds stays: a local of the base model
    h = out;
  }
  final_norm_and_head(c, m, h, locals, P, generate);
  if (!generate) return attn;
  t.alloc("logits/next_token_f32", mul(B, g.vocab, 4));  // outputs.logits[:, -1, :].to(float32, copy=True)
  t.free("logits/logits");
  // generation: freed here, after the first token's fp32 copy, as before the single-forward change (its logits are
  // one position per sequence, so this order moves little; not re-checked on a trace)
  free_base_locals(t, locals);
  // generate compiles the decoding step for a static cache (quantised weights: not modelled, replayed eagerly)
  const bool compiled = static_cache && !loaded;
  bool moe = false;
  for (uint64_t layer = 0; layer < g.layers; ++layer) moe |= g.is_moe(layer);
  decode(t, m, g, w, s, kv, compiled, max_len, moe && !loaded);
  return attn;
}

}  // namespace llmem::transformers
