// The command line's rules (docs/cli.md), one table row each: an argument list, the exit code it must give, and a
// fragment of what it must say. Usage errors (exit 2) must also be exactly one line on stderr, "llmem: ...", with
// nothing on stdout; every text output must keep to 100 columns; hostile text must reach the terminal escaped.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fixtures/cli_run.hpp"
#include "fixtures/safetensors_writer.hpp"

using llmem::fixtures::CliRun;
using llmem::fixtures::run_llmem;
using llmem::fixtures::shell_quote;
using llmem::fixtures::TempDir;

namespace {

enum class Stream { kErr, kOut };

struct Rule {
  std::string args;
  int exit_code;
  std::string fragment;
  Stream where = Stream::kErr;
};

// Offline, without a Hugging Face cache: every SOURCE here is the embedded catalog or a file in the repository.
const char* kEnv = "HF_HUB_OFFLINE=1 HF_HUB_CACHE=/nonexistent/hf HF_HOME=/nonexistent/hf LLMEM_HEADER_CACHE=/nonexistent/llmem";

const std::vector<Rule>& rules() {
  static const std::vector<Rule> r = {
      // --- a flag given where it does not apply is an error naming the flag and where it applies
      {"estimate mistralai/Mistral-7B-v0.1 --quant Q4_K_M", 2, "--quant applies to --engine llamacpp, not transformers"},
      {"estimate microsoft/phi-2 --ctx 8192", 2, "--ctx applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --ngl 10", 2, "--ngl applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --ubatch 256", 2, "--ubatch applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --cache-type-k q8_0", 2, "--cache-type-k applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --cache-type-v q8_0", 2, "--cache-type-v applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --flash-attn on", 2, "--flash-attn applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --parallel 2", 2, "--parallel applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --tensors", 2, "--tensors applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --n-cpu-moe 4", 2, "--n-cpu-moe applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --cpu-moe", 2, "--cpu-moe applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --override-tensor exps=CPU", 2, "--override-tensor applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --no-mmap", 2, "--no-mmap applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --mlock", 2, "--mlock applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --ram 32GiB", 2, "--ram applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --mmproj", 2, "--mmproj applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --mmproj-type q8_0", 2, "--mmproj-type applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --engine llamacpp --quant Q4_0 --mmproj", 2,
       "microsoft/phi-2: has no vision tower (no vision_config in its config.json): --mmproj applies to vision-language"},
      {"estimate microsoft/phi-2 --engine llamacpp --quant Q4_0 --mmproj-type q8_0", 2, "--mmproj-type applies with --mmproj"},
      {"estimate microsoft/phi-2 --engine llamacpp --quant Q4_0 --no-mmproj-offload", 2, "--no-mmproj-offload applies with --mmproj"},
      {"estimate microsoft/phi-2 --engine llamacpp --quant Q4_0 --mmproj --mmproj-type q4_0", 2,
       "--mmproj-type must be f16, f32, bf16 or q8_0 (the converter's --outtype), got 'q4_0'"},
      {"estimate microsoft/phi-2 --engine llamacpp --quant Q4_K_M --ram 32", 2,
       "--ram 32 has no unit: 32GiB (2^30 bytes) or 32GB (10^9 bytes)?"},
      {"estimate microsoft/phi-2 --engine llamacpp --quant Q4_K_M --ram lots", 2, "--ram 'lots' is not a positive memory size"},
      {"estimate Qwen/Qwen3-30B-A3B --engine llamacpp --quant Q4_K_M --override-tensor exps=GPU", 2,
       "unknown buffer type 'GPU' (llama.cpp's with one GPU: CPU, CUDA0)"},
      {"estimate Qwen/Qwen3-30B-A3B --engine llamacpp --quant Q4_K_M --override-tensor exps", 2,
       "--override-tensor takes PATTERN=BUFFER (e.g. exps=CPU), got 'exps'"},
      {"estimate Qwen/Qwen3-30B-A3B --engine llamacpp --quant Q4_K_M --override-tensor '(exps=CPU'", 2,
       "'(exps' is not a regular expression"},
      {"estimate Qwen/Qwen3-30B-A3B --engine llamacpp --quant Q4_K_M --n-cpu-moe -1", 2, "--n-cpu-moe must be 0 or more"},
      {"estimate microsoft/phi-2 --max-model-len 4096", 2, "--max-model-len applies to --engine vllm"},
      {"estimate microsoft/phi-2 --seq 1024", 2, "--seq applies to --train full, --train lora or --train qlora"},
      {"estimate microsoft/phi-2 --grad-ckpt", 2, "--grad-ckpt applies to --train full, --train lora or --train qlora"},
      {"estimate microsoft/phi-2 --precision amp-bf16", 2, "--precision applies to --train full or --train lora"},
      {"estimate microsoft/phi-2 --optimizer sgd", 2, "--optimizer applies to --train full, --train lora or --train qlora"},
      {"estimate microsoft/phi-2 --lora-r 8", 2, "--lora-r applies to --train lora or --train qlora"},
      {"estimate microsoft/phi-2 --lora-targets q_proj", 2, "--lora-targets applies to --train lora or --train qlora"},
      {"estimate microsoft/phi-2 --train full --lora-r 8", 2, "--lora-r applies to --train lora or --train qlora, not full"},
      {"estimate microsoft/phi-2 --train lora --prompt 100", 2, "--prompt applies to inference, not --train lora"},
      {"estimate microsoft/phi-2 --train full --new-tokens 5", 2, "--new-tokens applies to inference, not --train full"},
      {"estimate microsoft/phi-2 --train full --no-cache", 2, "--no-cache applies to inference, not --train full"},
      {"estimate microsoft/phi-2 --engine llamacpp --quant Q4_0 --mxfp4-kernels yes", 2, "--mxfp4-kernels applies to --engine transformers"},
      {"estimate microsoft/phi-2 --mxfp4-kernels maybe", 2, "--mxfp4-kernels must be yes or no, got 'maybe'"},
      {"estimate microsoft/phi-2 --engine llamacpp --quant Q4_0 --fp8-dequantize", 2, "--fp8-dequantize applies to --engine transformers"},
      {"estimate microsoft/phi-2 --train lora --fp8-dequantize", 2, "--fp8-dequantize applies to inference, not --train lora"},
      {"estimate microsoft/phi-2 --train full --dtype bf16", 2, "--dtype applies to inference, not --train full"},
      {"estimate microsoft/phi-2 --engine llamacpp --quant Q4_0 --train full", 2, "--train applies to --engine transformers, not llamacpp"},
      // --- QLoRA and bitsandbytes' optimizers (issue 14): refusals that say what is possible
      {"estimate meta-llama/Llama-3.1-8B --engine llamacpp --train qlora", 2,
       "--train qlora (a bitsandbytes 4-bit base with LoRA adapters) is modelled for --engine transformers only, not llamacpp"},
      {"estimate meta-llama/Llama-3.1-8B --engine vllm --train qlora", 2, "possible here: inference, or --engine transformers --train qlora"},
      {"fit meta-llama/Llama-3.1-8B --engine llamacpp --train qlora", 2, "modelled for --engine transformers only"},
      {"estimate meta-llama/Llama-3.1-8B --train full --bnb-4bit-quant-type nf4", 2,
       "a bitsandbytes 4-bit base cannot be fully fine-tuned (its Params4bit weights take no gradient); possible: --train qlora"},
      {"estimate meta-llama/Llama-3.1-8B --train qlora --precision amp-bf16", 2, "--precision applies to --train full or --train lora, not qlora"},
      {"estimate meta-llama/Llama-3.1-8B --train qlora --bnb-4bit-quant-type int4", 2, "--bnb-4bit-quant-type must be nf4 or fp4, got 'int4'"},
      {"estimate meta-llama/Llama-3.1-8B --train qlora --lora-targets all-linear,q_proj", 2, "all-linear stands alone"},
      {"estimate meta-llama/Llama-3.1-8B --train lora --optimizer adamw-32bit", 2,
       "--optimizer 'adamw-32bit' is not modelled (of bitsandbytes' optimizers only AdamW8bit and PagedAdamW8bit are); possible: adamw,"},
      {"estimate meta-llama/Llama-3.1-8B --train lora --optimizer lion", 2, "--optimizer must be one of adamw, adamw-foreach"},
      {"estimate meta-llama/Llama-3.1-8B --train qlora --lora-targets all-linear --optimizer paged-adamw-8bit", 0,
       "QLoRA fine-tuning", Stream::kOut},
      {"estimate meta-llama/Llama-3.1-8B --train qlora --bnb-double-quant false --bnb-4bit-quant-type fp4", 0, "FP4 base",
       Stream::kOut},
      {"estimate meta-llama/Llama-3.1-8B --train lora --hf-trainer --optimizer adamw-8bit", 0, "adamw_bnb_8bit", Stream::kOut},
      {"fit meta-llama/Llama-3.1-8B --vram 16GiB --train qlora --optimizer adamw-8bit --lora-r 32", 0, "qlora", Stream::kOut},
      {"fit microsoft/phi-2 --train sometimes", 2, "--train must be full, lora or qlora, got 'sometimes'"},
      {"fit microsoft/phi-2 --engine vllm --train lora", 2, "--train applies to --engine transformers, not vllm"},
      {"estimate microsoft/phi-2 --engine llamacpp --quant Q4_0 --prompt 10", 2, "--prompt applies to --engine transformers"},
      // --- several GPUs (docs/cli.md, "Several GPUs")
      {"estimate microsoft/phi-2 --gpus 0", 2, "--gpus must be at least 1, got 0"},
      {"estimate microsoft/phi-2 --tensor-split 1,1", 2, "--tensor-split applies to --engine llamacpp"},
      {"estimate microsoft/phi-2 --split-mode none", 2, "--split-mode applies to --engine llamacpp"},
      {"estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_0 --gpus 2 --split-mode row", 2,
       "--split-mode row (matrices split across GPUs by rows) is not modelled; layer and none are"},
      {"estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_0 --tensor-split 1,1", 2,
       "--tensor-split has 2 shares for 1 GPUs (--gpus)"},
      {"estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_0 --gpus 2 --tensor-split 1,x", 2,
       "--tensor-split takes non-negative shares separated by commas"},
      {"estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_0 --gpus 2 --split-mode none --main-gpu 2", 2,
       "--main-gpu 2 is not one of the 2 GPUs (0-1)"},
      {"estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_0 --gpus 17", 2, "--gpus must be 1 to 16"},
      {"estimate microsoft/phi-2 --gpus 2 --max-memory 2=20GiB", 2, "--max-memory names GPU 2, but --gpus 2 has GPUs 0-1"},
      {"estimate microsoft/phi-2 --gpus 2 --max-memory 0=20", 2, "--max-memory 0=20 has no unit: 20GiB (2^30 bytes) or 20GB"},
      {"estimate microsoft/phi-2 --gpus 2 --max-memory 0=20GiB,0=10GiB", 2, "--max-memory gives GPU 0 twice"},
      {"estimate microsoft/phi-2 --gpus 2 --max-memory cpu=20GiB", 2, "--max-memory takes GPU=SIZE pairs"},
      {"estimate microsoft/phi-2 --gpus 2 --device-map everywhere", 2, "--device-map must be auto, balanced, balanced_low_0 or sequential"},
      {"estimate microsoft/phi-2 --sharding zero3", 2, "--sharding applies to --train full, --train lora or --train qlora"},
      {"estimate meta-llama/Llama-3.1-8B --train qlora --gpus 2 --sharding ddp", 2, "--sharding is modelled for --train full, not qlora"},
      {"estimate openai/gpt-oss-20b --gpus 2", 2, "--gpus with a quantised checkpoint (quantization_config mxfp4) is not modelled yet"},
      // weights device_map offloads to the CPU do not fit the GPUs, however small the GPUs' own peaks
      {"estimate meta-llama/Llama-3.1-70B --gpus 2 --gpu RTX-4090 --check", 3, "but 88.02 GiB of weights do not fit them", Stream::kOut},
      {"estimate microsoft/phi-2 --train full --sharding zero3", 2, "--sharding zero3 shards over GPUs: with --gpus 1 there is nothing to shard"},
      {"estimate microsoft/phi-2 --train full --gpus 4", 2, "--gpus 4 with training needs --sharding"},
      {"estimate microsoft/phi-2 --train full --gpus 4 --sharding zero4", 2, "--sharding must be ddp, zero1, zero2, zero3 or fsdp"},
      {"estimate microsoft/phi-2 --train lora --gpus 2 --sharding fsdp", 2, "--sharding is modelled for --train full, not lora"},
      {"estimate microsoft/phi-2 --train full --gpus 2 --sharding zero2 --optimizer sgd", 2, "--sharding zero2 is modelled with AdamW"},
      {"estimate microsoft/phi-2 --train full --gpus 2 --device-map auto", 2, "--device-map applies to inference, not --train full"},
      {"estimate microsoft/phi-2 --engine llamacpp --quant Q4_0 --gpus 2", 0, "note: 2 GPUs, --split-mode layer", Stream::kOut},
      {"estimate microsoft/phi-2 --gpus 2 --device-map sequential --json", 0, "\"per_gpu\"", Stream::kOut},
      {"estimate microsoft/phi-2 --train full --gpus 4 --sharding zero3", 0, "DeepSpeed's estimator says", Stream::kOut},
      {"estimate microsoft/phi-2 --engine llamacpp --quant Q4_0 --attn eager", 2, "--attn applies to --engine transformers"},
      {"estimate microsoft/phi-2 --engine llamacpp --quant Q4_0 --dtype bf16", 2,
       "--dtype applies to --engine transformers or --engine vllm, not llamacpp"},
      {"estimate microsoft/phi-2 --engine vllm --prompt 10", 2, "--prompt applies to --engine transformers, not vllm"},
      {"fit microsoft/phi-2 --quant Q4_K_M", 2, "--quant applies to --engine llamacpp"},
      {"fit microsoft/phi-2 --ctx 4096", 2, "--ctx applies to --engine llamacpp"},
      {"fit microsoft/phi-2 --cache-type q8_0", 2, "--cache-type applies to --engine llamacpp"},
      {"fit microsoft/phi-2 --engine llamacpp --prompt 100", 2, "--prompt applies to --engine transformers"},
      {"fit microsoft/phi-2 --engine llamacpp --seq 100", 2, "--seq applies to --engine transformers"},
      {"fit microsoft/phi-2 --engine llamacpp --gpus 2", 2, "--gpus 2 applies to --engine transformers"},
      {"fit microsoft/phi-2 --engine vllm --gpus 2", 2, "--gpus 2 applies to --engine transformers"},
      // the flags that do apply still run
      {"estimate microsoft/phi-2 --train lora --lora-r 8 --seq 256", 0, "LoRA fine-tuning", Stream::kOut},
      {"fit TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_0 --ctx 2048", 0, "Q4_0", Stream::kOut},
      // --- a GGUF source runs under llama.cpp by itself (this file lacks llama.cpp's keys: its loader says so)
      {"estimate tests/fuzz/corpus/gguf/small_v3.gguf", 2, "key 'llama.block_count' is missing"},
      {"estimate tests/fuzz/corpus/gguf/small_v3.gguf --engine transformers", 2, "config.json of a known architecture"},
      {"estimate tests/fuzz/corpus/gguf/small_v3.gguf --dtype bf16", 2, "(a GGUF SOURCE runs under llamacpp unless --engine"},
      // --- sources: a path that is not there, and Hub options on a local path
      {"estimate ./nope/config.json", 2, "./nope/config.json: no such file or directory"},
      {"estimate /x/model.safetensors", 2, "no such file or directory"},
      {"estimate x.gguf", 2, "x.gguf: no such file or directory"},
      {"params nope/config.json", 2, "no such file or directory"},
      {"estimate tests --revision main", 2, "--revision applies to a Hub model (org/name), not to a local path"},
      {"params tests --gguf-file a.gguf", 2, "--gguf-file applies to a Hub model"},
      {"params tests --remote", 2, "--remote applies to a Hub model"},
      // --- units
      {"fit microsoft/phi-2 --vram 12", 2, "--vram 12 has no unit: 12GiB (2^30 bytes) or 12GB (10^9 bytes)?"},
      {"fit microsoft/phi-2 --vram 12.5", 2, "--vram 12.5 has no unit"},
      {"fit microsoft/phi-2 --reserve 1", 2, "--reserve 1 has no unit"},
      {"fit microsoft/phi-2 --vram lots", 2, "--vram 'lots' is not a positive memory size"},
      {"fit microsoft/phi-2 --vram 24MB", 0, "llmem: warning: --vram 24MB is 0.0224 GiB, less than any GPU"},
      {"fit microsoft/phi-2 --vram 24TB", 0, "llmem: warning: --vram 24TB is 22352 GiB per GPU, beyond any GPU"},
      {"fit microsoft/phi-2 --vram 80GB", 0, "cards sold as 80 GB have about 80 GiB"},
      {"fit microsoft/phi-2 --gpu A100-80GB --vram 80GB", 0, "--vram 80GB (74.51 GiB) replaces A100-80GB's 80.00 GiB"},
      {"fit microsoft/phi-2 --vram 24GiB", 0, "budget 23.50 GiB: 24.00 GiB less a 0.50 GiB reserve (the default", Stream::kOut},
      {"fit microsoft/phi-2 --vram 24GiB --reserve 0 --json", 0, "\"budget_bytes\": 25769803776", Stream::kOut},
      {"fit microsoft/phi-2 --gpu RTX-4090 --reserve 30GiB", 2, "--reserve 30GiB leaves nothing of the GPU's 23.99 GiB"},
      {"estimate microsoft/phi-2 --gpu H100-80GB-HBM3 --json", 0, "\"memory_bytes\": 85520809984", Stream::kOut},
      // --- the model's context limit
      {"estimate openai-community/gpt2 --prompt 2000", 2, "learned position embeddings (max_position_embeddings): transformers fails"},
      {"estimate microsoft/phi-2 --prompt 100000", 0, "beyond the model's", Stream::kOut},
      {"fit microsoft/phi-2 --prompt 100000", 2, "--prompt 100000 + --new-tokens 14 needs 100013 positions"},
      {"fit microsoft/phi-2 --engine transformers --seq 4096", 2, "--seq 4096 needs 4096 positions"},
      {"fit --vram 24GiB --prompt 3000", 0, "skipped: microsoft/phi-2: a 3000-token prompt", Stream::kOut},
      // --- several GPUs: an approximation, said per figure
      {"fit microsoft/phi-2 --gpu RTX-4090 --gpus 2", 0, "~ an approximation", Stream::kOut},
      {"fit microsoft/phi-2 --gpu RTX-4090 --gpus 2 --json", 0, "\"per_gpu_approximate\": true", Stream::kOut},
      // --- errors and names
      {"estimat", 2, "unknown command 'estimat' (did you mean estimate?)"},
      {"fitt microsoft/phi-2", 2, "did you mean fit?"},
      {"fit microsoft/phi-2 --vrma 24GiB", 2, "fit: unknown flag --vrma (did you mean --vram?)"},
      {"fit microsoft/phi-2 --ngl 3", 2, "fit: unknown flag --ngl"},
      {"--vrma 24GiB", 2, "unknown flag --vrma (did you mean --vram? estimate and fit have --vram)"},
      {"--vram 24GiB fit", 2, "--vram goes after the command: 'llmem estimate --vram' (estimate and fit have it)"},
      {"estimate microsoft/phi-2 --prompt abc", 2, "--prompt takes a number, got 'abc'"},
      {"estimate microsoft/phi-2 --prompt", 2, "--prompt"},
      {"params", 2, "params needs a SOURCE"},
      {"estimate microsoft/phi-2 microsoft/phi-2", 2, "unexpected argument"},
      {"estimate microsoft/phi-2 --gpu A100", 2, "(did you mean A100-40GB or A100-80GB?)"},
      {"estimate microsoft/phi-2 --gpu 4090", 2, "(did you mean RTX-4090 or RTX-4090-Laptop?)"},
      {"estimate microsoft/phi-2 --gpu h100", 2, "H100-80GB-HBM3"},
      {"estimate mistral", 2, "did you mean mistralai/Mistral-7B-v0.1"},
      {"estimate Qwen/Qwen2.5-7B-Instrct", 2, "did you mean Qwen/Qwen2.5-7B-Instruct"},
      {"estimate microsoft/phi-2 --engine llamcpp", 2, "unknown --engine 'llamcpp'"},
      // --- output
      {"", 0, "Usage:", Stream::kOut},
      {"estimate --list-gpus --json", 0, "\"schema_version\": 1", Stream::kOut},
      {"fit --list-gpus --json", 0, "\"schema_version\": 1", Stream::kOut},
      {"estimate --list-quants --json", 0, "\"schema_version\": 1", Stream::kOut},
      {"catalog --json", 0, "\"schema_version\": 1", Stream::kOut},
      {"families --json", 0, "\"schema_version\": 1", Stream::kOut},
      {"validate --json bench/data/transformers_memory.jsonl", 0, "\"schema_version\": 1", Stream::kOut},
      {"estimate mistralai/Mistral-7B-v0.1 --gpu RTX-4060 --check", 3, "Does NOT fit", Stream::kOut},
      {"estimate microsoft/phi-2 --gpu RTX-4090 --check", 0, "Fits on", Stream::kOut},
  };
  return r;
}

// The repository's files by absolute path (ctest runs in the build directory): "tests/..." and "bench/..." words,
// and "tests" itself.
std::string in_repo(const std::string& args) {
  std::istringstream words(args);
  std::string out;
  for (std::string w; words >> w;) {
    if (w == "tests" || w.rfind("tests/", 0) == 0 || w.rfind("bench/", 0) == 0) w = std::string(LLMEM_SOURCE_DIR) + "/" + w;
    out += (out.empty() ? "" : " ") + w;
  }
  return out;
}

size_t columns(const std::string& line) {
  size_t n = 0;
  for (char c : line) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

}  // namespace

TEST(CliRules, EveryRuleOfTheTable) {
  for (const Rule& rule : rules()) {
    SCOPED_TRACE("llmem " + rule.args);
    const CliRun r = run_llmem(in_repo(rule.args), kEnv);
    EXPECT_EQ(r.exit_code, rule.exit_code) << r.err;
    const std::string& text = rule.where == Stream::kErr ? r.err : r.out;
    EXPECT_NE(text.find(rule.fragment), std::string::npos) << (rule.where == Stream::kErr ? "stderr: " : "stdout: ") << text;
    if (rule.exit_code == 2) {
      EXPECT_TRUE(r.out.empty()) << r.out;
      EXPECT_EQ(r.err.rfind("llmem: ", 0), 0u) << r.err;
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
  }
}

// Text output keeps to 100 columns, whatever the command (markdown tables excepted).
TEST(CliRules, TextFitsOneHundredColumns) {
  for (const char* args : {"estimate microsoft/phi-2", "estimate microsoft/phi-2 --prompt 100000",
                           "estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --train full --precision amp-bf16 --seq 2048",
                           "estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --engine llamacpp --quant Q4_K_M --tensors",
                           "estimate meta-llama/Llama-3.1-8B --engine vllm --gpu RTX-3090 --max-model-len 16384",
                           "estimate --list-gpus", "estimate --list-quants", "fit --list-gpus", "fit microsoft/phi-2 --gpu RTX-4090",
                           "fit google/gemma-2-2b --vram 8GiB --prompt 2000 --gpus 3", "fit --vram 24GiB", "fit Qwen/Qwen3-8B --engine vllm",
                           "fit --vram 24GiB --engine vllm", "params deepseek-ai/DeepSeek-R1",
                           "fit mistralai/Mistral-7B-v0.1 --engine llamacpp --vram 8GiB", "fit --engine llamacpp --vram 8GiB",
                           "estimate tests/fixtures/gemma3_4b_vlm_config.json --engine llamacpp --quant Q4_K_M --mmproj --mmproj-type f32",
                           "estimate tests/fixtures/gemma3_4b_vlm_config.json --engine llamacpp --quant Q4_K_M --mmproj "
                           "--no-mmproj-offload --flash-attn off",
                           "params tests/fixtures/gemma3_tiny_mmproj_f16.gguf",
                           "study", "params Qwen/Qwen3-30B-A3B --depth 3", "catalog", "families",
                           "validate bench/data/transformers_memory.jsonl bench/data/llamacpp_memory_h200.jsonl",
                           "validate --summary bench/data/transformers_memory.jsonl", "validate bench/data/vllm_public_logs.jsonl",
                           "--help", "estimate --help", "fit --help"}) {
    const CliRun r = run_llmem(in_repo(args), kEnv);
    ASSERT_EQ(r.exit_code, 0) << args << "\n" << r.err;
    std::istringstream lines(r.out);
    int n = 0;
    for (std::string line; std::getline(lines, line); ++n) EXPECT_LE(columns(line), 100u) << "llmem " << args << ", line " << n + 1 << ": " << line;
    EXPECT_GT(n, 0) << args;
  }
}

// A long detail moves to a footnote at its colon; a parenthesis open before the colon closes after the reference
// ("(peak [2])"), so each footnote is a whole phrase.
TEST(CliRules, FootnotesKeepTheirParenthesesWhole) {
  for (const char* args : {"estimate microsoft/phi-2 --prompt 100000",
                           "estimate TinyLlama/TinyLlama-1.1B-Chat-v1.0 --train full --precision amp-bf16 --seq 2048 --grad-ckpt"}) {
    const CliRun r = run_llmem(in_repo(args), kEnv);
    ASSERT_EQ(r.exit_code, 0) << args << "\n" << r.err;
    std::vector<std::string> blocks;  // the footnotes, "[n] text" with their continuation lines
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.size() > 1 && line[0] == '[' && std::isdigit(static_cast<unsigned char>(line[1]))) blocks.push_back(line);
      else if (!blocks.empty()) blocks.back() += " " + line;
    }
    EXPECT_GE(blocks.size(), 2u) << args << "\n" << r.out;
    for (const std::string& b : blocks) EXPECT_EQ(std::count(b.begin(), b.end(), '('), std::count(b.begin(), b.end(), ')')) << args << ": " << b;
  }
}

// A file's bytes never reach the terminal raw: terminal escapes and bytes that are not UTF-8 come out as \xNN, and
// a parser's error says where, not what it read.
TEST(CliRules, HostileFileTextIsPrintedSafely) {
  TempDir tmp;
  std::ofstream(tmp.file("escape.json")) << R"({"model_type": "\u001b[31mred\u001b]0;title\u0007", "num_hidden_layers": 2})";
  std::ofstream(tmp.file("bytes.json"), std::ios::binary) << "{\"model_type\": \"\xff\xfe\x9b" "31m\"}";
  std::ofstream(tmp.file("broken.json"), std::ios::binary) << "{\"a\": \xff\x1b[2J}";
  for (const char* name : {"escape.json", "bytes.json", "broken.json"}) {
    SCOPED_TRACE(name);
    const CliRun r = run_llmem("params " + shell_quote(tmp.file(name)), kEnv);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    for (char c : r.err) {
      const auto u = static_cast<unsigned char>(c);
      EXPECT_TRUE(c == '\n' || (u >= 0x20 && u != 0x7F)) << "control byte " << static_cast<int>(u) << " in: " << r.err;
    }
    EXPECT_EQ(r.err.find("json.exception"), std::string::npos) << r.err;
  }
  EXPECT_NE(run_llmem("params " + shell_quote(tmp.file("escape.json")), kEnv).err.find("\\x1B[31mred"), std::string::npos);
  EXPECT_NE(run_llmem("params " + shell_quote(tmp.file("broken.json")), kEnv).err.find("syntax error at line 1, column 7"),
            std::string::npos);
}
