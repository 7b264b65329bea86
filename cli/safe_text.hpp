// Text that reaches the terminal from somewhere else (an error naming a hostile file's contents, a path, a model
// name): printable, on one line.
#pragma once

#include <string>
#include <string_view>

namespace llmem::cli {

// Valid UTF-8 text is kept; control characters (terminal escapes, carriage returns, C1 controls) and bytes that
// are not UTF-8 are written as \xNN; a line break becomes a space.
std::string printable(std::string_view text);

}  // namespace llmem::cli
