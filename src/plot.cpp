// SVG charts, the PNG writer and base64 (see plot.h). Text sizes are estimated from the
// character count (no font metrics without a renderer), generously, so labels do not collide.
#include "makemore/plot.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace mm::plot {

namespace {

constexpr double kCharW = 7.0;     // estimated width of one 12px sans-serif character
constexpr double kLegendRow = 18;  // height of one legend line
constexpr double kTitleH = 30;
constexpr const char* kRefDash = "6 4";  // the reference line's dashes

std::string num(double v) {
  // One decimal is sub-pixel precise enough and keeps long polylines small.
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  std::string s = buf;
  if (s == "-0.0") s = "0.0";
  return s;
}

bool finite(double v) { return std::isfinite(v); }

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!finite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return !(lo <= hi); }
  // Makes the range drawable: a single value gets a unit window, and a margin is added.
  void finish(double pad_frac) {
    if (empty()) {
      lo = 0;
      hi = 1;
      return;
    }
    if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
      const double d = std::abs(lo) > 0 ? std::abs(lo) * 0.5 : 0.5;
      lo -= d;
      hi += d;
      return;
    }
    const double p = (hi - lo) * pad_frac;
    lo -= p;
    hi += p;
  }
};

// The plot area in pixels and the data window it shows.
struct Frame {
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;            // data
  double left = 0, right = 0, top = 0, bottom = 0;  // pixels; top < bottom
  double sx(double x) const { return left + (x - x0) / (x1 - x0) * (right - left); }
  double sy(double y) const { return bottom - (y - y0) / (y1 - y0) * (bottom - top); }
};

struct LegendEntry {
  std::string label, color;
  double width;
  std::string dash;  // stroke-dasharray; empty: solid
};

// Legend entries sit below the x-axis label in a grid of equal columns (as wide as the
// longest entry), filled row by row; one column when the labels are long.
struct LegendGrid {
  double col_w = 0;
  std::size_t cols = 1, rows = 0;
};

LegendGrid legend_grid(const std::vector<LegendEntry>& entries, double width) {
  LegendGrid g;
  if (entries.empty()) return g;
  for (const auto& e : entries) g.col_w = std::max(g.col_w, 34 + kCharW * static_cast<double>(e.label.size()) + 18);
  g.cols = std::max<std::size_t>(1, static_cast<std::size_t>((width - 32) / g.col_w));
  g.cols = std::min(g.cols, entries.size());
  g.rows = (entries.size() + g.cols - 1) / g.cols;
  return g;
}

double legend_height(const std::vector<LegendEntry>& entries, double width) {
  const LegendGrid g = legend_grid(entries, width);
  return g.rows == 0 ? 0 : static_cast<double>(g.rows) * kLegendRow + 8;
}

void draw_legend(std::string& o, const std::vector<LegendEntry>& entries, double y_top, double width) {
  const LegendGrid g = legend_grid(entries, width);
  for (std::size_t k = 0; k < entries.size(); ++k) {
    const auto& e = entries[k];
    const double lx = 16 + static_cast<double>(k % g.cols) * g.col_w;
    const double y = y_top + kLegendRow / 2 + 4 + static_cast<double>(k / g.cols) * kLegendRow;
    o += "<line x1=\"" + num(lx) + "\" y1=\"" + num(y) + "\" x2=\"" + num(lx + 26) + "\" y2=\"" + num(y) + "\" stroke=\"" +
         xml_escape(e.color) + "\" stroke-width=\"" + num(std::min(e.width + 1, 4.0)) + "\"" +
         (e.dash.empty() ? "" : " stroke-dasharray=\"" + e.dash + "\"") + "/>";
    o += "<text x=\"" + num(lx + 32) + "\" y=\"" + num(y + 4) + "\">" + xml_escape(e.label) + "</text>";
  }
}

std::string svg_open(double w, double h, const std::string& title) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(w) + "\" height=\"" + num(h) + "\" viewBox=\"0 0 " + num(w) +
         " " + num(h) +
         "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"" +
         xml_escape(title) + "\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/>";
}

// Title, grid, ticks, tick labels and axis labels around the frame.
void draw_axes(std::string& o, const Frame& f, const std::vector<double>& xt, double xstep, const std::vector<double>& yt,
               double ystep, const std::string& title, const std::string& x_label, const std::string& y_label, double total_w) {
  if (!title.empty())
    o += "<text x=\"" + num(total_w / 2) + "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">" +
         xml_escape(title) + "</text>";
  o += "<g stroke=\"#e4e4e4\" stroke-width=\"1\">";
  for (double y : yt)
    o += "<line x1=\"" + num(f.left) + "\" y1=\"" + num(f.sy(y)) + "\" x2=\"" + num(f.right) + "\" y2=\"" + num(f.sy(y)) + "\"/>";
  for (double x : xt)
    o += "<line x1=\"" + num(f.sx(x)) + "\" y1=\"" + num(f.top) + "\" x2=\"" + num(f.sx(x)) + "\" y2=\"" + num(f.bottom) + "\"/>";
  o += "</g>";
  o += "<rect x=\"" + num(f.left) + "\" y=\"" + num(f.top) + "\" width=\"" + num(f.right - f.left) + "\" height=\"" +
       num(f.bottom - f.top) + "\" fill=\"none\" stroke=\"#333\" stroke-width=\"1\"/>";
  o += "<g fill=\"#333\">";
  for (double y : yt) {
    o += "<line x1=\"" + num(f.left - 4) + "\" y1=\"" + num(f.sy(y)) + "\" x2=\"" + num(f.left) + "\" y2=\"" + num(f.sy(y)) +
         "\" stroke=\"#333\"/>";
    o += "<text x=\"" + num(f.left - 7) + "\" y=\"" + num(f.sy(y) + 4) + "\" text-anchor=\"end\">" +
         xml_escape(format_tick(y, ystep)) + "</text>";
  }
  for (double x : xt) {
    o += "<line x1=\"" + num(f.sx(x)) + "\" y1=\"" + num(f.bottom) + "\" x2=\"" + num(f.sx(x)) + "\" y2=\"" + num(f.bottom + 4) +
         "\" stroke=\"#333\"/>";
    o += "<text x=\"" + num(f.sx(x)) + "\" y=\"" + num(f.bottom + 18) + "\" text-anchor=\"middle\">" +
         xml_escape(format_tick(x, xstep)) + "</text>";
  }
  o += "</g>";
  if (!x_label.empty())
    o += "<text x=\"" + num((f.left + f.right) / 2) + "\" y=\"" + num(f.bottom + 38) + "\" text-anchor=\"middle\">" +
         xml_escape(x_label) + "</text>";
  if (!y_label.empty())
    o += "<text transform=\"translate(16," + num((f.top + f.bottom) / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
         xml_escape(y_label) + "</text>";
}

double tick_step(const std::vector<double>& t) { return t.size() >= 2 ? t[1] - t[0] : 1.0; }

// Room for the widest y tick label, plus the rotated y-axis label.
double left_margin(const std::vector<double>& yt, double ystep) {
  std::size_t w = 1;
  for (double y : yt) w = std::max(w, format_tick(y, ystep).size());
  return 34 + kCharW * static_cast<double>(w);
}

// Appends a path through the points, starting a new subpath after each non-finite point.
void draw_polyline(std::string& o, const Frame& f, const std::vector<double>& x, const std::vector<double>& y,
                   const std::string& color, double width, double opacity, const std::string& dash) {
  std::string d;
  bool pen_down = false;
  const std::size_t n = std::min(x.size(), y.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (!finite(x[i]) || !finite(y[i])) {
      pen_down = false;
      continue;
    }
    d += pen_down ? "L" : "M";
    d += num(f.sx(x[i])) + " " + num(f.sy(y[i]));
    pen_down = true;
  }
  if (d.empty()) return;
  o += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + xml_escape(color) + "\" stroke-width=\"" + num(width) +
       "\" stroke-linejoin=\"round\"";
  if (opacity < 1) o += " stroke-opacity=\"" + num(opacity) + "\"";
  if (!dash.empty()) o += " stroke-dasharray=\"" + dash + "\"";
  o += "/>";
}

// Keeps, per pixel column, the first, min, max and last point (in order), so the drawn
// envelope is unchanged; non-finite points are kept as line breaks.
void decimate(std::vector<double>& x, std::vector<double>& y, const Frame& f, std::size_t max_points) {
  if (x.size() <= max_points) return;
  std::vector<double> ox, oy;
  std::size_t i = 0;
  const std::size_t n = x.size();
  while (i < n) {
    if (!finite(x[i]) || !finite(y[i])) {
      ox.push_back(x[i]);
      oy.push_back(y[i]);
      ++i;
      continue;
    }
    const long col = std::lround(f.sx(x[i]));
    std::size_t j = i, imin = i, imax = i;
    while (j < n && finite(x[j]) && finite(y[j]) && std::lround(f.sx(x[j])) == col) {
      if (y[j] < y[imin]) imin = j;
      if (y[j] > y[imax]) imax = j;
      ++j;
    }
    std::array<std::size_t, 4> keep{i, std::min(imin, imax), std::max(imin, imax), j - 1};
    std::size_t last = n;
    for (std::size_t k : keep) {
      if (k == last) continue;
      ox.push_back(x[k]);
      oy.push_back(y[k]);
      last = k;
    }
    i = j;
  }
  x.swap(ox);
  y.swap(oy);
}

}  // namespace

const std::vector<std::string>& palette() {
  static const std::vector<std::string> p{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  return p;
}

LineStyle series_style(std::size_t i) {
  // One dash pattern per pass through the palette; each unlike the reference line's "6 4"
  // and unlike each other even in a legend's 26-pixel sample.
  static const std::array<const char*, 4> dashes{"", "9 3", "2 2.5", "9 3 2 3"};
  const std::size_t n = palette().size();
  return {palette()[i % n], dashes[(i / n) % dashes.size()]};
}

std::string xml_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      case '\'':
        o += "&#39;";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') break;
        o += c;
    }
  }
  return o;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> t;
  if (!finite(lo) || !finite(hi) || hi < lo) return t;
  if (hi == lo) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const double first = std::ceil(lo / step - 1e-9);
  for (double k = first;; k += 1) {
    double v = k * step;
    if (v > hi + step * 1e-9) break;
    if (std::abs(v) < step * 1e-9) v = 0;  // no "-0.000" or 1e-17 at the origin
    t.push_back(v);
    if (t.size() > 1000) break;
  }
  return t;
}

std::string format_tick(double v, double step) {
  char buf[48];
  const double a = std::max(std::abs(v), std::abs(step));
  if (a >= 1e6 || (step > 0 && step < 1e-4)) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  } else {
    int decimals = 0;
    if (step > 0 && step < 1) decimals = static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
    // 0.25-style steps need one more decimal than their magnitude says.
    const double scaled = step * std::pow(10.0, decimals);
    if (std::abs(scaled - std::round(scaled)) > 1e-6) ++decimals;
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  }
  std::string s = buf;
  if (s.size() > 1 && s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}

namespace {
// The same x and y values no more than y_tol apart: curves that lie on one another.
bool same_curve(const Series& a, const Series& b, double y_tol) {
  if (a.x.size() != b.x.size() || a.y.size() != b.y.size()) return false;
  const auto near = [](double u, double v, double tol) {
    if (!finite(u) || !finite(v)) return !finite(u) && !finite(v);
    return std::abs(u - v) <= tol;
  };
  for (std::size_t i = 0; i < a.x.size(); ++i)
    if (!near(a.x[i], b.x[i], 1e-9 * std::max(std::abs(a.x[i]), 1.0))) return false;
  for (std::size_t i = 0; i < a.y.size(); ++i)
    if (!near(a.y[i], b.y[i], y_tol)) return false;
  return true;
}
}  // namespace

namespace {

// The data window of a line chart over its (already transformed) series; no_data when no
// point is finite.
void line_ranges(const LineChart& chart, const std::vector<Series>& ser, Range& xr, Range& yr, bool& no_data) {
  for (const auto& s : ser)
    for (std::size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      if (finite(s.x[i]) && finite(s.y[i])) {
        xr.add(s.x[i]);
        yr.add(s.y[i]);
      }
  if (chart.has_ref_y) yr.add(chart.ref_y);
  no_data = xr.empty();
  if (chart.has_x_range && chart.x_max > chart.x_min) {
    xr.lo = chart.x_min;
    xr.hi = chart.x_max;
  } else {
    xr.finish(0.0);
    // A run of 4999 steps should end at the 5000 tick, not just short of it.
    const auto t = nice_ticks(xr.lo, xr.hi, std::max(3, chart.width / 110));
    const double step = tick_step(t), span = xr.hi - xr.lo;
    const double up = std::ceil(xr.hi / step - 1e-9) * step, down = std::floor(xr.lo / step + 1e-9) * step;
    if (up - xr.hi <= 0.05 * span) xr.hi = up;
    if (xr.lo - down <= 0.05 * span) xr.lo = down;
  }
  const bool from_zero = chart.y_from_zero && !chart.log_y && !yr.empty();
  const bool nonneg = from_zero && yr.lo >= 0;
  if (from_zero) yr.add(0);
  yr.finish(0.05);
  if (nonneg) yr.lo = 0;  // no margin below a floor of 0
}

// Each series' look, and the legend. Curves that agree to a fraction of a pixel (study depth's
// inits under BatchNorm) lie on top of each other and only the last one drawn shows: its
// legend entry names the ones it covers.
std::vector<LegendEntry> line_legend(const LineChart& chart, const std::vector<Series>& ser, const Range& yr,
                                     std::vector<LineStyle>& styles) {
  const double y_tol = (yr.hi - yr.lo) / std::max(chart.height, 1) / 4;
  std::vector<LegendEntry> legend;
  std::size_t style_i = 0;
  for (std::size_t i = 0; i < ser.size(); ++i) {
    const auto& s = ser[i];
    styles.push_back(s.color.empty() ? series_style(style_i++) : LineStyle{s.color, s.dash});
    if (s.label.empty()) continue;
    std::string label = s.label, covered;
    for (std::size_t j = 0; j < i && !s.y.empty(); ++j)
      if (!ser[j].label.empty() && same_curve(ser[j], s, y_tol)) covered += (covered.empty() ? "" : ", ") + ser[j].label;
    if (!covered.empty()) label += " (drawn over " + covered + ": the same curve)";
    legend.push_back({label, styles.back().color, s.width, styles.back().dash});
  }
  if (chart.has_ref_y && !chart.ref_label.empty()) legend.push_back({chart.ref_label, "#555", 1.2, kRefDash});
  return legend;
}

}  // namespace

std::string render_svg(const LineChart& chart) {
  // Transform first, so ranges and decimation see the plotted values.
  std::vector<Series> ser = chart.series;
  if (chart.log_y)
    for (auto& s : ser)
      for (double& v : s.y) v = v > 0 ? std::log10(v) : std::numeric_limits<double>::quiet_NaN();
  Range xr, yr;
  bool no_data = false;
  line_ranges(chart, ser, xr, yr, no_data);
  std::vector<LineStyle> styles;
  const std::vector<LegendEntry> legend = line_legend(chart, ser, yr, styles);

  const double W = chart.width;
  const double leg_h = legend_height(legend, W);
  const double H = chart.height + leg_h;
  const auto yt = nice_ticks(yr.lo, yr.hi, 6);
  const auto xt = nice_ticks(xr.lo, xr.hi, std::max(3, static_cast<int>(W / 110)));
  Frame f;
  f.x0 = xr.lo;
  f.x1 = xr.hi;
  f.y0 = yr.lo;
  f.y1 = yr.hi;
  f.left = left_margin(yt, tick_step(yt));
  f.right = W - 24;
  f.top = kTitleH + 6;
  f.bottom = chart.height - 48;

  std::string o = svg_open(W, H, chart.title);
  std::string y_label = chart.y_label;
  draw_axes(o, f, xt, tick_step(xt), yt, tick_step(yt), chart.title, chart.x_label, y_label, W);
  if (no_data)
    o += "<text x=\"" + num((f.left + f.right) / 2) + "\" y=\"" + num((f.top + f.bottom) / 2) +
         "\" text-anchor=\"middle\" fill=\"#999\">no data</text>";
  if (chart.has_ref_y) draw_polyline(o, f, {f.x0, f.x1}, {chart.ref_y, chart.ref_y}, "#555", 1.2, 1.0, kRefDash);
  for (std::size_t k = 0; k < ser.size(); ++k) {
    std::vector<double> x = ser[k].x, y = ser[k].y;
    x.resize(std::min(x.size(), y.size()));
    y.resize(x.size());
    decimate(x, y, f, chart.max_points);
    draw_polyline(o, f, x, y, styles[k].color, ser[k].width, ser[k].opacity, styles[k].dash);
  }
  draw_legend(o, legend, chart.height - 4, W);
  o += "</svg>";
  return o;
}

std::string render_svg(const HistogramChart& chart) {
  LineChart lc;
  lc.title = chart.title;
  lc.x_label = chart.x_label;
  lc.y_label = chart.y_label;
  lc.width = chart.width;
  lc.height = chart.height;
  for (const auto& h : chart.hists) {
    Series s;
    s.label = h.label;
    double total = 0;
    for (double c : h.counts) total += finite(c) ? c : 0;
    const std::size_t n = h.counts.size();
    if (n == 0 || !(h.hi > h.lo) || total <= 0) {
      lc.series.push_back(std::move(s));  // keeps the legend entry and its color
      continue;
    }
    const double bw = (h.hi - h.lo) / static_cast<double>(n);
    for (std::size_t i = 0; i < n; ++i) {
      s.x.push_back(h.lo + (static_cast<double>(i) + 0.5) * bw);
      s.y.push_back(h.counts[i] / (total * bw));
    }
    lc.series.push_back(std::move(s));
    if (n > 0 && h.hi > h.lo) {
      lc.x_min = lc.has_x_range ? std::min(lc.x_min, h.lo) : h.lo;
      lc.x_max = lc.has_x_range ? std::max(lc.x_max, h.hi) : h.hi;
      lc.has_x_range = true;
    }
  }
  // Densities start at zero: a histogram floating above the axis reads wrong.
  bool any = false;
  for (const auto& s : lc.series) any = any || !s.x.empty();
  if (any) {
    Series zero;
    zero.color = "none";
    double x0 = std::numeric_limits<double>::infinity();
    for (const auto& s : lc.series)
      if (!s.x.empty()) x0 = std::min(x0, s.x.front());
    zero.x = {x0};
    zero.y = {0};
    lc.series.push_back(zero);
  }
  return render_svg(lc);
}

std::string render_svg(const BarChart& chart) {
  const std::size_t n = chart.categories.size();
  Range yr;
  yr.add(0);
  for (std::size_t i = 0; i < n && i < chart.mean.size(); ++i) {
    const double sd = i < chart.stddev.size() && finite(chart.stddev[i]) ? chart.stddev[i] : 0;
    yr.add(chart.mean[i] + sd);
    yr.add(chart.mean[i] - sd);
  }
  yr.finish(0.05);
  const double W = chart.width;
  std::size_t longest = 1;
  for (const auto& c : chart.categories) longest = std::max(longest, c.size());
  const double slot_guess = (W - 100) / static_cast<double>(std::max<std::size_t>(n, 1));
  const bool rotate = kCharW * static_cast<double>(longest) > slot_guess - 6;
  const double label_h = rotate ? kCharW * static_cast<double>(longest) * 0.5 + 10 : 0;
  const double H = chart.height + label_h;
  const auto yt = nice_ticks(yr.lo, yr.hi, 6);
  Frame f;
  f.x0 = 0;
  f.x1 = static_cast<double>(std::max<std::size_t>(n, 1));
  f.y0 = yr.lo;
  f.y1 = yr.hi;
  f.left = left_margin(yt, tick_step(yt));
  f.right = W - 24;
  f.top = kTitleH + 6;
  f.bottom = chart.height - 48;

  std::string o = svg_open(W, H, chart.title);
  // Category labels replace numeric x ticks; the x label moves below them.
  draw_axes(o, f, {}, 1, yt, tick_step(yt), chart.title, "", chart.y_label, W);
  const double slot = (f.right - f.left) / f.x1;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& color = palette()[i % palette().size()];
    const double cx = f.sx(static_cast<double>(i) + 0.5);
    const double m = i < chart.mean.size() ? chart.mean[i] : std::numeric_limits<double>::quiet_NaN();
    if (finite(m)) {
      const double y_top = f.sy(std::max(m, 0.0)), y_bot = f.sy(std::min(m, 0.0));
      o += "<rect x=\"" + num(cx - slot * 0.3) + "\" y=\"" + num(y_top) + "\" width=\"" + num(slot * 0.6) + "\" height=\"" +
           num(std::max(y_bot - y_top, 0.5)) + "\" fill=\"" + color + "\" fill-opacity=\"0.8\"/>";
      const double sd = i < chart.stddev.size() ? chart.stddev[i] : 0;
      if (finite(sd) && sd > 0) {
        const double a = f.sy(m + sd), b = f.sy(m - sd), cap = std::min(8.0, slot * 0.15);
        o += "<g stroke=\"#222\" stroke-width=\"1.5\"><line x1=\"" + num(cx) + "\" y1=\"" + num(a) + "\" x2=\"" + num(cx) +
             "\" y2=\"" + num(b) + "\"/><line x1=\"" + num(cx - cap) + "\" y1=\"" + num(a) + "\" x2=\"" + num(cx + cap) +
             "\" y2=\"" + num(a) + "\"/><line x1=\"" + num(cx - cap) + "\" y1=\"" + num(b) + "\" x2=\"" + num(cx + cap) +
             "\" y2=\"" + num(b) + "\"/></g>";
      }
    }
    const std::string label = xml_escape(chart.categories[i]);
    if (rotate)
      o += "<text transform=\"translate(" + num(cx + 4) + "," + num(f.bottom + 14) + ") rotate(-30)\" text-anchor=\"end\">" +
           label + "</text>";
    else
      o += "<text x=\"" + num(cx) + "\" y=\"" + num(f.bottom + 18) + "\" text-anchor=\"middle\">" + label + "</text>";
  }
  if (f.y0 < 0 && f.y1 > 0)
    o += "<line x1=\"" + num(f.left) + "\" y1=\"" + num(f.sy(0)) + "\" x2=\"" + num(f.right) + "\" y2=\"" + num(f.sy(0)) +
         "\" stroke=\"#333\"/>";
  if (!chart.x_label.empty())
    o += "<text x=\"" + num((f.left + f.right) / 2) + "\" y=\"" + num(f.bottom + 38 + label_h) + "\" text-anchor=\"middle\">" +
         xml_escape(chart.x_label) + "</text>";
  o += "</svg>";
  return o;
}

// --- heatmap --------------------------------------------------------------------------------

std::string colormap_viridis(double t) {
  // viridis sampled at 0, 1/8, ..., 1 (matplotlib's _viridis_data).
  static const double stops[9][3] = {{68, 1, 84},    {71, 44, 122}, {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
                                     {39, 173, 129}, {92, 200, 99}, {170, 220, 50}, {253, 231, 37}};
  if (!finite(t)) t = 0;
  t = std::clamp(t, 0.0, 1.0) * 8.0;
  const int i = std::min(7, static_cast<int>(t));
  const double f = t - i;
  char buf[8];
  int c[3];
  for (int k = 0; k < 3; ++k) c[k] = static_cast<int>(std::lround(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * f));
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c[0], c[1], c[2]);
  return buf;
}

namespace {

// The colored cells with their text, and the row and column labels.
void draw_heatmap_cells(std::string& o, const Heatmap& chart, const Range& r, double left, double top) {
  const std::size_t nc = chart.x_categories.size(), nr = chart.y_categories.size();
  const double cw = chart.cell_w, ch = chart.cell_h;
  for (std::size_t i = 0; i < nr; ++i) {
    const double y = top + ch * static_cast<double>(i);
    o += "<text x=\"" + num(left - 6) + "\" y=\"" + num(y + ch / 2 + 4) + "\" text-anchor=\"end\">" +
         xml_escape(chart.y_categories[i]) + "</text>";
    for (std::size_t j = 0; j < nc; ++j) {
      const std::size_t k = i * nc + j;
      const double v = k < chart.values.size() ? chart.values[k] : std::numeric_limits<double>::quiet_NaN();
      const double x = left + cw * static_cast<double>(j);
      const double t = (v - r.lo) / (r.hi - r.lo);
      const std::string fill = finite(v) ? colormap_viridis(t) : "#bbbbbb";
      o += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(cw) + "\" height=\"" + num(ch) + "\" fill=\"" + fill +
           "\" stroke=\"white\" stroke-width=\"1\"/>";
      std::string text = k < chart.cell_text.size() ? chart.cell_text[k] : "";
      if (text.empty() && finite(v)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.2f", v);
        text = buf;
      }
      // Light text on the dark half of viridis, dark text on the light half and on gray.
      const bool dark_cell = finite(v) && std::clamp(t, 0.0, 1.0) < 0.55;
      o += "<text x=\"" + num(x + cw / 2) + "\" y=\"" + num(y + ch / 2 + 4) + "\" text-anchor=\"middle\" fill=\"" +
           (dark_cell ? "white" : "#111") + "\">" + xml_escape(text) + "</text>";
    }
  }
  const double grid_w = cw * static_cast<double>(nc), grid_h = ch * static_cast<double>(nr);
  for (std::size_t j = 0; j < nc; ++j)
    o += "<text x=\"" + num(left + cw * (static_cast<double>(j) + 0.5)) + "\" y=\"" + num(top + grid_h + 16) +
         "\" text-anchor=\"middle\">" + xml_escape(chart.x_categories[j]) + "</text>";
  if (!chart.x_label.empty())
    o += "<text x=\"" + num(left + grid_w / 2) + "\" y=\"" + num(top + grid_h + 38) + "\" text-anchor=\"middle\">" +
         xml_escape(chart.x_label) + "</text>";
  if (!chart.y_label.empty())
    o += "<text transform=\"translate(16," + num(top + grid_h / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
         xml_escape(chart.y_label) + "</text>";
}

// The color bar: 32 bands from lo (bottom) to hi (top), with ticks.
void draw_color_bar(std::string& o, const Range& r, double bar_x, double top, double bar_h) {
  const double bar_w = 14;
  const int bands = 32;
  for (int b = 0; b < bands; ++b) {
    const double y = top + bar_h * (1.0 - (b + 1.0) / bands);
    o += "<rect x=\"" + num(bar_x) + "\" y=\"" + num(y) + "\" width=\"" + num(bar_w) + "\" height=\"" + num(bar_h / bands + 0.5) +
         "\" fill=\"" + colormap_viridis((b + 0.5) / bands) + "\"/>";
  }
  o += "<rect x=\"" + num(bar_x) + "\" y=\"" + num(top) + "\" width=\"" + num(bar_w) + "\" height=\"" + num(bar_h) +
       "\" fill=\"none\" stroke=\"#333\"/>";
  const auto ticks = nice_ticks(r.lo, r.hi, std::max(2, static_cast<int>(bar_h / 40)));
  const double step = tick_step(ticks);
  for (double v : ticks) {
    if (v < r.lo - 1e-12 || v > r.hi + 1e-12) continue;
    const double y = top + bar_h * (1.0 - (v - r.lo) / (r.hi - r.lo));
    o += "<line x1=\"" + num(bar_x + bar_w) + "\" y1=\"" + num(y) + "\" x2=\"" + num(bar_x + bar_w + 4) + "\" y2=\"" + num(y) +
         "\" stroke=\"#333\"/><text x=\"" + num(bar_x + bar_w + 7) + "\" y=\"" + num(y + 4) + "\">" +
         xml_escape(format_tick(v, step)) + "</text>";
  }
}

}  // namespace

std::string render_svg(const Heatmap& chart) {
  const std::size_t nc = chart.x_categories.size(), nr = chart.y_categories.size();
  Range r;
  if (chart.has_range) {
    r.lo = chart.lo;
    r.hi = chart.hi;
  } else {
    for (std::size_t k = 0; k < nr * nc && k < chart.values.size(); ++k) r.add(chart.values[k]);
    if (r.empty()) {
      r.lo = 0;
      r.hi = 1;
    }
    if (r.hi - r.lo < 1e-12) r.hi = r.lo + 1;
  }
  std::size_t ylong = 1;
  for (const auto& c : chart.y_categories) ylong = std::max(ylong, c.size());
  const double left = 34 + kCharW * static_cast<double>(ylong) + 8;
  const double top = kTitleH + 10;
  const double grid_w = chart.cell_w * static_cast<double>(nc), grid_h = chart.cell_h * static_cast<double>(nr);
  const double bar_x = left + grid_w + 24, bar_w = 14;
  const double W =
      std::max(bar_x + bar_w + 60 + (chart.value_label.empty() ? 0 : 20), kCharW * static_cast<double>(chart.title.size()) + 40);
  const double bar_h = std::max(grid_h, 120.0);
  const double H = top + std::max(grid_h + 52, bar_h + 16);
  std::string o = svg_open(W, H, chart.title);
  if (!chart.title.empty())
    o += "<text x=\"" + num(W / 2) + "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">" +
         xml_escape(chart.title) + "</text>";
  draw_heatmap_cells(o, chart, r, left, top);
  draw_color_bar(o, r, bar_x, top, bar_h);
  if (!chart.value_label.empty())
    o += "<text transform=\"translate(" + num(W - 8) + "," + num(top + bar_h / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
         xml_escape(chart.value_label) + "</text>";
  o += "</svg>";
  return o;
}

// --- PNG -------------------------------------------------------------------------------------

uint32_t crc32(const uint8_t* data, std::size_t n, uint32_t crc) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

uint32_t adler32(const uint8_t* data, std::size_t n, uint32_t adler) {
  uint32_t a = adler & 0xFFFFu, b = adler >> 16;
  for (std::size_t i = 0; i < n; ++i) {
    a = (a + data[i]) % 65521u;
    b = (b + a) % 65521u;
  }
  return (b << 16) | a;
}

namespace {

void put_be32(std::string& s, uint32_t v) {
  for (int sh = 24; sh >= 0; sh -= 8) s += static_cast<char>((v >> sh) & 0xFFu);
}

void put_chunk(std::string& png, const char* type, const std::string& payload) {
  put_be32(png, static_cast<uint32_t>(payload.size()));
  std::string body(type, 4);
  body += payload;
  png += body;
  put_be32(png, crc32(reinterpret_cast<const uint8_t*>(body.data()), body.size()));
}

}  // namespace

std::string encode_png(const GrayImage& img) {
  if (img.width <= 0 || img.height <= 0 ||
      img.pixels.size() != static_cast<std::size_t>(img.width) * static_cast<std::size_t>(img.height))
    throw std::invalid_argument("encode_png: pixel count does not match width x height");
  const auto w = static_cast<std::size_t>(img.width);
  std::string raw;  // each scanline: filter type 0 (None), then the pixels
  raw.reserve((w + 1) * static_cast<std::size_t>(img.height));
  for (int r = 0; r < img.height; ++r) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(img.pixels.data()) + static_cast<std::size_t>(r) * w, w);
  }
  // zlib at its best compression: the saturation map's rows repeat `scale` times and its
  // cells are runs of equal bytes, so a 100 KB image becomes a few hundred bytes.
  uLongf zlen = compressBound(static_cast<uLong>(raw.size()));
  std::string z(zlen, '\0');
  if (compress2(reinterpret_cast<Bytef*>(z.data()), &zlen, reinterpret_cast<const Bytef*>(raw.data()),
                static_cast<uLong>(raw.size()), Z_BEST_COMPRESSION) != Z_OK)
    throw std::runtime_error("encode_png: zlib could not compress the image");
  z.resize(zlen);

  std::string png("\x89PNG\r\n\x1a\n", 8);
  std::string ihdr;
  put_be32(ihdr, static_cast<uint32_t>(img.width));
  put_be32(ihdr, static_cast<uint32_t>(img.height));
  ihdr += '\x08';  // bit depth
  ihdr += '\x00';  // color type: grayscale
  ihdr += '\x00';  // compression: deflate
  ihdr += '\x00';  // filter method 0
  ihdr += '\x00';  // no interlace
  put_chunk(png, "IHDR", ihdr);
  put_chunk(png, "IDAT", z);
  put_chunk(png, "IEND", "");
  return png;
}

GrayImage saturation_image(int rows, int cols, std::string_view bits, int scale) {
  if (rows <= 0 || cols <= 0 || scale <= 0 || bits.size() != static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols))
    throw std::invalid_argument("saturation map: bits must hold rows x cols characters");
  GrayImage img;
  img.width = cols * scale;
  img.height = rows * scale;
  img.pixels.assign(static_cast<std::size_t>(img.width) * static_cast<std::size_t>(img.height), 0);
  for (int r = 0; r < img.height; ++r)
    for (int c = 0; c < img.width; ++c)
      if (bits[static_cast<std::size_t>(r / scale) * static_cast<std::size_t>(cols) + static_cast<std::size_t>(c / scale)] == '1')
        img.pixels[static_cast<std::size_t>(r) * static_cast<std::size_t>(img.width) + static_cast<std::size_t>(c)] = 255;
  return img;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string o;
  o.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (static_cast<uint32_t>(static_cast<uint8_t>(bytes[i])) << 16) |
                       (static_cast<uint32_t>(static_cast<uint8_t>(bytes[i + 1])) << 8) | static_cast<uint8_t>(bytes[i + 2]);
    o += kAlphabet[(v >> 18) & 63];
    o += kAlphabet[(v >> 12) & 63];
    o += kAlphabet[(v >> 6) & 63];
    o += kAlphabet[v & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = static_cast<uint32_t>(static_cast<uint8_t>(bytes[i])) << 16;
    if (rest == 2) v |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[i + 1])) << 8;
    o += kAlphabet[(v >> 18) & 63];
    o += kAlphabet[(v >> 12) & 63];
    o += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    o += '=';
  }
  return o;
}

}  // namespace mm::plot
