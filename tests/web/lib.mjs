// Helpers of the web tests: the native CLI, a static server for the site, a stand-in for the Hugging Face Hub,
// and readers of the CLI's text output (so the page is checked against the CLI's own printing, not the page's).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

// The native CLI as the wasm build runs it: no network (HF_HUB_OFFLINE=1), and an empty home, so that neither
// looks in a Hugging Face cache or header cache this machine happens to have.
const EMPTY_HOME = fs.mkdtempSync(path.join(os.tmpdir(), 'llmem-web-home-'));
export function native(args, { env = {} } = {}) {
  const binary = process.env.LLMEM_NATIVE || path.join(ROOT, 'build', 'llmem');
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(HF_|HUGGINGFACE_|XDG_)/.test(k)));
  const r = spawnSync(binary, args, { encoding: 'utf8', env: { ...clean, HOME: EMPTY_HOME, HF_HUB_OFFLINE: '1', ...env } });
  if (r.error) throw new Error(`cannot run ${binary}: ${r.error.message} (build it first: cmake --build build)`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// The same, without blocking this process (needed when the CLI talks to a server that this process runs).
export function nativeAsync(args, { env = {} } = {}) {
  const binary = process.env.LLMEM_NATIVE || path.join(ROOT, 'build', 'llmem');
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(HF_|HUGGINGFACE_|XDG_)/.test(k)));
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { env: { ...clean, HOME: EMPTY_HOME, HF_HUB_OFFLINE: '1', ...env } });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export function nativeJson(args, opts) {
  const r = native(args.concat('--json'), opts);
  if (r.code !== 0) throw new Error(`llmem ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm',
                '.css': 'text/css', '.json': 'application/json' };

function sendFile(req, res, file, extraHeaders = {}) {
  const size = fs.statSync(file).size;
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range || '');
  const type = TYPES[path.extname(file)] || 'application/octet-stream';
  if (range) {
    const start = Number(range[1]);
    const end = Math.min(range[2] ? Number(range[2]) : size - 1, size - 1);
    if (start >= size) {
      res.writeHead(416, { ...extraHeaders, 'Content-Range': `bytes */${size}` });
      return res.end();
    }
    res.writeHead(206, { ...extraHeaders, 'Content-Type': type, 'Content-Range': `bytes ${start}-${end}/${size}`,
                         'Content-Length': end - start + 1, 'Accept-Ranges': 'bytes' });
    if (req.method === 'HEAD') return res.end();
    return fs.createReadStream(file, { start, end }).pipe(res);
  }
  res.writeHead(200, { ...extraHeaders, 'Content-Type': type, 'Content-Length': size, 'Accept-Ranges': 'bytes' });
  if (req.method === 'HEAD') return res.end();
  fs.createReadStream(file).pipe(res);
}

// Serves `root` (the built site). Counts requests by path, so a test can see what the page fetched.
export function serveSite(root) {
  const log = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    log.push(url.pathname);
    let file = path.join(root, decodeURIComponent(url.pathname));
    if (!file.startsWith(root)) { res.writeHead(403); return res.end(); }
    if (url.pathname.endsWith('/')) file = path.join(file, 'index.html');
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) { res.writeHead(404); return res.end(); }
    // Validators, as any static host sends them: the browser keeps the files and asks again (304).
    const st = fs.statSync(file);
    const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    const validators = { ETag: etag, 'Last-Modified': st.mtime.toUTCString(), 'Cache-Control': 'no-cache' };
    if (req.headers['if-none-match'] === etag) { res.writeHead(304, validators); return res.end(); }
    sendFile(req, res, file, validators);
  });
  return listen(server, log);
}

// A stand-in for the Hub's resolve endpoint on another origin (so the page's requests are cross-origin, as to
// huggingface.co): /{org}/{name}/resolve/{revision}/{file}, with the headers the Hub sends (X-Repo-Commit,
// X-Error-Code, Content-Range, CORS). `repos` maps "org/name" to a local folder, or to 'gated'.
export const HUB_COMMIT = '0123456789abcdef0123456789abcdef01234567';
// With { cors: false } it answers as a server that does not allow cross-origin reads.
export function serveHub(repos, { cors: allowCors = true } = {}) {
  const log = [];
  const cors = allowCors ? {
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Expose-Headers': 'Content-Range, Content-Length, X-Repo-Commit, X-Error-Code, X-Error-Message, ETag',
  } : {};
  const server = http.createServer((req, res) => {
    log.push(`${req.method} ${req.url} ${req.headers.range || ''}`.trim());
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...cors, 'Access-Control-Allow-Headers': 'Range, Authorization, User-Agent', 'Access-Control-Allow-Methods': 'GET, HEAD' });
      return res.end();
    }
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(new URL(req.url, 'http://localhost').pathname);
    const repo = m && repos[decodeURIComponent(m[1])];
    if (!m || !repo) {
      res.writeHead(401, { ...cors, 'X-Error-Code': 'RepoNotFound', 'X-Error-Message': 'Repository not found' });
      return res.end('Repository not found');
    }
    const commit = { ...cors, 'X-Repo-Commit': HUB_COMMIT };
    if (repo === 'gated') {
      res.writeHead(403, { ...commit, 'X-Error-Code': 'GatedRepo', 'X-Error-Message': 'Access to this model is restricted' });
      return res.end();
    }
    const file = path.join(repo, decodeURIComponent(m[3]));
    if (![ 'main', HUB_COMMIT ].includes(decodeURIComponent(m[2]))) {
      res.writeHead(404, { ...commit, 'X-Error-Code': 'RevisionNotFound', 'X-Error-Message': 'Invalid rev id' });
      return res.end();
    }
    if (!file.startsWith(repo) || !fs.existsSync(file)) {
      res.writeHead(404, { ...commit, 'X-Error-Code': 'EntryNotFound', 'X-Error-Message': 'Entry not found' });
      return res.end();
    }
    sendFile(req, res, file, commit);
  });
  return listen(server, log);
}

function listen(server, log) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    resolve({ url: `http://127.0.0.1:${server.address().port}`, log, close: () => new Promise((r) => server.close(r)) });
  }));
}

// ---- the CLI's text output, read back --------------------------------------------------------------------
// `llmem estimate` (text): component rows "name [gpu|host] 12.345  what", then the totals, then the verdict.
// The CLI's heading: title and workload, each a paragraph whose wrapped lines continue indented by two spaces.
export function cliHeading(lines) {
  const out = [];
  let i = 0;
  for (; i < lines.length; ++i) {
    if (out.length && lines[i].startsWith('  ') && lines[i].trim()) out[out.length - 1] += ' ' + lines[i].trim();
    else if (out.length === 2) break;
    else out.push(lines[i]);
  }
  return { title: out[0] || '', workload: out[1] || '', next: i };
}

export function parseEstimateText(text) {
  const lines = text.split('\n');
  const rules = lines.map((l, i) => (/^-{20,}$/.test(l) ? i : -1)).filter((i) => i >= 0);
  const row = (l) => {
    const m = /^(.*?)\s+(?:(gpu|host)\s+)?(-?\d+\.\d{3})  (.*)$/.exec(l);
    return m && { name: m[1].trim(), where: m[2] || '', gib: m[3], what: m[4] };
  };
  const heading = cliHeading(lines);
  return {
    title: heading.title,
    workload: heading.workload,
    // a long "what" continues on indented lines of its own (not rows)
    components: lines.slice(rules[0] + 1, rules[1]).map(row).filter(Boolean),
    totals: lines.slice(rules[1] + 1).map(row).filter(Boolean),
    verdict: lines.find((l) => /^(Fits on |Does NOT fit on |vLLM starts|vLLM would not start)/.test(l)),
  };
}

// `llmem estimate --gpus N` (text): the caption line and the rows of its "Per GPU" table, each as its cells joined
// by one space (a long "holds" continues on an indented line).
export function parsePerGpuText(text) {
  const lines = text.split('\n');
  const caption = lines.findIndex((l) => /^Per GPU /.test(l));
  if (caption < 0) return null;
  const rows = [];
  for (const l of lines.slice(caption + 2)) {
    if (/^\(GiB;/.test(l) || !l.trim()) break;
    if (/^\s/.test(l) && rows.length) rows[rows.length - 1] += ' ' + l.trim();
    else rows.push(l.trim());
  }
  return { caption: lines[caption], rows: rows.map((r) => r.split(/\s+/).join(' ')) };
}

// `llmem fit` (text): the table's rows, each as its cells joined by one space.
export function parseFitRows(text) {
  const lines = text.split('\n');
  const header = lines.findIndex((l) => /^(Mode|quant)\s/.test(l));
  const out = [];
  for (const l of lines.slice(header + 1)) {
    if (/^-+$/.test(l) || /^\s+GiB\s/.test(l)) { if (out.length) break; continue; }
    if (!l.trim()) { if (out.length) break; continue; }
    out.push(l.trim().split(/\s+/).join(' '));
  }
  return out;
}

export function deepEqual(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// A tiny runner: named checks, each failure printed with what differed; exit code 1 if any failed.
export class Checks {
  constructor(suite) { this.suite = suite; this.failed = 0; this.passed = 0; }
  ok(name, condition, detail = '') {
    if (condition) { this.passed += 1; console.log(`  ok   ${name}`); }
    else { this.failed += 1; console.log(`  FAIL ${name}${detail ? `\n       ${String(detail).split('\n').join('\n       ')}` : ''}`); }
    return condition;
  }
  equal(name, actual, expected) {
    return this.ok(name, deepEqual(actual, expected), `expected ${JSON.stringify(expected)}\n got      ${JSON.stringify(actual)}`);
  }
  done() {
    console.log(`${this.suite}: ${this.passed} passed, ${this.failed} failed`);
    return this.failed === 0;
  }
}
