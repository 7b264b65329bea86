// The vLLM engine behind the seam: resolves a request's vLLM fields (vLLM's flag names and defaults), reads what
// the config says beyond the architecture (quantisation, rope scaling, MLA latent), and says what `fit` searches:
// the largest --max-model-len that starts (vLLM "fits" a GPU when it starts on it), with, when a concurrency is
// asked, the smallest --gpu-memory-utilization and the --kv-cache-memory that hold it.
#include <algorithm>
#include <memory>
#include <set>

#include <fmt/format.h>

#include "adapters.hpp"
#include "llmem/error.hpp"
#include "llmem/units.hpp"
#include "llmem/vllm.hpp"

namespace llmem::adapters {
namespace {

struct VllmModel final : EngineModel {
  std::shared_ptr<const ArchModel> arch;
  vllm::Checkpoint checkpoint;
};

const VllmModel& model_of(const EngineModel& model) { return static_cast<const VllmModel&>(model); }

uint64_t optional_count(const std::optional<int64_t>& value, const char* field) {
  return value ? positive_count(*value, field) : 0;
}

vllm::VllmOptions options_for(const VllmModel& m, const Workload& w) {
  vllm::VllmOptions o;
  o.version = w.vllm_version;
  o.gpu_memory_utilization = w.gpu_memory_utilization;
  if (w.max_model_len) o.max_model_len = w.max_model_len;
  if (w.max_num_seqs) o.max_num_seqs = w.max_num_seqs;
  if (w.max_num_batched_tokens) o.max_num_batched_tokens = w.max_num_batched_tokens;
  if (w.block_size) o.block_size = w.block_size;
  if (w.kv_cache_memory_bytes) o.kv_cache_memory_bytes = w.kv_cache_memory_bytes;
  o.dtype = w.vllm_dtype;
  o.kv_cache_dtype = w.kv_cache_dtype;
  o.enforce_eager = w.enforce_eager;
  o.tensor_parallel_size = w.tensor_parallel_size;
  o.entrypoint = w.vllm_llm_class ? vllm::Entrypoint::kLlm : vllm::Entrypoint::kServe;
  o.allow_long_max_model_len = w.allow_long_max_model_len;
  o.mxfp4_marlin = w.mxfp4_marlin;
  o.checkpoint = m.checkpoint;
  return o;
}

class VllmEngine final : public Engine {
 public:
  std::string name() const override { return "vllm"; }
  std::vector<std::string> aliases() const override { return {"vLLM"}; }
  // the default pin (--vllm-version picks another; each estimate names the one it used)
  std::string version() const override { return "vLLM " + vllm::default_version(); }
  std::string source_needs() const override { return "a config.json of a known architecture"; }
  std::vector<WeightScheme> weight_schemes() const override { return {}; }

  bool reads(const std::string& field, const WorkloadSpec&) const override {
    static const std::set<std::string> fields = {
        "vllm_version",    "vllm_dtype",           "gpu_memory_utilization", "max_model_len",          "max_num_seqs",
        "max_num_batched_tokens", "block_size",    "kv_cache_dtype",         "enforce_eager",          "tensor_parallel_size",
        "kv_cache_memory", "vllm_llm_class",       "serving_concurrency",    "allow_long_max_model_len",
        "mxfp4_marlin"};
    return fields.count(field) != 0;
  }

  Workload resolve(const WorkloadSpec& spec) const override {
    Workload w;
    w.vllm_version = vllm::resolve_version(spec.vllm_version);
    const double util = spec.gpu_memory_utilization;
    if (!(util > 0 && util <= 1))
      throw usage_error("gpu_memory_utilization", fmt::format("{{field}} must be in (0, 1], got {}", util));
    w.gpu_memory_utilization = util;
    w.max_model_len = optional_count(spec.max_model_len, "max_model_len");
    w.max_num_seqs = optional_count(spec.max_num_seqs, "max_num_seqs");
    w.max_num_batched_tokens = optional_count(spec.max_num_batched_tokens, "max_num_batched_tokens");
    w.block_size = optional_count(spec.block_size, "block_size");
    static const char* kv_types[] = {"auto", "fp8", "fp8_e4m3", "fp8_e5m2"};
    if (std::find(std::begin(kv_types), std::end(kv_types), spec.kv_cache_dtype) == std::end(kv_types))
      throw usage_error("kv_cache_dtype", "{field} must be auto, fp8, fp8_e4m3 or fp8_e5m2, got '" + spec.kv_cache_dtype + "'");
    w.kv_cache_dtype = spec.kv_cache_dtype;
    static const char* dtypes[] = {"auto", "half", "float16", "fp16", "bfloat16", "bf16", "float", "float32", "fp32"};
    if (std::find(std::begin(dtypes), std::end(dtypes), spec.vllm_dtype) == std::end(dtypes))
      throw usage_error("vllm_dtype", "{field} must be auto, float16, bfloat16 or float32, got '" + spec.vllm_dtype + "'");
    w.vllm_dtype = spec.vllm_dtype;
    w.enforce_eager = spec.enforce_eager;
    w.tensor_parallel_size = positive_count(spec.tensor_parallel_size, "tensor_parallel_size");
    if (!spec.kv_cache_memory.empty()) {
      if (w.vllm_version != "0.11.0")
        throw usage_error("kv_cache_memory", "{field} does not exist in vLLM " + w.vllm_version);
      const auto bytes = parse_bytes(spec.kv_cache_memory);
      if (!bytes) throw usage_error("kv_cache_memory", "{field} '" + spec.kv_cache_memory + "' is not a size (e.g. 20GiB)");
      w.kv_cache_memory_bytes = *bytes;
    }
    w.vllm_llm_class = spec.vllm_llm_class;
    if (spec.serving_concurrency < 0)
      throw usage_error("serving_concurrency", "{field} must not be negative, got " + std::to_string(spec.serving_concurrency));
    w.serving_concurrency = static_cast<uint64_t>(spec.serving_concurrency);
    w.allow_long_max_model_len = spec.allow_long_max_model_len;
    w.mxfp4_marlin = spec.mxfp4_marlin;
    return w;
  }

  std::unique_ptr<EngineModel> prepare(const SourceFacts& facts, const Workload&) const override {
    if (!facts.arch || !facts.source.config)
      throw Error(ErrorKind::kUnsupported, facts.source.spec, "vLLM estimates need a config.json of a known architecture");
    auto m = std::make_unique<VllmModel>();
    m->arch = facts.arch;
    m->checkpoint = vllm::checkpoint_from_config(*facts.source.config, *facts.arch);
    return m;
  }

  Estimate estimate(const EngineModel& model, const Workload& w, const GpuProfile& gpu) const override {
    const VllmModel& m = model_of(model);
    const vllm::VllmOptions o = options_for(m, w);
    Estimate e = vllm::estimate(*m.arch, o, gpu);
    if (w.serving_concurrency && e.serving) {
      e.serving->min_gpu_memory_utilization = vllm::min_gpu_memory_utilization(*m.arch, o, gpu, w.serving_concurrency);
      e.serving->kv_cache_memory_bytes = vllm::kv_cache_memory_for(*m.arch, o, gpu, w.serving_concurrency);
    }
    return e;
  }

  std::vector<WeightTensor> weight_tensors(const EngineModel&) const override { return {}; }

  // One option: the checkpoint as vLLM loads it (its dtype or quantisation).
  std::vector<FitCandidate> fit_candidates(const SourceFacts&, const WorkloadSpec& base) const override {
    return {{"", resolve(base)}};
  }
  std::vector<FitCandidate> ranking_candidates(const SourceFacts& facts, const WorkloadSpec& base) const override {
    return fit_candidates(facts, base);
  }

  // The context knob is --max-model-len: the largest that starts.
  std::vector<Knob> fit_knobs() const override { return {Knob::kContext}; }

  KnobRange knob_range(const EngineModel& model, const Workload& w, Knob) const override {
    const VllmModel& m = model_of(model);
    KnobRange r;
    r.max_count = m.checkpoint.derived_max_model_len ? m.checkpoint.derived_max_model_len : m.arch->facts.max_positions;
    r.base_count = w.max_model_len ? w.max_model_len : r.max_count;
    return r;
  }

  Workload with_knob(Workload w, Knob, uint64_t count) const override {
    w.max_model_len = count;
    return w;
  }

  // Tensor parallelism is explicit (--tensor-parallel-size) and modelled per rank; fit does not split further.
  bool splits_over_gpus() const override { return false; }
};

}  // namespace

const Engine& vllm_engine() {
  static const VllmEngine engine;
  return engine;
}

}  // namespace llmem::adapters

namespace llmem {

StartupLogCheck check_startup_log(const std::string& record, const std::string& configs_jsonl) {
  nlohmann::json rec;
  try {
    rec = nlohmann::json::parse(record);
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorKind::kInvalidInput, "", "a start-up log record that is not JSON");
  }
  vllm::LogCheck c;
  try {
    c = vllm::check_public_log(rec, configs_jsonl);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kInvalidInput, rec.value("id", std::string()), std::string("missing or mistyped field (") + e.what() + ")");
  }
  StartupLogCheck out;
  out.id = c.id;
  out.engine = "vllm";
  out.version_used = c.version_used;
  for (const auto& x : c.compared) out.compared.push_back({x.item, x.unit, x.logged, x.predicted});
  out.skipped = c.skipped;
  out.not_modelled = c.not_modelled;
  return out;
}

}  // namespace llmem
