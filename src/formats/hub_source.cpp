// A repo on the Hub at a revision -> ModelSource, through llmem's header cache.
//
// Requests, for a sharded safetensors checkpoint (each step one concurrent batch, so about four round trips
// whatever the shard count):
//   1. config.json at the revision: its X-Repo-Commit names the commit (the Hub sends it on a 404 too), and every
//      later URL uses that commit, so a branch that moves mid-run cannot mix two checkpoints;
//   2. model.safetensors.index.json (whole) and model.safetensors (its first 8 bytes), whichever exists;
//   3. the first 8 bytes of every shard: the header length, and the file size from Content-Range;
//   4. every shard's JSON header, exactly its length, straight from the CDN URL step 3 was redirected to.
// A GGUF named by the user is probed with 64 KiB (the reader's first window) and then read in the reader's own
// growing windows, one request each.
//
// The header cache mirrors the Hugging Face cache's layout: <root>/models--org--name/refs/<revision> holds the
// commit, snapshots/<commit>/<file>.hdr the byte ranges read from that file (and its size), and
// snapshots/<commit>/<file>.absent records that the repo has no such file. A run that finds everything there
// makes no request at all.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "llmem/error.hpp"
#include "llmem/gguf.hpp"
#include "llmem/hub.hpp"
#include "llmem/safetensors.hpp"

namespace llmem {
namespace fs = std::filesystem;

bool is_commit_hash(const std::string& r) {
  return r.size() == 40 && std::all_of(r.begin(), r.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

namespace {

constexpr uint64_t kMaxConfigBytes = 16 << 20;        // as for a local config.json
constexpr uint64_t kMaxIndexBytes = 100'000'000;      // as for a local index
constexpr uint64_t kGgufProbeBytes = 64 << 10;        // the GGUF reader's first window: the probe serves it
constexpr uint64_t kMaxShards = 10'000;               // the largest public checkpoints have a few hundred
constexpr uint64_t kMaxRepoHeaderBytes = 1ull << 30;  // all headers of one repo together
constexpr uint64_t kMaxCacheEntryBytes = 256ull << 20;
constexpr const char* kCacheMagic = "llmem-header-cache 1";

// Percent-encoding as huggingface_hub's quote(): revisions with safe="", file paths keeping '/'.
std::string pct(const std::string& s, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// A revision as a file name in refs/: only [A-Za-z0-9_-] kept, so "refs/pr/1" or ".." cannot leave the directory.
std::string ref_file_name(const std::string& rev) {
  std::string out;
  for (unsigned char c : rev) {
    if (std::isalnum(c) || c == '-' || c == '_') out += static_cast<char>(c);
    else out += "%" + std::string(1, "0123456789ABCDEF"[c >> 4]) + std::string(1, "0123456789ABCDEF"[c & 15]);
  }
  return out;
}

// Commit ids come from a server: before one names a directory it must look like one.
bool plausible_commit(const std::string& c) {
  return !c.empty() && c.size() <= 64 && std::all_of(c.begin(), c.end(), [](char x) { return std::isalnum(static_cast<unsigned char>(x)); });
}

// The Hub's repo names: [A-Za-z0-9._-] on each side of one '/', neither side "." or "..".
bool valid_repo_id(const std::string& repo) {
  auto slash = repo.find('/');
  if (slash == std::string::npos || repo.find('/', slash + 1) != std::string::npos) return false;
  for (const std::string& part : {repo.substr(0, slash), repo.substr(slash + 1)}) {
    if (part.empty() || part == "." || part == ".." || part.size() > 96) return false;
    for (unsigned char c : part)
      if (!std::isalnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

// A file path inside a repo: relative, no empty, "." or ".." component, no backslash or control character.
bool valid_repo_file(const std::string& file) {
  if (file.empty() || file.size() > 1024 || file.front() == '/') return false;
  std::stringstream ss(file);
  std::string part;
  size_t parts = 0;
  while (std::getline(ss, part, '/')) {
    ++parts;
    if (part.empty() || part == "." || part == "..") return false;
    for (unsigned char c : part)
      if (c < 0x20 || c == 0x7f || c == '\\') return false;
  }
  return parts > 0 && file.back() != '/';
}

uint64_t le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool is_absent(const HttpResult& r) {
  return r.status == 404 && (r.error_code.empty() || r.error_code == "EntryNotFound");
}

// --- the header cache ----------------------------------------------------------------------------------------

class HeaderCache {
 public:
  HeaderCache(const std::string& root, const std::string& repo) {
    if (root.empty()) return;
    auto slash = repo.find('/');
    base_ = fs::path(root) / ("models--" + repo.substr(0, slash) + "--" + repo.substr(slash + 1));
  }
  bool enabled() const { return !base_.empty(); }

  std::optional<std::string> ref(const std::string& rev) const {
    if (!enabled()) return std::nullopt;
    std::ifstream in(base_ / "refs" / ref_file_name(rev));
    std::string c;
    if (!in || !std::getline(in, c) || !plausible_commit(c)) return std::nullopt;
    return c;
  }

  struct Entry {
    bool absent = false;
    uint64_t size = 0;
    std::vector<std::pair<uint64_t, std::vector<uint8_t>>> segments;
  };

  // A damaged entry reads as missing (it is rewritten by the next online run).
  std::optional<Entry> load(const std::string& commit, const std::string& file) const {
    if (!enabled()) return std::nullopt;
    fs::path p = snapshot(commit) / file;
    std::error_code ec;
    if (fs::exists(fs::path(p.string() + ".absent"), ec)) return Entry{true, 0, {}};
    std::ifstream in(p.string() + ".hdr", std::ios::binary);
    if (!in) return std::nullopt;
    std::string magic, meta;
    if (!std::getline(in, magic) || magic != kCacheMagic || !std::getline(in, meta) || meta.size() > (1 << 20)) return std::nullopt;
    try {
      auto j = nlohmann::json::parse(meta);
      Entry e;
      e.size = j.at("size").get<uint64_t>();
      uint64_t total = 0;
      for (const auto& s : j.at("segments")) {
        uint64_t off = s.at(0).get<uint64_t>(), len = s.at(1).get<uint64_t>();
        if (len == 0 || off > e.size || len > e.size - off || len > kMaxCacheEntryBytes - total) return std::nullopt;
        total += len;
        std::vector<uint8_t> bytes(len);
        if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(len))) return std::nullopt;
        e.segments.emplace_back(off, std::move(bytes));
      }
      if (in.peek() != std::char_traits<char>::eof()) return std::nullopt;
      return e;
    } catch (const nlohmann::json::exception&) {
      return std::nullopt;
    }
  }

  void store(const std::string& commit, const std::string& file, const HttpRangeSource& src) {
    nlohmann::json segs = nlohmann::json::array();
    std::string data;
    for (const auto& [off, bytes] : src.segments()) {
      segs.push_back({off, bytes.size()});
      data.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    std::string text = std::string(kCacheMagic) + "\n" + nlohmann::json{{"size", src.size()}, {"segments", segs}}.dump() + "\n" + data;
    write_atomically(snapshot(commit) / (file + ".hdr"), text);
  }

  void store_absent(const std::string& commit, const std::string& file) {
    write_atomically(snapshot(commit) / (file + ".absent"), "");
  }

  void set_ref(const std::string& rev, const std::string& commit) {
    write_atomically(base_ / "refs" / ref_file_name(rev), commit + "\n");
  }

 private:
  fs::path snapshot(const std::string& commit) const { return base_ / "snapshots" / commit; }

  // Another llmem may read the cache at the same time: it sees the old file or the new one, never half of one.
  static void write_atomically(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rng() % 1'000'000'000);
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(text.data(), static_cast<std::streamsize>(text.size()));
      out.close();
      if (!out) {
        std::error_code ec;
        fs::remove(tmp, ec);
        throw fs::filesystem_error("cannot write", tmp, std::make_error_code(std::errc::io_error));
      }
    }
    fs::rename(tmp, path);
  }

  fs::path base_;
};

// --- the loader ----------------------------------------------------------------------------------------------

class HubLoader {
 public:
  HubLoader(const HubRef& ref, const HubSettings& settings, HubMode mode)
      : ref_(ref), s_(settings), mode_(settings.offline ? HubMode::kOffline : mode), cache_(settings.cache_dir, ref.repo) {
    rev_ = ref_.revision.empty() ? "main" : ref_.revision;
    if (!valid_repo_id(ref_.repo))
      throw Error(ErrorKind::kUsage, ref_.repo, "not a Hub repo id (org/name, letters, digits, '.', '_' and '-')");
    if (!ref_.file.empty() && !valid_repo_file(ref_.file))
      throw Error(ErrorKind::kUsage, ref_.repo + "/" + ref_.file, "not a safe file path inside a repo");
    if (mode_ != HubMode::kOffline) session_ = std::make_unique<HttpSession>(s_);
  }

  ModelSource load() {
    resolve();
    ModelSource src;
    src.kind = SourceKind::kHub;
    src.spec = ref_.repo + (ref_.file.empty() ? "" : "/" + ref_.file) + (ref_.revision.empty() ? "" : "@" + ref_.revision);
    src.location = s_.endpoint + "/" + ref_.repo + "/resolve/" + pct(at(), false);
    src.revision = commit_;
    if (!ref_.file.empty()) load_named_file(src);
    else load_repo(src);
    save();
    RemoteReadReport rr;
    rr.endpoint = s_.endpoint;
    rr.repo = ref_.repo;
    rr.requested_revision = rev_;
    rr.commit = commit_;
    rr.cached_files = cached_files_;
    rr.cache_dir = s_.cache_dir;
    rr.cache_note = cache_note_;
    if (session_) {
      const auto& st = session_->stats();
      rr.network_used = st.requests > 0;
      rr.requests = st.requests;
      rr.bytes_transferred = st.bytes_transferred;
      rr.retries = st.retries;
      rr.request_log = st.log;
    }
    src.remote = std::move(rr);
    return src;
  }

 private:
  struct Want {
    std::string file;
    HttpFetch::Mode mode;
    uint64_t bytes;
  };

  // The revision in URLs: the commit once known.
  const std::string& at() const { return commit_.empty() ? rev_ : commit_; }
  std::string url(const std::string& file, const std::string& rev) const {
    return s_.endpoint + "/" + ref_.repo + "/resolve/" + pct(rev, false) + "/" + pct(file, true);
  }
  std::string url(const std::string& file) const { return url(file, at()); }
  // How errors name a file: org/name[@rev]/file. The file name stays last, so that the checks that compare an
  // index's shard names with the shards' file names hold for every transport.
  std::string name(const std::string& file) const {
    return ref_.repo + (ref_.revision.empty() ? "" : "@" + ref_.revision) + "/" + file;
  }
  std::string display() const { return ref_.repo + (ref_.revision.empty() ? "" : "@" + ref_.revision); }
  HttpRangeSource::Context context() const { return {ref_.repo, rev_}; }

  [[noreturn]] void not_cached(const std::string& what) const {
    throw Error(ErrorKind::kNotFound, what,
                "not in llmem's header cache (" + (s_.cache_dir.empty() ? std::string("no cache directory") : s_.cache_dir) +
                    ") and the network is off (--offline or HF_HUB_OFFLINE=1): run once online, or drop --offline");
  }

  void resolve() {
    if (is_commit_hash(rev_)) {
      commit_ = rev_;
      for (auto& c : commit_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return;
    }
    if (mode_ != HubMode::kRefresh) {
      if (auto c = cache_.ref(rev_)) {
        commit_ = *c;
        return;
      }
    }
    if (!session_) not_cached(display());
    // One request answers both "which commit?" and "what config?": the resolve response of config.json carries
    // X-Repo-Commit, and so does the Hub's 404 for a repo without one.
    HttpResult r = session_->fetch_one({url("config.json", rev_), name("config.json"), HttpFetch::Mode::kWhole, 0, kMaxConfigBytes, 0});
    if (!r.ok() && !is_absent(r)) throw_hub_error(r, name("config.json"), s_, ref_.repo, rev_);
    if (plausible_commit(r.repo_commit)) {
      commit_ = r.repo_commit;
      resolved_online_ = true;
    } else {
      cache_note_ = "the server did not say which commit '" + rev_ + "' is (no X-Repo-Commit header): nothing was cached";
    }
    if (r.ok()) {
      auto src = std::make_unique<HttpRangeSource>(name("config.json"), url("config.json"), r.file_size, session_.get(), context());
      src->add_segment(0, std::move(r.body));
      files_["config.json"] = std::move(src);
    } else {
      absent_.insert("config.json");
      new_absent_.insert("config.json");
    }
  }

  // Opens files: from the header cache when it has them, the rest in one concurrent batch. nullptr for a file the
  // repo does not have.
  std::vector<HttpRangeSource*> open(const std::vector<Want>& wants) {
    std::vector<HttpRangeSource*> out(wants.size(), nullptr);
    std::vector<size_t> from_net;
    for (size_t i = 0; i < wants.size(); ++i) {
      const auto& w = wants[i];
      if (auto it = files_.find(w.file); it != files_.end()) {
        out[i] = it->second.get();
        continue;
      }
      if (absent_.count(w.file)) continue;
      if (!commit_.empty()) {
        if (auto e = cache_.load(commit_, w.file)) {
          ++cached_files_;
          if (e->absent) {
            absent_.insert(w.file);
            continue;
          }
          auto src = std::make_unique<HttpRangeSource>(name(w.file), url(w.file), e->size, session_.get(), context());
          for (auto& [off, bytes] : e->segments) src->add_segment(off, std::move(bytes), /*from_cache=*/true);
          out[i] = src.get();
          files_[w.file] = std::move(src);
          continue;
        }
      }
      from_net.push_back(i);
    }
    if (from_net.empty()) return out;
    if (!session_) not_cached(name(wants[from_net.front()].file));
    std::vector<HttpFetch> fetches;
    for (size_t i : from_net) fetches.push_back({url(wants[i].file), name(wants[i].file), wants[i].mode, 0, wants[i].bytes, 0});
    auto results = session_->fetch(fetches);
    for (size_t k = 0; k < from_net.size(); ++k) {
      const auto& w = wants[from_net[k]];
      HttpResult& r = results[k];
      if (is_absent(r)) {
        absent_.insert(w.file);
        new_absent_.insert(w.file);
        continue;
      }
      if (!r.ok()) throw_hub_error(r, name(w.file), s_, ref_.repo, rev_);
      auto src = std::make_unique<HttpRangeSource>(name(w.file), url(w.file), r.file_size, session_.get(), context());
      if (!r.effective_url.empty()) src->set_data_url(r.effective_url);
      src->add_segment(0, std::move(r.body));
      out[from_net[k]] = src.get();
      files_[w.file] = std::move(src);
    }
    return out;
  }

  std::string text_of(HttpRangeSource& src) {
    auto bytes = src.read(0, src.size());
    return std::string(bytes.begin(), bytes.end());
  }

  // Second round for safetensors: each file's JSON header, exactly as long as its 8-byte prefix says, all at
  // once. A prefix that lies (over the cap, past the end) is left for the reader to report; nothing is fetched.
  void prefetch_safetensors_headers(const std::vector<HttpRangeSource*>& srcs) {
    std::vector<HttpFetch> fetches;
    std::vector<HttpRangeSource*> owners;
    uint64_t total = 0;
    for (auto* s : srcs) {
      if (s->size() < 8) continue;
      const uint8_t* p = s->peek(0, 8);
      if (!p) continue;
      const uint64_t n = le64(p);
      if (n < 2 || n > kSafetensorsMaxHeaderBytes || n > s->size() - 8 || s->peek(8, n)) continue;
      total += n;
      if (total > kMaxRepoHeaderBytes)
        throw Error(ErrorKind::kInvalidInput, display(),
                    "the shards' headers add up to over " + std::to_string(kMaxRepoHeaderBytes) + " bytes; refusing to read them");
      // Straight to the CDN URL the probe was redirected to: one hop per shard instead of two, and half the
      // requests against the Hub's rate limit.
      fetches.push_back({s->data_url(), s->name(), HttpFetch::Mode::kRange, 8, n, s->size()});
      owners.push_back(s);
    }
    if (fetches.empty() || !session_) return;  // offline, the reader names the missing range
    auto results = session_->fetch(fetches);
    // A CDN URL that no longer works (expired signature): ask the Hub again for those.
    std::vector<size_t> again;
    for (size_t i = 0; i < results.size(); ++i)
      if (!results[i].ok() && fetches[i].url != owners[i]->url()) again.push_back(i);
    if (!again.empty()) {
      std::vector<HttpFetch> retry;
      for (size_t i : again) {
        retry.push_back(fetches[i]);
        retry.back().url = owners[i]->url();
      }
      auto second = session_->fetch(retry);
      for (size_t k = 0; k < again.size(); ++k) results[again[k]] = std::move(second[k]);
    }
    for (size_t i = 0; i < results.size(); ++i) {
      if (!results[i].ok()) throw_hub_error(results[i], fetches[i].name, s_, ref_.repo, rev_);
      if (!results[i].effective_url.empty()) owners[i]->set_data_url(results[i].effective_url);
      owners[i]->add_segment(8, std::move(results[i].body));
    }
  }

  void note_read(ModelSource& src, const HttpRangeSource& f) {
    src.files_read.push_back(f.url());
    src.header_bytes_read += f.bytes_read();
  }

  void load_named_file(ModelSource& src) {
    const std::string& file = ref_.file;
    if (file.size() < 5 || file.compare(file.size() - 5, 5, ".gguf") != 0)
      throw Error(ErrorKind::kUsage, name(file),
                  "only a .gguf file can be named inside a repo; for safetensors give org/name and llmem finds the shards");
    auto v = open({{file, HttpFetch::Mode::kProbe, kGgufProbeBytes}});
    if (!v[0])
      throw Error(ErrorKind::kNotFound, name(file),
                  "no such file in " + ref_.repo + " at revision " + rev_ + " (the files are listed at " + s_.endpoint + "/" +
                      ref_.repo + "/tree/" + rev_ + ")");
    src.gguf = read_gguf(*v[0]);
    note_read(src, *v[0]);
  }

  void load_repo(ModelSource& src) {
    const std::string kIndex = "model.safetensors.index.json", kSingle = "model.safetensors";
    auto first = open({{"config.json", HttpFetch::Mode::kWhole, kMaxConfigBytes},
                       {kIndex, HttpFetch::Mode::kWhole, kMaxIndexBytes},
                       {kSingle, HttpFetch::Mode::kProbe, 8}});
    if (first[0]) {
      src.config = HfConfig::parse(text_of(*first[0]), name("config.json"));
      src.files_read.push_back(first[0]->url());
    }
    if (first[1]) {
      auto idx = parse_safetensors_index(text_of(*first[1]), name(kIndex));
      src.files_read.push_back(first[1]->url());
      if (idx.shards.size() > kMaxShards)
        throw Error(ErrorKind::kInvalidInput, name(kIndex), "names " + std::to_string(idx.shards.size()) + " shards, over the cap of " + std::to_string(kMaxShards));
      std::vector<Want> wants;
      for (const auto& s : idx.shards) wants.push_back({s, HttpFetch::Mode::kProbe, 8});
      auto shards = open(wants);
      for (size_t i = 0; i < shards.size(); ++i)
        if (!shards[i])
          throw Error(ErrorKind::kNotFound, name(kIndex), "shard '" + idx.shards[i] + "' named by the index is not in " + ref_.repo + " at revision " + rev_);
      prefetch_safetensors_headers(shards);
      std::vector<SafetensorsHeader> headers;
      headers.reserve(shards.size());
      for (auto* s : shards) {
        headers.push_back(read_safetensors(*s));
        note_read(src, *s);
      }
      src.safetensors = merge_safetensors_shards(std::move(headers), &idx);
    } else if (first[2]) {
      prefetch_safetensors_headers({first[2]});
      std::vector<SafetensorsHeader> one;
      one.push_back(read_safetensors(*first[2]));
      note_read(src, *first[2]);
      src.safetensors = merge_safetensors_shards(std::move(one), nullptr);
    }
    if (!src.config && !src.safetensors)
      throw Error(ErrorKind::kNotFound, display(),
                  "has no config.json, " + kSingle + " or " + kIndex + " at revision " + rev_ +
                      "; for a GGUF repo name the file: llmem params " + ref_.repo + "/FILE.gguf (or --gguf-file FILE)");
  }

  // Only after a successful load: the cache holds headers that parsed, never a half-read checkpoint.
  void save() {
    if (commit_.empty() || !cache_.enabled()) return;
    try {
      for (const auto& [file, src] : files_)
        if (src->fetched_anything()) cache_.store(commit_, file, *src);
      for (const auto& file : new_absent_) cache_.store_absent(commit_, file);
      if (resolved_online_ && rev_ != commit_) cache_.set_ref(rev_, commit_);
    } catch (const std::exception& e) {
      // A read-only or full disk costs the next run a few requests, not this run its answer.
      cache_note_ = std::string("header cache not written: ") + e.what();
    }
  }

  HubRef ref_;
  const HubSettings& s_;
  HubMode mode_;
  HeaderCache cache_;
  std::unique_ptr<HttpSession> session_;
  std::string rev_, commit_;
  bool resolved_online_ = false;
  std::map<std::string, std::unique_ptr<HttpRangeSource>> files_;
  std::set<std::string> absent_, new_absent_;
  uint64_t cached_files_ = 0;
  std::string cache_note_;
};

}  // namespace

ModelSource open_hub_source(const HubRef& ref, const HubSettings& settings, HubMode mode) {
  HubLoader loader(ref, settings, mode);
  return loader.load();
}

}  // namespace llmem
