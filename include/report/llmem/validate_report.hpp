// Validation rendered: the rows and the summary as JSON, a text table with the summary, or the summary alone
// (text, or Markdown for the README).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "llmem/validate.hpp"

namespace llmem::report {

nlohmann::json validation_json(const ValidationReport& report);

enum class ValidationView { kTable, kSummary, kMarkdown };
std::string validation_text(const ValidationReport& report, ValidationView view);

}  // namespace llmem::report
