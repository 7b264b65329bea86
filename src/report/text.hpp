// Text renderers build their output in a string (nothing in the library prints); this appends one formatted piece.
#pragma once

#include <iterator>
#include <string>
#include <utility>

#include <fmt/core.h>

namespace llmem::report {

template <typename... Args>
void append(std::string& out, fmt::format_string<Args...> format, Args&&... args) {
  fmt::format_to(std::back_inserter(out), format, std::forward<Args>(args)...);
}

}  // namespace llmem::report
