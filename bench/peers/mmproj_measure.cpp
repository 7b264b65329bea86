// What llama.cpp's multimodal loader (tools/mtmd/clip.cpp at the pinned commit) allocates for an mmproj GGUF, in
// bytes: the weights buffer and the compute buffer of each backend of the clip scheduler after the warm-up graph
// (clip_model_loader::warmup -> reserve_compute_meta -> ggml_backend_sched_reserve). clip.cpp is compiled into
// this program (#included below), so the exact sizes are read from clip_ctx itself instead of the log's MiB with
// two decimals: ggml_backend_buffer_get_size of clip_ctx::buf and ggml_backend_sched_get_buffer_size per backend.
// The parameters are those mtmd_context passes to clip_init (mtmd.cpp mtmd_context::mtmd_context): use_gpu
// (llama-server's --no-mmproj-offload clears it), flash_attn_type (the text context's -fa: auto/on/off),
// image_min_tokens / image_max_tokens, warmup = true.
//
// Build (against the pinned commit's sources and .llama/lib; see bench/peers/README.md, `build_mmproj_measure.sh`):
//   bash bench/peers/build_mmproj_measure.sh      (writes .llama/bin/mmproj-measure, stripped)
//
// Usage: mmproj-measure [--cpu] [--fa auto|on|off] [--min-tokens N] [--max-tokens N] [--id ID] FILE.gguf
// Output (stdout): one JSON object: {"id", "file", "ok", "use_gpu", "fa_requested", "flash_attn", "proj_type",
// "warmup_image_size", "n_patches", "n_output_tokens", "weights": {"buft", "bytes"}, "compute": [{"buft", "bytes"}],
// "n_nodes", "n_splits", "error"}. clip's log goes to stderr.
#include "clip.cpp"  // NOLINT: the whole loader, for clip_ctx's members

#include <cstdio>
#include <string>

#include "peer_json.hpp"

namespace {

void log_to_stderr(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_DEBUG) return;
  std::fputs(text, stderr);
}

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--cpu] [--fa auto|on|off] [--min-tokens N] [--max-tokens N] [--id ID] FILE.gguf\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool use_gpu = true;
  std::string fa = "auto", id, file;
  int min_tokens = 0, max_tokens = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--cpu") {
      use_gpu = false;
    } else if (a == "--fa") {
      const char* v = next();
      if (!v) return usage(argv[0]);
      fa = v;
      if (fa != "auto" && fa != "on" && fa != "off") return usage(argv[0]);
    } else if (a == "--min-tokens" || a == "--max-tokens") {
      const char* v = next();
      if (!v) return usage(argv[0]);
      (a == "--min-tokens" ? min_tokens : max_tokens) = std::atoi(v);
    } else if (a == "--id") {
      const char* v = next();
      if (!v) return usage(argv[0]);
      id = v;
    } else if (!a.empty() && a[0] == '-') {
      return usage(argv[0]);
    } else {
      file = a;
    }
  }
  if (file.empty()) return usage(argv[0]);

  ggml_log_set(log_to_stderr, nullptr);
  g_logger_state.log_callback = log_to_stderr;
  ggml_backend_load_all();

  clip_context_params params{};
  params.use_gpu = use_gpu;
  params.device = nullptr;
  params.flash_attn_type = fa == "on" ? CLIP_FLASH_ATTN_TYPE_ENABLED
                           : fa == "off" ? CLIP_FLASH_ATTN_TYPE_DISABLED
                                         : CLIP_FLASH_ATTN_TYPE_AUTO;
  params.image_min_tokens = min_tokens;
  params.image_max_tokens = max_tokens;
  params.warmup = true;
  params.no_alloc = false;

  std::string out = "{\"id\":\"" + json_escape(id) + "\",\"file\":\"" + json_escape(file) + "\",\"use_gpu\":" +
                    (use_gpu ? "true" : "false") + ",\"fa_requested\":\"" + fa + "\"";
  clip_init_result res = clip_init(file.c_str(), params);
  clip_ctx* ctx = res.ctx_v;
  if (!ctx) {
    out += ",\"ok\":false,\"error\":\"clip_init failed (no vision context)\"}";
    std::printf("%s\n", out.c_str());
    return 1;
  }
  const auto& hp = ctx->model.hparams;
  clip_image_f32 img;
  img.set_size({hp.warmup_image_size, hp.warmup_image_size}, false, false);
  char buf[512];
  std::snprintf(buf, sizeof buf,
                ",\"ok\":true,\"flash_attn\":%s,\"proj_type\":\"%s\",\"warmup_image_size\":%d,\"patch_size\":%d,"
                "\"n_output_tokens\":%d",
                ctx->flash_attn_type == CLIP_FLASH_ATTN_TYPE_ENABLED ? "true" : "false",
                json_escape(PROJECTOR_TYPE_NAMES[ctx->proj_type()]).c_str(), hp.warmup_image_size, hp.patch_size,
                clip_n_output_tokens(ctx, &img));
  out += buf;
  ggml_backend_buffer_t wb = ctx->buf.get();
  out += ",\"weights\":{\"buft\":\"" + json_escape(wb ? ggml_backend_buffer_name(wb) : "") +
         "\",\"bytes\":" + std::to_string(wb ? ggml_backend_buffer_get_size(wb) : 0) + "}";
  out += ",\"compute\":[";
  for (size_t i = 0; i < ctx->backend_ptrs.size(); ++i) {
    if (i) out += ",";
    out += "{\"buft\":\"" + json_escape(ggml_backend_buft_name(ctx->backend_buft[i])) + "\",\"bytes\":" +
           std::to_string(ggml_backend_sched_get_buffer_size(ctx->sched.get(), ctx->backend_ptrs[i])) + "}";
  }
  out += "],\"n_splits\":" + std::to_string(ggml_backend_sched_get_n_splits(ctx->sched.get())) + "}";
  std::printf("%s\n", out.c_str());
  clip_free(ctx);
  if (res.ctx_a) clip_free(res.ctx_a);
  return 0;
}
