// The WebAssembly build's entry point (cmake/web.cmake adds this file to the `llmem` target there only).
//
// llmem_web_run() is the CLI itself (llmem_run in cli/main.cpp) with its output flushed, called by run(args) in
// web/wasm/api.js once per command. The GPU commands keep their flags and --help, but a browser tab can neither
// load NVML nor start a process, so their callbacks say that they need the native binary instead.
#include <cstdio>
#include <string>

#include "command.hpp"
#include "llmem/error.hpp"

int llmem_run(int argc, char** argv);  // cli/main.cpp

namespace llmem::cli {
namespace {

// Order 1000: after every command has registered itself (the registry runs setups in order).
const bool native_only_registered = register_command(1000, [](CLI::App& root, int& /*exit_code*/) {
  for (const char* name : {"gpus", "measure", "probe"}) {
    CLI::App* sub = nullptr;
    try {
      sub = root.get_subcommand(name);
    } catch (const CLI::OptionNotFound&) {
      continue;  // a command that no longer exists needs no answer here
    }
    const std::string command = name;
    sub->callback([command] {
      throw Error(ErrorKind::kRuntime, command,
                  "needs the native llmem binary: this WebAssembly build runs in a browser or Node.js, where NVIDIA's "
                  "driver (NVML, CUDA) cannot be loaded and no process can be started");
    });
  }
});

}  // namespace
}  // namespace llmem::cli

extern "C" int llmem_web_run(int argc, char** argv) {
  const int code = llmem_run(argc, argv);
  std::fflush(stdout);
  std::fflush(stderr);
  return code;
}
