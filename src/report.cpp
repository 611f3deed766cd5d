// The run report (see report.h): the run folder read into a RunRecord (run_record.h), each
// section of the page a function of it, figures from run_figures.h, the page from page.h. The
// figure choices follow the lecture: log10 loss with 1,000-step means, tanh output /
// pre-activation histograms, the |h| > 0.99 saturation map, per-layer activation and gradient
// distributions, weight gradient distributions of the 2-D parameters, and update:data ratios
// against 1e-3.
#include "makemore/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <set>
#include <string_view>
#include <unordered_set>

#include "makemore/atomic_file.h"
#include "makemore/data.h"
#include "makemore/diag_io.h"
#include "makemore/error.h"
#include "makemore/page.h"
#include "makemore/rng.h"
#include "makemore/run.h"
#include "makemore/run_figures.h"
#include "makemore/run_record.h"
#include "makemore/sample.h"

namespace mm {

namespace {

namespace fs = std::filesystem;
using figures::fmt_num;
using figures::kMapText;
using figures::kSaturatedText;
using page::Figure;

// The page and the figures it shows (written as files too).
struct ReportPage {
  page::Page page;
  std::vector<Figure> figs;
  void add(Figure f) {
    page.figure(f);
    figs.push_back(std::move(f));
  }
};

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

// Where the run folder is, relative to the page (a report never names an absolute path).
std::string folder_text(const RunRecord& r, const std::string& html_path) {
  const std::string rel = page::relative_to_page(html_path, r.dir);
  return rel == "." ? "the folder of this page" : rel + " (relative to this page)";
}

void summary_section(page::Page& p, const RunRecord& r, const std::string& html_path) {
  p.h1("makemore run: " + r.name);
  p.paragraph("Run folder: " + folder_text(r, html_path), "meta");
  if (r.missing.empty()) return;
  std::string items;
  for (const auto& m : r.missing) items += "<li>" + page::escape(m) + "</li>";
  p.html("<div class=\"missing\" id=\"missing\"><b>Missing from the run folder</b> (the report draws what exists):<ul>" + items +
         "</ul></div>\n");
}

void results_section(page::Page& p, const RunRecord& r) {
  p.section("results", "Results");
  if (!r.result) {
    p.not_drawn("Split losses", std::string(kResultFile) + " is missing: the run did not finish");
  } else {
    const ResultRecord& res = *r.result;
    if (res.diverged_step)
      p.html(
          fmt::format("<p class=\"missing\" id=\"diverged\"><b>The training diverged at step {}</b> (the loss was not "
                      "finite). The losses below are those of the last checkpoint saved before it, step {}.</p>\n",
                      fmt_num(*res.diverged_step, "{:.0f}"), fmt_num(res.steps, "{:.0f}")));
    page::Table splits{{"split", "loss"}};
    splits.add({"train", fmt_num(res.train_loss)});
    splits.add({"val", fmt_num(res.val_loss)});
    splits.add({"test", fmt_num(res.test_loss)});
    p.table(splits);
    page::Table t{{"", "value"}};
    t.add({"initial loss", fmt_num(res.initial_loss)});
    t.add({"expected initial loss, -ln(1/vocab)", fmt_num(r.expected_initial_loss())});
    t.add({"steps", fmt_num(res.steps, "{:.0f}")});
    if (std::isfinite(res.seconds))
      t.add({"training time",
             fmt::format("{} s ({} steps/s)", fmt_num(res.seconds, "{:.2f}"), fmt_num(res.steps_per_sec, "{:.0f}"))});
    t.add({"parameters", fmt_num(res.params, "{:.0f}")});
    p.table(t);
  }
  if (r.inspect)
    p.paragraph(fmt::format("Inspection: initial loss {} against the expected {} (uniform prediction).",
                            fmt_num(r.inspect->initial_loss), fmt_num(r.inspect->expected_loss)));
}

// Samples from the checkpoint with the run's seed + 10, as the lecture; an error (no
// checkpoint, a damaged one) is shown and returned.
std::string samples_section(page::Page& p, const RunRecord& r, int count) {
  p.section("samples", "Samples");
  const fs::path dir(r.dir);
  try {
    if (!fs::is_regular_file(dir / kCheckpointFile)) throw Error(std::string(kCheckpointFile) + " is missing");
    LoadedRun run = load_run(r.dir);
    std::unordered_set<std::u32string> known;
    if (fs::is_regular_file(dir / kWordsFile))
      for (auto& w : load_words((dir / kWordsFile).string()).words) known.insert(std::move(w));
    SampleOptions so;
    so.count = count;
    TorchGenerator gen(run.config.seed + 10);  // the lecture's sampling generator
    const auto words = sample_words(*run.model, run.vocab, so, gen);
    int fresh = 0;
    std::string list = "<ol class=\"samples\">";
    for (const auto& w : words) {
      const bool is_new = !known.count(w);
      fresh += is_new;
      list += "<li>" + page::escape(to_utf8(w)) + (is_new ? "" : " <span class=\"meta\">(in data)</span>") + "</li>";
    }
    p.html(list + "</ol>\n");
    p.paragraph(
        fmt::format("{} samples, seed {} + 10; {} of them are not in the word list.", words.size(), run.config.seed, fresh),
        "meta");
    return "";
  } catch (const std::exception& e) {
    p.not_drawn("Samples", e.what());
    return e.what();
  }
}

void findings_section(page::Page& p, const RunRecord& r) {
  p.section("findings", "Findings");
  if (!r.inspect) {
    p.not_drawn("Findings", std::string(kInspectFile) + " is missing; train with diagnostics on (the default --diag-every)");
    return;
  }
  if (r.inspect->findings.empty()) {
    p.paragraph("No problems found: activations, gradients and the initial loss look healthy.", "ok");
    return;
  }
  for (const auto& f : r.inspect->findings) {
    std::string h = "<div class=\"finding\"><b>" + page::escape(f.id) + "</b>";
    if (!f.layer.empty()) h += " <span class=\"meta\">layer " + page::escape(f.layer) + "</span>";
    h += "<p>" + page::escape(f.message) + "</p>";
    if (!f.evidence.empty()) h += "<p class=\"meta\">Evidence: " + page::escape(f.evidence) + "</p>";
    if (!f.fix.empty()) h += "<p>Fix: " + page::escape(f.fix) + "</p>";
    p.html(h + "</div>\n");
  }
}

// Tanh outputs and pre-activations from inspect.json: the lecture's first diagnosis.
void tanh_figures(ReportPage& rp, const RunRecord& r) {
  const std::string src = r.inspect ? r.inspect->snapshot.step_text() : "";
  plot::HistogramChart out_c, pre_c;
  out_c.title = "Tanh outputs (" + src + ")";
  out_c.x_label = "tanh output h";
  pre_c.title = "Tanh pre-activations (" + src + ")";
  pre_c.x_label = "pre-activation (input to tanh)";
  if (r.inspect)
    for (const auto& l : r.inspect->snapshot.layers) {
      if (!l.bounded) continue;
      if (auto h = figures::histogram(l.hist, fmt::format("{}: mean {:+.2f}, std {:.2f}, saturated {:.2f}% ({})", l.label(),
                                                          l.out_mean, l.out_std, l.saturated_pct, kSaturatedText)))
        out_c.hists.push_back(*h);
      if (l.has_pre)
        if (auto h = figures::histogram(l.pre_hist,
                                        fmt::format("{} input: mean {:+.2f}, std {:.2f}", l.label(), l.pre_mean, l.pre_std)))
          pre_c.hists.push_back(*h);
    }
  const std::string why = r.inspect ? "inspect.json has no Tanh layer histograms" : "inspect.json is missing";
  if (!out_c.hists.empty())
    rp.add({"tanh_outputs", out_c.title,
            "Distribution of each Tanh layer's outputs; mass piled at -1 and 1 means saturated units whose gradient vanishes.",
            plot::render_svg(out_c), ""});
  else
    rp.page.not_drawn(out_c.title, why);
  if (!pre_c.hists.empty())
    rp.add({"preactivations", pre_c.title, "Distribution of the inputs to each Tanh; far beyond +-2 the tanh is flat.",
            plot::render_svg(pre_c), ""});
  else
    rp.page.not_drawn(pre_c.title, why);
}

void saturation_map_figure(ReportPage& rp, const RunRecord& r) {
  if (r.inspect && r.inspect->saturation_map) return rp.add(figures::saturation_figure(*r.inspect->saturation_map, "saturation"));
  std::string why = "inspect.json is missing";
  if (r.inspect)
    why = r.inspect->saturation_map_error.empty()
              ? "inspect.json has no saturation_map"
              : "inspect.json's saturation_map is malformed: " + r.inspect->saturation_map_error;
  rp.page.not_drawn("Saturated tanh units", why);
}

// Per-layer activation and gradient distributions (the lecture's two layered figures) and
// their statistics.
void layer_figures(ReportPage& rp, const RunRecord& r) {
  const SnapshotRecord* s = r.layer_snapshot();
  const std::string why =
      s ? "the layers carry no histograms" : "neither diagnostics.jsonl nor inspect.json is in the run folder";
  const plot::HistogramChart act = s ? figures::activation_chart(*s) : plot::HistogramChart{};
  const plot::HistogramChart grad = s ? figures::gradient_chart(*s) : plot::HistogramChart{};
  auto titled = [&](plot::HistogramChart c) {
    c.title += " (" + s->step_text() + ")";
    return c;
  };
  if (!act.hists.empty())
    rp.add({"activations", titled(act).title,
            "Outputs of each plotted layer; healthy Tanh layers keep a similar spread at every depth.",
            plot::render_svg(titled(act)), ""});
  else
    rp.page.not_drawn("Activation distribution", why);
  if (!grad.hists.empty())
    rp.add({"gradients", titled(grad).title,
            "Gradients flowing into each plotted layer's output; layers should agree, neither shrinking nor growing with depth.",
            plot::render_svg(titled(grad)), ""});
  else
    rp.page.not_drawn("Gradient distribution", why);
  if (!s || figures::plotted_layers(*s).empty()) return;
  // Saturation and dead units are counted for every layer, but only a bounded one's mean it.
  page::Table t{{"layer", "out mean", "out std", std::string("saturated (") + kSaturatedText + ")",
                 std::string("dead units (") + kMapText + " for every example)", "grad mean", "grad std"}};
  for (const LayerRecord* l : figures::plotted_layers(*s))
    t.add({l->label(), fmt::format("{:+.4f}", l->out_mean), fmt::format("{:.4f}", l->out_std),
           l->bounded ? fmt_num(l->saturated_pct, "{:.2f}%") : "n/a", l->bounded ? fmt_num(l->dead_units, "{:.0f}") : "n/a",
           fmt::format("{:+.2e}", l->grad_mean), fmt::format("{:.3e}", l->grad_std)});
  rp.page.table(t);
}

// Weight gradients of the 2-D parameters (the lecture skips biases and BatchNorm's 1-D ones).
void weight_gradient_figure(ReportPage& rp, const RunRecord& r) {
  const SnapshotRecord* s = r.layer_snapshot();
  plot::HistogramChart wg;
  wg.title = "Weight gradient distribution";
  wg.x_label = "gradient of the loss w.r.t. the weight";
  page::Table t{{"parameter", "shape", "data std", "grad mean", "grad std", "grad:data", "log10 update:data"}, 2};
  if (s)
    for (const auto& p : s->params) {
      if (p.shape.size() != 2) continue;
      if (auto h = figures::histogram(p.grad_hist, fmt::format("{} {}: mean {:+.6f}, std {:.3e}, grad:data {:.3e}", p.name,
                                                               p.shape_text(), p.grad_mean, p.grad_std, p.grad_data_ratio)))
        wg.hists.push_back(*h);
      t.add({p.name, p.shape_text(), fmt::format("{:.3e}", p.data_std), fmt::format("{:+.3e}", p.grad_mean),
             fmt::format("{:.3e}", p.grad_std), fmt::format("{:.3e}", p.grad_data_ratio),
             fmt_num(p.update_data_log10, "{:.2f}")});
    }
  if (!wg.hists.empty()) {
    wg.title += " (" + s->step_text() + ")";
    rp.add({"weight_gradients", wg.title,
            "Gradients of the 2-D parameters; the grad:data ratio says how fast each would move under one step.",
            plot::render_svg(wg), ""});
  } else {
    rp.page.not_drawn(
        wg.title, s ? "no 2-D parameter carries a histogram" : "neither diagnostics.jsonl nor inspect.json is in the run folder");
  }
  if (!t.rows.empty()) rp.page.table(t);
}

// The update-ratio series in network order (the snapshot's parameter list), then the names it
// does not list in natural order (layers.3 before layers.12); the 2-D parameters only when the
// snapshot says which they are, as the lecture plots p.ndim == 2 only.
std::vector<std::size_t> update_ratio_order(const RunRecord& r) {
  const auto& names = r.update_ratios.names;
  const SnapshotRecord* s = r.layer_snapshot();
  std::vector<std::size_t> order, rest;
  std::set<std::string> two_d;
  if (s)
    for (const auto& p : s->params) {
      if (p.shape.size() == 2) two_d.insert(p.name);
      auto it = std::find(names.begin(), names.end(), p.name);
      if (it != names.end()) order.push_back(static_cast<std::size_t>(it - names.begin()));
    }
  for (std::size_t k = 0; k < names.size(); ++k)
    if (std::find(order.begin(), order.end(), k) == order.end()) rest.push_back(k);
  std::stable_sort(rest.begin(), rest.end(), [&](std::size_t a, std::size_t b) { return natural_less(names[a], names[b]); });
  order.insert(order.end(), rest.begin(), rest.end());
  if (!two_d.empty()) std::erase_if(order, [&](std::size_t k) { return !two_d.count(names[k]); });
  return order;
}

// Update:data ratios over training, against the lecture's 1e-3 guide line.
void update_ratio_figure(ReportPage& rp, const RunRecord& r) {
  if (r.update_ratios.steps.empty())
    return rp.page.not_drawn("Update:data ratio", std::string(kUpdateRatioFile) + " is missing or empty");
  plot::LineChart c;
  c.title = "Update:data ratio";
  c.x_label = "step";
  c.y_label = "log10(update std / data std)";
  c.has_ref_y = true;
  c.ref_y = -3;
  c.ref_label = "1e-3, the lecture's rough target";
  for (std::size_t k : update_ratio_order(r)) {
    plot::Series s;
    s.label = r.update_ratios.names[k];
    s.x = r.update_ratios.steps;
    s.y = r.update_ratios.values[k];
    s.width = 1.2;
    c.series.push_back(std::move(s));
  }
  rp.add({"update_ratio", c.title,
          "log10 of (std of the SGD update / std of the parameter) per step; far below -3 learns too slowly, far above "
          "is unstable.",
          plot::render_svg(c), ""});
}

void figures_section(ReportPage& rp, const RunRecord& r) {
  rp.page.section("figures", "Figures");
  if (!r.losses.empty())
    rp.add(figures::loss_figure(r));
  else
    rp.page.not_drawn("Training loss", std::string(kMetricsFile) + " is missing or empty");
  tanh_figures(rp, r);
  saturation_map_figure(rp, r);
  layer_figures(rp, r);
  weight_gradient_figure(rp, r);
  update_ratio_figure(rp, r);
}

void config_section(page::Page& p, const RunRecord& r) {
  p.section("config", "Config");
  if (r.config)
    p.html("<pre>" + page::escape(r.config->dump(2)) + "</pre>\n");
  else
    p.not_drawn("Config", std::string(kConfigFile) + " is missing");
}

// The figures as files in DIR/figures/, replacing an earlier report's.
void write_figure_files(const fs::path& dir, const std::vector<Figure>& figs) {
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

}  // namespace

ReportResult write_report(const ReportOptions& opt) {
  const RunRecord r = read_run_record(opt.run_dir);
  ReportResult res;
  res.html_path = opt.out_file.empty() ? (fs::path(opt.run_dir) / kReportFile).string() : opt.out_file;
  ReportPage rp{page::Page("makemore report: " + r.name), {}};
  summary_section(rp.page, r, res.html_path);
  results_section(rp.page, r);
  const std::string samples_error = samples_section(rp.page, r, opt.samples);
  findings_section(rp.page, r);
  figures_section(rp, r);
  config_section(rp.page, r);

  const fs::path out_path(res.html_path);
  if (out_path.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(out_path.parent_path(), ec);
  }
  write_file_atomic(res.html_path, rp.page.document());
  if (opt.write_figures) write_figure_files(opt.run_dir, rp.figs);
  res.figures = rp.page.figure_ids();
  res.missing = r.missing;
  if (!samples_error.empty()) res.missing.push_back("samples: " + samples_error);
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
