// `llmem fit --engine llamacpp`: per quantisation scheme, whether every layer fits, else how many do (-ngl), the
// longest context with everything on the GPU, and the file's tensor data. Searches over llamacpp::estimate.
#include <algorithm>

#include "llmem/catalog.hpp"
#include "llmem/error.hpp"
#include "llmem/hf_config.hpp"
#include "llmem/params.hpp"
#include "llmem/plan.hpp"
#include "ranking.hpp"

namespace llmem {

namespace {

LlamaFitOption fit_one(const llamacpp::Model& m, const llamacpp::RunOptions& run, const GpuProfile& gpu, uint64_t budget) {
  LlamaFitOption o;
  o.scheme = m.scheme;
  o.predicted = m.predicted;
  o.weight_bytes = m.weight_bytes();
  o.n_layer = m.hp.n_layer;
  auto peak = [&](const llamacpp::RunOptions& r) { return llamacpp::estimate(m, r, gpu).process_peak_bytes; };
  llamacpp::RunOptions all = run;
  all.n_gpu_layers = -1;
  o.process_peak_bytes = peak(all);
  o.all_layers_fit = o.process_peak_bytes <= budget;
  // -ngl: the footprint grows with every layer offloaded, so bisect over 0..n_layer+1
  const int64_t top = static_cast<int64_t>(m.hp.n_layer) + 1;
  if (o.all_layers_fit) {
    o.max_ngl = top;
  } else {
    int64_t lo = -1, hi = top;  // peak(lo) fits (lo = -1: nothing tried), peak(hi) does not
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      llamacpp::RunOptions r = run;
      r.n_gpu_layers = mid;
      if (peak(r) <= budget) lo = mid;
      else hi = mid;
    }
    o.max_ngl = lo;
  }
  // context with every layer on the GPU, in llama.cpp's 256-cell steps, up to the training context (or 1 Mi cells)
  o.context_cap = m.hp.n_ctx_train ? std::max<uint64_t>(256, m.hp.n_ctx_train / 256 * 256) : uint64_t{1} << 20;
  uint64_t lo = 0, hi = o.context_cap / 256 + 1;  // in units of 256 cells
  while (hi - lo > 1) {
    const uint64_t mid = lo + (hi - lo) / 2;
    llamacpp::RunOptions r = all;
    r.n_ctx = mid * 256;
    if (peak(r) <= budget) lo = mid;
    else hi = mid;
  }
  o.max_context = lo * 256;
  o.context_capped = o.max_context == o.context_cap;
  return o;
}

}  // namespace

std::vector<LlamaFitOption> fit_llamacpp(const llamacpp::Model& model, const std::vector<std::string>& schemes,
                                         const llamacpp::RunOptions& run, const GpuProfile& gpu, uint64_t budget) {
  std::vector<LlamaFitOption> out;
  if (!model.predicted) {
    out.push_back(fit_one(model, run, gpu, budget));
    return out;
  }
  for (const auto& name : schemes) {
    llamacpp::Model m = model;
    llamacpp::quantize(m, llamacpp::find_scheme(name));
    out.push_back(fit_one(m, run, gpu, budget));
  }
  return out;
}

LlamaCatalogRanking rank_catalog_llamacpp(const std::vector<std::string>& schemes, const llamacpp::RunOptions& run,
                                          const GpuProfile& gpu, uint64_t budget) {
  return rank_catalog_models<LlamaCatalogRanking>([&](const ArchModel& am, const CatalogEntry& entry, LlamaRankedModel& r) {
    const llamacpp::Model base = llamacpp::from_config(am, entry.id);
    for (const auto& name : schemes) {
      llamacpp::Model m = base;
      llamacpp::quantize(m, llamacpp::find_scheme(name));
      llamacpp::RunOptions all = run;
      all.n_gpu_layers = -1;
      if (llamacpp::estimate(m, all, gpu).process_peak_bytes <= budget) {
        r.best = fit_one(m, run, gpu, budget);
        return true;
      }
    }
    llamacpp::Model m = base;
    llamacpp::quantize(m, llamacpp::find_scheme(schemes.back()));
    r.best = fit_one(m, run, gpu, budget);
    return false;
  });
}

}  // namespace llmem
