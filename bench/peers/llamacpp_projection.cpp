// llama.cpp's own projection of its memory, in bytes, for many cases in one process.
//
// This is what `llama-fit-params --fit-print` (and the `--fit` of llama-server/llama-cli) computes at the pinned
// commit: the model loaded with no_alloc, a context made from the same parameters, and llama_get_memory_breakdown
// read per buffer type. llama-fit-params prints it in whole MiB (truncated) and for one case per process; this
// prints bytes, and runs every case after a single backend initialisation, so a device call can project all the
// measured runs in seconds. Arguments are parsed by llama.cpp's own parser (common_params_parse, the fit-params
// example), so -ngl, -c, -b, -ub, -fa, -ctk, -ctv, -ncmoe, -ot, -ts, -sm, --no-mmap mean what they mean there.
//
// Build (against the pinned commit's headers and .llama/lib; see bench/peers/README.md):
//   g++ -std=c++17 -O2 -I$S/include -I$S/src -I$S/common -I$S/ggml/include -I$S/vendor \
//     bench/peers/llamacpp_projection.cpp -o .llama/bin/llamacpp-projection \
//     -L.llama/lib -l:libllama-common.so -l:libllama.cuda.v0.4.0.so -l:libggml.cuda.v0.4.0.so -l:libggml-base.so
//
// Input (stdin): one case per line, `ID<TAB>ARGS`, ARGS separated by single spaces as llama-fit-params takes them.
// Output (stdout): one JSON object per case: {"id", "ok", "buffers": [{"buft", "host", "model", "context",
// "compute"}], "error"}. llama.cpp's log goes to stderr, prefixed with the case id.
#include "arg.h"
#include "common.h"
#include "ggml-backend.h"
#include "llama-ext.h"
#include "llama.h"

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "peer_json.hpp"

namespace {

std::string current_id;

void log_to_stderr(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_DEBUG) return;
  std::fprintf(stderr, "[%s] %s", current_id.c_str(), text);
}

std::string project(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  static char prog[] = "llamacpp-projection";
  argv.push_back(prog);
  std::vector<std::string> owned(args);
  for (auto& a : owned) argv.push_back(a.data());
  common_params params;
  if (!common_params_parse(static_cast<int>(argv.size()), argv.data(), params, LLAMA_EXAMPLE_FIT_PARAMS)) {
    return "\"ok\":false,\"error\":\"arguments not accepted\"";
  }
  llama_model_params mparams = common_model_params_to_llama(params);
  llama_context_params cparams = common_context_params_to_llama(params);
  mparams.no_alloc = true;  // as common_get_device_memory_data_impl (common/fit.cpp) loads it
  mparams.load_mode = LLAMA_LOAD_MODE_NONE;
  llama_model* model = llama_model_load_from_file(params.model.path.c_str(), mparams);
  if (model == nullptr) return "\"ok\":false,\"error\":\"failed to load model\"";
  llama_context* ctx = llama_init_from_model(model, cparams);
  if (ctx == nullptr) {
    llama_model_free(model);
    return "\"ok\":false,\"error\":\"failed to create the context\"";
  }
  std::ostringstream out;
  out << "\"ok\":true,\"n_ctx\":" << llama_n_ctx(ctx) << ",\"n_devices\":" << llama_model_n_devices(model)
      << ",\"buffers\":[";
  bool first = true;
  for (const auto& [buft, mb] : llama_get_memory_breakdown(ctx)) {
    out << (first ? "" : ",") << "{\"buft\":\"" << json_escape(ggml_backend_buft_name(buft)) << "\",\"host\":"
        << (ggml_backend_buft_is_host(buft) ? "true" : "false") << ",\"model\":" << mb.model
        << ",\"context\":" << mb.context << ",\"compute\":" << mb.compute << "}";
    first = false;
  }
  out << "]";
  llama_free(ctx);
  llama_model_free(model);
  return out.str();
}

}  // namespace

int main() {
  common_init();
  llama_log_set(log_to_stderr, nullptr);
  llama_backend_init();
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    const auto tab = line.find('\t');
    current_id = line.substr(0, tab);
    std::vector<std::string> args;
    if (tab != std::string::npos) {
      std::istringstream rest(line.substr(tab + 1));
      for (std::string a; rest >> a;) args.push_back(a);
    }
    std::string body;
    try {
      body = project(args);
    } catch (const std::exception& e) {
      body = std::string("\"ok\":false,\"error\":\"") + json_escape(e.what()) + "\"";
    }
    std::cout << "{\"id\":\"" << json_escape(current_id) << "\"," << body << "}" << std::endl;
  }
  llama_backend_free();
  return 0;
}
