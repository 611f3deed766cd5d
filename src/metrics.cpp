// metrics.jsonl: written through a large stdio buffer so the step loop never waits on disk.
#include "makemore/metrics.h"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include "makemore/error.h"

namespace mm {

MetricsWriter::MetricsWriter(const std::string& path, bool append) : path_(path), buf_(1 << 20) {
  f_ = std::fopen(path.c_str(), append ? "a" : "w");
  if (!f_) throw Error(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
  std::setvbuf(f_, buf_.data(), _IOFBF, buf_.size());
}

MetricsWriter::~MetricsWriter() {
  if (f_) std::fclose(f_);
}

void MetricsWriter::after_forward(Trainer&, int64_t, float loss) { loss_ = loss; }

void MetricsWriter::after_update(Trainer&, int64_t step, double lr) {
  if (std::isfinite(loss_)) fmt::print(f_, "{{\"step\":{},\"loss\":{},\"lr\":{:g}}}\n", step, loss_, lr);
  else fmt::print(f_, "{{\"step\":{},\"loss\":null,\"lr\":{:g}}}\n", step, lr);  // JSON has no NaN
}

void MetricsWriter::on_end(Trainer&) { flush(); }

void MetricsWriter::flush() {
  if (f_ && std::fflush(f_) != 0) throw Error(fmt::format("{}: cannot write ({})", path_, std::strerror(errno)));
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

}  // namespace mm
