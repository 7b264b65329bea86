// Measurements rendered: `llmem measure` (its JSON report, its text report, the memory timeline chart, an estimate
// beside the measurement), `llmem gpus` (the NVML inventory) and `llmem probe` (the CUDA context's cost).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "llmem/chart.hpp"
#include "llmem/cuda_driver.hpp"
#include "llmem/estimate.hpp"
#include "llmem/estimate_report.hpp"
#include "llmem/measure.hpp"
#include "llmem/nvml.hpp"

namespace llmem::report {

// Keys in docs/measure.md; `timeline_files` are the --timeline paths written.
nlohmann::json measure_json(const MeasureResult& result, const std::vector<std::string>& timeline_files);
std::string measure_text(const MeasureResult& result);
// Per GPU: device used and the command's processes over time, the baseline, the peak.
chart::Chart timeline_chart(const MeasureResult& result);

// The estimate's JSON with the measured process peak and the error beside it.
nlohmann::json comparison_json(const EstimateResult& estimate, const MeasuredComparison& comparison);
std::string comparison_text(const EstimateResult& estimate, const MeasuredComparison& comparison);

// `nvml` gives NVML's own words for a process list it could not read.
nlohmann::json inventory_json(const nvml::Inventory& inventory, nvml::Library& nvml);
std::string inventory_text(const nvml::Inventory& inventory, nvml::Library& nvml);

nlohmann::json probe_json(const cuda::ProbeResult& result);
std::string probe_text(const cuda::ProbeResult& result);

}  // namespace llmem::report
