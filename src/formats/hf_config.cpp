#include "llmem/hf_config.hpp"

#include "llmem/json_text.hpp"
#include "llmem/error.hpp"

namespace llmem {
using Json = nlohmann::json;

namespace {
// Larger than any real model dimension (Llama-3.1-405B's widest is 53,248; vocabularies stay under 2^20), small
// enough that products of a few dimensions cannot overflow 64 bits before the tensor-level checks see them.
constexpr uint64_t kMaxDim = uint64_t{1} << 40;

std::string describe(const Json& v) {
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}
}  // namespace

HfConfig::HfConfig(Json j, std::string origin) : j_(std::move(j)), origin_(std::move(origin)) {
  if (!j_.is_object()) throw Error(ErrorKind::kInvalidInput, origin_, "config is not a JSON object");
}

HfConfig HfConfig::parse(const std::string& text, std::string origin) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    throw Error(ErrorKind::kInvalidInput, origin, "not valid JSON (" + json_error_text(e.what()) + ")");
  }
  return HfConfig(std::move(j), std::move(origin));
}

void HfConfig::fail(const std::string& key, const std::string& cause) const {
  throw Error(ErrorKind::kInvalidInput, origin_, "'" + key + "' " + cause);
}

std::string HfConfig::model_type() const {
  auto it = j_.find("model_type");
  if (it == j_.end() || it->is_null()) return "";
  if (!it->is_string()) fail("model_type", "must be a string, got " + describe(*it));
  return it->get<std::string>();
}

std::vector<std::string> HfConfig::architectures() const {
  std::vector<std::string> out;
  auto it = j_.find("architectures");
  if (it == j_.end() || it->is_null()) return out;
  if (!it->is_array()) fail("architectures", "must be a list of class names");
  for (const auto& a : *it) {
    if (!a.is_string()) fail("architectures", "must be a list of class names");
    out.push_back(a.get<std::string>());
  }
  return out;
}

bool HfConfig::has(const std::string& key) const {
  auto it = j_.find(key);
  return it != j_.end() && !it->is_null();
}

uint64_t HfConfig::dim(const std::string& key) const {
  auto it = j_.find(key);
  if (it == j_.end() || it->is_null()) fail(key, "is missing");
  if (it->is_number_float()) {
    double d = it->get<double>();
    if (d >= 1 && d <= static_cast<double>(kMaxDim) && d == static_cast<double>(static_cast<uint64_t>(d)))
      return static_cast<uint64_t>(d);
  }
  if (!it->is_number_integer()) fail(key, "must be a positive integer, got " + describe(*it));
  if (it->is_number_unsigned()) {
    uint64_t v = it->get<uint64_t>();
    if (v == 0) fail(key, "must be a positive integer, got 0");
    if (v > kMaxDim) fail(key, "is implausibly large (" + std::to_string(v) + ")");
    return v;
  }
  fail(key, "must be a positive integer, got " + describe(*it));
}

uint64_t HfConfig::dim_or(const std::string& key, uint64_t fallback) const { return has(key) ? dim(key) : fallback; }

uint64_t HfConfig::count_or(const std::string& key, uint64_t fallback) const {
  if (!has(key)) return fallback;
  const Json& v = j_.at(key);
  if (v.is_number_unsigned() && v.get<uint64_t>() <= kMaxDim) return v.get<uint64_t>();
  fail(key, "must be a non-negative integer, got " + describe(v));
}

bool HfConfig::flag_or(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const Json& v = j_.at(key);
  if (!v.is_boolean()) fail(key, "must be true or false, got " + describe(v));
  return v.get<bool>();
}

double HfConfig::number_or(const std::string& key, double fallback) const {
  if (!has(key)) return fallback;
  const Json& v = j_.at(key);
  if (!v.is_number()) fail(key, "must be a number, got " + describe(v));
  return v.get<double>();
}

std::string HfConfig::string_or(const std::string& key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  const Json& v = j_.at(key);
  if (!v.is_string()) fail(key, "must be a string, got " + describe(v));
  return v.get<std::string>();
}

HfConfig HfConfig::sub(const std::string& key) const {
  if (!has(key)) return HfConfig(Json::object(), origin_ + " (" + key + ")");
  const Json& v = j_.at(key);
  if (!v.is_object()) fail(key, "must be an object");
  return HfConfig(v, origin_ + " (" + key + ")");
}

std::optional<std::string> HfConfig::first_of(std::initializer_list<const char*> keys) const {
  for (const char* k : keys)
    if (has(k)) return std::string(k);
  return std::nullopt;
}

}  // namespace llmem
