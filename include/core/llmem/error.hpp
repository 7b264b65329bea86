// Errors at the library boundary.
//
// Every failure that bad input can cause is an llmem::Error naming the file (or source) and the cause in one
// line. The CLI turns it into "llmem: <file>: <cause>" and exit code 2. Parsers throw it from deep inside, where
// the caller could do nothing better than unwind; callers that want a value catch it at the boundary.
#pragma once

#include <stdexcept>
#include <string>

namespace llmem {

enum class ErrorKind {
  kInvalidInput,   // the file or config is malformed, hostile or inconsistent (exit 2)
  kNotFound,       // a source, file or name does not exist (exit 2)
  kUnsupported,    // well-formed, but something llmem does not know (an architecture, a dtype) (exit 2)
  kUsage,          // a bad option value (exit 2)
  kRuntime,        // the environment failed: I/O error, driver missing, network (exit 1)
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string where, const std::string& cause)
      : std::runtime_error(where.empty() ? cause : where + ": " + cause), kind_(kind), where_(std::move(where)) {}

  ErrorKind kind() const noexcept { return kind_; }
  // The file, URL or source the error is about ("" when none applies).
  const std::string& where() const noexcept { return where_; }
  int exit_code() const noexcept { return kind_ == ErrorKind::kRuntime ? 1 : 2; }

 private:
  ErrorKind kind_;
  std::string where_;
};

}  // namespace llmem
