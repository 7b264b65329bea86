#include "source_flags.hpp"

#include <fmt/core.h>

#include "llmem/estimate_report.hpp"

namespace llmem::cli {

SourceOptions SourceCliOptions::to_options() const {
  SourceOptions o;
  o.revision = revision;
  o.gguf_file = gguf_file;
  o.remote = remote;
  o.offline = offline;
  return o;
}

void add_source_options(CLI::App* cmd, SourceCliOptions& opts) {
  cmd->add_option("--revision", opts.revision, "Revision (branch, tag, commit) for org/name; same as org/name@REV");
  cmd->add_option("--gguf-file", opts.gguf_file, "For org/name on the Hub: read this .gguf file of the repo; same as org/name/FILE.gguf");
  cmd->add_flag("--remote", opts.remote,
                "Read org/name from the Hub (headers only), skipping the local Hugging Face cache and the embedded catalog");
  cmd->add_flag("--offline", opts.offline,
                "Never use the network: a Hub model comes from llmem's header cache only (also HF_HUB_OFFLINE=1)");
  cmd->add_flag("-v,--verbose", opts.verbose, "Print on stderr what was read: Hub requests, bytes transferred, cache use");
}

void print_source_verbose(const ModelSource& src, const SourceCliOptions& opts) {
  if (opts.verbose) fmt::print(stderr, "{}", report::source_read_text(src));
}

}  // namespace llmem::cli
