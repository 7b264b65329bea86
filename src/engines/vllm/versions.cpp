// The pinned vLLM versions and what differs between them. Each field's comment in vllm_internal.hpp names the file
// it was read in; the commits are on github.com/vllm-project/vllm.
#include <algorithm>
#include <cctype>
#include <sstream>

#include "llmem/error.hpp"
#include "llmem/field_error.hpp"
#include "vllm_internal.hpp"

namespace llmem::vllm {
namespace detail {
namespace {

// vllm/model_executor/models/registry.py at each commit, restricted to the architectures llmem has families for.
const std::vector<std::string> kArch064 = {
    "BloomForCausalLM", "DeepseekV2ForCausalLM", "FalconForCausalLM", "GPT2LMHeadModel", "GPTNeoXForCausalLM",
    "Gemma2ForCausalLM", "GemmaForCausalLM", "LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM",
    "OPTForCausalLM", "Phi3ForCausalLM", "PhiForCausalLM", "QWenLMHeadModel", "Qwen2ForCausalLM"};

std::vector<std::string> with(std::vector<std::string> base, std::initializer_list<const char*> more) {
  for (const char* a : more) base.emplace_back(a);
  return base;
}

const std::vector<VersionRules>& all_rules() {
  static const std::vector<VersionRules> rules = [] {
    std::vector<VersionRules> r;
    VersionRules v011;
    v011.name = "0.11.0";
    v011.commit = "5aa5811a1";
    v011.v1 = true;
    v011.nccl_before_baseline = true;
    v011.sampler_bytes_per_logit = 38;  // measured in public logs, see vllm_internal.hpp
    v011.hybrid_kv_groups = true;
    v011.concurrency_whole_blocks = true;
    v011.mla_block_size = 64;
    v011.cuda_graph_max_batch_cap = 512;
    v011.cuda_graph_max_batch_per_seq = 2;
    v011.architectures = with(kArch064, {"DeepseekV3ForCausalLM", "Gemma3ForCausalLM", "GptOssForCausalLM",
                                         "Olmo2ForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM"});
    r.push_back(v011);

    VersionRules v073;
    v073.name = "0.7.3";
    v073.commit = "bfbc0b32c";
    v073.v0_chunked_prefill_tokens = 2048;
    v073.sampler_bytes_per_logit = 40;
    v073.cuda_graph_max_batch_cap = 256;
    v073.architectures = with(kArch064, {"DeepseekV3ForCausalLM"});
    r.push_back(v073);

    VersionRules v064;
    v064.name = "0.6.4";
    v064.commit = "4f168f69a";
    v064.non_torch_includes_context = true;
    v064.v0_chunked_prefill_tokens = 512;
    v064.sampler_bytes_per_logit = 40;
    v064.cuda_graph_max_batch_cap = 256;
    v064.architectures = kArch064;
    r.push_back(v064);
    return r;
  }();
  return rules;
}

// "v0.7.3.dev233+gad5a35c2" -> {0, 7, 3}; missing parts are 0.
std::vector<int> parse_version(const std::string& text) {
  std::vector<int> parts;
  size_t i = (!text.empty() && (text[0] == 'v' || text[0] == 'V')) ? 1 : 0;
  while (i < text.size() && parts.size() < 3) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) break;
    int n = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) n = n * 10 + (text[i++] - '0');
    parts.push_back(n);
    if (i < text.size() && text[i] == '.') ++i; else break;
  }
  while (parts.size() < 3) parts.push_back(0);
  return parts;
}

}  // namespace

const VersionRules& rules_for(const std::string& pinned_version) {
  for (const auto& r : all_rules())
    if (r.name == pinned_version) return r;
  throw Error(ErrorKind::kUsage, "", "vLLM version '" + pinned_version + "' is not pinned");
}

std::string nearest_pin(const std::string& version, const std::string& engine, std::string& note) {
  note.clear();
  if (engine == "V1") {
    note = version == "0.11.0" ? "" : "V1 log (" + (version.empty() ? std::string("version not stated") : version) +
                                          ") computed with the 0.11.0 rules";
    return "0.11.0";
  }
  const auto v = parse_version(version);
  const bool before_065 = version.empty() ? false : (v[0] == 0 && (v[1] < 6 || (v[1] == 6 && v[2] < 5)));
  std::string pin = before_065 ? "0.6.4" : "0.7.3";
  if (version.empty()) pin = "0.7.3";
  if (version != pin)
    note = "V0 log (" + (version.empty() ? std::string("version not stated") : version) + ") computed with the " +
           pin + " rules";
  // 0.6.5-0.6.6 (vllm/utils.py memory_profiling from PR #10511 until PR #11809, released in 0.7.0) counted torch
  // memory as allocated_bytes.all.current, so the caching allocator's reserved but unallocated segments after the
  // profile's empty_cache() are in the printed non-torch figure; 0.7.3 counts memory_reserved(). Not modelled.
  if (!version.empty() && v[0] == 0 && v[1] == 6 && v[2] >= 5)
    note += "; its non-torch figure also holds torch's reserved but unallocated memory (memory_profiling before "
            "PR #11809), which llmem does not model";
  return pin;
}

}  // namespace detail

const std::vector<std::string>& pinned_versions() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& r : detail::all_rules()) n.push_back(r.name);
    return n;
  }();
  return names;
}

const std::string& default_version() { return pinned_versions().front(); }

std::string resolve_version(const std::string& version) {
  if (version.empty()) return default_version();
  std::string v = version;
  if (v[0] == 'v' || v[0] == 'V') v.erase(0, 1);
  for (const auto& pin : pinned_versions()) {
    const std::string minor = pin.substr(0, pin.rfind('.'));  // "0.11"
    if (v == pin || v == minor) return pin;
  }
  std::ostringstream pins;
  for (size_t i = 0; i < pinned_versions().size(); ++i) pins << (i ? ", " : "") << pinned_versions()[i];
  throw usage_error("vllm_version", "{field} " + version + " is not modelled; the pinned versions are " + pins.str() +
                                        " (other versions' start-up arithmetic differs and has not been read)");
}

}  // namespace llmem::vllm
