// A public start-up log (bench/data/vllm_public_logs*.jsonl, fields in bench/vllm/README.md) turned into the
// options it stands for, and every printed figure it allows compared with llmem's.
//
// Two kinds of comparison: end to end (llmem predicts the figure from the model, the settings and the GPU), and
// layout consistency (llmem takes the available KV memory vLLM printed and derives blocks, tokens, concurrency and
// the refusal's numbers from it: this checks the KV cache layout alone).
#include <sstream>

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

void check_end_to_end(LogCheck& c, const json& rec, const json& p, const VllmResult& r, bool budget_known) {
  if (auto v = opt_field<double>(p, "weights_gib")) compare(c, "weights", *v, to_gib(static_cast<double>(r.weight_bytes)), "GiB");
  if (auto v = opt_field<double>(p, "activation_peak_gib")) {
    // V0 samples on rank 0 only: a worker's printed peak is the forward pass alone.
    const bool worker = rec.contains("printed_rank") && !rules_for(r.version).v1;
    compare(c, worker ? "activation_peak (a worker: forward only)" : "activation_peak", *v,
            to_gib(static_cast<double>(worker ? r.forward_peak_bytes : r.activation_peak_bytes)), "GiB");
  }
  if (auto v = opt_field<double>(p, "non_torch_gib")) compare(c, "non_torch", *v, to_gib(static_cast<double>(r.non_torch_bytes)), "GiB");
  if (auto v = opt_field<double>(p, "peak_torch_gib"))
    compare(c, "peak_torch (weights + activation)", *v, to_gib(static_cast<double>(r.weight_bytes + r.activation_peak_bytes)), "GiB");
  if (!budget_known) {
    for (const char* k : {"available_kv_gib", "gpu_blocks", "kv_cache_tokens", "max_tokens_in_kv"})
      if (p.contains(k)) c.skipped.push_back(std::string(k) + " end to end: the GPU's total memory is not known");
    return;
  }
  const bool rank_specific = rec.contains("printed_rank");
  if (auto v = opt_field<double>(p, "available_kv_gib")) {
    if (rank_specific) c.skipped.push_back("available_kv end to end: printed for one worker, not the smallest rank");
    else compare(c, "available_kv", *v, to_gib(static_cast<double>(r.available_kv_bytes)), "GiB");
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
  const std::string ref = rec.value("config_ref", json()).is_string() ? rec.at("config_ref").get<std::string>() : "";
  const auto config = config_for(ref, configs_jsonl);
  if (!config) {
    c.not_modelled = "llmem has no family for " + rec.at("model").get<std::string>();
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
  const bool budget_known = o.total_memory_bytes || (in_catalog && torch_total_memory(gpu));
  if (!o.total_memory_bytes && !budget_known) o.total_memory_bytes = in_catalog ? gpu.memory_bytes : 80 * kGiB;
  // Data/expert parallelism and CPU offload move weights and activations in ways llmem does not model: only the
  // KV layout can be checked there.
  const bool layout_only = s.contains("data_parallel_size") || s.contains("enable_expert_parallel") || s.contains("cpu_offload_gb");
  if (layout_only) {
    o.tensor_parallel_size = 1;
    o.quantization.clear();
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
    c.skipped.push_back("end to end: data/expert parallelism or CPU offload is not modelled");
  } else {
    check_end_to_end(c, rec, p, r, budget_known);
  }
  check_layout(c, p, model, o, r);
  return c;
}

}  // namespace llmem::vllm
