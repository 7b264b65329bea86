#include "llmem/catalog.hpp"

#include <algorithm>
#include <cctype>

#include "embedded_data.hpp"

namespace llmem {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

const std::vector<CatalogEntry>& catalog() {
  static const std::vector<CatalogEntry> all = [] {
    std::vector<CatalogEntry> v;
    constexpr std::string_view prefix = "catalog/", suffix = ".json";
    for (const auto& f : embedded::files()) {
      if (!f.path.starts_with(prefix) || !f.path.ends_with(suffix)) continue;
      std::string stem(f.path.substr(prefix.size(), f.path.size() - prefix.size() - suffix.size()));
      auto sep = stem.find("__");
      if (sep == std::string::npos) continue;
      v.push_back({stem.substr(0, sep) + "/" + stem.substr(sep + 2), f.content});
    }
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return lower(a.id) < lower(b.id); });
    return v;
  }();
  return all;
}

std::optional<CatalogEntry> find_in_catalog(std::string_view name) {
  const std::string want = lower(name);
  for (const auto& e : catalog())
    if (lower(e.id) == want) return e;
  if (want.find('/') != std::string::npos) return std::nullopt;
  std::optional<CatalogEntry> hit;
  for (const auto& e : catalog()) {
    if (lower(e.id.substr(e.id.find('/') + 1)) == want) {
      if (hit) return std::nullopt;  // ambiguous
      hit = e;
    }
  }
  return hit;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  const std::string x = lower(a), y = lower(b);
  std::vector<size_t> prev(y.size() + 1), cur(y.size() + 1);
  for (size_t j = 0; j <= y.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= x.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= y.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[y.size()];
}

std::vector<std::string> closest_catalog_ids(std::string_view name, size_t n) {
  std::vector<std::pair<size_t, std::string>> scored;
  for (const auto& e : catalog()) {
    const std::string tail = e.id.substr(e.id.find('/') + 1);
    size_t d = std::min(edit_distance(name, e.id), edit_distance(name, tail));
    scored.emplace_back(d, e.id);
  }
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && i < n; ++i) out.push_back(scored[i].second);
  return out;
}

std::string_view embedded_file(std::string_view path) {
  for (const auto& f : embedded::files())
    if (f.path == path) return f.content;
  return {};
}

}  // namespace llmem
