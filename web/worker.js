// One llmem WebAssembly instance in a Web Worker, so that a long search (fit) never freezes the page, and so
// that files can be read synchronously, one byte range at a time, as the CLI asks for them: FileReaderSync for a
// dropped file, a synchronous range request for a file on the Hub. Nothing is stored anywhere but in memory.
//
// Messages in:  {type: 'init', module}                 a compiled WebAssembly.Module (compiled once by the page)
//               {type: 'inputs', mounts: [{dir, files}]} files: {path, data} | {path, size, file | url, chunks}
//               {type: 'run', id, batch: [args, ...]}
// Messages out: {type: 'ready', ms} | {type: 'error', message} | {type: 'done', id, results, reads}
import createLlmem from './llmem.mjs';

let llmem = null;
let readLog = { requests: 0, bytes: 0, errors: [] };

// The smallest read of a file not yet in memory: a safetensors header or a GGUF's first KVs usually fit, and a
// longer header is read in windows that double, so a 10 MB GGUF vocabulary costs a handful of reads.
const FIRST_WINDOW = 64 * 1024, MAX_WINDOW = 16 * 1024 * 1024;

function rangeReader(entry) {
  const chunks = (entry.chunks || []).map(([offset, buffer]) => ({ offset, bytes: new Uint8Array(buffer) }));
  let window = FIRST_WINDOW;
  const fetchRange = (offset, length) => {
    readLog.requests += 1;
    readLog.bytes += length;
    if (entry.file) return new Uint8Array(new FileReaderSync().readAsArrayBuffer(entry.file.slice(offset, offset + length)));
    const xhr = new XMLHttpRequest();
    xhr.open('GET', entry.url, false);
    xhr.responseType = 'arraybuffer';
    xhr.setRequestHeader('Range', `bytes=${offset}-${offset + length - 1}`);
    try {
      xhr.send();
    } catch (e) {
      throw new Error(`${entry.url}: the browser could not read it (offline, or the server refused this page's cross-origin request)`);
    }
    if (xhr.status === 206) return new Uint8Array(xhr.response);
    if (xhr.status === 200) return new Uint8Array(xhr.response).subarray(offset, offset + length);  // range ignored
    throw new Error(`${entry.url}: HTTP ${xhr.status} for bytes ${offset}..${offset + length}`);
  };
  return (offset, length) => {
    for (const c of chunks)
      if (offset >= c.offset && offset + length <= c.offset + c.bytes.length)
        return c.bytes.subarray(offset - c.offset, offset - c.offset + length);
    const want = Math.min(Math.max(length, window), entry.size - offset);
    window = Math.min(window * 2, MAX_WINDOW);
    let bytes;
    try {
      bytes = fetchRange(offset, want);
    } catch (e) {
      readLog.errors.push(e.message);
      throw e;
    }
    if (bytes.length < length) {
      readLog.errors.push(`${entry.url || entry.path}: got ${bytes.length} bytes at ${offset}, asked for ${length}`);
      throw new Error('short read');
    }
    chunks.push({ offset, bytes });
    return bytes.subarray(0, length);
  };
}

function mountAll(mounts) {
  for (const { dir, files } of mounts) {
    llmem.mount(dir, files.map((f) =>
      f.data ? { path: f.path, data: new Uint8Array(f.data) } : { path: f.path, size: f.size, read: rangeReader(f) }));
  }
}

onmessage = async (event) => {
  const msg = event.data;
  try {
    if (msg.type === 'init') {
      const t0 = performance.now();
      llmem = await createLlmem({
        instantiateWasm(imports, receive) {
          WebAssembly.instantiate(msg.module, imports).then((instance) => receive(instance));
          return {};
        },
      });
      postMessage({ type: 'ready', ms: performance.now() - t0 });
    } else if (msg.type === 'inputs') {
      mountAll(msg.mounts);
    } else if (msg.type === 'run') {
      readLog = { requests: 0, bytes: 0, errors: [] };
      const results = msg.batch.map((args) => {
        const t0 = performance.now();
        const r = llmem.run(args);
        r.ms = performance.now() - t0;
        return r;
      });
      postMessage({ type: 'done', id: msg.id, results, reads: readLog });
    }
  } catch (e) {
    postMessage({ type: 'error', id: msg.id, message: String(e && e.message || e) });
  }
};
