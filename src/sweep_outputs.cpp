// The sweep's outputs (sweep.h): study.json from the finished jobs, the text table,
// results.csv (one row per training) and study.html on the shared page: per axis a line chart
// (numeric values) or a bar chart, per pair of axes a heatmap and, when one is numeric, lines.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

#include "makemore/atomic_file.h"
#include "makemore/depth.h"
#include "makemore/error.h"
#include "makemore/page.h"
#include "makemore/plot.h"
#include "makemore/sweep.h"

namespace mm::sweep {

using json = nlohmann::json;

namespace {

json num_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
double num_of(const json& j) { return j.is_number() ? j.get<double>() : NAN; }

json mean_std_json(const std::vector<double>& v) {
  const study::MeanStd m = study::mean_std(v);
  return {{"mean", m.n > 0 ? json(m.mean) : json(nullptr)}, {"std", m.n > 1 ? json(m.std) : json(nullptr)}, {"n", m.n}};
}

// The unigram entropy of each (block size, split seed)'s training targets; NaN when no split.
double unigram_of(const Config& cfg, const Dataset& data, std::map<std::pair<int, uint64_t>, double>& cache) {
  const auto k = std::make_pair(cfg.block_size, cfg.split_seed);
  if (auto it = cache.find(k); it != cache.end()) return it->second;
  double u = NAN;
  try {
    u = depth::unigram_entropy(data.split_nonempty(k.first, k.second).train, data.vocab().size());
  } catch (const std::exception&) {
  }
  return cache[k] = u;
}

json run_json(const study::Job& job, int seed_index, const study::Finished& f, double unigram) {
  json r{{"seed_index", seed_index}, {"seed", job.config.seed}};
  if (!f.ok()) {
    r["status"] = "failed";
    r["error"] = f.error;
    return r;
  }
  const TrainOutcome& o = f.record.outcome;
  r["status"] = depth::status_name(depth::classify(o.stats.diverged, o.losses.val, unigram));
  r["initial_loss"] = num_or_null(o.stats.initial_loss);
  r["train_loss"] = num_or_null(o.losses.train);
  r["val_loss"] = num_or_null(o.losses.val);
  r["test_loss"] = num_or_null(o.losses.test);
  r["diverged"] = o.stats.diverged;
  r["diverged_step"] = o.stats.diverged_step;
  r["steps_per_sec"] = o.stats.steps_per_sec;
  r["seconds"] = f.record.seconds;
  return r;
}

// "trained", "stuck", ... when every run agrees; otherwise "2/5 trained".
std::string cell_status(const json& runs) {
  int trained = 0;
  std::string first = runs.front()["status"].get<std::string>();
  bool same = true;
  for (const auto& r : runs) {
    trained += r["status"] == "trained" ? 1 : 0;
    same = same && r["status"] == first;
  }
  return same ? first : fmt::format("{}/{} trained", trained, runs.size());
}

json cell_json_of(const Plan& plan, std::size_t c, const std::vector<study::Finished>& finished, double unigram) {
  const int seeds = plan.spec.seeds;
  json values = json::array();
  for (std::size_t a = 0; a < plan.spec.axes.size(); ++a) values.push_back(plan.spec.axes[a].texts[plan.cells[c].at[a]]);
  json runs = json::array();
  std::vector<double> tr, va, s0;
  for (int s = 0; s < seeds; ++s) {
    const std::size_t j = c * static_cast<std::size_t>(seeds) + static_cast<std::size_t>(s);
    runs.push_back(run_json(plan.jobs[j], s, finished[j], unigram));
    const json& r = runs.back();
    if (r["status"] == "failed") continue;
    if (std::isfinite(num_of(r["train_loss"]))) tr.push_back(num_of(r["train_loss"]));
    if (std::isfinite(num_of(r["val_loss"]))) va.push_back(num_of(r["val_loss"]));
    if (std::isfinite(num_of(r["initial_loss"]))) s0.push_back(num_of(r["initial_loss"]));
  }
  return {{"label", plan.cell_label(c)},       {"values", values},
          {"status", cell_status(runs)},       {"unigram_entropy", num_or_null(unigram)},
          {"train_loss", mean_std_json(tr)},   {"val_loss", mean_std_json(va)},
          {"initial_loss", mean_std_json(s0)}, {"runs", runs}};
}

std::string fmt_num(double v, int prec = 4) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, prec) : "-"; }

// "2.1234 ± 0.0012", "2.1234" for one run, "-" for none.
std::string mean_pm(const json& m) {
  if (m["n"].get<int>() == 0) return "-";
  if (m["n"].get<int>() == 1) return fmt_num(num_of(m["mean"]));
  return fmt::format("{} ± {}", fmt_num(num_of(m["mean"])), fmt_num(num_of(m["std"])));
}

// A CSV field: quoted when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}
std::string csv_num(const json& j) { return j.is_number() ? j.dump() : std::string(); }

}  // namespace

json study_json(const Plan& plan, const Dataset& data, const std::vector<study::Finished>& finished, double seconds) {
  json axes = json::array();
  for (const Axis& a : plan.spec.axes) axes.push_back({{"field", a.field}, {"values", a.values}, {"texts", a.texts}});
  std::map<std::pair<int, uint64_t>, double> unigrams;
  json cells = json::array();
  for (std::size_t c = 0; c < plan.cells.size(); ++c)
    cells.push_back(cell_json_of(plan, c, finished, unigram_of(plan.cells[c].config, data, unigrams)));
  return {{"study", "sweep"},
          {"base", plan.spec.base_name},
          {"input", data.source()},
          {"words_fnv1a", data.fingerprint()},
          {"axes", axes},
          {"seeds", plan.spec.seeds},
          {"trained_margin", depth::kTrainedMargin},
          {"seconds", seconds},
          {"cells", cells}};
}

std::string format_table(const json& study) {
  std::vector<std::string> head;
  for (const auto& a : study["axes"]) head.push_back(a["field"].get<std::string>());
  const int seeds = study["seeds"].get<int>();
  head.push_back(fmt::format("val loss ({} seed{})", seeds, seeds > 1 ? "s" : ""));
  head.push_back("train loss");
  head.push_back("status");
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : study["cells"]) {
    std::vector<std::string> row;
    for (const auto& v : c["values"]) row.push_back(v.get<std::string>());
    row.push_back(mean_pm(c["val_loss"]));
    row.push_back(mean_pm(c["train_loss"]));
    row.push_back(c["status"].get<std::string>());
    rows.push_back(std::move(row));
  }
  std::vector<std::size_t> width(head.size());
  const auto cols = [](const std::string& s) {  // display columns: UTF-8 continuation bytes take none
    std::size_t n = 0;
    for (unsigned char ch : s) n += (ch & 0xC0) != 0x80 ? 1 : 0;
    return n;
  };
  for (std::size_t k = 0; k < head.size(); ++k) {
    width[k] = cols(head[k]);
    for (const auto& r : rows) width[k] = std::max(width[k], cols(r[k]));
  }
  std::string o;
  rows.insert(rows.begin(), head);
  for (const auto& r : rows) {
    for (std::size_t k = 0; k < r.size(); ++k) o += r[k] + std::string(width[k] - cols(r[k]) + (k + 1 < r.size() ? 2 : 0), ' ');
    while (!o.empty() && o.back() == ' ') o.pop_back();
    o += "\n";
  }
  return o + fmt::format("trained: every seed's val loss below the unigram entropy of the training targets minus {:.1f} nats\n",
                         study["trained_margin"].get<double>());
}

std::string results_csv(const json& study) {
  std::string o;
  for (const auto& a : study["axes"]) o += csv_field(a["field"].get<std::string>()) + ",";
  o += "seed_index,seed,status,initial_loss,train_loss,val_loss,test_loss,diverged,diverged_step,steps_per_sec,seconds\n";
  for (const auto& c : study["cells"])
    for (const auto& r : c["runs"]) {
      for (const auto& v : c["values"]) o += csv_field(v.get<std::string>()) + ",";
      o += fmt::format("{},{},{},", r["seed_index"].get<int>(), r["seed"].get<uint64_t>(), r["status"].get<std::string>());
      for (const char* k : {"initial_loss", "train_loss", "val_loss", "test_loss"}) o += csv_num(r.value(k, json())) + ",";
      o += r.contains("diverged") ? fmt::format("{},{},", r["diverged"].get<bool>() ? 1 : 0, r["diverged_step"].get<int64_t>())
                                  : std::string(",,");
      o += csv_num(r.value("steps_per_sec", json())) + "," + csv_num(r.value("seconds", json())) + "\n";
    }
  return o;
}

// ---- the page -------------------------------------------------------------------------------

namespace {

// The finite val losses of the runs whose cell has value v on axis a (and w on axis b).
std::vector<double> val_losses(const json& study, std::size_t a, std::size_t v, std::size_t b = SIZE_MAX, std::size_t w = 0) {
  std::vector<double> out;
  const json& axes = study["axes"];
  for (const auto& c : study["cells"]) {
    if (c["values"][a] != axes[a]["texts"][v]) continue;
    if (b != SIZE_MAX && c["values"][b] != axes[b]["texts"][w]) continue;
    for (const auto& r : c["runs"])
      if (std::isfinite(num_of(r.value("val_loss", json())))) out.push_back(num_of(r["val_loss"]));
  }
  return out;
}

std::string safe_id(const std::string& field) {
  std::string s;
  for (char c : field) s += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return s;
}

page::Figure axis_bars(const json& study, std::size_t a) {
  const json& ax = study["axes"][a];
  plot::BarChart ch;
  ch.title = "Val loss by " + ax["field"].get<std::string>();
  ch.x_label = ax["field"].get<std::string>();
  ch.y_label = "val loss (nats)";
  for (std::size_t v = 0; v < ax["texts"].size(); ++v) {
    const study::MeanStd m = study::mean_std(val_losses(study, a, v));
    ch.categories.push_back(ax["texts"][v].get<std::string>());
    ch.mean.push_back(m.n ? m.mean : NAN);
    ch.stddev.push_back(m.std);
  }
  return {"axis_" + safe_id(ax["field"].get<std::string>()), ch.title,
          "Mean ± std over the seeds and every value of the other axes; diverged and failed runs left out.", plot::render_svg(ch),
          ""};
}

// A numeric axis: every value a finite number. Its x position, on a log10 scale when the values
// are all positive and span 20x or more (learning rates, gains), as such sweeps are spaced.
struct NumericAxis {
  std::vector<double> x;
  bool log = false;
};
std::optional<NumericAxis> numeric_axis(const json& axis) {
  NumericAxis n;
  for (const auto& v : axis["values"]) {
    if (!v.is_number() || !std::isfinite(v.get<double>())) return std::nullopt;
    n.x.push_back(v.get<double>());
  }
  if (n.x.size() < 2) return std::nullopt;
  const auto [lo, hi] = std::minmax_element(n.x.begin(), n.x.end());
  n.log = *lo > 0 && *hi >= 20 * *lo;
  if (n.log)
    for (double& x : n.x) x = std::log10(x);
  return n;
}
std::string x_label_of(const json& axis, const NumericAxis& n) {
  const std::string f = axis["field"].get<std::string>();
  return n.log ? "log10 " + f : f;
}

// Mean val loss against the numeric axis a (over the seeds and, when b is given, at value w of
// axis b; otherwise over every value of the other axes), with thin mean ± std lines.
void add_mean_lines(plot::LineChart& ch, const json& study, std::size_t a, const NumericAxis& n, std::size_t b, std::size_t w,
                    const std::string& label) {
  plot::Series mean, lo, hi;
  mean.label = label;
  const plot::LineStyle style = plot::series_style(ch.series.size() / 3);
  mean.color = lo.color = hi.color = style.color;
  mean.dash = style.dash;
  mean.width = 2;
  lo.width = hi.width = 1;
  lo.opacity = hi.opacity = 0.45;
  lo.dash = hi.dash = "4 3";
  for (std::size_t v = 0; v < n.x.size(); ++v) {
    const study::MeanStd m = study::mean_std(val_losses(study, a, v, b, w));
    for (plot::Series* sr : {&mean, &lo, &hi}) sr->x.push_back(n.x[v]);
    mean.y.push_back(m.n ? m.mean : NAN);
    lo.y.push_back(m.n > 1 ? m.mean - m.std : NAN);
    hi.y.push_back(m.n > 1 ? m.mean + m.std : NAN);
  }
  for (plot::Series* sr : {&mean, &lo, &hi}) ch.series.push_back(std::move(*sr));
}

page::Figure axis_line(const json& study, std::size_t a, const NumericAxis& n) {
  const json& ax = study["axes"][a];
  plot::LineChart ch;
  ch.title = "Val loss by " + ax["field"].get<std::string>();
  ch.x_label = x_label_of(ax, n);
  ch.width = 560;  // beside the heatmaps of a figure row
  ch.height = 320;
  ch.y_label = "val loss (nats)";
  add_mean_lines(ch, study, a, n, SIZE_MAX, 0, "");
  return {"axis_" + safe_id(ax["field"].get<std::string>()), ch.title,
          "Mean (solid) and mean ± std (dashed) over the seeds and every value of the other axes; diverged and failed "
          "runs left out.",
          plot::render_svg(ch), ""};
}

// Val loss against the numeric axis x, one line per value of the other axis `by`.
page::Figure pair_lines(const json& study, std::size_t x, const NumericAxis& n, std::size_t by) {
  const json& axes = study["axes"];
  const std::string fx = axes[x]["field"].get<std::string>(), fb = axes[by]["field"].get<std::string>();
  plot::LineChart ch;
  ch.title = "Val loss by " + fx + ", one line per " + fb;
  ch.x_label = x_label_of(axes[x], n);
  ch.width = 560;
  ch.height = 320;
  ch.y_label = "val loss (nats)";
  for (std::size_t w = 0; w < axes[by]["texts"].size(); ++w)
    add_mean_lines(ch, study, x, n, by, w, fb + "=" + axes[by]["texts"][w].get<std::string>());
  return {"lines_" + safe_id(fx) + "__by__" + safe_id(fb), ch.title,
          "Mean (solid) and mean ± std (dashed) over the seeds and every value of the other axes; diverged and failed "
          "runs left out.",
          plot::render_svg(ch), ""};
}

page::Figure pair_heatmap(const json& study, std::size_t a, std::size_t b) {
  const json& axes = study["axes"];
  plot::Heatmap h;
  const std::string fa = axes[a]["field"].get<std::string>(), fb = axes[b]["field"].get<std::string>();
  h.title = "Val loss: " + fa + " x " + fb;
  h.y_label = fa;
  h.x_label = fb;
  h.value_label = "val loss (nats)";
  for (const auto& t : axes[b]["texts"]) h.x_categories.push_back(t.get<std::string>());
  for (std::size_t v = 0; v < axes[a]["texts"].size(); ++v) {
    h.y_categories.push_back(axes[a]["texts"][v].get<std::string>());
    for (std::size_t w = 0; w < axes[b]["texts"].size(); ++w) {
      const study::MeanStd m = study::mean_std(val_losses(study, a, v, b, w));
      h.values.push_back(m.n ? m.mean : NAN);
      h.cell_text.push_back(m.n ? fmt::format("{:.3f}", m.mean) : "no run");
    }
  }
  return {"pair_" + safe_id(fa) + "__" + safe_id(fb), h.title,
          "Mean val loss over the seeds and every value of the other axes; diverged and failed runs left out.",
          plot::render_svg(h), ""};
}

page::Table cell_table(const json& study) {
  std::vector<std::string> head;
  for (const auto& a : study["axes"]) head.push_back(a["field"].get<std::string>());
  const std::size_t left = head.size();
  for (const char* h : {"step-0 loss", "train loss", "val loss", "status"}) head.push_back(h);
  page::Table t(head, left);
  for (const auto& c : study["cells"]) {
    std::vector<std::string> row;
    for (const auto& v : c["values"]) row.push_back(v.get<std::string>());
    for (const char* k : {"initial_loss", "train_loss", "val_loss"}) row.push_back(mean_pm(c[k]));
    const std::string st = c["status"].get<std::string>();
    row.push_back(st);
    t.add(row, st == "trained" || st == "stuck" || st == "diverged" || st == "failed" ? st : "");
  }
  return t;
}

}  // namespace

void write_outputs(const std::string& out_dir, const json& study) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir + "/figures", ec);
  if (ec) throw Error(fmt::format("{}: cannot create the study folder ({})", out_dir, ec.message()));
  write_file_atomic(out_dir + "/study.json", study.dump(1) + "\n");
  write_file_atomic(out_dir + "/results.csv", results_csv(study));
  page::Page doc("makemore study sweep", true);
  doc.h1("Sweep over " + study["base"].get<std::string>());
  doc.paragraph(
      fmt::format("{} cells x {} seed(s) on {}. Trained: every seed's val loss below the unigram entropy of the "
                  "training targets minus {:.1f} nats. {:.0f} s of training in this run.",
                  study["cells"].size(), study["seeds"].get<int>(), study["input"].get<std::string>(),
                  study["trained_margin"].get<double>(), study["seconds"].get<double>()));
  std::vector<page::Figure> figs;
  const std::size_t n = study["axes"].size();
  std::vector<std::optional<NumericAxis>> num;
  for (std::size_t a = 0; a < n; ++a) num.push_back(numeric_axis(study["axes"][a]));
  for (std::size_t a = 0; a < n; ++a) figs.push_back(num[a] ? axis_line(study, a, *num[a]) : axis_bars(study, a));
  for (std::size_t a = 0; a < n; ++a)
    for (std::size_t b = a + 1; b < n; ++b) {
      // Along the numeric axis (the one with more values when both are): a line per value of the other.
      const bool x_is_a = num[a] && (!num[b] || num[a]->x.size() >= num[b]->x.size());
      if (num[a] || num[b]) figs.push_back(x_is_a ? pair_lines(study, a, *num[a], b) : pair_lines(study, b, *num[b], a));
      figs.push_back(pair_heatmap(study, a, b));
    }
  if (!figs.empty()) {
    doc.section("figures", "Val loss by axis and by pair of axes");
    doc.figure_row(figs);
  }
  for (const auto& f : figs) write_file_atomic(out_dir + "/figures/" + f.file(), f.svg);
  doc.section("cells", "Every cell");
  doc.table(cell_table(study));
  write_file_atomic(out_dir + "/study.html", doc.document());
}

}  // namespace mm::sweep
