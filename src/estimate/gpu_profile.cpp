// The GPU of a request: a catalog card, a memory size, or the cards NVML finds; the reserve kept free on each; and
// an estimate beside a measurement on it.
#include <algorithm>
#include <cctype>
#include <cmath>

#include <fmt/core.h>

#include "llmem/error.hpp"
#include "llmem/estimate.hpp"
#include "llmem/units.hpp"
#include "adapters.hpp"

namespace llmem {
namespace adapters {

// A size a person typed, in bytes: a number and a unit, never a bare number (12 could mean 12 GiB or 12 GB; as
// bytes it would be a GPU of 12 bytes). "0" needs no unit where zero is allowed.
uint64_t parse_size(const std::string& text, const std::string& field, bool zero_allowed) {
  std::string squashed;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) squashed += c;
  if (zero_allowed && !squashed.empty() && squashed.find_first_not_of("0.") == std::string::npos &&
      squashed.find_first_not_of('.') != std::string::npos)
    return 0;
  if (!squashed.empty() && squashed.find_first_not_of("0123456789.") == std::string::npos)
    throw usage_error(field, "{field} " + text + " has no unit: " + squashed + "GiB (2^30 bytes) or " + squashed +
                                 "GB (10^9 bytes)? (MiB, MB, TiB, TB and B work too)");
  auto bytes = parse_bytes(text);
  if (!bytes)
    throw usage_error(field, "{field} '" + text + "' is not a " + std::string(zero_allowed ? "" : "positive ") +
                                 "memory size (e.g. 24GiB, 80GB, 512MiB; GB = 10^9 bytes, GiB = 2^30)");
  return *bytes;
}

}  // namespace adapters

namespace {

using adapters::parse_size;

bool decimal_unit(const std::string& text) {
  std::string unit;
  for (char c : text)
    if (std::isalpha(static_cast<unsigned char>(c))) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return unit == "gb" || unit == "tb";
}

double gib(uint64_t bytes) { return static_cast<double>(bytes) / kGiB; }

// What a size for a GPU's memory probably meant, when it is not plausible as it stands.
void warn_about_memory(const std::string& text, uint64_t bytes, const GpuSpec& spec, std::vector<FieldWarning>& out) {
  const auto& cards = gpu_catalog();
  const auto smallest = std::min_element(cards.begin(), cards.end(), [](auto& a, auto& b) { return a.memory_bytes < b.memory_bytes; });
  const auto largest = std::max_element(cards.begin(), cards.end(), [](auto& a, auto& b) { return a.memory_bytes < b.memory_bytes; });
  std::string number;
  for (char c : text)
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') number += c;
  if (bytes < (uint64_t{1} << 30)) {
    out.push_back({"memory", fmt::format("{{field}} {} is {:.3g} GiB, less than any GPU (the catalog's smallest: {}, {:.1f} GiB): "
                                         "did you mean {}GiB or {}GB?",
                                         text, gib(bytes), smallest->name, gib(smallest->memory_bytes), number, number)});
    return;
  }
  if (bytes > 4 * largest->memory_bytes) {
    out.push_back({"memory", fmt::format("{{field}} {} is {:.0f} GiB per GPU, beyond any GPU (the catalog's largest: {}, {:.1f} GiB): "
                                         "did you mean {}GiB or {}GB?",
                                         text, gib(bytes), largest->name, gib(largest->memory_bytes), number, number)});
    return;
  }
  if (!spec.name.empty() && spec.name != "auto") return;  // said against the card below
  if (!decimal_unit(text)) return;
  // "80GB" for a card sold as "80 GB", which has 80 GiB: the decimal size is 7 % smaller
  const double as_gib = static_cast<double>(bytes) / kGB;
  std::string near;
  int n = 0;
  for (const auto& g : cards)
    if (std::fabs(gib(g.memory_bytes) - as_gib) <= 0.03 * as_gib && n++ < 3)
      near += fmt::format("{}{} {:.2f} GiB", near.empty() ? "" : ", ", g.name, gib(g.memory_bytes));
  if (!near.empty())
    out.push_back({"memory", fmt::format("{{field}} {} is {:.2f} GiB (GB = 10^9 bytes), but cards sold as {:.0f} GB have about "
                                         "{:.0f} GiB ({}, as their driver reports): did you mean {:.0f}GiB, or {{field:gpu}} NAME?",
                                         text, gib(bytes), as_gib, as_gib, near, as_gib)});
}

GpuProfile nvml_gpu(nvml::Library& nvml, unsigned index, unsigned count) {
  GpuProfile g;
  try {
    g = gpu_profile_from_nvml(nvml, index);
  } catch (const Error& e) {
    throw FieldError(e.kind(), "", "gpu", std::string("{field} auto: ") + e.what());
  }
  g.display_name = fmt::format("{} (GPU {} of {}, found by NVML)", nvml.name(index), index, count);
  return g;
}

unsigned nvml_count(nvml::Library& nvml) {
  const unsigned count = nvml.device_count();
  if (count == 0) throw FieldError(ErrorKind::kRuntime, "", "gpu", "{field} auto: NVML reports no GPU");
  return count;
}

// The size and the reserve of a spec, on a card already chosen.
void apply_sizes(const GpuSpec& spec, GpuProfile& g, std::vector<FieldWarning>& warnings) {
  if (!spec.memory.empty() || !spec.memory_origin.empty()) {
    // A size wins over the card's, keeping the card's runtime overhead (the reference GPU's without a card).
    const std::string origin = spec.memory_origin.empty() ? spec.memory : spec.memory_origin;
    const uint64_t bytes = parse_size(spec.memory, "memory", false);
    warn_about_memory(spec.memory, bytes, spec, warnings);
    if (!spec.name.empty() && spec.name != "auto" && bytes != g.memory_bytes)
      warnings.push_back({"memory", fmt::format("{{field}} {} ({:.2f} GiB) replaces {}'s {:.2f} GiB (what its driver reports)",
                                                spec.memory, gib(bytes), g.name, gib(g.memory_bytes))});
    g.memory_bytes = bytes;
    g.in_use_bytes = 0;  // the size given is what the run may have
    g.memory_source = origin;
    if (spec.name.empty()) {
      g.name = "custom";
      g.display_name = "a GPU of " + origin;
      g.sm_version = 0;  // a size, not a card: the reference's overheads, no compute capability
      g.sm_count = g.resident_threads = 0;
    } else {
      g.display_name += " (" + origin + ")";
    }
  }
  if (spec.reserve.empty()) {
    g.reserve_bytes = std::min(kDefaultReserveBytes, g.memory_bytes / 10);
    g.reserve_source = "the default";
  } else {
    g.reserve_bytes = parse_size(spec.reserve, "reserve", true);
    g.reserve_source = spec.reserve_origin.empty() ? spec.reserve : spec.reserve_origin;
  }
  if (g.reserve_bytes >= g.memory_bytes)
    throw usage_error("reserve", fmt::format("{{field}} {} leaves nothing of the GPU's {:.2f} GiB", spec.reserve, gib(g.memory_bytes)));
}

}  // namespace

GpuProfile resolve_gpu(const GpuSpec& spec, std::vector<FieldWarning>* warnings) {
  std::vector<FieldWarning> local;
  GpuProfile g;
  if (spec.name == "auto") {
    auto nvml = nvml::Library::open();
    g = nvml_gpu(*nvml, 0, nvml_count(*nvml));
  } else {
    g = spec.name.empty() ? default_gpu() : find_gpu(spec.name);
  }
  apply_sizes(spec, g, warnings ? *warnings : local);
  return g;
}

FitGpus resolve_fit_gpus(const GpuSpec& spec, std::vector<FieldWarning>* warnings) {
  std::vector<FieldWarning> local;
  FitGpus out;
  if (spec.name != "auto") {
    out.tightest = resolve_gpu(spec, warnings);
    return out;
  }
  auto nvml = nvml::Library::open();
  out.count = nvml_count(*nvml);
  unsigned tightest = 0;
  for (unsigned i = 0; i < out.count; ++i) {
    GpuProfile g = nvml_gpu(*nvml, i, out.count);
    apply_sizes(spec, g, warnings ? *warnings : local);
    if (i > 0 && g.budget_bytes() < out.all[tightest].budget_bytes()) tightest = i;
    out.all.push_back(std::move(g));
  }
  out.tightest = out.all[tightest];
  if (out.count > 1)
    out.tightest.display_name = fmt::format("{} (GPU {}, the least free of {} found by NVML)", nvml->name(tightest), tightest, out.count);
  return out;
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
    g.sm_version = 0;  // not known: only the reference's overheads are borrowed
    g.sm_count = g.resident_threads = 0;
  }
  nvml::DeviceMemory memory;
  if (int status = nvml.memory(index, memory); status != nvml::kSuccess)
    throw Error(ErrorKind::kRuntime, "", "cannot read GPU " + std::to_string(index) + "'s memory: " + nvml.error_string(status));
  g.memory_bytes = memory.total_bytes;
  g.in_use_bytes = memory.total_bytes > memory.free_bytes ? memory.total_bytes - memory.free_bytes : 0;
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
