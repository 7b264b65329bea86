// Chart rendering with cairo. One layout routine draws on any cairo surface; PNG and SVG differ only in the
// surface they hand it.
#include "llmem/chart.hpp"

#include <cairo-svg.h>
#include <cairo.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include <fmt/core.h>

#include "llmem/error.hpp"
#include "llmem/dynlib.hpp"

// fontconfig (through cairo's toy font API) keeps a few hundred bytes it never frees; LeakSanitizer builds of llmem
// would fail every run that draws a chart. This hook is read only by sanitizer runtimes.
extern "C" __attribute__((used)) const char* __lsan_default_suppressions() { return "leak:libfontconfig.so\n"; }

namespace llmem::chart {
namespace {

// cairo is loaded on first use (see util/dynlib.hpp for why).
#define LLMEM_CAIRO_FUNCTIONS(X) \
  X(cairo_arc) X(cairo_clip) X(cairo_create) X(cairo_destroy) X(cairo_fill) X(cairo_fill_preserve) \
  X(cairo_font_extents) X(cairo_image_surface_create) X(cairo_line_to) X(cairo_move_to) \
  X(cairo_new_sub_path) X(cairo_paint) X(cairo_rectangle) X(cairo_restore) X(cairo_rotate) X(cairo_save) \
  X(cairo_select_font_face) X(cairo_set_dash) X(cairo_set_font_size) X(cairo_set_line_cap) \
  X(cairo_set_line_join) X(cairo_set_line_width) X(cairo_set_source_rgb) X(cairo_set_source_rgba) \
  X(cairo_show_text) X(cairo_status) X(cairo_status_to_string) X(cairo_stroke) X(cairo_surface_destroy) \
  X(cairo_surface_finish) X(cairo_surface_flush) X(cairo_surface_status) X(cairo_surface_write_to_png) \
  X(cairo_svg_surface_create) X(cairo_text_extents) X(cairo_translate)
LLMEM_DYNLIB_API(CairoApi, LLMEM_CAIRO_FUNCTIONS)

const CairoApi& cairo() {
  static const detail::DynLib lib({"libcairo.so.2"}, "Charts", "libcairo2");
  static const CairoApi api(lib);
  return api;
}

}  // namespace

const std::vector<Color>& palette() {
  static const std::vector<Color> p = {
      {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
      {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
      {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812},
  };
  return p;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> ticks;
  if (!std::isfinite(lo) || !std::isfinite(hi) || target < 2) return ticks;
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) {
    double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  double raw = (hi - lo) / (target - 1);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  // Multiples of the step, rounded to the step's decimals so that 3 x 0.2 is 0.6, not 0.6000000000000001.
  const double scale = std::pow(10.0, std::max(0.0, -std::floor(std::log10(step)) + 1));
  const long first = static_cast<long>(std::ceil(lo / step - 1e-9));
  for (long i = first; i * step <= hi + step * 1e-9; ++i) {
    double v = std::round(i * step * scale) / scale;
    ticks.push_back(v == 0 ? 0.0 : v);
    if (ticks.size() > 100) break;
  }
  return ticks;
}

std::string format_tick(double value, double step) {
  if (value == 0) return "0";
  double a = std::fabs(value);
  if (a >= 1e7 || a < 1e-4) return fmt::format("{:g}", value);
  int decimals = 0;
  if (step > 0 && step < 1) decimals = std::min(6, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  std::string s = fmt::format("{:.{}f}", value, decimals);
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  return s;
}

bool is_chart_path(const std::string& path) {
  auto dot = path.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = path.substr(dot + 1);
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == "png" || ext == "svg";
}

namespace {

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return !(lo <= hi); }
};

// One axis: data range -> pixels, linear or log10.
struct Scale {
  bool log = false;
  double lo = 0, hi = 1;         // in data units
  double p0 = 0, p1 = 1;         // pixels for lo and hi
  std::vector<double> ticks;
  std::vector<double> minor;     // log axes: 2..9 × 10^k
  double step = 1;               // linear tick step (for labels)

  double t(double v) const { return log ? std::log10(v) : v; }
  double px(double v) const {
    double a = t(lo), b = t(hi);
    return p0 + (t(v) - a) / (b - a) * (p1 - p0);
  }
  bool valid(double v) const { return std::isfinite(v) && (!log || v > 0); }
};

void set_up_scale(Scale& s, Range r, bool log, std::optional<double> fixed_lo, std::optional<double> fixed_hi,
                  bool include_zero, bool headroom) {
  s.log = log;
  if (r.empty()) r = Range{log ? 1.0 : 0.0, log ? 10.0 : 1.0};
  double lo = fixed_lo.value_or(r.lo), hi = fixed_hi.value_or(r.hi);
  if (log) {
    if (lo <= 0) lo = hi > 0 ? hi / 10 : 1;
    if (hi <= lo) hi = lo * 10;
    double dlo = std::floor(std::log10(lo) + 1e-9), dhi = std::ceil(std::log10(hi) - 1e-9);
    if (dhi <= dlo) dhi = dlo + 1;
    if (!fixed_lo) lo = std::pow(10.0, dlo);
    if (!fixed_hi) hi = std::pow(10.0, dhi);
    for (double d = dlo; d <= dhi; d += 1) {
      double v = std::pow(10.0, d);
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) s.ticks.push_back(v);
      for (int m = 2; m <= 9; ++m) {
        double mv = m * v;
        if (mv > lo && mv < hi) s.minor.push_back(mv);
      }
    }
    // Few decades: label 2 and 5 as well, or the axis has one or two numbers.
    if (dhi - dlo <= 2) {
      for (double d = dlo; d <= dhi; d += 1)
        for (int m : {2, 5}) {
          double mv = m * std::pow(10.0, d);
          if (mv > lo && mv < hi) s.ticks.push_back(mv);
        }
      std::sort(s.ticks.begin(), s.ticks.end());
    }
    s.lo = lo;
    s.hi = hi;
    return;
  }
  if (include_zero && !fixed_lo && lo > 0) lo = 0;
  if (include_zero && !fixed_hi && hi < 0) hi = 0;
  if (headroom && !fixed_hi) hi += (hi - lo) * 0.08;
  if (hi <= lo) {
    double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  auto ticks = nice_ticks(lo, hi, 7);
  s.step = ticks.size() >= 2 ? ticks[1] - ticks[0] : (hi - lo);
  // Extend to whole steps, so the frame ends on a labelled tick.
  if (!fixed_lo) lo = std::floor(lo / s.step + 1e-9) * s.step;
  if (!fixed_hi) hi = std::ceil(hi / s.step - 1e-9) * s.step;
  s.ticks = nice_ticks(lo, hi, 7);
  if (s.ticks.size() >= 2) s.step = s.ticks[1] - s.ticks[0];
  s.lo = lo;
  s.hi = hi;
}

std::string tick_label(const Scale& s, double v) {
  if (s.log) {
    double a = std::fabs(v);
    if (a >= 1e6 || a < 1e-3) return fmt::format("{:g}", v);
    return format_tick(v, a < 1 ? a : 1);
  }
  return format_tick(v, s.step);
}

void set_color(cairo_t* cr, const Color& c, double alpha = 1.0) { cairo().cairo_set_source_rgba(cr, c.r, c.g, c.b, alpha); }

struct TextSize {
  double w = 0, h = 0;
};
TextSize measure(cairo_t* cr, const std::string& text) {
  cairo_text_extents_t e;
  cairo().cairo_text_extents(cr, text.c_str(), &e);
  return {e.x_advance, e.height};
}

void font(cairo_t* cr, double size, bool bold = false) {
  cairo().cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo().cairo_set_font_size(cr, size);
}

// Draws text with its reference point anchored: ax 0 left, 0.5 centre, 1 right; ay 0 baseline-top... 1 bottom.
void text_at(cairo_t* cr, const std::string& text, double x, double y, double ax, double ay) {
  cairo_text_extents_t e;
  cairo().cairo_text_extents(cr, text.c_str(), &e);
  cairo_font_extents_t fe;
  cairo().cairo_font_extents(cr, &fe);
  double h = fe.ascent;
  cairo().cairo_move_to(cr, x - ax * e.x_advance, y + (1 - ay) * h - ay * 0);
  cairo().cairo_show_text(cr, text.c_str());
}

// Line and step series with far more points than pixels are thinned per pixel column, keeping each column's
// first, lowest, highest and last point, so spikes survive.
std::vector<Point> thin(const std::vector<Point>& pts, const Scale& xs, double plot_w) {
  if (pts.size() < static_cast<size_t>(plot_w * 4)) return pts;
  std::vector<Point> out;
  out.reserve(static_cast<size_t>(plot_w * 4) + 8);
  size_t i = 0;
  while (i < pts.size()) {
    if (!xs.valid(pts[i].x)) {
      out.push_back(pts[i++]);
      continue;
    }
    long col = std::lround(xs.px(pts[i].x));
    size_t j = i;
    size_t imin = i, imax = i;
    while (j < pts.size() && xs.valid(pts[j].x) && std::lround(xs.px(pts[j].x)) == col) {
      if (pts[j].y < pts[imin].y) imin = j;
      if (pts[j].y > pts[imax].y) imax = j;
      ++j;
    }
    std::vector<size_t> keep = {i, imin, imax, j - 1};
    std::sort(keep.begin(), keep.end());
    keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
    for (size_t k : keep) out.push_back(pts[k]);
    i = j;
  }
  return out;
}

// Where a chart is drawn: the surface, its size, the body font size and the plot area's scales (pixels).
struct Canvas {
  cairo_t* cr;
  double width, height;
  double base;        // body font size
  Scale xs, ys;
  double px0, px1, py0, py1;  // plot area: left, right, bottom, top
};

void data_ranges(const Chart& chart, Range& xr, Range& yr) {
  for (const auto& s : chart.series)
    for (const auto& p : s.points) {
      if (std::isfinite(p.x) && std::isfinite(p.y) && (!chart.x_log || p.x > 0) && (!chart.y_log || p.y > 0)) {
        xr.add(p.x);
        yr.add(p.y);
      }
    }
  for (const auto& a : chart.annotations) {
    if (!chart.x_log || a.x > 0) xr.add(a.x);
    if (!chart.y_log || a.y > 0) yr.add(a.y);
  }
  for (const auto& r : chart.reference_lines) {
    if (r.axis == Axis::kY && (!chart.y_log || r.value > 0)) yr.add(r.value);
    if (r.axis == Axis::kX && (!chart.x_log || r.value > 0)) xr.add(r.value);
  }
}

// The plot area: room above for the titles, left for the y tick labels and title, below for the x ones.
Canvas lay_out(cairo_t* cr, const Chart& chart, double width, double height) {
  Canvas c{cr, width, height, std::clamp(height / 48.0, 9.0, 20.0), {}, {}, 0, 0, 0, 0};
  const double base = c.base;
  Range xr, yr;
  data_ranges(chart, xr, yr);
  double top = base * 1.2;
  if (!chart.title.empty()) top += base * 1.6;
  if (!chart.subtitle.empty()) top += base * 1.3;
  top += base * 0.6;
  set_up_scale(c.ys, yr, chart.y_log, chart.y_min, chart.y_max, true, true);
  set_up_scale(c.xs, xr, chart.x_log, chart.x_min, chart.x_max, false, false);

  font(cr, base * 0.9);
  double y_label_w = 0;
  for (double t : c.ys.ticks) y_label_w = std::max(y_label_w, measure(cr, tick_label(c.ys, t)).w);
  double left = base * 1.0 + (chart.y_label.empty() ? 0 : base * 1.8) + y_label_w + base * 0.6;
  double bottom = base * 0.8 + base * 1.4 + (chart.x_label.empty() ? 0 : base * 1.8);
  double right = base * 1.6;
  c.px0 = left;
  c.px1 = width - right;
  c.py0 = height - bottom;
  c.py1 = top;
  c.xs.p0 = c.px0;
  c.xs.p1 = c.px1;
  c.ys.p0 = c.py0;
  c.ys.p1 = c.py1;
  return c;
}

void draw_titles(const Canvas& c, const Chart& chart) {
  cairo_t* cr = c.cr;
  const double base = c.base, width = c.width;
  cairo().cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  double ty = base * 1.2;
  if (!chart.title.empty()) {
    // A long title shrinks to fit the width (with a margin) rather than being clipped at both edges.
    double size = base * 1.35;
    font(cr, size, true);
    const double room = width - 2 * base;
    const double w = measure(cr, chart.title).w;
    if (w > room && w > 0) font(cr, size * room / w, true);
    text_at(cr, chart.title, width / 2, ty, 0.5, 0);
    ty += base * 1.6;
  }
  if (!chart.subtitle.empty()) {
    font(cr, base * 0.95);
    cairo().cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    text_at(cr, chart.subtitle, width / 2, ty, 0.5, 0);
  }
}

void draw_grid(const Canvas& c) {
  cairo_t* cr = c.cr;
  const Scale& xs = c.xs;
  const Scale& ys = c.ys;
  const double px0 = c.px0, px1 = c.px1, py0 = c.py0, py1 = c.py1;
  cairo().cairo_set_line_width(cr, 1.0);
  cairo().cairo_set_source_rgb(cr, 0.93, 0.93, 0.93);
  for (double m : xs.minor) {
    double x = std::round(xs.px(m)) + 0.5;
    cairo().cairo_move_to(cr, x, py0);
    cairo().cairo_line_to(cr, x, py1);
  }
  for (double m : ys.minor) {
    double y = std::round(ys.px(m)) + 0.5;
    cairo().cairo_move_to(cr, px0, y);
    cairo().cairo_line_to(cr, px1, y);
  }
  cairo().cairo_stroke(cr);
  cairo().cairo_set_source_rgb(cr, 0.85, 0.85, 0.85);
  for (double t : xs.ticks) {
    double x = std::round(xs.px(t)) + 0.5;
    cairo().cairo_move_to(cr, x, py0);
    cairo().cairo_line_to(cr, x, py1);
  }
  for (double t : ys.ticks) {
    double y = std::round(ys.px(t)) + 0.5;
    cairo().cairo_move_to(cr, px0, y);
    cairo().cairo_line_to(cr, px1, y);
  }
  cairo().cairo_stroke(cr);
}

void draw_axis_labels(const Canvas& c, const Chart& chart) {
  cairo_t* cr = c.cr;
  const Scale& xs = c.xs;
  const Scale& ys = c.ys;
  const double base = c.base, height = c.height, px0 = c.px0, px1 = c.px1, py0 = c.py0, py1 = c.py1;
  cairo().cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
  font(cr, base * 0.9);
  for (double t : xs.ticks) text_at(cr, tick_label(xs, t), xs.px(t), py0 + base * 0.5, 0.5, 0);
  for (double t : ys.ticks) {
    cairo_font_extents_t fe;
    cairo().cairo_font_extents(cr, &fe);
    text_at(cr, tick_label(ys, t), px0 - base * 0.5, ys.px(t) - fe.ascent / 2, 1, 0);
  }
  font(cr, base * 1.05);
  cairo().cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  if (!chart.x_label.empty()) text_at(cr, chart.x_label, (px0 + px1) / 2, height - base * 1.9, 0.5, 0);
  if (!chart.y_label.empty()) {
    cairo().cairo_save(cr);
    cairo().cairo_translate(cr, base * 0.9, (py0 + py1) / 2);
    cairo().cairo_rotate(cr, -M_PI / 2);
    text_at(cr, chart.y_label, 0, 0, 0.5, 0);
    cairo().cairo_restore(cr);
  }
}

// Reference lines, under the data.
void draw_reference_lines(const Canvas& c, const Chart& chart) {
  cairo_t* cr = c.cr;
  const Scale& xs = c.xs;
  const Scale& ys = c.ys;
  const double base = c.base, px0 = c.px0, px1 = c.px1, py0 = c.py0, py1 = c.py1;
  for (const auto& r : chart.reference_lines) {
    Color color = r.color.value_or(Color{0.45, 0.45, 0.45});
    set_color(cr, color);
    cairo().cairo_set_line_width(cr, 1.5);
    if (r.dashed) {
      double dash[] = {6.0, 4.0};
      cairo().cairo_set_dash(cr, dash, 2, 0);
    }
    if (r.axis == Axis::kY && ys.valid(r.value)) {
      double y = ys.px(r.value);
      cairo().cairo_move_to(cr, px0, y);
      cairo().cairo_line_to(cr, px1, y);
      cairo().cairo_stroke(cr);
      cairo().cairo_set_dash(cr, nullptr, 0, 0);
      font(cr, base * 0.85);
      text_at(cr, r.label, px1 - base * 0.4, y - base * 0.35 - base * 0.85, 1, 0);
    } else if (r.axis == Axis::kX && xs.valid(r.value)) {
      double x = xs.px(r.value);
      cairo().cairo_move_to(cr, x, py0);
      cairo().cairo_line_to(cr, x, py1);
      cairo().cairo_stroke(cr);
      cairo().cairo_set_dash(cr, nullptr, 0, 0);
      font(cr, base * 0.85);
      cairo().cairo_save(cr);
      cairo().cairo_translate(cr, x - base * 0.35, py1 + base * 0.4);
      cairo().cairo_rotate(cr, -M_PI / 2);
      text_at(cr, r.label, 0, -base * 0.85, 1, 0);
      cairo().cairo_restore(cr);
    }
    cairo().cairo_set_dash(cr, nullptr, 0, 0);
  }
}

// A line or a step series, thinned to the plot's width; a point off the scale lifts the pen.
void draw_line_series(const Canvas& c, const Series& s) {
  cairo_t* cr = c.cr;
  const Scale& xs = c.xs;
  const Scale& ys = c.ys;
  std::vector<Point> pts = thin(s.points, xs, c.px1 - c.px0);
  bool pen_down = false;
  double last_y = 0;
  for (const auto& p : pts) {
    if (!xs.valid(p.x) || !ys.valid(p.y)) {
      pen_down = false;
      continue;
    }
    double x = xs.px(p.x), y = ys.px(p.y);
    if (!pen_down) {
      cairo().cairo_move_to(cr, x, y);
      pen_down = true;
    } else if (s.kind == SeriesKind::kStep) {
      cairo().cairo_line_to(cr, x, last_y);
      cairo().cairo_line_to(cr, x, y);
    } else {
      cairo().cairo_line_to(cr, x, y);
    }
    last_y = y;
  }
  cairo().cairo_stroke(cr);
}

void draw_series(const Canvas& c, const Chart& chart, const std::vector<Color>& series_colors) {
  cairo_t* cr = c.cr;
  const Scale& xs = c.xs;
  const Scale& ys = c.ys;
  cairo().cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  cairo().cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  for (size_t si = 0; si < chart.series.size(); ++si) {
    const Series& s = chart.series[si];
    const Color color = series_colors[si];
    set_color(cr, color);
    cairo().cairo_set_line_width(cr, s.line_width);
    if (s.dashed) {
      double dash[] = {s.line_width * 4, s.line_width * 3};
      cairo().cairo_set_dash(cr, dash, 2, 0);
    }
    if (s.kind == SeriesKind::kScatter) {
      for (size_t i = 0; i < s.points.size(); ++i) {
        const Point& p = s.points[i];
        if (!xs.valid(p.x) || !ys.valid(p.y)) continue;
        cairo().cairo_new_sub_path(cr);
        cairo().cairo_arc(cr, xs.px(p.x), ys.px(p.y), s.marker_radius, 0, 2 * M_PI);
      }
      set_color(cr, color, 0.85);
      cairo().cairo_fill_preserve(cr);
      cairo().cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
      cairo().cairo_set_line_width(cr, 1.0);
      cairo().cairo_stroke(cr);
    } else {
      draw_line_series(c, s);
    }
    cairo().cairo_set_dash(cr, nullptr, 0, 0);
  }
}

// Point labels above every series, so that no later line hides them.
void draw_point_labels(const Canvas& c, const Chart& chart, const std::vector<Color>& series_colors) {
  cairo_t* cr = c.cr;
  const Scale& xs = c.xs;
  const Scale& ys = c.ys;
  const double base = c.base;
  for (size_t si = 0; si < chart.series.size(); ++si) {
    const Series& s = chart.series[si];
    const Color color = series_colors[si];
    if (s.kind != SeriesKind::kScatter) continue;
    font(cr, base * 0.8);
    set_color(cr, color);
    for (size_t i = 0; i < s.points.size() && i < s.point_labels.size(); ++i) {
      const Point& p = s.points[i];
      if (s.point_labels[i].empty() || !xs.valid(p.x) || !ys.valid(p.y)) continue;
      // On a white patch, so that a label stays readable over lines and grid.
      double lx = xs.px(p.x) + s.marker_radius + base * 0.3, ly = ys.px(p.y) - base * 0.45;
      TextSize ts = measure(cr, s.point_labels[i]);
      cairo().cairo_set_source_rgba(cr, 1, 1, 1, 0.8);
      cairo().cairo_rectangle(cr, lx - 2, ly - 2, ts.w + 4, base * 0.8 + 5);
      cairo().cairo_fill(cr);
      set_color(cr, color);
      text_at(cr, s.point_labels[i], lx, ly, 0, 0);
    }
  }
}

// Annotations on top.
void draw_annotations(const Canvas& c, const Chart& chart) {
  cairo_t* cr = c.cr;
  const Scale& xs = c.xs;
  const Scale& ys = c.ys;
  const double base = c.base, px1 = c.px1, py1 = c.py1;
  for (const auto& a : chart.annotations) {
    if (!xs.valid(a.x) || !ys.valid(a.y)) continue;
    Color color = a.color.value_or(Color{0.15, 0.15, 0.15});
    double x = xs.px(a.x), y = ys.px(a.y);
    if (a.marker) {
      set_color(cr, color);
      cairo().cairo_arc(cr, x, y, base * 0.32, 0, 2 * M_PI);
      cairo().cairo_fill(cr);
    }
    font(cr, base * 0.9, true);
    TextSize ts = measure(cr, a.text);
    // Beside the point, flipped to the left near the right edge and below near the top.
    bool flip_x = x + base + ts.w > px1 - base * 0.3;
    bool flip_y = y - base * 1.6 < py1;
    double tx = flip_x ? x - base * 0.7 : x + base * 0.7;
    double tyy = flip_y ? y + base * 0.7 : y - base * 0.7 - base * 0.9;
    cairo().cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo().cairo_rectangle(cr, (flip_x ? tx - ts.w : tx) - 3, tyy - 3, ts.w + 6, base * 0.9 + 8);
    cairo().cairo_fill(cr);
    set_color(cr, color);
    text_at(cr, a.text, tx, tyy, flip_x ? 1 : 0, 0);
  }
}

void draw_legend(const Canvas& c, const Chart& chart, const std::vector<Color>& series_colors) {
  cairo_t* cr = c.cr;
  const double base = c.base, px0 = c.px0, px1 = c.px1, py0 = c.py0, py1 = c.py1;
  std::vector<size_t> entries;
  for (size_t i = 0; i < chart.series.size(); ++i)
    if (!chart.series[i].name.empty()) entries.push_back(i);
  if (chart.legend != LegendPosition::kNone && !entries.empty()) {
    font(cr, base * 0.9);
    double swatch = base * 2.0, row_h = base * 1.45, pad = base * 0.6;
    double text_w = 0;
    for (size_t i : entries) text_w = std::max(text_w, measure(cr, chart.series[i].name).w);
    double box_w = pad * 2 + swatch + base * 0.5 + text_w, box_h = pad * 2 + row_h * entries.size() - base * 0.3;
    bool at_right = chart.legend == LegendPosition::kTopRight || chart.legend == LegendPosition::kBottomRight;
    bool at_bottom = chart.legend == LegendPosition::kBottomLeft || chart.legend == LegendPosition::kBottomRight;
    double bx = at_right ? px1 - base * 0.6 - box_w : px0 + base * 0.6;
    double by = at_bottom ? py0 - base * 0.6 - box_h : py1 + base * 0.6;
    cairo().cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
    cairo().cairo_rectangle(cr, bx, by, box_w, box_h);
    cairo().cairo_fill_preserve(cr);
    cairo().cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
    cairo().cairo_set_line_width(cr, 1.0);
    cairo().cairo_stroke(cr);
    double ry = by + pad + row_h * 0.5 - base * 0.15;
    for (size_t i : entries) {
      const Series& s = chart.series[i];
      set_color(cr, series_colors[i]);
      double sx = bx + pad;
      if (s.kind == SeriesKind::kScatter) {
        cairo().cairo_arc(cr, sx + swatch / 2, ry, s.marker_radius, 0, 2 * M_PI);
        cairo().cairo_fill(cr);
      } else {
        cairo().cairo_set_line_width(cr, s.line_width);
        if (s.dashed) {
          double dash[] = {s.line_width * 3, s.line_width * 2};
          cairo().cairo_set_dash(cr, dash, 2, 0);
        }
        cairo().cairo_move_to(cr, sx, ry);
        cairo().cairo_line_to(cr, sx + swatch, ry);
        cairo().cairo_stroke(cr);
        cairo().cairo_set_dash(cr, nullptr, 0, 0);
      }
      cairo().cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
      cairo_font_extents_t fe;
      cairo().cairo_font_extents(cr, &fe);
      // Baseline so that the middle of capital letters (about 0.36 em above it) lines up with the swatch.
      text_at(cr, s.name, sx + swatch + base * 0.5, ry + base * 0.9 * 0.36 - fe.ascent, 0, 0);
      ry += row_h;
    }
  }
}

void draw(cairo_t* cr, const Chart& chart, double width, double height) {
  cairo().cairo_set_source_rgb(cr, 1, 1, 1);
  cairo().cairo_paint(cr);
  const Canvas c = lay_out(cr, chart, width, height);
  draw_titles(c, chart);
  draw_grid(c);
  draw_axis_labels(c, chart);

  // ---- clipped plot area ----
  cairo().cairo_save(cr);
  cairo().cairo_rectangle(cr, c.px0, c.py1, c.px1 - c.px0, c.py0 - c.py1);
  cairo().cairo_clip(cr);
  size_t color_index = 0;
  std::vector<Color> series_colors;
  for (const auto& s : chart.series) series_colors.push_back(s.color ? *s.color : palette()[color_index++ % palette().size()]);
  draw_reference_lines(c, chart);
  draw_series(c, chart, series_colors);
  draw_point_labels(c, chart, series_colors);
  draw_annotations(c, chart);
  cairo().cairo_restore(cr);

  // ---- frame ----
  cairo().cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
  cairo().cairo_set_line_width(cr, 1.0);
  cairo().cairo_rectangle(cr, std::round(c.px0) + 0.5, std::round(c.py1) + 0.5, std::round(c.px1 - c.px0), std::round(c.py0 - c.py1));
  cairo().cairo_stroke(cr);

  draw_legend(c, chart, series_colors);
}

void check_drawable(const Chart& chart) {
  if (chart.series.empty() && chart.annotations.empty() && chart.reference_lines.empty())
    throw Error(ErrorKind::kInvalidInput, "", "chart has nothing to draw");
}

void finish(cairo_surface_t* surface, cairo_t* cr, const std::string& path) {
  cairo_status_t st = cairo().cairo_status(cr);
  cairo().cairo_destroy(cr);
  cairo().cairo_surface_flush(surface);
  if (st != CAIRO_STATUS_SUCCESS) {
    cairo().cairo_surface_destroy(surface);
    throw Error(ErrorKind::kRuntime, path, fmt::format("cannot draw the chart: {}", cairo().cairo_status_to_string(st)));
  }
}

}  // namespace

void render_png(const Chart& chart, const std::string& path, int width_px, int height_px) {
  check_drawable(chart);
  cairo_surface_t* surface = cairo().cairo_image_surface_create(CAIRO_FORMAT_ARGB32, width_px, height_px);
  cairo_t* cr = cairo().cairo_create(surface);
  draw(cr, chart, width_px, height_px);
  finish(surface, cr, path);
  cairo_status_t st = cairo().cairo_surface_write_to_png(surface, path.c_str());
  cairo().cairo_surface_destroy(surface);
  if (st != CAIRO_STATUS_SUCCESS)
    throw Error(ErrorKind::kRuntime, path, fmt::format("cannot write the PNG: {}", cairo().cairo_status_to_string(st)));
}

void render_svg(const Chart& chart, const std::string& path, int width_pt, int height_pt) {
  check_drawable(chart);
  cairo_surface_t* surface = cairo().cairo_svg_surface_create(path.c_str(), width_pt, height_pt);
  if (cairo().cairo_surface_status(surface) != CAIRO_STATUS_SUCCESS) {
    auto st = cairo().cairo_surface_status(surface);
    cairo().cairo_surface_destroy(surface);
    throw Error(ErrorKind::kRuntime, path, fmt::format("cannot write the SVG: {}", cairo().cairo_status_to_string(st)));
  }
  cairo_t* cr = cairo().cairo_create(surface);
  draw(cr, chart, width_pt, height_pt);
  finish(surface, cr, path);
  cairo().cairo_surface_finish(surface);
  cairo_status_t st = cairo().cairo_surface_status(surface);
  cairo().cairo_surface_destroy(surface);
  if (st != CAIRO_STATUS_SUCCESS)
    throw Error(ErrorKind::kRuntime, path, fmt::format("cannot write the SVG: {}", cairo().cairo_status_to_string(st)));
}

void render(const Chart& chart, const std::string& path, int width, int height) {
  auto dot = path.rfind('.');
  std::string ext = dot == std::string::npos ? "" : path.substr(dot + 1);
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == "png") return render_png(chart, path, width, height);
  if (ext == "svg") return render_svg(chart, path, width, height);
  throw Error(ErrorKind::kUsage, path, "a chart file ends in .png or .svg");
}

}  // namespace llmem::chart
