// Parameter counts and a torchinfo-like module breakdown, from whatever a source yields.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "llmem/arch.hpp"
#include "llmem/source.hpp"

namespace llmem {

struct DTypeTotal {
  DType dtype;
  uint64_t params = 0;
  uint64_t bytes = 0;
};

// One count: from the config (the architecture's tensor list) or from weight headers.
struct ParamCount {
  std::string basis;                 // "config", "safetensors" or "gguf"
  uint64_t total_params = 0;         // unique parameters: what sum(p.numel() for p in model.parameters()) gives
  uint64_t tied_params = 0;          // parameters of tied aliases (counted once in total_params)
  std::vector<TiedAlias> tied;
  std::vector<DTypeTotal> dtypes;    // by dtype, largest first
  uint64_t total_bytes = 0;          // bytes of parameter data in those dtypes
  std::vector<TensorInfo> tensors;
  // The checkpoint's tensors as stored (quantised weights, their scales and zero points included): from a weight
  // header its own bytes; from a quantised config the tensors quantization.cpp derives; else the parameters.
  uint64_t stored_bytes = 0;
  std::vector<DTypeTotal> stored_dtypes;  // by stored dtype, largest first (params = elements)
  bool stored_exact = true;               // false where a stored size depends on the data
  std::string quant_method;               // quantization_config's quant_method, "" when none
  std::vector<std::string> stored_notes;
  uint64_t params_with_tied() const { return total_params + tied_params; }
};

// `details`: the params report's own parts, a copy of the model's tensor list (ParamCount::tensors, which the module
// breakdown reads) and the checkpoint as stored (stored_*: a quantised MoE's is tens of thousands of tensors to
// derive). Without them (estimates, which read the model itself) those fields stay empty; a scheme that cannot store
// the model's shapes throws all the same.
ParamCount count_from_model(const ArchModel& model, bool details = true);
ParamCount count_from_tensors(std::string basis, const std::vector<TensorInfo>& tensors);

// A module of the breakdown. Per-layer repeats are collapsed: "layers 0-31 (x32)" stands for 32 identical
// subtrees, with params/bytes the sum over all of them.
struct ModuleNode {
  std::string label;   // "embed_tokens", "layers 0-31 (×32)"
  std::string path;    // "model.embed_tokens", "model.layers.0-31"
  uint64_t params = 0;
  uint64_t bytes = 0;
  uint64_t repeat = 1;
  std::vector<ModuleNode> children;
};

// The whole tree (root label ""), children in first-appearance order.
ModuleNode module_tree(const std::vector<TensorInfo>& tensors);

// Config vs weights: what the architecture explains and what it does not.
struct WeightsComparison {
  bool same_count = false;
  std::vector<std::string> unexplained;     // tensors in the weights the architecture does not have (collapsed)
  std::vector<std::string> missing;         // tensors of the architecture absent from the weights (collapsed)
  std::vector<std::string> shape_mismatch;  // "name: config [a, b] vs weights [c, d]"
  uint64_t unexplained_params = 0;
  uint64_t missing_params = 0;
  // A quantised config's derived stored list against the header (the header is the truth): tensors missing from
  // either side, and dtype or shape differences. Empty when they agree or the config is not quantised.
  bool stored_checked = false;
  std::vector<std::string> stored_mismatch;
};
// The derived stored list against a header's tensors; one line per difference (names collapsed).
std::vector<std::string> compare_stored(const std::vector<TensorInfo>& derived, const std::vector<TensorInfo>& header);
WeightsComparison compare_with_weights(const ArchModel& model, const std::vector<TensorInfo>& weights);

// Collapses names that differ only in numeric components: "model.layers.{0-60}.mlp.experts.{0-255}.up_proj.weight".
std::vector<std::string> collapse_names(const std::vector<std::string>& names, size_t max_lines = 12);

struct ParamsReport {
  ModelSource source;
  std::optional<ArchModel> model;         // when a config was found and its architecture is known
  std::optional<ParamCount> from_config;
  std::optional<ParamCount> from_weights;
  std::optional<WeightsComparison> comparison;
  std::optional<std::string> config_error;  // a config whose architecture llmem does not know (weights still counted)
  const ParamCount& primary() const { return from_config ? *from_config : *from_weights; }
};

// Opens the source and counts. The config's count is primary (it is PyTorch's count); weights are counted too
// when present. Throws when neither can be counted.
ParamsReport count_params(const std::string& spec, const SourceOptions& options = {});
// `details`: as count_from_model's, for the config's count.
ParamsReport count_params(ModelSource source, bool details = true);

}  // namespace llmem
