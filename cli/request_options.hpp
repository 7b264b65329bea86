// The estimate options shared by `estimate`, `validate`, `fit` and `measure --estimate`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "llmem/estimate.hpp"
#include "llmem/llamacpp.hpp"
#include "llmem/source.hpp"
#include "source_flags.hpp"

namespace llmem::cli {

struct EstimateOptions {
  std::string dtype = "fp16";
  int64_t batch = 1;
  int64_t prompt = 6;       // the study's "Hello, world!" prompt
  int64_t new_tokens = 14;  // the study's max_length 20
  bool no_cache = false;
  std::string attn;
  std::string train;
  std::string precision = "bf16";
  std::string optimizer = "adamw";
  int64_t seq = 512;
  bool grad_ckpt = false;
  int64_t lora_r = 16;
  std::string lora_targets = "q_proj,k_proj,v_proj,o_proj";
  std::string gpu;
  bool batch_given = false;  // --batch means n_batch (default 2048) for llama.cpp, the batch size for transformers
  // llama.cpp
  std::string quant;
  int64_t ctx = 4096;
  int64_t ubatch = 512;
  int64_t ngl = -1;
  std::string cache_type_k = "f16";
  std::string cache_type_v = "f16";
  std::string flash_attn = "auto";
  int64_t parallel = 1;
  bool tensors = false;
};

void add_estimate_options(CLI::App* cmd, EstimateOptions& o);
Workload workload_from(const EstimateOptions& o);
nlohmann::json estimate_json(const Estimate& e, const ModelSource& src, const Workload& w);

// One whole estimate request as `llmem estimate` takes it: SOURCE, the engine, the workload and source options.
// `measure --estimate "ARGS"` parses the same request from one string, so both accept exactly the same options.
struct EstimateRequest {
  std::string source;
  std::string engine = "transformers";
  EstimateOptions opts;
  SourceCliOptions src;
};
void add_estimate_request(CLI::App* cmd, EstimateRequest& r);

struct EstimateOutcome {
  Estimate estimate;
  Workload workload;
  ModelSource source;
  nlohmann::json json;        // estimate_json
  std::string description;    // "generate 14 tokens from a 6-token prompt, batch 1, fp16"
  std::optional<llamacpp::Model> llama_model;  // --engine llamacpp: the model as llama.cpp loads it
};
// Validates the request, opens the source and runs the engine. `gpu` replaces the --gpu option's card (measure
// passes the GPU it samples); nullptr keeps --gpu or the reference GPU.
EstimateOutcome run_estimate(const EstimateRequest& r, const GpuProfile* gpu = nullptr);
std::string describe_workload(const Workload& w);
llamacpp::RunOptions llamacpp_run_from(const EstimateOptions& o);

}  // namespace llmem::cli
