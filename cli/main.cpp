// llmem: how much GPU memory does this LLM need, and will it run on my GPU?
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

#include <fmt/core.h>

#include "command.hpp"
#include "llmem/error.hpp"
#include "llmem/version.hpp"

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
      "  llmem study                               the seed study's table for the embedded catalog\n"
      "  llmem params microsoft/phi-2              exact parameter count with a module breakdown\n"
      "  llmem params ./model-dir --depth 3 --json\n"
      "  llmem catalog                             models known without any file\n"
      "\nExit codes: 0 success, 1 runtime failure (I/O, driver), 2 bad input or usage.\n"
      "Run 'llmem COMMAND --help' for a command's options and examples.");
  int exit_code = 0;
  for (auto& [order, setup] : llmem::cli::registry()) setup(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const llmem::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "llmem: {}\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "llmem: internal error: {}\n", e.what());
    return 1;
  }
  return exit_code;
}

int main(int argc, char** argv) { return llmem_run(argc, argv); }
