// vLLM's start-up, step by step, for one pinned version: check the arguments as vLLM does, load the weights, run
// the profile, budget the KV cache, count blocks, tokens and concurrency, and say whether vLLM would start.
//
// The budget (0.7.3 vllm/worker/worker.py determine_num_available_blocks; 0.11 vllm/v1/worker/gpu_worker.py
// determine_available_memory with vllm/utils memory_profiling):
//   available KV = total x gpu_memory_utilization - (weights + torch peak increase of the profile run
//                  + non-torch increase since the worker's baseline)
// 0.6.4 subtracts everything the process holds outside torch after profiling instead of the increase, so the
// CUDA context counts there. --kv-cache-memory (0.11) replaces the budget with the given bytes.
#include <algorithm>
#include <cmath>
#include <sstream>

#include <fmt/format.h>

#include "llmem/error.hpp"
#include "llmem/field_error.hpp"
#include "llmem/units.hpp"
#include "vllm_internal.hpp"

namespace llmem::vllm {
using namespace detail;
namespace {

std::string gib(double bytes) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(2);
  s << bytes / static_cast<double>(kGiB);
  return s.str();
}

uint64_t rope_positions(const HfConfig& c, uint64_t max_positions) {
  // layers/rotary_embedding.py get_rope: the cos/sin cache spans max_position x scaling for linear and dynamic
  // scaling, original_max_position x factor for YaRN (and DeepSeek's YaRN), the plain maximum otherwise.
  if (!c.has("rope_scaling") || !c.json().at("rope_scaling").is_object()) return max_positions;
  const auto& rs = c.json().at("rope_scaling");
  const std::string type = rs.value("rope_type", rs.value("type", std::string("default")));
  const double factor = rs.contains("factor") && rs.at("factor").is_number() ? rs.at("factor").get<double>() : 1.0;
  if (type == "linear" || type == "dynamic") return static_cast<uint64_t>(static_cast<double>(max_positions) * factor);
  if (type == "yarn" || type == "deepseek_yarn") {
    const uint64_t original = rs.contains("original_max_position_embeddings") &&
                                      rs.at("original_max_position_embeddings").is_number_unsigned()
                                  ? rs.at("original_max_position_embeddings").get<uint64_t>()
                                  : max_positions;
    return static_cast<uint64_t>(static_cast<double>(original) * factor);
  }
  return max_positions;
}

std::optional<Quantization> quantization_from_config(const HfConfig& c) {
  if (!c.has("quantization_config")) return std::nullopt;
  const auto& q = c.json().at("quantization_config");
  if (!q.is_object()) c.fail("quantization_config", "must be an object");
  Quantization out;
  out.method = q.value("quant_method", std::string());
  if (out.method == "fp8") {
    out.weight_bits = 8;
    if (q.contains("weight_block_size") && q.at("weight_block_size").is_array() && q.at("weight_block_size").size() == 2) {
      out.block_n = q.at("weight_block_size")[0].get<uint64_t>();
      out.block_k = q.at("weight_block_size")[1].get<uint64_t>();
    }
  } else if (out.method == "gptq" || out.method == "awq") {
    out.weight_bits = q.value("bits", q.value("w_bit", 4));
    const int64_t g = q.value("group_size", q.value("q_group_size", int64_t{128}));
    out.group_size = g > 0 ? static_cast<uint64_t>(g) : 0;
  } else if (out.method == "compressed-tensors") {
    out.weight_bits = 8;
    if (q.contains("config_groups") && q.at("config_groups").is_object())
      for (const auto& [name, group] : q.at("config_groups").items())
        if (group.contains("weights") && group.at("weights").is_object())
          out.weight_bits = group.at("weights").value("num_bits", 8);
  } else if (out.method == "mxfp4") {
    out.weight_bits = 4;
  }
  return out;
}

void check_arguments(const ArchModel& model, const VllmOptions& opt, const VersionRules& rules) {
  const ModelFacts& f = model.facts;
  const std::string arch = opt.checkpoint.architecture.empty() ? f.architecture : opt.checkpoint.architecture;
  if (std::find(rules.architectures.begin(), rules.architectures.end(), arch) == rules.architectures.end()) {
    // A vision-language model: vLLM may well serve it, but its start-up profiles the vision encoder on dummy images
    // as well, which llmem does not restate; saying vLLM refuses it would be wrong.
    const bool multimodal = std::any_of(model.tensors.begin(), model.tensors.end(),
                                        [](const TensorInfo& t) { return t.role == TensorRole::kVisionTower; });
    if (multimodal)
      throw Error(ErrorKind::kUnsupported, "",
                  "vLLM " + rules.name + ": not modelled for vision-language models (" + arch + ")");
    throw Error(ErrorKind::kUnsupported, "",
                "vLLM " + rules.name + ": Model architectures ['" + arch + "'] are not supported for now.");
  }
  if (opt.gpu_memory_utilization <= 0 || opt.gpu_memory_utilization > 1)
    throw usage_error("gpu_memory_utilization",
                      fmt::format("{{field}} must be in (0, 1], got {}", opt.gpu_memory_utilization));
  if (opt.tensor_parallel_size == 0) throw usage_error("tensor_parallel_size", "{field} must be positive");
  // config/model.py verify_with_parallel_config.
  if (f.n_heads % opt.tensor_parallel_size != 0)
    throw Error(ErrorKind::kUsage, "", "Total number of attention heads (" + std::to_string(f.n_heads) +
                                           ") must be divisible by tensor parallel size (" +
                                           std::to_string(opt.tensor_parallel_size) + ").");
  const std::string& kvd = opt.kv_cache_dtype;
  if (kvd != "auto" && kvd != "fp8" && kvd != "fp8_e4m3" && kvd != "fp8_e5m2")
    throw usage_error("kv_cache_dtype", "argument {field}: invalid choice: '" + kvd +
                                            "' (choose from 'auto', 'fp8', 'fp8_e4m3', 'fp8_e5m2')");
  if (opt.kv_cache_memory_bytes && !rules.v1)
    throw usage_error("kv_cache_memory", "{field} does not exist in vLLM " + rules.name);
  // config/model.py _get_and_verify_max_len.
  const uint64_t derived = opt.checkpoint.derived_max_model_len;
  if (opt.max_model_len && derived && *opt.max_model_len > derived && !opt.allow_long_max_model_len)
    throw Error(ErrorKind::kUsage, "",
                "User-specified max_model_len (" + std::to_string(*opt.max_model_len) +
                    ") is greater than the derived max_model_len (" + opt.checkpoint.max_len_key + "=" +
                    std::to_string(derived) +
                    " in model's config.json). To allow overriding this maximum, set the env var "
                    "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1");
}

// vLLM's own refusal at start-up, or "".
std::string refusal_text(const VersionRules& rules, const VllmResult& r) {
  if (r.available_kv_bytes <= 0 || r.kv_blocks == 0)
    return "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing "
           "the engine.";
  if (rules.v1) {
    if (r.kv_needed_bytes > static_cast<uint64_t>(r.available_kv_bytes))
      return "To serve at least one request with the models's max seq len (" + std::to_string(r.max_model_len) +
             "), (" + gib(static_cast<double>(r.kv_needed_bytes)) +
             " GiB KV cache is needed, which is larger than the available KV cache memory (" +
             gib(static_cast<double>(r.available_kv_bytes)) + " GiB). Based on the available memory, the estimated "
             "maximum model length is " + std::to_string(r.estimated_max_model_len) +
             ". Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.";
    return "";
  }
  if (r.max_model_len > r.kv_cache_tokens)
    return "The model's max seq len (" + std::to_string(r.max_model_len) +
           ") is larger than the maximum number of tokens that can be stored in KV cache (" +
           std::to_string(r.kv_cache_tokens) +
           "). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.";
  return "";
}

void add_components(VllmResult& r, const WeightBreakdown& w, const ActivationPeak& act, const GpuProfile& gpu,
                    uint64_t context_bytes, const VersionRules& rules) {
  r.components.push_back({"weights", r.weight_bytes,
                          "parameters and buffers on one rank as loaded (embedding " + format_bytes(w.embedding) +
                              ", LM head " + format_bytes(w.lm_head) + ", linear layers " + format_bytes(w.linear) +
                              ", experts " + format_bytes(w.experts) + ", norms/routers " + format_bytes(w.other) +
                              ", rotary cos/sin cache " + format_bytes(w.rope_cache) + ")"});
  r.components.push_back({"activations", r.activation_peak_bytes,
                          "profile run peak over the weights: " + act.phase + " (forward " +
                              format_bytes(act.forward_bytes) + ", sampler " + format_bytes(act.sampler_bytes) +
                              ", cuBLAS workspace " + format_bytes(act.cublas_workspace_bytes) + ") at " +
                              std::to_string(r.max_num_batched_tokens) + " tokens, " +
                              std::to_string(r.max_num_seqs) + " sequences"});
  r.components.push_back({"non_torch", r.non_torch_bytes,
                          rules.non_torch_includes_context
                              ? "everything outside torch after profiling (CUDA context, NCCL), as 0.6.4 counts it"
                              : "non-torch increase over the worker's baseline: what the first kernels add to the CUDA "
                                "context (" + first_kernels_source() + "), and NCCL buffers when they come after it"});
  r.components.push_back({"kv_cache", r.kv_cache_bytes,
                          std::to_string(r.kv_blocks) + " blocks of " + std::to_string(r.block_size) + " tokens, " +
                              format_bytes(r.kv_bytes_per_block) + " each"});
  if (r.cuda_graph_bytes)
    r.components.push_back({"cuda_graphs", r.cuda_graph_bytes,
                            "CUDA graph pool (largest captured batch's activations); not in vLLM's budget at this version"});
  if (!rules.non_torch_includes_context)
    r.components.push_back({"cuda_context", context_bytes, "before the worker's baseline: " + gpu.context_source});
}

}  // namespace

Checkpoint checkpoint_from_config(const HfConfig& config, const ArchModel& model) {
  Checkpoint ck;
  const auto archs = config.architectures();
  ck.architecture = archs.empty() ? model.facts.architecture : archs.front();
  ck.quantization = quantization_from_config(config);
  // config/model.py _get_and_verify_max_len: the smallest length key, scaled by rope_scaling unless the scaling
  // already states the long length (su, longrope, llama3).
  uint64_t derived = 0;
  for (const char* key : {"max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                          "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len"}) {
    if (!config.has(key) || !config.json().at(key).is_number_unsigned()) continue;
    const uint64_t v = config.json().at(key).get<uint64_t>();
    if (derived == 0 || v < derived) {
      derived = v;
      ck.max_len_key = key;
    }
  }
  if (derived && config.has("rope_scaling") && config.json().at("rope_scaling").is_object() &&
      config.model_type().find("gemma3") == std::string::npos) {
    const auto& rs = config.json().at("rope_scaling");
    const std::string type = rs.value("rope_type", rs.value("type", std::string("default")));
    if (type != "su" && type != "longrope" && type != "llama3") {
      const double factor = rs.contains("factor") && rs.at("factor").is_number() ? rs.at("factor").get<double>() : 1.0;
      if (type == "yarn" && rs.contains("original_max_position_embeddings"))
        derived = rs.at("original_max_position_embeddings").get<uint64_t>();
      derived = static_cast<uint64_t>(static_cast<double>(derived) * factor);
    }
  }
  ck.derived_max_model_len = derived;
  if (model.facts.attention_kind == "mla") {
    ck.mla_latent_dim = config.dim_or("kv_lora_rank", 0) + config.dim_or("qk_rope_head_dim", 0);
    ck.rotary_dim = config.dim_or("qk_rope_head_dim", 0);
  } else if (model.facts.position_kind == "rope") {
    ck.rotary_dim = static_cast<uint64_t>(std::llround(static_cast<double>(model.facts.head_dim) * model.facts.partial_rotary));
  }
  ck.rope_cache_positions = ck.rotary_dim ? rope_positions(config, model.facts.max_positions) : 0;
  // Gemma 3 (models/gemma3.py): the sliding-window layers rotate with rope_local_base_freq and no scaling, the
  // others with rope_theta and the config's scaling. get_rope caches one instance per distinct configuration, so
  // there are two caches; the local one spans max_position_embeddings.
  bool sliding = false;
  for (const auto& a : model.facts.attention) sliding = sliding || a.sliding_window > 0;
  if (ck.rotary_dim && sliding && config.has("rope_local_base_freq")) ck.rope_cache_positions += model.facts.max_positions;
  return ck;
}

namespace {
// The card exactly as the GPU catalog lists it (its own size, not one a caller put in its place).
bool card_as_catalogued(const GpuProfile& gpu) {
  for (const auto& g : gpu_catalog())
    if (g.name == gpu.name && g.memory_bytes == gpu.memory_bytes && g.memory_source == gpu.memory_source) return true;
  return false;
}
}  // namespace

std::optional<uint64_t> torch_total_memory(const GpuProfile& gpu) {
  // torch.cuda.mem_get_info()[1] as vLLM printed it (total_gpu_memory, GiB with two decimals). Sources:
  // H100 80GB HBM3 79.22 GiB (vllm-project/vllm#10511, #12126), RTX 3090 23.58 GiB (#10517, #14447),
  // A100 40GB 39.38 GiB (#16570), A100 80GB 79.15 GiB (the issue running Qwen2.5-14B- and 72B-Instruct-GPTQ-Int4
  // on "one 80G A100": "total_gpu_memory=79.15GiB"), RTX 4060 8.00 GiB (#13882), L40S 44.42 GiB (#15815).
  struct Known { const char* name; double gib; };
  static const Known known[] = {{"H100-80GB-HBM3", 79.22}, {"RTX-3090", 23.58}, {"A100-40GB", 39.38},
                                {"A100-80GB", 79.15}, {"RTX-4060", 8.00}, {"L40S", 44.42}};
  for (const auto& k : known) {
    if (gpu.name != k.name) continue;
    // A size given for the card (--vram) is the total to budget against; the table is for the card as it is.
    if (!card_as_catalogued(gpu)) return std::nullopt;
    return static_cast<uint64_t>(std::llround(k.gib * static_cast<double>(kGiB)));
  }
  return std::nullopt;
}

VllmResult simulate(const ArchModel& model, const VllmOptions& opt_in, const GpuProfile& gpu) {
  VllmOptions opt = opt_in;
  const VersionRules& rules = rules_for(resolve_version(opt.version));
  if (opt.checkpoint.derived_max_model_len == 0) opt.checkpoint.derived_max_model_len = model.facts.max_positions;
  if (opt.checkpoint.max_len_key.empty()) opt.checkpoint.max_len_key = "max_position_embeddings";
  check_arguments(model, opt, rules);
  const ModelFacts& f = model.facts;
  const uint64_t tp = opt.tensor_parallel_size;
  VllmResult r;
  r.version = rules.name;
  r.max_model_len = opt.max_model_len.value_or(opt.checkpoint.derived_max_model_len);
  if (r.max_model_len == 0)
    throw usage_error("max_model_len", "the model's config states no maximum length; {field} is needed");
  if (auto t = opt.total_memory_bytes) {
    r.total_memory_bytes = *t;
    r.total_memory_basis = "given";
  } else if (auto k = torch_total_memory(gpu)) {
    r.total_memory_bytes = *k;
    r.total_memory_basis = "torch";
  } else if (!card_as_catalogued(gpu) && gpu.memory_source != "NVML") {
    r.total_memory_bytes = gpu.memory_bytes;  // a size the caller set in place of the card's
    r.total_memory_basis = "given";
  } else {
    r.total_memory_bytes = gpu.memory_bytes;
    r.total_memory_basis = "nominal";
    r.notes.push_back("total memory: " + format_bytes(gpu.memory_bytes) + " (" + gpu.memory_source +
                      "); vLLM budgets against the total torch reports (cudaMemGetInfo), for most cards a few hundred "
                      "MiB less: set the GPU's memory to that figure");
  }
  r.requested_memory_bytes = static_cast<uint64_t>(static_cast<double>(r.total_memory_bytes) * opt.gpu_memory_utilization);

  std::optional<Quantization> q = opt.checkpoint.quantization;
  if (!opt.quantization.empty() && (!q || q->method != opt.quantization)) {
    if (opt.quantization == "fp8") q = Quantization{"fp8", 8, 0, 0, 0};  // online dynamic FP8 (per-tensor scales)
    else if (opt.quantization == "bitsandbytes") q = Quantization{"bitsandbytes", 4, 0, 0, 0};
    else throw Error(ErrorKind::kUnsupported, "", "quantization " + opt.quantization + " needs the checkpoint's "
                                                  "quantization_config; llmem models fp8 (online) only as a flag");
  }
  const DType dtype = model_dtype(model, opt.dtype);
  const Mxfp4Backend mxfp4 = mxfp4_backend(llmem::compute_capability(gpu), opt.mxfp4_marlin);
  const WeightBreakdown w = weight_bytes(model, opt.checkpoint, q, dtype, tp, mxfp4);
  r.weight_bytes = w.total;

  bool sliding = false;
  for (const auto& a : f.attention) sliding = sliding || a.sliding_window > 0;
  const SchedulerLimits lim = scheduler_limits(opt, rules, r.max_model_len, sliding, gpu, r.total_memory_bytes);
  r.max_num_batched_tokens = lim.max_num_batched_tokens;
  r.max_num_seqs = lim.max_num_seqs;
  const uint64_t rows = std::min(lim.max_num_seqs, lim.max_num_batched_tokens);
  const ActivationPeak act =
      activation_peak(model, opt.checkpoint, rules, lim, dtype, tp, rows, llmem::compute_capability(gpu));
  r.activation_peak_bytes = act.bytes;
  // A rank that does not sample (V0 TP > 1) still runs GEMMs, so it holds the cuBLAS workspace too.
  r.forward_peak_bytes = act.forward_bytes + act.cublas_workspace_bytes;

  const uint64_t context = gpu.cuda_context_bytes;
  // 0.7.3 and 0.11 take the baseline before the model's first kernels, so what those add to the context (cuBLAS's
  // first GEMM, the first attention) is non-torch growth; 0.6.4 counts the whole context.
  const uint64_t after_baseline = rules.non_torch_includes_context ? 0 : first_kernels_bytes(gpu);
  r.non_torch_bytes = (rules.nccl_before_baseline ? 0 : nccl_buffer_bytes(tp)) +
                      (rules.non_torch_includes_context ? context : after_baseline);
  if (opt.kv_cache_memory_bytes) {
    r.available_kv_bytes = static_cast<int64_t>(*opt.kv_cache_memory_bytes);
  } else {
    r.available_kv_bytes = static_cast<int64_t>(r.requested_memory_bytes) -
                           static_cast<int64_t>(r.weight_bytes + r.activation_peak_bytes + r.non_torch_bytes);
  }

  const uint64_t kv_elem = opt.kv_cache_dtype == "auto" ? dtype_info(dtype).block_bytes : 1;
  const KvLayout kv = kv_layout(model, opt.checkpoint, rules, tp, kv_elem, opt.block_size);
  r.block_size = kv.block_size;
  r.kv_bytes_per_block = kv.bytes_per_block();
  const KvCount count = kv_count(kv, rules, r.available_kv_bytes, r.max_model_len, lim.max_num_batched_tokens);
  r.kv_blocks = count.blocks;
  r.kv_cache_tokens = count.tokens;
  r.kv_cache_bytes = count.allocated_bytes;
  r.max_concurrency = count.max_concurrency;
  r.kv_needed_bytes = kv_needed_bytes(kv, r.max_model_len, lim.max_num_batched_tokens);
  if (rules.v1 && r.available_kv_bytes > 0 && r.kv_needed_bytes > static_cast<uint64_t>(r.available_kv_bytes))
    r.estimated_max_model_len = kv_max_len_for(kv, r.available_kv_bytes, r.max_model_len, lim.max_num_batched_tokens);
  r.refusal = refusal_text(rules, r);

  if (!opt.enforce_eager) {
    const uint64_t batch = std::min(rules.cuda_graph_max_batch_cap, rules.cuda_graph_max_batch_per_seq * lim.max_num_seqs);
    r.cuda_graph_bytes = forward_peak_bytes(model, opt.checkpoint, batch, dtype, tp);
  }
  // the context's part before the baseline, and the non-torch growth (which holds the rest of it)
  const uint64_t outside_torch = rules.non_torch_includes_context ? r.non_torch_bytes : context - after_baseline + r.non_torch_bytes;
  r.process_peak_bytes = outside_torch + r.weight_bytes + r.kv_cache_bytes + r.activation_peak_bytes + r.cuda_graph_bytes;
  add_components(r, w, act, gpu, context - after_baseline, rules);
  if (!rules.v1 && tp > 1)
    r.notes.push_back("V0: only rank 0 samples, so its profile peak (used here) is the largest; the KV cache is "
                      "sized by the smallest rank");
  if (opt.kv_cache_dtype != "auto") r.notes.push_back("fp8 KV cache: one byte per element");
  return r;
}

Estimate estimate(const ArchModel& model, const VllmOptions& options, const GpuProfile& gpu) {
  const VllmResult r = simulate(model, options, gpu);
  Estimate e;
  e.engine = "vllm";
  e.engine_version = "vLLM " + r.version;
  e.peak_phase = "serving: weights, KV cache and the activation pool the profile run sized";
  e.components = r.components;
  e.weight_bytes = r.weight_bytes;
  e.framework_peak_bytes = r.weight_bytes + r.kv_cache_bytes + r.activation_peak_bytes;
  e.reserved_peak_bytes = e.framework_peak_bytes + r.cuda_graph_bytes;
  e.process_peak_bytes = r.process_peak_bytes;
  e.gpu = gpu;
  e.layers = model.facts.n_layers;
  e.architecture = model.facts.architecture;
  e.notes = r.notes;
  if (!r.refusal.empty()) {
    // The total for which budget - (weights + activations + non-torch) holds one max_model_len request, plus what
    // the process holds outside that budget.
    const double util = options.gpu_memory_utilization;
    const double need = static_cast<double>(r.weight_bytes + r.activation_peak_bytes + r.non_torch_bytes +
                                            std::max<uint64_t>(r.kv_needed_bytes, r.kv_bytes_per_block)) / util;
    const uint64_t outside = r.process_peak_bytes - std::min(r.process_peak_bytes, r.weight_bytes + r.kv_cache_bytes +
                                                             r.activation_peak_bytes + r.non_torch_bytes);
    e.process_peak_bytes = std::max(r.process_peak_bytes, static_cast<uint64_t>(std::ceil(need)) + outside);
    e.notes.push_back("vLLM would not start: " + r.refusal);
    e.notes.push_back("process peak: the GPU memory it would need to start (" + format_bytes(e.process_peak_bytes) + ")");
  }
  ServingFigures s;
  s.total_memory_bytes = r.total_memory_bytes;
  s.total_memory_basis = r.total_memory_basis;
  s.gpu_memory_utilization = options.gpu_memory_utilization;
  s.requested_memory_bytes = r.requested_memory_bytes;
  s.activation_peak_bytes = r.activation_peak_bytes;
  s.non_torch_bytes = r.non_torch_bytes;
  s.cuda_graph_bytes = r.cuda_graph_bytes;
  s.available_kv_bytes = r.available_kv_bytes;
  s.kv_cache_bytes = r.kv_cache_bytes;
  s.kv_blocks = r.kv_blocks;
  s.block_size = r.block_size;
  s.kv_cache_tokens = r.kv_cache_tokens;
  s.max_concurrency = r.max_concurrency;
  s.kv_needed_bytes = r.kv_needed_bytes;
  s.estimated_max_model_len = r.estimated_max_model_len;
  s.max_model_len = r.max_model_len;
  s.max_num_seqs = r.max_num_seqs;
  s.max_num_batched_tokens = r.max_num_batched_tokens;
  s.tensor_parallel_size = options.tensor_parallel_size;
  s.refusal = r.refusal;
  e.serving = s;
  return e;
}

std::optional<double> min_gpu_memory_utilization(const ArchModel& model, const VllmOptions& options,
                                                 const GpuProfile& gpu, uint64_t target_concurrency) {
  VllmOptions o = options;
  const uint64_t len = simulate(model, options, gpu).max_model_len;
  auto enough = [&](double util) {
    o.gpu_memory_utilization = util;
    const VllmResult r = simulate(model, o, gpu);
    return r.refusal.empty() && r.kv_cache_tokens >= len * target_concurrency;
  };
  if (!enough(1.0)) return std::nullopt;
  double lo = 0.0, hi = 1.0;
  while (hi - lo > 0.0005) {
    const double mid = (lo + hi) / 2;
    (enough(mid) ? hi : lo) = mid;
  }
  const double rounded = std::ceil(hi * 1000) / 1000;
  return std::min(1.0, rounded);
}

uint64_t kv_cache_memory_for(const ArchModel& model, const VllmOptions& options, const GpuProfile& gpu,
                             uint64_t target_concurrency) {
  // Whole blocks for every request (V1 allocates per group; one block of every group per block index).
  const VllmResult r = simulate(model, options, gpu);
  const uint64_t per_request_blocks = (r.kv_needed_bytes + r.kv_bytes_per_block - 1) / std::max<uint64_t>(r.kv_bytes_per_block, 1);
  return per_request_blocks * target_concurrency * r.kv_bytes_per_block;
}

VllmFit fit(const ArchModel& model, const VllmOptions& options, const GpuProfile& gpu, uint64_t target_len,
            uint64_t target_concurrency) {
  VllmFit out;
  const VllmResult base = simulate(model, options, gpu);
  out.concurrency_at_len = base.max_concurrency;
  const VersionRules& rules = rules_for(base.version);
  const uint64_t limit = options.checkpoint.derived_max_model_len ? options.checkpoint.derived_max_model_len
                                                                  : model.facts.max_positions;
  auto starts = [&](uint64_t len) {
    VllmOptions o = options;
    o.max_model_len = len;
    return simulate(model, o, gpu).refusal.empty();
  };
  // V0's default batch size follows max_model_len up to 32K and drops to the chunked-prefill size above it, so
  // the start condition is monotone only within each side of 32K.
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  if (!rules.v1 && limit > 32768) ranges = {{1, 32768}, {32769, limit}};
  else ranges = {{1, limit}};
  for (auto [lo, hi] : ranges) {
    if (!starts(lo)) continue;
    uint64_t best = lo;
    while (lo <= hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      if (starts(mid)) { best = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    out.largest_max_model_len = std::max(out.largest_max_model_len, best);
  }
  if (target_len && target_concurrency) {
    VllmOptions o = options;
    o.max_model_len = target_len;
    out.min_gpu_memory_utilization = min_gpu_memory_utilization(model, o, gpu, target_concurrency);
    out.kv_cache_memory_bytes = kv_cache_memory_for(model, o, gpu, target_concurrency);
  }
  return out;
}

}  // namespace llmem::vllm
