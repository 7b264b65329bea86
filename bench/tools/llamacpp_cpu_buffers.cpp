// Developer tool: what llmem predicts a CPU build of llama.cpp logs for a GGUF run with every layer on the CPU
// ("CPU compute buffer size", the KV cache), to compare with bench/gpu/llamacpp/cpu_buffers.sh's records.
//
//   llamacpp_cpu_buffers FILE.gguf N_CTX on|off [N_UBATCH [N_PARALLEL [CACHE_TYPE]]]
#include <cstdio>
#include <string>

#include "llmem/gguf.hpp"
#include "llmem/llamacpp.hpp"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s FILE.gguf N_CTX on|off [N_UBATCH [N_PARALLEL [CACHE_TYPE]]]\n", argv[0]);
    return 2;
  }
  try {
    const llmem::llamacpp::Model m = llmem::llamacpp::from_gguf(llmem::read_gguf_file(argv[1]));
    llmem::llamacpp::RunOptions run;
    run.n_ctx = std::stoull(argv[2]);
    run.flash_attn = std::string(argv[3]) == "on" ? llmem::llamacpp::FlashAttn::kOn : llmem::llamacpp::FlashAttn::kOff;
    if (argc > 4) run.n_ubatch = std::stoull(argv[4]);
    if (argc > 5) run.n_parallel = std::stoull(argv[5]);
    if (argc > 6) run.type_k = run.type_v = llmem::dtype_from_name(argv[6]).value_or(llmem::DType::F16);
    run.n_batch = run.n_ubatch;
    const uint64_t compute = llmem::llamacpp::cpu_compute_buffer_bytes(m, run);
    std::printf("{\"cpu_compute_bytes\":%llu,\"cpu_compute_mib\":%.2f}\n", static_cast<unsigned long long>(compute),
                static_cast<double>(compute) / (1 << 20));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[1], e.what());
    return 2;
  }
}
