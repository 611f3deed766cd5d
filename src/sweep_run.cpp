// Running a sweep (sweep.h): the plan's jobs (or a shard's) through the study engine's store and
// pool, or across MPI ranks (cluster.h), then the outputs from the finished jobs.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <numeric>

#include "makemore/cluster.h"
#include "makemore/error.h"
#include "makemore/sweep.h"

namespace mm::sweep {

namespace {

// The jobs to run, most expensive first (a pool then ends with the short ones).
std::vector<std::size_t> job_order(const Plan& plan, Shard shard) {
  std::vector<std::size_t> order = shard_jobs(plan.jobs.size(), shard);
  std::vector<double> cost(plan.jobs.size(), 0);
  for (std::size_t j : order) cost[j] = plan.job_cost(j);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return cost[a] > cost[b]; });
  return order;
}

}  // namespace

namespace {

struct Prepared {
  Plan plan;
  Dataset data;
  study::Store store;
};

// Everything before the first training: every value checked, the words read, the store locked.
Prepared prepare(const Options& opt) {
  if (opt.jobs < 1) throw UsageError(fmt::format("--jobs: {} must be at least 1", opt.jobs));
  Prepared p;
  p.plan = make_plan(opt.spec);
  p.data = Dataset::load(opt.input);
  p.store = study::Store::open(opt.out_dir + "/runs", opt.shard.on());
  return p;
}

}  // namespace

Result run_sweep(const Options& opt, const Hooks& hooks) {
  Result res;
  cluster::World world;
  res.worker = cluster::served_as_worker(world);
  if (res.worker) return res;
  Prepared p = cluster::prepare_and_share(
      world, [&] { return prepare(opt); }, [](const Prepared& q) -> const Dataset& { return q.data; });
  const Plan& plan = p.plan;
  const std::vector<std::size_t> order = job_order(plan, opt.shard);
  std::vector<study::Job> jobs;
  for (std::size_t j : order) jobs.push_back(plan.jobs[j]);
  res.total = static_cast<int>(jobs.size());
  study::RunOptions ro;
  ro.threads = opt.jobs;
  ro.resume = opt.resume;
  const int kept = study::count_kept(jobs, p.data.fingerprint(), p.store, ro);
  if (hooks.say)
    hooks.say(fmt::format("study sweep: {} cells x {} seed(s) = {} trainings{}, {} kept in {}/runs/, {} to train, {}",
                          plan.cells.size(), plan.spec.seeds, plan.jobs.size(),
                          opt.shard.on() ? fmt::format(" (shard {}/{}: {})", opt.shard.k, opt.shard.n, jobs.size()) : "", kept,
                          opt.out_dir, jobs.size() - static_cast<std::size_t>(kept),
                          world.active() ? fmt::format("on {} MPI ranks", world.size()) : fmt::format("{} at a time", opt.jobs)));
  int done = 0;
  ro.on_finished = [&](std::size_t k, const study::Finished& f) {
    res.reused += f.reused ? 1 : 0;
    res.failed += f.ok() ? 0 : 1;
    res.trained += f.ok() && !f.reused ? 1 : 0;
    if (hooks.progress) hooks.progress(++done, res.total, jobs[k].name, f);
  };
  const auto t0 = std::chrono::steady_clock::now();
  cluster::Coordinated c = cluster::run_jobs_here_or_on_ranks(world, jobs, p.data, p.store, ro, hooks.in_flight);
  std::vector<study::Finished> got = std::move(c.finished);
  res.coordinator_seconds = c.coordinator_seconds;
  res.ranks = world.size();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (opt.shard.on()) return res;  // the outputs are the merge's: a run without --shard

  std::vector<study::Finished> finished(plan.jobs.size());
  for (std::size_t k = 0; k < order.size(); ++k) finished[order[k]] = std::move(got[k]);
  res.study = study_json(plan, p.data, finished, seconds);
  res.table = format_table(res.study);
  write_outputs(opt.out_dir, res.study);
  return res;
}

}  // namespace mm::sweep
