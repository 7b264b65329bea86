// A libc call that emscripten's libc declares but does not define. src/gpu/measure.cpp calls prctl() in the
// child it forks to ask for SIGKILL when llmem dies; in WebAssembly there is no fork (and `measure` answers that
// it needs the native binary, web/wasm/entry.cpp), so this only has to link and say honestly that it cannot.
#include <cerrno>

extern "C" int prctl(int /*option*/, ...) {
  errno = ENOSYS;
  return -1;
}
