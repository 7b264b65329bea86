// The SOURCE options every command that reads a model shares (params, estimate, fit, measure --estimate):
// --revision, --gguf-file, --remote, --offline, --verbose.
//
//   auto src_opts = std::make_shared<SourceCliOptions>();
//   add_source_options(cmd, *src_opts);
//   ...callback: a library call with src_opts->to_options(), then print_source_verbose(src, *src_opts)
#pragma once

#include <CLI/CLI.hpp>

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

}  // namespace llmem::cli
