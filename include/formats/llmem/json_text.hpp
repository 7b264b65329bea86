// The JSON parser's error in a reader's words: no "[json.exception.parse_error.101]" prefix, and never the bytes it
// last read (a hostile file's bytes, terminal escapes included, would reach the user's terminal).
#pragma once

#include <string>

namespace llmem {

// "[json.exception.parse_error.101] parse error at line 1, column 3: syntax error while parsing value - invalid
// literal; last read: '<bytes>'" -> "syntax error at line 1, column 3: invalid literal".
std::string json_error_text(const std::string& what);

}  // namespace llmem
