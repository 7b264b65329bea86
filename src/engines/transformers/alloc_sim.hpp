// A replay of an engine's allocations through a model of PyTorch's CUDA caching allocator.
//
// Engines describe what they allocate and free, in order (the tensors of a forward pass, the KV cache growing,
// the optimizer's states); the tracker keeps the live total, whose maximum is torch.cuda.max_memory_allocated(),
// and replays the same events through the allocator's rules, whose peak is torch.cuda.max_memory_reserved().
//
// The rules are those of c10/cuda/CUDACachingAllocator.cpp (PyTorch 2.x): sizes round up to 512 bytes; requests
// of at most 1 MiB come from a "small" pool of 2 MiB segments; larger ones from a "large" pool, where a request
// under 10 MiB gets a 20 MiB segment and a bigger one a segment of its size rounded up to 2 MiB; a request is
// served by the smallest cached free block that fits (best fit), which is split when the remainder is worth
// keeping (more than 1 MiB in the large pool, 512 bytes or more in the small pool); freed blocks merge with free
// neighbours of the same segment. Segments go back to the driver only at torch.cuda.empty_cache() (empty_cache():
// every segment with no live block; CUDA-graph trees call it before their first capture).
//
// With PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (Note [Expandable Segments] in CUDACachingAllocator.cpp),
// each pool has one segment per stream that grows: when no cached block fits, physical pages are mapped at the
// segment's end (2 MiB pages for the small pool, 20 MiB for the large), extending a free block that ends there;
// every block may be split when 512 bytes or more remain (should_split).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <memory>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace llmem::sim {

// An estimator that lost track of its own state (a replay freeing what it never allocated, a tensor table the
// engine cannot lay out): an error in llmem, not in the user's input. Throws Error(kRuntime) "internal error: ...".
[[noreturn]] void internal_error(const std::string& what);

// Nodes of a node-based container (std::set, std::map, std::unordered_map) whose elements were erased, kept to
// hold the next ones inserted (extract, then insert by node): a replay's millions of allocations and frees reuse a
// few nodes instead of allocating each. A copy starts without spares (nodes are not copied).
template <class Node>
struct Spares {
  std::vector<Node> nodes;
  Spares() = default;
  Spares(const Spares&) {}
  Spares& operator=(const Spares&) { return *this; }
  Spares(Spares&&) = default;
  Spares& operator=(Spares&&) = default;
};

class CachingAllocator {
 public:
  explicit CachingAllocator(bool expandable_segments = false) : expandable_(expandable_segments) {}
  // Returns a handle (never 0).
  uint64_t malloc(uint64_t bytes);
  // Throws an internal Error for a handle that is not live.
  void free(uint64_t handle);
  uint64_t reserved() const { return reserved_; }
  bool expandable_segments() const { return expandable_; }
  uint64_t peak_reserved() const { return peak_reserved_; }
  // torch.cuda.empty_cache() (release_cached_blocks): every segment without a live block goes back to the driver.
  // With expandable segments the unmapped pages are left alone (not modelled: nothing calls it there yet).
  void empty_cache();
  static uint64_t round_size(uint64_t bytes);
  // Where a live block sits: {segment number, offset, segment size} (for LLMEM_DEBUG_TRACE).
  std::tuple<uint64_t, uint64_t, uint64_t> where(uint64_t handle) const;

 private:
  struct Block {
    uint64_t segment;
    uint64_t offset;
    uint64_t size;
    bool small;
    bool live;
  };
  struct Segment {
    uint64_t size;
    bool small;
    std::map<uint64_t, uint64_t> free_blocks;  // offset -> size
  };
  // Handles and segment numbers count up from 1, so both tables are vectors indexed by them (entry 0 unused): a
  // replay makes hundreds of thousands of blocks, and a fit hundreds of replays.
  uint64_t next_segment_ = 1;
  std::vector<Block> blocks_{Block{0, 0, 0, false, false}};
  std::vector<Segment> segments_{Segment{0, false, {}}};
  Segment& new_segment(uint64_t size, bool small);
  // (size, address rank, offset) of free blocks, per pool, for best fit. PyTorch orders free blocks by size and
  // then address; the driver hands out each new segment below the previous one (bench/data/traces: 7,295 of
  // 7,709 consecutive segments over 20 MiB in the 53 traces, 94.6 %), so among equal sizes the newest segment
  // has the lowest address.
  static uint64_t rank_of_segment(uint64_t segment) { return ~segment; }
  static uint64_t segment_of_rank(uint64_t rank) { return ~rank; }
  using Pool = std::set<std::tuple<uint64_t, uint64_t, uint64_t>>;
  Pool free_small_, free_large_;
  // the nodes of free blocks erased from a pool or a segment, for the next ones inserted
  Spares<Pool::node_type> pool_spares_;
  Spares<std::map<uint64_t, uint64_t>::node_type> block_spares_;
  void pool_erase(Pool& pool, Pool::const_iterator it) { pool_spares_.nodes.push_back(pool.extract(it)); }
  void pool_insert(Pool& pool, const std::tuple<uint64_t, uint64_t, uint64_t>& block);
  void segment_erase(Segment& seg, std::map<uint64_t, uint64_t>::const_iterator it) {
    block_spares_.nodes.push_back(seg.free_blocks.extract(it));
  }
  void segment_insert(Segment& seg, uint64_t offset, uint64_t size);
  uint64_t reserved_ = 0, peak_reserved_ = 0;
  bool expandable_ = false;
  uint64_t expandable_small_ = 0, expandable_large_ = 0;  // each pool's growing segment (0: none yet)
};

// Live tensors by name; tracks the framework's allocated bytes and replays them through the allocator.
class Tracker {
 public:
  // LLMEM_DEBUG_TRACE=1 prints every event (a/f, name, bytes, reserved after it) to stderr, for comparing the
  // replayed sequence with a real allocator trace (bench/gpu/trace_cases.sh).
  explicit Tracker(bool simulate_allocator = true, bool expandable_segments = false);
  // Allocates `bytes` under `name`. Throws an internal Error when `name` is live already.
  // `name` by value: most callers build it for this call (fmt::format, "weights/" + ...), and it moves into the
  // live table rather than being copied there (a fit replays hundreds of thousands of allocations).
  void alloc(std::string name, uint64_t bytes);
  // Frees the live tensor `name`. Throws an internal Error (naming it) when no such tensor is live: every free must
  // match an allocation.
  void free(const std::string& name);
  // Room for `live` tensors live at once (a weight load's tens of thousands): the live table grows once.
  void reserve(size_t live) { devices_.empty() ? tensors_.reserve(live) : routed_.reserve(live); }
  bool live(const std::string& name) const { return devices_.empty() ? find_live(name) != nullptr : routed_.count(name) != 0; }
  uint64_t bytes_of(const std::string& name) const;
  // Marks the current moment as a candidate peak: remembers the live set when it is the largest so far.
  uint64_t allocated() const { return allocated_; }
  uint64_t peak_allocated() const { return peak_allocated_; }
  // the pools' summed peak (one pool's peak without a side stream: reserved memory grows only at a malloc, after
  // each of which the sum is taken)
  uint64_t peak_reserved() const { return peak_total_reserved_; }
  const std::string& peak_phase() const { return peak_phase_; }
  // Live bytes at the peak, grouped by the category prefix of each tensor name ("kv_cache/3/k" -> "kv_cache").
  const std::map<std::string, uint64_t>& peak_breakdown() const;
  // Sets the phase (where a peak is reported), then calls the phase hook, if any.
  void set_phase(std::string phase);

  // Several GPUs (multi_gpu.cpp): one replay per device or rank, each through its own Tracker. A view maps each
  // allocation to the bytes this device holds of it: 0 for a tensor that lives on another device (it stays live by
  // name, so its free still matches), a shard's bytes for a sharded one; unset, every allocation is whole.
  using View = std::function<uint64_t(const std::string& name, uint64_t bytes)>;
  void set_view(View view) { view_ = std::move(view); }
  // Called with each new phase once it is set: what a phase boundary allocates or frees on this device beyond the
  // single-GPU replay (a hook's copy of a layer's inputs, a prefetched all-gather). Not called again from within.
  using PhaseHook = std::function<void(Tracker&, const std::string& phase)>;
  void set_phase_hook(PhaseHook hook) { hook_ = std::move(hook); }
  // Allocations of this category come from a second stream (FSDP2's all-gather and reduce-scatter streams): the
  // caching allocator keeps a stream's freed blocks for that stream, so they form their own pool of segments, and
  // the reserved peak is the two pools' sum.
  void set_side_stream_category(std::string category);
  // torch.cuda.empty_cache() on both pools.
  void empty_cache();
  // Device memory outside the caching allocator that the process holds from now on (a compiled graph's kernels
  // and CUDA graph): the process peak is the largest reserved total plus what was held beside it at that moment.
  void add_outside(uint64_t bytes);
  uint64_t peak_reserved_with_outside() const { return peak_with_outside_; }

  // Nothing replayed or set yet beyond the constructor's choices, and no trace printed: a copy of another fresh
  // tracker's state after the same events is the state these events would give this one (ReplayCache).
  bool fresh() const;
  // Makes the live tensors a read-only table that copies of this tracker share (ReplayCache keeps a replay with its
  // weights loaded, and every estimate of a fit starts from a copy of it: tens of thousands of names for an MoE,
  // which a copy would otherwise duplicate). What the tracker and its copies allocate and free afterwards is
  // their own.
  void share_live();
  bool expandable_segments() const { return allocator_.expandable_segments(); }

  // Several devices in one replay (multi_gpu.cpp): each tensor's allocation and free go to the tracker of the
  // device `route` names for it, which so sees the very events, in the same order, that a replay of its own through
  // a view (its tensors whole, the others' of no bytes, which change nothing) would give bytes to; phases (and their
  // hooks), empty_cache, memory outside the allocator and the side stream go to every device. This tracker keeps
  // only which tensors are live, and where: one replay instead of one per device. A route beyond the devices (a
  // weight offloaded to the CPU) keeps the tensor live on none of them.
  using Route = std::function<size_t(const std::string& name)>;
  void fan_out(std::vector<Tracker*> devices, Route route);

 private:
  struct Live {
    uint64_t bytes;
    uint64_t handle;
    bool side = false;
  };
  void note_peak();
  // The live tensor `name` (in tensors_, or in the shared table and not freed since), or null.
  const Live* find_live(const std::string& name) const;
  size_t category_index(const std::string& name);
  bool simulate_;
  bool debug_ = false;
  CachingAllocator allocator_;
  CachingAllocator side_;  // the side stream's pool (set_side_stream_category)
  std::string side_category_;
  uint64_t peak_total_reserved_ = 0;
  uint64_t outside_ = 0, peak_with_outside_ = 0;
  // A fit runs hundreds of replays of tens of thousands of tensors (an MoE's experts): live tensors are hashed,
  // and the few categories are kept as parallel vectors so that a new peak copies numbers, not a map.
  std::unordered_map<std::string, Live> tensors_;
  Spares<std::unordered_map<std::string, Live>::node_type> tensor_spares_;  // tensors_'s freed nodes
  // share_live's table, and the names of its tensors freed since (a name freed and allocated again lives in
  // tensors_ then): live tensors are those of tensors_ and those of shared_ not in shared_freed_.
  std::shared_ptr<const std::unordered_map<std::string, Live>> shared_;
  std::unordered_set<std::string> shared_freed_;
  std::vector<bool> shared_categories_;  // by category index: whether shared_ holds a tensor of it
  uint64_t allocated_ = 0, peak_allocated_ = 0;
  std::string phase_, peak_phase_;
  std::vector<std::string> category_names_;
  size_t last_category_ = 0;  // the category found last (a replay's names come in runs of one category)
  std::vector<uint64_t> category_bytes_, peak_category_bytes_;
  mutable std::map<std::string, uint64_t> peak_breakdown_;  // built from peak_category_bytes_ when asked
  mutable bool peak_breakdown_stale_ = true;
  View view_;
  PhaseHook hook_;
  bool in_hook_ = false;
  std::vector<Tracker*> devices_;  // fan_out: the devices' trackers, and where each live tensor went
  Route route_;
  std::unordered_map<std::string, size_t> routed_;
  Spares<std::unordered_map<std::string, size_t>::node_type> routed_spares_;  // routed_'s freed nodes
};

}  // namespace llmem::sim
