// Training steps as a transformers + PyTorch loop runs them: forward (what autograd keeps per layer), the loss
// (logits, their fp32 copy and cross_entropy's log-softmax: loss_utils.py ForCausalLMLoss), the backward (layer by
// layer, each parameter's .grad made as its op's backward runs), then the optimizer step (optimizer.cpp). Two
// steps, so that the optimizer's lazily created states exist during the second forward.
#include <set>

#include "bnb.hpp"
#include "engine.hpp"

namespace llmem::transformers {
namespace {

// Under autocast every linear casts its fp32 weight and bias to bf16; autocast caches the copies for the forward
// and the matmul keeps them for backward. One allocation per tensor (the allocator sees a 12.5 MiB q weight and a
// 50 MiB MLP weight, not one block per layer), in module order. Fused 3-D expert tensors are left out.
// `skip`: weights not cast (QLoRA: the 4-bit ones, dequantised instead)
void amp_weight_casts(Tracker& t, const ArchModel& m, uint64_t layer, bool alloc, bool (*skip)(const TensorInfo&) = nullptr) {
  for (const auto& tt : m.tensors) {
    if (tt.layer != static_cast<int64_t>(layer) || !is_linear_role(tt.role) || tt.shape.size() > 2 || (skip && skip(tt)))
      continue;
    const std::string n = concat("saved_activations/", layer, "/bf16/", tt.name);
    if (alloc) t.alloc(n, mul(tt.numel(), 2));
    else t.free(n);
  }
}

// QLoRA: bitsandbytes' MatMul4Bit (autograd/_functions.py, 0.48.2) dequantises each 4-bit weight to the dtype it
// was quantised from (the checkpoint's bf16) for F.linear, and again in the backward for the input's gradient:
// dequantize_4bit makes the fp32 absmax of the blocks (dequantize_blockwise of the 8-bit absmax, double
// quantisation only), then the weight; the absmax goes as the function returns, the weight after the matmul.
// One linear at a time, in module order.
void dequantized_weights(Tracker& t, const ArchModel& m, const Workload& w, uint64_t layer) {
  for (const auto& tt : m.tensors) {
    if (tt.layer != static_cast<int64_t>(layer) || !bnb::quantized_4bit(tt)) continue;
    const uint64_t blocks = (tt.numel() + bnb::kBlocksize4bit - 1) / bnb::kBlocksize4bit;
    if (w.bnb_double_quant) t.alloc("activations/dequant_absmax", mul(blocks, 4));
    t.alloc("activations/dequant_weight", mul(tt.numel(), 2));
    if (w.bnb_double_quant) t.free("activations/dequant_absmax");
    t.free("activations/dequant_weight");
  }
}

std::string hidden_name(uint64_t layer) { return concat("activations/hidden", layer); }
std::string ckpt_input(uint64_t layer) { return concat("saved_activations/", layer, "/ckpt_input"); }

class TrainingRun {
 public:
  TrainingRun(Tracker& t, const ArchModel& m, const Geometry& g, const Workload& w, ReplayCache* cache)
      : cache_(cache),
        t_(t),
        m_(m),
        g_(g),
        w_(w),
        // QLoRA: prepare_model_for_kbit_training casts every parameter that is not 4-bit to fp32, and the forward
        // runs the Trainer's bf16 autocast over them: the amp path, with 4-bit linears instead of fp32 ones
        qlora_(w.train == TrainMethod::kQLora),
        amp_(w.precision == TrainPrecision::kAmpBf16 || qlora_),
        c_{t, g, m.facts, w, amp_ ? 4u : 2u, mul(w.batch, w.prompt_tokens), amp_, w.train != TrainMethod::kFull},
        // a checkpointed bf16 layer's first forward is the inference op sequence (no_grad, no cache)
        nograd_{t, g, 2, w.batch, g.traits.materialises_scores || g.traits.default_attention == AttentionImpl::kEager,
                true, false, false},
        oplevel_(lora_oplevel(c_)) {
    nograd_.cublas_pending = false;  // the training forward took cuBLAS's workspace already
  }

  // CUDA managed memory of paged optimizer states (bitsandbytes PagedAdamW8bit): outside PyTorch's allocator
  uint64_t managed_bytes() const { return managed_bytes_; }

  void run() {
    load();
    for (uint64_t step = 1; step <= 2; ++step) {
      // gradient accumulation: micro-batches after the first find every .grad made; AccumulateGrad adds each
      // incoming gradient in place (torch/csrc/autograd/functions/accumulate_grad.h, grad mode off), so it is a
      // temporary (see grad()); the third and later micro-batches repeat the second's allocations, so two are
      // replayed
      for (uint64_t micro = 1; micro <= std::min<uint64_t>(w_.grad_accum, 2); ++micro) {
        accumulating_ = micro > 1;
        forward(step);
        loss(step);
        loss_backward(step);
        layers_backward(step);
        embedding_backward();
      }
      accumulating_ = false;
      t_.set_phase(concat("step ", step, " optimizer"));
      if (w_.hf_trainer) clip_grad_norm(c_, params_);
      managed_bytes_ += optimizer_step(c_, params_, step);
      zero_grad(c_, m_, params_);
    }
  }

 private:
  void load();
  void load_qlora();
  // autocast's bf16 copies of a layer's fp32 linear weights (amp); QLoRA's 4-bit linears are dequantised instead
  void weight_casts(uint64_t layer, bool alloc);
  void fp32_linear_casts(uint64_t layer, bool alloc);
  void forward(uint64_t step);
  void forward_layer(uint64_t layer);
  void moe_transients(uint64_t layer);
  void sink_attention_transients(uint64_t layer);
  void loss(uint64_t step);
  void loss_backward(uint64_t step);
  void layers_backward(uint64_t step);
  void layer_backward(uint64_t layer);
  void gated_mlp_backward(uint64_t layer);
  void embedding_backward();
  // AccumulateGrad: a parameter's .grad when its op's backward ran (last parameter first); `roles` empty: all the
  // layer's parameters not yet given one
  void grads_of(uint64_t layer, std::initializer_list<TensorRole> roles);
  // Frees a saved activation of `layer` before the layer's backward ends (its consumer's backward ran)
  void release_saved(uint64_t layer, const std::string& name);
  // A parameter's gradient reaching AccumulateGrad: its .grad, or while accumulating (a micro-batch after the
  // first) a temporary added in place into the .grad that exists
  void grad(const std::string& name, uint64_t bytes);

  ReplayCache* cache_;
  Tracker& t_;
  const ArchModel& m_;
  const Geometry& g_;
  const Workload& w_;
  bool qlora_;
  bool amp_;
  TrainCtx c_;
  Ctx nograd_;
  bool oplevel_;
  std::vector<Param> params_;
  std::vector<SavedSet> saved_;      // per layer: what autograd keeps for its backward
  std::set<std::string> have_grad_;  // parameters of the current layer whose .grad exists
  bool workspace_fwd_ = false, workspace_bwd_ = false;
  bool accumulating_ = false;
  uint64_t managed_bytes_ = 0;
};

void TrainingRun::weight_casts(uint64_t layer, bool alloc) {
  if (!amp_) return;
  if (!qlora_) amp_weight_casts(t_, m_, layer, alloc);
  else if (alloc) dequantized_weights(t_, m_, w_, layer);
}

// QLoRA: the linear-role weights bitsandbytes leaves in fp32 (MoE experts, routers: bnb::quantized_4bit) are cast to
// bf16 by autocast for each matmul. Frozen, they are not in autocast's cache: transient in the checkpointed no_grad
// forward, and kept by F.linear for the input's gradient from the layer's recomputed forward to its backward.
void TrainingRun::fp32_linear_casts(uint64_t layer, bool alloc) {
  amp_weight_casts(t_, m_, layer, alloc, &bnb::quantized_4bit);
}

void TrainingRun::grad(const std::string& name, uint64_t bytes) {
  if (!accumulating_) {
    t_.alloc(name, bytes);
    return;
  }
  const std::string incoming = "gradients/incoming/" + name.substr(name.find('/') + 1);
  t_.alloc(incoming, bytes);
  t_.free(incoming);
}

// Weights (and the tied head's transient copy when built from a config: transformers creates lm_head, then ties),
// then the trainable parameters; LoRA adapters are allocated beside the frozen weights.
void TrainingRun::load() {
  t_.set_phase("loading weights");
  if (qlora_) return load_qlora();
  load_weights(t_, m_, amp_ ? DType::F32 : DType::BF16, nullptr,
               {.from_pretrained = !w_.from_config && w_.gpus <= 1, .experts_stacked = w_.experts_stacked_at_load}, cache_);
  if (!m_.tied.empty() && w_.from_config) {
    t_.alloc("weights/untied_head", mul(g_.vocab, g_.hidden, c_.p));
    t_.free("weights/untied_head");
  }
  params_ = trainable_params(c_, m_);
  if (!c_.lora) return;
  c_.adapted_roles = adapted_roles(params_);
  for (const auto& prm : params_) t_.alloc("lora/" + prm.name, prm.bytes);
}

// from_pretrained(quantization_config=BitsAndBytesConfig(load_in_4bit=True)): each Linear weight of the decoder
// layers arrives in bf16 and Params4bit._quantize turns it into its 4-bit pieces (bnb.hpp), the bf16 copy going
// once they exist; the other parameters load in bf16. peft's prepare_model_for_kbit_training (utils/other.py, peft
// 0.20.0 and its main of 2026-08-21) then casts every bf16/fp16 parameter that is not a Params4bit to fp32 (param.data =
// param.data.to(torch.float32): the fp32 copy is made before the bf16 one goes), in model.parameters() order.
// Then get_peft_model adds the fp32 adapters.
void TrainingRun::load_qlora() {
  for (const auto& tt : m_.tensors) {
    const std::string n = "weights/" + tt.name;
    if (!bnb::quantized_4bit(tt)) {
      t_.alloc(n, mul(tt.numel(), 2));
      continue;
    }
    t_.alloc(n + ".bf16", mul(tt.numel(), 2));
    for (const auto& piece : bnb::quantized_4bit_pieces(tt.numel(), w_.bnb_double_quant))
      t_.alloc(n + "." + piece.what, piece.bytes);
    t_.free(n + ".bf16");
  }
  t_.set_phase("prepare_model_for_kbit_training");
  for (const auto& tt : m_.tensors) {
    if (bnb::quantized_4bit(tt)) continue;
    const std::string n = "weights/" + tt.name;
    t_.alloc(n + ".fp32", mul(tt.numel(), 4));
    t_.free(n);
  }
  params_ = trainable_params(c_, m_);
  c_.adapted_roles = adapted_roles(params_);
  for (const auto& prm : params_) t_.alloc("lora/" + prm.name, prm.bytes);
}

void TrainingRun::forward(uint64_t step) {
  const uint64_t T = c_.T, H = g_.hidden;
  t_.set_phase(concat("step ", step, " forward"));
  t_.alloc("inputs/ids", mul(T, 8));
  t_.alloc("inputs/labels", mul(T, 8));
  if (c_.f.embd_dropout) t_.alloc("saved_activations/embd_dropout", mul(T, H));
  if (oplevel_) t_.alloc("activations/embed", mul(T, H, 2));  // inputs_embeds, alive until the model returns
  // a sliding-window mask (see sdpa_mask_needed): one boolean [B, 1, S, S], kept by every layer's SDPA
  if (sdpa_mask_needed(g_, 0, w_.prompt_tokens))
    t_.alloc("activations/sdpa_mask", mul(w_.batch, w_.prompt_tokens, w_.prompt_tokens));
  if (!workspace_fwd_) {
    // cuBLAS's workspace at the first matmul: the rotary tables', else layer 0's first projection
    t_.alloc("workspace/cublas_fwd", kCublasWorkspaceBytes);
    workspace_fwd_ = true;
  }
  saved_.assign(g_.layers, {});
  for (uint64_t layer = 0; layer < g_.layers; ++layer) {
    t_.set_phase(concat("step ", step, " forward, layer ", layer));
    forward_layer(layer);
  }
}

void TrainingRun::forward_layer(uint64_t layer) {
  const uint64_t T = c_.T, H = g_.hidden;
  if (oplevel_) {
    saved_[layer] = lora_layer_forward(c_, layer, !w_.grad_ckpt, hidden_name(layer));
    // the model's loop variable drops the previous hidden state when the layer returns, unless checkpointing
    // keeps it as the layer's saved input (the embedding output stays either way: inputs_embeds)
    if (!w_.grad_ckpt && layer > 0) t_.free(hidden_name(layer - 1));
    return;
  }
  if (!qlora_) weight_casts(layer, true);
  saved_[layer] = saved_for_layer(c_, layer);
  if (w_.grad_ckpt && !amp_) {
    // checkpointed: the layer runs under no_grad, op by op as in inference without a cache; its input is kept by
    // the checkpoint, and its output is the next layer's kept input
    if (layer == 0) t_.alloc(ckpt_input(0), mul(T, H, 2));
    decoder_layer(nograd_, layer, w_.prompt_tokens, w_.prompt_tokens,
                  layer + 1 < g_.layers ? ckpt_input(layer + 1) : std::string("activations/last_hidden"), [] {});
  } else if (w_.grad_ckpt) {
    // checkpointed: the layer's input is kept; the inside runs and is dropped
    t_.alloc(ckpt_input(layer), mul(T, H, amp_ ? 4 : 2));
    for (const auto& [n, b] : saved_[layer]) t_.alloc(concat("activations/", layer, "/", n), b);
    if (qlora_) weight_casts(layer, true);
    for (const auto& [n, b] : saved_[layer]) t_.free(concat("activations/", layer, "/", n));
  } else {
    // gpt-oss's softmax output is made inside its attention's transients (sink_attention_transients)
    const bool sinks = g_.traits.default_attention == AttentionImpl::kEager && g_.traits.attention_sinks;
    for (const auto& [n, b] : saved_[layer])
      if (!sinks || n != "probs") t_.alloc(concat("saved_activations/", layer, "/", n), b);
    if (qlora_) weight_casts(layer, true);
    if (sinks) sink_attention_transients(layer);
    if (g_.is_moe(layer) && c_.lora) moe_transients(layer);
  }
}

// gpt-oss's eager attention under autograd, as its allocator traces show it per layer: q kᵀ, its scaled copy (the
// first dropped), the masked scores (the scaled dropped), the sink column concatenated, the row max subtracted (the
// concatenation dropped), the softmax's output (kept for backward: saved_activations.cpp); the masked scores and
// the subtraction go once the softmax has run.
void TrainingRun::sink_attention_transients(uint64_t layer) {
  const uint64_t B = w_.batch, S = w_.prompt_tokens, H = g_.heads;
  const uint64_t scores = mul(mul(B, H, S), S, 2), with_sink = mul(mul(B, H, S), S + 1, 2);
  auto name = [&](const char* n) { return concat("activations/", layer, "/attn_", n); };
  t_.alloc(name("qk"), scores);
  t_.alloc(name("scaled"), scores);
  t_.free(name("qk"));
  t_.alloc(name("masked"), scores);
  t_.free(name("scaled"));
  t_.alloc(name("cat"), with_sink);
  t_.alloc(name("shifted"), with_sink);
  t_.free(name("cat"));
  uint64_t probs = with_sink;  // the softmax's output, kept for backward (saved_activations.cpp)
  for (const auto& [n, b] : saved_[layer])
    if (n == "probs") probs = b;
  t_.alloc(concat("saved_activations/", layer, "/probs"), probs);
  t_.free(name("masked"));
  t_.free(name("shifted"));
}

// What a sparse MoE block makes under autograd beyond what it keeps (saved_activations.cpp), in the order
// grouped_mm_experts_forward makes and drops it (allocator trace of Qwen3-30B-A3B LoRA, bench/data/traces): the
// gathered rows (until the function returns), each grouped_mm's output (dropped for its copy), the product
// of act(gate) and up (a frozen expert's grouped_mm keeps nothing of its input), the weighted rows and their
// unsorted copy. They leave the segments the later layers' and the backward's blocks land in.
void TrainingRun::moe_transients(uint64_t layer) {
  const uint64_t T = c_.T, k = std::max<uint64_t>(1, g_.top_k), S = mul(T, k), H = g_.hidden, I = g_.moe_ffn;
  const uint64_t ws = g_.weighted_experts_bytes(2);
  auto name = [&](const char* n) { return concat("activations/", layer, "/moe_", n); };
  t_.alloc(name("rows"), mul(S, H, 2));
  if (g_.experts_bias) {  // the biases gathered per row, locals to the end
    t_.alloc(name("gate_up_bias"), mul(S, 2 * I, 2));
    t_.alloc(name("down_bias"), mul(S, H, 2));
  }
  t_.alloc(name("gate_up_mm"), mul(S, 2 * I, 2));
  t_.free(name("gate_up_mm"));
  t_.alloc(name("prod"), mul(S, I, 2));
  t_.alloc(name("down_mm"), mul(S, H, 2));
  t_.free(name("prod"));
  t_.free(name("down_mm"));
  t_.alloc(name("down_w"), mul(S, H, ws));
  t_.alloc(name("down_unsorted"), mul(S, H, ws));
  t_.free(name("down_w"));
  t_.free(name("rows"));
  t_.free(name("down_unsorted"));
  if (g_.experts_bias) {
    t_.free(name("gate_up_bias"));
    t_.free(name("down_bias"));
  }
}

// Final norm, LM head, loss: logits in bf16, their fp32 copy, cross_entropy's log-softmax (kept).
void TrainingRun::loss(uint64_t step) {
  const uint64_t T = c_.T, V = g_.vocab, H = g_.hidden;
  t_.set_phase(concat("step ", step, " loss"));
  if (oplevel_) {
    // the final RMSNorm keeps its fp32 input (frozen weight: not the cast); the last hidden state and
    // inputs_embeds go when the base model returns (inputs_embeds stays as layer 0's checkpointed input)
    frozen_rms_norm(t_, g_.traits.norm, mul(T, H), "saved_activations/final_f32", true, "activations/final",
                    "activations/final_out");
    t_.free(hidden_name(g_.layers - 1));
    if (!w_.grad_ckpt) t_.free("activations/embed");
  } else {
    t_.alloc("saved_activations/final_norm", mul(T, H, amp_ ? 8 : 6));
    if (w_.grad_ckpt && !amp_) {
      // the base model returns: the last block's outputs (block_returns_attn_weights) and the last hidden state go
      if (keeps_attn_weights(nograd_) && g_.traits.block_returns_attn_weights)
        free_attn_weights(nograd_, g_.layers - 1);
      t_.free("activations/last_hidden");
    }
  }
  if (amp_) t_.alloc("saved_activations/lm_head_bf16_weight", mul(V, H, 2));
  t_.alloc("logits/logits", mul(T, V, 2));
  const bool softcap = g_.traits.final_logit_softcap;
  if (softcap) {
    // Gemma2ForCausalLM.forward: logits / cap, tanh (keeps its output), * cap; each a new tensor, the previous
    // one dropped as the name is rebound
    t_.alloc("logits/softcap_div", mul(T, V, 2));
    t_.free("logits/logits");
    t_.alloc("saved_activations/softcap_tanh", mul(T, V, 2));
    t_.free("logits/softcap_div");
    t_.alloc("logits/softcapped", mul(T, V, 2));
  }
  t_.alloc("logits/logits_f32", mul(T, V, 4));
  t_.alloc("loss/log_softmax", mul(T, V, 4));
  t_.free("logits/logits_f32");
  if (oplevel_) t_.free("activations/final_out");  // the frozen head keeps no input
  // transformers.Trainer: accelerate's convert_outputs_to_fp32 (accelerate/utils/operations.py, wrapped around the
  // forward by Accelerator.prepare_model under mixed precision) returns the logits as a new fp32 tensor; the
  // Trainer's compute_loss keeps only the loss, so the copy goes before the backward
  if (w_.hf_trainer) t_.alloc("logits/trainer_fp32", mul(T, V, 4));
  t_.free(softcap ? "logits/softcapped" : "logits/logits");
  if (w_.hf_trainer) t_.free("logits/trainer_fp32");
  // leaving autocast clears its cast cache: with checkpointing, the no_grad forward's bf16 weight copies were
  // cached (the cache holds leaf tensors that require grad, whatever the grad mode) and nothing else keeps them,
  // so all of them go only now (allocator trace, TinyLlama amp b4 x 2048 with checkpointing: every layer's
  // copies alive at the loss)
  if (amp_ && w_.grad_ckpt)
    for (uint64_t layer = 0; layer < g_.layers; ++layer) weight_casts(layer, false);
}

// cross_entropy's backward, the soft-cap's, then the LM head's: the gradient reaching the last layer.
void TrainingRun::loss_backward(uint64_t step) {
  const uint64_t T = c_.T, V = g_.vocab, H = g_.hidden;
  t_.set_phase(concat("step ", step, " backward"));
  t_.alloc("loss/grad_log_softmax", mul(T, V, 4));
  t_.alloc("loss/grad_logits_f32", mul(T, V, 4));
  t_.free("loss/grad_log_softmax");
  t_.free("loss/log_softmax");
  t_.alloc("loss/grad_logits", mul(T, V, 2));
  t_.free("loss/grad_logits_f32");
  if (g_.traits.final_logit_softcap) {
    // the backward of * cap, tanh and / cap: one new gradient each
    t_.alloc("loss/grad_softcap_mul", mul(T, V, 2));
    t_.free("loss/grad_logits");
    t_.alloc("loss/grad_tanh", mul(T, V, 2));
    t_.free("loss/grad_softcap_mul");
    t_.free("saved_activations/softcap_tanh");
    t_.alloc("loss/grad_logits", mul(T, V, 2));
    t_.free("loss/grad_tanh");
  }
  if (!workspace_bwd_) {
    // the autograd thread's own cuBLAS handle takes its workspace at its first matmul: the LM head's
    t_.alloc("workspace/cublas_bwd", kCublasWorkspaceBytes);
    workspace_bwd_ = true;
  }
  if (!c_.lora && m_.tied.empty()) grad("gradients/lm_head", mul(V, H, c_.p));
  if (!c_.lora && !m_.tied.empty()) grad("gradients/embedding", mul(V, H, c_.p));
  t_.alloc("activations/grad_hidden", mul(T, H, amp_ ? 4 : 2));
  t_.free("loss/grad_logits");
  if (amp_) t_.free("saved_activations/lm_head_bf16_weight");
  t_.free(oplevel_ ? "saved_activations/final_f32" : "saved_activations/final_norm");
}

void TrainingRun::grads_of(uint64_t layer, std::initializer_list<TensorRole> roles) {
  for (auto it = params_.rbegin(); it != params_.rend(); ++it) {
    if (it->layer != static_cast<int64_t>(layer)) continue;
    if (roles.size() && std::find(roles.begin(), roles.end(), it->role) == roles.end()) continue;
    if (have_grad_.insert(it->name).second) grad("gradients/" + it->name, it->bytes);
  }
}

void TrainingRun::release_saved(uint64_t layer, const std::string& name) {
  auto& set = saved_[layer];
  const auto it = std::find_if(set.begin(), set.end(), [&](const auto& s) { return s.first == name; });
  if (it == set.end())
    throw Error(ErrorKind::kRuntime, "", fmt::format("internal error: layer {} saved no {} for backward", layer, name));
  t_.free(concat("saved_activations/", layer, "/", name));
  set.erase(it);
}

// down_proj(act(gate) * up) backward, op by op (bf16 gradients): the product's gradient, then up's and act's, each
// input freed once its consumers' backward ran; then silu's backward and the two projections' input gradients,
// summed. A fused gate_up projection (Phi-3) has its gradient made where the up projection's would be.
void TrainingRun::gated_mlp_backward(uint64_t i) {
  auto A = [&](const char* n, uint64_t b) { t_.alloc(L(i, n), b); };
  auto F = [&](const char* n) { t_.free(L(i, n)); };
  const uint64_t is2 = mul(c_.T, g_.ffn, 2), hs2 = mul(c_.T, g_.hidden, 2);
  A("g_prod", is2);
  grads_of(i, {TensorRole::kMlpDown});
  A("g_up", is2);
  A("g_act", is2);
  F("g_prod");
  if (!c_.lora) release_saved(i, "mlp_prod");  // down_proj's input: kept only when its weight trains
  release_saved(i, "mlp_up");
  A("g_x_up", hs2);
  grads_of(i, {TensorRole::kMlpUp, TensorRole::kMlpGateUp});
  F("g_up");
  A("g_gate", is2);
  F("g_act");
  release_saved(i, "mlp_act");
  release_saved(i, "mlp_gate");
  A("g_x_gate", hs2);
  grads_of(i, {TensorRole::kMlpGate});
  F("g_gate");
  A("g_x_mlp", hs2);
  F("g_x_up");
  F("g_x_gate");
  F("g_x_mlp");
}

void TrainingRun::layer_backward(uint64_t i) {
  if (w_.grad_ckpt && oplevel_) {
    // checkpoint's backward reruns the layer from its saved input with autograd on
    saved_[i] = lora_layer_forward(c_, i, true, "activations/recomputed");
  } else if (w_.grad_ckpt) {
    if (!qlora_) weight_casts(i, true);
    for (const auto& [n, b] : saved_[i]) t_.alloc(concat("saved_activations/", i, "/", n), b);
    if (qlora_) weight_casts(i, true);  // the recomputed forward's dequantised weights
  }
  if (qlora_) fp32_linear_casts(i, true);
  if (qlora_) weight_casts(i, true);  // MatMul4Bit.backward dequantises each weight again for grad_A
  have_grad_.clear();
  const bool op_by_op_mlp = g_.gated && g_.experts == 0;
  if (op_by_op_mlp) gated_mlp_backward(i);
  else t_.alloc(L(i, "grad_mlp"), mul(c_.T, g_.ffn, 2 * 2));  // gradients of the MLP's intermediates, while consumed
  // AccumulateGrad creates each .grad as its layer's backward reaches it (last parameter first)
  grads_of(i, {});
  if (!op_by_op_mlp) t_.free(L(i, "grad_mlp"));
  for (const auto& [n, b] : saved_[i]) t_.free(concat("saved_activations/", i, "/", n));
  saved_[i].clear();
  if (!qlora_) weight_casts(i, false);
  if (qlora_) fp32_linear_casts(i, false);
  if (w_.grad_ckpt && !oplevel_) t_.free(ckpt_input(i));
  if (oplevel_ && w_.grad_ckpt) {
    t_.free("activations/recomputed");
    t_.free(i > 0 ? hidden_name(i - 1) : std::string("activations/embed"));
  }
}

void TrainingRun::layers_backward(uint64_t step) {
  for (uint64_t i = g_.layers; i-- > 0;) {
    t_.set_phase(concat("step ", step, " backward, layer ", i));
    layer_backward(i);
  }
}

// Below the layers: the embedding's dense gradient (accumulated into the tied head's gradient when tied) and the
// other parameters outside the layers (final norm, position embeddings); the step's inputs go.
void TrainingRun::embedding_backward() {
  const uint64_t V = g_.vocab, H = g_.hidden;
  if (c_.f.embd_dropout) t_.free("saved_activations/embd_dropout");
  if (!c_.lora && accumulating_) {
    grad("gradients/embedding_new", mul(V, H, c_.p));
    for (const auto& prm : params_)
      if (prm.layer < 0 && !is_head_or_embedding(prm)) grad("gradients/" + prm.name, prm.bytes);
  } else if (!c_.lora) {
    t_.alloc("gradients/embedding_new", mul(V, H, c_.p));
    if (!m_.tied.empty()) {
      t_.alloc("gradients/embedding_sum", mul(V, H, c_.p));
      t_.free("gradients/embedding_new");
      t_.free("gradients/embedding");
    }
    for (const auto& prm : params_)
      if (prm.layer < 0 && !is_head_or_embedding(prm)) t_.alloc("gradients/" + prm.name, prm.bytes);
  }
  t_.free("activations/grad_hidden");
  if (sdpa_mask_needed(g_, 0, w_.prompt_tokens)) t_.free("activations/sdpa_mask");
  t_.free("inputs/ids");
  t_.free("inputs/labels");
}

}  // namespace

uint64_t run_training(Tracker& t, const ArchModel& m, const Geometry& g, const Workload& w, ReplayCache* cache) {
  TrainingRun run(t, m, g, w, cache);
  run.run();
  return run.managed_bytes();
}

}  // namespace llmem::transformers
