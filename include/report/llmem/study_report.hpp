// The seed study rendered: its table, its JSON, and the chart of memory against parameters.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "llmem/chart.hpp"
#include "llmem/study.hpp"

namespace llmem::report {

std::string study_text(const std::vector<StudyRow>& rows);
nlohmann::json study_json(const std::vector<StudyRow>& rows);  // {schema_version, rows}
// Memory against parameters, log-log: the study's readings, llmem's estimates, the measurements, the 2×B and 4×B
// rules.
chart::Chart study_chart(const std::vector<StudyRow>& rows);

}  // namespace llmem::report
