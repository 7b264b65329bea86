// The page's side of llmem: compiles llmem.wasm once, runs CLI commands in two Web Workers (worker.js) — a quick
// lane (estimate, params, the context plot) and a fit lane (the fit search takes up to a second or two) — and
// drops answers the user no longer waits for. Every answer is the CLI's own: {code, stdout, stderr}.

export class Lane {
  // The worker starts at once unless `lazy`: then on first use.
  constructor(engine, name, { lazy = false } = {}) {
    this.engine = engine;
    this.name = name;
    this.queue = [];     // jobs not yet sent: {tag, batch, resolve}
    this.running = null; // the job the worker is on
    this.nextId = 1;
    this.worker = null;
    if (!lazy) this.spawn();
  }

  spawn() {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    this.worker = worker;
    this.ready = new Promise((resolve, reject) => {
      worker.onmessage = (e) => {
        if (e.data.type === 'ready') {
          this.instantiateMs = e.data.ms;
          this.readyAt = performance.now();
          worker.onmessage = (m) => this.onMessage(m.data);
          resolve();
        } else reject(new Error(e.data.message));
      };
      worker.onerror = (e) => reject(new Error(`the page's worker failed to start: ${e.message || 'unknown error'}`));
    });
    this.engine.modulePromise.then((module) => {
      worker.postMessage({ type: 'init', module });
      if (this.engine.mounts.length) worker.postMessage({ type: 'inputs', mounts: this.engine.mounts });
    });
  }

  // Runs `batch` (a list of CLI argument lists). A later job with the same tag replaces this one if it has not
  // started; when `restart` is set, it also stops this one if it has (the worker is replaced: a wasm call
  // cannot be interrupted). A replaced job resolves to null.
  run(tag, batch, { restart = false } = {}) {
    return new Promise((resolve) => {
      this.queue = this.queue.filter((job) => {
        if (job.tag !== tag) return true;
        job.resolve(null);
        return false;
      });
      if (restart && this.running && this.running.tag === tag) {
        this.running.resolve(null);
        this.running = null;
        this.worker.terminate();
        this.spawn();
      }
      this.queue.push({ tag, batch, resolve });
      this.pump();
    });
  }

  async pump() {
    if (this.running || !this.queue.length) return;
    if (!this.worker) this.spawn();
    const job = this.queue.shift();
    this.running = job;
    job.id = this.nextId++;
    try {
      await this.ready;
    } catch (e) {
      if (this.running === job) this.fail(job, e.message);
      return;
    }
    if (this.running !== job) return;  // replaced while the worker started
    this.worker.postMessage({ type: 'run', id: job.id, batch: job.batch });
  }

  onMessage(msg) {
    const job = this.running;
    if (!job || msg.id !== job.id) return;
    if (msg.type !== 'done') return this.fail(job, msg.message);
    this.running = null;
    job.resolve({ results: msg.results, reads: msg.reads });
    this.pump();
  }

  // The worker failed (it could not start, or the WebAssembly instance aborted and is unusable): the job gets
  // the reason, and the next one a new worker.
  fail(job, message) {
    this.running = null;
    this.worker.terminate();
    this.worker = null;
    job.resolve({ error: message });
    this.pump();
  }

  setInputs(mounts) {
    // A worker not yet given the module gets every mount with it (spawn); one that has it gets this change.
    if (this.worker) this.engine.modulePromise.then(() => this.worker.postMessage({ type: 'inputs', mounts }));
  }
}

export class Engine {
  // Resolves once llmem.wasm is compiled and instantiated on the page's thread (engine.compiledAt: when it was
  // compiled; the page measures its first answer from there).
  static async start(wasmUrl) {
    const engine = new Engine();
    const t0 = performance.now();
    engine.modulePromise = WebAssembly.compileStreaming(fetch(wasmUrl))
      // A server that does not say application/wasm: compile from the bytes instead.
      .catch(async () => WebAssembly.compile(await (await fetch(wasmUrl)).arrayBuffer()));
    const glue = import('./llmem.mjs');
    // Both workers start on first use: after the first answer, which they would otherwise slow down.
    engine.quick = new Lane(engine, 'quick', { lazy: true });
    engine.fit = new Lane(engine, 'fit', { lazy: true });
    engine.module = await engine.modulePromise;
    engine.compileMs = performance.now() - t0;
    engine.compiledAt = performance.now();
    // An instance on the page's own thread answers the very first question while the workers start (starting a
    // worker can take longer than the answer itself). It is given back after that answer (takeFirst).
    const createLlmem = (await glue).default;
    const t1 = performance.now();
    engine.here = await createLlmem({
      instantiateWasm(imports, receive) {
        WebAssembly.instantiate(engine.module, imports).then((instance) => receive(instance));
        return {};
      },
    });
    engine.instantiateMs = performance.now() - t1;
    return engine;
  }

  // The page-thread instance, once: {run(args)} or null.
  takeFirst() {
    const here = this.here;
    this.here = null;
    return here;
  }

  constructor() {
    this.mounts = [];  // [{dir, files}] as last given to the workers
  }

  // Replaces the files mounted at each mount's dir (other dirs keep theirs).
  setMounts(mounts) {
    const dirs = new Set(mounts.map((m) => m.dir));
    this.mounts = this.mounts.filter((m) => !dirs.has(m.dir)).concat(mounts);
    this.quick.setInputs(mounts);
    this.fit.setInputs(mounts);
  }
}

// --- the Hugging Face Hub, from the browser ---------------------------------------------------------------
// The CLI reads the Hub with libcurl, which a browser does not have; the page reads the same files the same
// way (config.json and the safetensors index whole, each shard's header by range requests) and hands them to
// the CLI as a local Hugging Face cache (models--org--name/snapshots/<commit>/), which it reads like any other.

export const HF_CACHE = '/home/web_user/.cache/huggingface/hub';
const PROBE_BYTES = 64 * 1024;  // a first range of each weights file: the whole header, most of the time
const MAX_SHARDS = 4096;

export class HubError extends Error {}

function parseHubSpec(spec) {
  let rest = spec.trim(), revision = 'main';
  const at = rest.lastIndexOf('@');
  if (at > 0) {
    revision = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  const parts = rest.split('/');
  if (parts.length < 2 || !parts[0] || !parts[1] || rest.includes('..') || !revision)
    throw new HubError(`'${spec}' is not a Hub name: org/name, org/name@revision or org/name/FILE.gguf`);
  return { repo: parts[0] + '/' + parts[1], file: parts.slice(2).join('/'), revision };
}

async function hubFetch(url, init, what) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    throw new HubError(`${what}: the browser could not read ${url} — offline, or the Hub (or a proxy) refused this ` +
                       `page's cross-origin request (CORS); the native llmem binary reads the Hub without that limit`);
  }
  return response;
}

function hubRefusal(response, repo, endpoint, what) {
  const code = response.headers.get('x-error-code') || '';
  const message = response.headers.get('x-error-message') || '';
  if (code === 'GatedRepo' || response.status === 403)
    return new HubError(`${repo} is gated: accept its conditions at ${endpoint}/${repo}; the page sends no token, so ` +
                        `a gated or private repo needs the native llmem binary with HF_TOKEN`);
  if (code === 'RepoNotFound' || response.status === 401)
    return new HubError(`repository ${repo} not found on ${endpoint}: check the name (a private repo needs the native ` +
                        `llmem binary with HF_TOKEN)`);
  if (code === 'RevisionNotFound') return new HubError(`${repo}: ${message || 'no such revision'}`);
  if (response.status === 429) return new HubError(`${endpoint} is rate-limiting this browser (HTTP 429); try again later`);
  return new HubError(`${what}: HTTP ${response.status}${message ? ' (' + message + ')' : ''}`);
}

// The first PROBE_BYTES of `file`, and its size from Content-Range.
async function probe(base, file, repo, endpoint) {
  const url = `${base}/${file.split('/').map(encodeURIComponent).join('/')}`;
  const response = await hubFetch(url, { headers: { Range: `bytes=0-${PROBE_BYTES - 1}` } }, file);
  if (response.status === 404) return null;
  if (!response.ok) throw hubRefusal(response, repo, endpoint, file);
  const bytes = await response.arrayBuffer();
  let size = null;
  const range = response.headers.get('content-range');
  if (response.status === 206 && range && /\/(\d+)$/.test(range)) size = Number(range.match(/\/(\d+)$/)[1]);
  else if (response.status === 200) size = bytes.byteLength;  // the server sent it whole
  if (size === null)
    throw new HubError(`${file}: the Hub answered the range request without a readable Content-Range, so the file's ` +
                       `size is unknown (a proxy may strip Access-Control-Expose-Headers)`);
  return { url, size, chunks: [[0, bytes]], commit: response.headers.get('x-repo-commit') };
}

async function whole(base, file, repo, endpoint) {
  const response = await hubFetch(`${base}/${file}`, {}, file);
  if (response.status === 404 && (response.headers.get('x-error-code') || 'EntryNotFound') === 'EntryNotFound') return null;
  if (!response.ok) throw hubRefusal(response, repo, endpoint, file);
  return { data: await response.arrayBuffer(), commit: response.headers.get('x-repo-commit') };
}

async function limited(items, concurrency, fn) {
  const out = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  });
  await Promise.all(workers);
  return out;
}

// Reads a Hub model's headers. Returns {files (for the HF_CACHE mount), spec (what to give the CLI), requests,
// bytes}. `endpoint` is https://huggingface.co unless the page was told otherwise (?endpoint=, like HF_ENDPOINT).
export async function readHubModel(endpoint, spec) {
  const { repo, file, revision } = parseHubSpec(spec);
  const rev = encodeURIComponent(revision);
  let base = `${endpoint}/${repo}/resolve/${rev}`;
  let requests = 0, bytes = 0;
  const found = [];  // {path, data} | {path, size, url, chunks}

  const config = await whole(base, 'config.json', repo, endpoint);
  requests += 1;
  let commit = config && config.commit;
  if (config) {
    found.push({ path: 'config.json', data: config.data });
    bytes += config.data.byteLength;
  }
  if (commit && /^[0-9a-f]{40}$/.test(commit)) base = `${endpoint}/${repo}/resolve/${commit}`;
  else commit = null;

  if (file) {
    if (!file.endsWith('.gguf'))
      throw new HubError(`${repo}/${file}: only a .gguf file can be named inside a repo; for safetensors give org/name`);
    const gguf = await probe(base, file, repo, endpoint);
    requests += 1;
    if (!gguf) throw new HubError(`${repo}/${file}: no such file in ${repo} at revision ${revision}`);
    found.push({ path: file, size: gguf.size, url: gguf.url, chunks: gguf.chunks });
    bytes += gguf.chunks[0][1].byteLength;
  } else {
    const [index, single] = await Promise.all([
      whole(base, 'model.safetensors.index.json', repo, endpoint),
      probe(base, 'model.safetensors', repo, endpoint),
    ]);
    requests += 2;
    if (index) {
      found.push({ path: 'model.safetensors.index.json', data: index.data });
      bytes += index.data.byteLength;
      let shards;
      try {
        shards = [...new Set(Object.values(JSON.parse(new TextDecoder().decode(index.data)).weight_map || {}))];
      } catch (e) {
        shards = [];  // the CLI names what is wrong with the index
      }
      if (shards.length > MAX_SHARDS) throw new HubError(`${repo}: the index names ${shards.length} shards, over ${MAX_SHARDS}`);
      const probes = await limited(shards, 8, (s) => probe(base, s, repo, endpoint));
      requests += shards.length;
      probes.forEach((p, i) => {
        if (!p) return;  // the CLI says which shard is missing
        found.push({ path: shards[i], size: p.size, url: p.url, chunks: p.chunks });
        bytes += p.chunks[0][1].byteLength;
      });
    } else if (single) {
      found.push({ path: 'model.safetensors', size: single.size, url: single.url, chunks: single.chunks });
      bytes += single.chunks[0][1].byteLength;
    }
    if (!config && !index && !single)
      throw new HubError(`${repo} has no config.json, model.safetensors or model.safetensors.index.json at revision ` +
                         `${revision}; for a GGUF repo name the file: ${repo}/FILE.gguf`);
  }

  // The Hugging Face cache's layout: refs/<revision> names the commit; snapshots/<commit>/ holds the files.
  const dir = `models--${repo.replace('/', '--')}`;
  const snapshot = commit || revision;
  const files = found.map((f) => ({ ...f, path: `${dir}/snapshots/${snapshot}/${f.path}` }));
  if (commit && commit !== revision) files.push({ path: `${dir}/refs/${revision}`, data: new TextEncoder().encode(commit).buffer });
  return { files, repo, spec: spec.trim(), requests, bytes };
}
