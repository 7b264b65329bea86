// Loading a shared library on first use.
//
// libcurl and cairo together pull 50 shared libraries into the process (TLS, Kerberos, LDAP, X11, fontconfig...).
// Linked normally, the dynamic loader maps and relocates all of them before main() — about 16 ms, 95 % of the
// start-up time of `llmem params`, for two features most runs never touch (the Hub and charts). So they are
// loaded with dlopen the first time they are needed, as NVML and the CUDA driver already are. The headers still
// come from the -dev packages, and each function pointer is typed with decltype of the header's own declaration,
// so the compiler checks every call exactly as it would a direct one. No library does this (libdl is the tool).
#pragma once

#include <dlfcn.h>

#include <initializer_list>
#include <string>

#include "llmem/error.hpp"

namespace llmem::detail {

class DynLib {
 public:
  // Opens the first of `sonames` that loads; `what` names the feature for the error ("charts", "the Hub").
  DynLib(std::initializer_list<const char*> sonames, const std::string& what, const std::string& package) {
#ifdef __EMSCRIPTEN__
    // The WebAssembly build (web/) runs in a browser or Node.js: there is no shared library to load.
    throw Error(ErrorKind::kRuntime, *sonames.begin(),
                what + " need the native llmem binary (the WebAssembly build cannot load " + package + ")");
#endif
    std::string tried;
    for (const char* name : sonames) {
      handle_ = ::dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (handle_) {
        name_ = name;
        return;
      }
      if (!tried.empty()) tried += ", ";
      tried += name;
    }
    throw Error(ErrorKind::kRuntime, tried, what + " need this library and it could not be loaded (Debian: " + package + ")");
  }
  DynLib(const DynLib&) = delete;
  DynLib& operator=(const DynLib&) = delete;
  // Never dlclose: the libraries keep global state (curl_global_init, fontconfig caches) until exit.
  ~DynLib() = default;

  template <typename F>
  void bind(F& fn, const char* symbol) const {
    void* p = ::dlsym(handle_, symbol);
    if (!p) throw Error(ErrorKind::kRuntime, name_, std::string("has no symbol ") + symbol + " (too old a version?)");
    fn = reinterpret_cast<F>(p);
  }

 private:
  void* handle_ = nullptr;
  std::string name_;
};

}  // namespace llmem::detail

// Declares a struct NAME with one pointer per function of LIST (an X-macro: LIST(X) expands X(fn) per function),
// each typed from the header's declaration, and a loader that binds them all from a DynLib.
#define LLMEM_DYNLIB_MEMBER(fn) decltype(&::fn) fn = nullptr;
#define LLMEM_DYNLIB_BIND(fn) lib.bind(fn, #fn);
#define LLMEM_DYNLIB_API(NAME, LIST)                         \
  struct NAME {                                              \
    LIST(LLMEM_DYNLIB_MEMBER)                                \
    explicit NAME(const ::llmem::detail::DynLib& lib) { LIST(LLMEM_DYNLIB_BIND) } \
  };
