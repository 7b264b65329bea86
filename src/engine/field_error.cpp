#include "llmem/field_error.hpp"

namespace llmem {
namespace {

std::string substitute(const std::string& message, const std::string& name) {
  static const std::string kPlaceholder = "{field}";
  std::string out;
  size_t from = 0;
  for (size_t at; (at = message.find(kPlaceholder, from)) != std::string::npos; from = at + kPlaceholder.size())
    out += message.substr(from, at - from) + name;
  return out + message.substr(from);
}

}  // namespace

FieldError::FieldError(ErrorKind kind, std::string where, std::string field, std::string message)
    : Error(kind, std::move(where), substitute(message, field)), field_(std::move(field)), message_(std::move(message)) {}

std::string FieldError::message_for(const std::string& name) const { return substitute(message_, name); }

}  // namespace llmem
