// The llama.cpp engine behind the seam: resolves a request's llama.cpp fields with llama.cpp's own option rules
// (llamacpp_options.hpp), loads a GGUF or predicts the file a config would become, and says what `fit` tries (the
// quantisation schemes) and searches (-ngl, then the context with every layer on the GPU).
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include <fmt/core.h>

#include "adapters.hpp"
#include "llmem/error.hpp"
#include "llmem/llamacpp.hpp"
#include "llmem/llamacpp_mmproj.hpp"
#include "llmem/llamacpp_options.hpp"

namespace llmem::adapters {
namespace {

// llama.cpp sizes its KV cache in 256-cell steps (llama-context.cpp pads n_ctx to 256), so fit searches in them.
constexpr uint64_t kContextStepCells = 256;

struct LlamaCppModel final : EngineModel {
  llamacpp::Model model;
  std::optional<llamacpp::MmprojFile> mmproj;  // --mmproj: the projector's file, predicted from config.json
};

const llamacpp::Model& model_of(const EngineModel& model) { return static_cast<const LlamaCppModel&>(model).model; }

// The converter's --outtype for the mmproj: f32, f16, bf16 or q8_0 as named (convert_hf_to_gguf.py's choices less
// the ternary tq1_0/tq2_0, which no projector tensor takes), or its default "auto" (""): ModelBase.__init__ looks
// at the first tensor of two or more dimensions, bf16 -> bf16, f16 -> f16, else f16; the config's dtype stands for
// the checkpoint's (as the text model's prediction does).
std::string mmproj_outtype(const std::string& asked, const ArchModel* arch) {
  if (asked.empty()) return arch && arch->facts.config_dtype == DType::BF16 ? "bf16" : "f16";
  return asked;
}

// Predicts the projector's file for a vision-language config (mmproj.cpp), or says why it cannot.
llamacpp::MmprojFile predict_projector(const SourceFacts& facts, const Workload& w) {
  const ModelSource& src = facts.source;
  if (!src.config)
    throw FieldError(ErrorKind::kUsage, src.display_name(), "mmproj",
                     "has no config.json: {field} predicts the projector's file from the vision-language model's "
                     "config (give its directory, config.json or org/name)");
  const HfConfig& config = *src.config;
  if (!config.has("vision_config"))
    throw FieldError(ErrorKind::kUsage, src.display_name(), "mmproj",
                     "has no vision tower (no vision_config in its config.json): {field} applies to vision-language "
                     "models");
  return llamacpp::predict_mmproj(config, mmproj_outtype(w.mmproj_type, facts.arch.get()));
}

// The projector's buffers as components of the estimate: on the GPU (clip's CUDA backend: weights, compute, and
// the image input in the CPU backend's buffer, ggml-backend.cpp: graph inputs are on the last backend, the CPU) or,
// with --no-mmproj-offload, in host memory (clip's CPU backend only).
void add_projector(Estimate& e, const llamacpp::MmprojFile& f, const Workload& w) {
  const bool cpu = !w.mmproj_offload;
  MmprojFigures m;
  m.projector = f.hp.projector;
  m.outtype = f.outtype;
  m.n_tensors = f.tensors.size();
  m.file_tensor_bytes = f.tensor_data_bytes();
  for (const auto& t : f.tensors) m.params += t.numel();
  m.flash_attn = w.flash_attn == FlashAttention::kAuto ? llamacpp::clip_flash_attn_auto(f.hp, cpu) : w.flash_attn == FlashAttention::kOn;
  m.weights_bytes = llamacpp::clip_weights_buffer_bytes(f, cpu);
  m.compute_bytes = llamacpp::clip_compute_buffer_bytes(f.hp, m.flash_attn, cpu);
  const uint64_t side = f.hp.warmup_image_size();
  m.warmup_image_size = side;
  if (!cpu) m.host_compute_bytes = llamacpp::clip_host_input_bytes(f.hp);
  m.device = cpu ? "host" : "gpu";
  const std::string what = fmt::format("{} projector, {} tensors {}", m.projector, m.n_tensors, m.outtype);
  const std::string image = fmt::format("the warm-up image ({} x {} px), flash attention {}", side, side, m.flash_attn ? "on" : "off");
  if (cpu) {
    e.components.push_back({"mmproj weights", m.weights_bytes, what + ", clip's CPU buffer (--no-mmproj-offload)", "host"});
    e.components.push_back({"mmproj compute", m.compute_bytes, "clip's CPU compute buffer: " + image, "host"});
    e.host_bytes += m.weights_bytes + m.compute_bytes;
  } else {
    // the GPU's components first, then the host's
    auto host_at = std::find_if(e.components.begin(), e.components.end(), [](const MemoryComponent& c) { return c.device == "host"; });
    host_at = e.components.insert(host_at, {"mmproj weights", m.weights_bytes, what + ", clip's CUDA buffer", "gpu"});
    e.components.insert(host_at + 1, {"mmproj compute", m.compute_bytes, "clip's CUDA compute buffer: " + image, "gpu"});
    e.components.push_back({"mmproj input", m.host_compute_bytes, "clip's CPU compute buffer: the image, f32", "host"});
    const uint64_t gpu = m.weights_bytes + m.compute_bytes;
    e.framework_peak_bytes += gpu;
    e.reserved_peak_bytes += gpu;
    e.process_peak_bytes += gpu;
    e.host_bytes += m.host_compute_bytes;
    // clip runs on a CUDA backend of its own (clip_init: ggml_backend_init_by_type), with its own cuBLAS handle and
    // memory pool; those are not counted
    e.notes.push_back("the projector's own CUDA backend (its cuBLAS workspace and memory pool) is not counted");
    // --gpus N: clip takes the first GPU device (ggml_backend_init_by_type(GPU))
    if (!e.per_gpu.empty()) {
      GpuEstimate& g0 = e.per_gpu.front();
      g0.framework_peak_bytes += gpu;
      g0.reserved_peak_bytes += gpu;
      g0.process_peak_bytes += gpu;
      g0.components.push_back({"mmproj weights", m.weights_bytes, what, "gpu"});
      g0.components.push_back({"mmproj compute", m.compute_bytes, image, "gpu"});
      g0.fits = g0.process_peak_bytes <= e.gpu.budget_bytes();
    }
  }
  e.mmproj = m;
}

llamacpp::FlashAttn engine_flash_attn(FlashAttention f) {
  return f == FlashAttention::kOn ? llamacpp::FlashAttn::kOn : f == FlashAttention::kOff ? llamacpp::FlashAttn::kOff
                                                                                          : llamacpp::FlashAttn::kAuto;
}

FlashAttention workload_flash_attn(llamacpp::FlashAttn f) {
  return f == llamacpp::FlashAttn::kOn ? FlashAttention::kOn : f == llamacpp::FlashAttn::kOff ? FlashAttention::kOff
                                                                                              : FlashAttention::kAuto;
}

llamacpp::RunOptions run_options(const Workload& w) {
  llamacpp::RunOptions run;
  run.n_ctx = w.n_ctx;
  run.n_batch = w.n_batch;
  run.n_ubatch = w.n_ubatch;
  run.n_gpu_layers = w.n_gpu_layers;
  run.type_k = w.cache_type_k;
  run.type_v = w.cache_type_v;
  run.flash_attn = engine_flash_attn(w.flash_attn);
  run.n_parallel = w.n_parallel;
  run.tensor_overrides = w.tensor_overrides;
  run.cpu_moe_layers = w.cpu_moe_layers;
  run.mmap = w.mmap;
  run.mlock = w.mlock;
  run.n_gpus = w.gpus;
  run.tensor_split = w.tensor_split;
  run.split_none = w.split_none;
  run.main_gpu = w.main_gpu;
  return run;
}

DType cache_type(const std::string& name, const char* field) {
  if (auto type = llamacpp::cache_type_from_name(name)) return *type;
  throw usage_error(field, "{field} '" + name + "' is not a llama.cpp cache type (" + llamacpp::cache_type_names() + ")");
}

class LlamaCppEngine final : public Engine {
 public:
  std::string name() const override { return "llamacpp"; }
  std::vector<std::string> aliases() const override { return {"llama.cpp", "llama-cpp"}; }
  std::string version() const override { return std::string("llama.cpp ") + llamacpp::kPinnedCommit + " (CUDA)"; }
  std::string source_needs() const override {
    return "a GGUF file, or a config.json of a known architecture and a quantisation scheme to predict its GGUF";
  }

  std::vector<WeightScheme> weight_schemes() const override {
    std::vector<WeightScheme> out;
    for (const auto& q : llamacpp::quant_schemes()) out.push_back({q.name, std::string(dtype_name(q.base)), q.description, q.needs_imatrix});
    return out;
  }

  bool reads(const std::string& field, const WorkloadSpec&) const override {
    static const std::set<std::string> fields = {"quant",        "batch",        "n_ctx",      "n_ubatch",   "n_gpu_layers",
                                                 "cache_type_k", "cache_type_v", "flash_attn", "n_parallel", "list_tensors",
                                                 "n_cpu_moe",    "cpu_moe",      "override_tensor", "no_mmap",
                                                 "mlock",        "ram",          "mmproj",     "mmproj_type",
                                                 "no_mmproj_offload",
                                                 "n_gpus",       "tensor_split", "split_mode", "main_gpu"};
    return fields.count(field) != 0;
  }

  Workload resolve(const WorkloadSpec& spec) const override {
    Workload w;
    w.quant = spec.quant.empty() ? "" : llamacpp::find_scheme(spec.quant).name;
    w.n_ctx = positive_count(spec.n_ctx, "n_ctx");
    w.n_batch = spec.batch ? positive_count(*spec.batch, "batch") : llamacpp::RunOptions{}.n_batch;
    w.n_ubatch = llamacpp::effective_n_ubatch(w.n_batch, positive_count(spec.n_ubatch, "n_ubatch"));
    if (spec.n_gpu_layers < -1)
      throw usage_error("n_gpu_layers", "{field} must be -1 (all) or a layer count, got " + std::to_string(spec.n_gpu_layers));
    w.n_gpu_layers = spec.n_gpu_layers;
    w.n_parallel = positive_count(spec.n_parallel, "n_parallel");
    w.cache_type_k = cache_type(spec.cache_type_k, "cache_type_k");
    w.cache_type_v = cache_type(spec.cache_type_v, "cache_type_v");
    auto flash = llamacpp::flash_attn_from_name(spec.flash_attn);
    if (!flash) throw usage_error("flash_attn", "{field} must be on, off or auto, got '" + spec.flash_attn + "'");
    w.flash_attn = workload_flash_attn(*flash);
    // common/arg.cpp: --override-tensor takes PATTERN=BUFFER items (split at the first '='), --cpu-moe and
    // --n-cpu-moe N add the experts' pattern for every layer or the first N
    for (const std::string& item : spec.override_tensor) {
      const size_t eq = item.find('=');
      if (eq == std::string::npos || eq == 0)
        throw usage_error("override_tensor", "{field} takes PATTERN=BUFFER (e.g. exps=CPU), got '" + item + "'");
      w.tensor_overrides.emplace_back(item.substr(0, eq), item.substr(eq + 1));
      llamacpp::check_tensor_override(w.tensor_overrides.back().first, w.tensor_overrides.back().second);
    }
    if (spec.n_cpu_moe < 0) throw usage_error("n_cpu_moe", "{field} must be 0 or more layers, got " + std::to_string(spec.n_cpu_moe));
    w.cpu_moe_layers = spec.cpu_moe ? UINT64_MAX : static_cast<uint64_t>(spec.n_cpu_moe);
    // --mlock is llama.cpp's load mode mlock (common/arg.cpp): the file is read, not mapped (llama-model-loader's
    // use_mmap covers mmap and mmap+mlock only), and the host buffers of the weights are mlock'ed
    w.mmap = !spec.no_mmap && !spec.mlock;
    w.mlock = spec.mlock;
    if (!spec.ram.empty()) w.host_ram_bytes = parse_size(spec.ram, "ram", false);
    // several GPUs (common/arg.cpp --split-mode, --tensor-split, --main-gpu)
    if (spec.n_gpus < 1 || spec.n_gpus > 16)
      throw usage_error("n_gpus", fmt::format("{{field}} must be 1 to 16 (llama.cpp's GGML_CUDA_MAX_DEVICES), got {}", spec.n_gpus));
    w.gpus = static_cast<uint64_t>(spec.n_gpus);
    if (spec.split_mode == "row")
      throw usage_error("split_mode", "{field} row (matrices split across GPUs by rows) is not modelled; layer and none are");
    if (spec.split_mode != "layer" && spec.split_mode != "none")
      throw usage_error("split_mode", "{field} must be layer, none or row, got '" + spec.split_mode + "'");
    w.split_none = spec.split_mode == "none";
    if (spec.main_gpu < 0 || static_cast<uint64_t>(spec.main_gpu) >= w.gpus)
      throw usage_error("main_gpu", fmt::format("{{field}} {} is not one of the {} GPUs (0-{})", spec.main_gpu, w.gpus, w.gpus - 1));
    w.main_gpu = static_cast<uint64_t>(spec.main_gpu);
    // --mmproj (llama-server's --mmproj FILE, the file predicted): --mmproj-type and --no-mmproj-offload qualify it
    if (!spec.mmproj && !spec.mmproj_type.empty()) throw usage_error("mmproj_type", "{field} applies with {field:mmproj}");
    if (!spec.mmproj && spec.no_mmproj_offload) throw usage_error("no_mmproj_offload", "{field} applies with {field:mmproj}");
    if (!spec.mmproj_type.empty() && spec.mmproj_type != "f16" && spec.mmproj_type != "f32" && spec.mmproj_type != "bf16" &&
        spec.mmproj_type != "q8_0")
      throw usage_error("mmproj_type", "{field} must be f16, f32, bf16 or q8_0 (the converter's --outtype), got '" + spec.mmproj_type + "'");
    w.mmproj = spec.mmproj;
    w.mmproj_type = spec.mmproj_type;
    w.mmproj_offload = !spec.no_mmproj_offload;
    if (!spec.tensor_split.empty()) {
      std::stringstream list(spec.tensor_split);
      double sum = 0;
      for (std::string item; std::getline(list, item, ',');) {
        char* end = nullptr;
        const double v = std::strtod(item.c_str(), &end);
        if (item.empty() || end != item.c_str() + item.size() || !(v >= 0) || v > 1e9)
          throw usage_error("tensor_split", "{field} takes non-negative shares separated by commas (e.g. 3,1), got '" + spec.tensor_split + "'");
        w.tensor_split.push_back(v);
        sum += v;
      }
      if (w.tensor_split.size() > w.gpus)
        throw usage_error("tensor_split", fmt::format("{{field}} has {} shares for {} GPUs ({{field:n_gpus}})", w.tensor_split.size(), w.gpus));
      if (sum <= 0) throw usage_error("tensor_split", "{field} gives every GPU a share of 0");
    }
    return w;
  }

  static bool stored_in_mxfp4(const SourceFacts& facts) {
    return facts.arch && facts.arch->quant && facts.arch->quant->method == QuantMethod::kMxfp4;
  }

  std::unique_ptr<EngineModel> prepare(const SourceFacts& facts, const Workload& w) const override {
    auto out = std::make_unique<LlamaCppModel>();
    const ModelSource& src = facts.source;
    if (w.mmproj) out->mmproj = predict_projector(facts, w);
    // an mmproj file (convert_hf_to_gguf.py --mmproj) is no text model: clip loads it beside one
    if (src.gguf && !src.config && src.gguf->architecture() == "clip")
      throw Error(ErrorKind::kUsage, src.display_name(),
                  "is a multimodal projector (mmproj, general.architecture clip), which llama.cpp loads beside a text "
                  "model: estimate the vision-language model with --mmproj, or count this file with llmem params");
    if (src.gguf) {
      out->model = llamacpp::from_gguf(*src.gguf);
      if (!w.quant.empty() && w.quant != out->model.scheme)
        throw FieldError(ErrorKind::kUsage, src.spec, "quant",
                         "is a GGUF file already quantised (" + out->model.scheme +
                             "); {field} predicts the file for config and safetensors sources");
      return out;
    }
    // a checkpoint stored in MXFP4 (gpt-oss) converts to MXFP4 experts; MXFP4_MOE is its scheme unless one is named
    const std::string quant = w.quant.empty() && stored_in_mxfp4(facts) ? "MXFP4_MOE" : w.quant;
    if (quant.empty())
      throw usage_error("quant", "llama.cpp needs {field} SCHEME for a source that is not a .gguf file (e.g. {field} Q4_K_M)");
    if (!facts.arch) throw Error(ErrorKind::kUnsupported, src.spec, "predicting a GGUF needs a config.json of a known architecture");
    // the converter's GGUF, derived once per source (a fit prepares it once per scheme) and quantised per scheme
    static adapters::PerModel<llamacpp::Model> converted;
    out->model = *converted.get(facts.arch, [&] { return llamacpp::from_config(*facts.arch, src.display_name()); });
    llamacpp::quantize(out->model, llamacpp::find_scheme(quant));
    return out;
  }

  Estimate estimate(const EngineModel& model, const Workload& w, const GpuProfile& gpu) const override {
    const llamacpp::Model& m = model_of(model);
    llamacpp::RunOptions run = run_options(w);
    if (w.gpu_expert_layers >= 0)
      run.cpu_moe_layers = m.hp.n_layer - std::min<uint64_t>(static_cast<uint64_t>(w.gpu_expert_layers), m.hp.n_layer);
    Estimate e = llamacpp::estimate(m, run, gpu);
    if (const auto& mm = static_cast<const LlamaCppModel&>(model).mmproj) add_projector(e, *mm, w);
    e.host_ram_bytes = w.host_ram_bytes;
    e.architecture = m.hp.arch;
    e.layers = m.hp.n_layer;
    e.weights_scheme = m.scheme;
    e.weights_predicted = m.predicted;
    if (m.predicted && llamacpp::find_scheme(m.scheme).needs_imatrix)
      e.notes.push_back(m.scheme + " needs an importance matrix: llama-quantize makes it only with --imatrix FILE "
                                   "(from llama-imatrix); the types predicted are the ones it then chooses");
    return e;
  }

  std::vector<WeightTensor> weight_tensors(const EngineModel& model) const override {
    std::vector<WeightTensor> out;
    for (const auto& t : model_of(model).tensors) out.push_back({t.name, std::string(dtype_name(t.type)), t.ne, t.bytes()});
    return out;
  }

  // A GGUF has its own types: one option. A config: each scheme (or the one asked for), most bits first.
  std::vector<FitCandidate> fit_candidates(const SourceFacts& facts, const WorkloadSpec& base) const override {
    WorkloadSpec spec = base;
    spec.n_gpu_layers = -1;  // fit's base: every layer on the GPU
    if (facts.source.gguf) {
      spec.quant.clear();
      return {{"", resolve(spec)}};
    }
    std::vector<std::string> schemes = llamacpp::fit_schemes();
    // llama-quantize refuses to requantize MXFP4 experts: such a checkpoint has its own scheme and the float ones
    if (stored_in_mxfp4(facts)) schemes = {"MXFP4_MOE", "BF16"};
    if (!base.quant.empty()) schemes = {llamacpp::find_scheme(base.quant).name};
    std::vector<FitCandidate> out;
    for (const auto& scheme : schemes) {
      spec.quant = scheme;
      out.push_back({scheme, resolve(spec)});
    }
    return out;
  }

  std::vector<FitCandidate> ranking_candidates(const SourceFacts& facts, const WorkloadSpec& base) const override {
    return fit_candidates(facts, base);
  }

  std::vector<Knob> fit_knobs() const override { return {Knob::kGpuLayers, Knob::kGpuExpertLayers, Knob::kContext}; }

  KnobRange knob_range(const EngineModel& model, const Workload& w, Knob knob) const override {
    const llamacpp::Hparams& hp = model_of(model).hp;
    KnobRange r;
    if (knob == Knob::kGpuLayers) {
      // counts 1 .. n_layer + 2 stand for -ngl 0 .. n_layer + 1 (the output layer counts as one)
      const uint64_t all = hp.n_layer + 2;
      r.max_count = all;
      r.base_count = w.n_gpu_layers < 0 ? all : std::min<uint64_t>(static_cast<uint64_t>(w.n_gpu_layers) + 1, all);
      return r;
    }
    if (knob == Knob::kGpuExpertLayers) {
      // counts 1 .. n_layer + 1 stand for --n-cpu-moe n_layer .. 0, for a model with routed experts
      r.applies = hp.n_expert > 1;
      r.max_count = hp.n_layer + 1;
      r.base_count = hp.n_layer + 1 - std::min<uint64_t>(w.cpu_moe_layers, hp.n_layer);
      return r;
    }
    // context: up to the training context (rounded down to whole steps, at least one), when the file says
    r.unit = kContextStepCells;
    r.max_count = hp.n_ctx_train ? std::max<uint64_t>(1, hp.n_ctx_train / kContextStepCells) : 0;
    r.base_count = w.n_ctx % kContextStepCells == 0 ? w.n_ctx / kContextStepCells : 0;
    return r;
  }

  Workload with_knob(Workload w, Knob knob, uint64_t count) const override {
    if (knob == Knob::kGpuLayers) w.n_gpu_layers = static_cast<int64_t>(count) - 1;
    else if (knob == Knob::kGpuExpertLayers) w.gpu_expert_layers = static_cast<int64_t>(count) - 1;
    else w.n_ctx = count * kContextStepCells;
    return w;
  }

  // llama.cpp splits layers over GPUs itself (--split-mode); that placement is not modelled, so fit answers for
  // one GPU.
  bool splits_over_gpus() const override { return false; }
};

}  // namespace

const Engine& llamacpp_engine() {
  static const LlamaCppEngine engine;
  return engine;
}

}  // namespace llmem::adapters
