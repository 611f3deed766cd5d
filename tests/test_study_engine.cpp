// The study engine (study_engine.h): what a store key depends on, records written and read
// back exactly, a torn or foreign file never read as a result, one writer per store, results
// that do not depend on how many trainings run at a time, and the job pool's contract.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "makemore/error.h"
#include "makemore/parallel.h"
#include "makemore/presets.h"
#include "makemore/study_engine.h"
#include "makemore/study_init.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using mm_test::TempDir;
using nlohmann::json;
using namespace mm::study;

mm::Dataset tiny_words() {
  std::vector<std::string> words;
  const char* syl[] = {"ka", "lo", "mi", "ra", "en", "is", "ta", "no"};
  for (int i = 0; i < 200; ++i) words.push_back(std::string(syl[i % 8]) + syl[(i * 5 + 3) % 8] + (i % 3 ? syl[i % 7] : ""));
  std::vector<std::u32string> w;
  for (const auto& s : words) w.emplace_back(s.begin(), s.end());
  return mm::Dataset::from_words(std::move(w), "tiny");
}

Job small_job(const std::string& name, uint64_t seed, int64_t steps = 20) {
  mm::Config cfg = mm::load_preset("lecture-kaiming");
  cfg.steps = steps;
  return make_job(name, cfg, seed);
}

TEST(StudyEngine, KeyIsTheConfigWithoutItsNameTheWordsAndWhatIsRecorded) {
  const Job a = small_job("a", 1);
  Job b = small_job("b", 1);
  b.config.name = "another name";
  b.config.description = "another description";
  EXPECT_EQ(job_key(a, "f"), job_key(b, "f"));  // names do not change what trains
  EXPECT_EQ(key_file(job_key(a, "f")), key_file(job_key(b, "f")));
  EXPECT_NE(job_key(a, "f"), job_key(small_job("a", 2), "f"));      // seed
  EXPECT_NE(job_key(a, "f"), job_key(small_job("a", 1, 21), "f"));  // steps
  EXPECT_NE(job_key(a, "f"), job_key(a, "g"));                      // words
  Job c = a;
  c.at_init = true;
  EXPECT_NE(job_key(a, "f"), job_key(c, "f"));  // what is recorded
  const std::string file = key_file(job_key(a, "f"));
  EXPECT_EQ(file.size(), 16u + 5u);
  EXPECT_EQ(file.substr(16), ".json");
  EXPECT_NE(file, key_file(job_key(a, "g")));
}

TEST(StudyEngine, RecordsRoundTripExactly) {
  Record r;
  r.outcome.stats.initial_loss = 3.2958f;
  r.outcome.stats.last_loss = NAN;
  r.outcome.stats.steps = 17;
  r.outcome.stats.diverged = true;
  r.outcome.stats.diverged_step = 16;
  r.outcome.losses = {2.0 / 3.0, NAN, 1e-300};
  r.loss_buckets = {1.5f, 0.1f};
  r.loss_bucket = 3;
  r.loss_log = {3.25f};
  r.at_init = json{{"loss", 3.3}};
  const Record back = record_from_json(json::parse(record_to_json(r).dump()));
  EXPECT_EQ(back.outcome.stats.initial_loss, r.outcome.stats.initial_loss);
  EXPECT_TRUE(std::isnan(back.outcome.stats.last_loss));
  EXPECT_EQ(back.outcome.stats.diverged_step, 16);
  EXPECT_EQ(back.outcome.losses.train, 2.0 / 3.0);
  EXPECT_TRUE(std::isnan(back.outcome.losses.val));
  EXPECT_EQ(back.outcome.losses.test, 1e-300);
  EXPECT_EQ(back.loss_buckets, r.loss_buckets);
  EXPECT_EQ(back.loss_bucket, 3);
  EXPECT_EQ(back.at_init, r.at_init);
}

TEST(StudyEngine, StoreFindsOnlyItsOwnKeyAndNeverATornFile) {
  TempDir dir;
  const std::string d = (dir.path() / "runs").string();
  const Store store = Store::open(d);
  const json key = job_key(small_job("a", 1), "f");
  EXPECT_FALSE(store.find(key));
  Record r;
  r.outcome.losses.val = 2.5;
  store.put(key, "a", r);
  ASSERT_TRUE(store.find(key));
  EXPECT_EQ(store.find(key)->outcome.losses.val, 2.5);
  // Another key whose file name collides (written over by hand) is not read as this one.
  json other = json::parse(mm_test::read_file(fs::path(d) / key_file(key)));
  other["key"]["words_fnv1a"] = "g";
  std::ofstream(fs::path(d) / key_file(key)) << other.dump();
  EXPECT_FALSE(store.find(key));
  std::ofstream(fs::path(d) / key_file(key)) << "{\"key\": ";  // torn
  EXPECT_FALSE(store.find(key));
}

TEST(StudyEngine, ASecondWriterIsRefusedNamingTheHolder) {
  TempDir dir;
  const std::string d = (dir.path() / "runs").string();
  const Store held = Store::open(d);
  // flock is per open file: a child process is a second writer.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    try {
      Store::open(d);
      _exit(1);
    } catch (const mm::Error& e) {
      const std::string m = e.what();
      const bool ok = m.find("pid " + std::to_string(getppid())) != std::string::npos &&
                      m.find("study store") != std::string::npos && m.find('\n') == std::string::npos;
      _exit(ok ? 0 : 2);
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(StudyEngine, ResultsDoNotDependOnThreadsAndAreKept) {
  const mm::Dataset data = tiny_words();
  std::vector<Job> jobs;
  for (int s = 0; s < 4; ++s) jobs.push_back(small_job("j" + std::to_string(s), 100 + s));
  TempDir one, two;
  RunOptions o1, o2;
  o1.threads = 1;
  o2.threads = 2;
  std::vector<std::size_t> order;
  o2.on_finished = [&](std::size_t i, const Finished& f) {
    EXPECT_TRUE(f.ok()) << f.error;
    EXPECT_FALSE(f.reused);
    order.push_back(i);
  };
  const auto a = run_jobs(jobs, data, Store::open((one.path() / "runs").string()), o1);
  const auto b = run_jobs(jobs, data, Store::open((two.path() / "runs").string()), o2);
  EXPECT_EQ(std::set<std::size_t>(order.begin(), order.end()).size(), 4u);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(a[i].record.outcome.losses.val, b[i].record.outcome.losses.val) << i;
    EXPECT_EQ(a[i].record.loss_buckets, b[i].record.loss_buckets) << i;
  }
  EXPECT_NE(a[0].record.outcome.losses.val, a[1].record.outcome.losses.val);  // the seed matters
  // Again over the same store: every job kept, none trained, the same numbers.
  int kept = 0;
  o2.on_finished = [&](std::size_t, const Finished& f) { kept += f.reused ? 1 : 0; };
  const Store again = Store::open((two.path() / "runs").string());
  EXPECT_EQ(count_kept(jobs, data.fingerprint(), again, o2), 4);
  const auto c = run_jobs(jobs, data, again, o2);
  EXPECT_EQ(kept, 4);
  for (std::size_t i = 0; i < jobs.size(); ++i) EXPECT_EQ(c[i].record.outcome.losses.val, b[i].record.outcome.losses.val);
  // resume off: trained again.
  o2.resume = false;
  EXPECT_EQ(count_kept(jobs, data.fingerprint(), again, o2), 0);
}

TEST(StudyEngine, AFailingJobIsReportedNotStored) {
  const mm::Dataset data = tiny_words();
  Job bad = small_job("bad", 1);
  bad.config.block_size = 0;  // the model cannot be built
  TempDir dir;
  const Store store = Store::open((dir.path() / "runs").string());
  const auto out = run_jobs({bad, small_job("good", 2)}, data, store, RunOptions{});
  EXPECT_FALSE(out[0].ok());
  EXPECT_TRUE(out[1].ok());
  EXPECT_EQ(mm_test::store_size(dir.path() / "runs"), 1u);
}

TEST(ParallelForEach, EachIndexOnceAndTheFirstErrorRethrown) {
  for (int workers : {1, 2, 3}) {
    std::vector<std::atomic<int>> hits(50);
    mm::parallel_for_each(hits.size(), workers, [&](std::size_t i) { ++hits[i]; });
    for (const auto& h : hits) EXPECT_EQ(h.load(), 1) << workers;
  }
  EXPECT_THROW(mm::parallel_for_each(10, 2,
                                     [](std::size_t i) {
                                       if (i == 3) throw std::runtime_error("three");
                                     }),
               std::runtime_error);
  mm::parallel_for_each(0, 2, [](std::size_t) { FAIL(); });
}

}  // namespace

// The init study's test: Student's t quantiles from Boost.Math and Welch-Satterthwaite degrees
// of freedom, against values computed independently (published t tables to 6 digits; the df
// example worked by hand: v1 = 1/5, v2 = 4/10, (v1 + v2)^2 / (v1^2/4 + v2^2/9) = 0.36 / (1/36)).
namespace {

TEST(StudyInit, StudentTQuantilesAndWelchDegreesOfFreedom) {
  EXPECT_NEAR(t_critical_95(10), 2.228139, 1e-6);
  EXPECT_NEAR(t_critical_95(1), 12.706205, 1e-6);
  EXPECT_NEAR(t_critical_95(4), 2.776445, 1e-6);
  EXPECT_NEAR(t_critical_95(30), 2.042272, 1e-6);
  EXPECT_NEAR(t_critical_95(1e9), 1.959964, 1e-6);  // the normal's
  // Between whole df the quantile lies between its neighbours (the old table rounded df down).
  EXPECT_LT(t_critical_95(12.96), t_critical_95(12));
  EXPECT_GT(t_critical_95(12.96), t_critical_95(13));
  EXPECT_TRUE(std::isinf(t_critical_95(0)));
  EXPECT_TRUE(std::isinf(t_critical_95(NAN)));

  EXPECT_NEAR(welch_df({0, 1, 5}, {0, 2, 10}), 12.96, 1e-12);
  // Equal variances and sizes: n1 + n2 - 2.
  EXPECT_NEAR(welch_df({0, 0.5, 6}, {1, 0.5, 6}), 10.0, 1e-12);
  EXPECT_TRUE(std::isnan(welch_df({0, 1, 1}, {0, 1, 5})));
  EXPECT_TRUE(std::isnan(welch_df({0, 0, 3}, {0, 0, 3})));
}

}  // namespace
