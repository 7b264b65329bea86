// Files from data/ compiled into the library by cmake/embed.cmake.
#pragma once

#include <string_view>
#include <vector>

namespace llmem::embedded {

struct File {
  std::string_view path;     // relative to data/, e.g. "catalog/microsoft__phi-2.json"
  std::string_view content;
};

const std::vector<File>& files();

}  // namespace llmem::embedded
