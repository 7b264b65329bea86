// Developer tool: the tensors of a Hugging Face checkpoint as llmem derives them from a config.json (names, shapes
// and stored dtypes, quantised layouts included), one JSON object on stdout. bench/gpu/llamacpp/make_checkpoint.py
// writes a random-weight safetensors checkpoint from it, so llama.cpp's own converter can be run on architectures
// for which no GPU or transformers install is at hand.
//
//   hf_checkpoint_tensors CONFIG.json [key=value ...]     values are JSON (num_hidden_layers=2, rope_scaling=null)
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "llmem/arch.hpp"
#include "llmem/dtype.hpp"
#include "llmem/error.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/quantization.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CONFIG.json [key=value ...]\n", argv[0]);
    return 2;
  }
  try {
    std::ifstream in(argv[1]);
    if (!in) throw llmem::Error(llmem::ErrorKind::kNotFound, argv[1], "cannot open");
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json config = nlohmann::json::parse(ss.str());
    for (int i = 2; i < argc; ++i) {
      std::string kv = argv[i];
      const size_t eq = kv.find('=');
      if (eq == std::string::npos) throw llmem::Error(llmem::ErrorKind::kInvalidInput, kv, "not key=value");
      config[kv.substr(0, eq)] = nlohmann::json::parse(kv.substr(eq + 1));
    }
    const auto model = llmem::model_from_config(llmem::HfConfig::parse(config.dump(), argv[1]));
    std::vector<llmem::TensorInfo> tensors = model.tensors;
    if (model.quant) tensors = llmem::stored_tensors(model.tensors, *model.quant, model.facts.traits.conv1d_weights).tensors;
    nlohmann::json out;
    out["config"] = config;
    out["tensors"] = nlohmann::json::array();
    for (const auto& t : tensors)
      out["tensors"].push_back({{"name", t.name}, {"shape", t.shape}, {"dtype", llmem::dtype_name(t.dtype)}});
    out["tied"] = nlohmann::json::array();
    for (const auto& a : model.tied) out["tied"].push_back({{"alias", a.alias}, {"target", a.target}});
    std::cout << out.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[1], e.what());
    return 2;
  }
}
