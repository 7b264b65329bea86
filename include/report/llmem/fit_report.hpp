// Fit results rendered: one JSON document and one text table for a model's options and for the catalog ranking,
// in each engine's shape (transformers: precision × mode with context, batch and GPUs; llama.cpp: per scheme,
// the file, -ngl and context).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "llmem/plan.hpp"

namespace llmem::report {

nlohmann::json fit_json(const FitResult& result, const FitRequest& request);
std::string fit_text(const FitResult& result, const FitRequest& request);

// vLLM's fit on every catalog GPU (no GPU named): per card, what vllm_fit gives for it.
nlohmann::json gpus_fit_json(const std::vector<GpuFit>& fits, const FitRequest& request);
std::string gpus_fit_text(const std::vector<GpuFit>& fits, const FitRequest& request);

nlohmann::json ranking_json(const FitRanking& ranking, const FitRequest& request);
std::string ranking_text(const FitRanking& ranking, const FitRequest& request);

}  // namespace llmem::report
