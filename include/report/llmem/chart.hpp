// Charts drawn with cairo, as PNG (image surface) or SVG (vector surface).
//
// A small general API, meant for every chart llmem draws: the memory timeline of `measure`, and charts such as
// memory against parameter count with measured points, labelled estimate lines and GPU capacities. A chart is
// data — series of points, annotations, reference lines — and rendering lays out axes with "nice" ticks (1, 2,
// 5 × 10^k, or decades on a log axis), a title, axis titles (say the unit in them: "time (s)", "memory (GiB)")
// and a legend.
//
//   chart::Chart c;
//   c.title = "GPU memory of python3 train.py";
//   c.x_label = "time (s)";
//   c.y_label = "memory (GiB)";
//   chart::Series used;
//   used.name = "device used";
//   used.points = {{0, 1.2}, {3, 9.8}};
//   c.series.push_back(used);
//   chart::ReferenceLine gpu;
//   gpu.value = 80;
//   gpu.label = "H100 80 GiB";
//   c.reference_lines.push_back(gpu);
//   chart::render_png(c, "memory.png");
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace llmem::chart {

struct Color {
  double r = 0, g = 0, b = 0;   // 0 .. 1
};

// The default colours, in order (Tableau 10): series without a colour take the next one.
const std::vector<Color>& palette();

struct Point {
  double x = 0;
  double y = 0;
};

enum class SeriesKind {
  kLine,      // straight segments between points
  kScatter,   // markers only
  kStep,      // horizontal then vertical: a value that holds until the next sample
};

struct Series {
  std::string name;                 // shown in the legend ("" keeps it out of the legend)
  SeriesKind kind = SeriesKind::kLine;
  std::vector<Point> points;        // drawn in the order given; non-finite points (and <= 0 on log axes) break a line
  std::optional<Color> color;
  double line_width = 2.0;          // in pixels (PNG) or points (SVG)
  double marker_radius = 4.0;       // scatter markers
  bool dashed = false;
  std::vector<std::string> point_labels;   // optional: a label beside each point (scatter), "" for none
};

// A label at a data point, with a marker and a short leader.
struct Annotation {
  double x = 0;
  double y = 0;
  std::string text;
  bool marker = true;
  std::optional<Color> color;
};

enum class Axis { kX, kY };

// A full-width (kY) or full-height (kX) line at a value, labelled at its end: a GPU's capacity, a baseline.
struct ReferenceLine {
  Axis axis = Axis::kY;
  double value = 0;
  std::string label;
  std::optional<Color> color;
  bool dashed = true;
};

enum class LegendPosition { kTopLeft, kTopRight, kBottomLeft, kBottomRight, kNone };

struct Chart {
  std::string title;
  std::string subtitle;             // a smaller second line (the command, the machine)
  std::string x_label;              // with the unit
  std::string y_label;
  bool x_log = false;               // base-10 log axes; non-positive values are skipped
  bool y_log = false;
  std::optional<double> x_min, x_max, y_min, y_max;   // otherwise from the data (y from 0 on a linear axis)
  std::vector<Series> series;
  std::vector<Annotation> annotations;
  std::vector<ReferenceLine> reference_lines;
  LegendPosition legend = LegendPosition::kTopLeft;
};

// Throw llmem::Error (kRuntime naming the path) when the file cannot be written, kInvalidInput for a chart
// with nothing to draw on a log axis. Sizes are pixels for PNG and points for SVG.
void render_png(const Chart& chart, const std::string& path, int width_px = 1200, int height_px = 700);
void render_svg(const Chart& chart, const std::string& path, int width_pt = 1200, int height_pt = 700);
// By extension: .png or .svg (kUsage otherwise).
void render(const Chart& chart, const std::string& path, int width = 1200, int height = 700);
bool is_chart_path(const std::string& path);

// Tick positions for a linear axis over [lo, hi]: about `target` ticks at 1, 2 or 5 × 10^k (exposed for tests).
std::vector<double> nice_ticks(double lo, double hi, int target = 6);
// Tick label: no trailing zeros, enough digits to tell neighbours apart ("0.25", "1.5", "2000", "1e+06").
std::string format_tick(double value, double step);

}  // namespace llmem::chart
