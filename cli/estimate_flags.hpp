// The flags of one estimate request, shared by `estimate` and `measure --estimate` (which parses the same flags
// from one string, so both accept exactly the same options), and the names the CLI gives the library's fields.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "llmem/estimate.hpp"
#include "llmem/field_error.hpp"
#include "source_flags.hpp"

namespace llmem::cli {

struct EstimateFlags {
  EstimateRequest request;
  std::string lora_targets = "q_proj,k_proj,v_proj,o_proj";  // comma-separated, as --lora-targets takes them
  SourceCliOptions source;
  const CLI::App* cmd = nullptr;  // the parsed command, to tell the flags given from the defaults
};

// vLLM's flags (names as `vllm serve`'s), shared by `estimate` and `fit`.
void add_vllm_flags(CLI::App* cmd, WorkloadSpec& workload);
// SOURCE, the workload, the GPU, --engine and the source options. `flags` must outlive parsing.
void add_estimate_flags(CLI::App* cmd, EstimateFlags& flags);
// The library request the flags stand for (with --verbose printed as soon as the source is open), and the fields
// the flags given set (EstimateRequest::set_fields).
EstimateRequest estimate_request(const EstimateFlags& flags);

// Library field -> the flag that sets it.
using FlagNames = std::vector<std::pair<std::string, std::string>>;
const FlagNames& estimate_flag_names();

// The flag that sets `field` ("n_ctx" -> "--ctx"), or the field's own name where no flag does.
std::string flag_for(const FlagNames& names, const std::string& field);
// The fields whose flags were given on `cmd` (in the order of `names`).
std::vector<std::string> fields_given(const CLI::App& cmd, const FlagNames& names);

// Runs `call`, rewording a FieldError with the flags that set its fields (unnamed fields keep their own names).
template <typename Call>
auto with_flag_names(const FlagNames& names, Call&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const FieldError& e) {
    throw Error(e.kind(), e.where(), e.message_for([&](const std::string& field) { return flag_for(names, field); }));
  }
}

// "llmem: warning: ..." on stderr, one line per warning, worded with the flags.
void print_warnings(const FlagNames& names, const std::vector<FieldWarning>& warnings);

}  // namespace llmem::cli
