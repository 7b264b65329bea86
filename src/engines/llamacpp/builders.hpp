// One graph builder per llama.cpp architecture, each the re-statement of its src/models/<arch>.cpp at 80fb11ac in
// the shared blocks of graph.hpp. architectures.cpp registers them under their general.architecture names.
#pragma once

namespace llmem::llamacpp {

class LlmGraph;

void build_llama(LlmGraph& g);
void build_mistral3(LlmGraph& g);
void build_qwen2(LlmGraph& g);
void build_qwen3(LlmGraph& g);
void build_qwen3moe(LlmGraph& g);
void build_gemma(LlmGraph& g);
void build_gemma2(LlmGraph& g);
void build_gemma3(LlmGraph& g);
void build_phi3(LlmGraph& g);
void build_gpt2(LlmGraph& g);
void build_gptneox(LlmGraph& g);
void build_phi2(LlmGraph& g);
void build_falcon(LlmGraph& g);
void build_bloom(LlmGraph& g);
void build_olmo2(LlmGraph& g);
void build_qwen(LlmGraph& g);
void build_deepseek2(LlmGraph& g);
void build_gpt_oss(LlmGraph& g);

}  // namespace llmem::llamacpp
