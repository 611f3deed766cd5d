// Observers that record the loss: metrics.jsonl in the run folder (one JSON object per step),
// and the lecture's printed log ("  10000/ 200000: 2.0322").
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include "makemore/train.h"

namespace mm {

class MetricsWriter : public Observer {
 public:
  // append: continue a resumed run's file (its lines up to the resumed step are kept).
  explicit MetricsWriter(const std::string& path, bool append = false);
  ~MetricsWriter() override;
  void after_forward(Trainer&, int64_t step, float loss) override;
  void after_update(Trainer&, int64_t step, double lr) override;
  void on_end(Trainer&) override;
  void flush();  // what is written so far onto disk (a periodic checkpoint's loss log)

 private:
  std::string path_;
  FILE* f_ = nullptr;
  std::vector<char> buf_;
  float loss_ = 0;
};

// Per-step losses kept in memory (for the report's loss curve and the loss log).
class LossRecorder : public Observer {
 public:
  void after_forward(Trainer&, int64_t, float loss) override { losses.push_back(loss); }
  std::vector<float> losses;
};

// Reads metrics.jsonl back: the loss of each step, in order.
std::vector<float> read_losses(const std::string& path);

}  // namespace mm
