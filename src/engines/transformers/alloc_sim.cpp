#include "alloc_sim.hpp"

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "llmem/error.hpp"

namespace llmem::sim {
namespace {

constexpr uint64_t kMinBlock = 512;
constexpr uint64_t kSmallSize = 1 << 20;        // requests up to 1 MiB use the small pool
constexpr uint64_t kSmallBuffer = 2 << 20;      // small-pool segments are 2 MiB
constexpr uint64_t kLargeBuffer = 20 << 20;     // requests under 10 MiB get a 20 MiB segment
constexpr uint64_t kMinLargeAlloc = 10 << 20;
constexpr uint64_t kRoundLarge = 2 << 20;       // bigger segments round up to 2 MiB

std::string_view category(const std::string& name) {
  return std::string_view(name).substr(0, name.find('/'));
}

}  // namespace

[[noreturn]] void internal_error(const std::string& what) {
  throw Error(ErrorKind::kRuntime, "", "internal error: estimator: " + what);
}

uint64_t CachingAllocator::round_size(uint64_t bytes) {
  if (bytes < kMinBlock) return kMinBlock;
  return (bytes + kMinBlock - 1) / kMinBlock * kMinBlock;
}

uint64_t CachingAllocator::malloc(uint64_t bytes) {
  const uint64_t size = round_size(bytes);
  const bool small = size <= kSmallSize;
  auto& pool = small ? free_small_ : free_large_;
  auto it = pool.lower_bound({size, 0, 0});
  uint64_t seg_id, offset, block_size;
  if (it != pool.end()) {
    uint64_t rank;
    std::tie(block_size, rank, offset) = *it;
    seg_id = segment_of_rank(rank);
    pool_erase(pool, it);
    Segment& seg = segments_[seg_id];
    segment_erase(seg, seg.free_blocks.find(offset));
  } else if (expandable_) {
    // try_allocate_expandable_block: map pages at the segment's end, growing a free block that ends there
    const uint64_t page = small ? kSmallBuffer : kLargeBuffer;
    uint64_t& sid = small ? expandable_small_ : expandable_large_;
    if (sid == 0) {
      sid = next_segment_;
      new_segment(0, small);
    }
    Segment& seg = segments_[sid];
    uint64_t tail_offset = seg.size, tail = 0;
    if (!seg.free_blocks.empty()) {
      auto last = std::prev(seg.free_blocks.end());
      if (last->first + last->second == seg.size) {
        tail_offset = last->first;
        tail = last->second;
        pool_erase(pool, pool.find({tail, rank_of_segment(sid), tail_offset}));
        segment_erase(seg, last);
      }
    }
    const uint64_t mapped = (size - tail + page - 1) / page * page;
    seg.size += mapped;
    reserved_ += mapped;
    if (reserved_ > peak_reserved_) peak_reserved_ = reserved_;
    seg_id = sid;
    offset = tail_offset;
    block_size = tail + mapped;
  } else {
    uint64_t seg_size = small ? kSmallBuffer
                              : (size < kMinLargeAlloc ? kLargeBuffer : (size + kRoundLarge - 1) / kRoundLarge * kRoundLarge);
    seg_id = next_segment_;
    new_segment(seg_size, small);
    offset = 0;
    block_size = seg_size;
    reserved_ += seg_size;
    if (reserved_ > peak_reserved_) peak_reserved_ = reserved_;
  }
  const uint64_t remaining = block_size - size;
  const bool split = small || expandable_ ? remaining >= kMinBlock : remaining > kSmallSize;
  uint64_t used = split ? size : block_size;
  if (split) {
    segment_insert(segments_[seg_id], offset + size, remaining);
    pool_insert(pool, {remaining, rank_of_segment(seg_id), offset + size});
  }
  blocks_.push_back(Block{seg_id, offset, used, small, true});
  return blocks_.size() - 1;
}

void CachingAllocator::empty_cache() {
  if (expandable_) return;
  for (uint64_t id = 1; id < segments_.size(); ++id) {
    Segment& seg = segments_[id];
    if (seg.size == 0 || seg.free_blocks.size() != 1 || seg.free_blocks.begin()->second != seg.size) continue;
    (seg.small ? free_small_ : free_large_).erase({seg.size, rank_of_segment(id), 0});
    reserved_ -= seg.size;
    seg.free_blocks.clear();
    seg.size = 0;
  }
}

CachingAllocator::Segment& CachingAllocator::new_segment(uint64_t size, bool small) {
  ++next_segment_;
  segments_.push_back(Segment{size, small, {}});
  return segments_.back();
}

std::tuple<uint64_t, uint64_t, uint64_t> CachingAllocator::where(uint64_t handle) const {
  if (handle >= blocks_.size() || !blocks_[handle].live) return {0, 0, 0};
  const Block& b = blocks_[handle];
  return {b.segment, b.offset, segments_.at(b.segment).size};
}

void CachingAllocator::free(uint64_t handle) {
  if (handle == 0 || handle >= blocks_.size() || !blocks_[handle].live)
    internal_error("allocator simulation: free of an unknown block handle " + std::to_string(handle));
  blocks_[handle].live = false;
  const Block b = blocks_[handle];
  Segment& seg = segments_[b.segment];
  auto& pool = b.small ? free_small_ : free_large_;
  uint64_t offset = b.offset, size = b.size;
  // merge with the following free block
  auto next = seg.free_blocks.lower_bound(offset);
  if (next != seg.free_blocks.end() && next->first == offset + size) {
    pool_erase(pool, pool.find({next->second, rank_of_segment(b.segment), next->first}));
    size += next->second;
    next = std::next(next);
    segment_erase(seg, std::prev(next));
  }
  // merge with the preceding free block
  if (next != seg.free_blocks.begin()) {
    const auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      pool_erase(pool, pool.find({prev->second, rank_of_segment(b.segment), prev->first}));
      offset = prev->first;
      size += prev->second;
      segment_erase(seg, prev);
    }
  }
  segment_insert(seg, offset, size);
  pool_insert(pool, {size, rank_of_segment(b.segment), offset});
}

void CachingAllocator::pool_insert(Pool& pool, const std::tuple<uint64_t, uint64_t, uint64_t>& block) {
  if (pool_spares_.nodes.empty()) {
    pool.insert(block);
    return;
  }
  Pool::node_type node = std::move(pool_spares_.nodes.back());
  pool_spares_.nodes.pop_back();
  node.value() = block;
  pool.insert(std::move(node));
}

void CachingAllocator::segment_insert(Segment& seg, uint64_t offset, uint64_t size) {
  if (block_spares_.nodes.empty()) {
    seg.free_blocks.emplace(offset, size);
    return;
  }
  auto node = std::move(block_spares_.nodes.back());
  block_spares_.nodes.pop_back();
  node.key() = offset;
  node.mapped() = size;
  seg.free_blocks.insert(std::move(node));
}

Tracker::Tracker(bool simulate_allocator, bool expandable_segments)
    : simulate_(simulate_allocator),
      debug_(std::getenv("LLMEM_DEBUG_TRACE") != nullptr),
      allocator_(expandable_segments),
      side_(expandable_segments) {}

void Tracker::set_phase(std::string phase) {
  phase_ = std::move(phase);
  for (Tracker* d : devices_) d->set_phase(phase_);
  if (!hook_ || in_hook_) return;
  in_hook_ = true;
  hook_(*this, phase_);
  in_hook_ = false;
}

bool Tracker::fresh() const {
  return simulate_ && !debug_ && tensors_.empty() && !shared_ && category_names_.empty() && peak_allocated_ == 0 &&
         peak_total_reserved_ == 0 && outside_ == 0 && allocator_.reserved() == 0 && side_.reserved() == 0 &&
         side_category_.empty() && !view_ && !hook_ && devices_.empty();
}

void Tracker::share_live() {
  if (shared_) {  // a second call (not made today): one table of everything live
    for (const auto& [name, live] : *shared_)
      if (!shared_freed_.count(name)) tensors_.try_emplace(name, live);
    shared_freed_.clear();
  }
  shared_ = std::make_shared<const std::unordered_map<std::string, Live>>(std::move(tensors_));
  tensors_ = {};
  shared_categories_.assign(category_names_.size(), false);
  for (const auto& [name, live] : *shared_) shared_categories_[category_index(name)] = true;
}

const Tracker::Live* Tracker::find_live(const std::string& name) const {
  if (auto it = tensors_.find(name); it != tensors_.end()) return &it->second;
  if (!shared_) return nullptr;
  auto it = shared_->find(name);
  return it == shared_->end() || shared_freed_.count(name) ? nullptr : &it->second;
}

void Tracker::fan_out(std::vector<Tracker*> devices, Route route) {
  devices_ = std::move(devices);
  route_ = std::move(route);
}

void Tracker::set_side_stream_category(std::string category) {
  for (Tracker* d : devices_) d->set_side_stream_category(category);
  side_category_ = std::move(category);
}

void Tracker::alloc(std::string new_name, uint64_t whole_bytes) {
  if (!devices_.empty()) {
    std::unordered_map<std::string, size_t>::iterator it;
    if (routed_spares_.nodes.empty()) {
      bool inserted;
      std::tie(it, inserted) = routed_.try_emplace(new_name, 0);
      if (!inserted) internal_error("tensor allocated twice: " + new_name);
    } else {  // a freed node, its name's buffer reused for this one's
      auto node = std::move(routed_spares_.nodes.back());
      routed_spares_.nodes.pop_back();
      node.key() = new_name;
      auto r = routed_.insert(std::move(node));
      if (!r.inserted) internal_error("tensor allocated twice: " + new_name);
      it = r.position;
    }
    it->second = route_(new_name);
    if (it->second < devices_.size()) devices_[it->second]->alloc(std::move(new_name), whole_bytes);
    return;
  }
  // (the shared table is asked only for the categories it holds: the load's weights, not a forward's activations)
  const size_t cat = category_index(new_name);
  if (shared_ && cat < shared_categories_.size() && shared_categories_[cat] && shared_->count(new_name) &&
      !shared_freed_.count(new_name))
    internal_error("tensor allocated twice: " + new_name);
  // try_emplace leaves its key unmoved when the name is live already; a spare node returns with it
  std::unordered_map<std::string, Live>::iterator it;
  if (tensor_spares_.nodes.empty()) {
    bool inserted;
    std::tie(it, inserted) = tensors_.try_emplace(std::move(new_name), Live{0, 0});
    if (!inserted) internal_error("tensor allocated twice: " + new_name);
  } else {
    auto node = std::move(tensor_spares_.nodes.back());
    tensor_spares_.nodes.pop_back();
    node.key() = std::move(new_name);
    node.mapped() = Live{0, 0};
    auto r = tensors_.insert(std::move(node));
    if (!r.inserted) internal_error("tensor allocated twice: " + r.node.key());
    it = r.position;
  }
  const std::string& name = it->first;
  const uint64_t bytes = view_ ? view_(name, whole_bytes) : whole_bytes;
  // A tensor of no elements takes no memory from the caching allocator (no block), but it is live all the same:
  // its free must match.
  const uint64_t size = bytes == 0 ? 0 : CachingAllocator::round_size(bytes);
  const bool side = !side_category_.empty() && category(name) == side_category_;
  CachingAllocator& pool = side ? side_ : allocator_;
  const uint64_t handle = simulate_ && bytes > 0 ? pool.malloc(bytes) : 0;
  peak_total_reserved_ = std::max(peak_total_reserved_, allocator_.reserved() + side_.reserved());
  peak_with_outside_ = std::max(peak_with_outside_, allocator_.reserved() + side_.reserved() + outside_);
  it->second = Live{size, handle, side};
  allocated_ += size;
  category_bytes_[cat] += size;
  if (debug_) {
    const auto [seg, off, seg_size] = pool.where(handle);
    std::fprintf(stderr, "a %s %llu %llu seg#%llu(%llu MiB)+%.1f\n", name.c_str(), static_cast<unsigned long long>(size),
                 static_cast<unsigned long long>(allocator_.reserved()), static_cast<unsigned long long>(seg),
                 static_cast<unsigned long long>(seg_size >> 20), static_cast<double>(off) / 1048576.0);
  }
  note_peak();
}

void Tracker::free(const std::string& name) {
  if (!devices_.empty()) {
    auto it = routed_.find(name);
    if (it == routed_.end()) internal_error("free of a tensor that is not allocated: " + name);
    if (it->second < devices_.size()) devices_[it->second]->free(name);
    routed_spares_.nodes.push_back(routed_.extract(it));
    return;
  }
  Live gone{0, 0};
  if (auto it = tensors_.find(name); it != tensors_.end()) {
    gone = it->second;
    tensor_spares_.nodes.push_back(tensors_.extract(it));
  } else {
    const Live* shared = find_live(name);  // not in tensors_: the shared table's, unless freed since
    if (!shared) internal_error("free of a tensor that is not allocated: " + name);
    gone = *shared;
    shared_freed_.insert(name);
  }
  allocated_ -= gone.bytes;
  category_bytes_[category_index(name)] -= gone.bytes;
  if (simulate_ && gone.handle != 0) (gone.side ? side_ : allocator_).free(gone.handle);
  if (debug_)
    std::fprintf(stderr, "f %s %llu %llu\n", name.c_str(), static_cast<unsigned long long>(gone.bytes),
                 static_cast<unsigned long long>(allocator_.reserved()));
}

void Tracker::empty_cache() {
  for (Tracker* d : devices_) d->empty_cache();
  allocator_.empty_cache();
  side_.empty_cache();
}

void Tracker::add_outside(uint64_t bytes) {
  for (Tracker* d : devices_) d->add_outside(bytes);
  outside_ += bytes;
  peak_with_outside_ = std::max(peak_with_outside_, allocator_.reserved() + side_.reserved() + outside_);
}

uint64_t Tracker::bytes_of(const std::string& name) const {
  const Live* l = find_live(name);
  return l ? l->bytes : 0;
}

void Tracker::note_peak() {
  if (allocated_ <= peak_allocated_) return;
  peak_allocated_ = allocated_;
  peak_phase_ = phase_;
  peak_category_bytes_ = category_bytes_;
  peak_breakdown_stale_ = true;
}

size_t Tracker::category_index(const std::string& name) {
  if (last_category_ < category_names_.size()) {  // the last one found: "<it>/..." (or the whole name)
    const std::string& last = category_names_[last_category_];
    if (name.compare(0, last.size(), last) == 0 && (name.size() == last.size() || name[last.size()] == '/'))
      return last_category_;
  }
  const std::string_view cat = category(name);
  for (size_t i = 0; i < category_names_.size(); ++i)
    if (category_names_[i] == cat) return last_category_ = i;
  last_category_ = category_names_.size();
  category_names_.emplace_back(cat);
  category_bytes_.push_back(0);
  return category_names_.size() - 1;
}

const std::map<std::string, uint64_t>& Tracker::peak_breakdown() const {
  if (!peak_breakdown_stale_) return peak_breakdown_;
  peak_breakdown_stale_ = false;
  peak_breakdown_.clear();
  for (size_t i = 0; i < peak_category_bytes_.size(); ++i)
    if (peak_category_bytes_[i]) peak_breakdown_[category_names_[i]] = peak_category_bytes_[i];
  return peak_breakdown_;
}

}  // namespace llmem::sim
