// A study across the ranks of an MPI job (mpirun -np N, Slurm's srun): an optional build
// feature (CMake -DMM_WITH_MPI=ON, Open MPI from Debian). Rank 0 reads the word list once and
// broadcasts it, hands the jobs out one at a time (most expensive first) to whichever rank is
// free, receives each result and alone writes the store and the outputs; every other rank only
// trains. Each training is seeded and single-threaded, so the results are the same bits as a
// local run's. Without MPI built in, launched() still reads the launcher's environment, so a
// binary started by mpirun can say it cannot take part instead of running N copies.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "makemore/data.h"
#include "makemore/study_engine.h"

namespace mm::cluster {

// Whether this build has MPI (MM_WITH_MPI).
bool mpi_built();

// The world as the launcher's environment describes it: Open MPI's mpirun sets
// OMPI_COMM_WORLD_SIZE / OMPI_COMM_WORLD_RANK, MPICH's and srun's PMI PMI_SIZE / PMI_RANK;
// size 1 when neither is there (srun with PMIx sets only PMIX_RANK: World asks MPI itself).
struct Launch {
  int size = 1, rank = 0;
};
Launch launched();

// MPI, started for the lifetime of the object when the launch has more than one rank and MPI
// is built in (MPI_Init_thread, funneled: only the thread that made it calls MPI); otherwise
// size 1, rank 0 and nothing started.
class World {
 public:
  World();
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;
  int size() const { return size_; }
  int rank() const { return rank_; }
  bool active() const { return size_ > 1; }

 private:
  int size_ = 1, rank_ = 0;
  bool started_ = false;
};

// Rank 0: the word list to every rank (ok), or that the study ended before training (!ok:
// the other ranks return from serve() without training).
void share_words(const World& w, const Dataset* data);
// Rank 0's preparation of a study: prepare() (which loads the word list), then the words shared
// with the other ranks (words_of(prepared)); a preparation that fails ends them too.
template <class Prepare, class WordsOf>
auto prepare_and_share(const World& w, Prepare&& prepare, WordsOf&& words_of) {
  std::optional<decltype(prepare())> p;
  try {
    p.emplace(prepare());
  } catch (...) {
    if (w.active()) share_words(w, nullptr);  // the other ranks end too
    throw;
  }
  if (w.active()) share_words(w, &words_of(*p));
  return std::move(*p);
}
// Rank 0: the jobs not in the store (or opt's other stores), handed out most expensive first
// (cost[i] per job); each result is put into `store` as it arrives and reported through
// opt.on_finished. Rank 0 trains too when the world has fewer than kCoordinatorTrainsBelow
// ranks (a rank that only waits is a lost core on a small allocation). Returns one Finished
// per job, in job order, and the CPU time rank 0 spent handing out and storing (not waiting).
inline constexpr int kCoordinatorTrainsBelow = 8;
struct Coordinated {
  std::vector<study::Finished> finished;
  double coordinator_seconds = 0;  // CPU time handing out, receiving, storing: not waiting, not training
  int handed_out = 0;              // jobs trained by the ranks (rank 0's own included)
};
// on_note: after each job handed out or settled, the jobs in flight ("rank 1: NAME; rank 2:
// NAME"), for the message of a study stopped part way.
using NoteHook = std::function<void(const std::string& in_flight)>;
Coordinated coordinate(const World& w, const std::vector<study::Job>& jobs, const std::vector<double>& cost, const Dataset& data,
                       const study::Store& store, const study::RunOptions& opt, const NoteHook& on_note);
// Rank 0, from a signal handler (async-signal-safe): "rank R (pid P) ended while training NAME; "
// for each other rank on this host whose process has ended (what stopped an MPI study).
void write_ended_ranks(int fd);
// Every rank but 0: receives the words, then trains the jobs it is handed until told to stop.
// Returns false when rank 0 ended the study before training (share_words(w, nullptr)).
bool serve(const World& w);

// What every study (sweep, depth, ...) does first: true on every MPI rank but 0, after serving
// (the caller returns with nothing to print); false on rank 0 and in a plain process. Started
// as several ranks by a build without MPI: rank 0 throws an mm::Error saying so, the others
// return true at once.
bool served_as_worker(const World& w);

// Rank 0 (or a plain process): the study's jobs across the ranks when the world is active
// (coordinate, most expensive first by study::job_cost; the words must have been shared),
// otherwise on study::run_jobs' pool of opt.threads, in job order. Results are the same bits
// either way; coordinator_seconds is 0 without MPI.
Coordinated run_jobs_here_or_on_ranks(const World& w, const std::vector<study::Job>& jobs, const Dataset& data,
                                      const study::Store& store, const study::RunOptions& opt, const NoteHook& on_note = {});

}  // namespace mm::cluster
