// llmem: how much GPU memory does this LLM need, and will it run on my GPU?
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
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

namespace {

// glibc reads its malloc tunables once, at start-up. `fit` ranks whole catalogs: about 150 MB of fresh heap, first
// touched in 4 KiB pages (some 40,000 faults, a quarter of the run's CPU time on the 2-core build machine). Backed
// by transparent huge pages (glibc.malloc.hugetlb=1: the heap madvise()d for them) the same ranking took 0.52 s
// instead of 0.73 s (median of 6 runs each). So `fit` starts itself again, once, with that tunable added, unless
// the environment names it already or sets LLMEM_NO_HUGEPAGES. Other commands run as started: measure's command
// inherits the environment, and the rest are short. Where the kernel has no transparent huge pages the tunable
// does nothing; where glibc does not know it (before 2.35), it is ignored.
void fit_on_huge_pages([[maybe_unused]] int argc, [[maybe_unused]] char** argv) {
#if defined(__linux__) && defined(__GLIBC__) && !defined(__EMSCRIPTEN__)
  if (argc < 2 || std::string_view(argv[1]) != "fit" || std::getenv("LLMEM_NO_HUGEPAGES")) return;
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::string_view(tunables).find("glibc.malloc.hugetlb") != std::string_view::npos) return;
  const std::string before = tunables ? tunables : "";
  const std::string with = before.empty() ? "glibc.malloc.hugetlb=1" : before + ":glibc.malloc.hugetlb=1";
  if (::setenv("GLIBC_TUNABLES", with.c_str(), 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  // not started again (no /proc, say): on as started, the environment as it was
  if (tunables) ::setenv("GLIBC_TUNABLES", before.c_str(), 1);
  else ::unsetenv("GLIBC_TUNABLES");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  fit_on_huge_pages(argc, argv);
  return llmem_run(argc, argv);
}
