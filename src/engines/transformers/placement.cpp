// accelerate's placement of a model's modules over devices, as transformers 5.17's from_pretrained runs it.
//
// Sources (read, not copied): transformers 5.17 src/transformers/integrations/accelerate.py (compute_module_sizes,
// get_balanced_memory, _get_device_map, _init_infer_auto_device_map, infer_auto_device_map) and accelerate 1.15
// src/accelerate/utils/modeling.py (get_max_memory, get_max_layer_size, get_module_size_with_ties,
// clean_device_map, get_module_leaves, and its own get_balanced_memory / infer_auto_device_map). Each step below
// names the function it follows; Python's semantics are kept where they change a result (substring tests on
// dotted names, float max_memory after the 0.9 scaling, int() truncation).
#include "llmem/placement.hpp"

#include <algorithm>
#include <functional>
#include <stdexcept>

#include <fmt/core.h>

#include "llmem/error.hpp"

namespace llmem {
namespace {

struct Node {
  std::string name;  // full dotted path; "" for the root
  bool tensor = false;
  std::vector<int> params, children, buffers;  // registration order
  bool no_split = false;
};

struct Item {
  std::string name;
  int node;
};

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }
// starts_with(name, module + "."), without building that string (the placement asks it per tensor and module)
bool under(const std::string& name, const std::string& module) {
  return name.size() > module.size() && name[module.size()] == '.' && name.compare(0, module.size(), module) == 0;
}

// The module path of a decoder layer's tensor: the name up to its layer index ("model.layers.3").
std::string layer_module(const TensorInfo& t) {
  const std::string idx = std::to_string(t.layer);
  const size_t pos = t.name.find("." + idx + ".");
  return pos == std::string::npos ? "" : t.name.substr(0, pos + 1 + idx.size());
}

class Model {
 public:
  Model(const ArchModel& m, DType dtype) {
    nodes_.push_back(Node{});
    // named_parameters(): the model's tensors in order, the tied aliases (lm_head, registered last) as their own
    // parameters, which compute_module_sizes skips (all_tied_weights_keys); then named_buffers(): the rotary
    // embedding's inv_freq and original_inv_freq (fp32, non-persistent; transformers 5 registers both), Gemma's
    // embed_scale, XGLM's sinusoidal table
    const std::string first = m.tensors.empty() ? "" : m.tensors.front().name;  // "model.embed_tokens.weight"
    const std::string base = first.substr(0, first.find('.'));
    for (const auto& t : m.tensors) {
      const std::string layer = t.layer >= 0 ? layer_module(t) : "";
      if (!layer.empty() && std::find(no_split_.begin(), no_split_.end(), layer) == no_split_.end()) no_split_.push_back(layer);
      add(t.name, dtype_bytes(dtype, t.numel()).value_or(0), false);
      // XGLM's sinusoidal table (max_positions + 2 rows, its padding offset): the module after the token embedding
      if (&t == &m.tensors.front() && m.facts.position_kind == "sinusoidal" && base != first)
        add(base + ".embed_positions.weights", dtype_bytes(dtype, (m.facts.max_positions + 2) * m.facts.hidden).value_or(0), true);
    }
    for (const auto& a : m.tied) {
      add(a.alias, 0, false);
      tied_.push_back(a.alias < a.target ? std::vector<std::string>{a.alias, a.target} : std::vector<std::string>{a.target, a.alias});
    }
    const uint64_t model_bytes = dtype_bytes(dtype, 1).value_or(2);
    if (m.facts.traits.scaled_embedding && base != first) add(base + ".embed_tokens.embed_scale", model_bytes, true);
    if (m.facts.position_kind == "rope" && base != first) {
      const uint64_t rot = static_cast<uint64_t>(static_cast<double>(m.facts.head_dim) * m.facts.partial_rotary);
      const std::vector<std::string> kinds =
          m.facts.traits.rotary_per_layer_type ? std::vector<std::string>{"full_attention_", "sliding_attention_"}
                                               : std::vector<std::string>{""};
      if (rot >= 2)
        for (const auto& k : kinds)
          for (const char* b : {"inv_freq", "original_inv_freq"}) add(base + ".rotary_emb." + k + b, rot / 2 * 4, true);
    }
    for (const auto& l : no_split_) nodes_[index_.at(l)].no_split = true;
  }

  const Node& node(int i) const { return nodes_[i]; }
  const std::vector<std::pair<std::string, uint64_t>>& tensors() const { return tensors_; }
  const std::vector<std::string>& no_split() const { return no_split_; }
  const std::vector<std::vector<std::string>>& tied() const { return tied_; }
  // module_sizes[name] of the defaultdict: modules and (only_modules=False) tensors, 0 when absent
  uint64_t size(const std::string& name) const {
    auto it = sizes_.find(name);
    return it == sizes_.end() ? 0 : it->second;
  }
  // named_parameters(recurse=False) + named_children() + named_buffers(recurse=False) of a module
  std::vector<Item> top_items() const { return with(0, true, true, true); }
  // named_children()
  std::vector<Item> children(int n) const { return with(n, false, true, false); }
  // named_parameters(recurse=False) + named_children(): what a split puts in place of a module
  std::vector<Item> split(int n) const { return with(n, true, true, false); }
  int first_no_split_in_order() const { return first_no_split_; }

 private:
  std::vector<Item> with(int n, bool params, bool children, bool buffers) const {
    std::vector<Item> out;
    auto push = [&](const std::vector<int>& v) {
      for (int c : v) out.push_back({nodes_[c].name, c});
    };
    if (params) push(nodes_[n].params);
    if (children) push(nodes_[n].children);
    if (buffers) push(nodes_[n].buffers);
    return out;
  }

  void add(const std::string& name, uint64_t bytes, bool buffer) {
    int parent = 0;
    size_t start = 0;
    for (size_t dot; (dot = name.find('.', start)) != std::string::npos; start = dot + 1) {
      const std::string path = name.substr(0, dot);
      auto it = index_.find(path);
      if (it == index_.end()) {
        it = index_.emplace(path, static_cast<int>(nodes_.size())).first;
        {
          Node n;
          n.name = path;
          nodes_.push_back(n);
        }
        nodes_[parent].children.push_back(it->second);
      }
      parent = it->second;
    }
    const int id = static_cast<int>(nodes_.size());
    {
      Node n;
      n.name = name;
      n.tensor = true;
      nodes_.push_back(n);
    }
    index_[name] = id;
    (buffer ? nodes_[parent].buffers : nodes_[parent].params).push_back(id);
    tensors_.emplace_back(name, bytes);
    if (bytes == 0) return;  // a tied key: compute_module_sizes skips it
    // every prefix of the name, and the name itself (compute_module_sizes with only_modules=False)
    sizes_[""] += bytes;
    for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) sizes_[name.substr(0, dot)] += bytes;
    sizes_[name] += bytes;
    if (first_no_split_ < 0)
      for (const auto& l : no_split_)
        if (under(name, l)) first_no_split_ = index_.at(l);
  }

  std::vector<Node> nodes_;
  std::map<std::string, int> index_;
  std::map<std::string, uint64_t> sizes_;
  std::vector<std::pair<std::string, uint64_t>> tensors_;
  std::vector<std::string> no_split_;
  std::vector<std::vector<std::string>> tied_;
  int first_no_split_ = -1;
};

// get_max_layer_size (accelerate): the largest module that is a leaf or of a no-split class, walking children.
std::pair<uint64_t, std::vector<std::string>> max_layer(const Model& m, std::vector<Item> todo) {
  uint64_t max_size = 0;
  std::vector<std::string> names;
  while (!todo.empty()) {
    const Item it = todo.front();
    todo.erase(todo.begin());
    const Node& n = m.node(it.node);
    const std::vector<Item> kids = n.tensor ? std::vector<Item>{} : m.children(it.node);
    if (kids.empty() || n.no_split) {
      const uint64_t s = m.size(it.name);
      if (s > max_size) {
        max_size = s;
        names = {it.name};
      } else if (s == max_size) {
        names.push_back(it.name);
      }
    } else {
      todo.insert(todo.begin(), kids.begin(), kids.end());
    }
  }
  return {max_size, names};
}

std::vector<Item> modules_only(const Model& m, const std::vector<Item>& v) {
  std::vector<Item> out;
  for (const auto& it : v)
    if (!m.node(it.node).tensor) out.push_back(it);
  return out;
}

// The mean size of the "leaves" get_balanced_memory adds as a buffer, per flavour (see PlacementFlavor).
uint64_t mean_leaves(const Model& m, PlacementFlavor flavor) {
  std::vector<std::string> leaves;
  std::map<std::string, int> module_children;  // accelerate's get_module_leaves over module keys
  std::vector<std::string> modules;
  for (const auto& [name, bytes] : m.tensors()) {
    if (bytes == 0 || name.find('.') == std::string::npos) continue;
    const std::string parent = name.substr(0, name.rfind('.'));
    if (std::find(modules.begin(), modules.end(), parent) == modules.end()) modules.push_back(parent);
  }
  if (flavor == PlacementFlavor::kTransformers) {
    leaves = modules;
  } else {
    // module keys are every prefix of a tensor's name; a leaf is one no other module key has as its parent
    std::vector<std::string> keys;
    for (const auto& [name, bytes] : m.tensors()) {
      if (bytes == 0) continue;
      for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) {
        const std::string k = name.substr(0, dot);
        if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
      }
    }
    for (const auto& k : keys)
      if (k.find('.') != std::string::npos) module_children[k.substr(0, k.rfind('.'))]++;
    for (const auto& k : keys)
      if (!module_children.count(k)) leaves.push_back(k);
  }
  uint64_t sum = 0;
  for (const auto& l : leaves) sum += m.size(l);
  return static_cast<uint64_t>(static_cast<double>(sum) / static_cast<double>(std::max<size_t>(leaves.size(), 1)));
}

// get_balanced_memory (transformers 5.17's copy; accelerate's differs only in mean_leaves).
std::vector<std::pair<int, double>> balanced_memory(const Model& m, std::vector<std::pair<int, double>> mm, bool low_zero,
                                                    bool user_set, PlacementFlavor flavor, uint64_t* buffer_out) {
  int num_devices = 0;
  for (const auto& [d, v] : mm)
    if (d >= 0 && v > 0) ++num_devices;
  if (num_devices == 0) return mm;
  if (num_devices == 1) {
    low_zero = false;
    if (!user_set)
      for (auto& [d, v] : mm)
        if (d >= 0) {
          v *= 0.9;  // "90% is a good compromise"
          break;
        }
  }
  const uint64_t total = m.size("");
  uint64_t per_gpu = total / static_cast<uint64_t>(low_zero ? num_devices - 1 : num_devices);
  // the largest no-split block: PyTorch's placements (bench/data/accelerate_placement.jsonl) show the MoE layer of
  // DeepSeek-V2-Lite here, not its first (dense) decoder layer, which the "first of each class" of an older
  // transformers' source would give
  uint64_t buffer = 0;
  if (flavor == PlacementFlavor::kAccelerate)
    buffer = m.first_no_split_in_order() >= 0 ? m.size(m.node(m.first_no_split_in_order()).name) : 0;
  else
    for (const auto& l : m.no_split()) buffer = std::max(buffer, m.size(l));
  buffer = static_cast<uint64_t>(1.25 * static_cast<double>(std::max(buffer, mean_leaves(m, flavor))));
  per_gpu += buffer;
  *buffer_out = buffer;
  std::vector<int> gpus;
  for (const auto& [d, v] : mm)
    if (d >= 0 && v > 0) gpus.push_back(d);
  std::sort(gpus.begin(), gpus.end());
  auto at = [&](int d) -> double& {
    for (auto& [k, v] : mm)
      if (k == d) return v;
    throw std::logic_error("balanced memory: no device " + std::to_string(d));
  };
  for (size_t i = 0; i + 1 < gpus.size(); ++i) {
    const int idx = gpus[i];
    at(idx) = std::min(low_zero && idx == 0 ? at(0) : static_cast<double>(per_gpu), at(idx));
  }
  if (low_zero) {
    double rest = 0;
    for (int i = 1; i < num_devices; ++i) rest += at(i);
    const double min_zero = std::max(0.0, static_cast<double>(total) - rest);
    at(0) = std::min(min_zero, at(0));
  }
  return mm;
}

using DeviceMap = std::vector<std::pair<std::string, int>>;

void set_device(DeviceMap& map, const std::string& name, int device) {
  for (auto& [k, v] : map)
    if (k == name) {
      v = device;
      return;
    }
  map.emplace_back(name, device);
}

// clean_device_map (accelerate): a module whose keys all share one device becomes one key, recursively.
void clean(DeviceMap& map, const std::string& module) {
  const std::string prefix = module.empty() ? "" : module + ".";
  std::vector<int> values;
  for (const auto& [k, v] : map)
    if (starts_with(k, prefix)) values.push_back(v);
  if (values.size() > 1 && std::all_of(values.begin(), values.end(), [&](int v) { return v == values[0]; })) {
    map.erase(std::remove_if(map.begin(), map.end(), [&](const auto& kv) { return starts_with(kv.first, prefix); }), map.end());
    map.emplace_back(module, values[0]);
  }
  // children: the first len(module.split(".")) + 1 components of each longer key under the prefix
  const size_t depth = module.empty() ? 1 : static_cast<size_t>(std::count(module.begin(), module.end(), '.')) + 2;
  std::vector<std::string> kids;
  for (const auto& [k, v] : map) {
    if (!starts_with(k, prefix) || k.size() <= module.size()) continue;
    size_t pos = std::string::npos, parts = 0;
    for (size_t i = 0; i < k.size() && parts < depth; ++i)
      if (k[i] == '.' && ++parts == depth) pos = i;
    const std::string child = pos == std::string::npos ? k : k.substr(0, pos);
    if (std::find(kids.begin(), kids.end(), child) == kids.end()) kids.push_back(child);
  }
  for (const auto& c : kids) clean(map, c);
}

}  // namespace

const char* device_map_name(DeviceMapKind k) {
  switch (k) {
    case DeviceMapKind::kAuto: return "auto";
    case DeviceMapKind::kBalanced: return "balanced";
    case DeviceMapKind::kBalancedLow0: return "balanced_low_0";
    case DeviceMapKind::kSequential: return "sequential";
  }
  return "auto";
}

std::optional<DeviceMapKind> device_map_from_name(const std::string& name) {
  for (auto k : {DeviceMapKind::kAuto, DeviceMapKind::kBalanced, DeviceMapKind::kBalancedLow0, DeviceMapKind::kSequential})
    if (name == device_map_name(k)) return k;
  return std::nullopt;
}

std::string device_label(int device) {
  return device == kCpuDevice ? "cpu" : device == kDiskDevice ? "disk" : std::to_string(device);
}

std::vector<std::pair<std::string, uint64_t>> placement_tensors(const ArchModel& model, DType dtype) {
  return Model(model, dtype).tensors();
}

namespace {

struct Placer {
  const Model& m;
  std::vector<std::pair<int, double>> max_memory;
  std::vector<int> devices;
  DeviceMap map;
  std::vector<Item> todo;
  uint64_t max_size = 0;
  std::vector<std::string> max_names;

  double max_of(int d) const {
    for (const auto& [k, v] : max_memory)
      if (k == d) return v;
    return 0;
  }
  int index_of(const std::string& name) const {
    for (size_t i = 0; i < todo.size(); ++i)
      if (todo[i].name == name) return static_cast<int>(i);
    return -1;
  }
  void refresh_max() { std::tie(max_size, max_names) = max_layer(m, modules_only(m, todo)); }

  // get_module_size_with_ties: each tied parameter's enclosing module still to treat, and the size it adds.
  uint64_t with_ties(const std::vector<std::string>& tied_params, uint64_t size, std::vector<Item>& tied_modules) const {
    uint64_t total = size;
    for (const auto& p : tied_params) {
      auto it = std::find_if(todo.begin(), todo.end(), [&](const Item& i) { return under(p, i.name); });
      if (it == todo.end())
        throw Error(ErrorKind::kUnsupported, p, "accelerate's placement fails here (its tied module was already placed)");
      tied_modules.push_back(*it);
      total += m.size(it->name) - m.size(p);
    }
    return total;
  }

  // One pass of infer_auto_device_map's loop; false when the module went to `device`, true to treat the list again.
  void run();
};

void Placer::run() {
  const std::vector<int> main_devices = {devices.front() >= 0 ? devices.front() : kCpuDevice, kCpuDevice};
  std::map<int, uint64_t> used;
  size_t current = 0;
  std::tie(max_size, max_names) = max_layer(m, todo);
  while (!todo.empty()) {
    const Item item = todo.front();
    todo.erase(todo.begin());
    max_names.erase(std::remove_if(max_names.begin(), max_names.end(),
                                   [&](const std::string& n) { return n == item.name || under(n, item.name); }),
                    max_names.end());
    if (max_names.empty()) refresh_max();
    const uint64_t size = m.size(item.name);
    std::vector<std::string> tied_params;
    for (const auto& group : m.tied()) {
      const auto in = [&](const std::string& k) { return contains(k + ".", item.name + "."); };
      if (std::any_of(group.begin(), group.end(), in) && !std::all_of(group.begin(), group.end(), in))
        for (const auto& p : group)
          if (!in(p)) tied_params.push_back(p);
    }
    const int device = devices[current];
    const bool disk = device == kDiskDevice;
    double cur_max = disk ? 0 : max_of(device);
    uint64_t reserved = 0;
    if (!disk && std::find(main_devices.begin(), main_devices.end(), device) != main_devices.end()) {
      cur_max -= static_cast<double>(max_size);
      reserved = max_size;
    }
    std::vector<Item> tied_modules;
    const uint64_t size_ties = with_ties(tied_params, size, tied_modules);
    if (disk || static_cast<double>(used[device] + size_ties) <= cur_max) {
      used[device] += size_ties;
      set_device(map, item.name, device);
      for (const auto& t : tied_modules) {
        if (int i = index_of(t.name); i >= 0) todo.erase(todo.begin() + i);
        set_device(map, t.name, device);
      }
      continue;
    }
    if (!tied_params.empty() && static_cast<double>(used[device] + size) <= cur_max) {
      bool split = false;
      for (const auto& t : tied_modules) {
        if (m.node(t.node).tensor || m.children(t.node).empty() || m.node(t.node).no_split) continue;
        std::vector<Item> kids = m.split(t.node);
        const int i = index_of(t.name);
        std::vector<Item> next = {item};
        next.insert(next.end(), todo.begin(), todo.begin() + i);
        next.insert(next.end(), kids.begin(), kids.end());
        next.insert(next.end(), todo.begin() + i + 1, todo.end());
        todo = std::move(next);
        refresh_max();
        split = true;
        break;
      }
      if (split) continue;
    }
    if (static_cast<double>(used[device] + size) >= cur_max) {
      const Node& n = m.node(item.node);
      if (!n.tensor && !m.children(item.node).empty() && !n.no_split) {
        std::vector<Item> kids = m.split(item.node);
        todo.insert(todo.begin(), kids.begin(), kids.end());
        refresh_max();
        continue;
      }
    }
    used[device] += reserved;
    ++current;
    todo.insert(todo.begin(), item);
  }
}

}  // namespace

Placement place_model(const ArchModel& model, const PlacementRequest& req) {
  const Model m(model, req.dtype);
  Placement out;
  out.no_split_modules = m.no_split();
  // get_max_memory: GPUs sorted, then cpu (disk is appended by _init_infer_auto_device_map)
  std::vector<std::pair<int, double>> mm = req.max_memory;
  std::stable_sort(mm.begin(), mm.end(), [](const auto& a, const auto& b) {
    auto rank = [](int d) { return d >= 0 ? d : 1000000 - d; };
    return rank(a.first) < rank(b.first);
  });
  if (std::none_of(mm.begin(), mm.end(), [](const auto& kv) { return kv.first >= 0; }))
    throw Error(ErrorKind::kUsage, "", "the placement needs at least one GPU in max_memory");
  if (req.kind != DeviceMapKind::kSequential)
    mm = balanced_memory(m, mm, req.kind == DeviceMapKind::kBalancedLow0, req.user_set_max_memory, req.flavor, &out.no_split_buffer);
  out.max_memory = mm;
  Placer p{m, mm, {}, {}, m.top_items(), 0, {}};
  for (const auto& [d, v] : mm) p.devices.push_back(d);
  p.devices.push_back(kDiskDevice);
  p.run();
  clean(p.map, "");
  for (const auto& [k, v] : p.map) out.device_map[k] = v;
  for (const auto& [name, bytes] : m.tensors()) {
    size_t best = 0;
    int dev = p.devices.front();
    bool found = false;
    for (const auto& [k, v] : p.map)
      if ((k.empty() || name == k || under(name, k)) && (!found || k.size() >= best)) {
        best = k.size();
        dev = v;
        found = true;
      }
    out.tensor_device[name] = dev;
    out.bytes_on[dev] += bytes;
  }
  // per decoder layer, the device of most of its bytes
  out.layer_device.assign(model.facts.n_layers, 0);
  std::map<int64_t, std::map<int, uint64_t>> by_layer;
  for (const auto& t : model.tensors) {
    const int dev = out.tensor_device.at(t.name);
    if (t.layer >= 0) by_layer[t.layer][dev] += t.numel() + 1;
    if (t.role == TensorRole::kTokenEmbedding && t.layer < 0) out.embed_device = dev;
    if (t.role == TensorRole::kLmHead) out.head_device = dev;
    if (t.role == TensorRole::kNorm && t.layer < 0) out.norm_device = dev;
  }
  for (const auto& a : model.tied)
    if (a.alias.find("lm_head") != std::string::npos || a.alias.find("embed_out") != std::string::npos)
      out.head_device = out.tensor_device.at(a.alias);
  for (const auto& [layer, devs] : by_layer)
    if (layer >= 0 && static_cast<uint64_t>(layer) < out.layer_device.size())
      out.layer_device[layer] = std::max_element(devs.begin(), devs.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;
  return out;
}

}  // namespace llmem
