// `makemore study fidelity`: every number of the lecture (docs/lecture-numbers.md)
// beside ours, computed now by this program, so "reproduces the lecture" is checked, not typed.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include "commands.h"
#include "makemore/data.h"
#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/lecture.h"
#include "makemore/model.h"
#include "makemore/presets.h"
#include "makemore/run.h"
#include "makemore/study.h"

namespace mm::cli {

namespace {

struct FidelityArgs {
  std::string input, out_dir = "fidelity", study_dir;
  int jobs = 0;
  bool json = false;
};

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

int run_fidelity(const FidelityArgs& a) {
  FILE* log = a.json ? stderr : stdout;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string input = a.input.empty() ? default_words_path() : a.input;
  const Dataset data = Dataset::load(input);
  const Vocab& vocab = data.vocab();
  // What could fail at the end is checked before a minute of training: the output folder and
  // the study folder's summary.
  std::error_code ec;
  std::filesystem::create_directories(a.out_dir + "/runs", ec);
  if (ec) throw Error(fmt::format("{}: cannot create the output folder ({}); pass a writable -o DIR", a.out_dir, ec.message()));
  std::vector<Row> study_rows;  // over seeds, from a finished `makemore study init`
  if (!a.study_dir.empty()) {
    const std::string path = a.study_dir + "/study.json";
    if (!std::filesystem::is_regular_file(path, ec))
      throw Error(fmt::format("{}: not found; --study takes the -o folder of a finished `makemore study init`", path));
    const nlohmann::json study = read_json_file(path);
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
        study_rows.push_back({fmt::format("val loss, mean over {} seeds (study init)", study.at("seeds").get<int>()), p,
                              v.at("lecture").at("val").get<double>(), v.at("val_loss").at("mean").get<double>(), 2,
                              fmt::format("± {:.4f}; within 0.01: {}", v.at("val_loss").at("std").get<double>(),
                                          std::fabs(v.at("val_minus_lecture").get<double>()) <= 0.01 ? "yes" : "no")});
      }
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: not a `makemore study init` summary ({}); rerun `makemore study init -o {}`", path, e.what(),
                              a.study_dir));
    }
  }
  const Config bn = load_preset("lecture-batchnorm");
  const Splits splits = data.split_nonempty(bn.block_size, bn.split_seed);
  std::vector<Row> rows;
  rows.push_back({"data", "words", lecture::kWords, static_cast<double>(data.size()), 0, ""});
  rows.push_back({"data", "vocabulary size", lecture::kVocab, static_cast<double>(vocab.size()), 0, ""});
  rows.push_back({"data", "train examples", lecture::kSplitExamples[0], static_cast<double>(splits.train.size()), 0, ""});
  rows.push_back({"data", "val examples", lecture::kSplitExamples[1], static_cast<double>(splits.val.size()), 0, ""});
  rows.push_back({"data", "test examples", lecture::kSplitExamples[2], static_cast<double>(splits.test.size()), 0, ""});
  rows.push_back({"init", "expected loss -ln(1/27)", 3.2958, std::log(static_cast<double>(vocab.size())), 4, ""});
  for (const auto& v : lecture::kVariants)
    rows.push_back({"init", std::string("step-0 loss ") + v.preset, v.step0_loss,
                    step0_loss(load_preset(v.preset), splits, vocab.size()), 4, ""});
  rows.push_back({"init", "step-0 loss lecture-deep", lecture::kDeepStep0Loss,
                  step0_loss(load_preset("lecture-deep"), splits, vocab.size()), 4, ""});
  const std::string video_section = "the video's runs (b1 drawn, unused) vs PyTorch 1.13.1";
  std::vector<Row> video_rows;  // shown after the notebook's loss log
  for (const auto& v : lecture::kVideoRuns)
    video_rows.push_back({video_section, std::string("step-0 loss ") + v.preset, v.loss_log[0],
                          step0_loss(load_preset(v.preset), splits, vocab.size()), 4, ""});

  // Full 200k-step trainings with the lecture's seed: each single-layer variant, plus
  // lecture-batchnorm once more with the cell-9 calibration.
  std::vector<StudyJob> jobs;
  for (const auto& v : lecture::kVariants) jobs.push_back({load_preset(v.preset), v.preset, 0});
  Config cal = bn;
  cal.calibrate_batchnorm = true;
  jobs.push_back({cal, "lecture-batchnorm-calibrated", 0});
  // The video's runs 2 and 3 as far as their printed log is a target (step 40,000).
  for (const auto& v : lecture::kVideoRuns) {
    if (!v.log_is_target) continue;
    Config c = load_preset(v.preset);
    c.steps = 10000 * static_cast<int64_t>(v.loss_log.size() - 1) + 1;
    jobs.push_back({c, v.preset, 0});
  }
  // Trainings already done are used as they are: this command's own from an earlier run
  // (OUT/runs), or `study init`'s lecture-seed runs (STUDY/runs) when they have the same config.
  const std::string& words_hash = data.fingerprint();
  std::vector<std::string> kept_in{a.out_dir};
  if (!a.study_dir.empty()) kept_in.push_back(a.study_dir);
  StudyPlan plan = plan_study(jobs, kept_in, words_hash);
  const int reused = plan.kept();
  const int threads = a.jobs > 0 ? a.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (plan.todo.empty())
    fmt::print(log, "fidelity: the {} trainings are already done; kept\n", jobs.size());
  else
    fmt::print(log, "fidelity: training {} networks (200,000 steps; the video's runs 40,001), {} at a time{}...\n",
               plan.todo.size(), threads, reused ? fmt::format(" ({} more already done, kept)", reused) : "");
  std::fflush(log);
  on_stop_say(
      fmt::format("interrupted; the trainings finished so far are kept in {}/runs/: the same command trains the "
                  "rest and writes the comparison",
                  a.out_dir));
  run_planned_study(plan, jobs, a.out_dir, words_hash, splits, vocab.size(), threads, [&](int done, int total) {
    fmt::print(log, "  {}/{} done\n", done, total);
    std::fflush(log);
  });
  const auto& results = plan.results;
  for (const auto& r : results) {
    if (r.label == "lecture-batchnorm") {
      for (std::size_t i = 0; i < lecture::kBatchnormLossLog.size(); ++i)
        rows.push_back({"loss log (lecture-batchnorm)", fmt::format("step {:>6}", i * 10000), lecture::kBatchnormLossLog[i],
                        i < r.loss_log.size() ? static_cast<double>(r.loss_log[i]) : NAN, 4, ""});
    }
  }
  for (const auto& v : lecture::kVideoRuns)
    for (const auto& r : results)
      if (r.label == v.preset)
        for (std::size_t i = 1; i < v.loss_log.size(); ++i)
          video_rows.push_back({video_section, fmt::format("{} step {:>6}", v.preset, i * 10000), v.loss_log[i],
                                i < r.loss_log.size() ? static_cast<double>(r.loss_log[i]) : NAN, 4, ""});
  rows.insert(rows.end(), video_rows.begin(), video_rows.end());
  for (const auto& v : lecture::kVariants) {
    for (const auto& r : results) {
      if (r.label != v.preset) continue;
      rows.push_back({"final (lecture's seed) vs PyTorch 1.13.1", std::string(v.preset) + " train", v.torch_train,
                      r.outcome.losses.train, 4, fmt::format("notebook {:.4f}", v.lecture_train)});
      rows.push_back({"final (lecture's seed) vs PyTorch 1.13.1", std::string(v.preset) + " val", v.torch_val,
                      r.outcome.losses.val, 4, fmt::format("notebook {:.4f}", v.lecture_val)});
    }
  }
  for (const auto& r : results) {
    if (r.label != "lecture-batchnorm-calibrated") continue;
    rows.push_back({"final (lecture's seed) vs PyTorch 1.13.1", "lecture-batchnorm train, calibrated (cell 9)",
                    lecture::kBatchnormCalibratedTrain, r.outcome.losses.train, 4, ""});
    rows.push_back({"final (lecture's seed) vs PyTorch 1.13.1", "lecture-batchnorm val, calibrated (cell 9)",
                    lecture::kBatchnormCalibratedVal, r.outcome.losses.val, 4, ""});
  }
  // The deep network after 1,000 steps: the statistics the lecture prints (cells 15-17).
  {
    const Diagnosis deep = inspect_training(load_preset("lecture-deep"), splits, vocab.size(), 1000);
    const std::string sec = "lecture-deep after 1,000 steps (cells 15-17)";
    for (const auto& l : deep.snapshot.layers) {
      if (l.index != 2) continue;
      rows.push_back({sec, "layer 2 (Tanh) std", lecture::kDeepLayer2TanhStd, l.out.std, 2, ""});
      rows.push_back(
          {sec, "layer 2 (Tanh) saturated % (beyond ±0.97)", lecture::kDeepLayer2SaturatedPct, l.saturated_pct, 2, ""});
    }
    for (const auto& p : deep.snapshot.params) {
      if (p.name != "layers.0.weight") continue;
      rows.push_back({sec, "weight (30, 100) grad std", lecture::kDeepW1GradStd, p.grad.std, 8, "lecture prints 9.241074e-03"});
      rows.push_back({sec, "weight (30, 100) grad:data ratio", lecture::kDeepW1GradDataRatio, p.grad_data_ratio, 7,
                      "lecture prints 4.881091e-02"});
    }
  }
  rows.insert(rows.end(), study_rows.begin(), study_rows.end());

  // Write the page.
  std::string md = "# Fidelity: the lecture's numbers beside makemore.cpp's\n\n";
  md += fmt::format(
      "Generated by `makemore study fidelity{}` on {}. Lecture / PyTorch values: "
      "docs/lecture-numbers.md. 'match' = equal at the printed precision.\n",
      a.study_dir.empty() ? "" : " --study " + a.study_dir, input);
  std::string section;
  int matched = 0, total = 0;
  nlohmann::json jrows = nlohmann::json::array();
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
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  md += fmt::format("\n{} of {} numbers match at the printed precision. ({:.0f}s)\n", matched, total, seconds);
  write_file_atomic(a.out_dir + "/fidelity.md", md);
  nlohmann::json out{{"matched", matched}, {"total", total}, {"seconds", seconds}, {"rows", jrows}};
  write_file_atomic(a.out_dir + "/fidelity.json", out.dump(2) + "\n");
  fmt::print(log, "{}", md);
  fmt::print(log, "written: {}/fidelity.md and fidelity.json\n", a.out_dir);
  if (a.json) fmt::print("{}\n", out.dump());
  return 0;
}

}  // namespace

Runner add_study_fidelity(CLI::App& study) {
  auto a = std::make_shared<FidelityArgs>();
  auto* c =
      study.add_subcommand("fidelity", "Every lecture number beside ours (split sizes, step-0 losses, loss log, final losses)");
  c->add_option("-i,--input", a->input, "Word list (default: data/names.txt)");
  c->add_option("-o,--out", a->out_dir, "Folder for fidelity.md, fidelity.json and runs/ (its trainings, kept for a rerun)")
      ->capture_default_str();
  c->add_option("--study", a->study_dir,
                "A finished `study init` folder: adds the over-seeds comparison, and its lecture-seed runs are used instead of "
                "training them again");
  c->add_option("--jobs,-j", a->jobs, "Trainings at a time (default: one per core)")->check(number_in(a->jobs, 0, 256));
  c->add_flag("--json", a->json, "Print one JSON object on stdout");
  return [a] { return run_fidelity(*a); };
}

}  // namespace mm::cli
