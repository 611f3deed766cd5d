// A diagnosis as text (diag_io.h): the lecture's printed tables, unicode histograms and the
// doctor's findings, as `makemore inspect` prints them.
#include <fmt/format.h>

#include <algorithm>

#include "makemore/diag_io.h"

namespace mm {

namespace {
std::string layer_name(const LayerDiag& d) { return d.name.empty() ? std::to_string(d.index) : d.name; }
}  // namespace

std::string sparkline(const Histogram& h, int width) {
  static const char* const kBars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  if (h.counts.empty() || width < 1) return {};
  // Merge bins down to `width` columns when there are more bins than columns.
  const std::size_t nb = h.counts.size();
  const std::size_t w = std::min(nb, static_cast<std::size_t>(width));
  std::vector<int64_t> cols(w, 0);
  for (std::size_t b = 0; b < nb; ++b) cols[b * w / nb] += h.counts[b];
  const int64_t top = *std::max_element(cols.begin(), cols.end());
  std::string s;
  for (int64_t c : cols) {
    if (c == 0 || top == 0) {
      s += ' ';
      continue;
    }
    const auto level = static_cast<std::size_t>(std::min<int64_t>(7, (c * 8 - 1) / top));
    s += kBars[level];
  }
  return s;
}

std::string format_diagnosis(const Diagnosis& r) {
  const Snapshot& s = r.snapshot;
  std::string o;
  auto line = [&o](const std::string& t) { o += t + "\n"; };
  line(fmt::format("{} at step {} ({} updates before it), minibatch of {}", r.name, s.step, r.steps_trained, s.batch));
  line(fmt::format("loss {:.4f} on this minibatch; initial loss {}; expected -ln(1/{}) = {:.4f}", s.loss,
                   r.initial_loss ? fmt::format("{:.4f}", *r.initial_loss) : std::string("unknown"), r.vocab_size,
                   r.expected_loss));
  const auto buckets = loss_buckets(r.losses, 1000);
  if (buckets.size() > 1) {
    std::string b;
    for (double v : buckets) b += fmt::format(" {:.4f}", v);
    line("mean loss per 1,000 steps:" + b);
  }

  const auto in_order = layers_in_order(s);
  line(
      "\n--- activation distribution (bounded activations; |t| > 0.97 saturated, t the output on [-1, 1], as the "
      "lecture's cell 15)");
  for (const LayerDiag* d : in_order)
    if (d->bounded())
      line(fmt::format("layer {} ({:>10}): mean {:+.2f}, std {:.2f}, saturated: {:.2f}%", layer_name(*d), d->type, d->out.mean,
                       d->out.std, d->saturated_pct));
  line("--- saturation beyond |0.99| and dead units (|t| > 0.99 for every example)");
  for (const LayerDiag* d : in_order)
    if (d->bounded())
      line(fmt::format("layer {} ({:>10}): pre-activation mean {:+.2f} std {:.2f} | |t|>0.99 {:.2f}% | dead {} of {}{}",
                       layer_name(*d), d->type, d->pre.mean, d->pre.std, d->sat99_pct, d->dead_units, d->units,
                       d->dead_units_sample >= 0
                           ? fmt::format(" | sample: |t|>0.99 {:.2f}%, dead {}", d->sat99_pct_sample, d->dead_units_sample)
                           : std::string()));
  line("--- gradient distribution (cell 16)");
  for (const LayerDiag* d : in_order)
    if (d->bounded() && d->has_grad)
      line(fmt::format("layer {} ({:>10}): mean {:+f}, std {:e}", layer_name(*d), d->type, d->grad.mean, d->grad.std));
  line("--- weights gradient distribution (cell 17)");
  for (const auto& p : s.params) {
    if (p.is_1d) continue;
    line(fmt::format("weight {:>10} | mean {:+f} | std {:e} | grad:data ratio {:e}", fmt::format("({}, {})", p.rows, p.cols),
                     p.grad.mean, p.grad.std, p.grad_data_ratio));
  }
  if (s.updated) {
    line("--- update:data log10(std(update) / std(data)) at this step (cell 18; aim for about -3)");
    for (const auto& p : s.params)
      if (p.update_data_log10) line(fmt::format("{:<24} {:+.3f}", p.name, *p.update_data_log10));
  }

  line("\n--- histograms (output | pre-activation of a bounded activation | gradient of the output), ranges in brackets");
  auto range = [](const Histogram& h) { return fmt::format("[{:+.2g}, {:+.2g}]", h.lo, h.hi); };
  for (const LayerDiag* dp : in_order) {
    const LayerDiag& d = *dp;
    line(fmt::format("layer {:>2} {:<12} out  {:<18} {}", layer_name(d), d.type, range(d.hist), sparkline(d.hist)));
    if (d.has_pre) line(fmt::format("{:<22}pre  {:<18} {}", "", range(d.pre_hist), sparkline(d.pre_hist)));
    if (d.has_grad) line(fmt::format("{:<22}grad {:<18} {}", "", range(d.grad_hist), sparkline(d.grad_hist)));
  }

  line("");
  if (r.findings.empty()) {
    line("healthy: no findings (initial loss, saturation, dead units, gradient and activation scale across depth" +
         std::string(r.steps_trained > 0 && !r.ratios.empty() ? ", update:data" : "") + " all look as the lecture wants them)");
  } else {
    line(fmt::format("findings ({}):", r.findings.size()));
    for (const auto& f : r.findings) {
      line(fmt::format("[{}] {}", f.id, f.message));
      line("  evidence: " + f.evidence);
      line("  fix: " + f.fix);
    }
  }
  return o;
}

}  // namespace mm
