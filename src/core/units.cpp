#include "llmem/units.hpp"

#include <cctype>
#include <cmath>
#include <string>

#include <fmt/core.h>

namespace llmem {

std::string format_bytes(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= kGiB) return fmt::format("{:.2f} GiB", b / kGiB);
  if (b >= kMiB) return fmt::format("{:.1f} MiB", b / kMiB);
  if (b >= 1024.0) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{} B", bytes);
}

std::string format_gib(uint64_t bytes, int decimals) {
  return fmt::format("{:.{}f} GiB", static_cast<double>(bytes) / kGiB, decimals);
}

std::string format_params_short(uint64_t params) {
  const double p = static_cast<double>(params);
  if (p >= 1e9) return fmt::format("{:.2f} B", p / 1e9);
  if (p >= 1e6) return fmt::format("{:.2f} M", p / 1e6);
  if (p >= 1e3) return fmt::format("{:.2f} K", p / 1e3);
  return fmt::format("{}", params);
}

std::string format_thousands(uint64_t n) {
  std::string digits = std::to_string(n), out;
  int count = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (count && count % 3 == 0) out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++count;
  }
  return out;
}

std::optional<uint64_t> parse_bytes(std::string_view text) {
  std::string s;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) s += c;
  if (s.empty()) return std::nullopt;
  size_t pos = 0;
  while (pos < s.size() && (std::isdigit(static_cast<unsigned char>(s[pos])) || s[pos] == '.')) ++pos;
  if (pos == 0) return std::nullopt;
  double value;
  try {
    size_t used = 0;
    value = std::stod(s.substr(0, pos), &used);
    if (used != pos) return std::nullopt;
  } catch (...) {
    return std::nullopt;
  }
  std::string unit = s.substr(pos);
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "kib") mult = 1024.0;
  else if (unit == "mib") mult = kMiB;
  else if (unit == "gib") mult = kGiB;
  else if (unit == "tib") mult = kGiB * 1024.0;
  else if (unit == "kb") mult = 1e3;
  else if (unit == "mb") mult = 1e6;
  else if (unit == "gb") mult = kGB;
  else if (unit == "tb") mult = 1e12;
  else return std::nullopt;
  double bytes = value * mult;
  if (!std::isfinite(bytes) || bytes < 1.0 || bytes > std::ldexp(1.0, 60)) return std::nullopt;
  return static_cast<uint64_t>(std::llround(bytes));
}

}  // namespace llmem
