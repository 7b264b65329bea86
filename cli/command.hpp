// Subcommands register themselves here, one file each (params.cpp, estimate.cpp, gpus.cpp, ...), so adding a
// command touches no other file. The registry is in the executable, not the library, so static registration
// is safe from the linker dropping unreferenced objects.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace llmem::cli {

// Called once at start-up with the root app. The setup adds its subcommand and a callback that stores the
// process exit code in `exit_code` (0 by default). Errors are thrown as llmem::Error; main prints them.
using CommandSetup = std::function<void(CLI::App& root, int& exit_code)>;

// `order` fixes the order in --help. Returns true so it can initialise a static.
bool register_command(int order, CommandSetup setup);

// True when stderr is a terminal (progress display is only shown then).
bool stderr_is_tty();
bool stdout_is_tty();

}  // namespace llmem::cli
