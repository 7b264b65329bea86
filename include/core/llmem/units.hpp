// Units: every number llmem prints says what it is. GiB is 2^30 bytes, GB is 10^9 bytes, "B" after a parameter
// count is 10^9 parameters (as the model cards and torchinfo's rounding use it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace llmem {

inline constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
inline constexpr double kMiB = 1024.0 * 1024.0;
inline constexpr double kGB = 1e9;

// "15.17 GiB", "812.0 MiB", "4.0 KiB", "17 B" (bytes) — binary units, 2 decimals above MiB.
std::string format_bytes(uint64_t bytes);
// Fixed unit: "15.17 GiB" whatever the size (tables whose columns must line up).
std::string format_gib(uint64_t bytes, int decimals = 2);
// "7.24 B" (10^9 parameters), "124.44 M", "1.23 K".
std::string format_params_short(uint64_t params);
// "7,241,732,096"
std::string format_thousands(uint64_t n);

// Parses a memory size given by a person: "24GiB", "24 GiB", "80GB", "512MiB", "1.5TiB", "1073741824" (bytes).
// A bare "GB" means 10^9 and "GiB" 2^30: llmem never guesses. nullopt for unparseable, negative, zero or
// absurd (> 2^60 bytes) input.
std::optional<uint64_t> parse_bytes(std::string_view text);

}  // namespace llmem
