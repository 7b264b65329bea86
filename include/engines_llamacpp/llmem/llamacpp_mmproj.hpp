// llama.cpp's multimodal projector (the mmproj GGUF, general.architecture "clip") as its converter writes it and as
// tools/mtmd/clip.cpp loads it at the pinned commit: the file tensor by tensor, the weights buffer, and the compute
// buffer of the warm-up graph (clip_model_loader::warmup -> reserve_compute_meta), replayed with the same graph
// allocator as the text graph (galloc.hpp). Projector types so far: gemma3 (SigLIP + average pool,
// tools/mtmd/models/siglip.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llmem/hf_config.hpp"
#include "llmem/llamacpp.hpp"

namespace llmem::llamacpp {

// The clip.vision.* hyper-parameters clip_model_loader::load_hparams reads.
struct ClipVision {
  std::string projector;        // clip.projector_type: "gemma3"
  uint64_t n_embd = 0, n_ff = 0, n_layer = 0, n_head = 0;
  uint64_t patch_size = 0, image_size = 0;
  uint64_t projection_dim = 0;  // the text model's n_embd
  uint64_t n_merge = 4;         // gemma3: the average pool's kernel (clip.vision.projector.scale_factor, default 4)
  // clip.cpp load_hparams: warmup_image_size = image_size, unless the projector sets a warm-up token count
  // (hparams.set_warmup_n_tokens(n): sqrt(n) * patch_size * n_merge; qwen2/2.5/3-vl 46*46 tokens)
  uint64_t warmup_tokens_per_side = 0;
  uint64_t warmup_image_size() const {
    return warmup_tokens_per_side ? warmup_tokens_per_side * patch_size * n_merge : image_size;
  }
};

struct MmprojFile {
  ClipVision hp;
  std::string outtype;               // the converter's --outtype: f32, f16, bf16, q8_0
  std::vector<GgufTensor> tensors;   // names, ggml types and shapes (ne order) as the converter writes them
  uint64_t tensor_data_bytes() const;  // each tensor padded to the file's 32-byte alignment
};

// convert_hf_to_gguf.py --mmproj --outtype OUTTYPE on a checkpoint with this config.json. Throws Error(kUnsupported)
// for a model whose projector is not modelled, Error(kUsage) for an outtype the converter does not take.
MmprojFile predict_mmproj(const HfConfig& config, const std::string& outtype);

// The weights buffer clip_model_loader::load_tensors allocates (ggml_backend_alloc_ctx_tensors_from_buft): every
// tensor at the buffer type's alloc size, padded to its alignment (CUDA 128 bytes, CPU 32).
uint64_t clip_weights_buffer_bytes(const MmprojFile& file, bool cpu);

// The compute buffer of the warm-up image (warmup_image_size square) with flash attention on or off; cpu: the CPU
// backend's graph (32-byte alignment) instead of the CUDA one.
uint64_t clip_compute_buffer_bytes(const ClipVision& hp, bool flash_attn, bool cpu);

// clip's flash attention under llama's --flash-attn auto (tools/mtmd/clip.cpp clip_model_loader::warmup): the
// warm-up graph is reserved with flash attention and keeps it unless the backend refuses its FLASH_ATTN_EXT node
// (mtmd.cpp mtmd_get_clip_flash_attn_type passes on and off through as they are). The CPU backend runs it; CUDA's
// ggml_cuda_get_best_fattn_kernel (fattn.cu) takes clip's F16 K/V for head sizes 40, 64, 72, 80, 96, 112, 128, 256.
bool clip_flash_attn_auto(const ClipVision& hp, bool cpu);

// With the projector on the GPU, the CPU backend's compute buffer of clip's scheduler: the image input (inp_raw,
// f32, warmup_image_size square x 3), which ggml_backend_sched puts on the last backend, the CPU, as every graph
// input (ggml-backend.cpp ggml_backend_sched_backend_id_from_cur), before copying it to the GPU.
uint64_t clip_host_input_bytes(const ClipVision& hp);

}  // namespace llmem::llamacpp
