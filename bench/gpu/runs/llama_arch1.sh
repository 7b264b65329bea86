#!/bin/bash
# Issue 19, third llama.cpp call of 2026-12-05: the architectures checked so far only on a CPU build, now on the GPU
# (CUDA buffers and NVML process peak): gpt-neox (pythia), phi2, falcon, bloom, olmo2, deepseek2 (V2-Lite shape with
# MLA, and V3's group-limited routing), each cut as bench/gpu/llamacpp/cpu_set.sh cuts it but with its own
# vocabulary; Q4_K_M; n_ctx 4096 with flash attention on and off, half the layers offloaded, n_ctx 32768.
set -o pipefail
M="pythia-2L=EleutherAI__pythia-1.4b,num_hidden_layers=2;phi2-2L=microsoft__phi-2,num_hidden_layers=2"
M="$M;falcon7b-2L=tiiuae__falcon-7b,num_hidden_layers=2;bloom-2L=bigscience__bloom-560m,n_layer=2"
M="$M;olmo2-s=allenai__OLMo-2-0325-32B,num_hidden_layers=2,hidden_size=1280,num_attention_heads=10,num_key_value_heads=2,intermediate_size=3456"
M="$M;dsv2lite-s=deepseek-ai__DeepSeek-V2-Lite,num_hidden_layers=27,hidden_size=512,intermediate_size=1024,moe_intermediate_size=256,n_routed_experts=4,num_experts_per_tok=2"
M="$M;dsv3-s=deepseek-ai__DeepSeek-V3,num_hidden_layers=3,first_k_dense_replace=1,hidden_size=1024,num_attention_heads=16,num_key_value_heads=16,intermediate_size=2048,moe_intermediate_size=256,n_routed_experts=16,num_experts_per_tok=4,n_group=4,topk_group=2,quantization_config=null"
C="ctx=4096,fa=on,ngl=all;ctx=4096,fa=off,ngl=all;ctx=4096,fa=on,ngl=half;ctx=32768,fa=on,ngl=all"
timeout 590 bash bench/gpu/llamacpp/run_all.sh --deadline 560 --prep-deadline 300 --stages 123J4 --models "$M" \
  --schemes Q4_K_M --keep Q4_K_M --measure-schemes Q4_K_M --ctx 4096,32768 --fa on,off --measure-args "--configs $C"
