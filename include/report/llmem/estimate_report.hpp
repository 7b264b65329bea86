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
// when the estimate carries it).
std::string estimate_text(const EstimateResult& result);
// "generate 14 tokens from a 6-token prompt, batch 1, F16"; llama.cpp: its scheme, n_ctx, layers, KV types.
std::string workload_description(const EstimateResult& result);

// The GPU catalog: with each card's CUDA context overhead and its source (`estimate --list-gpus`), or names and
// sizes only (`fit --list-gpus`).
std::string gpu_catalog_text(bool with_overheads);
// An engine's quantisation schemes (`estimate --list-quants`).
std::string weight_schemes_text(const std::vector<WeightScheme>& schemes);

// Where a model came from: the "source" object of --json output (spec, kind, location, revision, files_read,
// header_bytes_read, and for a Hub model remote: endpoint, repo, commit, requests, bytes, cache). Never a token.
nlohmann::json source_json(const ModelSource& src);
// What reading the source cost, in lines (the CLI's --verbose, on stderr): each Hub request, bytes, cache use.
std::string source_read_text(const ModelSource& src);

}  // namespace llmem::report
