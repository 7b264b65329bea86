// ggml's graph allocator (ggml/src/ggml-alloc.c, ggml_gallocr) re-stated for one buffer: the graph a builder
// records (graph.hpp) is replayed tensor by tensor and the buffer is the allocator's high-water mark.
//
// The rules: tensors are visited in graph order; inputs are allocated first; a node whose op may run in place
// (ggml_op_can_inplace) takes over the memory of a parent that has no other consumer and the same layout; a tensor
// is freed when its last consumer has run (views keep their source alive); free blocks are chosen best-fit
// (ggml_dyn_tallocr_alloc), and the buffer is the highest end offset ever reached.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llmem::llamacpp {

struct GraphTensor {
  uint64_t bytes = 0;
  int view_src = -1;          // a view allocates nothing; its root tensor stays alive while it is
  bool inplace = false;       // ggml_op_can_inplace(op)
  bool input = false;
  bool output = false;
  bool external = false;      // weights, KV cache: in buffers of their own
  bool muted = false;         // an op of another device (Graph::set_muted): a placeholder, allocated elsewhere
  bool keep = false;          // an input kept even when nothing reads it (Graph::input_kept)
  bool host_copy = false;     // the GPU's copy of a tensor in host memory (Graph::host_copy)
  bool host_weight = false;   // ... of a weight: its op starts a split of its own
  bool cpu = false;           // a node the CPU backend runs (Graph::set_cpu): allocates nothing here
  bool view_op = false;       // a view, reshape or permute (ggml_is_view_op), which the scheduler's splits skip
  std::vector<int> src;
  std::string layout;         // type and shape, for the same-layout test of in-place reuse
};

// The tensors of one graph in the order ggml_build_forward_expand visits them. Indices name tensors.
class Graph {
 public:
  // A tensor that lives in another buffer (weights, the KV cache).
  int external(const std::string& what);
  // A graph input the scheduler copies in from the host at the start of the split. In a graph with muted ops
  // (another device's), an input nothing here reads is not this device's and allocates nothing.
  int input(uint64_t bytes, const std::string& layout);
  // An input that stays even when nothing reads it (the CPU graph's vector-embeddings input).
  int input_kept(uint64_t bytes, const std::string& layout);
  // An op producing a new tensor of `elems` elements of `elem_bytes` each; `shape` makes its layout.
  int op(uint64_t elems, uint64_t elem_bytes, std::vector<int> src, bool inplace, const std::string& shape);
  // A view of `of` (reshape, permute, slice); extra_src are further parents (a set_rows' indices).
  int view(int of, std::vector<int> extra_src = {});
  void mark_output(int tensor);
  // The copy of a tensor in host memory that the GPU reads (ggml-backend.cpp ggml_backend_sched_split_graph: a split
  // input of the GPU's split): a weight under an op the CUDA backend takes over (`weight` true), or a view of a
  // host KV cache. With any in the graph the scheduler's splits are replayed (see simulate_gallocr).
  int host_copy(uint64_t bytes, int of, bool weight, const std::string& what);
  // The op `tensor` runs on the CPU backend (a store into a KV cache in host memory): it allocates nothing in the
  // GPU's buffer, and the GPU tensors it reads are freed at its split's start.
  void set_cpu(int tensor);
  const std::vector<GraphTensor>& tensors() const { return tensors_; }

  // Several devices (llama.cpp's layer split): the graph of one device is the whole graph with the other devices'
  // ops muted. A muted op allocates nothing here; an op of this device that reads one reads the scheduler's copy
  // of it (ggml-backend.cpp split inputs): made at the first read and freed after the last, or, with pipeline
  // parallelism (copies > 1), `copies` of it allocated with the inputs and kept for the whole graph, as every
  // input copied in from the host then is too.
  void set_muted(bool muted);
  void set_split_input_copies(uint64_t copies) { copies_ = copies; }
  bool device_graph() const { return device_graph_; }

 private:
  int push(GraphTensor t);
  int split_input(int muted_tensor);
  std::vector<int> unmuted(std::vector<int> src);
  std::vector<GraphTensor> tensors_;
  bool muted_ = false, device_graph_ = false;
  uint64_t copies_ = 1;
  std::vector<std::pair<int, int>> copy_of_;  // muted tensor -> its split input here
};

// The size of the buffer ggml_gallocr reserves for the graph, with every allocation padded to `alignment_bytes`.
// A one-device graph with host copies (op offload) is replayed as ggml_backend_sched_split_graph lays it out: the
// graph cut into splits, each split's inputs (host copies, graph inputs copied in from the host) allocated at its
// start, before its first node.
// LLMEM_DEBUG_GALLOC=1 traces each new high-water mark and the tensors live at it to stderr.
uint64_t simulate_gallocr(const Graph& graph, uint64_t alignment_bytes);

uint64_t pad_to(uint64_t bytes, uint64_t multiple);

}  // namespace llmem::llamacpp
