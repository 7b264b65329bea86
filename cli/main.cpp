// llmem: how much GPU memory does this LLM need, and will it run on my GPU?
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

#include <fmt/core.h>

#include "command.hpp"
#include "help_format.hpp"
#include "llmem/error.hpp"
#include "llmem/version.hpp"
#include "safe_text.hpp"
#include "usage.hpp"

namespace llmem::cli {

namespace {
std::multimap<int, CommandSetup>& registry() {
  static std::multimap<int, CommandSetup> r;
  return r;
}
}  // namespace

bool register_command(int order, CommandSetup setup) {
  registry().emplace(order, std::move(setup));
  return true;
}

bool stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }
bool stdout_is_tty() { return ::isatty(STDOUT_FILENO) == 1; }

}  // namespace llmem::cli

// The whole CLI as a function: main() below, and the WebAssembly build's run(args) (web/wasm/entry.cpp).
int llmem_run(int argc, char** argv) {
  CLI::App app{
      "llmem: how much GPU memory does an LLM need, and will it run or fine-tune on my GPU?\n"
      "Exact parameter counts from config.json, safetensors and GGUF headers, without touching weights."};
  app.name("llmem");
  app.set_version_flag("--version", std::string(llmem::kVersion));
  app.require_subcommand(1);
  app.footer(
      "Examples:\n"
      "  llmem estimate microsoft/phi-2              memory of the study's scenario on the reference GPU\n"
      "  llmem fit mistralai/Mistral-7B-v0.1 --gpu RTX-4090   what fits: precision, max context, max batch\n"
      "  llmem params microsoft/phi-2                exact parameter count with a module breakdown\n"
      "  llmem catalog                               models known without any file\n"
      "\nExit codes: 0 success, 1 runtime failure (I/O, driver), 2 bad input or usage, 3 with estimate --check: "
      "does not fit. The rules for flags, sizes and exit codes: docs/cli.md.\n"
      "Run 'llmem COMMAND --help' for a command's options and examples.");
  app.formatter(llmem::cli::wrapping_formatter());  // before the commands: each takes its parent's
  int exit_code = 0;
  for (auto& [order, setup] : llmem::cli::registry()) setup(app, exit_code);
  if (argc <= 1) {  // a bare `llmem`: what it can do
    fmt::print("{}", app.help());
    return 0;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fflush(stdout);
    fmt::print(stderr, "llmem: {}\n", llmem::cli::usage_message(app, std::vector<std::string>(argv + 1, argv + argc), e));
    return 2;
  } catch (const llmem::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "llmem: {}\n", llmem::cli::printable(e.what()));
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "llmem: internal error: {}\n", llmem::cli::printable(e.what()));
    return 1;
  }
  return exit_code;
}

int main(int argc, char** argv) { return llmem_run(argc, argv); }
