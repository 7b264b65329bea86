// JSON string escaping for the peer programs (llamacpp_projection.cpp, mmproj_measure.cpp), which print JSON Lines
// and are built against llama.cpp alone (no JSON library on that side).
#pragma once

#include <cstdio>
#include <string>

inline std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += c;
    }
  }
  return o;
}
