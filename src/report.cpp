// The run report (see report.h): reads the run folder's files, each optional, turns them into
// plot.h charts and writes one HTML page plus the figures as files. The figure choices follow
// the lecture: log10 loss with 1,000-step means, tanh output / pre-activation histograms,
// the |h| > 0.99 saturation map, per-layer activation and gradient distributions, weight
// gradient distributions of the 2-D parameters, and update:data ratios against 1e-3.
#include "makemore/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <unordered_set>

#include "makemore/data.h"
#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/layer_kinds.h"
#include "makemore/plot.h"
#include "makemore/rng.h"
#include "makemore/run.h"
#include "makemore/sample.h"

namespace mm {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The lecture uses two thresholds: |h| > 0.97 for the saturated percentage (its cell 15) and
// |h| > 0.99 for the white pixels of its saturation picture (and the dead units). The page
// shows both, so every number says which one it counts.
constexpr const char* kSaturatedText = "|h| > 0.97";
constexpr const char* kMapText = "|h| > 0.99";

std::string esc(std::string_view s) { return plot::xml_escape(s); }

std::optional<std::string> read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A JSON number, or NaN for null / absent / non-numbers (the writers store NaN as null).
double num(const json& j, const char* key) {
  if (!j.is_object()) return kNaN;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return kNaN;
  return it->get<double>();
}

std::string str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string fmt_num(double v, const char* spec = "{:.4f}") {
  return std::isfinite(v) ? fmt::format(fmt::runtime(spec), v) : std::string("n/a");
}

// Collects what the run folder lacks, each with the command that would produce it.
struct Inputs {
  fs::path dir;
  std::vector<std::string> missing;

  std::optional<json> json_file(const char* name, const char* producer) {
    const fs::path p = dir / name;
    auto text = read_text(p);
    if (!text) {
      missing.push_back(fmt::format("{}: not in the run folder ({})", name, producer));
      return std::nullopt;
    }
    try {
      return json::parse(*text);
    } catch (const json::exception& e) {
      missing.push_back(fmt::format("{}: not valid JSON ({}); {}", name, e.what(), producer));
      return std::nullopt;
    }
  }

  // Calls f for each line that parses as a JSON object; a torn last line (a run that was
  // killed) is skipped, and counted.
  bool jsonl_file(const char* name, const char* producer, const std::function<void(const json&)>& f) {
    std::ifstream in(dir / name);
    if (!in) {
      missing.push_back(fmt::format("{}: not in the run folder ({})", name, producer));
      return false;
    }
    std::string line;
    int bad = 0, good = 0;
    while (std::getline(in, line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        ++bad;
        continue;
      }
      ++good;
      f(j);
    }
    if (bad) missing.push_back(fmt::format("{}: skipped {} unreadable line(s)", name, bad));
    if (!good) missing.push_back(fmt::format("{}: holds no records ({})", name, producer));
    return good > 0;
  }
};

struct Figure {
  std::string id, title, caption;
  std::string svg;  // either an SVG document ...
  std::string png;  // ... or PNG bytes
  std::string file() const { return id + (png.empty() ? ".svg" : ".png"); }
};

// A histogram object {"lo","hi","counts"}; nullopt when it is not one.
std::optional<plot::Histogram> parse_hist(const json& h, std::string label) {
  if (!h.is_object() || !h.contains("counts") || !h["counts"].is_array()) return std::nullopt;
  plot::Histogram out;
  out.label = std::move(label);
  out.lo = num(h, "lo");
  out.hi = num(h, "hi");
  for (const auto& c : h["counts"]) out.counts.push_back(c.is_number() ? c.get<double>() : 0.0);
  if (!std::isfinite(out.lo) || !std::isfinite(out.hi)) return std::nullopt;
  return out;
}

// A bounded activation (Tanh, Sigmoid): the registry's traits of the class name the JSON records.
bool is_bounded(const json& layer) {
  const LayerKind* k = find_layer_kind_by_class(str(layer, "type"));
  return k && k->bounded();
}

std::string layer_name(const json& layer) {
  if (const std::string n = str(layer, "name"); !n.empty()) return fmt::format("layer {} ({})", n, str(layer, "type"));
  const double idx = num(layer, "index");
  return fmt::format("layer {} ({})", std::isfinite(idx) ? std::to_string(static_cast<long>(idx)) : "?", str(layer, "type"));
}

// A snapshot's layers in forward order: each stack layer, then the layers inside it
// ("inner_layers", whose "index" is their block's).
std::vector<json> layers_in_order(const json& snapshot) {
  std::vector<json> out;
  if (!snapshot.is_object() || !snapshot.contains("layers") || !snapshot["layers"].is_array()) return out;
  const json none = json::array();
  const json& inner = snapshot.contains("inner_layers") && snapshot["inner_layers"].is_array() ? snapshot["inner_layers"] : none;
  std::size_t k = 0;
  for (const auto& l : snapshot["layers"]) {
    out.push_back(l);
    for (; k < inner.size() && num(inner[k], "index") == num(l, "index"); ++k) out.push_back(inner[k]);
  }
  for (; k < inner.size(); ++k) out.push_back(inner[k]);
  return out;
}

// The layers the lecture plots: the Tanh ones (inside residual blocks too); every layer when
// the network has none.
std::vector<json> plotted_layers(const json& snapshot) {
  std::vector<json> all = layers_in_order(snapshot), tanh;
  for (const auto& l : all)
    if (is_bounded(l)) tanh.push_back(l);
  return tanh.empty() ? all : tanh;
}

// "layers.3.weight" before "layers.12.weight": runs of digits compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
  auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      std::size_t ie = i, je = j;
      while (ie < a.size() && digit(a[ie])) ++ie;
      while (je < b.size() && digit(b[je])) ++je;
      // Without leading zeros, a longer run is a larger number.
      const std::string_view x = std::string_view(a).substr(i, ie - i), y = std::string_view(b).substr(j, je - j);
      const std::size_t xz = std::min(x.find_first_not_of('0'), x.size()), yz = std::min(y.find_first_not_of('0'), y.size());
      const std::string_view xs = x.substr(xz), ys = y.substr(yz);
      if (xs.size() != ys.size()) return xs.size() < ys.size();
      if (xs != ys) return xs < ys;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

bool is_2d(const json& p) { return p.is_object() && p.contains("shape") && p["shape"].is_array() && p["shape"].size() == 2; }

std::string shape_text(const json& p) {
  if (!p.contains("shape") || !p["shape"].is_array()) return "";
  std::string s = "(";
  for (std::size_t i = 0; i < p["shape"].size(); ++i) s += (i ? ", " : "") + p["shape"][i].dump();
  return s + ")";
}

// "step 0, at initialization" / "step 4999".
std::string step_text(const json& snapshot) {
  const double step = num(snapshot, "step");
  if (!std::isfinite(step)) return "step ?";
  return step == 0 ? "step 0, at initialization" : fmt::format("step {:.0f}", step);
}

Figure loss_figure(const std::vector<std::pair<double, double>>& pts) {
  plot::Series raw, mean;
  raw.label = "log10 loss per step";
  raw.width = 0.8;
  raw.opacity = 0.45;
  raw.color = "#1f77b4";
  for (const auto& [s, l] : pts) {
    raw.x.push_back(s);
    raw.y.push_back(l > 0 ? std::log10(l) : kNaN);
  }
  // The lecture's lossi.view(-1, 1000).mean(1); short runs get smaller chunks so the
  // thick line still has a shape.
  const std::size_t n = pts.size();
  const std::size_t chunk = n >= 3000 ? 1000 : std::max<std::size_t>(1, n / 10);
  mean.label = fmt::format("mean over {}-step chunks", chunk);
  mean.width = 2.5;
  mean.color = "#d62728";
  for (std::size_t i = 0; i < n; i += chunk) {
    const std::size_t e = std::min(n, i + chunk);
    double sum = 0;
    std::size_t cnt = 0;
    for (std::size_t k = i; k < e; ++k)
      if (std::isfinite(raw.y[k])) {
        sum += raw.y[k];
        ++cnt;
      }
    if (!cnt) continue;
    mean.x.push_back((pts[i].first + pts[e - 1].first) / 2);
    mean.y.push_back(sum / static_cast<double>(cnt));
  }
  plot::LineChart c;
  c.title = "Training loss";
  c.x_label = "step";
  c.y_label = "log10(loss)";
  c.series = {raw, mean};
  return {"loss", c.title, "Minibatch loss per step (log10, thin) and its mean over chunks of steps (thick).",
          plot::render_svg(c), ""};
}

// The HTML page, assembled section by section.
struct Page {
  std::string body;
  std::vector<std::string> figure_ids;

  void figure(const Figure& f) {
    figure_ids.push_back(f.id);
    body += "<figure id=\"fig-" + esc(f.id) + "\">";
    if (!f.png.empty()) {
      // SVG figures carry their title inside; a bitmap gets one above it.
      body += "<div class=\"figtitle\">" + esc(f.title) + "</div>";
      body += "<img class=\"pixelated\" alt=\"" + esc(f.title) + "\" src=\"data:image/png;base64," + plot::base64_encode(f.png) +
              "\">";
    } else {
      // Inline SVG needs no namespace declaration; dropping it keeps the page free of URLs.
      std::string svg = f.svg;
      const std::string ns = " xmlns=\"http://www.w3.org/2000/svg\"";
      if (auto p = svg.find(ns); p != std::string::npos) svg.erase(p, ns.size());
      body += svg;
    }
    body += "<figcaption>" + esc(f.caption) + "</figcaption></figure>\n";
  }
  void not_drawn(const std::string& title, const std::string& why) {
    body += "<p class=\"missing\"><b>" + esc(title) + "</b>: not drawn; " + esc(why) + "</p>\n";
  }
};

const char* kStyle = R"(
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; max-width: 1000px; margin: 24px auto; padding: 0 16px; color: #222; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ddd; padding: 4px 10px; text-align: right; } td { white-space: nowrap; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
pre { background: #f7f7f7; padding: 10px; overflow-x: auto; font-size: 12px; max-height: 420px; }
figure { margin: 18px 0; } .figtitle { font-weight: bold; font-size: 14px; margin-bottom: 6px; } figcaption { font-size: 13px; color: #555; margin-top: 4px; }
svg { max-width: 100%; height: auto; }
img.pixelated { image-rendering: pixelated; border: 1px solid #999; max-width: 100%; }
.missing { color: #8a6d00; background: #fff8e1; padding: 6px 10px; border-left: 3px solid #e0b000; }
.finding { border-left: 4px solid #d62728; background: #fdf2f2; padding: 8px 12px; margin: 10px 0; }
.ok { border-left: 4px solid #2ca02c; background: #f2fbf2; padding: 8px 12px; }
.samples { columns: 4 12em; column-gap: 3.5em; font-family: "DejaVu Sans Mono", monospace; } .samples li { overflow-wrap: anywhere; break-inside: avoid; } .meta { color: #666; font-size: 13px; }
)";

}  // namespace

ReportResult write_report(const ReportOptions& opt) {
  const fs::path dir(opt.run_dir);
  // A folder with none of what `train` writes first is not a run (a typo, or the wrong folder):
  // an error, not an empty report.
  std::error_code dir_ec;
  if (!fs::is_directory(dir, dir_ec) || (!fs::exists(dir / kConfigFile, dir_ec) && !fs::exists(dir / kMetricsFile, dir_ec) &&
                                         !fs::exists(dir / kCheckpointFile, dir_ec)))
    throw Error(fmt::format("{}: not a run folder (no {}, {} or {}); train one first with `makemore train -o {}`", opt.run_dir,
                            kConfigFile, kMetricsFile, kCheckpointFile, opt.run_dir));
  Inputs in{dir, {}};
  ReportResult res;
  res.html_path = opt.out_file.empty() ? (dir / kReportFile).string() : opt.out_file;

  auto config = in.json_file(kConfigFile, "written by `makemore train`");
  // The checkpoint carries the config it was trained with: a config.json edited afterwards
  // must not describe the model (it showed "out": 100 for a 200-wide network).
  if (config && fs::is_regular_file(dir / kCheckpointFile)) {
    try {
      const json saved = load_run(dir.string()).config.to_json();
      if (saved != *config) {
        in.missing.push_back(
            fmt::format("{}: differs from the config saved in {} (edited after training?); the report "
                        "shows the checkpoint's",
                        kConfigFile, kCheckpointFile));
        config = saved;
      }
    } catch (const std::exception&) {  // a damaged checkpoint is reported by the samples section
    }
  }
  const auto result = in.json_file(kResultFile, "written when `makemore train` finishes");
  const auto inspect = in.json_file(kInspectFile, "written by `makemore train` unless --diag-every 0");

  std::vector<std::pair<double, double>> losses;  // (step, loss)
  in.jsonl_file(kMetricsFile, "written by `makemore train`",
                [&](const json& j) { losses.emplace_back(num(j, "step"), num(j, "loss")); });
  // The first snapshot is the lecture's view (step 0, the network as initialized); the end of
  // training is in inspect.json, which the tanh figures below draw.
  std::optional<json> diag_first;
  in.jsonl_file(kDiagnosticsFile, "written by `makemore train` unless --diag-every 0", [&](const json& j) {
    if (!diag_first) diag_first = j;
  });
  std::vector<double> ur_steps;
  std::vector<std::string> ur_names;  // first-seen order
  std::vector<std::vector<double>> ur_values;
  in.jsonl_file(kUpdateRatioFile, "written by `makemore train` unless --diag-every 0", [&](const json& j) {
    if (!j.contains("ratios") || !j["ratios"].is_object()) return;
    const std::size_t row = ur_steps.size();
    ur_steps.push_back(num(j, "step"));
    for (auto& v : ur_values) v.push_back(kNaN);
    for (const auto& [name, v] : j["ratios"].items()) {
      auto it = std::find(ur_names.begin(), ur_names.end(), name);
      std::size_t k = static_cast<std::size_t>(it - ur_names.begin());
      if (it == ur_names.end()) {
        ur_names.push_back(name);
        ur_values.emplace_back(row + 1, kNaN);
      }
      ur_values[k][row] = v.is_number() ? v.get<double>() : kNaN;
    }
  });

  // Per-layer figures show the first diagnostics snapshot, else inspect's.
  const json* snap = diag_first ? &*diag_first : (inspect ? &*inspect : nullptr);
  const std::string snap_src = snap ? step_text(*snap) : "";
  const std::string inspect_src = inspect ? step_text(*inspect) : "";

  Page page;
  std::string name = config ? str(*config, "name") : "";
  if (name.empty()) name = dir.filename().string();

  // --- summary ------------------------------------------------------------------------------
  page.body +=
      "<h1>makemore run: " + esc(name) + "</h1>\n<p class=\"meta\">Run folder " + esc(fs::absolute(dir).string()) + "</p>\n";
  if (!in.missing.empty()) {
    page.body += "<div class=\"missing\" id=\"missing\"><b>Missing from the run folder</b> (the report draws what exists):<ul>";
    for (const auto& m : in.missing) page.body += "<li>" + esc(m) + "</li>";
    page.body += "</ul></div>\n";
  }

  page.body += "<h2 id=\"results\">Results</h2>\n";
  if (result) {
    const json& r = *result;
    if (r.contains("diverged_step") && r["diverged_step"].is_number())
      page.body += fmt::format(
          "<p class=\"missing\" id=\"diverged\"><b>The training diverged at step {}</b> (the loss was not "
          "finite). The losses below are those of the last checkpoint saved before it, step {}.</p>\n",
          fmt_num(num(r, "diverged_step"), "{:.0f}"), fmt_num(num(r, "steps"), "{:.0f}"));
    page.body += "<table><tr><th class=\"l\">split</th><th>loss</th></tr>";
    for (const char* s : {"train", "val", "test"})
      page.body +=
          fmt::format("<tr><td class=\"l\">{}</td><td>{}</td></tr>", s, fmt_num(num(r, (std::string(s) + "_loss").c_str())));
    page.body += "</table>\n";
    page.body += "<table><tr><th class=\"l\"></th><th>value</th></tr>";
    double expected = num(r, "expected_initial_loss");
    if (!std::isfinite(expected) && inspect) expected = num(*inspect, "expected_loss");
    page.body += fmt::format("<tr><td class=\"l\">initial loss</td><td>{}</td></tr>", fmt_num(num(r, "initial_loss")));
    page.body += fmt::format("<tr><td class=\"l\">expected initial loss, -ln(1/vocab)</td><td>{}</td></tr>", fmt_num(expected));
    page.body += fmt::format("<tr><td class=\"l\">steps</td><td>{}</td></tr>", fmt_num(num(r, "steps"), "{:.0f}"));
    if (std::isfinite(num(r, "seconds")))
      page.body += fmt::format("<tr><td class=\"l\">training time</td><td>{} s ({} steps/s)</td></tr>",
                               fmt_num(num(r, "seconds"), "{:.2f}"), fmt_num(num(r, "steps_per_sec"), "{:.0f}"));
    page.body += fmt::format("<tr><td class=\"l\">parameters</td><td>{}</td></tr>", fmt_num(num(r, "params"), "{:.0f}"));
    page.body += "</table>\n";
  } else {
    page.not_drawn("Split losses", std::string(kResultFile) + " is missing: the run did not finish");
  }
  if (inspect) {
    page.body += fmt::format("<p>Inspection: initial loss {} against the expected {} (uniform prediction).</p>\n",
                             fmt_num(num(*inspect, "initial_loss")), fmt_num(num(*inspect, "expected_loss")));
  }

  // --- samples ------------------------------------------------------------------------------
  page.body += "<h2 id=\"samples\">Samples</h2>\n";
  try {
    if (!fs::is_regular_file(dir / kCheckpointFile)) throw Error(std::string(kCheckpointFile) + " is missing");
    LoadedRun run = load_run(dir.string());
    std::unordered_set<std::u32string> known;
    if (fs::is_regular_file(dir / kWordsFile)) {
      for (auto& w : load_words((dir / kWordsFile).string()).words) known.insert(std::move(w));
    }
    SampleOptions so;
    so.count = opt.samples;
    TorchGenerator gen(run.config.seed + 10);  // the lecture's sampling generator
    const auto words = sample_words(*run.model, run.vocab, so, gen);
    int fresh = 0;
    page.body += "<ol class=\"samples\">";
    for (const auto& w : words) {
      const bool is_new = !known.count(w);
      fresh += is_new;
      page.body += "<li>" + esc(to_utf8(w)) + (is_new ? "" : " <span class=\"meta\">(in data)</span>") + "</li>";
    }
    page.body += fmt::format("</ol>\n<p class=\"meta\">{} samples, seed {} + 10; {} of them are not in the word list.</p>\n",
                             words.size(), run.config.seed, fresh);
  } catch (const std::exception& e) {
    page.not_drawn("Samples", e.what());
    res.missing.push_back(std::string("samples: ") + e.what());
  }

  // --- findings -----------------------------------------------------------------------------
  page.body += "<h2 id=\"findings\">Findings</h2>\n";
  if (!inspect) {
    page.not_drawn("Findings", std::string(kInspectFile) + " is missing; train with diagnostics on (the default --diag-every)");
  } else if (!inspect->contains("findings") || !(*inspect)["findings"].is_array() || (*inspect)["findings"].empty()) {
    page.body += "<p class=\"ok\">No problems found: activations, gradients and the initial loss look healthy.</p>\n";
  } else {
    for (const auto& f : (*inspect)["findings"]) {
      page.body += "<div class=\"finding\"><b>" + esc(str(f, "id")) + "</b>";
      if (const std::string l = str(f, "layer"); !l.empty() && l != "null")
        page.body += " <span class=\"meta\">layer " + esc(l) + "</span>";
      page.body += "<p>" + esc(str(f, "message")) + "</p>";
      if (const std::string e = str(f, "evidence"); !e.empty()) page.body += "<p class=\"meta\">Evidence: " + esc(e) + "</p>";
      if (const std::string x = str(f, "fix"); !x.empty()) page.body += "<p>Fix: " + esc(x) + "</p>";
      page.body += "</div>\n";
    }
  }

  // --- figures ------------------------------------------------------------------------------
  std::vector<Figure> figs;
  page.body += "<h2 id=\"figures\">Figures</h2>\n";

  if (!losses.empty()) {
    figs.push_back(loss_figure(losses));
    page.figure(figs.back());
  } else {
    page.not_drawn("Training loss", std::string(kMetricsFile) + " is missing or empty");
  }

  // Tanh outputs and pre-activations from inspect.json: the lecture's first diagnosis.
  {
    plot::HistogramChart out_c, pre_c;
    out_c.title = "Tanh outputs (" + inspect_src + ")";
    out_c.x_label = "tanh output h";
    pre_c.title = "Tanh pre-activations (" + inspect_src + ")";
    pre_c.x_label = "pre-activation (input to tanh)";
    if (inspect)
      for (const auto& l : layers_in_order(*inspect)) {
        if (!is_bounded(l)) continue;
        if (auto h = parse_hist(l.value("hist", json()),
                                fmt::format("{}: mean {:+.2f}, std {:.2f}, saturated {:.2f}% ({})", layer_name(l),
                                            num(l, "out_mean"), num(l, "out_std"), num(l, "saturated_pct"), kSaturatedText)))
          out_c.hists.push_back(*h);
        if (l.contains("pre") && l["pre"].is_object()) {
          const json& p = l["pre"];
          if (auto h = parse_hist(p.value("hist", json()), fmt::format("{} input: mean {:+.2f}, std {:.2f}", layer_name(l),
                                                                       num(p, "mean"), num(p, "std"))))
            pre_c.hists.push_back(*h);
        }
      }
    const std::string why = inspect ? "inspect.json has no Tanh layer histograms" : "inspect.json is missing";
    if (!out_c.hists.empty()) {
      figs.push_back(
          {"tanh_outputs", out_c.title,
           "Distribution of each Tanh layer's outputs; mass piled at -1 and 1 means saturated units whose gradient vanishes.",
           plot::render_svg(out_c), ""});
      page.figure(figs.back());
    } else {
      page.not_drawn(out_c.title, why);
    }
    if (!pre_c.hists.empty()) {
      figs.push_back({"preactivations", pre_c.title, "Distribution of the inputs to each Tanh; far beyond +-2 the tanh is flat.",
                      plot::render_svg(pre_c), ""});
      page.figure(figs.back());
    } else {
      page.not_drawn(pre_c.title, why);
    }
  }

  // Saturation map: the lecture's plt.imshow(h.abs() > 0.99, cmap='gray').
  {
    std::string why = "inspect.json is missing";
    if (inspect && inspect->contains("saturation_map") && (*inspect)["saturation_map"].is_object()) {
      const json& m = (*inspect)["saturation_map"];
      const double rows = num(m, "rows"), cols = num(m, "cols");
      try {
        if (!(rows >= 1 && cols >= 1)) throw std::invalid_argument("rows and cols must be positive");
        const int r = static_cast<int>(rows), c = static_cast<int>(cols);
        const int scale = std::clamp(800 / std::max(r, c), 1, 8);
        const std::string bits = str(m, "bits");
        const std::size_t white = static_cast<std::size_t>(std::count(bits.begin(), bits.end(), '1'));
        Figure f{"saturation", "Saturated tanh units",
                 fmt::format("{}: white where {}; rows = examples in the batch ({}), columns = units ({}). {:.1f}% white "
                             "(the saturated percentages elsewhere on this page count {}); a fully white column is a dead "
                             "unit that never learns.",
                             layer_name(json{{"index", m.value("layer", json())}, {"type", m.value("type", "Tanh")}}), kMapText,
                             r, c, bits.empty() ? 0.0 : 100.0 * static_cast<double>(white) / static_cast<double>(bits.size()),
                             kSaturatedText),
                 "", plot::encode_png(plot::saturation_image(r, c, bits, scale))};
        figs.push_back(f);
        page.figure(f);
        why.clear();
      } catch (const std::invalid_argument& e) {
        why = std::string("inspect.json's saturation_map is malformed: ") + e.what();
      }
    } else if (inspect) {
      why = "inspect.json has no saturation_map";
    }
    if (!why.empty()) page.not_drawn("Saturated tanh units", why);
  }

  // Per-layer activation and gradient distributions (the lecture's two layered figures).
  {
    plot::HistogramChart act, grad;
    act.title = "Activation distribution";
    act.x_label = "layer output";
    grad.title = "Gradient distribution";
    grad.x_label = "gradient of the loss w.r.t. the layer output";
    std::string table;
    if (snap)
      for (const auto& l : plotted_layers(*snap)) {
        const std::string ln = layer_name(l);
        std::string lbl = fmt::format("{}: mean {:+.2f}, std {:.2f}", ln, num(l, "out_mean"), num(l, "out_std"));
        if (is_bounded(l)) lbl += fmt::format(", saturated {:.2f}% ({})", num(l, "saturated_pct"), kSaturatedText);
        if (auto h = parse_hist(l.value("hist", json()), lbl)) act.hists.push_back(*h);
        if (auto h = parse_hist(l.value("grad_hist", json()),
                                fmt::format("{}: mean {:+.6f}, std {:.3e}", ln, num(l, "grad_mean"), num(l, "grad_std"))))
          grad.hists.push_back(*h);
        // Saturation and dead units are counted for every layer, but only a Tanh's are bounded by 1.
        table += fmt::format(
            "<tr><td "
            "class=\"l\">{}</td><td>{:+.4f}</td><td>{:.4f}</td><td>{}</td><td>{}</td><td>{:+.2e}</td><td>{:.3e}</td></tr>",
            esc(ln), num(l, "out_mean"), num(l, "out_std"), is_bounded(l) ? fmt_num(num(l, "saturated_pct"), "{:.2f}%") : "n/a",
            is_bounded(l) ? fmt_num(num(l, "dead_units"), "{:.0f}") : "n/a", num(l, "grad_mean"), num(l, "grad_std"));
      }
    const std::string why =
        snap ? "the layers carry no histograms" : "neither diagnostics.jsonl nor inspect.json is in the run folder";
    if (!act.hists.empty()) {
      act.title += " (" + snap_src + ")";
      figs.push_back({"activations", act.title,
                      "Outputs of each plotted layer; healthy Tanh layers keep a similar spread at every depth.",
                      plot::render_svg(act), ""});
      page.figure(figs.back());
    } else {
      page.not_drawn(act.title, why);
    }
    if (!grad.hists.empty()) {
      grad.title += " (" + snap_src + ")";
      figs.push_back(
          {"gradients", grad.title,
           "Gradients flowing into each plotted layer's output; layers should agree, neither shrinking nor growing with depth.",
           plot::render_svg(grad), ""});
      page.figure(figs.back());
    } else {
      page.not_drawn(grad.title, why);
    }
    if (!table.empty())
      page.body += "<table><tr><th class=\"l\">layer</th><th>out mean</th><th>out std</th><th>saturated (" + esc(kSaturatedText) +
                   ")</th><th>dead units (" + esc(kMapText) +
                   " for every example)</th>"
                   "<th>grad mean</th><th>grad std</th></tr>" +
                   table + "</table>\n";
  }

  // Weight gradients of the 2-D parameters (the lecture skips biases and BatchNorm's 1-D ones).
  std::unordered_set<std::string> two_d;
  {
    plot::HistogramChart wg;
    wg.title = "Weight gradient distribution";
    wg.x_label = "gradient of the loss w.r.t. the weight";
    std::string table;
    if (snap && snap->contains("params") && (*snap)["params"].is_array())
      for (const auto& p : (*snap)["params"]) {
        if (!is_2d(p)) continue;
        two_d.insert(str(p, "name"));
        const json& h = p.contains("grad_hist") ? p["grad_hist"] : p.value("hist", json());
        if (auto hh =
                parse_hist(h, fmt::format("{} {}: mean {:+.6f}, std {:.3e}, grad:data {:.3e}", str(p, "name"), shape_text(p),
                                          num(p, "grad_mean"), num(p, "grad_std"), num(p, "grad_data_ratio"))))
          wg.hists.push_back(*hh);
        table += fmt::format(
            "<tr><td class=\"l\">{}</td><td "
            "class=\"l\">{}</td><td>{:.3e}</td><td>{:+.3e}</td><td>{:.3e}</td><td>{:.3e}</td><td>{}</td></tr>",
            esc(str(p, "name")), esc(shape_text(p)), num(p, "data_std"), num(p, "grad_mean"), num(p, "grad_std"),
            num(p, "grad_data_ratio"), fmt_num(num(p, "update_data_log10"), "{:.2f}"));
      }
    if (!wg.hists.empty()) {
      wg.title += " (" + snap_src + ")";
      figs.push_back({"weight_gradients", wg.title,
                      "Gradients of the 2-D parameters; the grad:data ratio says how fast each would move under one step.",
                      plot::render_svg(wg), ""});
      page.figure(figs.back());
    } else {
      page.not_drawn(wg.title, snap ? "no 2-D parameter carries a histogram"
                                    : "neither diagnostics.jsonl nor inspect.json is in the run folder");
    }
    if (!table.empty())
      page.body +=
          "<table><tr><th class=\"l\">parameter</th><th class=\"l\">shape</th><th>data std</th><th>grad mean</th><th>grad "
          "std</th>"
          "<th>grad:data</th><th>log10 update:data</th></tr>" +
          table + "</table>\n";
  }

  // Update:data ratios over training, against the lecture's 1e-3 guide line.
  if (!ur_steps.empty()) {
    plot::LineChart c;
    c.title = "Update:data ratio";
    c.x_label = "step";
    c.y_label = "log10(update std / data std)";
    c.has_ref_y = true;
    c.ref_y = -3;
    c.ref_label = "1e-3, the lecture's rough target";
    // Network order (the snapshot's parameter list), not the file's alphabetical keys, so
    // layers.12 does not come before layers.3.
    std::vector<std::size_t> order;
    if (snap && snap->contains("params") && (*snap)["params"].is_array())
      for (const auto& p : (*snap)["params"]) {
        auto it = std::find(ur_names.begin(), ur_names.end(), str(p, "name"));
        if (it != ur_names.end()) order.push_back(static_cast<std::size_t>(it - ur_names.begin()));
      }
    // Names the snapshot does not list (or all, without a snapshot) follow in natural order.
    std::vector<std::size_t> rest;
    for (std::size_t k = 0; k < ur_names.size(); ++k)
      if (std::find(order.begin(), order.end(), k) == order.end()) rest.push_back(k);
    std::stable_sort(rest.begin(), rest.end(),
                     [&](std::size_t a, std::size_t b) { return natural_less(ur_names[a], ur_names[b]); });
    order.insert(order.end(), rest.begin(), rest.end());
    for (std::size_t k : order) {
      if (!two_d.empty() && !two_d.count(ur_names[k])) continue;  // the lecture plots p.ndim == 2 only
      plot::Series s;
      s.label = ur_names[k];
      s.x = ur_steps;
      s.y = ur_values[k];
      s.width = 1.2;
      c.series.push_back(std::move(s));
    }
    figs.push_back({"update_ratio", c.title,
                    "log10 of (std of the SGD update / std of the parameter) per step; far below -3 learns too slowly, far above "
                    "is unstable.",
                    plot::render_svg(c), ""});
    page.figure(figs.back());
  } else {
    page.not_drawn("Update:data ratio", std::string(kUpdateRatioFile) + " is missing or empty");
  }

  // --- config -------------------------------------------------------------------------------
  page.body += "<h2 id=\"config\">Config</h2>\n";
  if (config)
    page.body += "<pre>" + esc(config->dump(2)) + "</pre>\n";
  else
    page.not_drawn("Config", std::string(kConfigFile) + " is missing");

  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>makemore report: " + esc(name) +
      "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n" + page.body + "</body>\n</html>\n";

  const fs::path out_path(res.html_path);
  if (out_path.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(out_path.parent_path(), ec);
  }
  write_file_atomic(res.html_path, html);
  if (opt.write_figures) {
    const fs::path fdir = dir / kFiguresDir;
    std::error_code ec;
    // A link there would send the figures, and the removal of stale ones, outside the run folder.
    if (is_symlink(fdir.string())) remove_file(fdir.string());
    // Figures of an earlier run in this folder that this one does not draw (another network,
    // --diag-every 0) would sit beside the new ones as if they were its own.
    std::set<std::string> current;
    for (const auto& f : figs) current.insert(f.file());
    for (const auto& e : fs::directory_iterator(fdir, ec)) {
      const std::string ext = e.path().extension().string();
      if ((ext == ".svg" || ext == ".png") && !current.count(e.path().filename().string())) fs::remove(e.path(), ec);
    }
    if (!figs.empty()) real_subdir(dir.string(), kFiguresDir);
    for (const auto& f : figs)
      write_file_atomic((fdir / f.file()).string(),
                        f.png.empty() ? "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + f.svg + "\n" : f.png);
  }
  res.figures = page.figure_ids;
  res.missing.insert(res.missing.begin(), in.missing.begin(), in.missing.end());
  return res;
}

void remove_report(const std::string& run_dir) {
  std::error_code ec;
  fs::remove(fs::path(run_dir) / kReportFile, ec);
  const std::string figures = run_dir + "/" + kFiguresDir;
  if (is_symlink(figures)) return remove_file(figures);  // the link only: its target is not ours
  for (const auto& e : fs::directory_iterator(fs::path(run_dir) / kFiguresDir, ec)) {
    const std::string ext = e.path().extension().string();
    if (ext == ".svg" || ext == ".png") fs::remove(e.path(), ec);
  }
}

}  // namespace mm
