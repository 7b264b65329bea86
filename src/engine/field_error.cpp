#include "llmem/field_error.hpp"

namespace llmem {

std::string word_fields(const std::string& message, const std::string& field, const FieldNamer& name_of) {
  static const std::string kOpen = "{field";
  std::string out;
  size_t from = 0;
  for (size_t at; (at = message.find(kOpen, from)) != std::string::npos;) {
    const size_t close = message.find('}', at);
    const std::string inside = close == std::string::npos ? "" : message.substr(at + kOpen.size(), close - at - kOpen.size());
    if (close == std::string::npos || (!inside.empty() && inside[0] != ':')) {  // not a placeholder: keep the text
      out += message.substr(from, at + kOpen.size() - from);
      from = at + kOpen.size();
      continue;
    }
    out += message.substr(from, at - from) + name_of(inside.empty() ? field : inside.substr(1));
    from = close + 1;
  }
  return out + message.substr(from);
}

namespace {
const FieldNamer kOwnNames = [](const std::string& field) { return field; };
}  // namespace

FieldError::FieldError(ErrorKind kind, std::string where, std::string field, std::string message)
    : Error(kind, std::move(where), word_fields(message, field, kOwnNames)), field_(std::move(field)), message_(std::move(message)) {}

std::string FieldError::message_for(const std::string& name) const {
  return word_fields(message_, field_, [&](const std::string& f) { return f == field_ ? name : f; });
}

std::string FieldError::message_for(const FieldNamer& name_of) const { return word_fields(message_, field_, name_of); }

std::string FieldWarning::what() const { return word_fields(message, field, kOwnNames); }

}  // namespace llmem
