// The GPU of a request: a catalog card, a memory size, or the card NVML finds; and an estimate beside a
// measurement on it.
#include "llmem/error.hpp"
#include "llmem/estimate.hpp"
#include "llmem/units.hpp"

namespace llmem {
namespace {

GpuProfile first_nvml_gpu() {
  auto nvml = nvml::Library::open();
  const unsigned count = nvml->device_count();
  if (count == 0) throw FieldError(ErrorKind::kRuntime, "", "gpu", "{field} auto: NVML reports no GPU");
  GpuProfile g;
  try {
    g = gpu_profile_from_nvml(*nvml, 0);
  } catch (const Error& e) {
    throw FieldError(e.kind(), "", "gpu", std::string("{field} auto: ") + e.what());
  }
  g.display_name = nvml->name(0) + " (GPU 0 of " + std::to_string(count) + ", found by NVML)";
  return g;
}

}  // namespace

GpuProfile resolve_gpu(const GpuSpec& spec) {
  GpuProfile g = spec.name == "auto" ? first_nvml_gpu() : spec.name.empty() ? default_gpu() : find_gpu(spec.name);
  if (spec.memory.empty() && spec.memory_origin.empty()) return g;
  // A size wins over the card's, keeping the card's runtime overhead (the reference GPU's without a card).
  const std::string origin = spec.memory_origin.empty() ? spec.memory : spec.memory_origin;
  auto bytes = parse_bytes(spec.memory);
  if (!bytes)
    throw usage_error("memory", "{field} '" + spec.memory +
                                    "' is not a positive memory size (e.g. 24GiB, 80GB, 512MiB; GB = 10^9, GiB = 2^30)");
  g.memory_bytes = *bytes;
  g.memory_source = origin;
  if (spec.name.empty()) {
    g.name = "custom";
    g.display_name = "a GPU of " + origin;
  } else {
    g.display_name += " (" + origin + ")";
  }
  return g;
}

GpuProfile gpu_profile_from_nvml(nvml::Library& nvml, unsigned index) {
  if (index >= nvml.device_count())
    throw Error(ErrorKind::kRuntime, "", "NVML reports no GPU " + std::to_string(index));
  const std::string name = nvml.name(index);
  GpuProfile g;
  try {
    g = find_gpu(name);
  } catch (const Error&) {
    // a card the catalog does not know: the reference measurement's overhead applies (gpus.cpp says so in
    // context_source), under the card's own name
    g = default_gpu();
    g.name = name;
    g.display_name = name;
  }
  nvml::DeviceMemory memory;
  if (int status = nvml.memory(index, memory); status != nvml::kSuccess)
    throw Error(ErrorKind::kRuntime, "", "cannot read GPU " + std::to_string(index) + "'s memory: " + nvml.error_string(status));
  g.memory_bytes = memory.total_bytes;
  g.memory_source = "NVML";
  return g;
}

MeasuredComparison compare_with_measurement(const Estimate& estimate, uint64_t measured_process_peak_bytes) {
  MeasuredComparison c;
  c.estimated_bytes = estimate.process_peak_bytes;
  c.measured_bytes = measured_process_peak_bytes;
  if (c.measured_bytes)
    c.error_percent = 100.0 * (static_cast<double>(c.estimated_bytes) - static_cast<double>(c.measured_bytes)) /
                      static_cast<double>(c.measured_bytes);
  return c;
}

}  // namespace llmem
