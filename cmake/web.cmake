# The WebAssembly build of llmem (emscripten), for the web page in web/. Included by CMakeLists.txt when the
# toolchain is emscripten's (`emcmake cmake`, driven by scripts/web.sh).
#
# The same library modules and the same CLI sources are compiled; what differs from the native build:
#   - the dependencies: Debian's emscripten has no packages of its own, so the header-only libraries are taken
#     from the host's /usr/include through a folder of symlinks to just them (adding /usr/include itself would
#     put glibc's headers in front of emscripten's libc); fmt is used header-only. libcurl and cairo are loaded
#     with dlopen at run time (include/core/llmem/dynlib.hpp), so only their headers are needed, and in the
#     browser they are never loaded: the Hub, charts and the GPU commands say that they need the native binary.
#   - the executable: `llmem` becomes llmem.mjs + llmem.wasm, an ES module whose default export is a factory;
#     web/wasm/api.js (appended as --post-js) gives it run(args) -> {code, stdout, stderr} and mount(), and
#     web/wasm/*.cpp are added to it: the entry point, and the GPU commands' answer that they need the native
#     binary (their flags and --help stay the CLI's own).

set(LLMEM_TESTS OFF CACHE BOOL "" FORCE)
set(LLMEM_BENCH OFF CACHE BOOL "" FORCE)
set(LLMEM_FUZZ OFF CACHE BOOL "" FORCE)

# Host headers, found outside emscripten's sysroot.
set(LLMEM_WEB_INCLUDE ${CMAKE_BINARY_DIR}/web-include)
file(MAKE_DIRECTORY ${LLMEM_WEB_INCLUDE})
foreach(entry IN ITEMS "nlohmann:nlohmann/json.hpp" "fmt:fmt/core.h" "CLI:CLI/CLI.hpp" "curl:curl/curl.h")
  string(REPLACE ":" ";" parts "${entry}")
  list(GET parts 0 folder)
  list(GET parts 1 probe)
  find_path(LLMEM_WEB_${folder}_ROOT ${probe} PATHS /usr/include /usr/include/${CMAKE_LIBRARY_ARCHITECTURE}
            /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu NO_CMAKE_FIND_ROOT_PATH NO_DEFAULT_PATH)
  if(NOT LLMEM_WEB_${folder}_ROOT)
    message(FATAL_ERROR "web build: ${probe} not found under /usr/include (scripts/deps.sh installs it)")
  endif()
  file(CREATE_LINK ${LLMEM_WEB_${folder}_ROOT}/${folder} ${LLMEM_WEB_INCLUDE}/${folder} SYMBOLIC)
endforeach()
find_path(LLMEM_WEB_CAIRO_DIR cairo.h PATHS /usr/include/cairo NO_CMAKE_FIND_ROOT_PATH NO_DEFAULT_PATH)
if(NOT LLMEM_WEB_CAIRO_DIR)
  message(FATAL_ERROR "web build: cairo.h not found under /usr/include/cairo (scripts/deps.sh installs libcairo2-dev)")
endif()

add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
target_include_directories(nlohmann_json::nlohmann_json SYSTEM INTERFACE ${LLMEM_WEB_INCLUDE})
add_library(fmt::fmt INTERFACE IMPORTED)
target_include_directories(fmt::fmt SYSTEM INTERFACE ${LLMEM_WEB_INCLUDE})
target_compile_definitions(fmt::fmt INTERFACE FMT_HEADER_ONLY)
add_library(CLI11::CLI11 INTERFACE IMPORTED)
target_include_directories(CLI11::CLI11 SYSTEM INTERFACE ${LLMEM_WEB_INCLUDE})
add_library(Threads::Threads INTERFACE IMPORTED)  # no threads in the page: nothing it runs starts one
set(CURL_INCLUDE_DIRS ${LLMEM_WEB_INCLUDE})
set(CAIRO_INCLUDE_DIRS ${LLMEM_WEB_CAIRO_DIR})

# C++ exceptions are how the library reports errors: WebAssembly's own exception handling (Chromium 95+,
# Firefox 100+, Safari 15.2+, Node 17+) is smaller and faster than emscripten's JavaScript emulation.
add_compile_options(-fwasm-exceptions)
add_link_options(-fwasm-exceptions)
# The page downloads the module, so it is built for size: every object with -Os (after the build type's -O3, so it
# wins) and binaryen's final pass with -Oz, which keeps llmem.wasm under 1 MB gzipped (tests/web/browser_test.mjs;
# with -O3 objects it reached 1,004,736 bytes once llama.cpp's split replay and the FP8 load paths came in).
add_compile_options(-Os)
add_link_options(-Oz)

# Called at the end of CMakeLists.txt, once llmem_cli exists.
function(llmem_web_executable)
  # One statically linked module: position-independent code would only add indirections.
  get_property(modules GLOBAL PROPERTY LLMEM_MODULES)
  set_target_properties(${modules} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
  file(GLOB web_sources CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/web/wasm/*.cpp)
  target_sources(llmem_cli PRIVATE ${web_sources})
  set_target_properties(llmem_cli PROPERTIES SUFFIX ".mjs")
  set(api ${CMAKE_SOURCE_DIR}/web/wasm/api.js)
  set_property(TARGET llmem_cli APPEND PROPERTY LINK_DEPENDS ${api})
  target_link_options(llmem_cli PRIVATE
    "SHELL:-s MODULARIZE=1" "SHELL:-s EXPORT_ES6=1" "SHELL:-s EXPORT_NAME=createLlmem"
    "SHELL:-s ENVIRONMENT=web,worker" "SHELL:-s INVOKE_RUN=0" "SHELL:-s EXIT_RUNTIME=0"
    "SHELL:-s ALLOW_MEMORY_GROWTH=1" "SHELL:-s FILESYSTEM=1"
    "SHELL:-s EXPORTED_FUNCTIONS=_llmem_web_run,_malloc,_free"
    "SHELL:-s EXPORTED_RUNTIME_METHODS=FS,ENV"
    "SHELL:--post-js ${api}")
endfunction()
