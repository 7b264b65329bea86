// HTTP for the Hub: settings from the environment, libcurl's multi interface, Hub error messages, and the
// range-request ByteSource. The repo logic (revision, files, header cache) is in hub_source.cpp.
#include "llmem/hub.hpp"

// No type-checking macros: every curl_* call goes through the typed pointers below.
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "llmem/error.hpp"
#include "llmem/version.hpp"
#include "llmem/dynlib.hpp"

namespace llmem {
namespace {

// libcurl is loaded on first use (see util/dynlib.hpp for why).
#define LLMEM_CURL_FUNCTIONS(X)                                                                           \
  X(curl_global_init) X(curl_easy_init) X(curl_easy_setopt) X(curl_easy_getinfo) X(curl_easy_strerror)     \
  X(curl_easy_cleanup) X(curl_multi_init) X(curl_multi_setopt) X(curl_multi_cleanup) X(curl_multi_add_handle) \
  X(curl_multi_remove_handle) X(curl_multi_perform) X(curl_multi_info_read) X(curl_multi_poll)
LLMEM_DYNLIB_API(CurlApi, LLMEM_CURL_FUNCTIONS)

const CurlApi& curl() {
  static const detail::DynLib lib({"libcurl.so.4", "libcurl-gnutls.so.4"}, "Hub requests", "libcurl4");
  static const CurlApi api(lib);
  return api;
}

using Clock = std::chrono::steady_clock;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// huggingface_hub's _is_true: "1", "ON", "YES", "TRUE", any case.
bool env_true(const char* name) {
  std::string v = lower(trim(env(name)));
  return v == "1" || v == "on" || v == "yes" || v == "true";
}

std::optional<uint32_t> env_uint(const char* name, uint32_t min, uint32_t max) {
  std::string v = trim(env(name));
  if (v.empty()) return std::nullopt;
  uint64_t x = 0;
  for (char c : v) {
    if (!std::isdigit(static_cast<unsigned char>(c)) || x > max)
      throw Error(ErrorKind::kUsage, name, "'" + v + "' is not a whole number from " + std::to_string(min) + " to " + std::to_string(max));
    x = x * 10 + static_cast<uint64_t>(c - '0');
  }
  if (x < min || x > max)
    throw Error(ErrorKind::kUsage, name, "'" + v + "' is not a whole number from " + std::to_string(min) + " to " + std::to_string(max));
  return static_cast<uint32_t>(x);
}

std::string home_cache() {
  if (auto x = env("XDG_CACHE_HOME"); !x.empty()) return x;
  if (auto h = env("HOME"); !h.empty()) return h + "/.cache";
  return "";
}

// huggingface_hub's HF_HOME default: $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface.
std::string hf_home() {
  if (auto v = env("HF_HOME"); !v.empty()) return v;
  auto c = home_cache();
  return c.empty() ? "" : c + "/huggingface";
}

// A token goes into an HTTP header: printable ASCII without spaces (no CR/LF that could split the request).
bool plausible_token(const std::string& t) {
  if (t.empty() || t.size() > 4096) return false;
  return std::all_of(t.begin(), t.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// Host of a URL for messages: what lies between "://" and the next '/', without any user:password@.
std::string host_of(const std::string& url) {
  auto s = url.find("://");
  std::string rest = s == std::string::npos ? url : url.substr(s + 3);
  rest = rest.substr(0, rest.find('/'));
  if (auto at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
  return rest;
}

// Header values are untrusted: keep one printable line of reasonable length.
std::string printable_line(const std::string& s, size_t max = 200) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    out += (c >= 0x20 && c < 0x7f) ? c : ' ';
  }
  return trim(out);
}

std::string format_ms(uint32_t ms) {
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

std::string offline_hint() {
  return "offline? --offline or HF_HUB_OFFLINE=1 uses only cached headers; HF_ENDPOINT picks another endpoint";
}

void ensure_curl_global() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl().curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw Error(ErrorKind::kRuntime, "libcurl", "curl_global_init failed");
  });
}

}  // namespace

// --- settings ------------------------------------------------------------------------------------------------

std::string hub_header_cache_dir() {
  if (auto v = env("LLMEM_HEADER_CACHE"); !v.empty()) return v;
  if (auto v = env("HF_HOME"); !v.empty()) return v + "/llmem-headers";
  auto c = home_cache();
  return c.empty() ? "" : c + "/llmem/headers";
}

HubSettings hub_settings_from_env() {
  HubSettings s;
  if (auto e = trim(env("HF_ENDPOINT")); !e.empty()) {
    while (!e.empty() && e.back() == '/') e.pop_back();
    if (e.rfind("http://", 0) != 0 && e.rfind("https://", 0) != 0)
      throw Error(ErrorKind::kUsage, "HF_ENDPOINT", "'" + printable_line(e) + "' is not an http:// or https:// URL");
    s.endpoint = e;
  }
  // HF_TOKEN first, then the token file huggingface-cli login writes (huggingface_hub's order).
  if (auto t = trim(env("HF_TOKEN")); !t.empty()) {
    if (!plausible_token(t)) throw Error(ErrorKind::kUsage, "HF_TOKEN", "is not a valid token (it holds spaces or control characters)");
    s.token = t;
    s.token_origin = "HF_TOKEN";
  } else {
    std::string path = env("HF_TOKEN_PATH");
    if (path.empty()) {
      auto home = hf_home();
      if (!home.empty()) path = home + "/token";
    }
    if (!path.empty()) {
      std::ifstream in(path, std::ios::binary);
      if (in) {
        std::string text(4097, '\0');
        in.read(text.data(), static_cast<std::streamsize>(text.size()));
        text.resize(static_cast<size_t>(in.gcount()));
        text = trim(text);
        if (!text.empty()) {
          if (!plausible_token(text)) throw Error(ErrorKind::kUsage, path, "does not hold a valid token");
          s.token = text;
          s.token_origin = path;
        }
      }
    }
  }
  s.cache_dir = hub_header_cache_dir();
  s.offline = env_true("HF_HUB_OFFLINE");
  if (auto v = env_uint("LLMEM_HTTP_TIMEOUT_MS", 1, 3'600'000)) s.timeout_ms = *v;
  if (auto v = env_uint("LLMEM_HTTP_RETRIES", 0, 20)) s.max_attempts = *v + 1;
  if (auto v = env_uint("LLMEM_HTTP_BACKOFF_MS", 0, 60'000)) {
    s.backoff_ms = *v;
    s.max_backoff_ms = std::max<uint32_t>(*v, std::min<uint32_t>(s.max_backoff_ms, *v * 16));
  }
  return s;
}

// --- the HTTP session ----------------------------------------------------------------------------------------

namespace {

// One fetch's state across attempts, and one attempt's response.
struct Transfer {
  const HttpFetch* req = nullptr;
  size_t index = 0;
  CURL* easy = nullptr;
  uint32_t attempts = 0;
  Clock::time_point ready_at{};
  Clock::time_point started{};
  char errbuf[CURL_ERROR_SIZE] = {};
  std::string range;
  // The response being received (reset at every status line: a redirect's headers do not leak into the answer).
  long status = 0;
  std::optional<uint64_t> content_length;
  std::string content_range, retry_after, error_code, error_message;
  std::string repo_commit;  // kept across the redirect chain: the Hub sends it on the resolve response
  std::string effective_url;
  bool body_started = false;
  std::vector<uint8_t> body;
  uint64_t discarded = 0;
  std::string abort_reason;

  void reset_response() {
    status = 0;
    content_length.reset();
    content_range.clear();
    retry_after.clear();
    error_code.clear();
    error_message.clear();
    body_started = false;
    body.clear();
    discarded = 0;
  }
};

// Error bodies (HTML pages, JSON) are not needed: the Hub says what went wrong in headers. Read at most this
// much of one before giving up on the connection.
constexpr uint64_t kMaxDiscardedBytes = 1 << 20;

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const size_t len = size * n;
  std::string line(data, len);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) {
    t.reset_response();
    auto sp = line.find(' ');
    if (sp != std::string::npos) t.status = std::strtol(line.c_str() + sp + 1, nullptr, 10);
    return len;
  }
  auto colon = line.find(':');
  if (colon == std::string::npos) return len;
  std::string key = lower(line.substr(0, colon));
  std::string value = trim(line.substr(colon + 1));
  if (key == "content-length") {
    const bool digits = !value.empty() && value.size() <= 19 &&
                        std::all_of(value.begin(), value.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    if (digits) t.content_length = std::stoull(value);
  } else if (key == "content-range") {
    t.content_range = value;
  } else if (key == "retry-after") {
    t.retry_after = value;
  } else if (key == "x-repo-commit") {
    if (t.repo_commit.empty()) t.repo_commit = printable_line(value, 128);
  } else if (key == "x-error-code") {
    t.error_code = printable_line(value, 64);
  } else if (key == "x-error-message") {
    t.error_message = printable_line(value);
  }
  return len;
}

// Where bytes land. Every size is checked against what was asked before it is stored, so a hostile server can
// make llmem allocate no more than the request's length (itself checked by the readers against their caps).
size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const size_t len = size * n;
  const HttpFetch& r = *t.req;
  if (t.status < 200 || t.status >= 300) {
    t.discarded += len;
    return t.discarded > kMaxDiscardedBytes ? 0 : len;
  }
  const uint64_t limit = r.length;
  if (!t.body_started) {
    t.body_started = true;
    if (t.status == 200 && r.mode != HttpFetch::Mode::kWhole && r.offset != 0) {
      t.abort_reason = "the server ignored the Range header and sent the whole file";
      return 0;
    }
    if (t.content_length && *t.content_length > limit) {
      t.abort_reason = r.mode == HttpFetch::Mode::kWhole
                           ? "the file is " + std::to_string(*t.content_length) + " bytes, over the " + std::to_string(limit) + "-byte cap"
                       : t.status == 200 ? "the server ignored the Range header and sent the whole file (" + std::to_string(*t.content_length) + " bytes)"
                                         : "response longer than the " + std::to_string(limit) + " bytes asked for (" +
                                               std::to_string(*t.content_length) + " bytes)";
      return 0;
    }
    t.body.reserve(static_cast<size_t>(t.content_length.value_or(std::min<uint64_t>(limit, 1 << 16))));
  }
  if (len > limit - t.body.size()) {
    t.abort_reason = r.mode == HttpFetch::Mode::kWhole ? "the file is over the " + std::to_string(limit) + "-byte cap"
                     : t.status == 200                 ? "the server ignored the Range header and sent more than asked"
                                                       : "response longer than the " + std::to_string(limit) + " bytes asked for";
    return 0;
  }
  t.body.insert(t.body.end(), reinterpret_cast<uint8_t*>(data), reinterpret_cast<uint8_t*>(data) + len);
  return len;
}

// "bytes a-b/total" or "bytes */total".
struct ContentRange {
  bool has_range = false;
  uint64_t first = 0, last = 0, total = 0;
};
std::optional<ContentRange> parse_content_range(const std::string& v) {
  std::string s = trim(v);
  if (lower(s.substr(0, 6)) != "bytes ") return std::nullopt;
  s = trim(s.substr(6));
  auto slash = s.find('/');
  if (slash == std::string::npos) return std::nullopt;
  auto num = [](const std::string& x) -> std::optional<uint64_t> {
    if (x.empty() || x.size() > 19) return std::nullopt;
    uint64_t v = 0;
    for (char c : x) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    return v;
  };
  ContentRange cr;
  auto total = num(s.substr(slash + 1));
  if (!total) return std::nullopt;  // "*": llmem needs the size
  cr.total = *total;
  std::string range = s.substr(0, slash);
  if (range == "*") return cr;
  auto dash = range.find('-');
  if (dash == std::string::npos) return std::nullopt;
  auto a = num(range.substr(0, dash)), b = num(range.substr(dash + 1));
  if (!a || !b || *b < *a || *b >= cr.total) return std::nullopt;
  cr.has_range = true;
  cr.first = *a;
  cr.last = *b;
  return cr;
}

bool retryable_status(long s) { return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504; }

bool retryable_curl(CURLcode c) {
  switch (c) {
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

std::string range_text(const HttpFetch& r) {
  switch (r.mode) {
    case HttpFetch::Mode::kWhole: return "whole file";
    case HttpFetch::Mode::kProbe: return "bytes 0-" + std::to_string(r.length - 1);
    case HttpFetch::Mode::kRange: return "bytes " + std::to_string(r.offset) + "-" + std::to_string(r.offset + r.length - 1);
  }
  return "";
}

}  // namespace

struct HttpSession::Impl {
  HubSettings settings;
  CURLM* multi = nullptr;
  HttpStats stats;
  std::string user_agent = "llmem/" + std::string(kVersion);

  explicit Impl(HubSettings s) : settings(std::move(s)) {
    ensure_curl_global();
    multi = curl().curl_multi_init();
    if (!multi) throw Error(ErrorKind::kRuntime, "libcurl", "curl_multi_init failed");
    // HTTP/2 streams share one connection to the Hub; HTTP/1.1 servers get up to max_parallel connections.
    curl().curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl().curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(settings.max_parallel));
  }
  ~Impl() {
    if (multi) curl().curl_multi_cleanup(multi);
  }

  void start(Transfer& t) {
    const HttpFetch& r = *t.req;
    t.reset_response();
    t.repo_commit.clear();
    t.abort_reason.clear();
    t.errbuf[0] = '\0';
    ++t.attempts;
    t.easy = curl().curl_easy_init();
    if (!t.easy) throw Error(ErrorKind::kRuntime, r.name, "curl_easy_init failed");
    CURL* e = t.easy;
    curl().curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    curl().curl_easy_setopt(e, CURLOPT_PRIVATE, static_cast<void*>(&t));
    curl().curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl().curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl().curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl().curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    // Credentials stay with the endpoint's host: libcurl drops them when a redirect leaves it (the CDN).
    curl().curl_easy_setopt(e, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl().curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl().curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min(settings.connect_timeout_ms, settings.timeout_ms)));
    curl().curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(settings.timeout_ms));
    curl().curl_easy_setopt(e, CURLOPT_USERAGENT, user_agent.c_str());
    curl().curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl().curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.errbuf);
    curl().curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl().curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl().curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl().curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    if (r.mode != HttpFetch::Mode::kWhole) {
      // CURLOPT_RANGE is sent again on every redirect hop, so the CDN gets the same range.
      t.range = std::to_string(r.offset) + "-" + std::to_string(r.offset + r.length - 1);
      curl().curl_easy_setopt(e, CURLOPT_RANGE, t.range.c_str());
    }
    if (!settings.token.empty()) {
      // libcurl's bearer support rather than a hand-built header: the token is in no header list llmem keeps.
      curl().curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
      curl().curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER, settings.token.c_str());
    }
    t.started = Clock::now();
    if (curl().curl_multi_add_handle(multi, e) != CURLM_OK) throw Error(ErrorKind::kRuntime, r.name, "curl_multi_add_handle failed");
  }

  void finish_easy(Transfer& t) {
    if (!t.easy) return;
    long redirects = 0;
    curl_off_t body = 0;
    long header_bytes = 0;
    curl().curl_easy_getinfo(t.easy, CURLINFO_REDIRECT_COUNT, &redirects);
    curl().curl_easy_getinfo(t.easy, CURLINFO_SIZE_DOWNLOAD_T, &body);
    curl().curl_easy_getinfo(t.easy, CURLINFO_HEADER_SIZE, &header_bytes);
    char* effective = nullptr;
    curl().curl_easy_getinfo(t.easy, CURLINFO_EFFECTIVE_URL, &effective);
    t.effective_url = effective ? effective : "";
    stats.requests += 1 + static_cast<uint64_t>(std::max(0L, redirects));
    stats.bytes_transferred += static_cast<uint64_t>(std::max<curl_off_t>(0, body)) + static_cast<uint64_t>(std::max(0L, header_bytes));
    stats.body_bytes += static_cast<uint64_t>(std::max<curl_off_t>(0, body));
    curl().curl_multi_remove_handle(multi, t.easy);
    curl().curl_easy_cleanup(t.easy);
    t.easy = nullptr;
  }

  [[noreturn]] void fail_transport(const Transfer& t, CURLcode code) const {
    const HttpFetch& r = *t.req;
    const std::string host = host_of(r.url);
    const std::string detail = t.errbuf[0] ? printable_line(t.errbuf) : curl().curl_easy_strerror(code);
    std::string after = t.attempts > 1 ? " after " + std::to_string(t.attempts) + " attempts" : "";
    switch (code) {
      case CURLE_OPERATION_TIMEDOUT:
        throw Error(ErrorKind::kRuntime, r.name,
                    "no complete answer from " + host + " within " + format_ms(settings.timeout_ms) +
                        " (" + offline_hint() + "; LLMEM_HTTP_TIMEOUT_MS waits longer)");
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
        throw Error(ErrorKind::kRuntime, r.name, "cannot resolve " + host + " (" + offline_hint() + ")");
      case CURLE_COULDNT_CONNECT:
        throw Error(ErrorKind::kRuntime, r.name, "cannot connect to " + host + ": " + detail + " (" + offline_hint() + ")");
      case CURLE_WRITE_ERROR:
        if (!t.abort_reason.empty()) throw Error(ErrorKind::kRuntime, r.name, t.abort_reason + " (" + range_text(r) + ")");
        break;
      case CURLE_PARTIAL_FILE:
        throw Error(ErrorKind::kRuntime, r.name,
                    "response shorter than announced: the connection closed after " + std::to_string(t.body.size()) + " of " +
                        (t.content_length ? std::to_string(*t.content_length) : std::string("?")) + " bytes" + after + " (" + range_text(r) + ")");
      default:
        break;
    }
    throw Error(ErrorKind::kRuntime, r.name, "request to " + host + " failed" + after + ": " + detail);
  }

  // Checks a complete 2xx answer against the request. Returns the file size.
  uint64_t check_answer(Transfer& t) const {
    const HttpFetch& r = *t.req;
    auto bad = [&](const std::string& cause) -> uint64_t { throw Error(ErrorKind::kRuntime, r.name, cause + " (" + range_text(r) + ")"); };
    const uint64_t got = t.body.size();
    uint64_t size = 0;
    if (t.status == 206) {
      if (r.mode == HttpFetch::Mode::kWhole) return bad("partial content (HTTP 206) to a request for the whole file");
      auto cr = parse_content_range(t.content_range);
      if (!cr || !cr->has_range) return bad("HTTP 206 without a usable Content-Range ('" + printable_line(t.content_range, 80) + "')");
      if (cr->first != r.offset) return bad("the server sent bytes from " + std::to_string(cr->first) + ", not from " + std::to_string(r.offset));
      if (cr->last - cr->first + 1 != got)
        return bad("Content-Range announces " + std::to_string(cr->last - cr->first + 1) + " bytes but the body has " + std::to_string(got));
      size = cr->total;
      const uint64_t want = r.mode == HttpFetch::Mode::kProbe ? std::min(r.length, size) : r.length;
      if (got < want) return bad("response shorter than asked: " + std::to_string(got) + " of " + std::to_string(want) + " bytes");
    } else if (t.status == 200) {
      // The whole file: fine for kWhole, and for a probe or a range from 0 when the file is no longer than asked
      // (on_body refused anything more).
      size = got;
      if (t.content_length && *t.content_length != got)
        return bad("response shorter than announced: " + std::to_string(got) + " of " + std::to_string(*t.content_length) + " bytes");
      if (r.mode == HttpFetch::Mode::kRange && got != r.length)
        return bad("response shorter than asked: " + std::to_string(got) + " of " + std::to_string(r.length) + " bytes");
    } else {
      return bad("unexpected HTTP " + std::to_string(t.status));
    }
    if (r.mode == HttpFetch::Mode::kRange && r.expected_size && size != r.expected_size)
      return bad("the file changed size while being read (" + std::to_string(r.expected_size) + " then " + std::to_string(size) + " bytes)");
    return size;
  }

  std::chrono::milliseconds backoff(const Transfer& t) const {
    uint64_t ms = settings.backoff_ms;
    for (uint32_t i = 1; i < t.attempts && ms < settings.max_backoff_ms; ++i) ms *= 2;
    ms = std::min<uint64_t>(ms, settings.max_backoff_ms);
    // Retry-After in seconds (the HTTP-date form is rare on the Hub and treated as absent).
    if (!t.retry_after.empty() && t.retry_after.size() < 7 &&
        std::all_of(t.retry_after.begin(), t.retry_after.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
      ms = std::max<uint64_t>(ms, std::stoull(t.retry_after) * 1000);
    return std::chrono::milliseconds(ms);
  }

  std::vector<HttpResult> fetch(const std::vector<HttpFetch>& fetches) {
    std::vector<Transfer> ts(fetches.size());
    std::vector<HttpResult> results(fetches.size());
    std::vector<size_t> waiting;
    for (size_t i = 0; i < fetches.size(); ++i) {
      ts[i].req = &fetches[i];
      ts[i].index = i;
      ts[i].ready_at = Clock::now();
      waiting.push_back(i);
    }
    std::reverse(waiting.begin(), waiting.end());  // popped from the back: first fetch first
    size_t active = 0;
    // Whatever happens, no easy handle outlives this call.
    struct Cleanup {
      Impl& self;
      std::vector<Transfer>& ts;
      ~Cleanup() {
        for (auto& t : ts) self.finish_easy(t);
      }
    } cleanup{*this, ts};

    while (active > 0 || !waiting.empty()) {
      const auto now = Clock::now();
      // Start what is due, in order, up to the limit.
      for (size_t k = waiting.size(); k-- > 0 && active < settings.max_parallel;) {
        Transfer& t = ts[waiting[k]];
        if (t.ready_at > now) continue;
        start(t);
        ++active;
        waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(k));
      }
      int running = 0;
      curl().curl_multi_perform(multi, &running);
      int queued = 0;
      while (CURLMsg* m = curl().curl_multi_info_read(multi, &queued)) {
        if (m->msg != CURLMSG_DONE) continue;
        char* priv = nullptr;
        curl().curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        Transfer& t = *reinterpret_cast<Transfer*>(priv);
        const CURLcode code = m->data.result;
        finish_easy(t);
        --active;
        const HttpFetch& r = *t.req;
        const bool can_retry = t.attempts < settings.max_attempts;
        if (code != CURLE_OK) {
          if (retryable_curl(code) && t.abort_reason.empty() && can_retry) {
            ++stats.retries;
            t.ready_at = Clock::now() + backoff(t);
            waiting.insert(waiting.begin(), t.index);
            continue;
          }
          log(t, "failed");
          fail_transport(t, code);
        }
        if (retryable_status(t.status) && can_retry) {
          auto wait = backoff(t);
          // A server that asks for a longer pause than llmem would wait is answered now, not slept on.
          if (wait.count() <= static_cast<long>(settings.max_backoff_ms)) {
            ++stats.retries;
            t.ready_at = Clock::now() + wait;
            waiting.insert(waiting.begin(), t.index);
            continue;
          }
        }
        HttpResult& out = results[t.index];
        out.status = t.status;
        out.repo_commit = t.repo_commit;
        out.error_code = t.error_code;
        out.error_message = t.error_message;
        out.attempts = t.attempts;
        out.effective_url = t.effective_url;
        if (t.status >= 200 && t.status < 300) {
          out.file_size = check_answer(t);
          out.body = std::move(t.body);
        } else if (t.status == 416 && r.mode == HttpFetch::Mode::kProbe) {
          // An empty file has no byte 0 to send: "bytes */0" says so.
          auto cr = parse_content_range(t.content_range);
          if (cr && !cr->has_range && cr->total == 0) {
            out.status = 206;
            out.file_size = 0;
          }
        }
        log(t, "");
      }
      if (active == 0 && waiting.empty()) break;
      // Sleep until curl has work or the next queued fetch may start (only when there is room for it: a full
      // set of transfers in flight waits on curl's sockets, not on a timeout of 0).
      auto next_due = Clock::time_point::max();
      if (active < settings.max_parallel)
        for (size_t i : waiting) next_due = std::min(next_due, ts[i].ready_at);
      long wait_ms = 100;
      if (next_due != Clock::time_point::max())
        wait_ms = std::clamp<long>(static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(next_due - Clock::now()).count()), 0, 100);
      if (active > 0) curl().curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait_ms), nullptr);
      else if (wait_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    }
    return results;
  }

  void log(const Transfer& t, const char* note) {
    constexpr size_t kMaxLogLines = 10'000;
    if (stats.log.size() >= kMaxLogLines) return;
    const HttpFetch& r = *t.req;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t.started).count();
    // Without the query: a CDN URL's query is a signature.
    std::string line = (t.status ? std::to_string(t.status) : std::string("---")) + " GET " + r.url.substr(0, r.url.find('?')) + " [" + range_text(r) +
                       "] " + std::to_string(t.body.size()) + " B, " + std::to_string(ms) + " ms";
    if (t.attempts > 1) line += ", " + std::to_string(t.attempts) + " attempts";
    if (*note) line += std::string(", ") + note;
    stats.log.push_back(std::move(line));
  }
};

HttpSession::HttpSession(HubSettings settings) : impl_(std::make_unique<Impl>(std::move(settings))) {}
HttpSession::~HttpSession() = default;
const HttpStats& HttpSession::stats() const { return impl_->stats; }
const HubSettings& HttpSession::settings() const { return impl_->settings; }

std::vector<HttpResult> HttpSession::fetch(const std::vector<HttpFetch>& fetches) {
  for (const auto& f : fetches)
    if (f.length == 0 || (f.mode == HttpFetch::Mode::kProbe && f.offset != 0))
      throw Error(ErrorKind::kRuntime, f.name, "internal: empty or misplaced HTTP range");
  return impl_->fetch(fetches);
}

// --- errors --------------------------------------------------------------------------------------------------

void throw_hub_error(const HttpResult& r, const std::string& name, const HubSettings& s, const std::string& repo,
                     const std::string& revision) {
  const std::string repo_url = s.endpoint + "/" + repo;
  const std::string who = s.token.empty() ? "" : "the token from " + s.token_origin;
  const std::string tries = r.attempts > 1 ? " after " + std::to_string(r.attempts) + " attempts" : "";
  const std::string& code = r.error_code;
  const std::string rev = revision.empty() ? "main" : revision;
  if (code == "GatedRepo") {
    if (s.token.empty())
      throw Error(ErrorKind::kNotFound, name,
                  "gated repo: accept its conditions at " + repo_url + ", then set HF_TOKEN to a token of that account (or run 'hf auth login')");
    throw Error(ErrorKind::kNotFound, name,
                "gated repo: " + who + " has no access yet; accept the conditions at " + repo_url + " with that token's account");
  }
  if (r.status == 401 && !s.token.empty() && r.error_message.find("Invalid credentials") != std::string::npos)
    throw Error(ErrorKind::kNotFound, name,
                "the Hub refused " + who + " (invalid or expired): create a new one at " + s.endpoint + "/settings/tokens");
  if (code == "RevisionNotFound")
    throw Error(ErrorKind::kNotFound, name, "revision '" + rev + "' does not exist in " + repo + ": give a branch, tag or commit of " + repo_url);
  if (code == "EntryNotFound" || (r.status == 404 && code.empty() && r.error_message.empty() && !r.repo_commit.empty()))
    throw Error(ErrorKind::kNotFound, name, "no such file in " + repo + " at revision " + rev + " (the files are listed at " + repo_url + "/tree/" + rev + ")");
  // The Hub answers 401 for a repo that does not exist as for a private one, so as not to tell them apart.
  if (code == "RepoNotFound" || r.status == 401 || r.status == 404) {
    if (s.token.empty())
      throw Error(ErrorKind::kNotFound, name,
                  "repository " + repo + " not found on " + s.endpoint + ": check the name; a private repo needs HF_TOKEN");
    throw Error(ErrorKind::kNotFound, name,
                "repository " + repo + " not found on " + s.endpoint + ", or " + who + " cannot read it: check the name and the token's access");
  }
  if (r.status == 403)
    throw Error(ErrorKind::kNotFound, name,
                "access denied (HTTP 403" + (r.error_message.empty() ? std::string() : ": " + r.error_message) + "): " +
                    (s.token.empty() ? std::string("set HF_TOKEN to a token with read access to ") + repo
                                     : who + " lacks read access to " + repo));
  if (r.status == 429)
    throw Error(ErrorKind::kRuntime, name,
                "rate limited by " + host_of(s.endpoint) + " (HTTP 429" + tries + "): wait a few minutes and retry" +
                    (s.token.empty() ? std::string(", or set HF_TOKEN (logged-in users get higher limits)") : std::string()));
  if (r.status >= 500)
    throw Error(ErrorKind::kRuntime, name,
                "server error HTTP " + std::to_string(r.status) + " from " + host_of(s.endpoint) + tries + ": try again later");
  throw Error(ErrorKind::kRuntime, name,
              "unexpected HTTP " + std::to_string(r.status) + (r.error_message.empty() ? std::string() : " (" + r.error_message + ")"));
}

// --- the range source ----------------------------------------------------------------------------------------

HttpRangeSource::HttpRangeSource(std::string name, std::string url, uint64_t size, HttpSession* session, Context context)
    : name_(std::move(name)), url_(std::move(url)), data_url_(url_), size_(size), session_(session), context_(std::move(context)) {}

std::unique_ptr<HttpRangeSource> HttpRangeSource::open(HttpSession& session, std::string name, std::string url,
                                                       uint64_t probe_bytes, Context context) {
  HttpFetch f{url, name, HttpFetch::Mode::kProbe, 0, probe_bytes, 0};
  HttpResult r = session.fetch_one(f);
  if (!r.ok()) throw_hub_error(r, name, session.settings(), context.repo, context.revision);
  auto src = std::make_unique<HttpRangeSource>(std::move(name), std::move(url), r.file_size, &session, std::move(context));
  if (!r.effective_url.empty()) src->set_data_url(r.effective_url);
  if (!r.body.empty()) src->add_segment(0, std::move(r.body));
  return src;
}

void HttpRangeSource::add_segment(uint64_t offset, std::vector<uint8_t> bytes, bool from_cache) {
  if (bytes.empty() || offset > size_ || bytes.size() > size_ - offset) return;
  if (!from_cache) dirty_ = true;
  auto it = segments_.find(offset);
  if (it == segments_.end() || it->second.size() < bytes.size()) segments_[offset] = std::move(bytes);
}

const uint8_t* HttpRangeSource::peek(uint64_t offset, uint64_t len) const {
  auto it = segments_.upper_bound(offset);
  if (it == segments_.begin()) return nullptr;
  --it;
  const uint64_t start = it->first, n = it->second.size();
  if (offset - start > n || len > n - (offset - start)) return nullptr;
  return it->second.data() + (offset - start);
}

std::vector<uint8_t> HttpRangeSource::read(uint64_t offset, uint64_t len) {
  if (offset > size_ || len > size_ - offset)
    throw Error(ErrorKind::kInvalidInput, name_,
                "truncated file: needs bytes " + std::to_string(offset) + ".." + std::to_string(offset + len) +
                    " but the file has " + std::to_string(size_));
  if (len == 0) return {};
  if (const uint8_t* p = peek(offset, len)) {
    bytes_read_ += len;
    return {p, p + len};
  }
  if (!session_)
    throw Error(ErrorKind::kNotFound, name_,
                "bytes " + std::to_string(offset) + ".." + std::to_string(offset + len) +
                    " are not in llmem's header cache and the network is off (--offline or HF_HUB_OFFLINE=1): run once online");
  HttpFetch f{data_url_, name_, HttpFetch::Mode::kRange, offset, len, size_};
  HttpResult r = session_->fetch_one(f);
  if (!r.ok() && data_url_ != url_) {
    // A CDN URL can expire: ask the Hub again, which redirects to a fresh one.
    data_url_ = url_;
    f.url = url_;
    r = session_->fetch_one(f);
  }
  if (!r.ok()) throw_hub_error(r, name_, session_->settings(), context_.repo, context_.revision);
  if (!r.effective_url.empty()) data_url_ = r.effective_url;
  std::vector<uint8_t> out = r.body;
  add_segment(offset, std::move(r.body));
  bytes_read_ += len;
  return out;
}

}  // namespace llmem
