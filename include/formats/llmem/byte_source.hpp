// Where header bytes come from. Readers (safetensors, GGUF) ask a ByteSource for byte ranges and never know
// whether the bytes come from a local file, a memory buffer (tests, fuzzers) or an HTTP range request (the Hub).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llmem {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Name used in error messages: a path or a URL.
  virtual const std::string& name() const = 0;
  // Total size in bytes of the underlying file.
  virtual uint64_t size() const = 0;
  // Reads exactly `len` bytes at `offset`. Throws llmem::Error (kInvalidInput, naming the file) when the range
  // lies past the end, and kRuntime on an I/O failure. Never returns fewer bytes than asked for.
  virtual std::vector<uint8_t> read(uint64_t offset, uint64_t len) = 0;
  // Bytes actually read so far (for --verbose and benchmarks).
  virtual uint64_t bytes_read() const = 0;
};

// A local file read with pread: only the ranges asked for are touched, so a 400 GB checkpoint costs its headers.
std::unique_ptr<ByteSource> open_file_source(const std::string& path);

// An in-memory buffer (tests, fuzz targets).
std::unique_ptr<ByteSource> memory_source(std::string name, std::vector<uint8_t> bytes);

}  // namespace llmem
