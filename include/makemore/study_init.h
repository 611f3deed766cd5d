// `makemore study init`, as an analysis on the study engine: the lecture's "loss log" with error
// bars. The five single-hidden-layer variants over N seeds (the lecture's seed first), mean ±
// std beside the lecture's published values, Welch's t between consecutive variants; writes
// study.json, figures/ and study.html into the study folder, whose runs/ is the engine's store.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "makemore/study_engine.h"

namespace mm::study {

struct InitOptions {
  int seeds = 5;
  int jobs = 0;        // trainings at a time; 0: one per core
  int64_t steps = -1;  // steps per training; -1: the presets' 200,000
  std::string input;   // word list
  std::string out_dir = "study-init";
  bool resume = true;  // keep the trainings already in DIR/runs
};

struct InitHooks {
  std::function<void(const std::string& line)> say;             // what the study is about to do
  std::function<void(int done, int total, int kept)> progress;  // after each training of this run
};

struct InitOutput {
  nlohmann::json study;  // what study.json holds
  std::string report;    // the table, the differences and the timing line
  int trained = 0;       // trainings run now (the others were kept)
  bool worker = false;   // an MPI rank other than 0: it only trained, rank 0 has the outputs
};

InitOutput run_init_study(const InitOptions& opt, const InitHooks& hooks);

// Two-sided 95% critical value of Student's t with df (real, > 0) degrees of freedom, from
// Boost.Math's quantile; infinite for df <= 0 or NaN.
double t_critical_95(double df);
// The Welch-Satterthwaite degrees of freedom of the difference of two means (each with its
// sample std and n); NaN when either has fewer than 2 values or both have no spread.
double welch_df(const MeanStd& a, const MeanStd& b);

}  // namespace mm::study
