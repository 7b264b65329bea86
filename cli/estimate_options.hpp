// The estimate options shared by `estimate`, `validate`, `fit` and `measure --estimate`.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "llmem/estimate.hpp"
#include "llmem/source.hpp"

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
};

void add_estimate_options(CLI::App* cmd, EstimateOptions& o);
Workload workload_from(const EstimateOptions& o);
nlohmann::json estimate_json(const Estimate& e, const ModelSource& src, const Workload& w);

}  // namespace llmem::cli
