#include "llmem/byte_source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "llmem/error.hpp"

namespace llmem {
namespace {

void check_range(const std::string& name, uint64_t size, uint64_t offset, uint64_t len) {
  if (offset > size || len > size - offset)
    throw Error(ErrorKind::kInvalidInput, name,
                "truncated file: needs bytes " + std::to_string(offset) + ".." + std::to_string(offset + len) +
                    " but the file has " + std::to_string(size));
}

class FileSource final : public ByteSource {
 public:
  FileSource(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  ~FileSource() override { ::close(fd_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  const std::string& name() const override { return path_; }
  uint64_t size() const override { return size_; }
  uint64_t bytes_read() const override { return read_; }

  std::vector<uint8_t> read(uint64_t offset, uint64_t len) override {
    check_range(path_, size_, offset, len);
    std::vector<uint8_t> out(len);
    uint64_t done = 0;
    while (done < len) {
      ssize_t n = ::pread(fd_, out.data() + done, len - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw Error(ErrorKind::kRuntime, path_, std::string("read failed: ") + std::strerror(errno));
      }
      if (n == 0) throw Error(ErrorKind::kInvalidInput, path_, "file shrank while being read");
      done += static_cast<uint64_t>(n);
    }
    read_ += len;
    return out;
  }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
  uint64_t read_ = 0;
};

class MemorySource final : public ByteSource {
 public:
  MemorySource(std::string name, std::vector<uint8_t> bytes) : name_(std::move(name)), bytes_(std::move(bytes)) {}
  const std::string& name() const override { return name_; }
  uint64_t size() const override { return bytes_.size(); }
  uint64_t bytes_read() const override { return read_; }
  std::vector<uint8_t> read(uint64_t offset, uint64_t len) override {
    check_range(name_, bytes_.size(), offset, len);
    read_ += len;
    return {bytes_.begin() + static_cast<ptrdiff_t>(offset), bytes_.begin() + static_cast<ptrdiff_t>(offset + len)};
  }

 private:
  std::string name_;
  std::vector<uint8_t> bytes_;
  uint64_t read_ = 0;
};

}  // namespace

std::unique_ptr<ByteSource> open_file_source(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    throw Error(e == ENOENT ? ErrorKind::kNotFound : ErrorKind::kRuntime, path,
                std::string("cannot open: ") + std::strerror(e));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(ErrorKind::kInvalidInput, path, "not a regular file");
  }
  return std::make_unique<FileSource>(path, fd, static_cast<uint64_t>(st.st_size));
}

std::unique_ptr<ByteSource> memory_source(std::string name, std::vector<uint8_t> bytes) {
  return std::make_unique<MemorySource>(std::move(name), std::move(bytes));
}

}  // namespace llmem
