// The table engine behind arch.hpp: rows of tensor templates expanded over named dimensions.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "llmem/arch.hpp"

namespace llmem::arch {

// Which decoder layers a {layers} row repeats over: all; those with a dense MLP or an MoE (Dims::moe_layer); those
// with self-attention or cross-attention alone (Dims::cross_layer, Mllama's text decoder).
enum class Layers { kAll, kDense, kMoe, kSelfAttn, kCrossAttn };

struct Row {
  const char* name;         // "model.layers.{layers}.mlp.experts.{experts}.up_proj.weight"
  TensorRole role;          // what the tensor is in the forward pass (engines read it, never the name)
  const char* shape;        // "moe_ffn, hidden" — comma-separated products/quotients of dims and integers
  const char* when = "";    // "" always; "flag" when set; "!flag" when not set
  Layers layers = Layers::kAll;
  const char* tied_to = ""; // if set and the "tied" flag is on, this row is an alias of that tensor
};

// Dimensions and flags a family reader derives from a config.
struct Dims {
  std::map<std::string, uint64_t> values;
  std::set<std::string> flags;
  std::vector<bool> moe_layer;  // per decoder layer: true when its MLP is a mixture of experts
  std::vector<bool> cross_layer;  // per decoder layer: true when it attends to the image alone (cross-attention)

  uint64_t& operator[](const std::string& k) { return values[k]; }
  void set(const std::string& flag, bool on) {
    if (on) flags.insert(flag);
    else flags.erase(flag);
  }
  bool on(const std::string& flag) const { return flags.count(flag) != 0; }
};

struct Family {
  const char* name;
  std::vector<std::string> model_types;
  std::vector<std::string> architectures;
  // The family's forward-pass mechanisms; its reader refines those that depend on the config (a model_type of
  // the family, a config switch) in ModelFacts::traits, which starts as a copy of these.
  ArchTraits traits;
  // Reads the config into dims and flags (and the normalised facts). Must set "layers" (decoder layer count).
  std::function<void(const HfConfig&, Dims&, ModelFacts&)> read;
  std::vector<Row> rows;
  // For the rare layout a table cannot say (per-expert sizes that differ by layer): appends rows' output directly.
  std::function<void(const HfConfig&, const Dims&, std::vector<TensorInfo>&)> extra = nullptr;
  // A vision-language model whose decoder is configured by a sub-object (Gemma3Config's "text_config"): the
  // forward-pass facts shared by all families (activation, dropouts, soft-caps, partial rotary) are read there when
  // the config has it (Qwen2.5-VL's 4.x files keep the decoder's fields at the top level).
  const char* text_config = nullptr;
};

const std::vector<Family>& families();

// Expands a family's rows over dims; returns unique tensors and tied aliases.
void expand(const Family& f, const Dims& dims, const HfConfig& cfg, DType dtype, ArchModel& out);

}  // namespace llmem::arch
