#include "llmem/study.hpp"

#include <sstream>

#include "llmem/catalog.hpp"
#include "llmem/error.hpp"
#include "llmem/estimate.hpp"
#include "llmem/units.hpp"

namespace llmem {

std::vector<StudyMeasurement> parse_study_csv(const std::string& text, const std::string& origin) {
  std::vector<StudyMeasurement> out;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line_no == 1) continue;  // header
    std::vector<std::string> cols;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cols.push_back(c);
    if (cols.size() != 3) throw Error(ErrorKind::kInvalidInput, origin, "line " + std::to_string(line_no) + ": expected 3 columns");
    StudyMeasurement m;
    m.model = cols[0];
    try {
      size_t used = 0;
      m.params_billion = std::stod(cols[1], &used);
      if (used != cols[1].size()) throw std::invalid_argument("trailing");
      m.memory_gib = std::stod(cols[2], &used);
      if (used != cols[2].size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      throw Error(ErrorKind::kInvalidInput, origin, "line " + std::to_string(line_no) + ": not a number");
    }
    out.push_back(m);
  }
  return out;
}

const std::vector<StudyMeasurement>& study_measurements() {
  static const std::vector<StudyMeasurement> all =
      parse_study_csv(std::string(embedded_file("study/measurements.csv")), "study/measurements.csv");
  return all;
}

namespace {

struct StudyMeasured {
  std::string model, gpu;
  uint64_t nvml_peak_bytes;
};

// data/study/measured_h200.csv, extracted from bench/data by bench/gpu/extract_study.py.
const std::vector<StudyMeasured>& measured_rows() {
  static const std::vector<StudyMeasured> rows = [] {
    std::vector<StudyMeasured> out;
    std::istringstream in{std::string(embedded_file("study/measured_h200.csv"))};
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::vector<std::string> cols;
      std::stringstream ss(line);
      for (std::string c; std::getline(ss, c, ',');) cols.push_back(c);
      if (cols.size() < 3) continue;
      out.push_back({cols[0], cols[1], std::stoull(cols[2])});
    }
    return out;
  }();
  return rows;
}

// The study's scenario (fp16, "Hello, world!" = 6 tokens, max_length 20, from_pretrained) on the reference GPU,
// under `engine`, through the seam; `quant` for engines that predict a quantised file.
EstimateRequest study_request(const std::shared_ptr<const SourceFacts>& facts, const std::string& engine, const std::string& quant) {
  EstimateRequest r;
  r.source_facts = facts;
  r.engine = engine;
  r.workload.quant = quant;  // llama.cpp's run: n_ctx 4096 and its defaults otherwise
  r.gpu_profile = default_gpu();
  return r;
}

StudyRow row_for(const std::string& id) {
  StudyRow row;
  row.model = id;
  if (auto entry = find_in_catalog(id)) {
    row.in_catalog = true;
    row.model = entry->id;
    const auto facts = std::make_shared<const SourceFacts>(read_source_facts(catalog_source(*entry)));
    if (!facts->arch || !facts->params) throw Error(ErrorKind::kUnsupported, entry->id, "no architecture to count");
    const ParamCount& c = *facts->params;
    row.family = facts->arch->facts.family;
    row.params = c.total_params;
    row.params_with_tied = c.params_with_tied();
    row.fp16_weight_bytes = c.total_params * 2;
    const Estimate transformers = estimate(study_request(facts, "transformers", "")).estimate;
    row.estimate_framework_bytes = transformers.framework_peak_bytes;
    row.estimate_process_bytes = transformers.process_peak_bytes;
    try {
      row.llamacpp_q4km_process_bytes = estimate(study_request(facts, "llamacpp", "Q4_K_M")).estimate.process_peak_bytes;
    } catch (const Error& e) {
      row.llamacpp_note = e.what();
    }
    for (const auto& mr : measured_rows())
      if (mr.model == row.model) {
        row.measured_process_bytes = mr.nvml_peak_bytes;
        row.measured_gpu = mr.gpu;
      }
  }
  return row;
}

}  // namespace

std::vector<StudyRow> study_rows(bool whole_catalog) {
  std::vector<StudyRow> rows;
  for (const auto& m : study_measurements()) {
    StudyRow r = row_for(m.model);
    r.measured = m;
    r.impossible = r.in_catalog && m.memory_gib * kGiB < static_cast<double>(r.fp16_weight_bytes);
    rows.push_back(std::move(r));
  }
  if (whole_catalog) {
    for (const auto& e : catalog()) {
      bool seen = false;
      for (const auto& r : rows) seen = seen || r.model == e.id;
      if (!seen) rows.push_back(row_for(e.id));
    }
  }
  return rows;
}

}  // namespace llmem
