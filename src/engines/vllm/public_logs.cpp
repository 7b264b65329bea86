// A public start-up log (bench/data/vllm_public_logs*.jsonl, fields in bench/vllm/README.md) turned into the
// options it stands for, and every printed figure it allows compared with llmem's.
//
// Two kinds of comparison: end to end (llmem predicts the figure from the model, the settings and the GPU), and
// layout consistency (llmem takes the available KV memory vLLM printed and derives blocks, tokens, concurrency and
// the refusal's numbers from it: this checks the KV cache layout alone).
#include <algorithm>
#include <sstream>

#include <fmt/format.h>

#include "llmem/catalog.hpp"
#include "llmem/error.hpp"
#include "vllm_internal.hpp"

namespace llmem::vllm {
using namespace detail;
namespace {

using nlohmann::json;

std::optional<HfConfig> config_for(const std::string& ref, const std::string& configs_jsonl) {
  if (ref.rfind("catalog:", 0) == 0) {
    const auto entry = find_in_catalog(ref.substr(8));
    if (!entry) throw Error(ErrorKind::kNotFound, ref, "not in the embedded catalog");
    return HfConfig::parse(std::string(entry->config_json), ref);
  }
  if (ref.rfind("configs:", 0) == 0) {
    std::istringstream lines(configs_jsonl);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.empty()) continue;
      const json j = json::parse(line);
      if (j.at("model").get<std::string>() == ref.substr(8)) return HfConfig(j.at("config"), ref);
    }
    throw Error(ErrorKind::kNotFound, ref, "not in vllm_public_logs_configs.jsonl");
  }
  return std::nullopt;
}

template <class T>
std::optional<T> opt_field(const json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return std::nullopt;
  return j.at(key).get<T>();
}

VllmOptions options_for(const json& rec, const HfConfig& config, const ArchModel& model, std::string& version_note) {
  VllmOptions o;
  const json& s = rec.at("settings");
  o.version = nearest_pin(rec.value("vllm_version", json()).is_string() ? rec.at("vllm_version").get<std::string>() : "",
                          rec.at("engine").get<std::string>(), version_note);
  o.checkpoint = checkpoint_from_config(config, model);
  if (auto v = opt_field<double>(s, "gpu_memory_utilization")) o.gpu_memory_utilization = *v;
  o.max_model_len = opt_field<uint64_t>(s, "max_model_len");
  o.max_num_seqs = opt_field<uint64_t>(s, "max_num_seqs");
  o.max_num_batched_tokens = opt_field<uint64_t>(s, "max_num_batched_tokens");
  o.block_size = opt_field<uint64_t>(s, "block_size");
  o.enable_chunked_prefill = opt_field<bool>(s, "enable_chunked_prefill");
  if (auto v = opt_field<std::string>(s, "dtype")) o.dtype = *v;
  if (auto v = opt_field<std::string>(s, "kv_cache_dtype")) o.kv_cache_dtype = *v;
  if (auto v = opt_field<uint64_t>(s, "tensor_parallel_size")) o.tensor_parallel_size = *v;
  if (auto v = opt_field<bool>(s, "enforce_eager")) o.enforce_eager = *v;
  if (auto v = opt_field<bool>(s, "mxfp4_marlin")) o.mxfp4_marlin = *v;
  if (auto q = opt_field<std::string>(s, "quantization")) {
    if (*q == "compressed-tensors-w8a8-int8") o.checkpoint.quantization = Quantization{"compressed-tensors", 8, 0, 0, 0};
    else if (*q == "bitsandbytes") o.checkpoint.quantization = Quantization{"bitsandbytes", 4, 0, 0, 0};
    else if (!o.checkpoint.quantization || o.checkpoint.quantization->method != *q) o.quantization = *q;
  }
  o.entrypoint = rec.value("entrypoint", json()) == "llm" ? Entrypoint::kLlm : Entrypoint::kServe;
  if (auto t = opt_field<double>(rec, "total_gpu_memory_gib"))
    o.total_memory_bytes = static_cast<uint64_t>(*t * static_cast<double>(kGiB));
  return o;
}

void compare(LogCheck& c, const char* item, double logged, double predicted, const char* unit) {
  // A figure vLLM printed as zero or less (0 blocks, 0.00x when it refused) has no relative error: listed apart.
  if (logged <= 0) {
    c.skipped.push_back(fmt::format("{}: vLLM printed {:g} {}, llmem {:.4g} {}; not a relative error", item, logged,
                                    unit, predicted, unit));
    return;
  }
  c.compared.push_back({item, logged, predicted, unit});
}

double to_gib(double bytes) { return bytes / static_cast<double>(kGiB); }

// Blocks, tokens and concurrency from the available memory vLLM printed: the KV layout alone.
void check_layout(LogCheck& c, const json& p, const ArchModel& model, const VllmOptions& o, const VllmResult& r) {
  const VersionRules& rules = rules_for(r.version);
  const uint64_t kv_elem = o.kv_cache_dtype == "auto" ? dtype_info(model_dtype(model, o.dtype)).block_bytes : 1;
  const KvLayout kv = kv_layout(model, o.checkpoint, rules, o.tensor_parallel_size, kv_elem, o.block_size);
  if (auto need = opt_field<double>(p, "kv_needed_gib"))
    compare(c, "kv_needed (one request at max_model_len)", *need, to_gib(static_cast<double>(kv_needed_bytes(kv, r.max_model_len, r.max_num_batched_tokens))), "GiB");
  auto logged_avail = opt_field<double>(p, "available_kv_gib");
  if (!logged_avail || *logged_avail <= 0) return;
  const auto avail = static_cast<int64_t>(*logged_avail * static_cast<double>(kGiB));
  const KvCount k = kv_count(kv, rules, avail, r.max_model_len, r.max_num_batched_tokens);
  if (auto v = opt_field<double>(p, "gpu_blocks")) compare(c, "gpu_blocks from the logged available memory", *v, static_cast<double>(k.blocks), "blocks");
  if (auto v = opt_field<double>(p, "kv_cache_tokens")) compare(c, "kv_cache_tokens from the logged available memory", *v, static_cast<double>(k.tokens), "tokens");
  if (auto v = opt_field<double>(p, "max_concurrency")) compare(c, "max_concurrency from the logged available memory", *v, k.max_concurrency, "x");
  if (auto v = opt_field<double>(p, "estimated_max_model_len"))
    compare(c, "estimated_max_model_len from the logged available memory", *v,
            static_cast<double>(kv_max_len_for(kv, avail, r.max_model_len, r.max_num_batched_tokens)), "tokens");
}

void check_end_to_end(LogCheck& c, const json& rec, const json& p, const VllmResult& r, bool budget_known,
                      bool settings_known) {
  if (auto v = opt_field<double>(p, "weights_gib")) compare(c, "weights", *v, to_gib(static_cast<double>(r.weight_bytes)), "GiB");
  // The profile's peak follows the scheduler's limits (max_num_batched_tokens, max_num_seqs): without the command
  // line llmem's defaults would stand in for them.
  if (!settings_known)
    for (const char* k : {"activation_peak_gib", "peak_torch_gib"})
      if (p.contains(k)) c.skipped.push_back(std::string(k) + ": the command line is not in the source");
  if (auto v = opt_field<double>(p, "activation_peak_gib"); v && settings_known) {
    // V0 samples on rank 0 only: a worker's printed peak is the forward pass alone.
    const bool worker = rec.contains("printed_rank") && !rules_for(r.version).v1;
    compare(c, worker ? "activation_peak (a worker: forward only)" : "activation_peak", *v,
            to_gib(static_cast<double>(worker ? r.forward_peak_bytes : r.activation_peak_bytes)), "GiB");
  }
  if (auto v = opt_field<double>(p, "non_torch_gib")) compare(c, "non_torch", *v, to_gib(static_cast<double>(r.non_torch_bytes)), "GiB");
  if (auto v = opt_field<double>(p, "peak_torch_gib"); v && settings_known)
    compare(c, "peak_torch (weights + activation)", *v, to_gib(static_cast<double>(r.weight_bytes + r.activation_peak_bytes)), "GiB");
  if (!budget_known || !settings_known) {
    const char* why = budget_known ? "the command line is not in the source" : "the GPU's total memory is not known";
    for (const char* k : {"available_kv_gib", "gpu_blocks", "kv_cache_tokens", "max_tokens_in_kv"})
      if (p.contains(k)) c.skipped.push_back(std::string(k) + " end to end: " + why);
    return;
  }
  const bool rank_specific = rec.contains("printed_rank");
  if (auto v = opt_field<double>(p, "available_kv_gib")) {
    const double predicted = to_gib(static_cast<double>(r.available_kv_bytes));
    if (rank_specific) {
      c.skipped.push_back("available_kv end to end: printed for one worker, not the smallest rank");
    } else if (*v <= 0) {
      // vLLM refused to start ("No available memory for the cache blocks"): a relative error means nothing there,
      // so the two figures are listed side by side, in GiB, and kept out of the percentages.
      c.skipped.push_back(fmt::format("available_kv end to end: vLLM printed {:.2f} GiB (it refused to start), llmem "
                                      "{:.2f} GiB ({}); not a relative error",
                                      *v, predicted, predicted <= 0 ? "refuses too" : "would start"));
    } else {
      compare(c, "available_kv", *v, predicted, "GiB");
    }
  }
  if (auto v = opt_field<double>(p, "gpu_blocks")) compare(c, "gpu_blocks", *v, static_cast<double>(r.kv_blocks), "blocks");
  if (auto v = opt_field<double>(p, "kv_cache_tokens")) compare(c, "kv_cache_tokens", *v, static_cast<double>(r.kv_cache_tokens), "tokens");
  if (auto v = opt_field<double>(p, "max_tokens_in_kv")) compare(c, "max_tokens_in_kv", *v, static_cast<double>(r.kv_cache_tokens), "tokens");
  if (auto v = opt_field<double>(p, "max_concurrency")) compare(c, "max_concurrency", *v, r.max_concurrency, "x");
}

}  // namespace

LogCheck check_public_log(const json& rec, const std::string& configs_jsonl) {
  LogCheck c;
  c.id = rec.at("id").get<std::string>();
  // A record the collector marked as outside what llmem models (a version before the pins, a GGUF checkpoint, an
  // unnamed model) says why in its own words and is not compared at all.
  if (rec.contains("excluded_reason") && rec.at("excluded_reason").is_string()) {
    c.not_modelled = "excluded: " + rec.at("excluded_reason").get<std::string>();
    return c;
  }
  const std::string ref = rec.value("config_ref", json()).is_string() ? rec.at("config_ref").get<std::string>() : "";
  const auto config = config_for(ref, configs_jsonl);
  if (!config) {
    c.not_modelled = "llmem has no family for " + rec.value("model", json("an unnamed model")).get<std::string>();
    return c;
  }
  const ArchModel model = model_from_config(*config);
  std::string note;
  VllmOptions o = options_for(rec, *config, model, note);
  c.version_used = rules_for(o.version).name + (note.empty() ? "" : " (" + note + ")");
  const json& s = rec.at("settings");
  const json& p = rec.at("printed");
  // A GPU the catalog lacks (or none named) still lets the weights and the KV layout be checked; the budget then
  // is unknown and nothing that depends on it is compared.
  GpuProfile gpu;
  bool in_catalog = false;
  if (rec.value("gpu", json()).is_string()) {
    try {
      gpu = find_gpu(rec.at("gpu").get<std::string>());
      in_catalog = true;
    } catch (const Error&) {
      gpu.name = rec.at("gpu").get<std::string>();
    }
  } else {
    gpu.name = "unnamed";
  }
  if (!in_catalog) {
    // The CUDA context outside torch (counted in the budget by 0.6.4) is the reference measurement for every GPU
    // without one of its own, as it is for catalog GPUs (src/engine/gpus.cpp); a GPU the catalog lacks is no
    // different.
    gpu.cuda_context_bytes = default_gpu().cuda_context_bytes;
    gpu.context_source = default_gpu().context_source;
  }
  const bool budget_known = o.total_memory_bytes || (in_catalog && torch_total_memory(gpu));
  if (!o.total_memory_bytes && !budget_known) o.total_memory_bytes = in_catalog ? gpu.memory_bytes : 80 * kGiB;
  // Data/expert parallelism and CPU offload move weights and activations in ways llmem does not model: only the
  // KV layout can be checked there.
  // A KV connector (kv_transfer_config, e.g. LMCacheConnectorV1) allocates its own GPU buffers while the engine
  // starts, inside vLLM's measurement (vllm/distributed/kv_transfer/kv_connector/v1/): not modelled either.
  const bool moved = s.contains("data_parallel_size") || s.contains("enable_expert_parallel") || s.contains("cpu_offload_gb");
  const bool layout_only = moved || s.contains("kv_transfer_config");
  // The KV layout keeps the tensor-parallel size: expert parallelism shards the MoE layers' experts over the
  // ranks, data parallelism replicates the TP group, and neither changes how the attention's KV heads are split
  // (config/parallel.py; get_num_kv_heads divides by tensor_parallel_size alone).
  if (moved) o.quantization.clear();
  // A log of a version between the pins whose architecture the nearest pin's registry lacks (a V0 log of 0.8.x
  // serving Qwen3, computed with 0.7.3's rules): vLLM at the pin would refuse it, so nothing is compared.
  const auto& archs = rules_for(o.version).architectures;
  const std::string arch = o.checkpoint.architecture.empty() ? model.facts.architecture : o.checkpoint.architecture;
  if (std::find(archs.begin(), archs.end(), arch) == archs.end()) {
    c.not_modelled = fmt::format("{} is not in the registry of the pin whose rules stand for this log ({})", arch,
                                 c.version_used);
    return c;
  }
  VllmResult r;
  try {
    r = simulate(model, o, gpu);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kUnsupported) throw;
    // Unmodelled weights (bitsandbytes): the KV layout can still be checked.
    c.skipped.push_back(std::string("end to end: ") + e.what());
    VllmOptions plain = o;
    plain.checkpoint.quantization.reset();
    plain.quantization.clear();
    r = simulate(model, plain, gpu);
    check_layout(c, p, model, plain, r);
    return c;
  }
  if (layout_only) {
    c.skipped.push_back("end to end: data/expert parallelism, CPU offload or a KV connector is not modelled");
  } else {
    check_end_to_end(c, rec, p, r, budget_known, !rec.value("settings_unknown", false));
  }
  check_layout(c, p, model, o, r);
  return c;
}

}  // namespace llmem::vllm
