// Comparing runs (see compare.h): each folder read into a RunRecord, each section of the page a
// function of the records, the figures from run_figures.h and plot.h.
#include "makemore/compare.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "makemore/atomic_file.h"
#include "makemore/error.h"
#include "makemore/page.h"
#include "makemore/plot.h"
#include "makemore/run_figures.h"

namespace mm {

namespace {

namespace fs = std::filesystem;
using figures::fmt_num;
using nlohmann::json;
using page::Figure;

// Each run's name on the page; a name two runs share gets its folder added.
std::vector<std::string> run_labels(const std::vector<RunRecord>& runs) {
  std::vector<std::string> out;
  for (const auto& r : runs) {
    const auto same = std::count_if(runs.begin(), runs.end(), [&](const RunRecord& o) { return o.name == r.name; });
    out.push_back(same > 1 ? r.name + " (" + r.dir + ")" : r.name);
  }
  return out;
}

// The vocabulary size: result.json's, else from the expected initial loss ln(V); 0 if unknown.
int vocab_size(const RunRecord& r) {
  if (r.result && std::isfinite(r.result->vocab_size)) return static_cast<int>(r.result->vocab_size);
  const double e = r.expected_initial_loss();
  return std::isfinite(e) ? static_cast<int>(std::lround(std::exp(e))) : 0;
}

// The plotted layers (the bounded activations, else all) of the run's layer snapshot.
std::vector<const LayerRecord*> layers_of(const RunRecord& r) {
  const SnapshotRecord* s = r.layer_snapshot();
  return s ? figures::plotted_layers(*s) : std::vector<const LayerRecord*>{};
}

std::string layer_stack_text(const RunRecord& r) {
  const SnapshotRecord* s = r.layer_snapshot();
  if (!s) return "no diagnostics";
  std::string t;
  for (const auto& l : s->layers) t += (t.empty() ? "" : " ") + l.type;
  return t;
}

// Every run has diagnostics and the same layer types in the same order.
bool same_layers(const std::vector<RunRecord>& runs) {
  for (const auto& r : runs)
    if (!r.layer_snapshot() || layer_stack_text(r) != layer_stack_text(runs.front())) return false;
  return true;
}

// Among the runs whose vocabulary is known (an unfinished run without diagnostics has none).
bool same_vocabulary(const std::vector<RunRecord>& runs) {
  std::set<int> sizes;
  for (const auto& r : runs)
    if (vocab_size(r) > 0) sizes.insert(vocab_size(r));
  return sizes.size() <= 1;
}

json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json run_json(const RunRecord& r, const std::string& label) {
  json j{{"label", label},
         {"dir", r.dir},
         {"vocab_size", vocab_size(r)},
         {"initial_loss", number(r.initial_loss())},
         {"expected_initial_loss", number(r.expected_initial_loss())},
         {"loss_records", r.losses.size()},
         {"val_loss_records", r.val_losses.size()},
         {"missing", r.missing}};
  const ResultRecord res = r.result.value_or(ResultRecord{});
  j["preset"] = res.preset;
  for (const auto& [k, v] : {std::pair{"train_loss", res.train_loss},
                             {"val_loss", res.val_loss},
                             {"test_loss", res.test_loss},
                             {"params", res.params},
                             {"steps", res.steps}})
    j[k] = number(v);
  j["findings"] = json::array();
  if (r.inspect)
    for (const auto& f : r.inspect->findings) j["findings"].push_back({{"id", f.id}, {"layer", f.layer}, {"message", f.message}});
  j["layers"] = json::array();
  for (const LayerRecord* l : layers_of(r))
    j["layers"].push_back({{"layer", l->index},
                           {"type", l->type},
                           {"out_mean", number(l->out_mean)},
                           {"out_std", number(l->out_std)},
                           {"saturated_pct", number(l->bounded ? l->saturated_pct : NAN)},
                           {"grad_std", number(l->grad_std)}});
  j["layers_step"] = r.layer_snapshot() ? number(r.layer_snapshot()->step) : json(nullptr);
  j["saturation_map"] = nullptr;
  if (r.inspect && r.inspect->saturation_map) {
    const auto& m = *r.inspect->saturation_map;
    j["saturation_map"] = {{"layer", m.layer}, {"rows", m.rows}, {"cols", m.cols}, {"white_pct", m.white_pct()}};
  }
  return j;
}

}  // namespace

namespace {

// What the page sections share.
struct View {
  const std::vector<RunRecord>& runs;
  std::vector<std::string> labels;
  page::Page& page;
};

void header_section(View& v, const std::string& html_path, const std::vector<std::string>& notes) {
  std::string title;
  for (const auto& l : v.labels) title += (title.empty() ? "" : " vs ") + l;
  v.page.h1("makemore compare: " + title);
  std::string items;
  for (std::size_t i = 0; i < v.runs.size(); ++i)
    items += "<li><b>" + page::escape(v.labels[i]) + "</b>: " + page::escape(page::relative_to_page(html_path, v.runs[i].dir)) +
             "</li>";
  v.page.html("<p class=\"meta\">Run folders, relative to this page:</p><ul class=\"meta\">" + items + "</ul>\n");
  std::string lines;
  for (const auto& n : notes) lines += "<li>" + page::escape(n) + "</li>";
  for (std::size_t i = 0; i < v.runs.size(); ++i)
    for (const auto& m : v.runs[i].missing) lines += "<li>" + page::escape(v.labels[i] + ": " + m) + "</li>";
  if (!lines.empty())
    v.page.html("<div class=\"missing\" id=\"notes\"><b>Where these runs do not compare</b>, and what their folders lack:<ul>" +
                lines + "</ul></div>\n");
}

void results_section(View& v) {
  v.page.section("results", "Results");
  page::Table t({"run", "parameters", "steps", "train", "val", "test", "initial loss", "expected -ln(1/V)", "V", "findings"});
  for (std::size_t i = 0; i < v.runs.size(); ++i) {
    const RunRecord& r = v.runs[i];
    const ResultRecord res = r.result.value_or(ResultRecord{});
    std::string ids;
    if (r.inspect)
      for (const auto& f : r.inspect->findings) ids += (ids.empty() ? "" : ", ") + f.id;
    t.add({v.labels[i], fmt_num(res.params, "{:.0f}"), fmt_num(res.steps, "{:.0f}"), fmt_num(res.train_loss),
           fmt_num(res.val_loss), fmt_num(res.test_loss), fmt_num(r.initial_loss()), fmt_num(r.expected_initial_loss()),
           vocab_size(r) ? std::to_string(vocab_size(r)) : "n/a", r.inspect ? (ids.empty() ? "none" : ids) : "n/a"});
  }
  v.page.table(t);
  v.page.paragraph(
      "Initial loss: the first minibatch's loss at initialization; a network that predicts uniformly starts at "
      "-ln(1/V). Final losses are over the whole splits, in eval mode.",
      "meta");
}

void loss_section(View& v) {
  v.page.section("loss", "Loss");
  plot::LineChart c;
  c.title = "Training loss (chunk means) and validation loss";
  c.x_label = "step";
  c.y_label = "log10(loss)";
  for (std::size_t i = 0; i < v.runs.size(); ++i) {
    const std::string& color = plot::palette()[i % plot::palette().size()];
    plot::Series mean = figures::loss_mean_series(v.runs[i].losses);
    mean.label = v.labels[i] + ": train, " + mean.label;
    mean.color = color;
    c.series.push_back(std::move(mean));
    if (v.runs[i].val_losses.empty()) continue;
    plot::Series val = figures::val_loss_series(v.runs[i].val_losses);
    val.label = v.labels[i] + ": validation (whole split)";
    val.color = color;
    val.dash = "7 3";
    c.series.push_back(std::move(val));
  }
  v.page.figure({"loss", c.title,
                 "Each run in one color: the mean of log10 minibatch loss over chunks of steps (solid) and, when train "
                 "--eval-every recorded it, the validation loss (dashed).",
                 plot::render_svg(c), ""});
}

// One statistic of the one plotted layer (the lecture's single Tanh), one bar per run.
Figure layer_stat_bars(View& v, const std::string& id, const std::string& title, const std::string& y_label,
                       double LayerRecord::*stat) {
  plot::BarChart c;
  c.title = title;
  c.y_label = y_label;
  c.x_label = layers_of(v.runs.front()).front()->label() + ", " + v.runs.front().layer_snapshot()->step_text();
  for (std::size_t i = 0; i < v.runs.size(); ++i) {
    c.categories.push_back(v.labels[i]);
    c.mean.push_back(layers_of(v.runs[i]).front()->*stat);
  }
  return {id, title, "One bar per run.", plot::render_svg(c), ""};
}

// One statistic of the plotted layers, one line per run, x = the layer's place in forward order.
Figure layer_stat_figure(View& v, const std::string& id, const std::string& title, const std::string& y_label,
                         double LayerRecord::*stat, bool log_y) {
  if (layers_of(v.runs.front()).size() == 1) return layer_stat_bars(v, id, title, y_label, stat);
  plot::LineChart c;
  c.title = title;
  c.x_label = "plotted layer, in forward order (" + layer_stack_text(v.runs.front()) + ")";
  c.y_label = log_y ? y_label + ", log10" : y_label;
  c.log_y = log_y;
  c.y_from_zero = !log_y;
  for (std::size_t i = 0; i < v.runs.size(); ++i) {
    plot::Series s;
    s.label = v.labels[i] + " (" + v.runs[i].layer_snapshot()->step_text() + ")";
    s.width = 2;
    double k = 1;
    for (const LayerRecord* l : layers_of(v.runs[i])) {
      s.x.push_back(k++);
      s.y.push_back(l->*stat);
    }
    c.series.push_back(std::move(s));
  }
  return {id, title, "One line per run; the lecture's healthy network keeps these level across depth.", plot::render_svg(c), ""};
}

// The layer statistics in one table: a row per layer, three columns per run (aligned stacks).
void aligned_layer_table(View& v) {
  std::vector<std::string> head{"layer"};
  for (const auto& l : v.labels)
    for (const char* what : {"out std", "saturated %", "grad std"}) head.push_back(l + ": " + what);
  page::Table t(head);
  const auto first = layers_of(v.runs.front());
  for (std::size_t k = 0; k < first.size(); ++k) {
    std::vector<std::string> row{first[k]->label()};
    for (const auto& r : v.runs) {
      const LayerRecord* l = layers_of(r)[k];
      row.push_back(fmt::format("{:.4f}", l->out_std));
      row.push_back(l->bounded ? fmt_num(l->saturated_pct, "{:.2f}") : "n/a");
      row.push_back(fmt::format("{:.3e}", l->grad_std));
    }
    t.add(row);
  }
  v.page.table(t);
}

// Each run's layer statistics in its own table (the stacks differ).
void layer_tables(View& v) {
  for (std::size_t i = 0; i < v.runs.size(); ++i) {
    v.page.paragraph(v.labels[i]);
    page::Table t({"layer", "out std", std::string("saturated % (") + figures::kSaturatedText + ")", "grad std"});
    for (const LayerRecord* l : layers_of(v.runs[i]))
      t.add({l->label(), fmt::format("{:.4f}", l->out_std), l->bounded ? fmt_num(l->saturated_pct, "{:.2f}") : "n/a",
             fmt::format("{:.3e}", l->grad_std)});
    v.page.table(t);
  }
}

// Per-run histogram charts side by side (activations or gradients).
void histogram_row(View& v, const std::string& id, bool gradients) {
  std::vector<Figure> row;
  for (std::size_t i = 0; i < v.runs.size(); ++i) {
    const SnapshotRecord* s = v.runs[i].layer_snapshot();
    if (!s) continue;
    plot::HistogramChart c = gradients ? figures::gradient_chart(*s) : figures::activation_chart(*s);
    c.title = v.labels[i] + " (" + s->step_text() + ")";
    c.width = 480;
    c.height = 300;
    row.push_back({id + "_" + std::to_string(i + 1), c.title,
                   (gradients ? "Gradient" : "Activation") + std::string(" distribution of each plotted layer."),
                   plot::render_svg(c), ""});
  }
  if (!row.empty()) v.page.figure_row(row);
}

void layers_section(View& v) {
  v.page.section("layers", "Per-layer statistics");
  if (std::none_of(v.runs.begin(), v.runs.end(), [](const RunRecord& r) { return r.layer_snapshot(); }))
    return v.page.not_drawn("Per-layer statistics", "no run has diagnostics (diagnostics.jsonl or inspect.json)");
  v.page.paragraph(std::string("From each run's first diagnostics snapshot (the network at initialization when trained with "
                               "diagnostics); saturated counts ") +
                       figures::kSaturatedText + ".",
                   "meta");
  if (same_layers(v.runs) && !layers_of(v.runs.front()).empty()) {
    v.page.figure(layer_stat_figure(v, "layer_out_std", "Activation std by layer", "std of the layer output",
                                    &LayerRecord::out_std, false));
    if (layers_of(v.runs.front()).front()->bounded)
      v.page.figure(layer_stat_figure(v, "layer_saturation",
                                      std::string("Saturated units by layer (") + figures::kSaturatedText + ")", "saturated %",
                                      &LayerRecord::saturated_pct, false));
    v.page.figure(layer_stat_figure(v, "layer_grad_std", "Gradient std by layer", "std of dL/d(layer output)",
                                    &LayerRecord::grad_std, true));
    aligned_layer_table(v);
  } else {
    v.page.not_drawn("Per-layer charts", "the layer stacks differ, so layers do not line up; each run's table follows");
    layer_tables(v);
  }
  v.page.html("<h3>Activation distributions</h3>\n");
  histogram_row(v, "activations", false);
  v.page.html("<h3>Gradient distributions</h3>\n");
  histogram_row(v, "gradients", true);
}

void saturation_section(View& v) {
  v.page.section("saturation", "Saturation maps");
  std::vector<Figure> row;
  for (std::size_t i = 0; i < v.runs.size(); ++i) {
    const RunRecord& r = v.runs[i];
    if (!r.inspect || !r.inspect->saturation_map) continue;
    Figure f = figures::saturation_figure(*r.inspect->saturation_map, "saturation_" + std::to_string(i + 1));
    f.title = v.labels[i] + ": " + f.title + " (" + r.inspect->snapshot.step_text() + ")";
    row.push_back(std::move(f));
  }
  for (std::size_t i = 0; i < v.runs.size(); ++i)
    if (!v.runs[i].inspect || !v.runs[i].inspect->saturation_map)
      v.page.not_drawn(v.labels[i] + ": saturation map", "inspect.json has none");
  if (!row.empty()) v.page.figure_row(row);
}

void findings_section(View& v) {
  v.page.section("findings", "Findings");
  for (std::size_t i = 0; i < v.runs.size(); ++i) {
    const RunRecord& r = v.runs[i];
    std::string h = "<h3>" + page::escape(v.labels[i]) + "</h3>\n";
    if (!r.inspect)
      h += "<p class=\"missing\">inspect.json is missing</p>\n";
    else if (r.inspect->findings.empty())
      h += "<p class=\"ok\">No problems found.</p>\n";
    for (const auto& f : r.inspect ? r.inspect->findings : std::vector<FindingRecord>{})
      h += "<div class=\"finding\"><b>" + page::escape(f.id) + "</b><p>" + page::escape(f.message) + "</p>" +
           (f.fix.empty() ? "" : "<p>Fix: " + page::escape(f.fix) + "</p>") + "</div>\n";
    v.page.html(h);
  }
}

}  // namespace

std::vector<std::string> compare_notes(const std::vector<RunRecord>& runs) {
  std::vector<std::string> notes;
  const auto labels = run_labels(runs);
  auto list = [&](auto&& text) {
    std::string s;
    for (std::size_t i = 0; i < runs.size(); ++i) s += (i ? ", " : "") + labels[i] + " " + text(runs[i]);
    return s;
  };
  if (!same_vocabulary(runs))
    notes.push_back("The vocabularies differ (" + list([](const RunRecord& r) { return std::to_string(vocab_size(r)); }) +
                    " characters): the losses are per character over different alphabets, so compare each run with its "
                    "own expected initial loss -ln(1/V) rather than the runs' losses with one another.");
  if (!same_layers(runs))
    notes.push_back("The layer stacks differ (" + list([](const RunRecord& r) { return "[" + layer_stack_text(r) + "]"; }) +
                    "): the per-layer statistics are shown for each run, not aligned layer by layer.");
  for (std::size_t i = 0; i < runs.size(); ++i) {
    if (runs[i].losses.empty()) notes.push_back(labels[i] + " has no per-step losses (metrics.jsonl): not in the loss chart.");
    if (!runs[i].layer_snapshot())
      notes.push_back(labels[i] +
                      " has no diagnostics (trained with --diag-every 0?): no per-layer statistics or saturation map.");
  }
  return notes;
}

json compare_json(const std::vector<RunRecord>& runs) {
  const auto labels = run_labels(runs);
  json j{{"runs", json::array()},
         {"comparable", {{"vocabulary", same_vocabulary(runs)}, {"layers", same_layers(runs)}}},
         {"notes", compare_notes(runs)}};
  for (std::size_t i = 0; i < runs.size(); ++i) j["runs"].push_back(run_json(runs[i], labels[i]));
  return j;
}

CompareResult write_compare(const CompareOptions& opt) {
  if (opt.run_dirs.size() < 2)
    throw Error(fmt::format("compare: needs two or more run folders, got {}; e.g. `makemore compare runs/a runs/b`",
                            opt.run_dirs.size()));
  std::vector<RunRecord> runs;
  for (const auto& d : opt.run_dirs) runs.push_back(read_run_record(d));
  CompareResult res;
  res.html_path = opt.out_file.empty() ? kCompareFile : opt.out_file;
  res.notes = compare_notes(runs);
  res.json = compare_json(runs);
  page::Page p("makemore compare", true);
  View v{runs, run_labels(runs), p};
  header_section(v, res.html_path, res.notes);
  results_section(v);
  loss_section(v);
  layers_section(v);
  saturation_section(v);
  findings_section(v);
  const fs::path out(res.html_path);
  if (out.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(out.parent_path(), ec);
  }
  write_file_atomic(res.html_path, p.document());
  res.figures = p.figure_ids();
  for (std::size_t i = 0; i < runs.size(); ++i)
    for (const auto& m : runs[i].missing) res.missing.push_back(v.labels[i] + ": " + m);
  return res;
}

}  // namespace mm
