// --help within 100 columns: CLI11's layout, with each option's and command's description wrapped to the width
// left of its name column.
#pragma once

#include <memory>

#include <CLI/CLI.hpp>

namespace llmem::cli {

// The formatter every command's --help uses (set on the root app before the commands are added).
std::shared_ptr<CLI::Formatter> wrapping_formatter();

}  // namespace llmem::cli
