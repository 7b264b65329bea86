// The cairo chart API: ticks, labels, PNG and SVG output.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "llmem/chart.hpp"
#include "llmem/error.hpp"

namespace {

using namespace llmem::chart;

std::string tmp_path(const std::string& name) {
  const char* base = std::getenv("LLMEM_TEST_TMP");
  std::string dir = std::string(base && *base ? base : "/tmp") + "/chart-tests";
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

uint32_t be32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) |
         (uint32_t(uint8_t(s[at + 2])) << 8) | uint32_t(uint8_t(s[at + 3]));
}

// Memory against parameters: measured points, labelled estimate lines, GPU capacities, log x axis — the kind
// of chart the estimate report draws with this API.
Chart memory_vs_params() {
  Chart c;
  c.title = "GPU memory to load a model (fp16)";
  c.subtitle = "points: measured on an H100; lines: estimates";
  c.x_label = "parameters (billions)";
  c.y_label = "memory (GiB)";
  c.x_log = true;
  Series measured;
  measured.name = "measured";
  measured.kind = SeriesKind::kScatter;
  measured.points = {{0.5, 1.6}, {1.1, 2.9}, {7.2, 14.8}, {13, 26.3}};
  measured.point_labels = {"Qwen2.5-0.5B", "TinyLlama", "Mistral-7B", ""};
  Series est;
  est.name = "estimate: 2 bytes/param + 0.6 GiB";
  for (double p = 0.3; p <= 40; p *= 1.3) est.points.push_back({p, p * 2 * 1e9 / (1 << 30) + 0.6});
  Series step;
  step.name = "stepped";
  step.kind = SeriesKind::kStep;
  step.dashed = true;
  step.points = {{0.4, 4}, {2, 8}, {10, 16}};
  c.series = {measured, est, step};
  ReferenceLine h100;
  h100.value = 79.6;
  h100.label = "H100 80 GB";
  c.reference_lines.push_back(h100);
  Annotation a;
  a.x = 7.2;
  a.y = 14.8;
  a.text = "7B fits in 16 GiB";
  c.annotations.push_back(a);
  c.legend = LegendPosition::kTopLeft;
  return c;
}

TEST(ChartTicks, NiceSteps) {
  EXPECT_EQ(nice_ticks(0, 1, 6), (std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1.0}));
  auto t = nice_ticks(0, 97, 6);
  ASSERT_GE(t.size(), 4u);
  EXPECT_EQ(t[0], 0);
  EXPECT_EQ(t[1], 20);
  auto neg = nice_ticks(-3, 3, 7);
  EXPECT_EQ(neg, (std::vector<double>{-3, -2, -1, 0, 1, 2, 3}));
  EXPECT_FALSE(nice_ticks(5, 5, 6).empty());   // a flat series still gets an axis
  EXPECT_TRUE(nice_ticks(NAN, 1, 6).empty());
}

TEST(ChartTicks, Labels) {
  EXPECT_EQ(format_tick(0, 0.2), "0");
  EXPECT_EQ(format_tick(0.4, 0.2), "0.4");
  EXPECT_EQ(format_tick(0.25, 0.05), "0.25");
  EXPECT_EQ(format_tick(2000, 500), "2000");
  EXPECT_EQ(format_tick(1.5, 0.5), "1.5");
  EXPECT_EQ(format_tick(1e9, 1e8), "1e+09");
}

TEST(ChartRender, PngHasTheAskedSize) {
  std::string path = tmp_path("memory_vs_params.png");
  render_png(memory_vs_params(), path, 900, 500);
  std::string png = read_bytes(path);
  ASSERT_GT(png.size(), 24u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(be32(png, 16), 900u);   // IHDR width
  EXPECT_EQ(be32(png, 20), 500u);   // IHDR height
}

TEST(ChartRender, SvgIsAnSvgDocument) {
  std::string path = tmp_path("memory_vs_params.svg");
  render(memory_vs_params(), path, 800, 450);
  std::string svg = read_bytes(path);
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("width=\"800"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

TEST(ChartRender, LinearAxesManyPointsAndNonFiniteValues) {
  Chart c;
  c.title = "timeline";
  c.x_label = "time (s)";
  c.y_label = "memory (GiB)";
  Series s;
  s.name = "used";
  s.kind = SeriesKind::kStep;
  for (int i = 0; i < 200000; ++i) s.points.push_back({i * 0.005, (i % 5000 == 0) ? 12.0 : 3.0 + i * 1e-5});
  s.points.push_back({NAN, 1});
  c.series.push_back(s);
  EXPECT_NO_THROW(render_png(c, tmp_path("many.png"), 1000, 500));
}

TEST(ChartRender, Errors) {
  Chart empty;
  EXPECT_THROW(render_png(empty, tmp_path("empty.png")), llmem::Error);
  try {
    render_png(memory_vs_params(), "/nonexistent/dir/x.png");
    FAIL();
  } catch (const llmem::Error& e) {
    EXPECT_EQ(e.kind(), llmem::ErrorKind::kRuntime);
  }
  try {
    render(memory_vs_params(), tmp_path("x.bmp"));
    FAIL();
  } catch (const llmem::Error& e) {
    EXPECT_EQ(e.kind(), llmem::ErrorKind::kUsage);
  }
  EXPECT_TRUE(is_chart_path("a.PNG"));
  EXPECT_FALSE(is_chart_path("a.csv"));
}

}  // namespace
