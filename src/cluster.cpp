// Studies over MPI (cluster.h). Messages are JSON text: rank 0 sends {"i", "name", "config",
// "at_init"} (tag kJob) or nothing (tag kStop); a rank answers {"i", "record"} or {"i", "error"}
// (tag kResult). Records travel as record_to_json's text, which keeps every number's bits.
#include "makemore/cluster.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "makemore/error.h"

#ifdef MM_HAVE_MPI
#include <mpi.h>
#endif

namespace mm::cluster {

using json = nlohmann::json;

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return end && *end == '\0' && n >= 0 && n < (1 << 24) ? static_cast<int>(n) : fallback;
}

}  // namespace

bool mpi_built() {
#ifdef MM_HAVE_MPI
  return true;
#else
  return false;
#endif
}

Launch launched() {
  Launch l;
  l.size = env_int("OMPI_COMM_WORLD_SIZE", env_int("PMI_SIZE", 1));
  l.rank = env_int("OMPI_COMM_WORLD_RANK", env_int("PMI_RANK", 0));
  if (l.size < 1) l.size = 1;
  return l;
}

bool served_as_worker(const World& w) {
  const Launch launch = launched();
  if (launch.size > 1 && !mpi_built()) {
    if (launch.rank != 0) return true;  // rank 0 says it, once
    throw Error(fmt::format(
        "started as {} ranks (mpirun or srun), but this makemore was built without MPI: each rank would run the whole "
        "study; build it with -DMM_WITH_MPI=ON (MM_WITH_MPI=1 scripts/setup.sh), or run it without mpirun",
        launch.size));
  }
  if (!w.active() || w.rank() == 0) return false;
  serve(w);
  return true;
}

Coordinated run_jobs_here_or_on_ranks(const World& w, const std::vector<study::Job>& jobs, const Dataset& data,
                                      const study::Store& store, const study::RunOptions& opt, const NoteHook& on_note) {
  if (w.active()) {
    std::vector<double> cost;
    for (const study::Job& j : jobs) cost.push_back(study::job_cost(j));
    return coordinate(w, jobs, cost, data, store, opt, on_note);
  }
  Coordinated c;
  c.finished = study::run_jobs(jobs, data, store, opt);
  return c;
}

#ifndef MM_HAVE_MPI

World::World() = default;
World::~World() = default;
void share_words(const World&, const Dataset*) {}
Coordinated coordinate(const World&, const std::vector<study::Job>&, const std::vector<double>&, const Dataset&,
                       const study::Store&, const study::RunOptions&, const NoteHook&) {
  throw Error("this makemore was built without MPI (configure with -DMM_WITH_MPI=ON)");
}
bool serve(const World&) { return false; }
void write_ended_ranks(int) {}

#else

namespace {

enum Tag : int { kWords = 1, kJob = 2, kStop = 3, kResult = 4 };

// What write_ended_ranks reads from a signal handler: each rank's pid, whether it runs on this
// host, and the job it holds; plain arrays, written before a handler can need them.
constexpr int kWatchMax = 4096;
constexpr std::size_t kNameMax = 200;
int g_watched = 0;
long long g_pid[kWatchMax];
bool g_here[kWatchMax];
char g_job[kWatchMax][kNameMax];

void set_job(std::size_t rank, const std::string& name) {
  if (rank >= static_cast<std::size_t>(kWatchMax)) return;
  const std::size_t n = std::min(name.size(), kNameMax - 1);
  std::memcpy(g_job[rank], name.data(), n);
  g_job[rank][n] = '\0';
}

struct Hello {
  long long pid;
  char host[64];
};
Hello hello() {
  Hello h{static_cast<long long>(::getpid()), {}};
  ::gethostname(h.host, sizeof h.host - 1);
  return h;
}

// Async-signal-safe: has process `pid` ended (gone, or a zombie not yet reaped)?
bool ended(long long pid) {
  char path[40] = "/proc/";
  char digits[24];
  int n = 0;
  for (long long v = pid; v > 0 && n < 20; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
  std::size_t k = 6;
  while (n > 0) path[k++] = digits[--n];
  std::memcpy(path + k, "/stat", 6);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  char buf[512];
  const ssize_t got = ::read(fd, buf, sizeof buf);
  ::close(fd);
  for (ssize_t i = got - 1; i > 0; --i)  // "pid (name) S ...": the state follows the last ')'
    if (buf[i] == ')') return i + 2 < got && (buf[i + 2] == 'Z' || buf[i + 2] == 'X');
  return false;
}

void write_str(int fd, const char* s, std::size_t n) { [[maybe_unused]] const ssize_t w = ::write(fd, s, n); }
void write_num(int fd, long long v) {
  char d[24];
  int n = 0;
  do {
    d[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0 && n < 20);
  char out[24];
  for (int i = 0; i < n; ++i) out[i] = d[n - 1 - i];
  write_str(fd, out, static_cast<std::size_t>(n));
}

// A rank told to stop by its launcher (mpirun passes Ctrl-C on as SIGTERM, and ends every rank
// when one dies) waits a moment, so that rank 0 names the rank that really ended.
extern "C" void worker_stop(int sig) {
  const timespec t{0, 500000000};
  ::nanosleep(&t, nullptr);
  ::_exit(128 + sig);
}

std::string recv_text(const MPI_Status& st) {
  int n = 0;
  MPI_Get_count(&st, MPI_CHAR, &n);
  std::string s(static_cast<std::size_t>(n), '\0');
  MPI_Recv(s.data(), n, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return s;
}

// CPU time of the calling thread: what rank 0's coordinating costs, whoever else runs.
double thread_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// MPI_Wait without spinning: a rank waiting does not slow the ones working beside it.
// Sleeps grow from 50 us to 5 ms: many idle ranks on few cores do not crowd out the busy ones.
void nap(int& us) {
  std::this_thread::sleep_for(std::chrono::microseconds(us));
  us = std::min(us * 2, 5000);
}
void wait_sleeping(MPI_Request& req) {
  for (int done = 0, us = 50;;) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done) return;
    nap(us);
  }
}

// A worker's answer: MPI_Send would spin until rank 0 takes it (Open MPI yields and polls when
// oversubscribed); this sleeps between looks instead.
void send_sleeping(const std::string& s, int to, int tag) {
  MPI_Request req;
  MPI_Isend(s.data(), static_cast<int>(s.size()), MPI_CHAR, to, tag, MPI_COMM_WORLD, &req);
  wait_sleeping(req);
}

// Rank 0's messages to the ranks, one in flight per rank at most (a rank is sent its next job
// only after it answered the last): MPI_Isend, so handing a job out costs rank 0 no waiting.
// Measured on 32 oversubscribed ranks (bench/cluster_bench.sh), a blocking MPI_Send took 1.4 ms
// of rank 0's CPU per job, most of its coordinating cost.
class Outbox {
 public:
  explicit Outbox(int ranks) : text_(static_cast<std::size_t>(ranks)), req_(static_cast<std::size_t>(ranks), MPI_REQUEST_NULL) {}
  ~Outbox() {
    for (MPI_Request& r : req_) wait_sleeping(r);
  }
  void send(std::string s, int to, int tag) {
    const auto k = static_cast<std::size_t>(to);
    wait_sleeping(req_[k]);  // long done: the rank answered the message before it
    text_[k] = std::move(s);
    MPI_Isend(text_[k].data(), static_cast<int>(text_[k].size()), MPI_CHAR, to, tag, MPI_COMM_WORLD, &req_[k]);
  }

 private:
  std::vector<std::string> text_;
  std::vector<MPI_Request> req_;
};

// The splits of each (block size, split seed), made once per rank.
class SplitCache {
 public:
  explicit SplitCache(const Dataset& d) : data_(d) {}
  const Splits& get(const Config& c) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto k = std::make_pair(c.block_size, c.split_seed);
    auto it = cache_.find(k);
    if (it == cache_.end()) it = cache_.emplace(k, data_.split_nonempty(k.first, k.second)).first;
    return it->second;
  }

 private:
  const Dataset& data_;
  std::mutex mu_;
  std::map<std::pair<int, uint64_t>, Splits> cache_;
};

// One job's answer, as a rank sends it.
std::string train_answer(std::size_t i, const study::Job& job, SplitCache& splits, int vocab) {
  try {
    return json{{"i", i}, {"record", study::record_to_json(study::train_job(job, splits.get(job.config), vocab))}}.dump();
  } catch (const std::exception& e) {
    return json{{"i", i}, {"error", e.what()}}.dump();
  }
}

}  // namespace

World::World() {
  const bool launched_here = launched().size > 1 || std::getenv("PMIX_RANK") != nullptr;
  if (!launched_here) return;
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  started_ = true;
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
}

World::~World() {
  if (!started_) return;
  // Open MPI's blocking calls spin: a rank waiting in MPI_Finalize for rank 0 to write the
  // outputs would take a core from it. Wait for every rank here, sleeping between looks.
  MPI_Request all_here;
  MPI_Ibarrier(MPI_COMM_WORLD, &all_here);
  wait_sleeping(all_here);
  MPI_Finalize();
}

void share_words(const World& w, const Dataset* data) {
  std::string text;
  if (data) {
    json j{{"source", data->source()}, {"words", json::array()}};
    for (const auto& word : data->words()) j["words"].push_back(to_utf8(word));
    text = j.dump();
  }
  long long n = data ? static_cast<long long>(text.size()) : -1;
  MPI_Request sent_n;  // matches the other ranks' MPI_Ibcast
  MPI_Ibcast(&n, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD, &sent_n);
  MPI_Wait(&sent_n, MPI_STATUS_IGNORE);
  if (n > 0) MPI_Bcast(text.data(), static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD);
  if (n < 0) return;
  // Who is where: a rank on this host that ends can be named by write_ended_ranks.
  const Hello me = hello();
  std::vector<Hello> all(static_cast<std::size_t>(w.size()));
  MPI_Gather(&me, sizeof me, MPI_BYTE, all.data(), sizeof me, MPI_BYTE, 0, MPI_COMM_WORLD);
  g_watched = std::min(w.size(), kWatchMax);
  for (int r = 0; r < g_watched; ++r) {
    g_pid[r] = all[static_cast<std::size_t>(r)].pid;
    g_here[r] = std::strncmp(all[static_cast<std::size_t>(r)].host, me.host, sizeof me.host) == 0;
  }
}

bool serve([[maybe_unused]] const World& w) {
  long long n = 0;
  MPI_Request got_n;  // rank 0 may take a while reading the words: wait without spinning
  MPI_Ibcast(&n, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD, &got_n);
  wait_sleeping(got_n);
  if (n < 0) return false;
  std::string text(static_cast<std::size_t>(n), '\0');
  MPI_Bcast(text.data(), static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD);
  const Hello me = hello();
  MPI_Gather(&me, sizeof me, MPI_BYTE, nullptr, 0, MPI_BYTE, 0, MPI_COMM_WORLD);
  std::signal(SIGTERM, worker_stop);
  std::signal(SIGINT, worker_stop);
  const json j = json::parse(text);
  std::vector<std::u32string> words;
  for (const auto& s : j["words"]) {
    std::u32string u;
    from_utf8(s.get<std::string>(), &u);
    words.push_back(std::move(u));
  }
  const Dataset data = Dataset::from_words(std::move(words), j["source"].get<std::string>());
  SplitCache splits(data);
  for (;;) {
    MPI_Status st;
    for (int here = 0, us = 50; !here;) {  // MPI_Probe spins; this sleeps between looks
      MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &here, &st);
      if (!here) nap(us);
    }
    const std::string msg = recv_text(st);
    if (st.MPI_TAG == kStop) return true;
    const json m = json::parse(msg);
    const study::Job job =
        study::make_job(m["name"].get<std::string>(), parse_config(m["config"], "job " + m["name"].get<std::string>()),
                        m["config"]["train"]["seed"].get<uint64_t>(), m["at_init"].get<bool>());
    send_sleeping(train_answer(m["i"].get<std::size_t>(), job, splits, data.vocab().size()), 0, kResult);
  }
}

namespace {

// Rank 0's side: the queue of jobs, what each rank holds, rank 0's own trainer thread.
class Coordinator {
 public:
  Coordinator(const World& w, const std::vector<study::Job>& jobs, const Dataset& data, const study::Store& store,
              const study::RunOptions& opt, const NoteHook& on_note)
      : w_(w),
        jobs_(jobs),
        data_(data),
        store_(store),
        opt_(opt),
        on_note_(on_note),
        splits_(data),
        outbox_(w.size()),
        at_rank_(static_cast<std::size_t>(w.size()), -1) {
    out_.finished.resize(jobs.size());
    settled_.resize(jobs.size(), false);
  }

  Coordinated run(const std::vector<double>& cost) {
    std::vector<std::size_t> todo;
    for (std::size_t i = 0; i < jobs_.size(); ++i) {
      keys_.push_back(study::job_key(jobs_[i], data_.fingerprint()));
      if (std::optional<study::Record> kept = study::find_kept(keys_[i], store_, opt_)) {
        out_.finished[i].record = std::move(*kept);
        out_.finished[i].reused = true;
        if (opt_.on_finished) opt_.on_finished(i, out_.finished[i]);
      } else {
        todo.push_back(i);
      }
    }
    std::stable_sort(todo.begin(), todo.end(), [&](std::size_t a, std::size_t b) { return cost[a] > cost[b]; });
    queue_.assign(todo.begin(), todo.end());
    int holding = 0;
    for (int r = 1; r < w_.size(); ++r) holding += hand(r) ? 1 : 0;
    std::thread own;
    own_running_ = w_.size() < kCoordinatorTrainsBelow;  // from 8 ranks on, rank 0 only coordinates
    if (own_running_) own = std::thread([this] { train_own(); });
    loop(holding);
    if (own.joinable()) own.join();
    settle_own();
    return std::move(out_);
  }

 private:
  // Sends rank r its next job (true) or the stop (false).
  bool hand(int r) {
    long next = -1;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!queue_.empty()) {
        next = static_cast<long>(queue_.front());
        queue_.pop_front();
      }
    }
    at_rank_[static_cast<std::size_t>(r)] = next;
    if (next < 0) {
      set_job(static_cast<std::size_t>(r), "");
      outbox_.send("", r, kStop);
      return false;
    }
    const study::Job& j = jobs_[static_cast<std::size_t>(next)];
    set_job(static_cast<std::size_t>(r), j.name);
    outbox_.send(json{{"i", next}, {"name", j.name}, {"config", j.config.to_json()}, {"at_init", j.at_init}}.dump(), r, kJob);
    ++out_.handed_out;
    return true;
  }

  void loop(int holding) {
    while (holding > 0 || own_running_) {
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kResult, MPI_COMM_WORLD, &flag, &st);
      if (flag) {
        const double t0 = thread_cpu_seconds();
        const json m = json::parse(recv_text(st));
        const std::size_t i = m["i"].get<std::size_t>();
        study::Finished f;
        if (m.contains("error"))
          f.error = m["error"].get<std::string>();
        else
          f.record = study::record_from_json(m["record"]);
        settle(i, std::move(f));
        holding -= hand(st.MPI_SOURCE) ? 0 : 1;
        note();
        out_.coordinator_seconds += thread_cpu_seconds() - t0;
      } else if (!settle_own()) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  }

  void settle(std::size_t i, study::Finished f) {
    if (f.ok()) {
      try {
        store_.put(keys_[i], jobs_[i].name, f.record);
      } catch (const std::exception& e) {
        f.error = e.what();
      }
    }
    out_.finished[i] = std::move(f);
    settled_[i] = true;
    if (opt_.on_finished) opt_.on_finished(i, out_.finished[i]);
  }

  // Rank 0's own trainings: taken from the same queue, settled by the MPI thread.
  void train_own() {
    for (;;) {
      std::size_t i = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.empty()) break;
        i = queue_.front();
        queue_.pop_front();
        at_rank_[0] = static_cast<long>(i);
        set_job(0, jobs_[i].name);
        ++out_.handed_out;
      }
      study::Finished f;
      try {
        f.record = study::train_job(jobs_[i], splits_.get(jobs_[i].config), data_.vocab().size());
      } catch (const std::exception& e) {
        f.error = e.what();
      }
      std::lock_guard<std::mutex> lock(mu_);
      own_done_.emplace_back(i, std::move(f));
    }
    own_running_ = false;
  }
  bool settle_own() {
    const double t0 = thread_cpu_seconds();
    std::vector<std::pair<std::size_t, study::Finished> > done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done.swap(own_done_);
    }
    for (auto& [i, f] : done) settle(i, std::move(f));
    if (done.empty()) return false;
    note();
    out_.coordinator_seconds += thread_cpu_seconds() - t0;
    return true;
  }

  // "rank 1: NAME; rank 2: NAME" for the message of a study stopped mid-way.
  void note() {
    if (!on_note_) return;
    std::string s;
    std::lock_guard<std::mutex> lock(mu_);
    for (std::size_t r = 0; r < at_rank_.size(); ++r) {
      const long i = at_rank_[r];
      if (i < 0 || settled_[static_cast<std::size_t>(i)]) continue;
      s += fmt::format("{}rank {}: {}", s.empty() ? "" : "; ", r, jobs_[static_cast<std::size_t>(i)].name);
    }
    on_note_(s);
  }

  const World& w_;
  const std::vector<study::Job>& jobs_;
  const Dataset& data_;
  const study::Store& store_;
  const study::RunOptions& opt_;
  const NoteHook& on_note_;
  SplitCache splits_;
  Outbox outbox_;
  std::vector<json> keys_;
  std::vector<long> at_rank_;  // the job each rank trains (-1: none); at_rank_[0] written under mu_
  std::vector<bool> settled_;
  std::deque<std::size_t> queue_;
  std::vector<std::pair<std::size_t, study::Finished> > own_done_;
  std::atomic<bool> own_running_{true};
  std::mutex mu_;
  Coordinated out_;
};

}  // namespace

Coordinated coordinate(const World& w, const std::vector<study::Job>& jobs, const std::vector<double>& cost, const Dataset& data,
                       const study::Store& store, const study::RunOptions& opt, const NoteHook& on_note) {
  Coordinator c(w, jobs, data, store, opt, on_note);
  return c.run(cost);
}

void write_ended_ranks(int fd) {
  for (int r = 1; r < g_watched; ++r) {
    if (!g_here[r] || !ended(g_pid[r])) continue;
    write_str(fd, "rank ", 5);
    write_num(fd, r);
    write_str(fd, " (pid ", 6);
    write_num(fd, g_pid[r]);
    write_str(fd, ") ended", 7);
    if (g_job[r][0] != '\0') {
      write_str(fd, " while training ", 16);
      write_str(fd, g_job[r], ::strnlen(g_job[r], kNameMax));
    }
    write_str(fd, "; ", 2);
  }
}

#endif  // MM_HAVE_MPI

}  // namespace mm::cluster
