#include "galloc.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

namespace llmem::llamacpp {

uint64_t pad_to(uint64_t bytes, uint64_t multiple) { return (bytes + multiple - 1) / multiple * multiple; }

// ---- the recorded graph -------------------------------------------------------------------------------------

int Graph::external(const std::string& what) {
  GraphTensor t;
  t.external = true;
  t.layout = what;
  return push(std::move(t));
}

int Graph::input(uint64_t bytes, const std::string& layout) {
  GraphTensor t;
  // with pipeline parallelism every input copied into a device is there `copies` times, kept (input and output)
  t.bytes = bytes * copies_;
  t.output = copies_ > 1;
  t.input = true;
  t.layout = layout;
  return push(std::move(t));
}

int Graph::input_kept(uint64_t bytes, const std::string& layout) {
  const int i = input(bytes, layout);
  tensors_[static_cast<size_t>(i)].keep = true;
  return i;
}

int Graph::op(uint64_t elems, uint64_t elem_bytes, std::vector<int> src, bool inplace, const std::string& shape) {
  GraphTensor t;
  t.bytes = elems * elem_bytes;
  t.src = unmuted(std::move(src));
  t.inplace = inplace;
  t.layout = std::to_string(elem_bytes) + ":" + shape;
  return push(std::move(t));
}

int Graph::view(int of, std::vector<int> extra_src) {
  GraphTensor t;
  if (muted_) {  // a placeholder with its root's size, for the copy another device may read
    const int root = tensors_[static_cast<size_t>(of)].view_src;
    t.bytes = tensors_[static_cast<size_t>(root >= 0 ? root : of)].bytes;
    return push(std::move(t));
  }
  of = unmuted({of}).front();
  // ggml's view_src is always the root tensor, also for a view of a view (ggml.c ggml_view_impl)
  const int parent_root = tensors_[static_cast<size_t>(of)].view_src;
  t.view_src = parent_root >= 0 ? parent_root : of;
  t.src = {of};
  t.view_op = extra_src.empty();  // with further parents it is an op writing into a view (set_rows)
  const std::vector<int> extra = unmuted(std::move(extra_src));
  t.src.insert(t.src.end(), extra.begin(), extra.end());
  return push(std::move(t));
}

void Graph::set_muted(bool muted) {
  muted_ = muted;
  if (muted) device_graph_ = true;
}

std::vector<int> Graph::unmuted(std::vector<int> src) {
  if (muted_) return {};  // a muted op depends on nothing here
  for (int& s : src)
    if (s >= 0 && tensors_[static_cast<size_t>(s)].muted) s = split_input(s);
  return src;
}

int Graph::split_input(int muted_tensor) {
  for (const auto& [from, to] : copy_of_)
    if (from == muted_tensor) return to;
  GraphTensor t;
  t.bytes = tensors_[static_cast<size_t>(muted_tensor)].bytes;
  t.layout = "split-input";
  if (copies_ > 1) {
    t.bytes *= copies_;
    t.input = t.output = true;
  } else {
    t.src = {muted_tensor};  // allocated where first read (its source, a placeholder, allocates nothing)
  }
  const int copy = push(std::move(t));
  copy_of_.emplace_back(muted_tensor, copy);
  return copy;
}

int Graph::host_copy(uint64_t bytes, int of, bool weight, const std::string& what) {
  const int i = op(bytes, 1, {of}, false, "copy:" + what);
  GraphTensor& t = tensors_[static_cast<size_t>(i)];
  if (!t.muted) t.host_copy = true, t.host_weight = weight;
  return i;
}

void Graph::set_cpu(int tensor) {
  GraphTensor& t = tensors_[static_cast<size_t>(tensor)];
  if (!t.muted) t.cpu = true;
}

void Graph::mark_output(int tensor) { tensors_[static_cast<size_t>(tensor)].output = true; }

int Graph::push(GraphTensor t) {
  if (muted_) {
    t.muted = t.external = true;
    t.src.clear();
    t.view_src = -1;
    t.input = t.output = false;
  }
  tensors_.push_back(std::move(t));
  return static_cast<int>(tensors_.size()) - 1;
}

namespace {

// ggml_dyn_tallocr: best-fit over a free list kept in address order, adjacent blocks merged on free; the last
// block is the unbounded tail of the buffer, taken only when no other block fits.
class DynAllocator {
 public:
  explicit DynAllocator(uint64_t alignment_bytes) : alignment_bytes_(alignment_bytes) {
    blocks_.push_back({0, std::numeric_limits<uint64_t>::max() / 2});
  }

  uint64_t alloc(uint64_t bytes) {
    bytes = pad_to(bytes, alignment_bytes_);
    int best = -1;
    uint64_t best_bytes = std::numeric_limits<uint64_t>::max();
    for (size_t i = 0; i + 1 < blocks_.size(); ++i) {
      if (blocks_[i].bytes >= bytes && blocks_[i].bytes <= best_bytes) {
        best = static_cast<int>(i);
        best_bytes = blocks_[i].bytes;
      }
    }
    if (best < 0) best = static_cast<int>(blocks_.size()) - 1;
    Block& b = blocks_[static_cast<size_t>(best)];
    const uint64_t offset = b.offset;
    b.offset += bytes;
    b.bytes -= bytes;
    if (b.bytes == 0) blocks_.erase(blocks_.begin() + best);
    high_water_bytes_ = std::max(high_water_bytes_, offset + bytes);
    return offset;
  }

  void free(uint64_t offset, uint64_t bytes) {
    bytes = pad_to(bytes, alignment_bytes_);
    // merge with an adjacent block, else insert in address order
    for (size_t i = 0; i < blocks_.size(); ++i) {
      Block& b = blocks_[i];
      if (b.offset + b.bytes == offset) {
        b.bytes += bytes;
        if (i + 1 < blocks_.size() && blocks_[i + 1].offset == b.offset + b.bytes) {
          b.bytes += blocks_[i + 1].bytes;
          blocks_.erase(blocks_.begin() + static_cast<long>(i) + 1);
        }
        return;
      }
      if (offset + bytes == b.offset) {
        b.offset = offset;
        b.bytes += bytes;
        return;
      }
    }
    auto it = std::lower_bound(blocks_.begin(), blocks_.end(), offset,
                               [](const Block& b, uint64_t o) { return b.offset < o; });
    blocks_.insert(it, {offset, bytes});
  }

  uint64_t high_water_bytes() const { return high_water_bytes_; }

 private:
  struct Block {
    uint64_t offset, bytes;
  };
  uint64_t alignment_bytes_;
  std::vector<Block> blocks_;
  uint64_t high_water_bytes_ = 0;
};

// One pass of ggml_gallocr_alloc_graph_impl over the recorded graph.
class GallocReplay {
 public:
  GallocReplay(const Graph& graph, uint64_t alignment_bytes)
      : ts_(graph.tensors()), device_graph_(graph.device_graph()), children_(ts_.size(), 0), views_(ts_.size(), 0), allocated_(ts_.size(), false),
        offset_(ts_.size(), 0), allocator_(alignment_bytes), debug_(std::getenv("LLMEM_DEBUG_GALLOC") != nullptr),
        trace_all_(debug_ && std::string(std::getenv("LLMEM_DEBUG_GALLOC")) == "2") {}

  uint64_t run() {
    if (!device_graph_ && std::any_of(ts_.begin(), ts_.end(), [](const GraphTensor& t) { return t.host_copy; }))
      return run_splits();
    // ggml_gallocr_alloc_graph_impl: count consumers and views, allocate the inputs up front
    for (size_t i = 0; i < ts_.size(); ++i) {
      if (is_view(i)) views_[static_cast<size_t>(ts_[i].view_src)] += 1;
      for (int p : ts_[i].src) children_[static_cast<size_t>(p)] += 1;
    }
    // inputs first; in one device's graph only those it reads (and kept ones)
    for (size_t i = 0; i < ts_.size(); ++i)
      if (ts_[i].input && (!device_graph_ || children_[i] > 0 || ts_[i].keep)) allocate(i);
    for (size_t i = 0; i < ts_.size(); ++i) {
      if (ts_[i].external || ts_[i].input) continue;
      if (ts_[i].src.empty() && !is_view(i)) continue;
      allocate(i);
      for (int p : ts_[i].src) consumed(static_cast<size_t>(p));
    }
    return allocator_.high_water_bytes();
  }

  // The graph as ggml_backend_sched_split_graph hands it to ggml_gallocr when ops run on the GPU from host copies.
  // Pass 5 there cuts the node list into splits: a new one where the backend changes (the CPU's stores into a host
  // KV cache) or where a node reads a weight of another backend while the split already has inputs ("by starting a
  // new split, the memory of the previously offloaded weights can be reused"). A split's inputs are the tensors of
  // other backends its nodes read, each copied once per backend, in the order the nodes (view ops skipped) and
  // their sources are met: the host weights' copies, the host KV views' copies, and the graph inputs, which
  // llama.cpp sets on the CPU backend (ggml_backend_sched_backend_id_from_cur "1.inp") and which reach the GPU as
  // copies too. The graph copy lists each split's input copies before its nodes, so ggml-alloc allocates them
  // there; the GPU tensors a CPU split reads are freed at its start (the input_dep views). An input nothing on the
  // GPU reads (the cache's row indices of host layers) takes no room here.
  uint64_t run_splits() {
    auto host_side = [&](int s) { return ts_[static_cast<size_t>(s)].input || ts_[static_cast<size_t>(s)].host_copy; };
    // the CPU's copy of what a CPU node reads from the host side is no GPU tensor's consumer
    auto counted = [&](size_t node, int s) { return !(ts_[node].cpu && host_side(s)); };
    for (size_t i = 0; i < ts_.size(); ++i) {
      if (is_view(i)) views_[static_cast<size_t>(ts_[i].view_src)] += 1;
      for (int p : ts_[i].src)
        if (counted(i, p)) children_[static_cast<size_t>(p)] += 1;
    }
    auto is_node = [&](size_t i) {
      return !ts_[i].external && !ts_[i].input && !ts_[i].host_copy && !(ts_[i].src.empty() && !is_view(i));
    };
    struct Split {
      size_t begin;
      bool cpu;
      std::vector<size_t> inputs;
    };
    std::vector<Split> splits;
    std::vector<bool> copied(ts_.size(), false);
    for (size_t i = 0; i < ts_.size(); ++i) {
      if (!is_node(i) || ts_[i].view_op) continue;
      const bool cpu = ts_[i].cpu;
      bool need_new = splits.empty() || splits.back().cpu != cpu;
      if (!need_new && !splits.back().inputs.empty())
        for (int p : ts_[i].src) need_new = need_new || ts_[static_cast<size_t>(p)].host_weight;
      if (need_new) splits.push_back({i, cpu, {}});
      for (int p : ts_[i].src) {
        const auto pi = static_cast<size_t>(p);
        if (cpu ? !host_side(p) && !ts_[pi].external : host_side(p) && !copied[pi]) {
          // a GPU tensor a CPU split reads is an input of that split too (it counts for the rule above)
          if (!cpu) copied[pi] = true;
          splits.back().inputs.push_back(pi);
        }
      }
    }
    if (splits.empty()) return 0;
    splits.front().begin = 0;  // views before the first node go with it
    for (size_t k = 0; k < splits.size(); ++k) {
      if (!splits[k].cpu)
        for (size_t in : splits[k].inputs) allocate(in);
      const size_t end = k + 1 < splits.size() ? splits[k + 1].begin : ts_.size();
      for (size_t i = splits[k].begin; i < end; ++i) {
        if (!is_node(i)) continue;
        if (!ts_[i].cpu) allocate(i);
        for (int p : ts_[i].src)
          if (counted(i, p)) consumed(static_cast<size_t>(p));
      }
    }
    return allocator_.high_water_bytes();
  }

 private:
  bool is_view(size_t i) const { return ts_[i].view_src >= 0; }

  void allocate(size_t i) {
    if (allocated_[i] || is_view(i) || ts_[i].external) return;
    allocated_[i] = true;
    if (ts_[i].inplace && reuse_parent(i)) return;
    offset_[i] = allocator_.alloc(ts_[i].bytes);
    if (trace_all_)
      std::fprintf(stderr, "galloc: alloc #%zu %s %llu bytes at %llu\n", i, ts_[i].layout.c_str(),
                   static_cast<unsigned long long>(pad_to(ts_[i].bytes, 1)), static_cast<unsigned long long>(offset_[i]));
    if (debug_) trace_high_water(i);
  }

  // The first parent that this allocator owns (never a view), not an output, of the same layout and with no other
  // consumer gives its memory to the node.
  bool reuse_parent(size_t i) {
    for (int p : ts_[i].src) {
      const auto pi = static_cast<size_t>(p);
      if (ts_[pi].external || is_view(pi) || ts_[pi].output || ts_[pi].layout != ts_[i].layout) continue;
      if (children_[pi] == 1 && views_[pi] == 0 && allocated_[pi]) {
        offset_[i] = offset_[pi];
        allocated_[pi] = false;
        if (trace_all_) std::fprintf(stderr, "galloc: #%zu reuses #%zu\n", i, pi);
        return true;
      }
    }
    return false;
  }

  // A consumer of `p` has run: free `p` (or, for a view, its root) once nothing needs it any more.
  void consumed(size_t p) {
    children_[p] -= 1;
    if (children_[p] != 0 || views_[p] != 0) return;
    if (is_view(p)) {
      const auto root = static_cast<size_t>(ts_[p].view_src);
      views_[root] -= 1;
      if (views_[root] == 0 && children_[root] == 0) release(root);
    } else {
      release(p);
    }
  }

  void release(size_t i) {
    if (!allocated_[i] || ts_[i].output) return;
    if (trace_all_) std::fprintf(stderr, "galloc: free #%zu at %llu\n", i, static_cast<unsigned long long>(offset_[i]));
    allocator_.free(offset_[i], ts_[i].bytes);
    allocated_[i] = false;
  }

  void trace_high_water(size_t i) {
    if (allocator_.high_water_bytes() <= last_traced_bytes_) return;
    last_traced_bytes_ = allocator_.high_water_bytes();
    std::fprintf(stderr, "galloc: high-water %.2f MiB at tensor %zu (%s, %.2f MiB); live:",
                 static_cast<double>(last_traced_bytes_) / 1048576.0, i, ts_[i].layout.c_str(),
                 static_cast<double>(ts_[i].bytes) / 1048576.0);
    for (size_t j = 0; j < ts_.size(); ++j)
      if (allocated_[j] && ts_[j].bytes > (1u << 20))
        std::fprintf(stderr, " #%zu %s %.1f", j, ts_[j].layout.c_str(), static_cast<double>(ts_[j].bytes) / 1048576.0);
    std::fprintf(stderr, "\n");
  }

  const std::vector<GraphTensor>& ts_;
  bool device_graph_;
  std::vector<int> children_, views_;
  std::vector<bool> allocated_;
  std::vector<uint64_t> offset_;
  DynAllocator allocator_;
  bool debug_;
  bool trace_all_;  // LLMEM_DEBUG_GALLOC=2: every allocation, reuse and free
  uint64_t last_traced_bytes_ = 0;
};

}  // namespace

uint64_t simulate_gallocr(const Graph& graph, uint64_t alignment_bytes) {
  return GallocReplay(graph, alignment_bytes).run();
}

}  // namespace llmem::llamacpp
