// Estimates rendered: one JSON document and one text table per engine's Estimate (the engine is the result's),
// the sentence that describes a workload, and the lists `estimate` and `fit` print (GPUs, quantisation schemes).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "llmem/estimate.hpp"

namespace llmem::report {

// `llmem estimate --json`: schema_version 1, the keys of docs/json.md.
nlohmann::json estimate_json(const EstimateResult& result);
// `llmem estimate`: the components table, the peaks, whether it fits, the notes (and llama.cpp's tensor list
// when the estimate carries it), within 100 columns (long provenance in numbered footnotes).
std::string estimate_text(const EstimateResult& result);
// Whether the process peak is within the GPU's budget (its memory less what is in use and the reserve).
bool estimate_fits(const EstimateResult& result);
// "generate 14 tokens from a 6-token prompt, batch 1, F16"; llama.cpp: its scheme, n_ctx, layers, KV types.
std::string workload_description(const EstimateResult& result);

// What a run may use of a GPU, said in one line: "budget 23.50 GiB: 24.00 GiB less a 0.50 GiB reserve (...)".
std::string gpu_budget_text(const GpuProfile& gpu, bool per_gpu = false);

// The GPU catalog by memory: with each card's CUDA context overhead and its source (`estimate --list-gpus`), or
// names, sizes and their sources only (`fit --list-gpus`); and as JSON (schema_version 1, gpus[]).
std::string gpu_catalog_text(bool with_overheads);
nlohmann::json gpu_catalog_json();
// An engine's quantisation schemes (`estimate --list-quants`), and as JSON (schema_version 1, schemes[]).
std::string weight_schemes_text(const std::vector<WeightScheme>& schemes);
nlohmann::json weight_schemes_json(const std::vector<WeightScheme>& schemes);

// Where a model came from: the "source" object of --json output (spec, kind, location, revision, files_read,
// header_bytes_read, and for a Hub model remote: endpoint, repo, commit, requests, bytes, cache). Never a token.
nlohmann::json source_json(const ModelSource& src);
// What reading the source cost, in lines (the CLI's --verbose, on stderr): each Hub request, bytes, cache use.
std::string source_read_text(const ModelSource& src);

}  // namespace llmem::report
