// bitsandbytes' storage arithmetic, in one place (issue 14): the 4-bit weights of a QLoRA base and the 8-bit
// optimizer states, as bitsandbytes 0.48.2 allocates them. Nothing here replays an allocation order; the training
// replay (training.cpp, optimizer.cpp) allocates these pieces where bitsandbytes makes them. Pre-quantised
// checkpoints (a quantization_config in config.json) are read elsewhere (the formats/arch layer); this file is the
// arithmetic both can share.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llmem/tensor.hpp"

namespace llmem::transformers::bnb {

// One tensor bitsandbytes keeps for a quantised weight or an optimizer state: its name and its bytes (numel x
// element size, before the caching allocator's 512-byte rounding).
struct Piece {
  std::string what;
  uint64_t bytes;
};

// Linear4bit's blocksize (Params4bit default, functional.quantize_4bit: 64 on CUDA) and double quantisation's
// (quantize_4bit calls quantize_blockwise(absmax - offset, blocksize=256)).
inline constexpr uint64_t kBlocksize4bit = 64;
inline constexpr uint64_t kBlocksizeNested = 256;

// functional.quantize_4bit (bitsandbytes 0.48.2, backends/cuda/ops.py quantize_4bit with quant_storage uint8) for
// a weight of `numel` elements, NF4 or FP4 alike (both codes have 16 entries):
//   weight    uint8 [(numel + 1) // 2, 1]             two 4-bit codes per byte
//   code      fp32 [16]                               get_4bit_type(quant_type): a new tensor per weight
//   without double quantisation:
//   absmax    fp32 [ceil(numel / 64)]
//   with it (compress_statistics=True):
//   absmax    uint8 [ceil(numel / 64)]                quantize_blockwise of (absmax - offset), 8-bit dynamic map
//   absmax2   fp32 [ceil(blocks / 256)]               the nested state's absmax
//   code2     fp32 [256]                              the nested state's map: code.to(device, copy=True), one per weight
//   offset    fp32 []                                 absmax.mean()
std::vector<Piece> quantized_4bit_pieces(uint64_t numel, bool double_quant);
uint64_t quantized_4bit_bytes(uint64_t numel, bool double_quant);

// Which tensors BitsAndBytesConfig(load_in_4bit=True) stores as Params4bit: the 2-D weight of every nn.Linear
// inside the decoder layers (transformers' bitsandbytes integration replaces nn.Linear modules and keeps the
// output layer, lm_head, in the model dtype; embeddings and norms are not Linear). Fused 3-D expert tensors are
// not nn.Linear either and stay unquantised.
bool quantized_4bit(const TensorInfo& t);

// bitsandbytes.optim AdamW8bit / PagedAdamW8bit (optim/optimizer.py Optimizer2State.init_state, 0.48.2), per
// parameter of `numel` elements:
//   numel < min_8bit_size (4096): state1, state2 fp32 [numel] (32-bit states)
//   else: state1, state2 uint8 [numel]; absmax1, absmax2 fp32 [ceil(numel / 256)] (block_wise, blocksize 256);
//         the signed and unsigned dynamic maps (fp32 [256] each) are shared by all parameters (name2qmap)
// Paged (get_state_buffer): state1/state2 of a parameter of at least 1e5 elements are CUDA managed memory
// (cudaMallocManaged via cget_managed_ptr), outside PyTorch's caching allocator; absmax stays a torch tensor.
inline constexpr uint64_t kMin8bitSize = 4096;
inline constexpr uint64_t kBlocksize8bitState = 256;
inline constexpr uint64_t kPagedMinNumel = 100000;
struct AdamState {
  std::vector<Piece> torch;    // tensors from PyTorch's allocator
  std::vector<Piece> managed;  // paged buffers: CUDA managed memory
};
AdamState adamw_8bit_state(uint64_t numel, bool paged);
// The optimizer's two shared quantisation maps (create_dynamic_map signed and unsigned, 256 fp32 each), made at the
// first 8-bit state.
inline constexpr uint64_t kQmapBytes = 256 * 4;

}  // namespace llmem::transformers::bnb
