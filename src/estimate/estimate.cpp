// The estimate seam: the registry, reading a source once, and one estimate from a request (estimate.hpp).
#include "llmem/estimate.hpp"

#include "adapters.hpp"
#include "llmem/error.hpp"
#include "llmem/hf_config.hpp"

namespace llmem {

const std::vector<const Engine*>& engines() {
  static const std::vector<const Engine*> all = {&adapters::transformers_engine(), &adapters::llamacpp_engine(),
                                                 &adapters::vllm_engine()};
  return all;
}

const Engine& find_engine(const std::string& name) {
  std::string known;
  for (size_t i = 0; i < engines().size(); ++i) {
    const Engine& e = *engines()[i];
    if (e.name() == name) return e;
    for (const auto& alias : e.aliases())
      if (alias == name) return e;
    known += (i == 0 ? "" : i + 1 == engines().size() ? " or " : ", ") + e.name();
  }
  throw usage_error("engine", "unknown {field} '" + name + "' (" + known + ")");
}

SourceFacts read_source_facts(ModelSource source) {
  SourceFacts facts;
  if (source.gguf && !source.config) {
    facts.source = std::move(source);
    return facts;
  }
  ParamsReport counted = count_params(std::move(source));
  if (counted.model) facts.arch = std::make_shared<const ArchModel>(std::move(*counted.model));
  facts.params = counted.primary();
  facts.source = std::move(counted.source);
  return facts;
}

EstimateResult estimate(const EstimateRequest& request) {
  if (!request.source_facts && request.source.empty()) throw usage_error("source", "an estimate needs a {field}");
  const Engine& engine = find_engine(request.engine);
  const GpuProfile gpu = request.gpu_profile ? *request.gpu_profile : resolve_gpu(request.gpu);
  EstimateResult out;
  out.engine = engine.name();
  // the request is checked before any file is read
  out.workload = engine.resolve(request.workload);
  std::shared_ptr<const SourceFacts> facts = request.source_facts;
  if (!facts) {
    ModelSource src = open_source(request.source, request.source_options);
    if (request.source_opened) request.source_opened(src);
    facts = std::make_shared<const SourceFacts>(read_source_facts(std::move(src)));
  }
  const std::unique_ptr<EngineModel> model = engine.prepare(*facts, out.workload);
  out.estimate = engine.estimate(*model, out.workload, gpu);
  if (request.list_tensors) out.estimate.weight_tensors = engine.weight_tensors(*model);
  out.source = facts->source;
  return out;
}

}  // namespace llmem
