#include "source_flags.hpp"

#include <fmt/core.h>

#include "llmem/units.hpp"

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
  if (!opts.verbose) return;
  if (!src.remote) {
    fmt::print(stderr, "llmem: {} ({}): {} of headers from {} file(s)\n", src.display_name(), source_kind_name(src.kind),
               format_bytes(src.header_bytes_read), src.files_read.size());
    return;
  }
  const RemoteReadReport& r = *src.remote;
  fmt::print(stderr, "llmem: hub {} {}@{} -> commit {}\n", r.endpoint, r.repo, r.requested_revision,
             r.commit.empty() ? "(not reported)" : r.commit);
  for (const auto& line : r.request_log) fmt::print(stderr, "llmem:   {}\n", line);
  fmt::print(stderr, "llmem: {} request(s), {} transferred ({} bytes), {} retr{}; {} file(s) from the header cache{}\n", r.requests,
             format_bytes(r.bytes_transferred), r.bytes_transferred, r.retries, r.retries == 1 ? "y" : "ies", r.cached_files,
             r.cache_dir.empty() ? "" : " (" + r.cache_dir + ")");
  if (!r.cache_note.empty()) fmt::print(stderr, "llmem: {}\n", r.cache_note);
}

nlohmann::json source_json(const ModelSource& src) {
  nlohmann::json j = {{"spec", src.spec},
                      {"kind", source_kind_name(src.kind)},
                      {"location", src.location},
                      {"revision", src.revision},
                      {"files_read", src.files_read},
                      {"header_bytes_read", src.header_bytes_read}};
  if (src.remote) {
    const RemoteReadReport& r = *src.remote;
    j["remote"] = {{"endpoint", r.endpoint},
                   {"repo", r.repo},
                   {"requested_revision", r.requested_revision},
                   {"commit", r.commit},
                   {"network_used", r.network_used},
                   {"requests", r.requests},
                   {"bytes_transferred", r.bytes_transferred},
                   {"retries", r.retries},
                   {"cached_files", r.cached_files},
                   {"cache_dir", r.cache_dir}};
  } else {
    j["remote"] = nullptr;
  }
  return j;
}

}  // namespace llmem::cli
