// An error about one field of a request. The library names the field as its request struct spells it
// ("prompt_tokens", "n_ctx"); each face words it its own way (the CLI says --prompt, --ctx) with message_for, so
// the library never knows the CLI's flags and the CLI never re-states the library's rules.
#pragma once

#include <string>

#include "llmem/error.hpp"

namespace llmem {

class FieldError : public Error {
 public:
  // `message` holds "{field}" where the field's name goes, e.g. "{field} must be a positive integer, got 0";
  // what() reads it with the field's own name.
  FieldError(ErrorKind kind, std::string where, std::string field, std::string message);

  const std::string& field() const noexcept { return field_; }
  // The message (without `where`) with `name` in place of the field: message_for("--prompt").
  std::string message_for(const std::string& name) const;

 private:
  std::string field_;
  std::string message_;
};

// The usual case: a bad value of a user's option (ErrorKind::kUsage, no file to name).
inline FieldError usage_error(std::string field, std::string message) {
  return FieldError(ErrorKind::kUsage, "", std::move(field), std::move(message));
}

}  // namespace llmem
