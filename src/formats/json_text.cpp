#include "llmem/json_text.hpp"

namespace llmem {

std::string json_error_text(const std::string& what) {
  std::string s = what;
  if (s.rfind("[json.exception.", 0) == 0) {
    const size_t close = s.find("] ");
    if (close != std::string::npos) s = s.substr(close + 2);
  }
  if (const size_t last = s.find("; last read"); last != std::string::npos) s.resize(last);
  // "parse error at line 1, column 3: syntax error while parsing value - invalid literal"
  const std::string parse = "parse error at ";
  if (s.rfind(parse, 0) == 0) {
    const size_t colon = s.find(": ");
    std::string where = colon == std::string::npos ? "" : s.substr(parse.size(), colon - parse.size());
    std::string why = colon == std::string::npos ? s.substr(parse.size()) : s.substr(colon + 2);
    if (const size_t dash = why.find(" - "); dash != std::string::npos) why = why.substr(dash + 3);
    s = "syntax error" + (where.empty() ? "" : " at " + where) + ": " + why;
  }
  return s;
}

}  // namespace llmem
