// Run node-llama-cpp's (3.21.1) GGUF-header VRAM estimate for a list of cases, without a GPU.
//
// Input (stdin): JSON lines {id, file, n_ctx, flash_attn: bool, cache_type_k, cache_type_v, ngl, batch}
// Output (stdout): one JSON line per case.
//
// How: `node-llama-cpp inspect estimate --gpu cuda` needs a working CUDA backend (without one it tries
// to compile llama.cpp from source and fails), so this calls the same code the CLI calls:
// GgufInsights.configurationResolver.resolveAndScoreConfig() with a fake VRAM state (an H200, 141 GiB
// free, no unified memory) and the "Llama without backend" that GgufInsights.from() falls back to.
// That resolver calls estimateModelResourceRequirementsV2 / estimateContextResourceRequirementsV2,
// which first try a llama.cpp "simulation" (load the model with no_alloc in the addon and read
// llama.cpp's own memory breakdown) and fall back to the JS heuristic when that is not possible. Here
// the simulation is not possible for the GPU (no CUDA backend) and we record which path was taken by
// also calling the heuristic (V1) functions directly: estimateModelResourceRequirements and
// estimateContextResourceRequirements, and split the context part into KV / output / compute.
import process from "node:process";
import readline from "node:readline";

const NLC = process.env.NLC_DIR ?? "/work/nlc-app/node_modules/node-llama-cpp";
const { readGgufFileInfo, GgufInsights, GgmlType } = await import(`${NLC}/dist/index.js`);
const { getLlamaWithoutBackend } = await import(`${NLC}/dist/bindings/utils/getLlamaWithoutBackend.js`);

const H200_TOTAL = 150754820096; // bytes NVML reports for the H200 the runs used
const kvType = (s) => {
    const t = GgmlType[String(s).toUpperCase()];
    if (t == null) throw new Error("unknown KV cache type " + s);
    return t;
};

const llama = await getLlamaWithoutBackend();
const rl = readline.createInterface({ input: process.stdin });
const insightsByFile = new Map();
for await (const line of rl) {
    if (!line.trim()) continue;
    const c = JSON.parse(line);
    const out = { id: c.id, file: c.file };
    try {
        let insights = insightsByFile.get(c.file);
        if (insights == null) {
            const info = await readGgufFileInfo(c.file);
            insights = await GgufInsights.from(info, llama);
            insightsByFile.set(c.file, insights);
        }
        const totalLayers = insights.totalLayers; // block_count + 1 (the output "layer")
        // llama.cpp's -ngl 999 = every layer; node-llama-cpp's gpuLayers is passed to llama.cpp's n_gpu_layers
        const gpuLayers = (c.ngl < 0 || c.ngl >= totalLayers) ? totalLayers : c.ngl;
        const batchSize = c.batch ?? Math.min(c.n_ctx, 512);
        const kvK = kvType(c.cache_type_k), kvV = kvType(c.cache_type_v);
        out.node_gpu_layers = gpuLayers;
        out.node_total_layers = totalLayers;
        out.batch_size = batchSize;
        out.flash_attention_supported_per_nlc = insights.flashAttentionSupported;

        // 1) what `inspect estimate` prints (resolver with forced gpu layers and context size)
        const vramState = { total: H200_TOTAL, used: 0, free: H200_TOTAL, unifiedSize: 0 };
        const score = await insights.configurationResolver.resolveAndScoreConfig({
            targetGpuLayers: gpuLayers,
            targetContextSize: c.n_ctx,
            flashAttention: c.flash_attn,
            kvCacheKeyType: kvK,
            kvCacheValueType: kvV,
            useMmap: false
        }, {
            getVramState: async () => vramState,
            getRamState: async () => ({ total: 128 * 2 ** 30, used: 0, free: 128 * 2 ** 30 }),
            getSwapState: async () => ({ total: 0, used: 0, free: 0 }),
            llamaVramPaddingSize: 0,
            llamaGpu: "cuda",
            llamaSupportsGpuOffloading: true
        });
        const rv = score.resolvedValues;
        out.resolver = {
            gpu_layers: rv.gpuLayers, context_size: rv.contextSize,
            model_vram: rv.modelVramUsage, context_vram: rv.contextVramUsage, total_vram: rv.totalVramUsage,
            model_ram: rv.modelRamUsage, context_ram: rv.contextRamUsage
        };

        // 2) the heuristic (V1) directly, with a breakdown
        const m = insights.estimateModelResourceRequirements({ gpuLayers, useMmap: false, gpuSupportsMmap: false });
        const ctxArgs = {
            contextSize: c.n_ctx, modelGpuLayers: gpuLayers, batchSize, sequences: 1,
            flashAttention: c.flash_attn, kvCacheKeyType: kvK, kvCacheValueType: kvV
        };
        const ctx = insights.estimateContextResourceRequirements(ctxArgs);
        const ctxNoGraph = insights.estimateContextResourceRequirements({ ...ctxArgs, includeGraphOverhead: false });
        // KV cache split, same call the heuristic makes (padSafeContextSize pads n_ctx up to 256)
        const { padSafeContextSize } = await import(`${NLC}/dist/evaluator/LlamaContext/utils/padSafeContextSize.js`);
        const padded = padSafeContextSize(c.n_ctx, "up");
        const swa = insights.swaSize ?? 0;
        const swaKv = swa > 0 && swa < padded ? Math.min(padded, Math.ceil((swa + batchSize + 1) / 256) * 256) : padded;
        const kv = insights._estimateContextCacheMemorySplitInBytes({
            fullAttentionKvSize: padded, swaKvSize: swaKv, sequences: 1,
            totalFileLayers: insights._getTotalFileLayers(), finalModelGpuLayers: gpuLayers, usingGpu: gpuLayers > 0,
            flashAttention: c.flash_attn, kvCacheKeyType: kvK, kvCacheValueType: kvV
        });
        const vocab = insights.ggufFileInfo.architectureMetadata.vocab_size ??
            insights.ggufFileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? 0;
        const outputBuf = vocab * Math.max(batchSize, 1) * 4 + 4 * batchSize;
        out.heuristic = {
            model_vram: m.gpuVram, model_ram: m.cpuRam,
            context_vram: ctx.gpuVram, context_ram: ctx.cpuRam,
            total_vram: m.gpuVram + ctx.gpuVram,
            kv_vram: kv.gpuKVCacheSize,
            output_buffer: outputBuf,
            graph_overhead_vram: ctx.gpuVram - ctxNoGraph.gpuVram,
            ggml_graph_meta_vram: ctxNoGraph.gpuVram - kv.gpuKVCacheSize - outputBuf
        };
        out.heuristic.compute_vram = out.heuristic.graph_overhead_vram + out.heuristic.ggml_graph_meta_vram;
        out.resolver_equals_heuristic = rv.modelVramUsage === m.gpuVram && rv.contextVramUsage === ctx.gpuVram;
    } catch (e) {
        out.error = String(e?.stack ?? e);
    }
    process.stdout.write(JSON.stringify(out) + "\n");
}
process.exit(0);
