// The fidelity page (fidelity.h): rows of (lecture, ours) by section, from the data, the step-0
// losses, six full trainings through the study engine, a 1,000-step inspection of the deep
// network and, when given, a finished init study.
#include "makemore/fidelity.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "makemore/atomic_file.h"
#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/lecture.h"
#include "makemore/model.h"
#include "makemore/presets.h"
#include "makemore/run.h"
#include "makemore/study_engine.h"

namespace mm::study {

using json = nlohmann::json;

namespace {

struct Row {
  std::string section, what;
  double lecture = NAN, ours = NAN;
  int decimals = 4;
  std::string note;
  bool matches() const {
    const double tol = 0.5 * std::pow(10.0, -decimals) + 1e-12;
    return std::isfinite(lecture) && std::isfinite(ours) &&
           std::fabs(std::round(ours * std::pow(10.0, decimals)) - std::round(lecture * std::pow(10.0, decimals))) < 0.5 + tol;
  }
};

float step0_loss(const Config& cfg, const Splits& splits, int vocab) {
  Model model(cfg, vocab);
  TorchGenerator gen(cfg.seed);
  model.init(gen, splits.train);
  Config one = cfg;
  one.steps = 1;
  Trainer t(model, one, splits.train, gen);
  return t.step(0);
}

// The over-seeds rows of a finished `study init` (checked before a minute of training).
std::vector<Row> study_rows(const std::string& study_dir) {
  std::vector<Row> rows;
  const std::string path = study_dir + "/study.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(fmt::format("{}: not found; --study takes the -o folder of a finished `makemore study init`", path));
  const json study = read_json_file(path);
  try {
    // Means over 300-step runs next to the lecture's 200,000-step numbers would be all "no".
    const int64_t steps = study.at("steps").get<int64_t>(), lecture_steps = load_preset("lecture-batchnorm").steps;
    if (steps != lecture_steps)
      throw Error(
          fmt::format("{}: its runs trained {} steps, the lecture's {}; compare a study made without --steps "
                      "(`makemore study init -o DIR`)",
                      path, steps, lecture_steps));
    for (const auto& v : study.at("variants")) {
      const std::string p = v.at("preset").get<std::string>();
      rows.push_back({fmt::format("val loss, mean over {} seeds (study init)", study.at("seeds").get<int>()), p,
                      v.at("lecture").at("val").get<double>(), v.at("val_loss").at("mean").get<double>(), 2,
                      fmt::format("± {:.4f}; within 0.01: {}", v.at("val_loss").at("std").get<double>(),
                                  std::fabs(v.at("val_minus_lecture").get<double>()) <= 0.01 ? "yes" : "no")});
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not a `makemore study init` summary ({}); rerun `makemore study init -o {}`", path, e.what(),
                            study_dir));
  }
  return rows;
}

void data_and_init_rows(const Dataset& data, const Splits& splits, std::vector<Row>& rows) {
  const int vocab = data.vocab().size();
  rows.push_back({"data", "words", lecture::kWords, static_cast<double>(data.size()), 0, ""});
  rows.push_back({"data", "vocabulary size", lecture::kVocab, static_cast<double>(vocab), 0, ""});
  rows.push_back({"data", "train examples", lecture::kSplitExamples[0], static_cast<double>(splits.train.size()), 0, ""});
  rows.push_back({"data", "val examples", lecture::kSplitExamples[1], static_cast<double>(splits.val.size()), 0, ""});
  rows.push_back({"data", "test examples", lecture::kSplitExamples[2], static_cast<double>(splits.test.size()), 0, ""});
  rows.push_back({"init", "expected loss -ln(1/27)", 3.2958, std::log(static_cast<double>(vocab)), 4, ""});
  for (const auto& v : lecture::kVariants)
    rows.push_back(
        {"init", std::string("step-0 loss ") + v.preset, v.step0_loss, step0_loss(load_preset(v.preset), splits, vocab), 4, ""});
  rows.push_back({"init", "step-0 loss lecture-deep", lecture::kDeepStep0Loss,
                  step0_loss(load_preset("lecture-deep"), splits, vocab), 4, ""});
}

// Full 200k-step trainings with the lecture's seed: each single-layer variant, plus
// lecture-batchnorm once more with the cell-9 calibration (jobs 0-4 are kVariants', 5 the
// calibrated one), then the video's runs.
std::vector<Job> fidelity_jobs() {
  std::vector<Job> jobs;
  for (const auto& v : lecture::kVariants) {
    const Config cfg = load_preset(v.preset);
    jobs.push_back(make_job(v.preset, cfg, cfg.seed));
  }
  Config cal = load_preset("lecture-batchnorm");
  cal.calibrate_batchnorm = true;
  jobs.push_back(make_job("lecture-batchnorm-calibrated", cal, cal.seed));
  // The video's runs 2 and 3 as far as their printed log is a target (step 40,000).
  for (const auto& v : lecture::kVideoRuns) {
    if (!v.log_is_target) continue;
    Config c = load_preset(v.preset);
    c.steps = 10000 * static_cast<int64_t>(v.loss_log.size() - 1) + 1;
    jobs.push_back(make_job(v.preset, c, c.seed));
  }
  return jobs;
}

// The video's runs (b1 drawn, unused): step-0 losses, and the logged losses of those trained.
void video_rows(const std::vector<Job>& jobs, const std::vector<Finished>& done, const Splits& splits, int vocab,
                std::vector<Row>& rows) {
  const std::string sec = "the video's runs (b1 drawn, unused) vs PyTorch 1.13.1";
  for (const auto& v : lecture::kVideoRuns)
    rows.push_back(
        {sec, std::string("step-0 loss ") + v.preset, v.loss_log[0], step0_loss(load_preset(v.preset), splits, vocab), 4, ""});
  for (const auto& v : lecture::kVideoRuns)
    for (std::size_t k = 6; k < jobs.size(); ++k) {
      if (jobs[k].name != v.preset) continue;
      const Record& r = done[k].record;
      for (std::size_t i = 1; i < v.loss_log.size(); ++i)
        rows.push_back({sec, fmt::format("{} step {:>6}", v.preset, i * 10000), v.loss_log[i],
                        i < r.loss_log.size() ? static_cast<double>(r.loss_log[i]) : NAN, 4, ""});
    }
}

void training_rows(const std::vector<Job>& jobs, const std::vector<Finished>& done, const Splits& splits, int vocab,
                   std::vector<Row>& rows) {
  const Record& bn = done[4].record;  // lecture-batchnorm
  for (std::size_t i = 0; i < lecture::kBatchnormLossLog.size(); ++i)
    rows.push_back({"loss log (lecture-batchnorm)", fmt::format("step {:>6}", i * 10000), lecture::kBatchnormLossLog[i],
                    i < bn.loss_log.size() ? static_cast<double>(bn.loss_log[i]) : NAN, 4, ""});
  video_rows(jobs, done, splits, vocab, rows);  // shown after the notebook's loss log
  const std::string sec = "final (lecture's seed) vs PyTorch 1.13.1";
  for (std::size_t k = 0; k < lecture::kVariants.size(); ++k) {
    const auto& v = lecture::kVariants[k];
    const auto& l = done[k].record.outcome.losses;
    rows.push_back(
        {sec, std::string(v.preset) + " train", v.torch_train, l.train, 4, fmt::format("notebook {:.4f}", v.lecture_train)});
    rows.push_back({sec, std::string(v.preset) + " val", v.torch_val, l.val, 4, fmt::format("notebook {:.4f}", v.lecture_val)});
  }
  const auto& cal = done[5].record.outcome.losses;
  rows.push_back({sec, "lecture-batchnorm train, calibrated (cell 9)", lecture::kBatchnormCalibratedTrain, cal.train, 4, ""});
  rows.push_back({sec, "lecture-batchnorm val, calibrated (cell 9)", lecture::kBatchnormCalibratedVal, cal.val, 4, ""});
}

// The deep network after 1,000 steps: the statistics the lecture prints (cells 15-17).
void deep_rows(const Splits& splits, int vocab, std::vector<Row>& rows) {
  const Diagnosis deep = inspect_training(load_preset("lecture-deep"), splits, vocab, 1000);
  const std::string sec = "lecture-deep after 1,000 steps (cells 15-17)";
  for (const auto& l : deep.snapshot.layers) {
    if (l.index != 2) continue;
    rows.push_back({sec, "layer 2 (Tanh) std", lecture::kDeepLayer2TanhStd, l.out.std, 2, ""});
    rows.push_back({sec, "layer 2 (Tanh) saturated % (beyond ±0.97)", lecture::kDeepLayer2SaturatedPct, l.saturated_pct, 2, ""});
  }
  for (const auto& p : deep.snapshot.params) {
    if (p.name != "layers.0.weight") continue;
    rows.push_back({sec, "weight (30, 100) grad std", lecture::kDeepW1GradStd, p.grad.std, 8, "lecture prints 9.241074e-03"});
    rows.push_back({sec, "weight (30, 100) grad:data ratio", lecture::kDeepW1GradDataRatio, p.grad_data_ratio, 7,
                    "lecture prints 4.881091e-02"});
  }
}

FidelityOutput page(const std::vector<Row>& rows, const FidelityOptions& opt, double seconds) {
  FidelityOutput out;
  std::string& md = out.markdown;
  md = "# Fidelity: the lecture's numbers beside makemore.cpp's\n\n";
  md += fmt::format(
      "Generated by `makemore study fidelity{}` on {}. Lecture / PyTorch values: "
      "docs/lecture-numbers.md. 'match' = equal at the printed precision.\n",
      opt.study_dir.empty() ? "" : " --study " + opt.study_dir, opt.input);
  std::string section;
  int matched = 0, total = 0;
  json jrows = json::array();
  for (const auto& r : rows) {
    if (r.section != section) {
      section = r.section;
      md += fmt::format("\n## {}\n\n| what | lecture | ours | diff | match | note |\n|---|---|---|---|---|---|\n", section);
    }
    const bool m = r.matches();
    matched += m;
    ++total;
    md += fmt::format("| {} | {:.{}f} | {:.{}f} | {:+.{}f} | {} | {} |\n", r.what, r.lecture, r.decimals, r.ours, r.decimals,
                      r.ours - r.lecture, r.decimals + 1, m ? "yes" : "**no**", r.note);
    jrows.push_back(
        {{"section", r.section}, {"what", r.what}, {"lecture", r.lecture}, {"ours", r.ours}, {"match", m}, {"note", r.note}});
  }
  md += fmt::format("\n{} of {} numbers match at the printed precision. ({:.0f}s)\n", matched, total, seconds);
  out.summary = {{"matched", matched}, {"total", total}, {"seconds", seconds}, {"rows", jrows}};
  return out;
}

}  // namespace

FidelityOutput run_fidelity(const FidelityOptions& opt, const std::function<void(const std::string&)>& say,
                            const std::function<void(int, int)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const Dataset data = Dataset::load(opt.input);
  // What could fail at the end is checked before a minute of training: the output folder and
  // the study folder's summary.
  const Store store = Store::open(opt.out_dir + "/runs");
  const std::vector<Row> over_seeds = opt.study_dir.empty() ? std::vector<Row>{} : study_rows(opt.study_dir);
  const Config bn = load_preset("lecture-batchnorm");
  const Splits splits = data.split_nonempty(bn.block_size, bn.split_seed);
  std::vector<Row> rows;
  data_and_init_rows(data, splits, rows);

  // Trainings already done are used as they are: this command's own from an earlier run
  // (OUT/runs), or `study init`'s lecture-seed runs (STUDY/runs), which have the same keys.
  const std::vector<Job> jobs = fidelity_jobs();
  RunOptions ro;
  ro.threads = default_threads(opt.jobs);
  if (!opt.study_dir.empty()) ro.also_read_from.push_back(opt.study_dir + "/runs");
  const int reused = count_kept(jobs, data.fingerprint(), store, ro);
  const int todo = static_cast<int>(jobs.size()) - reused;
  int trained = 0;
  if (todo == 0)
    say(fmt::format("fidelity: the {} trainings are already done; kept", jobs.size()));
  else
    say(fmt::format("fidelity: training {} networks (200,000 steps; the video's runs 40,001), {} at a time{}...", todo,
                    ro.threads, reused ? fmt::format(" ({} more already done, kept)", reused) : ""));
  ro.on_finished = [&](std::size_t, const Finished& f) {
    if (!f.ok()) throw Error(f.error);
    if (!f.reused && progress) progress(++trained, todo);
  };
  const std::vector<Finished> done = run_jobs(jobs, data, store, ro);
  training_rows(jobs, done, splits, data.vocab().size(), rows);
  deep_rows(splits, data.vocab().size(), rows);
  rows.insert(rows.end(), over_seeds.begin(), over_seeds.end());

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  FidelityOutput out = page(rows, opt, seconds);
  write_file_atomic(opt.out_dir + "/fidelity.md", out.markdown);
  write_file_atomic(opt.out_dir + "/fidelity.json", out.summary.dump(2) + "\n");
  return out;
}

}  // namespace mm::study
