// The seed study, reproduced: for each model of the embedded catalog, the exact parameter count beside what the
// study published (data/study/measurements.csv: torchinfo's count in billions and GPUtil's "memory used" after
// loading in fp16 and generating, in GiB).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace llmem {

struct StudyMeasurement {
  std::string model;            // "microsoft/phi-2"
  double params_billion = 0;    // as the study's torchinfo printed it
  double memory_gib = 0;        // GPUtil memoryUsed difference / 1024
};

// Parses the study's CSV (model,params_billion,gpu_memory_used_gib). Throws Error naming the line on bad rows.
std::vector<StudyMeasurement> parse_study_csv(const std::string& text, const std::string& origin);
const std::vector<StudyMeasurement>& study_measurements();  // the embedded copy

struct StudyRow {
  std::string model;
  bool in_catalog = false;
  uint64_t params = 0;               // exact, unique (PyTorch)
  uint64_t params_with_tied = 0;     // what torchinfo printed before 1.8.1 (tied copies twice)
  uint64_t fp16_weight_bytes = 0;    // params × 2
  std::optional<StudyMeasurement> measured;
  // The study's memory is below the fp16 weights alone: a whole-device reading that cannot be right.
  bool impossible = false;
  std::string family;
  // llmem's estimate of the study's scenario (fp16, 6-token prompt, 14 new tokens, from_pretrained) on the
  // reference GPU, and what the project measured for the same scenario there (bench/data), when it did.
  uint64_t estimate_framework_bytes = 0;
  uint64_t estimate_process_bytes = 0;
  std::optional<uint64_t> measured_process_bytes;
  std::string measured_gpu;
  // llama.cpp (CUDA, every layer on the GPU) with the file llama-quantize would write at Q4_K_M, n_ctx 4096:
  // the GPU process peak; nullopt where llmem cannot map the architecture to llama.cpp's (llamacpp_note says why).
  std::optional<uint64_t> llamacpp_q4km_process_bytes;
  std::string llamacpp_note;
};

// One row per model in the study's CSV (in its order), then the rest of the catalog when `whole_catalog`.
std::vector<StudyRow> study_rows(bool whole_catalog);

}  // namespace llmem
