// Usage errors as one line a person can act on: "llmem: fit: unknown flag --vrma (did you mean --vram?)".
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace llmem::cli {

// The one-line message (without "llmem: ") for a parse error of `args` (argv without the program name) on `root`:
// an unknown command or flag with the closest names, a value of the wrong kind, a missing SOURCE; CLI11's own
// text, on one line, otherwise.
std::string usage_message(const CLI::App& root, const std::vector<std::string>& args, const CLI::ParseError& error);

// The same for the flags of one command parsed on their own (`measure --estimate '...'` parses estimate's flags):
// `tokens` are its words; "" when nothing better than CLI11's text can be said.
std::string flags_usage_message(const CLI::App& cmd, const std::vector<std::string>& tokens, const CLI::ParseError& error);

}  // namespace llmem::cli
