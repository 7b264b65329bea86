// The page: a thin UI over llmem's CLI compiled to WebAssembly. Every number shown comes from a CLI command run
// in this tab (`... --json`), and the command is shown beside it; the page only lays the answers out.
import { Engine, readHubModel, HubError, HF_CACHE } from './engine.js';
import { stackedBar, contextPlot, colour } from './charts.js';
import { gib, thousands, paramsShort } from './format.js';

// ---- state: everything the user chose, mirrored in the URL (defaults are left out) --------------------------
const DEFAULTS = {
  src: 'catalog', model: 'mistralai/Mistral-7B-v0.1', cfg: '', hub: '',
  gpu: 'RTX-4090', vram: '', reserve: '',
  engine: 'transformers', mode: 'inference', dtype: 'fp16', prompt: '6', new: '14', batch: '1',
  train: 'full', precision: 'bf16', optimizer: 'adamw', seq: '512', ckpt: '0', lora_r: '16',
  nocache: '0', attn: '', alloc: '', accum: '1', hftrainer: '0', ubatch: '', parallel: '',
  mxfp4: '', targets: '', bnbq: 'nf4', bnbdq: 'true', gpus: '1', dmap: '', maxmem: '', sharding: 'ddp',
  quant: 'Q4_K_M', ctx: '4096', ngl: '-1', ctk: 'f16', ctv: 'f16', fa: 'auto',
  vver: '', vdtype: 'auto', mml: '', util: '0.9', mns: '', kvd: 'auto', tp: '1', eager: '0',
  mnbt: '', block: '', kvmem: '', llmclass: '0', longmml: '0', mxmarlin: '0', conc: '',
  endpoint: 'https://huggingface.co',
};
const state = { ...DEFAULTS };
const INPUT_DIR = '/input';

// Form controls bound to state keys.
const BINDINGS = {
  'catalog-model': 'model', 'config-text': 'cfg', 'hub-name': 'hub', gpu: 'gpu', vram: 'vram', engine: 'engine',
  mode: 'mode', dtype: 'dtype', prompt: 'prompt', 'new-tokens': 'new', batch: 'batch', train: 'train',
  precision: 'precision', optimizer: 'optimizer', seq: 'seq', 'grad-ckpt': 'ckpt', 'lora-r': 'lora_r',
  quant: 'quant', ctx: 'ctx', ngl: 'ngl', ctk: 'ctk', ctv: 'ctv', fa: 'fa',
  'vllm-version': 'vver', 'vllm-dtype': 'vdtype', 'max-model-len': 'mml', 'gpu-util': 'util', 'max-num-seqs': 'mns',
  'kv-dtype': 'kvd', tp: 'tp', eager: 'eager',
  reserve: 'reserve', 'no-cache': 'nocache', attn: 'attn', 'alloc-conf': 'alloc', 'grad-accum': 'accum',
  'hf-trainer': 'hftrainer', ubatch: 'ubatch', parallel: 'parallel',
  'mxfp4-kernels': 'mxfp4', 'lora-targets': 'targets', 'bnb-quant-type': 'bnbq', 'bnb-double-quant': 'bnbdq',
  gpus: 'gpus', 'device-map': 'dmap', 'max-memory': 'maxmem', sharding: 'sharding',
  'max-num-batched-tokens': 'mnbt', 'block-size': 'block', 'kv-cache-memory': 'kvmem', 'llm-class': 'llmclass',
  'allow-long': 'longmml', 'mxfp4-marlin': 'mxmarlin', concurrency: 'conc',
};
const $ = (id) => document.getElementById(id);

function base64url(text) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
function unbase64url(text) {
  const bin = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

function readUrl() {
  const q = new URLSearchParams(location.search);
  for (const key of Object.keys(DEFAULTS)) {
    if (!q.has(key)) continue;
    let v = q.get(key);
    if (key === 'cfg') {
      try { v = unbase64url(v); } catch (e) { v = ''; }
    }
    state[key] = v;
  }
  if (state.src === 'files') state.src = 'catalog';  // dropped files are never kept: they cannot come back
}

function writeUrl() {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(state)) {
    if (value === DEFAULTS[key]) continue;
    if (key === 'cfg') {
      if (state.src !== 'config') continue;
      let compact = value;
      try { compact = JSON.stringify(JSON.parse(value)); } catch (e) { /* kept as typed */ }
      q.set(key, base64url(compact));
    } else if (key === 'hub' && state.src !== 'hub') {
      continue;
    } else {
      q.set(key, value);
    }
  }
  const query = q.toString();
  history.replaceState(null, '', query ? `?${query}` : location.pathname);
}

function setSelectOptions(select, options, keep) {
  const current = keep ?? select.value;
  select.replaceChildren(...options.map(([value, label]) => new Option(label, value)));
  if (!options.some(([value]) => value === current) && current) select.add(new Option(current, current), 0);
  select.value = current;
}

function stateToForm() {
  for (const [id, key] of Object.entries(BINDINGS)) {
    const control = $(id);
    if (control.type === 'checkbox') control.checked = state[key] === '1';
    else if (control.tagName === 'SELECT') setSelectOptions(control, [...control.options].map((o) => [o.value, o.text]), state[key]);
    else control.value = state[key];
  }
  showPanes();
}

function showPanes() {
  document.querySelectorAll('.tabs button').forEach((b) => b.setAttribute('aria-selected', String(b.dataset.src === state.src)));
  document.querySelectorAll('.pane').forEach((p) => { p.hidden = p.dataset.pane !== state.src; });
  document.querySelectorAll('[data-engine]').forEach((e) => { e.hidden = e.dataset.engine !== state.engine; });
  document.querySelectorAll('[data-mode]').forEach((e) => { e.hidden = e.dataset.mode !== state.mode; });
  document.querySelectorAll('[data-train]').forEach((e) => { e.hidden = !e.dataset.train.split(' ').includes(state.train); });
  const several = Number(state.gpus) > 1;  // --device-map, --max-memory and --sharding apply with --gpus above 1
  document.querySelectorAll('[data-gpus]').forEach((e) => { e.hidden = !several; });
}

// ---- inputs: the model source ------------------------------------------------------------------------------
let localFiles = [];      // File objects dropped or chosen (never stored)
let hubFiles = [];        // files of every Hub model read in this tab, mounted as a Hugging Face cache
const hubRead = new Map(); // Hub spec -> {requests, bytes}

function sourceSpec() {
  switch (state.src) {
    case 'catalog': return state.model;
    case 'config': return state.cfg.trim() ? `${INPUT_DIR}/config.json` : null;
    case 'files':
      if (!localFiles.length) return null;
      return localFiles.length === 1 ? `${INPUT_DIR}/${localFiles[0].name}` : INPUT_DIR;
    case 'hub': return hubRead.has(state.hub.trim()) ? state.hub.trim() : null;
  }
  return null;
}

function sourceLabel() {
  if (state.src === 'files') return localFiles.map((f) => f.name).join(', ');
  if (state.src === 'config') return 'pasted config.json';
  return sourceSpec();
}

function mountInputs() {
  if (state.src === 'config') {
    engine.setMounts([{ dir: INPUT_DIR, files: [{ path: 'config.json', data: new TextEncoder().encode(state.cfg).buffer }] }]);
  } else if (state.src === 'files') {
    engine.setMounts([{ dir: INPUT_DIR, files: localFiles.map((f) => ({ path: f.name, size: f.size, file: f })) }]);
  } else {
    engine.setMounts([{ dir: INPUT_DIR, files: [] }]);
  }
}

// Directory drops: every file of the folder, flat (a model folder has no subfolders that matter).
async function filesFromDrop(dataTransfer) {
  const entries = [...dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return [...dataTransfer.files];
  const out = [];
  const walk = async (entry) => {
    if (entry.isFile) out.push(await new Promise((res, rej) => entry.file(res, rej)));
    else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const e of batch) await walk(e);
      }
    }
  };
  for (const e of entries) await walk(e);
  return out;
}

function useFiles(files) {
  const byName = new Map();
  for (const f of files) byName.set(f.name, f);  // one folder: names are unique
  localFiles = [...byName.values()];
  state.src = 'files';
  $('files-list').textContent = localFiles.map((f) => `${f.name} (${gib(f.size, 2)} GiB)`).join(' · ');
  showPanes();
  mountInputs();
  update();
}

async function readHub() {
  const spec = state.hub.trim();
  if (!spec) return;
  setStatus(`reading ${spec} from ${state.endpoint} …`);
  showError(null);
  try {
    const model = await readHubModel(state.endpoint.replace(/\/+$/, ''), spec);
    const prefix = `models--${model.repo.replace('/', '--')}/`;
    hubFiles = hubFiles.filter((f) => !f.path.startsWith(prefix)).concat(model.files);
    engine.setMounts([{ dir: HF_CACHE, files: hubFiles }]);
    hubRead.set(spec, { requests: model.requests, bytes: model.bytes });
    setStatus(`${spec}: ${model.requests} requests, ${thousands(model.bytes)} bytes of headers read from ${state.endpoint}`);
    update();
  } catch (e) {
    hubRead.delete(spec);
    clearAnswer();
    showError(e instanceof HubError ? e.message : `reading ${spec}: ${e.message}`, 'The Hub');
    setStatus('');
  }
}

// ---- CLI arguments -------------------------------------------------------------------------------------------
// --gpu gives the GPU (and its CUDA context); --vram, when typed, its memory (the CLI reads the size).
// --reserve, when typed, the memory kept free (the CLI's default otherwise).
function gpuArgs() {
  const a = state.gpu ? ['--gpu', state.gpu] : [];
  if (state.vram.trim()) a.push('--vram', state.vram.trim());
  if (state.reserve.trim()) a.push('--reserve', state.reserve.trim());
  return a;
}

function vllmArgs(maxModelLen) {
  const a = ['--engine', 'vllm'];
  if (state.vver) a.push('--vllm-version', state.vver);
  a.push('--dtype', state.vdtype);
  if (maxModelLen) a.push('--max-model-len', String(maxModelLen));
  a.push('--gpu-memory-utilization', state.util);
  if (state.mns.trim()) a.push('--max-num-seqs', state.mns.trim());
  a.push('--kv-cache-dtype', state.kvd, '--tensor-parallel-size', state.tp);
  if (state.eager === '1') a.push('--enforce-eager');
  if (state.mnbt.trim()) a.push('--max-num-batched-tokens', state.mnbt.trim());
  if (state.block.trim()) a.push('--block-size', state.block.trim());
  if (state.kvmem.trim()) a.push('--kv-cache-memory', state.kvmem.trim());
  if (state.llmclass === '1') a.push('--llm-class');
  if (state.longmml === '1') a.push('--allow-long-max-model-len');
  if (state.mxmarlin === '1') a.push('--mxfp4-marlin');
  if (state.conc.trim()) a.push('--concurrency', state.conc.trim());
  return a;
}

// transformers with several GPUs: --gpus N (1, the default, is not written); --device-map and --max-memory
// for inference, --sharding for training (the CLI needs one with --gpus above 1).
const severalGpus = () => Number(state.gpus) > 1;
function gpusArgs() {
  const a = state.gpus.trim() && state.gpus.trim() !== '1' ? ['--gpus', state.gpus.trim()] : [];
  if (!severalGpus()) return a;
  if (state.mode === 'train') return a.concat('--sharding', state.sharding);
  if (state.dmap) a.push('--device-map', state.dmap);
  if (state.maxmem.trim()) a.push('--max-memory', state.maxmem.trim());
  return a;
}

function estimateArgs(spec, { contextTokens } = {}) {
  const a = ['estimate', spec];
  if (state.engine === 'llamacpp') {
    a.push('--engine', 'llamacpp');
    if (state.quant) a.push('--quant', state.quant);  // none: the GGUF file's own types
    a.push('--ctx', String(contextTokens ?? state.ctx), '--ngl', state.ngl, '--cache-type-k', state.ctk,
           '--cache-type-v', state.ctv, '--flash-attn', state.fa);
    if (state.ubatch.trim()) a.push('--ubatch', state.ubatch.trim());
    if (state.parallel.trim()) a.push('--parallel', state.parallel.trim());
  } else if (state.engine === 'vllm') {
    a.push(...vllmArgs(contextTokens ?? state.mml.trim()));
  } else if (state.mode === 'train') {
    // QLoRA's precision is bitsandbytes' (a bf16 compute dtype): --precision is for full and LoRA only
    a.push('--train', state.train, ...(state.train === 'qlora' ? [] : ['--precision', state.precision]),
           '--optimizer', state.optimizer, '--seq', String(contextTokens ?? state.seq), '--batch', state.batch);
    if (state.ckpt === '1') a.push('--grad-ckpt');
    if (state.accum.trim() && state.accum.trim() !== '1') a.push('--grad-accum', state.accum.trim());
    if (state.hftrainer === '1') a.push('--hf-trainer');
    if (state.train === 'lora' || state.train === 'qlora') {
      a.push('--lora-r', state.lora_r);
      if (state.targets) a.push('--lora-targets', state.targets);
    }
    if (state.train === 'qlora') a.push('--bnb-4bit-quant-type', state.bnbq, '--bnb-double-quant', state.bnbdq);
    if (state.alloc) a.push('--alloc-conf', state.alloc);
    a.push(...gpusArgs());
  } else {
    a.push('--dtype', state.dtype, '--prompt', String(contextTokens ?? state.prompt), '--new-tokens', state.new,
           '--batch', state.batch);
    if (state.nocache === '1') a.push('--no-cache');
    if (state.attn) a.push('--attn', state.attn);
    if (state.mxfp4) a.push('--mxfp4-kernels', state.mxfp4);
    if (state.alloc) a.push('--alloc-conf', state.alloc);
    a.push(...gpusArgs());
  }
  return a.concat(gpuArgs());
}

function fitArgs(spec) {
  const a = ['fit', spec];
  if (state.engine === 'llamacpp') {
    a.push('--engine', 'llamacpp', '--ctx', state.ctx, '--flash-attn', state.fa);
    if (state.ctk === state.ctv && ['f16', 'q8_0', 'q4_0'].includes(state.ctk)) a.push('--cache-type', state.ctk);
  } else if (state.engine === 'vllm') {
    a.push(...vllmArgs(state.mml.trim()));
  } else {
    a.push('--prompt', state.prompt, '--new-tokens', state.new, '--seq', state.seq);
    if (state.gpus.trim() && state.gpus.trim() !== '1') a.push('--gpus', state.gpus.trim());
  }
  return a.concat(gpuArgs());
}

function contextKnob() {
  if (state.engine === 'llamacpp') return { value: Number(state.ctx), label: 'context n_ctx (tokens)' };
  if (state.engine === 'vllm') return { value: Number(state.mml) || NaN, label: '--max-model-len (tokens)' };
  if (state.mode === 'train') return { value: Number(state.seq), label: 'training sequence (tokens)' };
  return { value: Number(state.prompt), label: `prompt (tokens), then ${state.new} new tokens` };
}

function shellQuote(args) {
  return 'llmem ' + args.map((a) => (/^[\w./@:=,+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

// ---- rendering --------------------------------------------------------------------------------------------
function setStatus(text) { $('status').textContent = text; }

function showError(text, title = 'llmem') {
  const box = $('error');
  box.hidden = !text;
  if (text) box.replaceChildren(Object.assign(document.createElement('strong'), { textContent: `${title}: ` }),
                                Object.assign(document.createElement('pre'), { textContent: text }));
}

function clearAnswer() {
  for (const id of ['answer', 'plot-box', 'fit-box', 'params-box']) $(id).hidden = true;
}

function cliError(result, reads) {
  let text = (result.stderr || result.stdout || '').trim() || `exit code ${result.code}`;
  if (reads && reads.errors.length) text += '\n' + [...new Set(reads.errors)].join('\n');
  return text;
}

function gpuDisplay(estimate) {
  if (state.vram.trim()) return `a GPU of --vram ${state.vram.trim()}`;
  return gpuNames.get(estimate.gpu.name) || estimate.gpu.name;
}

function cell(tag, text, cls) {
  const c = document.createElement(tag);
  c.textContent = text;
  if (cls) c.className = cls;
  return c;
}

// The CLI's heading: its first two paragraphs (title, workload), a line it wrapped at 100 columns continuing
// indented by two spaces; and the index of the line after them.
function cliHeading(lines) {
  const out = [];
  let i = 0;
  for (; i < lines.length; ++i) {
    if (out.length && lines[i].startsWith('  ') && lines[i].trim()) out[out.length - 1] += ' ' + lines[i].trim();
    else if (out.length === 2) break;
    else out.push(lines[i]);
  }
  return { title: out[0] || '', workload: out[1] || '', next: i };
}

function renderEstimate(spec, estimate, text, args) {
  const llama = estimate.engine === 'llama.cpp', vllm = estimate.engine === 'vllm';
  const memory = estimate.gpu.memory_bytes;
  // what the run may use: the memory less what is in use and the reserve (the CLI's "budget")
  const budget = estimate.gpu.budget_bytes ?? memory;
  // The CLI's text form (same command without --json) gives the heading in its words; until it arrives, the
  // heading is made from the JSON.
  const lines = text ? text.split('\n') : [];
  const heading = cliHeading(lines);
  $('answer-title').textContent = text ? heading.title.replace(spec, sourceLabel())
    : `${sourceLabel()} on ${gpuDisplay(estimate)} with ${estimate.engine_version}`;
  $('answer-workload').textContent = heading.workload;
  const spare = budget - estimate.process_peak_bytes;
  const fits = vllm ? estimate.starts : estimate.process_peak_bytes <= budget;
  const verdict = $('verdict');
  verdict.className = 'verdict ' + (fits ? 'fits' : 'no-fit');
  verdict.dataset.fits = String(fits);
  verdict.dataset.memoryBytes = String(memory);
  // The CLI's own line once its text form is here; until then the same words from the JSON.
  const cliVerdict = text && lines.find((l) => /^(Fits on |Does NOT fit on |vLLM starts|vLLM would not start)/.test(l));
  verdict.textContent = cliVerdict || (vllm ? (fits ? 'vLLM starts.' : `vLLM would not start: ${estimate.refusal}`)
    : `${fits ? 'Fits' : 'Does NOT fit'} on ${gpuDisplay(estimate)}: ` +
      (spare >= 0 ? `${gib(spare, 2)} GiB to spare` : `${gib(-spare, 2)} GiB short`));
  // vLLM: what its start-up log will say, as the CLI prints it (the lines before the component table).
  const startup = vllm && text ? lines.slice(heading.next, lines.findIndex((l) => /^Component\s/.test(l))).join('\n').trim() : '';
  $('startup').textContent = startup;
  $('startup').hidden = !startup;

  const gpuComponents = estimate.components.filter((c) => !c.device || c.device === 'gpu');
  $('bar').replaceChildren(stackedBar(gpuComponents, memory, { label: 'GPU memory' }));
  if (llama) {
    const host = estimate.components.filter((c) => c.device === 'host');
    if (host.length) $('bar').appendChild(stackedBar(host, null, { label: 'host' }));
  }

  const table = $('components');
  table.classList.toggle('llama', llama);
  table.tBodies[0].replaceChildren(...estimate.components.map((c) => {
    const tr = document.createElement('tr');
    const name = cell('td', c.name);
    name.prepend(Object.assign(document.createElement('span'), { className: 'swatch', style: `background:${colour(c.name)}` }));
    tr.append(name, cell('td', c.device || '', 'where'), cell('td', gib(c.bytes, 3), 'num'), cell('td', c.detail));
    tr.dataset.component = c.name;
    tr.dataset.bytes = String(c.bytes);
    return tr;
  }));
  const totals = vllm
    ? [['Process peak', estimate.process_peak_bytes, estimate.starts ? 'what nvidia-smi / NVML shows for the process, per GPU'
                                                                     : 'the GPU memory it would need to start', 'process_peak_bytes']]
    : llama
    ? [['Weights (file)', estimate.weight_bytes, `tensor data of the ${estimate.workload.quant} file (${thousands(estimate.weight_bytes)} bytes)`, 'weight_bytes'],
       ['GPU buffers', estimate.framework_peak_bytes, "llama.cpp's GPU buffers (model, KV cache, compute)", 'framework_peak_bytes'],
       ['GPU process peak', estimate.process_peak_bytes, 'what nvidia-smi / NVML shows for the process', 'process_peak_bytes'],
       ['Host', estimate.host_bytes, 'weights off the GPU, CPU buffers, the process', 'host_bytes'],
       // as the text report: the resident peak only where it exceeds what must stay resident (mmap: the whole file
       // is resident while loading)
       ...(estimate.host_peak_bytes > estimate.host_bytes
         ? [['Host peak', estimate.host_peak_bytes, 'while loading: the whole file mapped (page cache)', 'host_peak_bytes']] : [])]
    : [['Framework peak', estimate.framework_peak_bytes, `torch.cuda.max_memory_allocated() (peak: ${estimate.peak_phase})`, 'framework_peak_bytes'],
       ['Reserved peak', estimate.reserved_peak_bytes, 'torch.cuda.max_memory_reserved()', 'reserved_peak_bytes'],
       ['Process peak', estimate.process_peak_bytes, 'what nvidia-smi / NVML shows for the process', 'process_peak_bytes']];
  table.tFoot.replaceChildren(...totals.map(([label, bytes, what, key]) => {
    const tr = document.createElement('tr');
    tr.append(cell('th', label), cell('td', '', 'where'), cell('td', gib(bytes, 3), 'num'), cell('td', what));
    tr.dataset.total = key;
    tr.dataset.bytes = String(bytes);
    return tr;
  }));
  $('notes').replaceChildren(...(estimate.notes || []).map((n) => cell('li', `note: ${n}`)));
  renderPerGpu(estimate, lines);
  $('cli-line').textContent = `$ ${shellQuote(args)}\n${text || ''}`;
  $('answer').hidden = false;
}

// --gpus N (transformers): a row per GPU (inference) or rank (training), as the CLI's "Per GPU" table, with the
// placement or sharding in words (multi_gpu).
function renderPerGpu(estimate, lines) {
  const rows = estimate.per_gpu || [];
  $('per-gpu-box').hidden = !rows.length;
  if (!rows.length) return;
  const cliCaption = lines.find((l) => /^Per GPU /.test(l));
  const largest = rows.find((g) => g.process_peak_bytes === estimate.process_peak_bytes) || rows[0];
  $('per-gpu-caption').textContent = cliCaption ||
    `Per GPU (modelled from source, see the note; the table above is GPU ${largest.index}'s, the largest):`;
  const kv = (g) => (g.components || []).filter((c) => c.name === 'kv_cache').reduce((s, c) => s + c.bytes, 0);
  $('per-gpu').tBodies[0].replaceChildren(...rows.map((g) => {
    const tr = document.createElement('tr');
    tr.append(cell('td', String(g.index)), ...[g.weight_bytes, kv(g), g.framework_peak_bytes, g.process_peak_bytes]
      .map((b) => cell('td', gib(b, 2), 'num')), cell('td', g.fits ? g.role : `${g.role} (does NOT fit)`));
    tr.className = g.fits ? 'fits' : 'no-fit';
    tr.dataset.gpu = JSON.stringify({ index: g.index, weight_bytes: g.weight_bytes, kv_cache_bytes: kv(g),
                                      framework_peak_bytes: g.framework_peak_bytes, process_peak_bytes: g.process_peak_bytes, fits: g.fits });
    return tr;
  }));
  $('multi-gpu').replaceChildren(...(estimate.multi_gpu || []).map((n) => cell('li', n)));
}

async function renderPlot(spec, gen, estimate) {
  const knob = contextKnob();
  // Powers of two from 128 to 128K tokens, and the chosen length (a few tokens would only squeeze the axis).
  const xs = new Set(knob.value >= 64 ? [knob.value] : []);
  for (let x = 128; x <= 131072; x *= 2) xs.add(x);
  const points = [...xs].filter((x) => Number.isFinite(x) && x >= 1).sort((a, b) => a - b);
  const answer = await engine.quick.run('plot', points.map((x) => estimateArgs(spec, { contextTokens: x }).concat('--json')));
  if (!answer || gen !== generation) return;
  if (answer.error) return;
  const data = [];
  answer.results.forEach((r, i) => {
    if (r.code !== 0) return;  // past what the model or engine accepts: the plot stops there
    const e = JSON.parse(r.stdout);
    data.push({ x: points[i], components: e.components.filter((c) => !c.device || c.device === 'gpu'), refused: e.starts === false });
  });
  lastPlot = { gen, data, memory: estimate.gpu.memory_bytes, knob, cap: contextCap.gen === gen ? contextCap.tokens : null };
  drawPlot();
}

// Draws the last plot, up to the model's own context once the fit search has said what it is (the CLI
// estimates longer contexts too, but a model is not run past the context it was trained for).
let lastPlot = null;
let contextCap = { gen: 0, tokens: null };  // the model's context, from this generation's fit answer
function drawPlot() {
  if (!lastPlot) return;
  const { data, memory, knob } = lastPlot;
  const shown = lastPlot.cap ? data.filter((d) => d.x <= lastPlot.cap || d.x === knob.value) : data;
  if (shown.length < 2) { $('plot-box').hidden = true; return; }
  $('plot').replaceChildren(contextPlot(shown, memory, { xLabel: knob.label, current: knob.value }));
  $('plot').dataset.points = JSON.stringify(shown.map((d) => [d.x, d.components.reduce((s, c) => s + c.bytes, 0)]));
  $('plot-caption').textContent = lastPlot.cap
    ? `Each point is llmem's estimate at that length, up to the model's context (${thousands(lastPlot.cap)} tokens).`
    : "Each point is llmem's estimate at that length.";
  $('plot-box').hidden = false;
}

function renderTree(node, depth, total) {
  const share = total ? ` ${(100 * node.params / total).toFixed(1)} %` : '';
  const label = `${node.name}${node.repeat > 1 ? ` ×${node.repeat}` : ''} — ${thousands(node.params)} params${share}, ${gib(node.bytes, 3)} GiB`;
  if (!node.children || !node.children.length) {
    const leaf = cell('div', label, 'leaf');
    leaf.title = node.path;
    return leaf;
  }
  const details = document.createElement('details');
  details.open = depth < 1;
  const summary = cell('summary', label);
  summary.title = node.path;
  details.append(summary, ...node.children.map((c) => renderTree(c, depth + 1, total)));
  return details;
}

function renderParams(p) {
  const dtypes = (p.dtypes || []).map((d) => `${thousands(d.params)} ${d.dtype} (${gib(d.bytes, 3)} GiB)`).join(', ');
  const tied = p.total_params_with_tied !== p.total_params ? `; ${thousands(p.total_params_with_tied)} counting tied weights twice` : '';
  const summary = $('params-summary');
  summary.textContent = `${thousands(p.total_params)} parameters (${paramsShort(p.total_params)}) from ${p.basis}` +
                        `${tied}. ${dtypes}.`;
  summary.dataset.totalParams = String(p.total_params);
  const root = p.modules && { ...p.modules, name: p.modules.name || (p.architecture && p.architecture.class) || 'model' };
  $('params-tree').replaceChildren(...(root ? [renderTree(root, 0, p.total_params)] : []));
  $('params-box').hidden = false;
}

function renderFit(fit, text) {
  const head = $('fit').tHead, body = $('fit').tBodies[0];
  const llama = fit.engine === 'llama.cpp';
  $('fit').dataset.gpuMemoryBytes = String(fit.gpu.memory_bytes);
  $('fit-text').hidden = !text;
  $('fit-text').textContent = text ? text.trim() : '';
  if (fit.engine === 'vllm') {
    head.replaceChildren();
    body.replaceChildren();
    $('fit-foot').textContent = '';
    $('fit-text').dataset.options = JSON.stringify(fit.options);
    $('fit-box').hidden = false;
    return;
  }
  // a MoE model's options carry the smallest --n-cpu-moe (null for a dense model), as llmem fit's column
  const moe = llama && fit.options.some((o) => o.min_n_cpu_moe !== null && o.min_n_cpu_moe !== undefined);
  const ncmoe = (o) => (o.min_n_cpu_moe === null || o.min_n_cpu_moe === undefined ? '—'
    : o.min_n_cpu_moe < 0 ? 'none' : String(o.min_n_cpu_moe));
  const columns = llama
    ? ['quant', 'file GiB', 'GPU peak GiB', 'fits', '-ngl', ...(moe ? ['--n-cpu-moe'] : []), 'max context']
    : ['Mode', 'Precision', 'Fits', 'Peak GiB', 'Headroom GiB', 'Max context (tokens)', 'Max batch', 'GPUs needed'];
  head.replaceChildren(Object.assign(document.createElement('tr'), {}));
  head.rows[0].append(...columns.map((c) => cell('th', c)));
  body.replaceChildren(...fit.options.map((o) => {
    const tr = document.createElement('tr');
    const cells = llama
      ? [o.quant, gib(o.weight_bytes, 2), gib(o.process_peak_bytes, 2), o.all_layers_fit ? 'yes' : 'no',
         o.all_layers_fit ? 'all' : o.max_ngl < 0 ? 'none' : `${o.max_ngl} of ${o.n_layer + 1}`,
         ...(moe ? [ncmoe(o)] : []),
         o.max_context ? thousands(o.max_context) + (o.context_capped ? '*' : '') : '—']
      : [o.sharding ? `${o.mode}/${o.sharding}` : o.mode, o.precision, o.fits ? 'yes' : 'no',
         (o.per_gpu_approximate ? '~' : '') + gib(o.per_gpu_bytes, 2), (o.per_gpu_approximate ? '~' : '') + gib(o.headroom_bytes, 2),
         o.max_context ? thousands(o.max_context) + (o.context_capped ? '*' : '') : '—',
         o.max_batch ? thousands(o.max_batch) + (o.batch_capped ? '*' : '') : '—',
         // the even split's answer is an approximation (~), the per-GPU model's is not, as the CLI marks them
         o.gpus_needed === 0 ? 'none' : (o.gpus_needed_approximate ? '~' : '') + o.gpus_needed];
    tr.append(...cells.map((c, i) => cell('td', c, i >= (llama ? 1 : 3) ? 'num' : '')));
    tr.className = (llama ? o.all_layers_fit : o.fits) ? 'fits' : 'no-fit';
    tr.dataset.option = JSON.stringify(o);
    return tr;
  }));
  $('fit-foot').textContent = (llama
    ? `On ${fit.gpu.display_name} (${gib(fit.gpu.memory_bytes, 2)} GiB), n_ctx ${thousands(fit.n_ctx)}. file GiB: tensor data of the GGUF llama-quantize would write; GPU peak: every layer on the GPU; -ngl: layers that fit (the output layer counts as one);${moe ? ' --n-cpu-moe: with every layer on the GPU, the fewest layers whose routed experts stay in host memory for the rest to fit;' : ''} max context: every layer on the GPU, multiples of 256.`
    : `On ${fit.gpu.display_name} (${gib(fit.gpu.memory_bytes, 2)} GiB, a budget of ${gib(fit.gpu.budget_bytes ?? fit.gpu.memory_bytes, 2)} GiB after the reserve). Peak and headroom at the given context and batch 1; max context at batch 1 (prompt tokens for inference, sequence length for training); max batch at the given context; ~ an approximation: the footprint split evenly over GPUs.`) +
    ' * = the search\'s limit (the model\'s context), not memory\'s.';
  $('fit-box').hidden = false;
}

// ---- the update loop --------------------------------------------------------------------------------------
let engine;
let generation = 0;
let paramsFor = null;  // the source whose params are shown
const gpuNames = new Map();
window.llmemPage = { timings: {}, answers: 0, generation: 0 };

async function update() {
  const gen = ++generation;
  window.llmemPage.generation = gen;  // with body[data-settled]: when every answer of this change is shown
  writeUrl();
  const spec = sourceSpec();
  if (!spec) {
    clearAnswer();
    showError(null);
    setStatus(state.src === 'hub' ? 'type a Hub name and read its headers' :
              state.src === 'files' ? 'drop model files to read their headers' : 'paste a config.json');
    document.body.dataset.settled = String(gen);
    return;
  }
  const args = estimateArgs(spec);
  // The first answer of a catalog model comes from the page-thread instance (no files to read), the rest from
  // the workers.
  const first = engine.takeFirst();  // taken (and let go) whatever the source
  const here = state.src === 'catalog' ? first : null;
  let answer = null;
  if (here) {
    try {
      const t0 = performance.now();
      const r = here.run(args.concat('--json'));
      r.ms = performance.now() - t0;
      answer = { results: [r], reads: { requests: 0, bytes: 0, errors: [] } };
    } catch (e) {
      answer = null;  // the workers answer instead
    }
  }
  if (!answer) answer = await engine.quick.run('estimate', [args.concat('--json')]);
  if (!answer || gen !== generation) return;
  if (answer.error) { showError(answer.error, 'the page'); document.body.dataset.settled = String(gen); return; }
  const [json] = answer.results;
  if (json.code !== 0) {
    clearAnswer();
    showError(cliError(json, answer.reads), `llmem (exit ${json.code})`);
    setStatus('');
    window.llmemPage.answers += 1;
    // A file that cannot be estimated may still be counted (a safetensors file without its config.json).
    const p = await engine.quick.run('params', [['params', spec, '--depth', '4', '--json']]);
    if (p && gen === generation && p.results && p.results[0].code === 0) renderParams(JSON.parse(p.results[0].stdout));
    if (gen === generation) document.body.dataset.settled = String(gen);
    return;
  }
  showError(null);
  const estimate = JSON.parse(json.stdout);
  renderEstimate(spec, estimate, null, args);
  if (!window.llmemPage.timings.firstAnswer) {
    window.llmemPage.timings.firstAnswer = performance.now();
    window.llmemPage.timings.afterCompileMs = performance.now() - engine.compiledAt;
    window.llmemPage.timings.firstRunMs = json.ms;
    window.llmemPage.timings.instantiateMs = engine.instantiateMs;
  }
  const textAnswer = await engine.quick.run('text', [args]);
  if (!textAnswer || gen !== generation) return;
  if (textAnswer.results && textAnswer.results[0].code === 0) renderEstimate(spec, estimate, textAnswer.results[0].stdout, args);
  const reads = answer.reads.requests ? `; ${thousands(answer.reads.bytes)} bytes of headers read` : '';
  setStatus(`answered in ${json.ms.toFixed(1)} ms${reads}`);
  window.llmemPage.answers += 1;

  // the fit search runs beside the rest, in its own worker
  const fitJob = (async () => {
    $('fit-status').textContent = 'searching…';
    // vLLM's fit is a sentence or two in the CLI (the largest --max-model-len that starts): the text is shown too
    const batch = [fitArgs(spec).concat('--json')].concat(state.engine === 'vllm' ? [fitArgs(spec)] : []);
    const fitAnswer = await engine.fit.run('fit', batch, { restart: true });
    if (!fitAnswer || gen !== generation) return;
    const r = fitAnswer.results && fitAnswer.results[0];
    if (!r || r.code !== 0) {
      $('fit-status').textContent = r ? cliError(r) : fitAnswer.error;
      $('fit').tBodies[0].replaceChildren();
      $('fit').tHead.replaceChildren();
      $('fit-text').hidden = true;
      $('fit-box').hidden = false;
      return;
    }
    $('fit-status').textContent = `$ ${shellQuote(fitArgs(spec))}   (${r.ms.toFixed(0)} ms)`;
    const fit = JSON.parse(r.stdout);
    renderFit(fit, fitAnswer.results[1] && fitAnswer.results[1].stdout);
    const first = fit.options[0] || {};
    contextCap = { gen, tokens: fit.max_positions || first.context_cap || first.model_max_len || null };
    if (lastPlot && lastPlot.gen === gen) {
      lastPlot.cap = contextCap.tokens;
      drawPlot();
    }
  })();

  if (paramsFor !== spec) {
    const p = await engine.quick.run('params', [['params', spec, '--depth', '4', '--json']]);
    if (!p || gen !== generation) return;
    if (p.results && p.results[0].code === 0) {
      renderParams(JSON.parse(p.results[0].stdout));
      paramsFor = spec;
    } else {
      $('params-box').hidden = true;
    }
  }
  await renderPlot(spec, gen, estimate);
  await fitJob;
  if (gen === generation) document.body.dataset.settled = String(gen);
}

let debounce = null;
function changed(key, value) {
  state[key] = value;
  if (['engine', 'mode', 'train', 'gpus'].includes(key)) showPanes();
  if (['model', 'cfg', 'hub'].includes(key)) paramsFor = null;
  if (key === 'cfg') mountInputs();
  if (key === 'hub') return;  // read when asked (the button), not on each keystroke
  clearTimeout(debounce);
  debounce = setTimeout(update, 120);
}

function bindControls() {
  for (const [id, key] of Object.entries(BINDINGS)) {
    const control = $(id);
    const read = () => (control.type === 'checkbox' ? (control.checked ? '1' : '0') : control.value);
    control.addEventListener(control.tagName === 'SELECT' || control.type === 'checkbox' ? 'change' : 'input', () => changed(key, read()));
  }
  document.querySelectorAll('.tabs button').forEach((b) => b.addEventListener('click', () => {
    state.src = b.dataset.src;
    paramsFor = null;
    showPanes();
    mountInputs();
    update();
  }));
  $('hub-form').addEventListener('submit', (e) => { e.preventDefault(); readHub(); });
  $('file-input').addEventListener('change', (e) => useFiles([...e.target.files]));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', async (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    useFiles(await filesFromDrop(e.dataTransfer));
  });
  // Dropping anywhere on the page means the same (and never navigates away to the file).
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', async (e) => {
    if (drop.contains(e.target)) return;
    e.preventDefault();
    if (e.dataTransfer.files.length) useFiles(await filesFromDrop(e.dataTransfer));
  });
}

// Lists from the CLI: the catalog, the GPUs, the quantisation schemes, the KV cache types.
async function loadLists() {
  const answer = await engine.quick.run('lists', [['catalog', '--json'], ['estimate', '--list-gpus', '--json'],
                                                  ['estimate', '--list-quants', '--json'], ['estimate', '--help'], ['--version']]);
  if (!answer || answer.error) return;
  const [catalog, gpus, quants, help, version] = answer.results;
  if (catalog.code === 0) {
    const models = JSON.parse(catalog.stdout).models;
    setSelectOptions($('catalog-model'), models.map((m) => [m.id, `${m.id} (${paramsShort(m.total_params)})`]), state.model);
  }
  // llmem estimate --list-gpus --json: by memory, each with the size its driver reports
  const rows = gpus.code === 0 ? JSON.parse(gpus.stdout).gpus : [];
  rows.forEach((g) => gpuNames.set(g.name, g.display_name));
  setSelectOptions($('gpu'), [['', 'the measured reference GPU (H200)']].concat(
    rows.map((g) => [g.name, `${g.display_name} — ${(g.memory_bytes / 2 ** 30).toFixed(1)} GiB`])), state.gpu);
  const schemes = quants.code === 0 ? JSON.parse(quants.stdout).schemes.map((q) => q.name) : [];
  setSelectOptions($('quant'), [['', 'as in the GGUF file']].concat(schemes.map((s) => [s, s])), state.quant);
  const kv = /K cache type: ([^\n]+)/.exec(help.stdout);
  const kinds = kv ? kv[1].split(',').map((s) => s.trim()).filter(Boolean) : ['f16'];
  for (const id of ['ctk', 'ctv']) setSelectOptions($(id), kinds.map((k) => [k, k]), state[BINDINGS[id]]);
  $('version').textContent = version.stdout.trim();
}

async function main() {
  readUrl();
  stateToForm();
  bindControls();
  const t0 = performance.now();
  try {
    engine = await Engine.start(new URL('llmem.wasm', import.meta.url));
  } catch (e) {
    showError(`this browser could not load llmem.wasm (${e.message}); the page needs WebAssembly with exception handling (Chrome/Edge 95+, Firefox 100+, Safari 15.2+)`, 'the page');
    setStatus('');
    return;
  }
  window.llmemPage.timings.compileMs = engine.compileMs;
  window.llmemPage.timings.compiled = performance.now() - t0;
  mountInputs();
  const first = update();  // answers at once, then queues the rest of its work on the workers
  await loadLists();       // queued behind the first answer's heading, ahead of the plot and the fit
  await first;
}

main();
