#include "llmem/source.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "llmem/catalog.hpp"
#include "llmem/error.hpp"
#include "llmem/hub.hpp"

namespace llmem {
namespace fs = std::filesystem;

const char* source_kind_name(SourceKind k) {
  switch (k) {
    case SourceKind::kConfigFile: return "config";
    case SourceKind::kSafetensorsFile: return "safetensors";
    case SourceKind::kGgufFile: return "gguf";
    case SourceKind::kDirectory: return "directory";
    case SourceKind::kHfCache: return "hf-cache";
    case SourceKind::kCatalog: return "catalog";
    case SourceKind::kHub: return "hub";
  }
  return "?";
}

std::string ModelSource::display_name() const {
  if (kind == SourceKind::kCatalog || kind == SourceKind::kHfCache || kind == SourceKind::kHub) return spec;
  return location;
}

namespace {

// config.json files are small; anything over this is not one.
constexpr uintmax_t kMaxConfigBytes = 16 << 20;

std::string read_small_file(const fs::path& p) {
  std::error_code ec;
  auto size = fs::file_size(p, ec);
  if (ec) throw Error(ErrorKind::kNotFound, p.string(), "cannot read: " + ec.message());
  if (size > kMaxConfigBytes) throw Error(ErrorKind::kInvalidInput, p.string(), "too large for a config file (" + std::to_string(size) + " bytes)");
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(ErrorKind::kNotFound, p.string(), "cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

enum class FileType { kJson, kSafetensors, kGguf, kUnknown };

// By content, not by name: GGUF starts with its magic, JSON with '{', safetensors with a length then '{'.
FileType sniff(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  char head[9] = {};
  in.read(head, 9);
  auto n = in.gcount();
  if (n >= 4 && std::string_view(head, 4) == "GGUF") return FileType::kGguf;
  size_t i = 0;
  while (i < static_cast<size_t>(n) && std::isspace(static_cast<unsigned char>(head[i]))) ++i;
  if (i < static_cast<size_t>(n) && head[i] == '{') return FileType::kJson;
  if (n == 9 && head[8] == '{') return FileType::kSafetensors;
  if (p.extension() == ".safetensors") return FileType::kSafetensors;  // let the reader say what is wrong
  if (p.extension() == ".gguf") return FileType::kGguf;
  if (p.extension() == ".json") return FileType::kJson;
  return FileType::kUnknown;
}

void load_config(ModelSource& src, const fs::path& p) {
  src.config = HfConfig::parse(read_small_file(p), p.string());
  src.files_read.push_back(p.string());
}

void load_gguf(ModelSource& src, const fs::path& p) {
  auto bs = open_file_source(p.string());
  src.gguf = read_gguf(*bs);
  src.files_read.push_back(p.string());
  src.header_bytes_read += bs->bytes_read();
}

void load_directory(ModelSource& src, const fs::path& dir) {
  if (fs::exists(dir / "config.json")) load_config(src, dir / "config.json");
  bool has_st = fs::exists(dir / "model.safetensors.index.json");
  std::vector<fs::path> ggufs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".safetensors") has_st = true;
    if (e.path().extension() == ".gguf") ggufs.push_back(e.path());
  }
  if (ec) throw Error(ErrorKind::kRuntime, dir.string(), "cannot list directory: " + ec.message());
  if (has_st) {
    src.safetensors = read_safetensors_dir(dir.string());
    for (const auto& s : src.safetensors->shards) src.files_read.push_back(s.file);
    src.header_bytes_read += src.safetensors->bytes_read;
  }
  if (ggufs.size() == 1) {
    load_gguf(src, ggufs.front());
  } else if (ggufs.size() > 1 && !src.config && !src.safetensors) {
    std::string names;
    for (const auto& g : ggufs) names += (names.empty() ? "" : ", ") + g.filename().string();
    throw Error(ErrorKind::kInvalidInput, dir.string(), "holds several GGUF files (" + names + "); name one of them");
  }
  if (!src.config && !src.safetensors && !src.gguf)
    throw Error(ErrorKind::kNotFound, dir.string(), "no config.json, *.safetensors or *.gguf in this directory");
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// A SOURCE written as a path (/x, ./x, ../x, ~/x) or a model file's name (x.gguf, dir/config.json), not as
// org/name or org/name/FILE.gguf (the Hub's form, exactly two slashes).
bool looks_like_path(const std::string& s) {
  if (s.empty()) return false;
  if (s[0] == '/' || s[0] == '~' || s.rfind("./", 0) == 0 || s.rfind("../", 0) == 0 || s == "." || s == "..") return true;
  std::string lower;
  for (char c : s.substr(0, s.rfind('@') == std::string::npos || s.rfind('@') == 0 ? s.size() : s.rfind('@')))
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  bool model_file = false;
  for (const char* ext : {".json", ".safetensors", ".gguf", ".bin", ".pt", ".pth"})
    model_file = model_file || (lower.size() > std::strlen(ext) && lower.compare(lower.size() - std::strlen(ext), std::string::npos, ext) == 0);
  return model_file && std::count(s.begin(), s.end(), '/') != 2;
}

bool looks_like_repo_id(const std::string& s) {
  auto slash = s.find('/');
  return slash != std::string::npos && slash > 0 && slash + 1 < s.size() && s.find('/', slash + 1) == std::string::npos &&
         s.find("..") == std::string::npos;
}

// models--org--name/snapshots/<commit>/ for the revision asked for (refs/<rev> names the commit; a commit hash
// names itself); without refs, the only snapshot.
std::optional<std::pair<fs::path, std::string>> find_in_hf_cache(const std::string& repo, const std::string& revision) {
  const std::string dir_name = "models--" + repo.substr(0, repo.find('/')) + "--" + repo.substr(repo.find('/') + 1);
  for (const auto& root : hf_cache_roots()) {
    fs::path base = fs::path(root) / dir_name;
    if (!fs::is_directory(base / "snapshots")) continue;
    const std::string rev = revision.empty() ? "main" : revision;
    std::string commit;
    if (fs::exists(base / "refs" / rev)) {
      commit = read_small_file(base / "refs" / rev);
      while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
    } else if (fs::is_directory(base / "snapshots" / rev)) {
      commit = rev;
    } else if (revision.empty()) {
      std::vector<fs::path> snaps;
      for (const auto& e : fs::directory_iterator(base / "snapshots"))
        if (e.is_directory()) snaps.push_back(e.path());
      if (snaps.size() == 1) commit = snaps.front().filename().string();
    }
    if (commit.empty() || commit.find('/') != std::string::npos || !fs::is_directory(base / "snapshots" / commit)) continue;
    return std::make_pair(base / "snapshots" / commit, commit);
  }
  return std::nullopt;
}

}  // namespace

std::vector<std::string> hf_cache_roots() {
  std::vector<std::string> roots;
  if (auto v = env("HF_HUB_CACHE"); !v.empty()) roots.push_back(v);
  if (auto v = env("HUGGINGFACE_HUB_CACHE"); !v.empty()) roots.push_back(v);
  if (auto v = env("HF_HOME"); !v.empty()) roots.push_back(v + "/hub");
  if (auto v = env("XDG_CACHE_HOME"); !v.empty()) roots.push_back(v + "/huggingface/hub");
  if (auto v = env("HOME"); !v.empty()) roots.push_back(v + "/.cache/huggingface/hub");
  return roots;
}

ModelSource open_source(const std::string& spec_in, const SourceOptions& options) {
  if (spec_in.empty()) throw Error(ErrorKind::kUsage, "", "empty SOURCE");
  ModelSource src;
  src.spec = spec_in;

  // 1. A local path.
  std::error_code ec;
  fs::path p(spec_in);
  if (fs::exists(p, ec)) {
    // the options that pick a Hub model's revision or file, or skip the local copies, mean nothing for a path
    for (const auto& [given, name] : {std::pair{!options.revision.empty(), "--revision"}, std::pair{!options.gguf_file.empty(), "--gguf-file"},
                                      std::pair{options.remote, "--remote"}})
      if (given)
        throw Error(ErrorKind::kUsage, spec_in, std::string(name) + " applies to a Hub model (org/name), not to a local path" +
                                                    (std::string(name) == "--gguf-file" ? ": name the .gguf file itself as SOURCE" : ""));
    src.location = p.string();
    if (fs::is_directory(p)) {
      src.kind = SourceKind::kDirectory;
      load_directory(src, p);
      return src;
    }
    switch (sniff(p)) {
      case FileType::kJson:
        src.kind = SourceKind::kConfigFile;
        load_config(src, p);
        return src;
      case FileType::kSafetensors: {
        src.kind = SourceKind::kSafetensorsFile;
        auto bs = open_file_source(p.string());
        auto header = read_safetensors(*bs);
        std::vector<SafetensorsHeader> one;
        one.push_back(std::move(header));
        src.safetensors = merge_safetensors_shards(std::move(one), nullptr);
        src.files_read.push_back(p.string());
        src.header_bytes_read += bs->bytes_read();
        return src;
      }
      case FileType::kGguf:
        src.kind = SourceKind::kGgufFile;
        load_gguf(src, p);
        return src;
      case FileType::kUnknown:
        throw Error(ErrorKind::kInvalidInput, p.string(), "not a config.json, safetensors or GGUF file");
    }
  }

  // A path or a file name that is not there: not a model name to look up elsewhere.
  if (looks_like_path(spec_in)) throw Error(ErrorKind::kNotFound, spec_in, "no such file or directory");

  // org/name[/file.gguf][@revision]
  std::string spec = spec_in, revision = options.revision;
  if (auto at = spec.rfind('@'); at != std::string::npos && at > 0) {
    if (!revision.empty() && revision != spec.substr(at + 1))
      throw Error(ErrorKind::kUsage, spec_in, "two different revisions given (@" + spec.substr(at + 1) + " and --revision " + revision + ")");
    revision = spec.substr(at + 1);
    spec = spec.substr(0, at);
    if (revision.empty()) throw Error(ErrorKind::kUsage, spec_in, "empty revision after '@'");
  }
  // A file inside a repo: everything after the second '/'.
  std::string file = options.gguf_file;
  if (auto second = spec.find('/', spec.find('/') + 1); spec.find('/') != std::string::npos && second != std::string::npos) {
    std::string named = spec.substr(second + 1);
    if (!file.empty() && file != named)
      throw Error(ErrorKind::kUsage, spec_in, "two different files given (" + named + " and --gguf-file " + file + ")");
    file = named;
    spec = spec.substr(0, second);
  }

  // 2. The local Hugging Face cache.
  if (looks_like_repo_id(spec) && !options.remote) {
    if (auto hit = find_in_hf_cache(spec, revision)) {
      if (file.empty()) {
        src.kind = SourceKind::kHfCache;
        src.location = hit->first.string();
        src.revision = hit->second;
        load_directory(src, hit->first);
        return src;
      }
      if (fs::path p = hit->first / file; fs::is_regular_file(p)) {
        src.kind = SourceKind::kHfCache;
        src.location = p.string();
        src.revision = hit->second;
        load_gguf(src, p);
        return src;
      }
    }
  }

  // 3. The embedded catalog (it holds one revision of each config: a pinned revision cannot be honoured).
  if (!options.remote && file.empty()) {
    if (auto entry = find_in_catalog(spec); entry && revision.empty()) return catalog_source(*entry);
  }

  std::string hint;
  const std::vector<std::string> close = closest_catalog_ids(file.empty() ? spec : spec + "/" + file);
  for (size_t i = 0; i < close.size(); ++i) hint += (i == 0 ? "" : i + 1 == close.size() ? " or " : ", ") + close[i];
  const std::string nowhere = "no such file, no model in the Hugging Face cache" +
                              std::string(revision.empty() ? "" : " at revision " + revision) + ", and not in the embedded catalog (" +
                              (hint.empty() ? "" : "did you mean " + hint + "? ") + "'llmem catalog' lists them all)";
  if (!looks_like_repo_id(spec)) {
    if (options.remote) throw Error(ErrorKind::kUsage, spec_in, "--remote needs a Hub repo id: org/name[@revision]");
    throw Error(ErrorKind::kNotFound, spec_in, nowhere);
  }

  // 4. The Hub, through the header cache.
  HubSettings settings = hub_settings_from_env();
  const bool offline = options.offline || settings.offline;
  settings.offline = offline;
  HubMode mode = offline ? HubMode::kOffline : options.remote ? HubMode::kRefresh : HubMode::kCacheFirst;
  try {
    return open_hub_source(HubRef{spec, file, revision}, settings, mode);
  } catch (const Error& e) {
    if (options.remote) throw;
    // The Hub was not asked for by name: say first that the name is unknown here, then why the Hub did not help.
    // When the repo does exist there (gated, a missing revision, a bad header), the Hub's own error is the answer.
    std::string cause = e.what();
    if (!e.where().empty() && cause.rfind(e.where() + ": ", 0) == 0) cause = cause.substr(e.where().size() + 2);
    const bool repo_missing = cause.rfind("repository ", 0) == 0;
    const bool not_cached = cause.find("not in llmem's header cache") != std::string::npos;
    const bool unreachable = e.kind() == ErrorKind::kRuntime &&
                             (cause.rfind("cannot resolve", 0) == 0 || cause.rfind("cannot connect", 0) == 0 ||
                              cause.rfind("no complete answer", 0) == 0);
    if (!repo_missing && !not_cached && !unreachable) throw;
    std::string why = repo_missing ? "not on the Hub either (" + cause + ")"
                      : not_cached ? "not in llmem's header cache either, and offline (--offline or HF_HUB_OFFLINE=1)"
                                   : "the Hub could not be asked: " + cause;
    throw Error(e.kind() == ErrorKind::kRuntime ? ErrorKind::kRuntime : ErrorKind::kNotFound, spec_in, nowhere + "; " + why);
  }
}

ModelSource catalog_source(const CatalogEntry& entry) {
  ModelSource src;
  src.spec = entry.id;
  src.kind = SourceKind::kCatalog;
  src.location = entry.id;
  src.config = HfConfig::parse(std::string(entry.config_json), "catalog:" + entry.id);
  return src;
}

}  // namespace llmem
