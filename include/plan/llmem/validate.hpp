// Validation: every measured run of bench/data (JSON Lines from bench/gpu/measure_transformers.py and
// bench/gpu/llamacpp/measure_llamacpp.py) beside llmem's estimate of the same scenario, through the estimate seam,
// and the error summary per workload group; and every public vLLM start-up log (bench/data/vllm_public_logs*.jsonl)
// figure by figure, with the error summary per figure.
//
// Nothing of a measurement feeds the estimate except the scenario's description (model, workload, config
// overrides) and the GPU's name.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace llmem {

struct ValidationRow {
  std::string label;                      // "phi-2 generate fp16 b1 p6 n14"
  std::string group;                      // "inference", "training" or "llama.cpp"
  // transformers: torch's max_memory_allocated / max_memory_reserved; llama.cpp: its GPU buffers as it logs them
  double estimated_framework_bytes = 0, measured_framework_bytes = 0;
  double estimated_reserved_bytes = 0, measured_reserved_bytes = 0;
  double estimated_process_bytes = 0, measured_process_bytes = 0;  // NVML process peak
  bool process_measured = false;
};

// |relative error| over a group's cases.
struct ErrorSummary {
  size_t cases = 0;
  double median_abs_error = 0;
  double max_abs_error = 0;
};

struct ValidationGroup {
  std::string name;                       // "inference", "training", "llama.cpp"
  ErrorSummary framework, reserved, process;
};

// One figure a published vLLM start-up log prints, beside llmem's.
struct ServingLogRow {
  std::string id;                         // the log's id in the file
  std::string version_used;               // the pinned vLLM version applied
  std::string item;                       // "weights", "available_kv", ...
  std::string unit;                       // "GiB", "blocks", "tokens", "x"
  double logged = 0, estimated = 0;
};
struct ServingItemSummary {
  std::string item;
  ErrorSummary error;
};

struct ValidationReport {
  std::vector<ValidationRow> rows;        // in file and line order
  std::vector<ValidationGroup> groups;    // inference, training, llama.cpp, each present (cases 0 when none)
  size_t skipped_failed_runs = 0;         // runs that failed (e.g. out of memory), or that cannot be compared
  std::vector<ServingLogRow> serving_rows;          // vLLM start-up logs, in file and line order
  std::vector<ServingItemSummary> serving_summary;  // per figure, in the order figures first appear
  std::vector<std::string> serving_not_compared;    // "id: why" for logs or figures that cannot be compared
  const ValidationGroup& group(const std::string& name) const;
};

// (estimated − measured) / measured; 0 when nothing was measured.
double relative_error(double estimated, double measured);

// Reads every file; `gpu` names the GPU profile of the estimates ("" = the reference GPU; vLLM logs name their own
// GPU, and their models' configs come from the catalog or vllm_public_logs_configs.jsonl beside the file). Throws
// Error(kInvalidInput, file, "line N: ...") for a line that is not JSON or lacks a field, and the seam's errors.
ValidationReport validate_measurements(const std::vector<std::string>& files, const std::string& gpu);

}  // namespace llmem
