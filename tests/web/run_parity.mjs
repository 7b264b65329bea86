// llmem.mjs's run(args) against the native CLI: the same exit code, stdout and stderr, byte for byte, for the
// same arguments (the native one run with HF_HUB_OFFLINE=1 and an empty home: the wasm build never uses the
// network itself). Model files are mounted in the wasm file system at the same absolute paths they have here.
//   node tests/web/run_parity.mjs SITE_DIR FIXTURES_DIR
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Checks, native } from './lib.mjs';

const [site, fixtures] = process.argv.slice(2);
if (!site || !fixtures) {
  console.error('usage: node tests/web/run_parity.mjs SITE_DIR FIXTURES_DIR');
  process.exit(2);
}
const { default: createLlmem } = await import(path.resolve(site, 'llmem.mjs'));
const llmem = await createLlmem({ wasmBinary: fs.readFileSync(path.join(site, 'llmem.wasm')) });

// Every file under the fixtures, read through a counting range reader (as the page reads a dropped file).
let bytesRead = 0;
const files = [];
for (const dir of fs.readdirSync(fixtures)) {
  for (const name of fs.readdirSync(path.join(fixtures, dir))) {
    const full = path.join(fixtures, dir, name);
    const fd = fs.openSync(full, 'r');
    files.push({
      path: `${dir}/${name}`,
      size: fs.fstatSync(fd).size,
      read(offset, length) {
        bytesRead += length;
        const buffer = Buffer.alloc(length);
        fs.readSync(fd, buffer, 0, length, offset);
        return new Uint8Array(buffer.buffer, buffer.byteOffset, length);
      },
    });
  }
}
const fx = path.resolve(fixtures);
llmem.mount(fx, files);

const t = new Checks('run(args) == native CLI');
const cases = [
  ['--help'], ['--version'], ['estimate', '--help'], ['fit', '--help'], ['catalog'], ['catalog', '--json'], ['families'],
  ['params', 'TinyLlama/TinyLlama-1.1B-Chat-v1.0', '--depth', '2'],
  ['params', 'deepseek-ai/DeepSeek-V3', '--json'],
  ['estimate', 'microsoft/phi-2', '--json'],
  ['estimate', 'mistralai/Mistral-7B-v0.1', '--prompt', '8192', '--batch', '4', '--gpu', 'A100-80GB'],
  ['estimate', 'TinyLlama/TinyLlama-1.1B-Chat-v1.0', '--train', 'full', '--precision', 'amp-bf16', '--seq', '2048', '--grad-ckpt'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--train', 'lora', '--lora-r', '16', '--json'],
  ['estimate', 'mistralai/Mistral-7B-v0.1', '--engine', 'llamacpp', '--quant', 'Q4_K_M', '--ctx', '8192'],
  ['estimate', 'Qwen/Qwen3-30B-A3B', '--engine', 'llamacpp', '--quant', 'Q4_K_M', '--ctx', '32768', '--ngl', '20',
   '--cache-type-k', 'q8_0', '--cache-type-v', 'q8_0', '--flash-attn', 'on', '--json'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--engine', 'vllm', '--gpu', 'RTX-3090', '--max-model-len', '16384', '--json'],
  ['estimate', 'Qwen/Qwen3-30B-A3B', '--engine', 'vllm', '--gpu', 'H100-80GB-HBM3', '--tensor-parallel-size', '2', '--kv-cache-dtype', 'fp8'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--engine', 'vllm', '--gpu', 'RTX-3090', '--max-model-len', '131072'],
  ['fit', 'meta-llama/Llama-3.1-8B', '--engine', 'vllm', '--gpu', 'L4'],
  ['estimate', 'microsoft/phi-2', '--vram', '24GiB'],
  ['estimate', '--list-gpus'], ['estimate', '--list-quants'],
  ['fit', 'microsoft/phi-2', '--gpu', 'RTX-4090'],
  ['fit', 'TinyLlama/TinyLlama-1.1B-Chat-v1.0', '--engine', 'llamacpp', '--vram', '8GiB', '--json'],
  ['study'],
  ['estimate', 'mistralai/Mistral-7B-v0.1', '--no-cache', '--prompt', '512', '--attn', 'eager', '--alloc-conf', 'expandable_segments:True',
   '--gpu', 'RTX-4090', '--reserve', '1GiB', '--json'],
  ['estimate', 'TinyLlama/TinyLlama-1.1B-Chat-v1.0', '--train', 'full', '--grad-accum', '4', '--hf-trainer'],
  ['estimate', 'mistralai/Mistral-7B-v0.1', '--engine', 'llamacpp', '--quant', 'Q4_K_M', '--ubatch', '256', '--parallel', '4', '--json'],
  // the page's controls for flags added after the page was first written: transformers MXFP4 kernels, QLoRA,
  // the 8-bit optimizers, several GPUs (inference placement, training sharding), vLLM's remaining flags
  ['estimate', 'openai/gpt-oss-20b', '--mxfp4-kernels', 'yes', '--gpu', 'RTX-4090', '--json'],
  ['estimate', 'openai/gpt-oss-20b', '--mxfp4-kernels', 'no', '--gpu', 'RTX-4090'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--train', 'qlora', '--optimizer', 'paged-adamw-8bit', '--lora-r', '16',
   '--lora-targets', 'all-linear', '--bnb-4bit-quant-type', 'fp4', '--bnb-double-quant', 'false', '--json'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--train', 'qlora', '--bnb-4bit-quant-type', 'nf4', '--bnb-double-quant', 'true', '--gpu', 'RTX-4090'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--train', 'lora', '--lora-targets', 'all-linear', '--optimizer', 'adamw-8bit'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--gpus', '4', '--json'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--gpus', '4', '--gpu', 'RTX-4090'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--gpus', '4', '--device-map', 'balanced_low_0', '--max-memory', '0=2GiB,1=8GiB,2=8GiB,3=8GiB',
   '--gpu', 'RTX-4090', '--json'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--gpus', '2', '--device-map', 'sequential', '--gpu', 'RTX-4090'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--gpus', '3', '--device-map', 'balanced', '--gpu', 'RTX-4090'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--train', 'full', '--gpus', '2', '--sharding', 'zero3', '--gpu', 'A100-80GB', '--json'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--train', 'full', '--gpus', '2', '--sharding', 'fsdp', '--gpu', 'A100-80GB'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--train', 'full', '--gpus', '4', '--sharding', 'zero2', '--gpu', 'A100-80GB'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--train', 'lora', '--gpus', '2', '--sharding', 'zero1', '--gpu', 'A100-80GB'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--train', 'full', '--gpus', '2', '--sharding', 'ddp', '--gpu', 'H200'],
  ['fit', 'meta-llama/Llama-3.1-8B', '--prompt', '6', '--new-tokens', '14', '--seq', '512', '--gpus', '4', '--gpu', 'RTX-4090', '--json'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--engine', 'vllm', '--gpu', 'RTX-3090', '--max-model-len', '16384', '--max-num-batched-tokens', '4096',
   '--block-size', '32', '--concurrency', '4', '--json'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--engine', 'vllm', '--gpu', 'RTX-3090', '--max-model-len', '16384', '--kv-cache-memory', '6GiB', '--llm-class'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--engine', 'vllm', '--gpu', 'H100-80GB-HBM3', '--max-model-len', '200000', '--allow-long-max-model-len'],
  ['fit', 'meta-llama/Llama-3.1-8B', '--engine', 'vllm', '--gpu', 'RTX-3090', '--block-size', '32', '--max-num-batched-tokens', '4096', '--json'],
  // files, read header-only through the mount
  ['params', `${fx}/gguf/TinyLlama-1.1B-Q4_K_M.gguf`, '--json'],
  ['estimate', `${fx}/gguf/TinyLlama-1.1B-Q4_K_M.gguf`, '--engine', 'llamacpp', '--ctx', '2048'],
  ['params', `${fx}/gguf/Phi-3-mini-4k-F32.gguf`],
  ['params', `${fx}/tinyllama`, '--depth', '1'],
  ['estimate', `${fx}/tinyllama`, '--json'],
  ['params', `${fx}/sharded`, '--json'],
  ['params', `${fx}/tinyllama/model.safetensors`],
  // errors: the same message and exit code
  ['estimate', `${fx}/tinyllama/model.safetensors`],
  ['params', `${fx}/bad/corrupt.gguf`],
  ['params', `${fx}/bad/not_config.json`],
  ['params', `${fx}/nothing-here`],
  ['params', 'nobody/no-such-model'],
  ['estimate', 'mistralai/Mistral-7B-v0.1', '--engine', 'llamacpp'],
  ['estimate', 'mistralai/Mistral-7B-v0.1', '--dtype', 'fp8'],
  ['fit', 'microsoft/phi-2', '--vram', 'lots'],
  ['estimate', '--bogus'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--train', 'full', '--gpus', '2'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--gpus', '2', '--max-memory', 'lots'],
  ['estimate', 'meta-llama/Llama-3.1-8B', '--train', 'qlora', '--bnb-4bit-quant-type', 'int4'],
  [],
];
for (const args of cases) {
  const want = native(args);
  const got = llmem.run(args);
  const name = `llmem ${args.join(' ')}`.replace(fx, 'FIXTURES');
  const same = got.code === want.code && got.stdout === want.stdout && got.stderr === want.stderr;
  let detail = '';
  if (!same) {
    const firstDiff = (a, b) => { let i = 0; while (i < a.length && a[i] === b[i]) i++; return i; };
    for (const stream of ['stdout', 'stderr']) {
      if (got[stream] === want[stream]) continue;
      const i = firstDiff(got[stream], want[stream]);
      detail += `${stream} differs at byte ${i}: native ${JSON.stringify(want[stream].slice(i, i + 120))}, wasm ${JSON.stringify(got[stream].slice(i, i + 120))}\n`;
    }
    if (got.code !== want.code) detail += `exit code: native ${want.code}, wasm ${got.code}`;
  }
  t.ok(`${name} (exit ${want.code})`, same, detail);
}

// The GPU commands cannot run in a browser: they say so, with exit code 1 (a runtime failure, as a missing driver).
for (const args of [['gpus'], ['probe'], ['measure', '--', 'true']]) {
  const got = llmem.run(args);
  t.ok(`llmem ${args.join(' ')} says it needs the native binary (exit 1)`,
       got.code === 1 && got.stdout === '' && /needs the native llmem binary/.test(got.stderr), JSON.stringify(got));
}
// Charts need cairo: the study's table still prints, then the chart says why it is not drawn.
const chart = llmem.run(['study', '--chart', '/tmp/study.png']);
t.ok('llmem study --chart says charts need the native binary (exit 1)',
     chart.code === 1 && /Charts need the native llmem binary/.test(chart.stderr), chart.stderr);

// Header-only: all of the above read a few MB of files that hold 20 GB.
const total = files.reduce((s, f) => s + f.size, 0);
t.ok(`header-only reads: ${bytesRead} bytes read of ${total} bytes of files`, bytesRead < 64 * 2 ** 20 && bytesRead < total / 100);

// Timing of the core alone, each in a fresh Node.js process (nothing compiled before): compile llmem.wasm, then
// instantiate it and run a first estimate (what the page does before its first number). Median of 5.
const probe = `
  const fs = await import('node:fs');
  const { default: createLlmem } = await import(${JSON.stringify(path.resolve(site, 'llmem.mjs'))});
  const bytes = fs.readFileSync(${JSON.stringify(path.resolve(site, 'llmem.wasm'))});
  const t0 = performance.now();
  const module = await WebAssembly.compile(bytes);
  const t1 = performance.now();
  const llmem = await createLlmem({ instantiateWasm(imports, receive) {
    WebAssembly.instantiate(module, imports).then((i) => receive(i)); return {}; } });
  const t2 = performance.now();
  const r = llmem.run(['estimate', 'mistralai/Mistral-7B-v0.1', '--json']);
  const t3 = performance.now();
  if (r.code !== 0) throw new Error(r.stderr);
  console.log(JSON.stringify({ compile: t1 - t0, instantiate: t2 - t1, first: t3 - t2, afterCompile: t3 - t1 }));`;
const samples = [];
for (let i = 0; i < 5; i++) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  samples.push(JSON.parse(r.stdout));
}
const median = (k) => samples.map((x) => x[k]).sort((a, b) => a - b)[2].toFixed(1);
console.log(`timing (Node ${process.version}, 5 fresh processes, medians): compile ${median('compile')} ms; then instantiate ` +
            `${median('instantiate')} ms + first estimate ${median('first')} ms = ${median('afterCompile')} ms after compile ` +
            `(load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} CPUs)`);
process.exit(t.done() ? 0 : 1);
