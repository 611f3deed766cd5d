// `makemore study init`: the lecture's "loss log" with error bars. Trains each of the five
// single-hidden-layer variants over N seeds (the lecture's seed first), J at a time, and
// prints mean ± std beside the lecture's published values.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "commands.h"
#include "makemore/data.h"
#include "makemore/error.h"
#include "makemore/lecture.h"
#include "makemore/page.h"
#include "makemore/plot.h"
#include "makemore/presets.h"
#include "makemore/run.h"
#include "makemore/study.h"

namespace mm::cli {

namespace {

// One value has no spread to report: its std is null (0.0 read as "no variation at all").
nlohmann::json mean_std_json(const MeanStd& m) {
  return {{"mean", m.n > 0 ? nlohmann::json(m.mean) : nlohmann::json(nullptr)},
          {"std", m.n > 1 ? nlohmann::json(m.std) : nlohmann::json(nullptr)},
          {"n", m.n}};
}

using plot::BarChart;
using plot::LineChart;
using plot::render_svg;
using plot::Series;
using plot::xml_escape;

struct StudyInitArgs {
  int seeds = 5;
  int jobs = 0;
  int64_t steps = -1;
  std::string input, out_dir = "study-init";
  bool json = false;
  bool no_resume = false;  // train again the runs already finished in DIR/runs
};

// Two-sided 95% critical values of Student's t by degrees of freedom.
double t_critical_95(int df) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086};
  if (df < 1) return INFINITY;
  if (df <= 20) return table[df - 1];
  return df <= 40 ? 2.042 : 1.96;
}

// "2.1234 ± 0.0012", or "2.1234 (1 run)" where one run has no spread to show.
std::string mean_pm(const MeanStd& m) {
  return m.n > 1 ? fmt::format("{:.4f} ± {:.4f}", m.mean, m.std) : fmt::format("{:.4f} ({} run)", m.mean, m.n);
}

int run_study_init(const StudyInitArgs& a) {
  FILE* log = a.json ? stderr : stdout;
  const std::string input = a.input.empty() ? default_words_path() : a.input;
  const Dataset data = Dataset::load(input);
  const Vocab& vocab = data.vocab();
  std::vector<StudyJob> jobs;
  std::vector<Config> base;
  for (const auto& v : lecture::kVariants) base.push_back(load_preset(v.preset));
  const Splits splits = data.split_nonempty(base[0].block_size, base[0].split_seed);
  for (int s = 0; s < a.seeds; ++s)  // seed-major order: every variant's first seed finishes early
    for (const auto& cfg0 : base) {
      Config cfg = cfg0;
      cfg.seed = cfg0.seed + static_cast<uint64_t>(s);
      if (a.steps >= 0) cfg.steps = a.steps;
      jobs.push_back({cfg, cfg0.name, s});
    }
  const int threads = a.jobs > 0 ? a.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  // Each finished training is kept in DIR/runs/<preset>-seed<k>.json with its config and the
  // words' fingerprint, so a study stopped part way (Ctrl-C, a killed job) continues where it
  // stopped when the same command runs again; a run file whose config or words differ, or that
  // cannot be read, is trained again.
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(a.out_dir + "/runs", ec);
  if (ec) throw Error(fmt::format("{}: cannot create the study folder ({}); pass a writable -o DIR", a.out_dir, ec.message()));
  const std::string& words_hash = data.fingerprint();
  StudyPlan plan = plan_study(jobs, a.no_resume ? std::vector<std::string>{} : std::vector<std::string>{a.out_dir}, words_hash);
  const int reused = plan.kept();
  fmt::print(log, "study init: {} variants x {} seeds = {} trainings of {} steps, {} at a time\n", base.size(), a.seeds,
             jobs.size(), jobs[0].config.steps, threads);
  if (reused > 0)
    fmt::print(log, "  {} of them already finished in {}/runs (kept; --no-resume trains them again)\n", reused, a.out_dir);
  std::fflush(log);
  on_stop_say(
      fmt::format("interrupted; the trainings finished so far are kept in {}/runs/: the same command trains the "
                  "rest and writes the study",
                  a.out_dir));
  const auto t0 = std::chrono::steady_clock::now();
  const bool live = !a.json && stdout_is_terminal();
  auto progress = [&](int done, int total) {
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double eta = el / done * (total - done);
    if (live)
      fmt::print(log, "\r  {}/{} trainings done, {:.0f}s elapsed, ETA {:.0f}s ", done + reused, total + reused, el, eta);
    else
      fmt::print(log, "  {}/{} trainings done, {:.0f}s elapsed, ETA {:.0f}s\n", done + reused, total + reused, el, eta);
    std::fflush(log);
  };
  run_planned_study(plan, jobs, a.out_dir, words_hash, splits, vocab.size(), threads, progress);
  const auto& results = plan.results;
  if (live && !plan.todo.empty()) fmt::print(log, "\n");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Gather per variant.
  nlohmann::json variants = nlohmann::json::array();
  struct Row {
    MeanStd train, val, step0;
    double step0_lecture_seed = 0;
    int diverged = 0;
    std::vector<double> vals;
  };
  std::map<std::string, Row> rows;
  for (const auto& v : lecture::kVariants) {
    Row r;
    std::vector<double> tr, va, s0;
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& res : results) {
      if (res.label != v.preset) continue;
      if (res.seed_index == 0) r.step0_lecture_seed = res.outcome.stats.initial_loss;
      runs.push_back({{"seed", res.seed},
                      {"initial_loss", res.outcome.stats.initial_loss},
                      {"train_loss", res.outcome.losses.train},
                      {"val_loss", res.outcome.losses.val},
                      {"test_loss", res.outcome.losses.test},
                      {"diverged", res.outcome.stats.diverged},
                      {"seconds", res.outcome.stats.seconds},
                      {"loss_buckets", res.loss_buckets},
                      {"loss_bucket", res.loss_bucket}});
      if (res.outcome.stats.diverged) {
        ++r.diverged;
        continue;
      }
      tr.push_back(res.outcome.losses.train);
      va.push_back(res.outcome.losses.val);
      s0.push_back(res.outcome.stats.initial_loss);
    }
    r.train = mean_std(tr);
    r.val = mean_std(va);
    r.step0 = mean_std(s0);
    r.vals = va;
    variants.push_back({{"preset", v.preset},
                        {"change", v.what},
                        {"initial_loss_lecture_seed", r.step0_lecture_seed},
                        {"initial_loss", mean_std_json(r.step0)},
                        {"train_loss", mean_std_json(r.train)},
                        {"val_loss", mean_std_json(r.val)},
                        {"lecture",
                         {{"initial_loss", v.step0_loss},
                          {"train", v.lecture_train},
                          {"val", v.lecture_val},
                          {"torch_train", v.torch_train},
                          {"torch_val", v.torch_val}}},
                        {"val_minus_lecture", r.val.mean - v.lecture_val},
                        {"runs", runs}});
    rows[v.preset] = r;
  }
  const double expected = std::log(static_cast<double>(vocab.size()));
  fmt::print(log,
             "\nThe lecture's loss log, {} seed(s) per variant (mean ± std over seeds; step-0 loss with the lecture's seed):\n\n",
             a.seeds);
  fmt::print(log, "{:<20} {:>9} {:>9} | {:>17} {:>17} | {:>15}\n", "variant", "step-0", "lecture", "train", "val",
             "lecture tr/val");
  for (const auto& v : lecture::kVariants) {
    const Row& r = rows[v.preset];
    fmt::print(log, "{:<20} {:>9.4f} {:>9.4f} | {:>17} {:>17} | {:>6.4f} / {:.4f}{}\n", v.preset, r.step0_lecture_seed,
               v.step0_loss, mean_pm(r.train), mean_pm(r.val), v.lecture_train, v.lecture_val,
               r.diverged ? fmt::format("  ({} diverged)", r.diverged) : "");
  }
  fmt::print(log, "expected loss at initialization: -ln(1/{}) = {:.4f}\n", vocab.size(), expected);

  // Which consecutive fixes change the val loss by more than the seed-to-seed spread?
  // Welch's t of the difference of means against the two-sided 95% critical value for
  // min(n1, n2) - 1 degrees of freedom (conservative next to Welch's own df).
  nlohmann::json diffs = nlohmann::json::array();
  fmt::print(log, "\nval loss differences between consecutive variants (Welch t against its 95% critical value):\n");
  for (std::size_t i = 1; i < lecture::kVariants.size(); ++i) {
    const Row& p = rows[lecture::kVariants[i - 1].preset];
    const Row& q = rows[lecture::kVariants[i].preset];
    const double d = q.val.mean - p.val.mean;
    const double se =
        (p.val.n > 1 && q.val.n > 1) ? std::sqrt(p.val.std * p.val.std / p.val.n + q.val.std * q.val.std / q.val.n) : 0;
    const double t = se > 0 ? d / se : 0;
    const double crit = t_critical_95(std::min(p.val.n, q.val.n) - 1);
    const bool real = se > 0 && std::fabs(t) > crit;
    if (se > 0)
      fmt::print(log, "  {:<20} -> {:<20} {:+.4f}  t = {:+7.2f} (95%: {:.2f})  {}\n", lecture::kVariants[i - 1].preset,
                 lecture::kVariants[i].preset, d, t, crit, real ? "larger than the seed spread" : "within the seed spread");
    else
      fmt::print(log, "  {:<20} -> {:<20} {:+.4f}  (no spread to test against: needs 2+ seeds)\n",
                 lecture::kVariants[i - 1].preset, lecture::kVariants[i].preset, d);
    diffs.push_back({{"from", lecture::kVariants[i - 1].preset},
                     {"to", lecture::kVariants[i].preset},
                     {"val_diff", d},
                     {"welch_t", se > 0 ? nlohmann::json(t) : nlohmann::json(nullptr)},
                     {"t_critical_95", se > 0 ? nlohmann::json(crit) : nlohmann::json(nullptr)},
                     {"significant", real}});
  }
  fmt::print(log, "\n{} trainings in {:.1f}s ({} at a time){}\n", plan.todo.size(), seconds, threads,
             reused > 0 ? fmt::format("; {} more kept from an earlier run", reused) : "");

  nlohmann::json out{
      {"study", "init"},    {"seeds", a.seeds},     {"steps", jobs[0].config.steps}, {"jobs", threads},
      {"seconds", seconds}, {"reused", reused},     {"words_fnv1a", words_hash},     {"expected_initial_loss", expected},
      {"input", input},     {"variants", variants}, {"differences", diffs}};
  write_file_atomic(a.out_dir + "/study.json", out.dump(2) + "\n");

  // Figures: final val loss per variant with error bars, and the mean loss curves.
  BarChart bars;
  bars.title = fmt::format("Final val loss per variant (mean ± std over {} seeds)", a.seeds);
  bars.x_label = "variant";
  bars.y_label = "val loss";
  LineChart curves;
  const int bucket = loss_bucket_steps(jobs[0].config.steps);
  curves.title =
      fmt::format("Training loss, mean over seeds of each {}-step chunk", bucket == 1000 ? "1,000" : std::to_string(bucket));
  curves.x_label = "step";
  curves.y_label = "loss";
  for (const auto& v : lecture::kVariants) {
    const Row& r = rows[v.preset];
    bars.categories.push_back(std::string(v.preset).substr(8));
    bars.mean.push_back(r.val.mean);
    bars.stddev.push_back(r.val.std);
    Series sr;
    sr.label = v.preset;
    std::vector<double> sum;
    std::vector<int> count;
    for (const auto& res : results) {
      if (res.label != v.preset || res.outcome.stats.diverged) continue;
      if (sum.size() < res.loss_buckets.size()) {
        sum.resize(res.loss_buckets.size());
        count.resize(res.loss_buckets.size());
      }
      for (std::size_t i = 0; i < res.loss_buckets.size(); ++i) {
        sum[i] += res.loss_buckets[i];
        ++count[i];
      }
    }
    for (std::size_t i = 0; i < sum.size(); ++i) {
      sr.x.push_back((static_cast<double>(i) + 0.5) * bucket);
      sr.y.push_back(count[i] ? sum[i] / count[i] : NAN);
    }
    curves.series.push_back(std::move(sr));
  }
  const std::string bar_svg = render_svg(bars), curve_svg = render_svg(curves);
  std::filesystem::create_directories(a.out_dir + "/figures");
  write_file_atomic(a.out_dir + "/figures/val_loss.svg", bar_svg);
  write_file_atomic(a.out_dir + "/figures/loss_curves.svg", curve_svg);
  // The shared page (page.h): its stylesheet; the body is this study's markup.
  page::Page doc("makemore study init");
  std::string html;
  html += fmt::format(
      "<h1>Initialization study: the lecture's loss log over {} seeds</h1><p>{} trainings of {} steps ({} trained in "
      "{:.0f} s by this run, {} kept from an earlier one). Expected loss at initialization: -ln(1/{}) = {:.4f}.</p>",
      a.seeds, results.size(), jobs[0].config.steps, plan.todo.size(), seconds, reused, vocab.size(), expected);
  html +=
      "<table><tr><th class=\"l\">variant</th><th>step-0 loss</th><th>lecture step-0</th><th>train (mean ± std)</th><th>val "
      "(mean ± "
      "std)</th><th>lecture train / val</th></tr>";
  for (const auto& v : lecture::kVariants) {
    const Row& r = rows[v.preset];
    html += fmt::format(
        "<tr><td class=\"l\">{}</td><td>{:.4f}</td><td>{:.4f}</td><td>{}</td><td>{}</td><td>{:.4f} / {:.4f}</td></tr>",
        xml_escape(v.preset), r.step0_lecture_seed, v.step0_loss, mean_pm(r.train), mean_pm(r.val), v.lecture_train,
        v.lecture_val);
  }
  html += "</table><h2>Differences between consecutive variants</h2><ul>";
  for (const auto& d : diffs) {
    if (d["welch_t"].is_null())
      html += fmt::format("<li>{} &rarr; {}: {:+.4f} (no spread to test against: needs 2+ seeds)</li>",
                          d["from"].get<std::string>(), d["to"].get<std::string>(), d["val_diff"].get<double>());
    else
      html += fmt::format("<li>{} &rarr; {}: {:+.4f} (Welch t {:+.2f}, 95% critical {:.2f}): {}</li>",
                          d["from"].get<std::string>(), d["to"].get<std::string>(), d["val_diff"].get<double>(),
                          d["welch_t"].get<double>(), d["t_critical_95"].get<double>(),
                          d["significant"].get<bool>() ? "larger than the seed spread" : "within the seed spread");
  }
  html += "</ul><h2>Figures</h2>" + bar_svg + curve_svg;
  doc.html(html);
  write_file_atomic(a.out_dir + "/study.html", doc.document());
  fmt::print(log, "results in {}/study.json, study.html and figures/\n", a.out_dir);
  if (a.json) {
    for (auto& v : out["variants"]) v.erase("runs");
    fmt::print("{}\n", out.dump());
  }
  return 0;
}

}  // namespace

Runner add_study(CLI::App& app) {
  auto a = std::make_shared<StudyInitArgs>();
  auto* c = app.add_subcommand(
      "study",
      "Studies over many trainings: `study init` (the lecture's loss log with error bars), `study fidelity`, `study depth`");
  c->require_subcommand(1);
  auto* init = c->add_subcommand("init", "Train the five single-layer lecture variants over N seeds; mean ± std vs the lecture");
  init->add_option("--seeds", a->seeds, "Seeds per variant (the lecture's seed first)")
      ->capture_default_str()
      ->check(number_in(a->seeds, 1, 1000));
  init->add_option("--jobs,-j", a->jobs, "Trainings at a time (default: one per core)")->check(number_in(a->jobs, 0, 256));
  init->add_option("--steps", a->steps, "Steps per training (default: the presets' 200,000)")->check(at_least(a->steps, 0));
  init->add_option("-i,--input", a->input, "Word list (default: data/names.txt)");
  init->add_option("-o,--out", a->out_dir, "Folder for study.json, figures/ and runs/ (each finished training, kept for a rerun)")
      ->capture_default_str();
  init->add_flag("--json", a->json, "Print the summary as one JSON object on stdout");
  init->add_flag("--no-resume", a->no_resume,
                 "Train every run again (default: keep the runs finished in DIR/runs/ with the same config and words)");
  Runner fidelity = add_study_fidelity(*c);
  Runner depth = add_study_depth(*c);
  return [a, init, c, fidelity, depth] {
    if (init->parsed()) return run_study_init(*a);
    if (c->got_subcommand("depth")) return depth();
    return fidelity();
  };
}

}  // namespace mm::cli
