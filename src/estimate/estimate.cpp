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
  // the config's count without the params report's details (its tensor list, the checkpoint as stored): estimates
  // read the model's own tensors, and derive the stored ones where they need them
  ParamsReport counted = count_params(std::move(source), false);
  if (counted.model) facts.arch = std::make_shared<const ArchModel>(std::move(*counted.model));
  // moved, not copied: a config's count holds every parameter tensor (tens of thousands for an MoE)
  facts.params = counted.from_config ? std::move(*counted.from_config) : std::move(*counted.from_weights);
  facts.source = std::move(counted.source);
  return facts;
}

const Engine& default_engine(const SourceFacts& facts) {
  return find_engine(facts.source.gguf && !facts.source.config ? "llamacpp" : "transformers");
}

std::string default_engine_reason(const SourceFacts& facts) {
  if (facts.source.gguf && !facts.source.config) return "a GGUF SOURCE runs under " + default_engine(facts).name() + " unless {field:engine} says otherwise";
  return "";
}

namespace {

std::string joined(const std::vector<std::string>& words, const std::string& last_sep) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) out += (i == 0 ? "" : i + 1 == words.size() ? last_sep : ", ") + words[i];
  return out;
}

std::vector<std::string> alternatives(const std::string& entry) {
  std::vector<std::string> out(1);
  for (char c : entry) {
    if (c == '|') out.emplace_back();
    else out.back() += c;
  }
  return out;
}

// Whether `engine` reads any of `fields` for `spec`, or (any_mode) for the spec in any mode.
bool reads_any(const Engine& engine, const WorkloadSpec& spec, const std::vector<std::string>& fields, bool any_mode) {
  for (const auto& field : fields) {
    if (engine.reads(field, spec)) return true;
    for (const char* train : {"", "full", "lora", "qlora"}) {
      if (!any_mode) break;
      WorkloadSpec other = spec;
      other.train = train;
      if (engine.reads(field, other)) return true;
    }
  }
  return false;
}

// Where the first of `fields` applies (one flag may set several fields: each engine reads its own), for the
// message of a flag the engine does not read: under this engine in another mode, or under other engines.
std::string where_it_applies(const Engine& engine, const WorkloadSpec& spec, const std::vector<std::string>& fields,
                             const std::string& why_engine) {
  // QLoRA is transformers + bitsandbytes + peft: no other engine trains
  if (fields.front() == "train" && spec.train == "qlora")
    return "{field} qlora (a bitsandbytes 4-bit base with LoRA adapters) is modelled for {field:engine} transformers only, not " +
           engine.name() + (why_engine.empty() ? "" : " (" + why_engine + ")") +
           "; possible here: inference, or --engine transformers --train qlora";
  // a 4-bit base is frozen (Params4bit has no gradient): only adapters train on it
  if ((fields.front() == "bnb_4bit_quant_type" || fields.front() == "bnb_double_quant") && spec.train == "full")
    return "{field}: a bitsandbytes 4-bit base cannot be fully fine-tuned (its Params4bit weights take no gradient); "
           "possible: {field:train} qlora (LoRA on the 4-bit base), or {field:train} full without a 4-bit base";
  std::vector<std::string> methods;
  bool inference = false;
  for (const char* train : {"", "full", "lora", "qlora"}) {
    WorkloadSpec other = spec;
    other.train = train;
    if (!reads_any(engine, other, fields, false)) continue;
    if (*train) methods.emplace_back(train);
    else inference = true;
  }
  if (inference) return "{field} applies to inference, not {field:train} " + spec.train;
  if (!methods.empty()) {
    std::vector<std::string> each;
    for (const auto& m : methods) each.push_back("{field:train} " + m);
    return "{field} applies to " + joined(each, " or ") + (spec.train.empty() ? "" : ", not " + spec.train);
  }
  std::vector<std::string> others;
  for (const Engine* e : engines())
    if (e != &engine && reads_any(*e, spec, fields, true)) others.push_back(e->name());
  if (others.empty()) return "{field} applies to no engine";  // a field no engine reads: a face's own mistake
  std::vector<std::string> each;
  for (const auto& name : others) each.push_back("{field:engine} " + name);
  return "{field} applies to " + joined(each, " or ") + ", not " + engine.name() + (why_engine.empty() ? "" : " (" + why_engine + ")");
}

}  // namespace

void check_fields_apply(const Engine& engine, const WorkloadSpec& spec, const std::vector<std::string>& set_fields, bool any_mode,
                        const std::string& why_engine) {
  for (const auto& entry : set_fields) {
    const std::vector<std::string> fields = alternatives(entry);
    if (!reads_any(engine, spec, fields, any_mode)) throw usage_error(fields.front(), where_it_applies(engine, spec, fields, why_engine));
  }
}

EstimateResult estimate(const EstimateRequest& request) {
  if (!request.source_facts && request.source.empty()) throw usage_error("source", "an estimate needs a {field}");
  EstimateResult out;
  const GpuProfile gpu = request.gpu_profile ? *request.gpu_profile : resolve_gpu(request.gpu, &out.warnings);
  // the request is checked before any file is read, where it names its engine; otherwise the source chooses
  const Engine* engine = request.engine.empty() ? nullptr : &find_engine(request.engine);
  if (engine) {
    check_fields_apply(*engine, request.workload, request.set_fields);
    out.workload = engine->resolve(request.workload);
  }
  std::shared_ptr<const SourceFacts> facts = request.source_facts;
  if (!facts) {
    ModelSource src = open_source(request.source, request.source_options);
    if (request.source_opened) request.source_opened(src);
    facts = std::make_shared<const SourceFacts>(read_source_facts(std::move(src)));
  }
  if (!engine) {
    engine = &default_engine(*facts);
    check_fields_apply(*engine, request.workload, request.set_fields, false, default_engine_reason(*facts));
    out.workload = engine->resolve(request.workload);
  }
  out.engine = engine->name();
  const std::unique_ptr<EngineModel> model = engine->prepare(*facts, out.workload);
  out.estimate = engine->estimate(*model, out.workload, gpu);
  if (request.list_tensors) out.estimate.weight_tensors = engine->weight_tensors(*model);
  out.source = facts->source;
  return out;
}

}  // namespace llmem
