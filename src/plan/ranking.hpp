// The catalog ranking shared by `llmem fit` without a source, for every engine: each embedded model is built from
// its config, judged by the engine's `evaluate`, and listed largest first among those that fit and those that do
// not; entries the estimator cannot handle are listed with the reason.
#pragma once

#include <algorithm>
#include <string>
#include <utility>

#include "llmem/catalog.hpp"
#include "llmem/error.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/params.hpp"

namespace llmem {

// Ranking: {fits, does_not_fit, skipped}; its entries have id, params, family and the engine's `best`.
// evaluate(const ArchModel&, const CatalogEntry&, Ranked&) fills `best` and says whether the model fits.
template <class Ranking, class Evaluate>
Ranking rank_catalog_models(Evaluate evaluate) {
  using Ranked = typename decltype(Ranking::fits)::value_type;
  Ranking out;
  for (const auto& entry : catalog()) {
    try {
      const ArchModel m = model_from_config(HfConfig::parse(std::string(entry.config_json), "catalog:" + entry.id));
      Ranked r;
      r.id = entry.id;
      r.params = count_from_model(m).total_params;
      r.family = m.facts.family;
      const bool fits = evaluate(m, entry, r);
      (fits ? out.fits : out.does_not_fit).push_back(std::move(r));
    } catch (const Error& e) {
      out.skipped.push_back(entry.id + ": " + e.what());
    }
  }
  auto by_params = [](const Ranked& a, const Ranked& b) { return a.params != b.params ? a.params > b.params : a.id < b.id; };
  std::sort(out.fits.begin(), out.fits.end(), by_params);
  std::sort(out.does_not_fit.begin(), out.does_not_fit.end(), by_params);
  return out;
}

}  // namespace llmem
