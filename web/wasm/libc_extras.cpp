// A libc call that emscripten's libc declares but does not define. src/gpu/measure.cpp calls prctl() to become
// the subreaper of the command it measures; in WebAssembly no process can be started (and `measure` answers that
// it needs the native binary, web/wasm/entry.cpp), so this only has to link and say honestly that it cannot.
#include <cerrno>

extern "C" int prctl(int /*option*/, ...) {
  errno = ENOSYS;
  return -1;
}
