// The init study (study_init.h): jobs for the five variants x seeds, gathered per variant into
// study.json, the text table, the figures and the page.
#include "makemore/study_init.h"

#include <fmt/format.h>

#include <boost/math/distributions/students_t.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>

#include "makemore/atomic_file.h"
#include "makemore/cluster.h"
#include "makemore/error.h"
#include "makemore/lecture.h"
#include "makemore/page.h"
#include "makemore/plot.h"
#include "makemore/presets.h"

namespace mm::study {

using json = nlohmann::json;

namespace {

// One value has no spread to report: its std is null (0.0 read as "no variation at all").
json mean_std_json(const MeanStd& m) {
  return {{"mean", m.n > 0 ? json(m.mean) : json(nullptr)}, {"std", m.n > 1 ? json(m.std) : json(nullptr)}, {"n", m.n}};
}

// "2.1234 ± 0.0012", or "2.1234 (1 run)" where one run has no spread to show.
std::string mean_pm(const MeanStd& m) {
  return m.n > 1 ? fmt::format("{:.4f} ± {:.4f}", m.mean, m.std) : fmt::format("{:.4f} ({} run)", m.mean, m.n);
}

struct Run {  // a job's place in the study and its result
  std::string preset;
  int seed_index = 0;
  uint64_t seed = 0;
  const Record* rec = nullptr;
};

struct Row {
  MeanStd train, val, step0;
  double step0_lecture_seed = 0;
  int diverged = 0;
};

// Seed-major order: every variant's first seed finishes early.
std::vector<Job> init_jobs(const InitOptions& opt, std::vector<Run>& runs) {
  std::vector<Job> jobs;
  for (int s = 0; s < opt.seeds; ++s)
    for (const auto& v : lecture::kVariants) {
      Config cfg = load_preset(v.preset);
      if (opt.steps >= 0) cfg.steps = opt.steps;
      const uint64_t seed = cfg.seed + static_cast<uint64_t>(s);
      jobs.push_back(make_job(fmt::format("{}-seed{}", v.preset, s), cfg, seed));
      runs.push_back({v.preset, s, seed, nullptr});
    }
  return jobs;
}

// One variant's row and its study.json entry.
json gather_variant(const lecture::VariantNumbers& v, const std::vector<Run>& runs, Row& r) {
  std::vector<double> tr, va, s0;
  json runs_j = json::array();
  for (const Run& run : runs) {
    if (run.preset != v.preset) continue;
    const Record& res = *run.rec;
    if (run.seed_index == 0) r.step0_lecture_seed = res.outcome.stats.initial_loss;
    runs_j.push_back({{"seed", run.seed},
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
  return {{"preset", v.preset},
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
          {"runs", runs_j}};
}

// Which consecutive fixes change the val loss by more than the seed-to-seed spread? Welch's t
// of the difference of means against Student's t two-sided 95% critical value (Boost.Math) at
// the Welch-Satterthwaite degrees of freedom.
json differences(const std::map<std::string, Row>& rows, std::string& text) {
  json diffs = json::array();
  text += "\nval loss differences between consecutive variants (Welch t against its 95% critical value):\n";
  for (std::size_t i = 1; i < lecture::kVariants.size(); ++i) {
    const char *from = lecture::kVariants[i - 1].preset, *to = lecture::kVariants[i].preset;
    const Row &p = rows.at(from), &q = rows.at(to);
    const double d = q.val.mean - p.val.mean;
    const double se =
        (p.val.n > 1 && q.val.n > 1) ? std::sqrt(p.val.std * p.val.std / p.val.n + q.val.std * q.val.std / q.val.n) : 0;
    const double t = se > 0 ? d / se : 0;
    const double df = welch_df(p.val, q.val);
    const double crit = t_critical_95(df);
    const bool real = se > 0 && std::fabs(t) > crit;
    if (se > 0)
      text += fmt::format("  {:<20} -> {:<20} {:+.4f}  t = {:+7.2f} (df {:.1f}, 95%: {:.2f})  {}\n", from, to, d, t, df, crit,
                          real ? "larger than the seed spread" : "within the seed spread");
    else
      text += fmt::format("  {:<20} -> {:<20} {:+.4f}  (no spread to test against: needs 2+ seeds)\n", from, to, d);
    diffs.push_back({{"from", from},
                     {"to", to},
                     {"val_diff", d},
                     {"welch_t", se > 0 ? json(t) : json(nullptr)},
                     {"welch_df", se > 0 ? json(df) : json(nullptr)},
                     {"t_critical_95", se > 0 ? json(crit) : json(nullptr)},
                     {"significant", real}});
  }
  return diffs;
}

std::string table(const std::map<std::string, Row>& rows, int seeds, int vocab, double expected) {
  std::string o = fmt::format(
      "\nThe lecture's loss log, {} seed(s) per variant (mean ± std over seeds; step-0 loss with the lecture's seed):\n\n",
      seeds);
  o += fmt::format("{:<20} {:>9} {:>9} | {:>17} {:>17} | {:>15}\n", "variant", "step-0", "lecture", "train", "val",
                   "lecture tr/val");
  for (const auto& v : lecture::kVariants) {
    const Row& r = rows.at(v.preset);
    o += fmt::format("{:<20} {:>9.4f} {:>9.4f} | {:>17} {:>17} | {:>6.4f} / {:.4f}{}\n", v.preset, r.step0_lecture_seed,
                     v.step0_loss, mean_pm(r.train), mean_pm(r.val), v.lecture_train, v.lecture_val,
                     r.diverged ? fmt::format("  ({} diverged)", r.diverged) : "");
  }
  o += fmt::format("expected loss at initialization: -ln(1/{}) = {:.4f}\n", vocab, expected);
  return o;
}

// The mean over seeds of each loss chunk, one series per variant.
plot::LineChart curve_chart(const std::vector<Run>& runs, int bucket) {
  plot::LineChart curves;
  curves.title =
      fmt::format("Training loss, mean over seeds of each {}-step chunk", bucket == 1000 ? "1,000" : std::to_string(bucket));
  curves.x_label = "step";
  curves.y_label = "loss";
  for (const auto& v : lecture::kVariants) {
    plot::Series sr;
    sr.label = v.preset;
    std::vector<double> sum;
    std::vector<int> count;
    for (const Run& run : runs) {
      const Record& res = *run.rec;
      if (run.preset != v.preset || res.outcome.stats.diverged) continue;
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
  return curves;
}

std::string page(const json& out, const std::map<std::string, Row>& rows, int trained, int vocab, const std::string& svgs) {
  using plot::xml_escape;
  std::string html;
  const int seeds = out["seeds"].get<int>(), reused = out["reused"].get<int>();
  html += fmt::format(
      "<h1>Initialization study: the lecture's loss log over {} seeds</h1><p>{} trainings of {} steps ({} trained in "
      "{:.0f} s by this run, {} kept from an earlier one). Expected loss at initialization: -ln(1/{}) = {:.4f}.</p>",
      seeds, seeds * static_cast<int>(lecture::kVariants.size()), out["steps"].get<int64_t>(), trained,
      out["seconds"].get<double>(), reused, vocab, out["expected_initial_loss"].get<double>());
  html +=
      "<table><tr><th class=\"l\">variant</th><th>step-0 loss</th><th>lecture step-0</th><th>train (mean ± std)</th><th>val "
      "(mean ± "
      "std)</th><th>lecture train / val</th></tr>";
  for (const auto& v : lecture::kVariants) {
    const Row& r = rows.at(v.preset);
    html += fmt::format(
        "<tr><td class=\"l\">{}</td><td>{:.4f}</td><td>{:.4f}</td><td>{}</td><td>{}</td><td>{:.4f} / {:.4f}</td></tr>",
        xml_escape(v.preset), r.step0_lecture_seed, v.step0_loss, mean_pm(r.train), mean_pm(r.val), v.lecture_train,
        v.lecture_val);
  }
  html += "</table><h2>Differences between consecutive variants</h2><ul>";
  for (const auto& d : out["differences"]) {
    if (d["welch_t"].is_null())
      html += fmt::format("<li>{} &rarr; {}: {:+.4f} (no spread to test against: needs 2+ seeds)</li>",
                          d["from"].get<std::string>(), d["to"].get<std::string>(), d["val_diff"].get<double>());
    else
      html += fmt::format("<li>{} &rarr; {}: {:+.4f} (Welch t {:+.2f}, {:.1f} df, 95% critical {:.2f}): {}</li>",
                          d["from"].get<std::string>(), d["to"].get<std::string>(), d["val_diff"].get<double>(),
                          d["welch_t"].get<double>(), d["welch_df"].get<double>(), d["t_critical_95"].get<double>(),
                          d["significant"].get<bool>() ? "larger than the seed spread" : "within the seed spread");
  }
  // The shared page (page.h): its stylesheet; the body is this study's markup.
  page::Page doc("makemore study init");
  doc.html(html + "</ul><h2>Figures</h2>" + svgs);
  return doc.document();
}

// Figures (final val loss per variant with error bars, the mean loss curves) and the page.
void write_figures_and_page(const std::string& dir, const json& out, const std::map<std::string, Row>& rows,
                            const std::vector<Run>& runs, int trained, int vocab) {
  plot::BarChart bars;
  bars.title = fmt::format("Final val loss per variant (mean ± std over {} seeds)", out["seeds"].get<int>());
  bars.x_label = "variant";
  bars.y_label = "val loss";
  for (const auto& v : lecture::kVariants) {
    bars.categories.push_back(std::string(v.preset).substr(8));
    bars.mean.push_back(rows.at(v.preset).val.mean);
    bars.stddev.push_back(rows.at(v.preset).val.std);
  }
  const std::string bar_svg = plot::render_svg(bars);
  const std::string curve_svg = plot::render_svg(curve_chart(runs, loss_bucket_steps(out["steps"].get<int64_t>())));
  std::filesystem::create_directories(dir + "/figures");
  write_file_atomic(dir + "/figures/val_loss.svg", bar_svg);
  write_file_atomic(dir + "/figures/loss_curves.svg", curve_svg);
  write_file_atomic(dir + "/study.html", page(out, rows, trained, vocab, bar_svg + curve_svg));
}

}  // namespace

double t_critical_95(double df) {
  if (!(df > 0)) return INFINITY;
  return boost::math::quantile(boost::math::students_t(df), 0.975);
}

double welch_df(const MeanStd& a, const MeanStd& b) {
  if (a.n < 2 || b.n < 2) return NAN;
  const double va = a.std * a.std / a.n, vb = b.std * b.std / b.n;
  const double den = va * va / (a.n - 1) + vb * vb / (b.n - 1);
  return den > 0 ? (va + vb) * (va + vb) / den : NAN;
}

InitOutput run_init_study(const InitOptions& opt, const InitHooks& hooks) {
  // Under mpirun or srun the trainings are spread over the ranks (cluster.h), as a sweep's are.
  cluster::World world;
  InitOutput out;
  out.worker = cluster::served_as_worker(world);
  if (out.worker) return out;
  const Dataset data = cluster::prepare_and_share(
      world, [&] { return Dataset::load(opt.input); }, [](const Dataset& d) -> const Dataset& { return d; });
  std::vector<Run> runs;
  const std::vector<Job> jobs = init_jobs(opt, runs);
  const int threads = default_threads(opt.jobs);
  const Store store = Store::open(opt.out_dir + "/runs");
  RunOptions ro;
  ro.threads = threads;
  ro.resume = opt.resume;
  const int reused = count_kept(jobs, data.fingerprint(), store, ro);
  const int todo = static_cast<int>(jobs.size()) - reused;
  int trained = 0;
  const std::string how = world.active() ? fmt::format("on {} MPI ranks", world.size()) : fmt::format("{} at a time", threads);
  hooks.say(fmt::format("study init: {} variants x {} seeds = {} trainings of {} steps, {}", lecture::kVariants.size(), opt.seeds,
                        jobs.size(), jobs[0].config.steps, how));
  if (reused > 0)
    hooks.say(fmt::format("  {} of them already finished in {}/runs (kept; --no-resume trains them again)", reused, opt.out_dir));
  std::string failed;  // the first training that failed: said once all have ended (the ranks too)
  ro.on_finished = [&](std::size_t, const Finished& f) {
    if (!f.ok() && failed.empty()) failed = f.error;
    if (f.ok() && !f.reused && hooks.progress) hooks.progress(++trained, todo, reused);
  };
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<Finished> done = cluster::run_jobs_here_or_on_ranks(world, jobs, data, store, ro).finished;
  if (!failed.empty()) throw Error(failed);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (std::size_t i = 0; i < runs.size(); ++i) runs[i].rec = &done[i].record;

  std::map<std::string, Row> rows;
  json variants = json::array();
  for (const auto& v : lecture::kVariants) variants.push_back(gather_variant(v, runs, rows[v.preset]));
  const int vocab = data.vocab().size();
  const double expected = std::log(static_cast<double>(vocab));
  out.trained = trained;
  out.report = table(rows, opt.seeds, vocab, expected);
  const json diffs = differences(rows, out.report);
  out.report += fmt::format("\n{} trainings in {:.1f}s ({}){}\n", trained, seconds, how,
                            reused > 0 ? fmt::format("; {} more kept from an earlier run", reused) : "");
  out.study = {{"study", "init"},
               {"seeds", opt.seeds},
               {"steps", jobs[0].config.steps},
               {"jobs", threads},
               {"seconds", seconds},
               {"reused", reused},
               {"words_fnv1a", data.fingerprint()},
               {"expected_initial_loss", expected},
               {"input", opt.input},
               {"variants", variants},
               {"differences", diffs}};
  write_file_atomic(opt.out_dir + "/study.json", out.study.dump(2) + "\n");
  write_figures_and_page(opt.out_dir, out.study, rows, runs, trained, vocab);
  return out;
}

}  // namespace mm::study
