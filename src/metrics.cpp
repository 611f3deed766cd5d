// metrics.jsonl: written through a large stdio buffer so the step loop never waits on disk; the
// file is opened without following a symbolic link (atomic_file.h). The progress display.
#include "makemore/metrics.h"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>

#include "makemore/atomic_file.h"
#include "makemore/error.h"
#include "makemore/json_text.h"

namespace mm {

MetricsWriter::MetricsWriter(const std::string& path, bool append) : path_(path), buf_(1 << 20) {
  f_ = open_log(path, append);
  std::setvbuf(f_, buf_.data(), _IOFBF, buf_.size());
}

MetricsWriter::~MetricsWriter() {
  if (f_) std::fclose(f_);
}

void MetricsWriter::after_forward(Trainer&, int64_t, float loss) { loss_ = loss; }

void MetricsWriter::after_update(Trainer&, int64_t step, double lr) {
  fmt::memory_buffer line;
  if (std::isfinite(loss_))
    fmt::format_to(std::back_inserter(line), "{{\"step\":{},\"loss\":{},\"lr\":{:g}}}\n", step, loss_, lr);
  else
    fmt::format_to(std::back_inserter(line), "{{\"step\":{},\"loss\":null,\"lr\":{:g}}}\n", step, lr);  // JSON has no NaN
  write_log(f_, {line.data(), line.size()}, path_);
}

void MetricsWriter::write_val(int64_t step, double val_loss) {
  const std::string line = std::isfinite(val_loss) ? fmt::format("{{\"step\":{},\"val_loss\":{}}}\n", step, val_loss)
                                                   : fmt::format("{{\"step\":{},\"val_loss\":null}}\n", step);
  write_log(f_, line, path_);
}

void MetricsWriter::on_end(Trainer&) { flush(); }

void ValidationCurve::on_begin(Trainer& t) {
  if (due(t.first_step(), t.config().steps)) evaluate(t, t.first_step());
}

void ValidationCurve::after_update(Trainer& t, int64_t step, double) {
  if (due(step + 1, t.config().steps)) evaluate(t, step + 1);
}

void ValidationCurve::evaluate(Trainer& t, int64_t done) {
  const auto t0 = std::chrono::steady_clock::now();
  const Model& m = t.model();
  if (!twin_) twin_ = m.clone();
  twin_->params().values() = m.params().values();
  twin_->params().buffers() = m.params().buffers();
  // The final evaluation's chunks, so the last point is the run's val_loss to the bit (each
  // distinct context is forwarded once: ~2 ms for the lecture's 22,655 validation examples).
  const double loss = twin_->evaluate(val_);
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  record_(done, loss);
}

void MetricsWriter::flush() {
  if (f_ && std::fflush(f_) != 0)
    throw Error(
        fmt::format("{}: cannot write ({}); check free disk space and that the folder is writable", path_, std::strerror(errno)));
}

void MetricsWriter::sync() {
  if (f_) fsync_file(f_, path_);
}

void StepCallback::after_update(Trainer& t, int64_t step, double) {
  if ((every_ > 0 && (step + 1) % every_ == 0) || step + 1 == t.config().steps) fn_(step, loss_);
}

void ProgressLog::on_begin(Trainer& t) {
  start_ = reported_ = t.first_step();
  t0_ = last_ = std::chrono::steady_clock::now();
}

void ProgressLog::report_progress(int64_t step, float loss) {
  const int64_t done = step + 1;
  if ((done & 255) != 0 && done != total_) return;  // the clock is read every 256 steps
  const auto now = std::chrono::steady_clock::now();
  const bool tenth = (done - reported_) * 10 >= total_ - start_;
  if (done != total_ && !tenth && now - last_ < std::chrono::seconds(30)) return;
  last_ = now;
  reported_ = done;
  const double el = std::chrono::duration<double>(now - t0_).count();
  const double rate = el > 0 ? static_cast<double>(done - start_) / el : 0;
  const double left = rate > 0 ? static_cast<double>(total_ - done) / rate : 0;
  fmt::print(progress_, "makemore: step {}/{} ({:.0f}%) | loss {:.4f} | {:.0f} steps/s | {:.0f}s left\n", done, total_,
             100.0 * static_cast<double>(done) / static_cast<double>(std::max<int64_t>(total_, 1)), loss, rate, left);
  std::fflush(progress_);
}

void ProgressLog::after_forward(Trainer&, int64_t step, float loss) {
  if (!live_) {
    if (step % 10000 == 0) fmt::print(out_, "{:7d}/{:7d}: {:.4f}\n", step, total_, loss);
    if (progress_) report_progress(step, loss);
    return;
  }
  if ((step & 255) != 0 && step + 1 != total_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_ < std::chrono::milliseconds(100) && step + 1 != total_) return;
  last_ = now;
  const double el = std::chrono::duration<double>(now - t0_).count();
  const double rate = el > 0 ? static_cast<double>(step + 1 - start_) / el : 0;
  const double eta = rate > 0 ? static_cast<double>(total_ - step - 1) / rate : 0;
  fmt::print(out_, "\r  step {:>7}/{} | loss {:.4f} | {:>8.0f} steps/s | ETA {:5.1f}s ", step + 1, total_, loss, rate, eta);
  std::fflush(out_);
}

void ProgressLog::on_end(Trainer&) {
  if (live_) fmt::print(out_, "\n");
}

std::vector<float> read_losses(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot read ({})", path, std::strerror(errno)));
  std::vector<float> out;
  std::string line;
  while (std::getline(in, line)) {
    const auto p = line.find("\"loss\":");
    if (p == std::string::npos) continue;
    out.push_back(std::strtof(line.c_str() + p + 7, nullptr));
  }
  return out;
}

MetricsColumns read_metrics(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot read ({})", path, std::strerror(errno)));
  MetricsColumns m;
  std::string line;
  const auto number_or_null = [](const nlohmann::json& j, const char* key) {
    return j.contains(key) && (j[key].is_number() || j[key].is_null());
  };
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    const nlohmann::json j = parse_json_line(line).value_or(nlohmann::json());
    const bool record = j.is_object() && j.contains("step") && j["step"].is_number_integer();
    const bool step_record = record && number_or_null(j, "loss") && j.contains("lr") && j["lr"].is_number();
    const bool val_record = record && number_or_null(j, "val_loss");
    if (!step_record && !val_record)
      throw Error(fmt::format(
          "{}:{}: not a metrics record ({{\"step\", \"loss\", \"lr\"}} or {{\"step\", \"val_loss\"}}); the file was damaged",
          path, n));
    const auto step = j["step"].get<int64_t>();
    if (step_record) {
      m.step.push_back(step);
      m.loss.push_back(j["loss"].is_null() ? std::numeric_limits<float>::quiet_NaN() : j["loss"].get<float>());
      m.lr.push_back(j["lr"].get<double>());
    }
    if (val_record) {
      m.val_step.push_back(step);
      m.val_loss.push_back(j["val_loss"].is_null() ? std::numeric_limits<double>::quiet_NaN() : j["val_loss"].get<double>());
    }
  }
  return m;
}

}  // namespace mm
