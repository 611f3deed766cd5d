// Observers that record the loss: metrics.jsonl in the run folder (one JSON object per step, and
// one per validation evaluation), the validation curve, and the lecture's printed log
// ("  10000/ 200000: 2.0322") or a live progress line.
#pragma once
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "makemore/train.h"

namespace mm {

class MetricsWriter : public Observer {
 public:
  bool watches_backward(int64_t) const override { return false; }
  bool watches_forward(int64_t) const override { return false; }
  // append: continue a resumed run's file (its lines up to the resumed step are kept).
  explicit MetricsWriter(const std::string& path, bool append = false);
  ~MetricsWriter() override;
  void after_forward(Trainer&, int64_t step, float loss) override;
  void after_update(Trainer&, int64_t step, double lr) override;
  void on_end(Trainer&) override;
  // A validation record {"step", "val_loss"} (null when not finite): the loss on the whole
  // validation split of the parameters after `step` updates.
  void write_val(int64_t step, double val_loss);
  void flush();  // what is written so far out of the buffer
  void sync();   // ... and onto the disk (before a train state that counts these steps)

 private:
  std::string path_;
  FILE* f_ = nullptr;
  std::vector<char> buf_;
  float loss_ = 0;
};

// The validation curve (`train --eval-every N`): the mean loss of the whole validation split in
// eval mode, at step 0, every N steps and at the last step, handed to `record` with the number of
// updates done. It evaluates a copy of the model (its parameters and running statistics copied
// in), so the training sees nothing of it: no generator draw, no BatchNorm statistics moved, no
// cached activation replaced (inspect and the diagnostics read those). A resumed run records the
// step it resumes at when that is one of these steps: the run folder trims such records first.
class ValidationCurve : public Observer {
 public:
  bool watches_backward(int64_t) const override { return false; }
  bool watches_forward(int64_t) const override { return false; }
  ValidationCurve(int64_t every, const Examples& val, std::function<void(int64_t step, double loss)> record)
      : every_(every), val_(val), record_(std::move(record)) {}
  void on_begin(Trainer& t) override;
  void after_update(Trainer& t, int64_t step, double) override;
  double seconds() const { return seconds_; }  // spent evaluating so far (inside the loop's time)

 private:
  bool due(int64_t done, int64_t total) const { return every_ > 0 && (done % every_ == 0 || done == total); }
  void evaluate(Trainer& t, int64_t done);
  int64_t every_;
  const Examples& val_;
  std::function<void(int64_t, double)> record_;
  std::unique_ptr<Model> twin_;
  double seconds_ = 0;
};

// Per-step losses kept in memory (for the report's loss curve and the loss log).
class LossRecorder : public Observer {
 public:
  bool watches_backward(int64_t) const override { return false; }
  bool watches_forward(int64_t) const override { return false; }
  void after_forward(Trainer&, int64_t, float loss) override { losses.push_back(loss); }
  std::vector<float> losses;
};

// On a terminal (live): one line redrawn in place (step, loss, steps/s, ETA). Otherwise the
// lecture's log line every 10k steps (and the last step), and, given a `progress` stream (a
// notebook's or CI's stderr), a line there about every 10% of the run or 30 seconds: "makemore:
// step 20000/200000 (10%) | loss 2.0322 | 15952 steps/s | 11s left".
class ProgressLog : public Observer {
 public:
  bool watches_backward(int64_t) const override { return false; }
  bool watches_forward(int64_t) const override { return false; }
  ProgressLog(std::FILE* out, bool live, int64_t total, std::FILE* progress = nullptr)
      : out_(out), progress_(live ? nullptr : progress), live_(live), total_(total) {}
  void on_begin(Trainer& t) override;
  void after_forward(Trainer&, int64_t step, float loss) override;
  void on_end(Trainer&) override;

 private:
  void report_progress(int64_t step, float loss);
  std::FILE* out_;
  std::FILE* progress_;
  bool live_;
  int64_t total_, start_ = 0, reported_ = 0;
  std::chrono::steady_clock::time_point t0_, last_;
};

// Calls fn(step, loss) after every `every`-th step's update (and the last step's): how a front
// end (a Python callback, a notebook's plot) follows a training without writing an Observer.
class StepCallback : public Observer {
 public:
  bool watches_backward(int64_t) const override { return false; }
  // A front end's callback might read the model's activations.
  bool watches_forward(int64_t) const override { return true; }
  StepCallback(int64_t every, std::function<void(int64_t step, float loss)> fn) : every_(every), fn_(std::move(fn)) {}
  void after_forward(Trainer&, int64_t, float loss) override { loss_ = loss; }
  void after_update(Trainer& t, int64_t step, double) override;

 private:
  int64_t every_;
  std::function<void(int64_t, float)> fn_;
  float loss_ = 0;
};

// Reads metrics.jsonl back: the loss of each step, in order.
std::vector<float> read_losses(const std::string& path);

// metrics.jsonl read back as columns: step / loss / lr, one entry per training step's record (a
// null loss, from a step that diverged, is NaN), and val_step / val_loss, one per validation
// record (train --eval-every; null is NaN). A line may hold both kinds; a line that is neither
// is an mm::Error naming the file and line.
struct MetricsColumns {
  std::vector<int64_t> step;
  std::vector<float> loss;
  std::vector<double> lr;
  std::vector<int64_t> val_step;
  std::vector<double> val_loss;
};
MetricsColumns read_metrics(const std::string& path);

}  // namespace mm
