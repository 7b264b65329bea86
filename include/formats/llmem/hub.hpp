// Models on the Hugging Face Hub, read without downloading them: config.json and the weight headers only,
// fetched with HTTP range requests.
//
// Three layers, each usable alone:
//   HttpSession      libcurl's multi interface: many small range requests at once, redirects followed with the
//                    Range header kept (the Hub sends large files to a CDN), a timeout on every request, retries
//                    with backoff on 429 and 5xx, every response checked to be exactly what was asked for.
//   HttpRangeSource  the ByteSource transport over it: readers (safetensors, GGUF) ask for byte ranges and never
//                    know the bytes came from the network. Ranges already held (a probe, a prefetched header, the
//                    on-disk header cache) cost nothing; later ranges go straight to the CDN URL the first
//                    request was redirected to (falling back to the Hub's URL if the CDN refuses).
//   open_hub_source  a repo at a revision -> ModelSource: resolves the revision to the commit the Hub reports
//                    (X-Repo-Commit), reads config.json, model.safetensors.index.json and every shard's header
//                    (or model.safetensors, or a named .gguf), and keeps what it read in a header cache keyed by
//                    that commit, so the next run needs no network.
//
// Tokens are sent only as an Authorization header to the endpoint's host (libcurl drops it on a redirect to
// another host), and never appear in an error, a log line or the JSON output.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "llmem/byte_source.hpp"
#include "llmem/source.hpp"

namespace llmem {

// Where and how to talk to the Hub. hub_settings_from_env() fills it the way huggingface_hub does, plus llmem's
// own knobs (timeouts and retries, so that tests and slow links can tune them).
struct HubSettings {
  std::string endpoint = "https://huggingface.co";  // $HF_ENDPOINT, without a trailing slash
  std::string token;         // $HF_TOKEN, else the token file; never printed
  std::string token_origin;  // "HF_TOKEN" or the token file's path: errors say which token was refused
  std::string cache_dir;     // header cache root (see hub_header_cache_dir)
  bool offline = false;      // $HF_HUB_OFFLINE=1: only the header cache is used
  uint32_t connect_timeout_ms = 10'000;  // min(this, timeout_ms); an unreachable host fails in seconds
  uint32_t timeout_ms = 60'000;          // whole request, redirects included ($LLMEM_HTTP_TIMEOUT_MS)
  uint32_t max_attempts = 5;             // per request, for 429, 5xx and dropped connections ($LLMEM_HTTP_RETRIES + 1)
  uint32_t backoff_ms = 500;             // first retry delay, doubled each time ($LLMEM_HTTP_BACKOFF_MS)
  uint32_t max_backoff_ms = 10'000;      // longest wait, also the most of a Retry-After llmem honours
  uint32_t max_parallel = 32;            // transfers in flight at once
};

// Environment: HF_ENDPOINT, HF_TOKEN, HF_TOKEN_PATH, HF_HOME, XDG_CACHE_HOME, HOME, HF_HUB_OFFLINE,
// LLMEM_HEADER_CACHE, LLMEM_HTTP_TIMEOUT_MS, LLMEM_HTTP_RETRIES, LLMEM_HTTP_BACKOFF_MS.
// Throws Error(kUsage) naming the variable when a value is malformed (the token's value is never shown).
HubSettings hub_settings_from_env();

// Where fetched headers are kept: $LLMEM_HEADER_CACHE, else $HF_HOME/llmem-headers, else
// ${XDG_CACHE_HOME:-~/.cache}/llmem/headers.
std::string hub_header_cache_dir();

// One request: a byte range of a file, a probe of a file's start (which learns its size), or a whole small file.
struct HttpFetch {
  enum class Mode {
    kRange,  // exactly [offset, offset + length): a shorter or longer answer is an error
    kProbe,  // [0, length), clamped at the end of a shorter file; learns the file's size
    kWhole,  // the whole file, without a Range header; `length` is a cap checked before anything is stored
  };
  std::string url;
  std::string name;  // for errors: "org/name@rev/file"
  Mode mode = Mode::kRange;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t expected_size = 0;  // kRange: the file's size as probed (0 = unknown); a change is an error
};

struct HttpResult {
  long status = 0;             // the final response's status, after redirects
  std::vector<uint8_t> body;   // 2xx only: exactly the bytes asked for
  uint64_t file_size = 0;      // 2xx: from Content-Range, or the body of a 200
  std::string repo_commit;     // X-Repo-Commit, from any response of the redirect chain
  std::string error_code;      // X-Error-Code (RepoNotFound, GatedRepo, EntryNotFound, RevisionNotFound, ...)
  std::string error_message;   // X-Error-Message, one printable line
  uint32_t attempts = 0;
  // The URL that answered, after redirects: the CDN's, whose query may hold a signature. Reused for the next
  // range of the same file (one hop instead of two); never logged, printed or cached.
  std::string effective_url;
  bool ok() const { return status >= 200 && status < 300; }
};

// What the network cost, for --verbose, the JSON report and benchmarks.
struct HttpStats {
  uint64_t requests = 0;           // HTTP requests sent: redirect hops and retries each count
  uint64_t bytes_transferred = 0;  // response headers and bodies received
  uint64_t body_bytes = 0;         // response bodies alone
  uint64_t retries = 0;
  std::vector<std::string> log;    // one line per fetch: status, URL (never a token), range, bytes, attempts
};

class HttpSession {
 public:
  explicit HttpSession(HubSettings settings);
  ~HttpSession();
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  // Runs the fetches concurrently (at most settings.max_parallel in flight, over reused connections) and returns
  // one result per fetch, in order. 429, 5xx and dropped connections are retried with exponential backoff.
  // Transport failures throw Error(kRuntime, fetch.name, ...): timeout, unreachable host, a body shorter or
  // longer than asked, a file larger than its cap. HTTP error statuses are returned, not thrown: only the caller
  // knows whether a 404 means "this repo has no such file" or a failure (see throw_hub_error).
  std::vector<HttpResult> fetch(const std::vector<HttpFetch>& fetches);
  HttpResult fetch_one(const HttpFetch& f) { return fetch({f}).front(); }

  const HttpStats& stats() const;
  const HubSettings& settings() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Turns a failed result into one line that says what happened and what to do: a gated or private repo without a
// token, a refused token, a missing repo, revision or file, rate limiting, a server error. kNotFound for what the
// user must fix (name, revision, token), kRuntime for what may pass (429, 5xx).
[[noreturn]] void throw_hub_error(const HttpResult& r, const std::string& name, const HubSettings& settings,
                                  const std::string& repo, const std::string& revision);

// A file read by HTTP range requests (the Hub's ByteSource transport). Segments already held are served from
// memory; any other range costs one request through `session`, or is an Error when `session` is null (offline).
class HttpRangeSource final : public ByteSource {
 public:
  struct Context {  // for error messages
    std::string repo, revision;
  };
  HttpRangeSource(std::string name, std::string url, uint64_t size, HttpSession* session, Context context = {});

  // One probe request for the first `probe_bytes` (clamped to the file), which learns the size. Throws as
  // throw_hub_error does when the server refuses.
  static std::unique_ptr<HttpRangeSource> open(HttpSession& session, std::string name, std::string url,
                                               uint64_t probe_bytes, Context context = {});

  const std::string& name() const override { return name_; }
  uint64_t size() const override { return size_; }
  std::vector<uint8_t> read(uint64_t offset, uint64_t len) override;
  uint64_t bytes_read() const override { return bytes_read_; }

  const std::string& url() const { return url_; }
  // Where the bytes were last served from (the CDN after the Hub's redirect); url() until something was fetched.
  const std::string& data_url() const { return data_url_; }
  void set_data_url(std::string u) { data_url_ = std::move(u); }
  // Adds fetched bytes (a probe, a prefetch, the header cache). Marks the source dirty unless `from_cache`.
  void add_segment(uint64_t offset, std::vector<uint8_t> bytes, bool from_cache = false);
  // The held bytes of [offset, offset + len) if one segment covers them, without counting them as read.
  const uint8_t* peek(uint64_t offset, uint64_t len) const;
  const std::map<uint64_t, std::vector<uint8_t>>& segments() const { return segments_; }
  bool fetched_anything() const { return dirty_; }

 private:
  std::string name_, url_, data_url_;
  uint64_t size_;
  HttpSession* session_;
  Context context_;
  std::map<uint64_t, std::vector<uint8_t>> segments_;  // offset -> bytes
  uint64_t bytes_read_ = 0;
  bool dirty_ = false;
};

// org/name[/file.gguf][@revision], split.
struct HubRef {
  std::string repo;      // "org/name"
  std::string file;      // "" or a .gguf file of the repo (may sit in a folder: "Q4_K_M/x-00001-of-00002.gguf")
  std::string revision;  // "" = main
};

enum class HubMode {
  kCacheFirst,  // a revision whose commit the header cache knows needs no request
  kRefresh,     // ask the Hub which commit the revision names now (one request), then reuse cached headers
  kOffline,     // the header cache only
};

// Opens a repo on the Hub (see the file comment). Throws Error naming "org/name[@rev]/file": kNotFound for a
// missing or inaccessible repo, revision or file (and, offline, for what the cache lacks), kInvalidInput for a
// malformed header, kRuntime for the network.
ModelSource open_hub_source(const HubRef& ref, const HubSettings& settings, HubMode mode);

// True for a full 40-hex commit id (which names itself: no request is needed to resolve it).
bool is_commit_hash(const std::string& revision);

}  // namespace llmem
