// Tests of plot.h (SVG charts, PNG writer, base64) and report.h (the run report): SVGs are
// checked with a tiny XML well-formedness checker, PNGs are decoded here (chunks and CRC-32
// here, the zlib stream by zlib's inflate), and reports are built from synthetic run folders that follow the
// diagnostics files' schema, plus one real tiny training run for the samples and the
// `train` hook. When /usr/bin/chromium exists, the report is also rendered headless.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "makemore/error.h"
#include "makemore/page.h"
#include "makemore/plot.h"
#include "makemore/report.h"
#include "makemore/run_record.h"
#include "test_util.h"

namespace {

using mm_test::read_file;
using mm_test::TempDir;

namespace fs = std::filesystem;
using nlohmann::json;
namespace plot = mm::plot;

// ---- helpers ----------------------------------------------------------------------------------

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << text;
}

std::size_t count(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + needle.size())) ++n;
  return n;
}

// A small XML well-formedness checker: one root, balanced and properly nested tags, quoted
// attributes without '<', known entities only. Returns "" when fine, else what is wrong.
std::string xml_error(const std::string& s) {
  std::vector<std::string> stack;
  std::size_t i = 0;
  int roots = 0;
  auto is_name = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':' || c == '.';
  };
  auto check_entities = [](const std::string& t) -> std::string {
    for (std::size_t k = t.find('&'); k != std::string::npos; k = t.find('&', k + 1)) {
      const std::size_t semi = t.find(';', k);
      if (semi == std::string::npos) return "unterminated entity";
      const std::string e = t.substr(k + 1, semi - k - 1);
      if (e != "amp" && e != "lt" && e != "gt" && e != "quot" && e != "apos" && !(e.size() > 1 && e[0] == '#'))
        return "unknown entity &" + e + ";";
    }
    return "";
  };
  while (i < s.size()) {
    if (s[i] != '<') {
      const std::size_t next = s.find('<', i);
      const std::string text = s.substr(i, next == std::string::npos ? std::string::npos : next - i);
      if (stack.empty() && text.find_first_not_of(" \t\r\n") != std::string::npos) return "text outside the root";
      if (auto e = check_entities(text); !e.empty()) return e;
      if (text.find('>') != std::string::npos) return "raw '>' in text";
      i = next == std::string::npos ? s.size() : next;
      continue;
    }
    if (s.compare(i, 5, "<?xml") == 0) {
      const std::size_t e = s.find("?>", i);
      if (e == std::string::npos) return "unterminated declaration";
      i = e + 2;
      continue;
    }
    if (s.compare(i, 4, "<!--") == 0) {
      const std::size_t e = s.find("-->", i);
      if (e == std::string::npos) return "unterminated comment";
      i = e + 3;
      continue;
    }
    const bool closing = i + 1 < s.size() && s[i + 1] == '/';
    std::size_t j = i + (closing ? 2 : 1);
    const std::size_t name_start = j;
    while (j < s.size() && is_name(s[j])) ++j;
    const std::string name = s.substr(name_start, j - name_start);
    if (name.empty()) return "empty tag name at " + std::to_string(i);
    if (closing) {
      while (j < s.size() && std::isspace(static_cast<unsigned char>(s[j]))) ++j;
      if (j >= s.size() || s[j] != '>') return "bad closing tag " + name;
      if (stack.empty() || stack.back() != name) return "mismatched </" + name + ">";
      stack.pop_back();
      i = j + 1;
      continue;
    }
    // attributes
    bool self_closing = false;
    for (;;) {
      while (j < s.size() && std::isspace(static_cast<unsigned char>(s[j]))) ++j;
      if (j >= s.size()) return "unterminated tag " + name;
      if (s[j] == '>') {
        ++j;
        break;
      }
      if (s[j] == '/' && j + 1 < s.size() && s[j + 1] == '>') {
        self_closing = true;
        j += 2;
        break;
      }
      const std::size_t a0 = j;
      while (j < s.size() && is_name(s[j])) ++j;
      if (j == a0) return "bad attribute in <" + name + ">";
      if (j >= s.size() || s[j] != '=') return "attribute without value in <" + name + ">";
      ++j;
      if (j >= s.size() || (s[j] != '"' && s[j] != '\'')) return "unquoted attribute in <" + name + ">";
      const char q = s[j];
      const std::size_t v_end = s.find(q, j + 1);
      if (v_end == std::string::npos) return "unterminated attribute value";
      const std::string v = s.substr(j + 1, v_end - j - 1);
      if (v.find('<') != std::string::npos) return "'<' in an attribute value";
      if (auto e = check_entities(v); !e.empty()) return e;
      j = v_end + 1;
    }
    if (stack.empty()) ++roots;
    if (!self_closing) stack.push_back(name);
    i = j;
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  if (roots != 1) return "expected one root element, found " + std::to_string(roots);
  return "";
}

// ---- PNG decoding (the zlib stream inflated by zlib) -------------------------------------------

uint32_t be32(const std::string& s, std::size_t p) {
  return (uint32_t(uint8_t(s[p])) << 24) | (uint32_t(uint8_t(s[p + 1])) << 16) | (uint32_t(uint8_t(s[p + 2])) << 8) |
         uint32_t(uint8_t(s[p + 3]));
}

struct DecodedPng {
  std::string error;
  int width = 0, height = 0, bit_depth = 0, color_type = -1;
  std::vector<uint8_t> pixels;
};

DecodedPng decode_png(const std::string& png) {
  DecodedPng d;
  if (png.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)) != 0) {
    d.error = "bad signature";
    return d;
  }
  std::size_t p = 8;
  std::string idat;
  bool seen_iend = false, first = true;
  while (p + 12 <= png.size()) {
    const uint32_t len = be32(png, p);
    const std::string type = png.substr(p + 4, 4);
    if (p + 12 + len > png.size()) {
      d.error = "chunk past the end";
      return d;
    }
    const uint32_t crc = be32(png, p + 8 + len);
    if (plot::crc32(reinterpret_cast<const uint8_t*>(png.data() + p + 4), len + 4) != crc) {
      d.error = "bad CRC in " + type;
      return d;
    }
    if (first && type != "IHDR") {
      d.error = "IHDR is not first";
      return d;
    }
    first = false;
    if (type == "IHDR") {
      if (len != 13) {
        d.error = "IHDR length";
        return d;
      }
      d.width = int(be32(png, p + 8));
      d.height = int(be32(png, p + 12));
      d.bit_depth = uint8_t(png[p + 16]);
      d.color_type = uint8_t(png[p + 17]);
    } else if (type == "IDAT") {
      idat += png.substr(p + 8, len);
    } else if (type == "IEND") {
      seen_iend = true;
    }
    p += 12 + len;
  }
  if (!seen_iend || p != png.size()) {
    d.error = "missing IEND or trailing bytes";
    return d;
  }
  if (idat.size() < 6) {
    d.error = "IDAT too short";
    return d;
  }
  const unsigned cmf = uint8_t(idat[0]), flg = uint8_t(idat[1]);
  if ((cmf & 0x0F) != 8 || (cmf * 256 + flg) % 31 != 0 || (flg & 0x20)) {
    d.error = "bad zlib header";
    return d;
  }
  // zlib's own inflate (an implementation independent of ours) checks the deflate stream and
  // its Adler-32; the image's size is known from IHDR.
  const std::size_t stride = std::size_t(d.width) + 1;
  std::string raw(stride * std::size_t(d.height), '\0');
  uLongf raw_len = static_cast<uLongf>(raw.size());
  if (uncompress(reinterpret_cast<Bytef*>(raw.data()), &raw_len, reinterpret_cast<const Bytef*>(idat.data()),
                 static_cast<uLong>(idat.size())) != Z_OK) {
    d.error = "zlib stream does not inflate to the image's size";
    return d;
  }
  raw.resize(raw_len);
  if (plot::adler32(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()) != be32(idat, idat.size() - 4)) {
    d.error = "bad Adler-32";
    return d;
  }
  if (d.bit_depth != 8 || d.color_type != 0 || raw.size() != stride * std::size_t(d.height)) {
    d.error = "unexpected layout";
    return d;
  }
  for (int r = 0; r < d.height; ++r) {
    if (raw[std::size_t(r) * stride] != 0) {
      d.error = "row filter is not None";
      return d;
    }
    for (int c = 0; c < d.width; ++c) d.pixels.push_back(uint8_t(raw[std::size_t(r) * stride + 1 + std::size_t(c)]));
  }
  return d;
}

// ---- a synthetic run folder with the diagnostics files' schema --------------------------------

json hist_of(const std::vector<double>& v, double lo, double hi, int bins = 50) {
  std::vector<int> c(std::size_t(bins), 0);
  for (double x : v) {
    int b = int((x - lo) / (hi - lo) * bins);
    if (b >= 0 && b < bins)
      ++c[std::size_t(b)];
    else if (x == hi)
      ++c.back();
  }
  return {{"lo", lo}, {"hi", hi}, {"counts", c}};
}

json synthetic_snapshot(int step, std::mt19937& rng, double pre_scale) {
  json layers = json::array(), params = json::array();
  std::normal_distribution<double> n01(0, 1);
  for (int t = 0; t < 3; ++t) {
    const int idx = 2 + 3 * t;  // Linear, BatchNorm1d, Tanh per block
    std::vector<double> pre, out, grad;
    for (int k = 0; k < 3200; ++k) {
      pre.push_back(n01(rng) * pre_scale * (1 + 0.3 * t));
      out.push_back(std::tanh(pre.back()));
      grad.push_back(n01(rng) * 1e-3 / (1 + t));
    }
    int sat = 0;
    for (double h : out) sat += std::abs(h) > 0.97;
    layers.push_back({{"index", idx},
                      {"type", "Tanh"},
                      {"out_mean", 0.01 * t},
                      {"out_std", 0.6 + 0.05 * t},
                      {"saturated_pct", 100.0 * sat / 3200.0},
                      {"sat99_pct", 1.5},
                      {"dead_units", t == 2 ? 1 : 0},
                      {"grad_mean", 1e-6},
                      {"grad_std", 1e-3 / (1 + t)},
                      {"hist", hist_of(out, -1, 1)},
                      {"grad_hist", hist_of(grad, -4e-3, 4e-3)},
                      {"pre", {{"mean", 0.0}, {"std", pre_scale}, {"hist", hist_of(pre, -5, 5)}}}});
    layers.push_back({{"index", idx - 1},
                      {"type", "BatchNorm1d"},
                      {"out_mean", 0.0},
                      {"out_std", 1.0},
                      {"saturated_pct", 0.0},
                      {"sat99_pct", 0.0},
                      {"dead_units", 0},
                      {"grad_mean", 0.0},
                      {"grad_std", 1e-3},
                      {"hist", hist_of(pre, -5, 5)},
                      {"grad_hist", hist_of(grad, -4e-3, 4e-3)}});
  }
  for (const auto& [name, shape] : std::vector<std::pair<std::string, std::vector<int>>>{{"C", {27, 10}},
                                                                                         {"layers.0.weight", {30, 100}},
                                                                                         {"layers.1.gamma", {100}},
                                                                                         {"layers.3.weight", {100, 100}},
                                                                                         {"layers.6.weight", {100, 100}},
                                                                                         {"layers.12.weight", {100, 27}}}) {
    std::vector<double> g;
    for (int k = 0; k < 2000; ++k) g.push_back(n01(rng) * 2e-3);
    params.push_back({{"name", name},
                      {"shape", shape},
                      {"data_std", 0.2},
                      {"grad_mean", 1e-5},
                      {"grad_std", 2e-3},
                      {"grad_data_ratio", 1e-2},
                      {"hist", hist_of(g, -8e-3, 8e-3)},
                      {"update_data_log10", -3.1}});
  }
  return {{"step", step}, {"loss", 2.3}, {"layers", layers}, {"params", params}};
}

// Writes config, result, metrics, diagnostics, inspect and update ratios (no checkpoint).
void write_synthetic_run(const fs::path& dir, int steps = 5000) {
  fs::create_directories(dir);
  write_file(
      dir / "config.json",
      json{{"name", "synthetic <test>"}, {"block_size", 3}, {"n_embd", 10}, {"train", {{"steps", steps}, {"batch_size", 32}}}}
          .dump(2));
  write_file(dir / "result.json", json{{"initial_loss", 3.31},
                                       {"expected_initial_loss", std::log(27.0)},
                                       {"train_loss", 2.07},
                                       {"val_loss", 2.11},
                                       {"test_loss", 2.12},
                                       {"steps", steps},
                                       {"seconds", 1.5},
                                       {"steps_per_sec", steps / 1.5},
                                       {"params", 12297}}
                                      .dump(2));
  std::mt19937 rng(7);
  std::normal_distribution<double> noise(0, 0.15);
  std::string metrics, ratios;
  for (int s = 0; s < steps; ++s) {
    const double loss = 2.1 + 1.2 * std::exp(-s / 300.0) + noise(rng);
    metrics += json{{"step", s}, {"loss", loss}, {"lr", s < steps / 2 ? 0.1 : 0.01}}.dump() + "\n";
    if (s % 10 == 0)
      ratios += json{{"step", s},
                     {"ratios",
                      {{"C", -2.5 - s * 1e-4},
                       {"layers.0.weight", -3.0 + 0.1 * std::sin(s / 100.0)},
                       {"layers.1.gamma", -3.5},
                       {"layers.3.weight", -3.2},
                       {"layers.6.weight", -2.2},
                       {"layers.12.weight", -2.0}}}}
                    .dump() +
                "\n";
  }
  write_file(dir / "metrics.jsonl", metrics);
  write_file(dir / "update_ratio.jsonl", ratios);
  std::string diag;
  for (int s = 0; s < steps; s += 1000) diag += synthetic_snapshot(s, rng, 1.0).dump() + "\n";
  write_file(dir / "diagnostics.jsonl", diag);
  json ins = synthetic_snapshot(0, rng, 3.0);
  ins["expected_loss"] = std::log(27.0);
  ins["initial_loss"] = 27.8;
  ins["findings"] = json::array({{{"id", "tanh-saturated"},
                                  {"layer", 2},
                                  {"message", "Tanh layer 2 is saturated: 40% of |h| > 0.97 <script>alert(1)</script>"},
                                  {"evidence", {{"saturated_pct", 40.1}}},
                                  {"fix", "scale the weights by 5/3 / sqrt(fan_in) & retry"}},
                                 {{"id", "initial-loss-high"},
                                  {"layer", nullptr},
                                  {"message", "initial loss 27.8 is far above 3.29"},
                                  {"evidence", "loss 27.8"},
                                  {"fix", "scale the last layer's weights by 0.1"}}});
  std::string bits;
  std::mt19937 brng(3);
  for (int r = 0; r < 32; ++r)
    for (int c = 0; c < 200; ++c) bits += (c % 17 == 0 || brng() % 5 == 0) ? '1' : '0';
  ins["saturation_map"] = {{"layer", 2}, {"rows", 32}, {"cols", 200}, {"bits", bits}};
  write_file(dir / "inspect.json", ins.dump());
}

const std::vector<std::string> k_all_figures = {"loss",        "tanh_outputs", "preactivations",   "saturation",
                                                "activations", "gradients",    "weight_gradients", "update_ratio"};

// ---- text and ticks ---------------------------------------------------------------------------

TEST(Plot, XmlEscape) {
  EXPECT_EQ(plot::xml_escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;");
  EXPECT_EQ(plot::xml_escape(std::string("x\x01y\x1f", 4)), "xy");  // XML 1.0 forbids them
  EXPECT_EQ(plot::xml_escape("é ü"), "é ü");                        // UTF-8 passes through
}

TEST(Plot, NiceTicks) {
  EXPECT_EQ(plot::nice_ticks(0, 1, 5), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
  const auto t = plot::nice_ticks(-3.7, 2.2, 6);
  ASSERT_GE(t.size(), 4u);
  EXPECT_EQ(t.front(), -3);
  EXPECT_EQ(t.back(), 2);
  for (double v : plot::nice_ticks(-1e-3, 1e-3, 4)) EXPECT_LE(std::abs(v), 1e-3 + 1e-12);
  EXPECT_EQ(plot::format_tick(0.6000000000000001, 0.2), "0.6");
  EXPECT_EQ(plot::format_tick(0.25, 0.25), "0.25");
  EXPECT_EQ(plot::format_tick(-0.0, 0.5), "0.0");
  EXPECT_EQ(plot::format_tick(200000, 50000), "200000");
  EXPECT_EQ(plot::format_tick(2e-5, 1e-5), "2e-05");
  EXPECT_TRUE(plot::nice_ticks(1, 0, 5).empty());
}

// ---- SVG charts -------------------------------------------------------------------------------

TEST(Plot, LineChartIsWellFormedWithLabelsAndLegend) {
  plot::LineChart c;
  c.title = "Loss & <friends>";
  c.x_label = "step";
  c.y_label = "log10(loss)";
  c.has_ref_y = true;
  c.ref_y = -3;
  c.ref_label = "reference -3";
  c.series.push_back({"train \"raw\"", {0, 1, 2, 3}, {-1, -2, NAN, -4}, 1, "", 1, ""});
  c.series.push_back({"val", {0, 1, 2, 3}, {-1.5, -2.5, -3.5, -3.7}, 2, "#123456", 0.5, ""});
  const std::string svg = plot::render_svg(c);
  EXPECT_EQ(xml_error(svg), "") << svg;
  for (const char* s :
       {">step<", ">log10(loss)<", ">Loss &amp; &lt;friends&gt;<", ">train &quot;raw&quot;<", ">val<", ">reference -3<"})
    EXPECT_NE(svg.find(s), std::string::npos) << s;
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);  // the reference line
  EXPECT_EQ(count(svg, "<path"), 3u);                          // two series and the reference
}

// stroke and stroke-dasharray ("" when solid) of each element of `tag` in the SVG, in order.
std::vector<std::string> stroke_styles(const std::string& svg, const std::string& tag) {
  std::vector<std::string> out;
  auto attr = [](const std::string& el, const std::string& name) {
    const std::size_t p = el.find(" " + name + "=\"");
    if (p == std::string::npos) return std::string();
    const std::size_t b = p + name.size() + 3;
    return el.substr(b, el.find('"', b) - b);
  };
  for (std::size_t p = svg.find("<" + tag + " "); p != std::string::npos; p = svg.find("<" + tag + " ", p + 1)) {
    const std::string el = svg.substr(p, svg.find('>', p) - p);
    out.push_back(attr(el, "stroke") + " / " + attr(el, "stroke-dasharray"));
  }
  return out;
}

TEST(Plot, SeriesBeyondThePaletteStayDistinguishable) {
  // A 12-layer residual network has 13 weight matrices: with 10 colors alone, series 1 and
  // 11 were drawn alike and the legend could not tell them apart.
  plot::LineChart c;
  const std::size_t n = 3 * plot::palette().size() + 3;
  for (std::size_t k = 0; k < n; ++k)
    c.series.push_back({"layers." + std::to_string(k) + ".weight", {0, 1}, {double(k), double(k) + 0.5}, 1.2, "", 1, ""});
  const std::string svg = plot::render_svg(c);
  EXPECT_EQ(xml_error(svg), "") << svg;
  const auto lines = stroke_styles(svg, "path");
  ASSERT_EQ(lines.size(), n);
  EXPECT_EQ(std::set<std::string>(lines.begin(), lines.end()).size(), n) << "two series share color and dashes";
  // The legend shows each series as it is drawn (the axes' tick marks are <line>s too: the
  // legend's samples are the last n).
  auto legend = stroke_styles(svg, "line");
  ASSERT_GE(legend.size(), n);
  legend.erase(legend.begin(), legend.end() - static_cast<std::ptrdiff_t>(n));
  EXPECT_EQ(legend, lines);
  // The first 10 keep the lecture's solid tab10 lines.
  EXPECT_EQ(lines[0], plot::palette()[0] + " / ");
  EXPECT_EQ(lines[9], plot::palette()[9] + " / ");
}

TEST(Plot, YFromZeroDrawsNearEqualValuesLevel) {
  // study depth's activation std per layer with a norm layer: every value ~0.63. Zoomed to
  // [0.631, 0.642] the line zigzags across the whole frame; from 0 it is level, as it is.
  plot::LineChart c;
  c.series.push_back({"batch", {1, 2, 3, 4, 5, 6}, {0.631, 0.642, 0.634, 0.640, 0.633, 0.641}, 1.5, "", 1, ""});
  auto path_height = [](const std::string& svg) {
    const std::size_t d = svg.find(" d=\"", svg.find("<path"));
    std::istringstream in(svg.substr(d + 4, svg.find('"', d + 4) - d - 4));
    double lo = 1e9, hi = -1e9, x, y;
    char op;
    while (in >> op >> x >> y) {
      lo = std::min(lo, y);
      hi = std::max(hi, y);
    }
    return hi - lo;
  };
  const double zoomed = path_height(plot::render_svg(c));
  EXPECT_GT(zoomed, 200);  // the default keeps zooming to the data (the loss curves need it)
  c.y_from_zero = true;
  const std::string svg = plot::render_svg(c);
  EXPECT_EQ(xml_error(svg), "") << svg;
  EXPECT_LT(path_height(svg), 8) << "a 2% difference should look like one";
  EXPECT_NE(svg.find("text-anchor=\"end\">0.0</text>"), std::string::npos);  // the y axis starts at 0
  EXPECT_EQ(svg.find(">-0."), std::string::npos);                            // and not below it
}

// study depth under BatchNorm: every init gives the same curve (to ~1e-6) and only the last drawn
// shows; its legend says which ones it covers. Curves that differ keep their labels.
TEST(Plot, IdenticalCurvesSayTheyCoverEachOther) {
  plot::LineChart c;
  c.series.push_back({"normal", {1, 2, 3}, {0.63, 0.64, 0.63}, 1.5, "", 1, ""});
  c.series.push_back({"small", {1, 2, 3}, {0.63, 0.64, 0.63}, 1.5, "", 1, ""});
  c.series.push_back({"kaiming", {1, 2, 3}, {0.63, 0.64, 0.635}, 1.5, "", 1, ""});            // half the range apart
  c.series.push_back({"kaiming-nogain", {1, 2, 3}, {0.63, 0.64, 0.630001}, 1.5, "", 1, ""});  // 1e-6: a 100th of a pixel
  const std::string svg = plot::render_svg(c);
  EXPECT_EQ(xml_error(svg), "") << svg;
  EXPECT_NE(svg.find(">small (drawn over normal: the same curve)<"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">kaiming-nogain (drawn over normal, small: the same curve)<"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">kaiming<"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">normal<"), std::string::npos) << svg;
}

TEST(Plot, LogYSkipsNonPositiveAndEmptyChartSaysSo) {
  plot::LineChart c;
  c.log_y = true;
  c.series.push_back({"s", {0, 1, 2}, {0, -1, 100}, 1, "", 1, ""});
  std::string svg = plot::render_svg(c);
  EXPECT_EQ(xml_error(svg), "");
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  plot::LineChart empty;
  empty.title = "nothing";
  svg = plot::render_svg(empty);
  EXPECT_EQ(xml_error(svg), "");
  EXPECT_NE(svg.find(">no data<"), std::string::npos);
}

TEST(Plot, LongSeriesAreDecimated) {
  plot::LineChart c;
  plot::Series s;
  std::mt19937 rng(1);
  std::normal_distribution<double> n(0, 1);
  for (int i = 0; i < 200000; ++i) {
    s.x.push_back(i);
    s.y.push_back(2 + 0.3 * n(rng));
  }
  c.series.push_back(s);
  const std::string svg = plot::render_svg(c);
  EXPECT_EQ(xml_error(svg), "");
  EXPECT_LT(svg.size(), 200000u);  // ~4 points per pixel column, not 200k points
}

TEST(Plot, HistogramChart) {
  plot::HistogramChart c;
  c.title = "Activation distribution";
  c.hists.push_back({"layer 2 (Tanh): mean +0.01, std 0.64, saturated 3.10%", -1, 1, {1, 5, 20, 5, 1}});
  c.hists.push_back({"layer 5 (Tanh): mean -0.02, std 0.70, saturated 4.00%", -1, 1, {2, 6, 18, 6, 2}});
  c.hists.push_back({"empty one", -1, 1, {}});
  const std::string svg = plot::render_svg(c);
  EXPECT_EQ(xml_error(svg), "") << svg;
  EXPECT_NE(svg.find(">layer 2 (Tanh): mean +0.01, std 0.64, saturated 3.10%<"), std::string::npos);
  EXPECT_NE(svg.find(">layer 5 (Tanh)"), std::string::npos);
  EXPECT_NE(svg.find(">density<"), std::string::npos);
  EXPECT_NE(svg.find(">value<"), std::string::npos);
}

TEST(Plot, BarChartWithErrorBars) {
  plot::BarChart c;
  c.title = "Final val loss";
  c.x_label = "preset";
  c.y_label = "val loss";
  c.categories = {"lecture-original", "lecture-fix-softmax", "lecture-fix-tanh", "lecture-kaiming & <bn>"};
  c.mean = {2.17, 2.13, 2.10, 2.09};
  c.stddev = {0.01, 0.02, 0.0, 0.015};
  const std::string svg = plot::render_svg(c);
  EXPECT_EQ(xml_error(svg), "") << svg;
  EXPECT_NE(svg.find(">lecture-kaiming &amp; &lt;bn&gt;<"), std::string::npos);
  EXPECT_NE(svg.find(">val loss<"), std::string::npos);
  EXPECT_NE(svg.find(">preset<"), std::string::npos);
  EXPECT_EQ(count(svg, "fill-opacity=\"0.8\""), 4u);  // four bars
  EXPECT_EQ(count(svg, "<g stroke=\"#222\""), 3u);    // error bars where std > 0
}

TEST(Plot, HeatmapCellsColorsAndColorBar) {
  plot::Heatmap h;
  h.title = "Final val loss: norm none & <friends>";
  h.x_label = "initialization";
  h.y_label = "hidden layers";
  h.value_label = "val loss";
  h.x_categories = {"normal", "kaiming"};
  h.y_categories = {"3", "10"};
  h.values = {2.0, 3.0, NAN, 2.5};
  h.cell_text = {"", "3.00 stuck", "diverged", ""};
  h.has_range = true;
  h.lo = 2.0;
  h.hi = 3.0;
  const std::string svg = plot::render_svg(h);
  EXPECT_EQ(xml_error(svg), "") << svg;
  for (const char* s : {">normal<", ">kaiming<", ">3<", ">10<", ">initialization<", ">hidden layers<", ">val loss<", ">2.00<",
                        ">3.00 stuck<", ">diverged<", ">2.50<", "&amp; &lt;friends&gt;"})
    EXPECT_NE(svg.find(s), std::string::npos) << s;
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  // The lowest value gets viridis' dark end, the highest its yellow end, no value gray.
  EXPECT_NE(svg.find("fill=\"" + plot::colormap_viridis(0) + "\" stroke=\"white\""), std::string::npos);
  EXPECT_NE(svg.find("fill=\"" + plot::colormap_viridis(1) + "\" stroke=\"white\""), std::string::npos);
  EXPECT_NE(svg.find("fill=\"#bbbbbb\""), std::string::npos);
  EXPECT_EQ(plot::colormap_viridis(0), "#440154");
  EXPECT_EQ(plot::colormap_viridis(1), "#fde725");
  EXPECT_EQ(plot::colormap_viridis(-5), "#440154");  // clamped
  EXPECT_EQ(plot::colormap_viridis(0.5), "#21908d");
  // Without a range the data's finite [min, max] is used: 2.0 dark, 3.0 yellow again.
  h.has_range = false;
  const std::string svg2 = plot::render_svg(h);
  EXPECT_EQ(xml_error(svg2), "");
  EXPECT_NE(svg2.find("fill=\"#fde725\" stroke=\"white\""), std::string::npos);
}

// ---- PNG and base64 ---------------------------------------------------------------------------

TEST(Png, Checksums) {
  const std::string s = "123456789";
  EXPECT_EQ(plot::crc32(reinterpret_cast<const uint8_t*>(s.data()), s.size()), 0xCBF43926u);
  const std::string w = "Wikipedia";
  EXPECT_EQ(plot::adler32(reinterpret_cast<const uint8_t*>(w.data()), w.size()), 0x11E60398u);
}

TEST(Png, Base64) {
  EXPECT_EQ(plot::base64_encode(""), "");
  EXPECT_EQ(plot::base64_encode("f"), "Zg==");
  EXPECT_EQ(plot::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(plot::base64_encode("foo"), "Zm9v");
  EXPECT_EQ(plot::base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(plot::base64_encode(std::string("\xff\x00\xfe", 3)), "/wD+");
}

TEST(Png, RoundTripsSmallAndMultiBlockImages) {
  for (int side : {1, 3, 300}) {
    plot::GrayImage img;
    img.width = side;
    img.height = side;
    for (int i = 0; i < side * side; ++i) img.pixels.push_back(uint8_t(i * 7 % 256));
    const DecodedPng d = decode_png(plot::encode_png(img));
    ASSERT_EQ(d.error, "") << side;
    EXPECT_EQ(d.width, side);
    EXPECT_EQ(d.height, side);
    EXPECT_EQ(d.pixels, img.pixels);
  }
  EXPECT_THROW(plot::encode_png(plot::GrayImage{2, 2, {0, 0, 0}}), std::invalid_argument);
}

TEST(Png, SaturationMapIsCompressed) {
  // The lecture's map, 32 x 200 cells at 4 x 4 pixels: 102,528 bytes of scanlines. Stored
  // uncompressed it was 100 KB of a 231 KB report; its repeated rows and runs deflate to little.
  std::string bits(32 * 200, '0');
  for (int r = 0; r < 32; ++r)
    for (int c = 0; c < 200; c += 7) bits[std::size_t(r * 200 + c)] = '1';
  const std::string png = plot::encode_png(plot::saturation_image(32, 200, bits, 4));
  EXPECT_LT(png.size(), 2000u);
  const DecodedPng d = decode_png(png);
  ASSERT_EQ(d.error, "");
  ASSERT_EQ(d.pixels.size(), 800u * 128u);
  EXPECT_EQ(d.pixels[0], 255);      // row 0, column 0: white
  EXPECT_EQ(d.pixels[4], 0);        // column 1
  EXPECT_EQ(d.pixels[7 * 4], 255);  // column 7
}

TEST(Png, SaturationImage) {
  const plot::GrayImage img = plot::saturation_image(2, 3, "100001", 4);
  ASSERT_EQ(img.width, 12);
  ASSERT_EQ(img.height, 8);
  EXPECT_EQ(img.pixels[0], 255);            // row 0, col 0: saturated -> white
  EXPECT_EQ(img.pixels[3], 255);            // same cell, scaled
  EXPECT_EQ(img.pixels[4], 0);              // row 0, col 1
  EXPECT_EQ(img.pixels[7 * 12 + 11], 255);  // row 1, col 2
  EXPECT_EQ(img.pixels[4 * 12 + 0], 0);     // row 1, col 0
  EXPECT_EQ(decode_png(plot::encode_png(img)).error, "");
  EXPECT_THROW(plot::saturation_image(2, 3, "10", 4), std::invalid_argument);
}

// ---- the report -------------------------------------------------------------------------------

TEST(Report, SyntheticRunHasEverySectionAndFigure) {
  TempDir t;
  const fs::path run = t / "run";
  write_synthetic_run(run);
  const mm::ReportResult r = mm::write_report({run.string(), "", 20, true});
  EXPECT_EQ(r.html_path, (run / "report.html").string());
  EXPECT_EQ(r.figures, k_all_figures);
  const std::string html = read_file(r.html_path);
  for (const char* id : {"id=\"results\"", "id=\"samples\"", "id=\"findings\"", "id=\"figures\"", "id=\"config\""})
    EXPECT_NE(html.find(id), std::string::npos) << id;
  for (const auto& f : k_all_figures) EXPECT_NE(html.find("id=\"fig-" + f + "\""), std::string::npos) << f;
  EXPECT_EQ(count(html, "<figure"), k_all_figures.size());
  EXPECT_EQ(count(html, "<svg"), k_all_figures.size() - 1);
  EXPECT_EQ(count(html, "src=\"data:image/png;base64,"), 1u);
  // Self-contained: nothing to fetch, no scripts; the finding's <script> arrives escaped.
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("tanh-saturated"), std::string::npos);
  EXPECT_NE(html.find("scale the last layer&#39;s weights by 0.1"), std::string::npos);
  EXPECT_NE(html.find("synthetic &lt;test&gt;"), std::string::npos);  // the config, escaped
  EXPECT_NE(html.find("2.1100"), std::string::npos);                  // val loss
  EXPECT_NE(html.find("3.2958"), std::string::npos);                  // expected initial loss
  EXPECT_NE(html.find("layer 2 (Tanh): mean"), std::string::npos);    // a legend entry
  EXPECT_NE(html.find("1e-3, the lecture"), std::string::npos);       // the -3 line's legend
  // Paths on the page are relative: the folder is the page's own, never the absolute one.
  EXPECT_EQ(html.find(fs::absolute(run).string()), std::string::npos);
  EXPECT_NE(html.find("Run folder: the folder of this page"), std::string::npos);
  // The shared page: its stylesheet and a navigation bar linking every section.
  EXPECT_NE(html.find(mm::page::stylesheet()), std::string::npos);
  for (const char* id : {"results", "samples", "findings", "figures", "config"})
    EXPECT_NE(html.find(std::string("<a href=\"#") + id + "\">"), std::string::npos) << id;
  // No checkpoint: the samples section says so instead of failing.
  EXPECT_NE(html.find("model.safetensors is missing"), std::string::npos);
  // Every figure file exists; the SVGs are well-formed standalone documents.
  for (const auto& f : k_all_figures) {
    const fs::path p = run / "figures" / (f + (f == "saturation" ? ".png" : ".svg"));
    ASSERT_TRUE(fs::is_regular_file(p)) << p;
    if (f == "saturation") {
      const DecodedPng d = decode_png(read_file(p));
      EXPECT_EQ(d.error, "");
      EXPECT_EQ(d.width, 200 * 4);
      EXPECT_EQ(d.height, 32 * 4);
    } else {
      const std::string svg = read_file(p);
      EXPECT_EQ(xml_error(svg), "") << p;
      EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
    }
  }
  // The update:data figure plots the 2-D parameters only, as the lecture does.
  const std::string ur = read_file(run / "figures" / "update_ratio.svg");
  EXPECT_NE(ur.find(">layers.3.weight<"), std::string::npos);
  EXPECT_EQ(ur.find(">layers.1.gamma<"), std::string::npos);
  // In network order, not the JSON object's alphabetical one.
  EXPECT_LT(ur.find(">layers.6.weight<"), ur.find(">layers.12.weight<"));
}

// train --eval-every N adds {"step", "val_loss"} records to metrics.jsonl among the steps'
// {"step", "loss", "lr"}: the reader keeps the two apart and the loss chart draws both.
TEST(Report, ValidationLossesAreDrawnWithTheTrainingLoss) {
  TempDir t;
  const fs::path run = t / "run";
  write_synthetic_run(run, 3000);
  std::string metrics = read_file(run / "metrics.jsonl"), mixed;
  std::istringstream lines(metrics);
  int k = 0;
  for (std::string line; std::getline(lines, line); ++k) {
    mixed += line + "\n";
    if (k % 500 == 499) mixed += json{{"step", k}, {"val_loss", 2.5 - k * 1e-4}}.dump() + "\n";
  }
  mixed += json{{"step", 3000}, {"loss", 2.2}, {"lr", 0.01}, {"val_loss", 2.19}}.dump() + "\n";  // both in one record
  write_file(run / "metrics.jsonl", mixed);
  const mm::RunRecord r = mm::read_run_record(run.string());
  ASSERT_EQ(r.losses.size(), 3001u);
  ASSERT_EQ(r.val_losses.size(), 7u);
  EXPECT_EQ(r.val_losses[0].step, 499);
  EXPECT_DOUBLE_EQ(r.val_losses[0].value, 2.5 - 499 * 1e-4);
  EXPECT_EQ(r.val_losses.back().step, 3000);
  for (const auto& l : r.losses) EXPECT_TRUE(std::isfinite(l.value)) << l.step;  // a val record is not a NaN train step
  const mm::ReportResult res = mm::write_report({run.string(), "", 20, true});
  EXPECT_EQ(res.figures, k_all_figures);
  const std::string svg = read_file(run / "figures" / "loss.svg");
  EXPECT_EQ(xml_error(svg), "") << svg;
  EXPECT_NE(svg.find(">Training and validation loss<"), std::string::npos);
  EXPECT_NE(svg.find(">log10 validation loss (whole split, eval mode)<"), std::string::npos);
  EXPECT_EQ(count(svg, "<path"), 3u);  // per step, chunk means, validation
  // Without val records the chart is the training loss alone, as before.
  write_file(run / "metrics.jsonl", metrics);
  mm::write_report({run.string(), "", 20, true});
  const std::string plain = read_file(run / "figures" / "loss.svg");
  EXPECT_NE(plain.find(">Training loss<"), std::string::npos);
  EXPECT_EQ(plain.find("validation"), std::string::npos);
  EXPECT_EQ(count(plain, "<path"), 2u);
}

TEST(Report, EverySaturatedPercentageSaysItsThreshold) {
  // The legends and the table count |h| > 0.97 (the lecture's cell 15), the saturation map
  // |h| > 0.99 (its picture): a percentage without its threshold leaves the reader guessing.
  TempDir t;
  const fs::path run = t / "run";
  write_synthetic_run(run);
  const std::string html = read_file(mm::write_report({run.string(), "", 20, true}).html_path);
  int percentages = 0;
  for (std::size_t p = html.find('>'); p != std::string::npos; p = html.find('>', p + 1)) {
    const std::string text = html.substr(p + 1, html.find('<', p) - p - 1);
    if (text.find("saturated") == std::string::npos || text.find('%') == std::string::npos) continue;
    ++percentages;
    EXPECT_TRUE(text.find("|h| &gt; 0.97") != std::string::npos || text.find("|h| &gt; 0.99") != std::string::npos) << text;
  }
  EXPECT_GE(percentages, 3 + 3 + 1 + 1);  // tanh outputs' and activations' legends, the map, the finding
  EXPECT_NE(html.find("<th>saturated (|h| &gt; 0.97)</th>"), std::string::npos);
  // The map's caption names its own threshold and the page's other one.
  const std::size_t map = html.find("id=\"fig-saturation\"");
  ASSERT_NE(map, std::string::npos);
  const std::string caption =
      html.substr(html.find("<figcaption>", map), html.find("</figcaption>", map) - html.find("<figcaption>", map));
  EXPECT_NE(caption.find("white where |h| &gt; 0.99"), std::string::npos) << caption;
  EXPECT_NE(caption.find("|h| &gt; 0.97"), std::string::npos) << caption;
}

TEST(Report, LayerTableShowsSaturationForTanhLayersOnly) {
  // Without a Tanh the table lists every layer; a ReLU's or a BatchNorm's share beyond 0.97 is
  // not saturation, and dead units are counted for Tanh layers only.
  TempDir t;
  const fs::path run = t / "run";
  write_synthetic_run(run);
  std::string diag = read_file(run / "diagnostics.jsonl");
  for (std::size_t p = diag.find("\"Tanh\""); p != std::string::npos; p = diag.find("\"Tanh\"", p))
    diag.replace(p, 6, "\"ReLU\"");
  write_file(run / "diagnostics.jsonl", diag);
  const std::string html = read_file(mm::write_report({run.string(), "", 20, true}).html_path);
  const std::size_t table = html.find("<th>saturated (");
  ASSERT_NE(table, std::string::npos);
  const std::string rows = html.substr(table, html.find("</table>", table) - table);
  EXPECT_EQ(count(rows, "<tr><td class=\"l\">layer "), 6u);  // 3 ReLU, 3 BatchNorm1d
  EXPECT_EQ(count(rows, "<td>n/a</td><td>n/a</td>"), 6u) << rows;
  EXPECT_EQ(rows.find('%'), std::string::npos) << rows;
}

TEST(Report, UpdateRatiosWithoutASnapshotAreInNumericLayerOrder) {
  // Without diagnostics.jsonl and inspect.json there is no network order to follow; the file's
  // keys are alphabetical, which put layers.12 before layers.3.
  TempDir t;
  const fs::path run = t / "run";
  write_synthetic_run(run);
  fs::remove(run / "diagnostics.jsonl");
  fs::remove(run / "inspect.json");
  mm::write_report({run.string(), "", 20, true});
  const std::string ur = read_file(run / "figures" / "update_ratio.svg");
  std::vector<std::size_t> at;
  for (const char* name :
       {">C<", ">layers.0.weight<", ">layers.1.gamma<", ">layers.3.weight<", ">layers.6.weight<", ">layers.12.weight<"}) {
    at.push_back(ur.find(name));
    ASSERT_NE(at.back(), std::string::npos) << name;
  }
  EXPECT_TRUE(std::is_sorted(at.begin(), at.end())) << ur;
}

TEST(Page, TablesEscapeAndAlignAndTheDocumentCarriesTheStylesheet) {
  mm::page::Table t({"name", "kind", "value"}, 2);
  t.add({"a<b", "x & y", "1.5"}, "stuck");
  EXPECT_EQ(t.html(),
            "<table><tr><th class=\"l\">name</th><th class=\"l\">kind</th><th>value</th></tr><tr class=\"stuck\"><td "
            "class=\"l\">a&lt;b</td><td class=\"l\">x &amp; y</td><td>1.5</td></tr></table>\n");
  mm::page::Page p("title <1>", true);
  p.section("one", "Section & one");
  p.figure_row({{"f1", "F1", "caption 1", "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>", ""},
                {"f2", "F2", "caption 2", "", std::string("\x89PNG", 4)}});
  const std::string doc = p.document();
  EXPECT_NE(doc.find("<title>title &lt;1&gt;</title>"), std::string::npos);
  EXPECT_NE(doc.find("<body class=\"wide\">"), std::string::npos);
  EXPECT_NE(doc.find("<nav><a href=\"#one\">Section &amp; one</a></nav>"), std::string::npos);
  EXPECT_NE(doc.find(mm::page::stylesheet()), std::string::npos);
  EXPECT_NE(doc.find("<div class=\"figs\">"), std::string::npos);
  EXPECT_EQ(doc.find("http://"), std::string::npos);  // the SVG's namespace goes: nothing to fetch
  EXPECT_EQ(p.figure_ids(), (std::vector<std::string>{"f1", "f2"}));
}

TEST(Report, ToleratesMissingAndTornFiles) {
  TempDir t;
  const fs::path run = t / "run";
  fs::create_directories(run);
  write_file(run / "config.json", R"({"name": "bare"})");
  write_file(run / "metrics.jsonl",
             "{\"step\":0,\"loss\":3.3,\"lr\":0.1}\n{\"step\":1,\"loss\":null,\"lr\":0.1}\n{\"step\":2,\"lo");
  write_file(run / "inspect.json", "{not json");
  // An earlier run's figures in the folder that this report does not draw go; other files stay.
  fs::create_directories(run / "figures");
  write_file(run / "figures" / "saturation.png", "old");
  write_file(run / "figures" / "activations.svg", "old");
  write_file(run / "figures" / "notes.txt", "mine");
  const mm::ReportResult r = mm::write_report({run.string(), (t / "elsewhere" / "r.html").string(), 20, true});
  EXPECT_EQ(r.figures, std::vector<std::string>{"loss"});
  EXPECT_FALSE(fs::exists(run / "figures" / "saturation.png"));
  EXPECT_FALSE(fs::exists(run / "figures" / "activations.svg"));
  EXPECT_TRUE(fs::exists(run / "figures" / "loss.svg"));
  EXPECT_TRUE(fs::exists(run / "figures" / "notes.txt"));
  const std::string html = read_file(t / "elsewhere" / "r.html");
  EXPECT_EQ(count(html, "<figure"), 1u);
  std::string all;
  for (const auto& m : r.missing) all += m + "\n";
  for (const char* s :
       {"result.json: not in the run folder", "inspect.json: not valid JSON", "diagnostics.jsonl: not in the run folder",
        "update_ratio.jsonl: not in the run folder", "metrics.jsonl: skipped 1 unreadable line", "samples: "})
    EXPECT_NE(all.find(s), std::string::npos) << s << "\n" << all;
  EXPECT_NE(html.find("id=\"missing\""), std::string::npos);
  EXPECT_NE(html.find("not drawn"), std::string::npos);
  EXPECT_THROW(mm::write_report({(t / "nope").string(), "", 20, true}), mm::Error);
  // A folder with nothing a training writes is not a run: an error, and no page written.
  fs::create_directories(t / "empty");
  EXPECT_THROW(mm::write_report({(t / "empty").string(), "", 20, true}), mm::Error);
  EXPECT_FALSE(fs::exists(t / "empty" / "report.html"));
}

// ---- a real run: samples and the train hook ---------------------------------------------------

// Runs the makemore binary through the shell; returns the exit status.
int sh(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string words_file(const TempDir& t) {
  static const char* syll[] = {"ma", "ri", "an", "el", "jo", "la", "ka", "ne", "so", "ty", "ev", "ol"};
  std::string text;
  std::mt19937 rng(5);
  for (int i = 0; i < 400; ++i) {
    const int n = 1 + int(rng() % 3);
    for (int k = 0; k < n; ++k) text += syll[rng() % 12];
    text += "\n";
  }
  const fs::path p = t / "words.txt";
  write_file(p, text);
  return p.string();
}

TEST(Report, TrainWritesTheReportWithSamplesUnlessNoReport) {
  TempDir t;
  const std::string words = words_file(t);
  const fs::path run = t / "run", bare = t / "bare";
  ASSERT_EQ(sh(std::string(MM_BINARY) + " train -q --steps 200 -i " + words + " -o " + run.string() + " > " +
               (t / "log").string() + " 2>&1"),
            0)
      << read_file(t / "log");
  ASSERT_TRUE(fs::is_regular_file(run / "report.html")) << read_file(t / "log");
  const std::string html = read_file(run / "report.html");
  const std::size_t s0 = html.find("<ol class=\"samples\">"), s1 = html.find("</ol>", s0);
  ASSERT_NE(s0, std::string::npos);
  EXPECT_EQ(count(html.substr(s0, s1 - s0), "<li>"), 20u);
  EXPECT_NE(html.find("id=\"fig-loss\""), std::string::npos);
  // With the training's diagnostics files (when train wrote them) every figure is drawn.
  if (fs::exists(run / "inspect.json") && fs::exists(run / "diagnostics.jsonl") && fs::exists(run / "update_ratio.jsonl")) {
    for (const auto& f : k_all_figures) EXPECT_NE(html.find("id=\"fig-" + f + "\""), std::string::npos) << f;
  }
  ASSERT_EQ(
      sh(std::string(MM_BINARY) + " train -q --no-report --steps 20 -i " + words + " -o " + bare.string() + " > /dev/null 2>&1"),
      0);
  EXPECT_TRUE(fs::is_regular_file(bare / "result.json"));
  EXPECT_FALSE(fs::exists(bare / "report.html"));
  // `makemore report` on the finished folder, to another file.
  ASSERT_EQ(sh(std::string(MM_BINARY) + " report -o " + bare.string() + " --html " + (t / "b.html").string() + " > " +
               (t / "rlog").string() + " 2>&1"),
            0)
      << read_file(t / "rlog");
  EXPECT_TRUE(fs::is_regular_file(t / "b.html"));
  EXPECT_NE(read_file(t / "rlog").find("b.html"), std::string::npos);
  EXPECT_NE(sh(std::string(MM_BINARY) + " report -o " + (t / "nope").string() + " > /dev/null 2>&1"), 0);

  // config.json edited after training: the report shows the checkpoint's config and says why.
  std::string cfg = read_file(bare / "config.json");
  const std::size_t at = cfg.find("\"out\": 200");
  ASSERT_NE(at, std::string::npos) << cfg;
  cfg.replace(at, 10, "\"out\": 100");
  std::ofstream(bare / "config.json", std::ios::trunc) << cfg;
  const mm::ReportResult edited = mm::write_report({bare.string(), "", 20, true});
  ASSERT_FALSE(edited.missing.empty());
  EXPECT_NE(edited.missing.front().find("config.json: differs from the config saved in model.safetensors"), std::string::npos)
      << edited.missing.front();
  const std::string page = read_file(edited.html_path);
  EXPECT_NE(page.find("&quot;out&quot;: 200"), std::string::npos);
  EXPECT_EQ(page.find("&quot;out&quot;: 100"), std::string::npos);
}

// ---- in a real browser ------------------------------------------------------------------------

TEST(Report, RendersInHeadlessChromium) {
  const char* chromium = "/usr/bin/chromium";
  if (!fs::exists(chromium))
    GTEST_SKIP() << chromium << " is not installed (MM_WITH_CHROMIUM=1 ./scripts/setup.sh installs it); "
                 << "the report's browser rendering is not checked";
  TempDir t;
  const fs::path run = t / "run";
  write_synthetic_run(run, 3000);
  mm::write_report({run.string(), "", 20, true});
  const fs::path profile = t / "profile", dom = t / "dom.html", log = t / "chromium.log";
  const std::string cmd = std::string("timeout 120 ") + chromium +
                          " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking"
                          " --disable-component-update --disable-sync --disable-dev-shm-usage --user-data-dir=" +
                          profile.string() + " --enable-logging=stderr --v=0 --dump-dom file://" +
                          (run / "report.html").string() + " > " + dom.string() + " 2> " + log.string();
  ASSERT_EQ(sh(cmd), 0) << read_file(log);
  const std::string d = read_file(dom), l = read_file(log);
  for (const auto& f : k_all_figures) EXPECT_NE(d.find("id=\"fig-" + f + "\""), std::string::npos) << f;
  EXPECT_EQ(count(d, "<svg"), k_all_figures.size() - 1);
  EXPECT_NE(d.find("data:image/png;base64,"), std::string::npos);
  // The page has no scripts, so any console message is a problem (a blocked load, a parse error).
  std::istringstream lines(l);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_EQ(line.find("CONSOLE"), std::string::npos) << line;
    EXPECT_EQ(line.find("Uncaught"), std::string::npos) << line;
  }
}

}  // namespace

// A residual network's report plots the Tanh layers inside its blocks too, named by block.
TEST(Report, PlotsTheTanhLayersInsideResidualBlocks) {
  TempDir t;
  const std::string words = words_file(t);
  const fs::path run = t / "run";
  ASSERT_EQ(sh(std::string(MM_BINARY) + " train -q --preset deep-residual-layernorm --steps 30 -i " + words + " -o " +
               run.string() + " > " + (t / "log").string() + " 2>&1"),
            0)
      << read_file(t / "log");
  const std::string html = read_file(run / "report.html");
  for (int block = 2; block <= 10; ++block)
    EXPECT_NE(html.find("layer " + std::to_string(block) + ".2 (Tanh)"), std::string::npos) << block;
  EXPECT_NE(html.find("layer 1 (Tanh)"), std::string::npos);
}
