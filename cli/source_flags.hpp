// The SOURCE options every command that reads a model shares (params today; estimate, fit and validate can add
// them with one call): --revision, --gguf-file, --remote, --offline, --verbose.
//
//   auto src_opts = std::make_shared<SourceCliOptions>();
//   add_source_options(cmd, *src_opts);
//   ...callback: ModelSource src = open_source(*source, src_opts->to_options());
//                print_source_verbose(src, *src_opts);          // stderr, only with --verbose
//                json["source"] = source_json(src);              // spec, kind, revision, files_read, remote
#pragma once

#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "llmem/source.hpp"

namespace llmem::cli {

struct SourceCliOptions {
  std::string revision;
  std::string gguf_file;
  bool remote = false;
  bool offline = false;
  bool verbose = false;
  SourceOptions to_options() const;
};

// `cmd` must outlive parsing, and so must `opts` (hold it in a shared_ptr captured by the callback).
void add_source_options(CLI::App* cmd, SourceCliOptions& opts);

// With --verbose, on stderr: where the model came from and what reading it cost (each Hub request, bytes).
void print_source_verbose(const ModelSource& src, const SourceCliOptions& opts);

// The "source" object of --json output: spec, kind, location, revision, files_read, header_bytes_read, and for a
// Hub model remote: {endpoint, repo, requested_revision, commit, network_used, requests, bytes_transferred,
// retries, cached_files, cache_dir}. Never holds a token.
nlohmann::json source_json(const ModelSource& src);

}  // namespace llmem::cli
