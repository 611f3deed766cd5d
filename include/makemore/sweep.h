// `makemore study sweep`: a base config (a preset or a config file) and any number of axes over
// any config field (or over presets), each over N seeds, as one study on the study engine
// (study_engine.h). This file turns the axes into a plan of cells and jobs, validating every
// value like a config file before anything trains; slices the jobs for a job array (--shard);
// and turns the finished jobs into study.json, results.csv, the text table and study.html.
// The CLI (apps/makemore/cmd_study_sweep.cpp) only parses options and prints.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "makemore/config.h"
#include "makemore/study_engine.h"

namespace mm::sweep {

// The axis over whole presets: each value is a preset name, the base the other axes change.
inline constexpr const char* kPresetAxis = "preset";

// One axis: a config field as the config parser's messages spell it ("train.lr",
// "model.n_embd", "model.layers[0].weight_init.gain") or kPresetAxis, and its values.
struct Axis {
  std::string field;
  std::vector<nlohmann::json> values;  // each item as JSON (0.1, true, "tanh", [1, 2])
  std::vector<std::string> texts;      // each item as typed: tables, names, results.csv
};
// "FIELD=v1,v2,...": items split at commas outside [] and {}, each read as JSON when it is JSON
// and as a string otherwise (tanh, adam). Throws mm::UsageError naming the axis.
Axis parse_axis(const std::string& text);

// Sets the field at `path` of a config's JSON: object keys are created when missing, list
// indices must exist, and a name where an object is needed ("optimizer": "sgd") stands for
// {"type": name}. Throws mm::Error naming the path.
void set_field(nlohmann::json& config, const std::string& path, const nlohmann::json& value);

struct Spec {
  nlohmann::json base;  // the base config's JSON (a preset's or a file's, parsed and written back)
  std::string base_name;
  std::vector<Axis> axes;
  int seeds = 1;       // seed index s trains the cell's train.seed + s
  int64_t steps = -1;  // >= 0: train.steps of the base
};

struct Cell {
  std::vector<std::size_t> at;  // the value index on each axis
  Config config;                // the cell's config, train.seed its first seed
};

struct Plan {
  Spec spec;
  std::vector<Cell> cells;       // every combination, the first axis slowest
  std::vector<study::Job> jobs;  // cell c's seed s is job c * seeds + s
  // "train.lr=0.1 model.n_embd=10" ("base" with no axes).
  std::string cell_label(std::size_t c) const;
  // What a job costs, about (steps x the multiply-adds of one example): the biggest go first.
  double job_cost(std::size_t j) const;
};
// Every value on its own, then every combination, parsed as a config: an mm::UsageError names
// the axis and value (or the combination) with the parser's message.
Plan make_plan(const Spec& spec);

// --shard K/N: the K-th (1-based) of N deterministic slices of the jobs.
struct Shard {
  int k = 0, n = 0;  // n == 0: all jobs
  bool on() const { return n > 0; }
};
Shard parse_shard(const std::string& text);  // "K/N"; mm::UsageError otherwise
// The jobs of a shard: job j belongs to slice j mod N.
std::vector<std::size_t> shard_jobs(std::size_t job_count, Shard shard);

// The study as study.json holds it, from the finished jobs (one per plan job, in plan order).
// Timings are in "seconds" and "steps_per_sec" fields only: the rest does not depend on how
// or where the jobs ran.
nlohmann::json study_json(const Plan& plan, const Dataset& data, const std::vector<study::Finished>& finished, double seconds);
std::string format_table(const nlohmann::json& study);
std::string results_csv(const nlohmann::json& study);  // one row per training
// study.json, results.csv, figures/*.svg and study.html into out_dir.
void write_outputs(const std::string& out_dir, const nlohmann::json& study);

struct Options {
  Spec spec;
  std::string input;  // word list (the CLI passes its default)
  std::string out_dir = "study-sweep";
  int jobs = 1;
  bool resume = true;
  Shard shard;
};

struct Hooks {
  std::function<void(const std::string& line)> say;
  // After each job settles: done, total, the job's name and outcome.
  std::function<void(int done, int total, const std::string& name, const study::Finished& f)> progress;
  // Under MPI, after each job handed out or settled: the jobs in flight ("rank 1: NAME; ...").
  std::function<void(const std::string& in_flight)> in_flight;
};

struct Result {
  nlohmann::json study;  // null when a shard ran (no outputs written)
  std::string table;
  int trained = 0, reused = 0, failed = 0, total = 0;
  bool worker = false;             // an MPI rank other than 0: it only trained; nothing to print
  int ranks = 1;                   // MPI ranks the jobs ran on (1: this process's pool)
  double coordinator_seconds = 0;  // under MPI: rank 0's time handing out and storing
};

// Plans (validating every value), opens the store (DIR/runs/; shared by the shards of a job
// array, exclusive otherwise), trains what is missing of the shard (or all) and, without a
// shard, writes the outputs. Started by mpirun or srun as several ranks, rank 0 does all that
// and hands the trainings out to the ranks (cluster.h); the other ranks return a worker result.
// A build without MPI started so: rank 0 throws an mm::Error saying so, the others return.
Result run_sweep(const Options& opt, const Hooks& hooks);

}  // namespace mm::sweep
