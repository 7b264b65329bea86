// The JavaScript face of the WebAssembly build, appended to the emscripten module (--post-js, cmake/web.cmake).
//
//   import createLlmem from './llmem.mjs';
//   const llmem = await createLlmem();            // in Node.js: createLlmem({wasmBinary: fs.readFileSync(...)})
//   llmem.run(['estimate', 'microsoft/phi-2', '--json'])   // -> {code, stdout, stderr}, as the native CLI
//
// run(args) calls the CLI (cli/main.cpp through web/wasm/entry.cpp) with the same arguments and returns its exit
// code and its output, byte for byte (as `HF_HUB_OFFLINE=1 llmem ARGS`: see below). mount(dir, files) puts files where the CLI can read them by path, each
// given either whole ({path, data: Uint8Array}) or as {path, size, read(offset, length) -> Uint8Array}: the
// reader is called only for the byte ranges the CLI reads (headers), so a 40 GB file dropped on the page costs
// what its header costs. Everything lives in memory and goes with the page.
(function () {
  const EIO = 29, ENOENT = 44, EPERM = 63, EINVAL = 28;  // WASI numbering (emscripten's libc)
  const S_IFDIR = 0o040000, S_IFREG = 0o100000;

  // The CLI in here never uses the network itself (a browser tab has no libcurl; the page reads the Hub on its
  // own, web/engine.js, and hands the headers over as a local Hugging Face cache). So it runs as the native CLI
  // does with HF_HUB_OFFLINE=1: an unknown org/name is answered from the caches, with that reason given.
  ENV['HF_HUB_OFFLINE'] = '1';

  let out = [], err = [];
  Module['stdin'] = () => null;  // EOF: a browser must never be asked to prompt() for input
  Module['stdout'] = (byte) => { if (byte !== null) out.push(byte); };
  Module['stderr'] = (byte) => { if (byte !== null) err.push(byte); };
  const decoder = new TextDecoder('utf-8');

  Module['run'] = function (args) {
    if (!Array.isArray(args)) throw new TypeError('run(args): args must be an array of strings');
    const argv = ['llmem'].concat(args.map(String));
    const ptrs = argv.map((s) => {
      const n = lengthBytesUTF8(s) + 1;
      const p = _malloc(n);
      stringToUTF8(s, p, n);
      return p;
    });
    const argvPtr = _malloc(4 * (ptrs.length + 1));
    ptrs.forEach((p, i) => { HEAP32[(argvPtr >> 2) + i] = p; });
    HEAP32[(argvPtr >> 2) + ptrs.length] = 0;
    out = [];
    err = [];
    let code;
    try {
      code = Module['_llmem_web_run'](ptrs.length, argvPtr);
    } finally {
      ptrs.forEach((p) => _free(p));
      _free(argvPtr);
    }
    return { code, stdout: decoder.decode(new Uint8Array(out)), stderr: decoder.decode(new Uint8Array(err)) };
  };

  // A read-only file system whose files are read through their reader, one range at a time.
  const LAZYFS = {
    mount(mount) {
      const root = LAZYFS.createNode(null, '/', S_IFDIR | 0o555, null);
      for (const file of mount.opts.files) {
        const parts = String(file.path).split('/').filter((p) => p && p !== '.' && p !== '..');
        if (parts.length === 0) throw new Error('mount: empty file path');
        let dir = root;
        for (const part of parts.slice(0, -1)) {
          dir = dir.contents[part] || LAZYFS.createNode(dir, part, S_IFDIR | 0o555, null);
          if (!FS.isDir(dir.mode)) throw new Error('mount: ' + file.path + ' lies under a file');
        }
        const data = file.data;
        const contents = data
          ? { size: data.length, read: (offset, length) => data.subarray(offset, offset + length) }
          : { size: Number(file.size), read: file.read };
        if (!Number.isSafeInteger(contents.size) || contents.size < 0 || typeof contents.read !== 'function')
          throw new Error('mount: ' + file.path + ' needs data, or a size and a read(offset, length) function');
        LAZYFS.createNode(dir, parts[parts.length - 1], S_IFREG | 0o444, contents);
      }
      return root;
    },
    createNode(parent, name, mode, contents) {
      const node = FS.createNode(parent, name, mode);
      node.node_ops = LAZYFS.node_ops;
      node.stream_ops = LAZYFS.stream_ops;
      node.timestamp = Date.now();
      if (contents) {
        node.size = contents.size;
        node.contents = contents;
      } else {
        node.size = 4096;
        node.contents = {};
      }
      if (parent) parent.contents[name] = node;
      return node;
    },
    node_ops: {
      getattr(node) {
        const t = new Date(node.timestamp);
        return { dev: 1, ino: node.id, mode: node.mode, nlink: 1, uid: 0, gid: 0, rdev: 0, size: node.size,
                 atime: t, mtime: t, ctime: t, blksize: 4096, blocks: Math.ceil(node.size / 4096) };
      },
      setattr() { throw new FS.ErrnoError(EPERM); },
      lookup() { throw new FS.ErrnoError(ENOENT); },
      mknod() { throw new FS.ErrnoError(EPERM); },
      rename() { throw new FS.ErrnoError(EPERM); },
      unlink() { throw new FS.ErrnoError(EPERM); },
      rmdir() { throw new FS.ErrnoError(EPERM); },
      readdir(node) { return ['.', '..'].concat(Object.keys(node.contents)); },
      symlink() { throw new FS.ErrnoError(EPERM); },
      readlink() { throw new FS.ErrnoError(EINVAL); },
    },
    stream_ops: {
      read(stream, buffer, offset, length, position) {
        const file = stream.node.contents;
        if (position >= file.size) return 0;
        const n = Math.min(length, file.size - position);
        let bytes;
        try {
          bytes = file.read(position, n);
        } catch (e) {
          throw new FS.ErrnoError(EIO);  // the CLI says "read failed"; the reader keeps its own cause
        }
        if (!bytes || bytes.length !== n) throw new FS.ErrnoError(EIO);
        buffer.set(bytes, offset);
        return n;
      },
      write() { throw new FS.ErrnoError(EPERM); },
      llseek(stream, offset, whence) {
        let position = offset;
        if (whence === 1) position += stream.position;               // SEEK_CUR
        else if (whence === 2) position += stream.node.size;         // SEEK_END
        if (position < 0) throw new FS.ErrnoError(EINVAL);
        return position;
      },
    },
  };

  function mkdirs(dir) {
    let path = '';
    for (const part of dir.split('/').filter(Boolean)) {
      path += '/' + part;
      if (!FS.analyzePath(path).exists) FS.mkdir(path);
    }
  }

  // Mounts `files` (paths relative to `dir`) at the absolute path `dir`, replacing what was mounted there.
  Module['mount'] = function (dir, files) {
    if (typeof dir !== 'string' || !dir.startsWith('/')) throw new TypeError('mount(dir, files): dir must be an absolute path');
    Module['unmount'](dir);
    mkdirs(dir);
    FS.mount(LAZYFS, { files: Array.from(files) }, dir);
  };

  Module['unmount'] = function (dir) {
    let node;
    try {
      node = FS.lookupPath(dir, { follow_mount: false }).node;
    } catch (e) {
      return;  // nothing there
    }
    if (FS.isMountpoint(node)) FS.unmount(dir);
  };
})();
