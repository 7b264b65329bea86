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
  std::vector<int> src;
  std::string layout;         // type and shape, for the same-layout test of in-place reuse
};

// The tensors of one graph in the order ggml_build_forward_expand visits them. Indices name tensors.
class Graph {
 public:
  // A tensor that lives in another buffer (weights, the KV cache).
  int external(const std::string& what);
  // A graph input the scheduler copies in from the host at the start of the split.
  int input(uint64_t bytes, const std::string& layout);
  // An op producing a new tensor of `elems` elements of `elem_bytes` each; `shape` makes its layout.
  int op(uint64_t elems, uint64_t elem_bytes, std::vector<int> src, bool inplace, const std::string& shape);
  // A view of `of` (reshape, permute, slice); extra_src are further parents (a set_rows' indices).
  int view(int of, std::vector<int> extra_src = {});
  void mark_output(int tensor);
  const std::vector<GraphTensor>& tensors() const { return tensors_; }

 private:
  int push(GraphTensor t);
  std::vector<GraphTensor> tensors_;
};

// The size of the buffer ggml_gallocr reserves for the graph, with every allocation padded to `alignment_bytes`.
// LLMEM_DEBUG_GALLOC=1 traces each new high-water mark and the tensors live at it to stderr.
uint64_t simulate_gallocr(const Graph& graph, uint64_t alignment_bytes);

uint64_t pad_to(uint64_t bytes, uint64_t multiple);

}  // namespace llmem::llamacpp
