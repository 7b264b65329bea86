#include "llmem/catalog.hpp"

#include <algorithm>
#include <cctype>
#include <optional>
#include <tuple>

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

namespace {

std::string squashed(std::string_view s) {
  std::string out;
  for (char c : s)
    if (std::isalnum(static_cast<unsigned char>(c))) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c))) out.back() += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else if (!out.back().empty()) out.emplace_back();
  }
  if (out.back().empty()) out.pop_back();
  return out;
}

// Lower is closer; nullopt: not a plausible match. Ranks: 0 prefix, 1 substring, 2 every word of want in order,
// 3 + distance for a small edit distance.
std::optional<size_t> match_score(std::string_view want, std::string_view candidate) {
  const std::string w = squashed(want), c = squashed(candidate);
  if (w.empty() || c.empty()) return std::nullopt;
  if (c.rfind(w, 0) == 0) return 0;
  if (c.find(w) != std::string::npos) return 1;
  const std::vector<std::string> ww = words(want);
  size_t from = 0;
  bool all = ww.size() > 1;
  for (const auto& word : ww) {
    const size_t at = c.find(word, from);
    if (at == std::string::npos) {
      all = false;
      break;
    }
    from = at + word.size();
  }
  if (all) return 2;
  const size_t d = edit_distance(w, c);
  if (d <= std::max<size_t>(2, w.size() / 3)) return 3 + d;
  return std::nullopt;
}

}  // namespace

std::vector<std::string> closest_names(std::string_view want, const std::vector<std::string>& candidates, size_t n,
                                       const std::vector<std::string>& aliases) {
  std::vector<std::tuple<size_t, size_t, std::string>> scored;  // score, length, name
  for (size_t i = 0; i < candidates.size(); ++i) {
    std::optional<size_t> best = match_score(want, candidates[i]);
    if (i < aliases.size() && !aliases[i].empty())
      if (auto a = match_score(want, aliases[i]); a && (!best || *a < *best)) best = a;
    if (best) scored.emplace_back(*best, candidates[i].size(), candidates[i]);
  }
  std::sort(scored.begin(), scored.end());
  // names that contain what was typed make the near misses by spelling noise
  if (!scored.empty() && std::get<0>(scored.front()) <= 2)
    scored.erase(std::find_if(scored.begin(), scored.end(), [](const auto& t) { return std::get<0>(t) > 2; }), scored.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && out.size() < n; ++i)
    if (std::find(out.begin(), out.end(), std::get<2>(scored[i])) == out.end()) out.push_back(std::get<2>(scored[i]));
  return out;
}

std::vector<std::string> closest_catalog_ids(std::string_view name, size_t n) {
  std::vector<std::string> ids, tails;
  for (const auto& e : catalog()) {
    ids.push_back(e.id);
    tails.push_back(e.id.substr(e.id.find('/') + 1));
  }
  // the name after the slash first: "mistral" means Mistral-7B before mistralai's Mixtral
  std::vector<std::string> out = closest_names(name, tails, n);
  for (auto& tail : out)
    for (size_t i = 0; i < tails.size(); ++i)
      if (tails[i] == tail) tail = ids[i];
  for (const auto& id : closest_names(name, ids, n))
    if (out.size() < n && std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  return out;
}

std::string_view embedded_file(std::string_view path) {
  for (const auto& f : embedded::files())
    if (f.path == path) return f.content;
  return {};
}

}  // namespace llmem
