// The parameters as transformers 5 holds them, from the tensor table's checkpoint names (ArchTraits::experts,
// ArchTraits::built_lm_head).
//
// Checkpoints of Mixtral, Qwen3-MoE and DeepSeek-V2/V3 store one 2-D weight per routed expert and projection;
// transformers 5.17's weight converter fuses them at load into two 3-D parameters per layer, and from_config
// builds those directly (PyTorch's own parameter lists: bench/data/transformers_params.jsonl). The replay allocates
// what PyTorch allocates, so it must see two tensors per layer, not 3 x E: the caching allocator rounds and
// segments them differently, the optimizer's foreach lists hold two entries, autocast leaves 3-D experts uncast,
// and accelerate's device_map sees the module tree PyTorch has.
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include "engine.hpp"
#include "llmem/transformers.hpp"

namespace llmem {
namespace {

struct ExpertName {
  std::string module;  // "model.layers.3.mlp" (Mixtral's "block_sparse_moe" already renamed)
  std::string proj;    // "gate_proj", "up_proj", "down_proj" or Mixtral's "w1", "w3", "w2"
  uint64_t index = 0;
};

// Mixtral's checkpoint module "block_sparse_moe" is "mlp" once built (a name or a module path).
std::string renamed(std::string name) {
  constexpr std::string_view from = ".block_sparse_moe";
  const size_t at = name.find(from);
  if (at != std::string::npos && (at + from.size() == name.size() || name[at + from.size()] == '.'))
    name.replace(at, from.size(), ".mlp");
  return name;
}

// "<module>.experts.<index>.<proj>.weight", the module renamed as built; nullopt for any other name.
std::optional<ExpertName> parse_expert(const std::string& name) {
  const size_t at = name.find(".experts.");
  if (at == std::string::npos) return std::nullopt;
  const size_t idx = at + 9;
  size_t end = idx;
  while (end < name.size() && name[end] >= '0' && name[end] <= '9') ++end;
  if (end == idx || end >= name.size() || name[end] != '.') return std::nullopt;
  const size_t w = name.rfind(".weight");
  if (w == std::string::npos || w + 7 != name.size() || w <= end + 1) return std::nullopt;
  ExpertName e;
  e.module = renamed(name.substr(0, at));
  e.proj = name.substr(end + 1, w - end - 1);
  e.index = std::stoull(name.substr(idx, end - idx));
  return e;
}

TensorInfo fused(const TensorInfo& like, const std::string& name, std::vector<uint64_t> shape) {
  TensorInfo t;
  t.name = name;
  t.shape = std::move(shape);
  t.dtype = like.dtype;
  t.layer = like.layer;
  t.role = TensorRole::kExpert;
  t.data_bytes = dtype_bytes(like.dtype, t.numel()).value_or(0);
  return t;
}

using Experts = std::vector<std::pair<const TensorInfo*, ExpertName>>;

// One layer's fused experts from its per-expert tensors: gate_up_proj [E, 2I, H], down_proj [E, H, I]. The tables
// are ours: experts they do not lay out as gate/up/down per expert are an error in llmem.
std::vector<TensorInfo> fuse_layer(const std::string& module, const Experts& experts) {
  const TensorInfo *gate = nullptr, *down = nullptr;
  uint64_t n = 0, gates = 0, ups = 0, downs = 0;
  for (const auto& [t, e] : experts) {
    n = std::max(n, e.index + 1);
    if (t->shape.size() != 2) sim::internal_error("transformers layout: expert weight is not 2-D: " + t->name);
    if (e.proj == "gate_proj" || e.proj == "w1") gate = t, ++gates;
    else if (e.proj == "up_proj" || e.proj == "w3") ++ups;
    else if (e.proj == "down_proj" || e.proj == "w2") down = t, ++downs;
    else sim::internal_error("transformers layout: expert projection with no fused form: " + t->name);
  }
  if (!gate || !down || gates != n || ups != n || downs != n)
    sim::internal_error("transformers layout: experts of " + module + " are not gate/up/down for each of " + std::to_string(n));
  const uint64_t ffn = gate->shape[0], hidden = gate->shape[1];
  return {fused(*gate, module + ".experts.gate_up_proj", {n, 2 * ffn, hidden}),
          fused(*down, module + ".experts.down_proj", {n, hidden, ffn})};
}

// Each MoE layer's per-expert weights fused, the router before or after them as PyTorch registers it.
ArchModel with_fused_experts(const ArchModel& m) {
  const bool router_first = m.facts.traits.experts == ExpertsLayout::kFusedRouterFirst;
  // each layer's expert tensors, by the module that holds them, in table order
  std::map<std::string, Experts> experts;
  std::vector<std::optional<ExpertName>> parsed(m.tensors.size());
  for (size_t i = 0; i < m.tensors.size(); ++i)
    if (m.tensors[i].role == TensorRole::kExpert && (parsed[i] = parse_expert(m.tensors[i].name)))
      experts[parsed[i]->module].emplace_back(&m.tensors[i], *parsed[i]);
  ArchModel out = m;
  out.tensors.clear();
  std::map<int64_t, TensorInfo> held_routers;  // Qwen3-MoE / DeepSeek: the router comes after the experts
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const TensorInfo& t = m.tensors[i];
    if (t.role == TensorRole::kRouter) {
      TensorInfo r = t;
      r.name = renamed(t.name);
      if (router_first) out.tensors.push_back(std::move(r));
      else held_routers.emplace(t.layer, std::move(r));
      continue;
    }
    if (!parsed[i]) {
      out.tensors.push_back(t);
      continue;
    }
    auto it = experts.find(parsed[i]->module);
    if (it == experts.end()) continue;  // this layer's experts are already fused
    for (auto& f : fuse_layer(it->first, it->second)) out.tensors.push_back(std::move(f));
    experts.erase(it);
    if (auto r = held_routers.find(t.layer); r != held_routers.end()) {
      out.tensors.push_back(std::move(r->second));
      held_routers.erase(r);
    }
  }
  for (auto& [layer, r] : held_routers) out.tensors.push_back(std::move(r));  // a router with no experts: kept
  return out;
}

// The output projection under its built name (and the tied aliases that name it).
void rename_lm_head(ArchModel& m) {
  const char* to = m.facts.traits.built_lm_head;
  if (!to) return;
  for (auto& t : m.tensors) {
    if (t.role != TensorRole::kLmHead) continue;
    for (auto& a : m.tied) {
      if (a.alias == t.name) a.alias = to;
      if (a.target == t.name) a.target = to;
    }
    t.name = to;
  }
}

}  // namespace

bool differs_when_built(const ArchModel& m) {
  return m.facts.traits.experts != ExpertsLayout::kAsStored || m.facts.traits.built_lm_head != nullptr;
}

ArchModel as_built(const ArchModel& m) {
  ArchModel built = m.facts.traits.experts == ExpertsLayout::kAsStored ? m : with_fused_experts(m);
  rename_lm_head(built);
  return built;
}

}  // namespace llmem
