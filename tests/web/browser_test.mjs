// The web page in a real browser: Debian's chromium, headless, driven by playwright-core (no browser download).
// Every number the page shows is checked against the native CLI (`build/llmem ... --json`, and its text output
// for the digits printed), for catalog models, a pasted config, dropped GGUF and safetensors files and a model
// read from a Hub stand-in on another origin; bad input must show the CLI's error, not a blank page.
//   node tests/web/browser_test.mjs SITE_DIR FIXTURES_DIR ARTIFACTS_DIR
// Screenshots and timings.json are written to ARTIFACTS_DIR.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { Checks, HUB_COMMIT, cliHeading, native, nativeAsync, nativeJson, parseEstimateText, parseFitRows, parsePerGpuText, serveHub, serveSite } from './lib.mjs';

const [siteArg, fixturesArg, artifactsArg] = process.argv.slice(2);
if (!siteArg || !fixturesArg || !artifactsArg) {
  console.error('usage: node tests/web/browser_test.mjs SITE_DIR FIXTURES_DIR ARTIFACTS_DIR');
  process.exit(2);
}
const site = path.resolve(siteArg), fx = path.resolve(fixturesArg), artifacts = path.resolve(artifactsArg);
fs.mkdirSync(artifacts, { recursive: true });
const TIMEOUT = 90_000;

const server = await serveSite(site);
const hub = await serveHub({
  'test-org/tinyllama-sharded': path.join(fx, 'sharded'),
  'test-org/tinyllama-gguf': path.join(fx, 'gguf'),
  'test-org/gated': 'gated',
});
const browser = await chromium.launch({
  executablePath: process.env.LLMEM_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
const page = await context.newPage();
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
// Console errors, less the browser's own lines for HTTP errors and CORS refusals (the Hub's 404s and refusals
// are part of the test: the page says what they mean).
const BROWSER_NETWORK_LINE = /^(Failed to load resource: |Access to fetch at .* has been blocked by CORS policy)/;
page.on('console', (m) => { if (m.type() === 'error' && !BROWSER_NETWORK_LINE.test(m.text())) pageErrors.push(m.text()); });

const t = new Checks('web page == native CLI');
let shot = 0;
async function screenshot(name) {
  const file = path.join(artifacts, `${String(++shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

// Waits until the page has shown every answer of a change made after generation `before`.
async function settle(before) {
  await page.waitForFunction((b) => window.llmemPage && window.llmemPage.generation > b &&
    document.body.dataset.settled === String(window.llmemPage.generation), before, { timeout: TIMEOUT });
}
const generation = () => page.evaluate(() => (window.llmemPage ? window.llmemPage.generation : 0));

async function open(query) {
  await page.goto(`${server.url}/${query ? '?' + query : ''}`);
  await settle(0);
}

async function act(fn) {
  const before = await generation();
  await fn();
  await settle(before);
}

// What the page shows: components, totals, verdict, fit rows, params, plot.
function shown() {
  return page.evaluate(() => {
    const rows = (sel) => [...document.querySelectorAll(sel)].map((tr) => ({
      name: tr.cells[0].textContent.trim(), where: tr.cells[1].textContent.trim(), gib: tr.cells[2].textContent.trim(),
      bytes: Number(tr.dataset.bytes), key: tr.dataset.total }));
    const visible = (id) => !document.getElementById(id).hidden;
    return {
      answer: visible('answer'),
      error: visible('error') ? document.getElementById('error').textContent : null,
      title: document.getElementById('answer-title').textContent,
      workload: document.getElementById('answer-workload').textContent,
      verdict: document.getElementById('verdict').textContent,
      verdictMemory: Number(document.getElementById('verdict').dataset.memoryBytes),
      components: rows('#components tbody tr'),
      totals: rows('#components tfoot tr'),
      cli: document.getElementById('cli-line').textContent.split('\n')[0],
      fit: visible('fit-box') ? [...document.querySelectorAll('#fit tbody tr')].map((tr) => ({
        cells: [...tr.cells].map((c) => c.textContent.trim()).join(' ').split(/\s+/).join(' '),
        option: JSON.parse(tr.dataset.option) })) : null,
      fitStatus: document.getElementById('fit-status').textContent,
      fitVllm: document.getElementById('fit-text').dataset.options && !document.getElementById('fit-text').hidden
        ? { options: JSON.parse(document.getElementById('fit-text').dataset.options), text: document.getElementById('fit-text').textContent } : null,
      startup: document.getElementById('startup').hidden ? '' : document.getElementById('startup').textContent,
      fitMemory: Number(document.getElementById('fit').dataset.gpuMemoryBytes),
      params: visible('params-box') ? Number(document.getElementById('params-summary').dataset.totalParams) : null,
      paramsTree: [...document.querySelectorAll('#params-tree > details > summary, #params-tree > details > details > summary, #params-tree > details > .leaf')]
        .map((e) => e.textContent),
      perGpu: visible('per-gpu-box') ? [...document.querySelectorAll('#per-gpu tbody tr')].map((tr) => ({
        cells: [...tr.cells].map((c) => c.textContent.trim()).join(' ').split(/\s+/).join(' '),
        gpu: JSON.parse(tr.dataset.gpu) })) : null,
      perGpuCaption: document.getElementById('per-gpu-caption').textContent,
      multiGpu: [...document.querySelectorAll('#multi-gpu li')].map((li) => li.textContent),
      plot: visible('plot-box') ? JSON.parse(document.getElementById('plot').dataset.points) : null,
      status: document.getElementById('status').textContent,
      url: location.search,
    };
  });
}

// vLLM's start-up block: the lines between the workload line and the component table.
const startupBlock = (text) => {
  const l = text.split('\n');
  return l.slice(cliHeading(l).next, l.findIndex((x) => /^Component\s/.test(x))).join('\n').trim();
};
const sumGpu = (e) => e.components.filter((c) => !c.device || c.device === 'gpu').reduce((s, c) => s + c.bytes, 0);

// The estimate the page shows == `llmem ARGS --json` (bytes) and `llmem ARGS` (the GiB digits, the words).
function checkEstimate(label, s, args, { pathFrom, pathTo } = {}) {
  const json = nativeJson(args);
  const text = parseEstimateText(native(args).stdout);
  t.ok(`${label}: an answer, no error`, s.answer && !s.error, s.error);
  t.equal(`${label}: component names and bytes == llmem --json`, s.components.map((c) => [c.name, c.bytes]),
          json.components.map((c) => [c.name, c.bytes]));
  t.equal(`${label}: GiB shown == llmem's text`, s.components.map((c) => [c.name, c.where, c.gib]),
          text.components.map((c) => [c.name, c.where, c.gib]));
  t.equal(`${label}: totals == llmem's text`, s.totals.map((c) => [c.name, c.gib]), text.totals.map((c) => [c.name, c.gib]));
  t.equal(`${label}: process peak bytes`, s.totals.find((c) => /process_peak/.test(c.key)).bytes, json.process_peak_bytes);
  const shownArgs = s.cli.replace(/^\$ llmem /, '').split(' ');
  const expectArgs = args.map((a) => (pathFrom ? a.replace(pathFrom, pathTo) : a));
  t.equal(`${label}: the command shown is the one compared`, shownArgs, expectArgs);
  t.equal(`${label}: verdict == llmem's`, s.verdict, text.verdict);
  t.equal(`${label}: GPU memory of the bar == llmem --json`, s.verdictMemory, json.gpu.memory_bytes);
  const after = (title) => title.slice(title.indexOf(' on '));  // the GPU and the engine, in llmem's words
  t.equal(`${label}: title in llmem's words`, after(s.title), after(text.title));
  t.equal(`${label}: workload in llmem's words`, s.workload, text.workload);
  return json;
}

// --gpus N: the per-GPU table == llmem's "Per GPU" table (digits, roles) and per_gpu of --json (bytes, fits).
function checkPerGpu(label, s, args) {
  const json = nativeJson(args);
  const text = parsePerGpuText(native(args).stdout);
  t.ok(`${label}: per-GPU table shown (${json.per_gpu.length} rows)`, s.perGpu && s.perGpu.length === json.per_gpu.length, JSON.stringify(s.perGpu));
  if (!s.perGpu) return;
  const kv = (g) => g.components.filter((c) => c.name === 'kv_cache').reduce((n, c) => n + c.bytes, 0);
  t.equal(`${label}: per-GPU bytes and fits == llmem --json per_gpu`, s.perGpu.map((r) => r.gpu),
          json.per_gpu.map((g) => ({ index: g.index, weight_bytes: g.weight_bytes, kv_cache_bytes: kv(g),
                                     framework_peak_bytes: g.framework_peak_bytes, process_peak_bytes: g.process_peak_bytes, fits: g.fits })));
  t.equal(`${label}: per-GPU rows == llmem's Per GPU table`, s.perGpu.map((r) => r.cells), text.rows);
  t.equal(`${label}: per-GPU caption == llmem's`, s.perGpuCaption, text.caption);
  t.equal(`${label}: placement / sharding lines == llmem --json multi_gpu`, s.multiGpu, json.multi_gpu);
}

function checkFit(label, s, args) {
  const json = nativeJson(args);
  const rows = parseFitRows(native(args).stdout);
  t.ok(`${label}: fit table shown`, s.fit && s.fit.length > 0, s.fitStatus);
  if (!s.fit) return;
  t.equal(`${label}: fit options == llmem fit --json`, s.fit.map((r) => r.option), json.options);
  t.equal(`${label}: fit cells == llmem fit's table`, s.fit.map((r) => r.cells), rows);
  t.equal(`${label}: fit GPU memory`, s.fitMemory, json.gpu.memory_bytes);
  return json;
}

function checkParams(label, s, spec) {
  const json = nativeJson(['params', spec, '--depth', '4']);
  t.equal(`${label}: total params == llmem params --json`, s.params, json.total_params);
  return json;
}

function checkPlot(label, s, argsAt) {
  t.ok(`${label}: memory-vs-context plot drawn`, s.plot && s.plot.length >= 3);
  if (!s.plot) return;
  for (const [x, bytes] of [s.plot[0], s.plot[Math.floor(s.plot.length / 2)]]) {
    t.equal(`${label}: plot at ${x} tokens == llmem estimate`, bytes, sumGpu(nativeJson(argsAt(x))));
  }
}

const gpu = (o) => (o.extra || []).concat(['--gpu', o.gpu || 'RTX-4090'], o.vram ? ['--vram', o.vram] : []);
const tf = (model, extra = {}) => {
  const o = { dtype: 'fp16', prompt: '6', new: '14', batch: '1', ...extra };
  return ['estimate', model, '--dtype', o.dtype, '--prompt', o.prompt, '--new-tokens', o.new, '--batch', o.batch].concat(gpu(o));
};
const vllm = (model, o) => ['estimate', model, '--engine', 'vllm', '--dtype', 'auto']
  .concat(o.mml ? ['--max-model-len', o.mml] : [], ['--gpu-memory-utilization', o.util || '0.9', '--kv-cache-dtype', o.kvd || 'auto',
          '--tensor-parallel-size', o.tp || '1'], gpu(o));
const llama = (model, o) => {
  const a = ['estimate', model, '--engine', 'llamacpp'];
  if (o.quant) a.push('--quant', o.quant);
  return a.concat(['--ctx', o.ctx || '4096', '--ngl', o.ngl || '-1', '--cache-type-k', o.ctk || 'f16', '--cache-type-v', o.ctv || 'f16',
                   '--flash-attn', o.fa || 'auto'], gpu(o));
};

try {
  // 1. The page loads and answers for the default model at once.
  console.log('-- the default page');
  await open('');
  let s = await shown();
  const mistral = 'mistralai/Mistral-7B-v0.1';
  checkEstimate('default (Mistral-7B, fp16, RTX 4090)', s, tf(mistral));
  checkFit('default', s, ['fit', mistral, '--prompt', '6', '--new-tokens', '14', '--seq', '512', '--gpu', 'RTX-4090']);
  const params = checkParams('default', s, mistral);
  t.ok('default: params tree shows the top modules', s.paramsTree.some((l) => l.startsWith(`model — ${params.modules.children[0].params.toLocaleString('en-US')} params`)), s.paramsTree.join(' | '));
  checkPlot('default', s, (x) => tf(mistral, { prompt: String(x) }));
  await screenshot('default');

  // 2. Several models and engines, set through the URL (shareable state).
  console.log('-- models from the URL');
  const tiny = 'TinyLlama/TinyLlama-1.1B-Chat-v1.0';
  await open(`model=${tiny}&mode=train&train=lora&seq=1024&ckpt=1&gpu=A100-80GB`);
  s = await shown();
  const loraArgs = ['estimate', tiny, '--train', 'lora', '--precision', 'bf16', '--optimizer', 'adamw', '--seq', '1024', '--batch', '1',
                    '--grad-ckpt', '--lora-r', '16', '--gpu', 'A100-80GB'];
  checkEstimate('TinyLlama LoRA training', s, loraArgs);
  checkFit('TinyLlama LoRA training', s, ['fit', tiny, '--prompt', '6', '--new-tokens', '14', '--seq', '1024', '--gpu', 'A100-80GB']);
  checkPlot('TinyLlama LoRA training', s, (x) => loraArgs.map((a, i) => (loraArgs[i - 1] === '--seq' ? String(x) : a)));
  await screenshot('tinyllama-lora');

  await open('model=google/gemma-2-2b&dtype=bf16&prompt=4096&batch=4&gpu=L4');
  s = await shown();
  checkEstimate('gemma-2-2b bf16, 4096-token prompt, batch 4, L4', s, tf('google/gemma-2-2b', { dtype: 'bf16', prompt: '4096', batch: '4', gpu: 'L4' }));
  checkParams('gemma-2-2b', s, 'google/gemma-2-2b');

  const qwen = 'Qwen/Qwen3-30B-A3B';
  await open(`model=${qwen}&engine=llamacpp&quant=Q4_K_M&ctx=32768&vram=24GiB`);
  s = await shown();
  const qwenArgs = llama(qwen, { quant: 'Q4_K_M', ctx: '32768', vram: '24GiB' });
  checkEstimate('Qwen3-30B-A3B llama.cpp Q4_K_M, 32K context, 24GiB typed', s, qwenArgs);
  const qwenFit = checkFit('Qwen3-30B-A3B llama.cpp', s, ['fit', qwen, '--engine', 'llamacpp', '--ctx', '32768', '--flash-attn', 'auto',
                                                           '--cache-type', 'f16', '--gpu', 'RTX-4090', '--vram', '24GiB']);
  t.equal('the typed 24GiB: the estimate and the fit read the same size', s.verdictMemory, qwenFit.gpu.memory_bytes);
  checkPlot('Qwen3-30B-A3B llama.cpp', s, (x) => qwenArgs.map((a, i) => (qwenArgs[i - 1] === '--ctx' ? String(x) : a)));
  await screenshot('qwen3-moe-llamacpp');

  const llama8b = 'meta-llama/Llama-3.1-8B';
  await open(`model=${llama8b}&engine=vllm&gpu=RTX-3090&mml=16384`);
  s = await shown();
  const vArgs = vllm(llama8b, { mml: '16384', gpu: 'RTX-3090' });
  checkEstimate('Llama-3.1-8B under vLLM on an RTX 3090, --max-model-len 16384', s, vArgs);
  t.equal('vLLM: the start-up log block == llmem\'s text', s.startup, startupBlock(native(vArgs).stdout));
  const vFitArgs = ['fit', llama8b, '--engine', 'vllm', '--dtype', 'auto', '--max-model-len', '16384', '--gpu-memory-utilization', '0.9',
                    '--kv-cache-dtype', 'auto', '--tensor-parallel-size', '1', '--gpu', 'RTX-3090'];
  t.equal('vLLM: fit options == llmem fit --json', s.fitVllm && s.fitVllm.options, nativeJson(vFitArgs).options);
  t.equal('vLLM: fit text == llmem fit', s.fitVllm && s.fitVllm.text, native(vFitArgs).stdout.trim());
  checkPlot('vLLM', s, (x) => vArgs.map((a, i) => (vArgs[i - 1] === '--max-model-len' ? String(x) : a)));
  await screenshot('vllm-llama8b');
  await act(() => page.fill('#max-model-len', '131072'));
  s = await shown();
  checkEstimate('vLLM refuses --max-model-len 131072 on 24 GB: said in its words', s, vllm(llama8b, { mml: '131072', gpu: 'RTX-3090' }));
  await screenshot('vllm-refuses');

  // 2b. Controls for the flags added since: MXFP4 kernels, QLoRA and the 8-bit optimizers, several GPUs
  // (placement for inference, sharding for training, the per-GPU table), vLLM's remaining flags.
  console.log('-- newer flags: MXFP4, QLoRA, several GPUs, vLLM');
  const gptoss = 'openai/gpt-oss-20b';
  await open(`model=${gptoss}`);
  s = await shown();
  checkEstimate('gpt-oss-20b, MXFP4 experts dequantised (no kernels)', s, tf(gptoss));
  await act(() => page.selectOption('#mxfp4-kernels', 'yes'));
  s = await shown();
  checkEstimate('gpt-oss-20b --mxfp4-kernels yes (chosen)', s, tf(gptoss, { extra: ['--mxfp4-kernels', 'yes'] }));
  t.ok('the URL holds --mxfp4-kernels', /mxfp4=yes/.test(s.url), s.url);
  t.equal('one GPU: no per-GPU table', s.perGpu, null);

  const train = (model, o = {}) => {
    const a = ['estimate', model, '--train', o.train || 'full'].concat(o.train === 'qlora' ? [] : ['--precision', 'bf16'],
               ['--optimizer', o.optimizer || 'adamw', '--seq', o.seq || '512', '--batch', '1']);
    if (o.train === 'lora' || o.train === 'qlora') a.push('--lora-r', '16', ...(o.targets ? ['--lora-targets', o.targets] : []));
    if (o.train === 'qlora') a.push('--bnb-4bit-quant-type', o.bnbq || 'nf4', '--bnb-double-quant', o.bnbdq || 'true');
    return a.concat(gpu(o));
  };
  await open(`model=${llama8b}&mode=train&train=qlora&bnbq=fp4&bnbdq=false&targets=all-linear&optimizer=paged-adamw-8bit`);
  s = await shown();
  checkEstimate('Llama-3.1-8B QLoRA fp4, no double quant, all-linear, paged AdamW 8-bit', s,
                train(llama8b, { train: 'qlora', bnbq: 'fp4', bnbdq: 'false', targets: 'all-linear', optimizer: 'paged-adamw-8bit' }));
  await act(() => page.selectOption('#bnb-quant-type', 'nf4'));
  await act(() => page.selectOption('#bnb-double-quant', 'true'));
  await act(() => page.selectOption('#optimizer', 'adamw-8bit'));
  s = await shown();
  const qloraArgs = train(llama8b, { train: 'qlora', targets: 'all-linear', optimizer: 'adamw-8bit' });
  checkEstimate('QLoRA nf4, double quant, AdamW 8-bit (chosen)', s, qloraArgs);
  checkPlot('QLoRA', s, (x) => qloraArgs.map((a, i) => (qloraArgs[i - 1] === '--seq' ? String(x) : a)));
  await screenshot('qlora');
  await act(() => page.selectOption('#lora-targets', ''));
  s = await shown();
  checkEstimate('QLoRA with the default LoRA targets', s, train(llama8b, { train: 'qlora', optimizer: 'adamw-8bit' }));

  await open(`model=${llama8b}&gpus=4`);
  s = await shown();
  const four = tf(llama8b, { extra: ['--gpus', '4'] });
  checkEstimate('Llama-3.1-8B on 4 RTX 4090s (device_map auto)', s, four);
  checkPerGpu('4 GPUs, device_map auto', s, four);
  checkFit('4 GPUs', s, ['fit', llama8b, '--prompt', '6', '--new-tokens', '14', '--seq', '512', '--gpus', '4', '--gpu', 'RTX-4090']);
  await screenshot('four-gpus');
  await act(() => page.selectOption('#device-map', 'balanced_low_0'));
  await act(() => page.fill('#max-memory', '0=2GiB,1=8GiB,2=8GiB,3=8GiB'));
  s = await shown();
  const placed = tf(llama8b, { extra: ['--gpus', '4', '--device-map', 'balanced_low_0', '--max-memory', '0=2GiB,1=8GiB,2=8GiB,3=8GiB'] });
  checkEstimate('4 GPUs, balanced_low_0 with max_memory (chosen)', s, placed);
  checkPerGpu('4 GPUs, balanced_low_0 with max_memory', s, placed);
  await act(() => page.selectOption('#device-map', 'sequential'));
  await act(() => page.fill('#max-memory', ''));
  await act(() => page.fill('#gpus', '2'));
  s = await shown();
  const seq2 = tf(llama8b, { extra: ['--gpus', '2', '--device-map', 'sequential'] });
  checkEstimate('2 GPUs, sequential (chosen)', s, seq2);
  checkPerGpu('2 GPUs, sequential', s, seq2);
  await act(() => page.fill('#max-memory', 'lots'));
  s = await shown();
  const badMem = native(seq2.slice(0, -2).concat('--max-memory', 'lots', '--gpu', 'RTX-4090', '--json'));
  t.ok('--max-memory lots: the CLI\'s error, no answer', s.error && !s.answer && badMem.code === 2 && s.error.includes(badMem.stderr.trim()),
       `${s.error}\nnative: ${badMem.stderr}`);

  await open(`model=${llama8b}&mode=train&gpus=2&sharding=zero3&gpu=A100-80GB`);
  s = await shown();
  const z3 = train(llama8b, { gpu: 'A100-80GB', extra: ['--gpus', '2', '--sharding', 'zero3'] });
  checkEstimate('Llama-3.1-8B full training, ZeRO-3 over 2 A100s', s, z3);
  checkPerGpu('ZeRO-3 over 2 GPUs', s, z3);
  await screenshot('zero3');
  for (const sharding of ['fsdp', 'ddp', 'zero1', 'zero2']) {
    await act(() => page.selectOption('#sharding', sharding));
    s = await shown();
    const a = train(llama8b, { gpu: 'A100-80GB', extra: ['--gpus', '2', '--sharding', sharding] });
    checkEstimate(`full training, --sharding ${sharding} over 2 GPUs (chosen)`, s, a);
    checkPerGpu(`--sharding ${sharding}`, s, a);
  }
  checkFit('training page, 2 GPUs: fit --gpus 2', s,
           ['fit', llama8b, '--prompt', '6', '--new-tokens', '14', '--seq', '512', '--gpus', '2', '--gpu', 'A100-80GB']);
  await act(() => page.fill('#gpus', '1'));
  s = await shown();
  checkEstimate('back to one GPU: no --gpus, no --sharding', s, train(llama8b, { gpu: 'A100-80GB' }));
  t.equal('back to one GPU: no per-GPU table', s.perGpu, null);

  const vextra = (o) => vllm(llama8b, { mml: '16384', gpu: 'RTX-3090', ...o });
  await open(`model=${llama8b}&engine=vllm&gpu=RTX-3090&mml=16384&mnbt=4096&block=32&conc=4`);
  s = await shown();
  const vnew = vextra({ extra: ['--max-num-batched-tokens', '4096', '--block-size', '32', '--concurrency', '4'] });
  checkEstimate('vLLM --max-num-batched-tokens 4096 --block-size 32 --concurrency 4', s, vnew);
  t.equal('vLLM (newer flags): the start-up log block == llmem\'s text', s.startup, startupBlock(native(vnew).stdout));
  const vnewFit = ['fit', llama8b, '--engine', 'vllm', '--dtype', 'auto', '--max-model-len', '16384', '--gpu-memory-utilization', '0.9',
                   '--kv-cache-dtype', 'auto', '--tensor-parallel-size', '1', '--max-num-batched-tokens', '4096', '--block-size', '32',
                   '--concurrency', '4', '--gpu', 'RTX-3090'];
  t.equal('vLLM (newer flags): fit text == llmem fit', s.fitVllm && s.fitVllm.text, native(vnewFit).stdout.trim());
  await act(async () => {
    await page.fill('#max-num-batched-tokens', '');
    await page.fill('#block-size', '');
    await page.fill('#concurrency', '');
  });
  await act(() => page.fill('#kv-cache-memory', '6GiB'));
  await act(() => page.check('#llm-class'));
  s = await shown();
  checkEstimate('vLLM --kv-cache-memory 6GiB --llm-class (chosen)', s, vextra({ extra: ['--kv-cache-memory', '6GiB', '--llm-class'] }));
  await screenshot('vllm-newer-flags');
  await open(`model=${llama8b}&engine=vllm&gpu=H100-80GB-HBM3&mml=200000`);
  await act(() => page.check('#allow-long'));
  s = await shown();
  checkEstimate('vLLM --max-model-len 200000 --allow-long-max-model-len (chosen)', s,
                vllm(llama8b, { mml: '200000', gpu: 'H100-80GB-HBM3', extra: ['--allow-long-max-model-len'] }));
  await open('model=openai/gpt-oss-20b&engine=vllm&gpu=H100-80GB-HBM3');
  await act(() => page.check('#mxfp4-marlin'));
  s = await shown();
  checkEstimate('vLLM gpt-oss-20b --mxfp4-marlin (chosen)', s,
                vllm('openai/gpt-oss-20b', { gpu: 'H100-80GB-HBM3', extra: ['--mxfp4-marlin'] }));

  // 2c. The remaining knobs of `llmem estimate --help`: --no-cache, --attn, --alloc-conf, --grad-accum, --hf-trainer,
  // --ubatch, --parallel, --reserve.
  console.log('-- the other knobs: no cache, attention, allocator, accumulation, Trainer, ubatch, parallel, reserve');
  await open(`model=${mistral}&prompt=512`);
  await act(() => page.check('#no-cache'));
  await act(() => page.selectOption('#attn', 'eager'));
  await act(() => page.selectOption('#alloc-conf', 'expandable_segments:True'));
  s = await shown();
  checkEstimate('Mistral --no-cache --attn eager --alloc-conf expandable_segments:True (chosen)', s,
                tf(mistral, { prompt: '512', extra: ['--no-cache', '--attn', 'eager', '--alloc-conf', 'expandable_segments:True'] }));
  await act(() => page.fill('#reserve', '1GiB'));
  s = await shown();
  checkEstimate('... with --reserve 1GiB (typed)', s, tf(mistral, { prompt: '512', extra: ['--no-cache', '--attn', 'eager', '--alloc-conf',
                'expandable_segments:True'] }).concat('--reserve', '1GiB'));
  checkFit('--reserve 1GiB', s, ['fit', mistral, '--prompt', '512', '--new-tokens', '14', '--seq', '512', '--gpu', 'RTX-4090', '--reserve', '1GiB']);
  await open(`model=${tiny}&mode=train`);
  await act(() => page.fill('#grad-accum', '4'));
  await act(() => page.check('#hf-trainer'));
  s = await shown();
  checkEstimate('TinyLlama training --grad-accum 4 --hf-trainer (chosen)', s,
                ['estimate', tiny, '--train', 'full', '--precision', 'bf16', '--optimizer', 'adamw', '--seq', '512', '--batch', '1',
                 '--grad-accum', '4', '--hf-trainer', '--gpu', 'RTX-4090']);
  await open(`model=${mistral}&engine=llamacpp`);
  await act(() => page.fill('#ubatch', '256'));
  await act(() => page.fill('#parallel', '4'));
  s = await shown();
  checkEstimate('llama.cpp --ubatch 256 --parallel 4 (typed)', s, llama(mistral, { quant: 'Q4_K_M' }).slice(0, -2)
    .concat('--ubatch', '256', '--parallel', '4', '--gpu', 'RTX-4090'));

  // 3. Knobs changed by hand update the answer and the URL; the URL alone brings the same answer back.
  console.log('-- knobs and URL state');
  await open(`model=${mistral}`);
  await act(() => page.selectOption('#dtype', 'fp32'));
  await act(() => page.fill('#prompt', '2048'));
  s = await shown();
  checkEstimate('Mistral fp32, 2048-token prompt (typed)', s, tf(mistral, { dtype: 'fp32', prompt: '2048' }));
  t.ok('the URL holds the state', /dtype=fp32/.test(s.url) && /prompt=2048/.test(s.url), s.url);
  const url = page.url();
  await page.goto('about:blank');
  await page.goto(url);
  await settle(0);
  const again = await shown();
  t.equal('reloading the URL gives the same answer', again.components, s.components);
  await act(() => page.fill('#vram', '80GB'));
  s = await shown();
  const fit80 = checkFit('Mistral fp32 on a typed 80GB', s, ['fit', mistral, '--prompt', '2048', '--new-tokens', '14', '--seq', '512',
                                                            '--gpu', 'RTX-4090', '--vram', '80GB']);
  checkEstimate('Mistral fp32 on a typed 80GB', s, tf(mistral, { dtype: 'fp32', prompt: '2048', vram: '80GB' }));
  t.equal('the typed 80GB (decimal GB): the estimate and the fit read the same size', s.verdictMemory, fit80.gpu.memory_bytes);

  // 4. A pasted config.json; a JSON that is not a config gives the CLI's error.
  console.log('-- pasted config.json');
  await open('');
  await act(() => page.click('button[data-src=config]'));
  await act(() => page.fill('#config-text', fs.readFileSync(path.join(fx, 'tinyllama', 'config.json'), 'utf8')));
  s = await shown();
  checkEstimate('pasted TinyLlama config.json', s, tf(path.join(fx, 'tinyllama', 'config.json')),
                { pathFrom: path.join(fx, 'tinyllama', 'config.json'), pathTo: '/input/config.json' });
  await act(() => page.fill('#config-text', fs.readFileSync(path.join(fx, 'bad', 'not_config.json'), 'utf8')));
  s = await shown();
  const notConfig = native(tf(path.join(fx, 'bad', 'not_config.json')).concat('--json'));
  t.ok('a JSON that is no config: the error box, no answer', s.error && !s.answer, JSON.stringify(s.error));
  t.ok('... with the CLI\'s message and exit code', s.error && s.error.includes(`exit ${notConfig.code}`) &&
       s.error.includes(notConfig.stderr.trim().replace(path.join(fx, 'bad', 'not_config.json'), '/input/config.json')),
       `${s.error}\nnative: ${notConfig.stderr}`);
  await screenshot('not-a-config');

  // 5. Dropped files, read header-only.
  console.log('-- local files');
  const gguf = path.join(fx, 'gguf', 'TinyLlama-1.1B-Q4_K_M.gguf');
  await open('engine=llamacpp&quant=');
  await act(() => page.click('button[data-src=files]'));
  await act(() => page.setInputFiles('#file-input', gguf));
  s = await shown();
  checkEstimate('dropped TinyLlama Q4_K_M GGUF', s, llama(gguf, {}), { pathFrom: gguf, pathTo: '/input/TinyLlama-1.1B-Q4_K_M.gguf' });
  const ggufRead = Number((/([\d,]+) bytes of headers read/.exec(s.status) || ['', 'NaN'])[1].replace(/,/g, ''));
  t.ok(`GGUF read header-only: ${ggufRead} bytes of ${fs.statSync(gguf).size}`, ggufRead > 0 && ggufRead < 4 * 2 ** 20, s.status);
  checkParams('dropped GGUF', s, gguf);
  await screenshot('gguf-dropped');

  const big = path.join(fx, 'gguf', 'Phi-3-mini-4k-F32.gguf');
  const t0 = Date.now();
  await act(() => page.setInputFiles('#file-input', big));
  const bigMs = Date.now() - t0;
  s = await shown();
  checkEstimate(`dropped 15 GB Phi-3 F32 GGUF (all answers in ${bigMs} ms)`, s, llama(big, {}), { pathFrom: big, pathTo: '/input/Phi-3-mini-4k-F32.gguf' });

  await act(() => page.selectOption('#engine', 'transformers'));
  await act(() => page.setInputFiles('#file-input', [path.join(fx, 'tinyllama', 'config.json'), path.join(fx, 'tinyllama', 'model.safetensors')]));
  s = await shown();
  checkEstimate('dropped config.json + model.safetensors', s, tf(path.join(fx, 'tinyllama')), { pathFrom: path.join(fx, 'tinyllama'), pathTo: '/input' });
  checkParams('dropped config.json + model.safetensors', s, path.join(fx, 'tinyllama'));
  await screenshot('safetensors-dropped');

  const shards = fs.readdirSync(path.join(fx, 'sharded')).map((f) => path.join(fx, 'sharded', f));
  await act(() => page.setInputFiles('#file-input', shards));
  s = await shown();
  checkEstimate('dropped index + 2 shards + config', s, tf(path.join(fx, 'sharded')), { pathFrom: path.join(fx, 'sharded'), pathTo: '/input' });

  const lone = path.join(fx, 'tinyllama', 'model.safetensors');
  await act(() => page.setInputFiles('#file-input', lone));
  s = await shown();
  const loneNative = native(tf(lone).concat('--json'));
  t.ok('a safetensors file alone: the CLI\'s error for the estimate',
       s.error && s.error.includes(loneNative.stderr.trim().replace(lone, '/input/model.safetensors')), `${s.error}\nnative: ${loneNative.stderr}`);
  checkParams('a safetensors file alone: still counted', s, lone);
  await screenshot('safetensors-alone');

  const corrupt = path.join(fx, 'bad', 'corrupt.gguf');
  await act(() => page.setInputFiles('#file-input', corrupt));
  s = await shown();
  const corruptNative = native(tf(corrupt).concat('--json'));
  t.ok('a corrupt GGUF: the error box with the CLI\'s message, no answer',
       s.error && !s.answer && corruptNative.code === 2 && s.error.includes(corruptNative.stderr.trim().replace(corrupt, '/input/corrupt.gguf')),
       `${s.error}\nnative: ${corruptNative.stderr}`);
  await screenshot('corrupt-gguf');

  // 6. A model read from the Hub stand-in (another origin): range requests, CORS; refusals said as such.
  console.log('-- the Hub');
  await open(`src=hub&endpoint=${encodeURIComponent(hub.url)}`);
  await act(async () => {
    await page.fill('#hub-name', 'test-org/tinyllama-sharded');
    await page.click('#hub-form button');
  });
  s = await shown();
  const hubArgs = tf('test-org/tinyllama-sharded');
  // The native CLI reads the same stand-in over HTTP (libcurl) when pointed at it.
  const nativeHub = await nativeAsync(hubArgs.concat('--json'), { env: { HF_ENDPOINT: hub.url, HF_HUB_OFFLINE: '0' } });
  if (nativeHub.code === 0) {
    t.equal('Hub model: components == native llmem reading the same Hub', s.components.map((c) => [c.name, c.bytes]),
            JSON.parse(nativeHub.stdout).components.map((c) => [c.name, c.bytes]));
  } else {
    t.ok('native llmem reads the Hub stand-in', false, nativeHub.stderr);
  }
  checkEstimate('Hub model == the same files on disk', s, tf(path.join(fx, 'sharded')),
                { pathFrom: path.join(fx, 'sharded'), pathTo: 'test-org/tinyllama-sharded' });
  const rangeRequests = hub.log.filter((l) => /bytes=/.test(l) && /safetensors/.test(l));
  t.ok(`Hub: shard headers read with range requests (${rangeRequests.length})`, rangeRequests.length >= 2 &&
       hub.log.every((l) => !/safetensors$/.test(l) || /bytes=/.test(l)), hub.log.join('\n'));
  t.ok('Hub: later requests name the commit', hub.log.some((l) => l.includes(HUB_COMMIT)), hub.log.join('\n'));
  await screenshot('hub-model');

  await act(async () => {
    await page.selectOption('#engine', 'llamacpp');
    await page.selectOption('#quant', '');
  });
  await page.fill('#hub-name', 'test-org/tinyllama-gguf/TinyLlama-1.1B-Q4_K_M.gguf');
  await act(() => page.click('#hub-form button'));
  s = await shown();
  checkEstimate('Hub GGUF file', s, llama(gguf, {}), { pathFrom: gguf, pathTo: 'test-org/tinyllama-gguf/TinyLlama-1.1B-Q4_K_M.gguf' });

  for (const [name, pattern] of [['test-org/gated', /gated/], ['test-org/does-not-exist', /not found/]]) {
    await page.fill('#hub-name', name);
    await page.click('#hub-form button');
    await page.waitForFunction(() => !document.getElementById('error').hidden, null, { timeout: TIMEOUT });
    s = await shown();
    t.ok(`Hub refuses ${name}: said so`, pattern.test(s.error) && !s.answer, s.error);
    await screenshot(`hub-${name.split('/')[1]}`);
  }
  // A server that does not allow cross-origin reads (what a browser meets where the native CLI would not).
  const closed = await serveHub({ 'test-org/tinyllama-sharded': path.join(fx, 'sharded') }, { cors: false });
  await open(`src=hub&endpoint=${encodeURIComponent(closed.url)}`);
  await page.fill('#hub-name', 'test-org/tinyllama-sharded');
  await page.click('#hub-form button');
  await page.waitForFunction(() => !document.getElementById('error').hidden, null, { timeout: TIMEOUT });
  s = await shown();
  t.ok('a Hub that refuses cross-origin reads: said so (CORS)', /CORS/.test(s.error) && !s.answer, s.error);
  await screenshot('hub-no-cors');
  await closed.close();

  // 7. Offline once loaded, and nothing kept.
  console.log('-- offline, nothing kept');
  await open(`model=${tiny}`);
  await context.setOffline(true);
  await act(() => page.fill('#prompt', '512'));
  s = await shown();
  checkEstimate('offline: TinyLlama with a 512-token prompt', s, tf(tiny, { prompt: '512' }));
  await context.setOffline(false);
  const kept = await page.evaluate(async () => ({
    local: localStorage.length, session: sessionStorage.length, cookie: document.cookie,
    idb: indexedDB.databases ? (await indexedDB.databases()).length : 0,
    caches: (await caches.keys()).length,
  }));
  t.equal('nothing stored (localStorage, sessionStorage, cookies, IndexedDB, Cache Storage)', kept, { local: 0, session: 0, cookie: '', idb: 0, caches: 0 });

  // 8. Time to the first answer: 5 first visits (each in a new browser context: nothing cached), and 5 visits
  // again in one context (the browser has llmem.wasm in its HTTP cache, with the code V8 compiled for it).
  console.log('-- timing');
  const load = async (ctx) => {
    const fresh = await ctx.newPage();
    await fresh.goto(`${server.url}/?model=${mistral}`);
    await fresh.waitForFunction(() => window.llmemPage && window.llmemPage.timings.firstAnswer, null, { timeout: TIMEOUT });
    const timing = await fresh.evaluate(() => ({ ...window.llmemPage.timings, navigationToAnswerMs: window.llmemPage.timings.firstAnswer }));
    await fresh.close();
    return timing;
  };
  const firstVisits = [], repeatVisits = [];
  for (let i = 0; i < 5; i++) {
    const ctx = await browser.newContext();
    firstVisits.push(await load(ctx));
    await ctx.close();
  }
  const warmCtx = await browser.newContext();
  await load(warmCtx);
  for (let i = 0; i < 5; i++) repeatVisits.push(await load(warmCtx));
  await warmCtx.close();
  const median = (runs, key) => runs.map((r) => r[key]).sort((a, b) => a - b)[2];
  const summary = (runs) => ({
    compile_ms: median(runs, 'compileMs'), after_compile_to_first_answer_ms: median(runs, 'afterCompileMs'),
    first_run_ms: median(runs, 'firstRunMs'), navigation_to_first_answer_ms: median(runs, 'navigationToAnswerMs'),
  });
  const wasm = fs.readFileSync(path.join(site, 'llmem.wasm'));
  const { gzipSync } = await import('node:zlib');
  const timings = {
    wasm_bytes: wasm.length, wasm_gzip9_bytes: gzipSync(wasm, { level: 9 }).length,
    first_visit_medians: summary(firstVisits), repeat_visit_medians: summary(repeatVisits), first_visits: firstVisits, repeat_visits: repeatVisits,
    chromium: browser.version(), load_average: os.loadavg()[0], cpus: os.cpus().length,
  };
  fs.writeFileSync(path.join(artifacts, 'timings.json'), JSON.stringify(timings, null, 2) + '\n');
  const line = (m) => `wasm compile ${m.compile_ms.toFixed(1)} ms, compiled -> first answer shown ` +
    `${m.after_compile_to_first_answer_ms.toFixed(1)} ms (the estimate itself ${m.first_run_ms.toFixed(1)} ms), navigation -> ` +
    `first answer ${m.navigation_to_first_answer_ms.toFixed(1)} ms`;
  console.log(`timing, medians of 5 (Chromium ${timings.chromium}, load average ${timings.load_average.toFixed(1)} on ${timings.cpus} CPUs; ` +
              `llmem.wasm ${timings.wasm_bytes} bytes, ${timings.wasm_gzip9_bytes} gzipped):\n` +
              `  first visit:  ${line(timings.first_visit_medians)}\n  repeat visit: ${line(timings.repeat_visit_medians)}`);
  t.ok('llmem.wasm under 1 MB gzipped', timings.wasm_gzip9_bytes < 1e6, timings.wasm_gzip9_bytes);
  t.equal('no script errors on the page', pageErrors, []);
} catch (e) {
  t.ok('the test ran to its end', false, e.stack);
  await screenshot('failure').catch(() => {});
} finally {
  await browser.close();
  await server.close();
  await hub.close();
}
process.exit(t.done() ? 0 : 1);
