// A Hugging Face config.json read defensively: every field a family needs is fetched through a typed getter that
// names the file and the key when the field is missing, of the wrong type, or out of any plausible range.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace llmem {

class HfConfig {
 public:
  // Parses JSON text; `origin` names the file (or catalog entry) in every error.
  static HfConfig parse(const std::string& text, std::string origin);
  HfConfig(nlohmann::json j, std::string origin);

  const nlohmann::json& json() const { return j_; }
  const std::string& origin() const { return origin_; }
  std::string model_type() const;                 // "" when absent
  std::vector<std::string> architectures() const;  // [] when absent

  bool has(const std::string& key) const;          // present and not null
  // A positive integer dimension (1 .. 2^40). Throws when missing, not an integer, zero or absurd.
  uint64_t dim(const std::string& key) const;
  uint64_t dim_or(const std::string& key, uint64_t fallback) const;
  // A non-negative integer count (0 allowed), e.g. a number of shared experts.
  uint64_t count_or(const std::string& key, uint64_t fallback) const;
  bool flag_or(const std::string& key, bool fallback) const;
  double number_or(const std::string& key, double fallback) const;
  std::string string_or(const std::string& key, const std::string& fallback) const;
  // A sub-object as its own config (e.g. "vision_config"); an empty config when absent.
  HfConfig sub(const std::string& key) const;
  // First present key among aliases (transformers' attribute_map: n_embd -> hidden_size, ...).
  std::optional<std::string> first_of(std::initializer_list<const char*> keys) const;

  [[noreturn]] void fail(const std::string& key, const std::string& cause) const;

 private:
  nlohmann::json j_;
  std::string origin_;
};

}  // namespace llmem
