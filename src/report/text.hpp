// Text renderers build their output in a string (nothing in the library prints); this appends one formatted piece,
// and wraps prose to the 100 columns every text output keeps to.
#pragma once

#include <algorithm>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/core.h>

namespace llmem::report {

// Every line of text output fits this many columns.
inline constexpr size_t kColumns = 100;

template <typename... Args>
void append(std::string& out, fmt::format_string<Args...> format, Args&&... args) {
  fmt::format_to(std::back_inserter(out), format, std::forward<Args>(args)...);
}

// Columns a string takes on a terminal: its code points (llmem's text has no wide characters).
inline size_t columns(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// `text` broken at spaces into lines of at most `width` columns (a word longer than that gets a line of its own).
inline std::vector<std::string> wrap(std::string_view text, size_t width) {
  std::vector<std::string> lines;
  std::string line;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find(' ', at);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view word = text.substr(at, end - at);
    if (!word.empty()) {
      if (!line.empty() && columns(line) + 1 + columns(word) > width) {
        lines.push_back(line);
        line.clear();
      }
      if (!line.empty()) line += ' ';
      line += word;
    }
    at = end + 1;
  }
  if (!line.empty() || lines.empty()) lines.push_back(line);
  return lines;
}

// `text` wrapped to kColumns, the first line after `first`, the others after `indent` spaces; ends with a newline.
inline std::string paragraph(std::string_view first, std::string_view text, size_t indent) {
  const size_t width = kColumns - std::max(columns(first), indent);
  std::string out;
  const std::vector<std::string> lines = wrap(text, width);
  for (size_t i = 0; i < lines.size(); ++i) out += (i == 0 ? std::string(first) : std::string(indent, ' ')) + lines[i] + "\n";
  return out;
}

// `line` as it is when it fits kColumns (its spacing kept), else wrapped as a paragraph.
inline std::string fitted(std::string_view line, size_t indent) {
  if (columns(line) <= kColumns) return std::string(line) + "\n";
  return paragraph("", line, indent);
}

}  // namespace llmem::report
