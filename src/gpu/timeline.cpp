// Timeline files, flushed round by round so that a run cut short (the command killed, llmem killed) leaves a
// file every reader accepts.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "sampler.hpp"
#include "llmem/error.hpp"

namespace llmem {

std::optional<TimelineFormat> timeline_format_for(const std::string& path) {
  auto dot = path.rfind('.');
  if (dot == std::string::npos) return std::nullopt;
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == "csv") return TimelineFormat::kCsv;
  if (ext == "json") return TimelineFormat::kJson;
  if (ext == "jsonl") return TimelineFormat::kJsonLines;
  return std::nullopt;
}

namespace gpu {

namespace {
constexpr const char* kColumns = "time_ms,gpu_index,device_used_bytes,tree_used_bytes,tree_processes,host_rss_bytes";
constexpr const char* kJsonTail = "\n]}\n";

nlohmann::json header_json(const TimelineHeader& h) {
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& g : h.gpus)
    gpus.push_back({{"index", g.index},
                    {"name", g.name},
                    {"uuid", g.uuid},
                    {"total_bytes", g.total_bytes},
                    {"baseline_used_bytes", g.baseline_used_bytes}});
  return {{"format", "llmem-timeline"},
          {"version", 1},
          {"command", h.command},
          {"interval_ms", h.interval_ms},
          {"gpus", gpus}};
}
}  // namespace

TimelineWriter::TimelineWriter(std::string path, TimelineFormat format, const TimelineHeader& header)
    : path_(std::move(path)), format_(format) {
  file_ = std::fopen(path_.c_str(), "we");  // close-on-exec: the measured command must not inherit it
  if (!file_) throw Error(ErrorKind::kRuntime, path_, fmt::format("cannot write timeline: {}", std::strerror(errno)));
  std::string head;
  switch (format_) {
    case TimelineFormat::kCsv:
      head = fmt::format("{}\n", kColumns);
      break;
    case TimelineFormat::kJsonLines: {
      nlohmann::json h = header_json(header);
      h["type"] = "header";
      head = h.dump() + "\n";
      break;
    }
    case TimelineFormat::kJson: {
      // {"format":...,"gpus":[...],"columns":[...],"samples":[  <rows>  ]}
      nlohmann::json h = header_json(header);
      h["columns"] = {"time_ms", "gpu_index", "device_used_bytes", "tree_used_bytes", "tree_processes",
                      "host_rss_bytes"};
      std::string doc = h.dump();
      doc.pop_back();  // the closing '}'
      head = doc + ",\"samples\":[";
      break;
    }
  }
  if (std::fputs(head.c_str(), file_) < 0) failed_ = true;
  if (format_ == TimelineFormat::kJson) {
    tail_offset_ = std::ftell(file_);
    std::fputs(kJsonTail, file_);
  }
  if (std::fflush(file_) != 0) failed_ = true;
  if (failed_) throw Error(ErrorKind::kRuntime, path_, "cannot write timeline");
}

TimelineWriter::~TimelineWriter() {
  if (file_) std::fclose(file_);
}

bool TimelineWriter::write_round(const std::vector<TimelineSample>& round) {
  if (failed_ || !file_) return true;
  std::string text;
  for (const auto& s : round) {
    switch (format_) {
      case TimelineFormat::kCsv:
        text += fmt::format("{:.3f},{},{},{},{},{}\n", s.time_ms, s.gpu_index, s.device_used_bytes,
                            s.tree_used_bytes, s.tree_processes, s.host_rss_bytes);
        break;
      case TimelineFormat::kJsonLines:
        text += fmt::format(
            "{{\"time_ms\":{:.3f},\"gpu_index\":{},\"device_used_bytes\":{},\"tree_used_bytes\":{},"
            "\"tree_processes\":{},\"host_rss_bytes\":{}}}\n",
            s.time_ms, s.gpu_index, s.device_used_bytes, s.tree_used_bytes, s.tree_processes, s.host_rss_bytes);
        break;
      case TimelineFormat::kJson:
        text += fmt::format("{}\n[{:.3f},{},{},{},{},{}]", first_sample_ ? "" : ",", s.time_ms, s.gpu_index,
                            s.device_used_bytes, s.tree_used_bytes, s.tree_processes, s.host_rss_bytes);
        first_sample_ = false;
        break;
    }
  }
  bool ok = true;
  if (format_ == TimelineFormat::kJson) {
    // Overwrite the old tail with the new rows and a new tail: the file is a whole document after the flush.
    ok = std::fseek(file_, tail_offset_, SEEK_SET) == 0;
    if (ok) ok = std::fputs(text.c_str(), file_) >= 0;
    if (ok) tail_offset_ = std::ftell(file_);
    if (ok) ok = std::fputs(kJsonTail, file_) >= 0;
  } else {
    ok = std::fputs(text.c_str(), file_) >= 0;
  }
  if (ok) ok = std::fflush(file_) == 0;
  if (!ok) {
    failed_ = true;
    return false;
  }
  return true;
}

}  // namespace gpu
}  // namespace llmem
