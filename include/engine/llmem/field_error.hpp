// An error about one field of a request. The library names the field as its request struct spells it
// ("prompt_tokens", "n_ctx"); each face words it its own way (the CLI says --prompt, --ctx) with message_for, so
// the library never knows the CLI's flags and the CLI never re-states the library's rules.
//
// A message holds "{field}" where the field's name goes, and "{field:NAME}" where another field's name goes
// ("{field} applies to {field:engine} llamacpp" reads "--quant applies to --engine llamacpp" in the CLI).
#pragma once

#include <functional>
#include <string>

#include "llmem/error.hpp"

namespace llmem {

// A face's name for a request field ("n_ctx" -> "--ctx").
using FieldNamer = std::function<std::string(const std::string& field)>;

// `message` with its placeholders replaced: {field} by name_of(field), {field:NAME} by name_of(NAME).
std::string word_fields(const std::string& message, const std::string& field, const FieldNamer& name_of);

class FieldError : public Error {
 public:
  // `message` holds "{field}" where the field's name goes, e.g. "{field} must be a positive integer, got 0";
  // what() reads it with the fields' own names.
  FieldError(ErrorKind kind, std::string where, std::string field, std::string message);

  const std::string& field() const noexcept { return field_; }
  // The message (without `where`) with `name` in place of the field: message_for("--prompt").
  std::string message_for(const std::string& name) const;
  // The message (without `where`) with every field named by `name_of`.
  std::string message_for(const FieldNamer& name_of) const;

 private:
  std::string field_;
  std::string message_;
};

// The usual case: a bad value of a user's option (ErrorKind::kUsage, no file to name).
inline FieldError usage_error(std::string field, std::string message) {
  return FieldError(ErrorKind::kUsage, "", std::move(field), std::move(message));
}

// A value that is allowed but probably not what was meant (a size of 24 MB for a GPU): the request runs, and the
// face says it. Worded like FieldError.
struct FieldWarning {
  std::string field;
  std::string message;
  std::string what() const;  // in the library's own names
  std::string message_for(const FieldNamer& name_of) const { return word_fields(message, field, name_of); }
};

}  // namespace llmem
