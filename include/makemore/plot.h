// A small SVG plotting library with no dependencies, for the report's figures: line charts
// (several series, legend, nice ticks, optional log10 y, a horizontal reference line),
// histogram-as-line charts (the lecture's "activation distribution" figure), and bar charts
// with error bars. Also a minimal PNG writer (8-bit gray, compressed with zlib) and a base64
// encoder to inline the PNG into HTML. Reading run folders is report.h's job.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mm::plot {

// --- text ------------------------------------------------------------------------------------

// Escapes &, <, >, " and ' for XML text and attribute values; drops control characters that
// XML 1.0 forbids (a stray byte in a label must not make the whole SVG unreadable).
std::string xml_escape(std::string_view s);

// Tick positions covering [lo, hi] with a 1/2/5 x 10^k step, about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);
// Formats a tick value with just enough decimals for the given step ("0.25", "1e-05", "2000").
std::string format_tick(double v, double step);

// --- line charts -----------------------------------------------------------------------------

struct Series {
  std::string label;         // empty: not shown in the legend
  std::vector<double> x, y;  // same length; non-finite points break the line
  double width = 1.5;        // stroke width in px
  std::string color;         // CSS color; empty picks the next series_style()
  double opacity = 1.0;
  std::string dash;  // with a color: an SVG stroke-dasharray ("6 3"); empty: solid
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool log_y = false;      // plot log10(y); y <= 0 is skipped; ticks are in log10 units
  bool has_ref_y = false;  // draw a dashed horizontal line at ref_y (in plotted units)
  double ref_y = 0;
  std::string ref_label;
  bool has_x_range = false;     // show exactly [x_min, x_max]; otherwise the data's range,
  double x_min = 0, x_max = 1;  // widened to the next tick when that is close
  // The y axis reaches 0 (linear y only). For a scale such as a std: otherwise near-equal
  // values (0.631 to 0.642) fill the frame and an almost flat line looks like jagged noise.
  bool y_from_zero = false;
  int width = 760, height = 360;  // plot + axes; the legend below adds to the height
  // With more points than this per series, keep the min and max of each pixel column:
  // a 200k-step loss curve then looks the same at a fraction of the size.
  std::size_t max_points = 4000;
};
std::string render_svg(const LineChart& chart);

// --- histograms as lines ---------------------------------------------------------------------

struct Histogram {
  std::string label;      // legend text, e.g. "layer 2 (Tanh): mean -0.02, std 0.75, saturated 3.1%"
  double lo = 0, hi = 1;  // range of the equal-width bins
  std::vector<double> counts;
};

struct HistogramChart {
  std::string title, x_label = "value", y_label = "density";
  std::vector<Histogram> hists;  // one line per histogram, y = count / (total * bin width);
                                 // the x axis spans every histogram's [lo, hi]
  int width = 760, height = 360;
};
std::string render_svg(const HistogramChart& chart);

// --- bar chart with error bars ---------------------------------------------------------------

struct BarChart {
  std::string title, x_label, y_label;
  std::vector<std::string> categories;
  std::vector<double> mean, stddev;  // stddev may be empty (no error bars)
  int width = 760, height = 360;
};
std::string render_svg(const BarChart& chart);

// --- heatmap --------------------------------------------------------------------------------

// A grid of colored cells (rows x columns of categories) with a color bar: e.g. final loss by
// depth x initialization. Values use a sequential colormap (viridis: dark = low, yellow =
// high) over [lo, hi]; values outside are clamped (the cell text still says the value). A
// non-finite value is drawn gray, labelled with its cell_text (e.g. "diverged").
struct Heatmap {
  std::string title, x_label, y_label, value_label;  // value_label: beside the color bar
  std::vector<std::string> x_categories;             // columns, left to right
  std::vector<std::string> y_categories;             // rows, top to bottom
  std::vector<double> values;                        // rows x columns, row-major
  std::vector<std::string> cell_text;                // same size, or empty; empty text: the value, 2 decimals
  bool has_range = false;                            // otherwise the finite values' [min, max]
  double lo = 0, hi = 1;
  int cell_w = 90, cell_h = 34;
};
std::string render_svg(const Heatmap& chart);
// The colormap behind it: t in [0, 1] -> "#rrggbb" (viridis, linearly interpolated).
std::string colormap_viridis(double t);

// The palette the charts cycle through (matplotlib's tab10, which the lecture's figures use).
const std::vector<std::string>& palette();

// The look of the i-th line of a chart that picks its own colors: palette()[i % 10], solid for
// the first 10, then dashed, dotted and dash-dotted for each further 10, so a network with more
// than 10 layers or parameters still has one look per legend entry (40 distinct, then repeat).
struct LineStyle {
  std::string color;
  std::string dash;  // SVG stroke-dasharray; empty: solid
};
LineStyle series_style(std::size_t i);

// --- PNG -------------------------------------------------------------------------------------

struct GrayImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // row-major, 0 = black, 255 = white
};

uint32_t crc32(const uint8_t* data, std::size_t n, uint32_t crc = 0);
uint32_t adler32(const uint8_t* data, std::size_t n, uint32_t adler = 1);
// The bytes of an 8-bit grayscale PNG (one zlib stream, best compression).
std::string encode_png(const GrayImage& img);

// The lecture's saturation picture: rows x cols cells from bits ('1' = |h| > 0.99 -> white),
// each cell scale x scale pixels. Throws std::invalid_argument when bits does not fit.
GrayImage saturation_image(int rows, int cols, std::string_view bits, int scale = 4);

std::string base64_encode(std::string_view bytes);

}  // namespace mm::plot
