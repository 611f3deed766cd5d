// The lecture's figures of one run (see run_figures.h).
#include "makemore/run_figures.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace mm::figures {

std::string fmt_num(double v, const char* spec) {
  return std::isfinite(v) ? fmt::format(fmt::runtime(spec), v) : std::string("n/a");
}

std::vector<const LayerRecord*> plotted_layers(const SnapshotRecord& s) {
  std::vector<const LayerRecord*> all, bounded;
  for (const auto& l : s.layers) {
    all.push_back(&l);
    if (l.bounded) bounded.push_back(&l);
  }
  return bounded.empty() ? all : bounded;
}

std::optional<plot::Histogram> histogram(const std::optional<HistRecord>& h, std::string label) {
  if (!h) return std::nullopt;
  return plot::Histogram{std::move(label), h->lo, h->hi, h->counts};
}

plot::Series loss_raw_series(const std::vector<StepValue>& losses) {
  plot::Series raw;
  raw.label = "log10 loss per step";
  raw.width = 0.8;
  raw.opacity = 0.45;
  raw.color = "#1f77b4";
  for (const auto& [s, l] : losses) {
    raw.x.push_back(s);
    raw.y.push_back(l > 0 ? std::log10(l) : kNoValue);
  }
  return raw;
}

plot::Series loss_mean_series(const std::vector<StepValue>& losses) {
  const std::size_t n = losses.size();
  const std::size_t chunk = n >= 3000 ? 1000 : std::max<std::size_t>(1, n / 10);
  plot::Series mean;
  mean.label = fmt::format("mean over {}-step chunks", chunk);
  mean.width = 2.5;
  mean.color = "#d62728";
  for (std::size_t i = 0; i < n; i += chunk) {
    const std::size_t e = std::min(n, i + chunk);
    double sum = 0;
    std::size_t cnt = 0;
    for (std::size_t k = i; k < e; ++k)
      if (losses[k].value > 0 && std::isfinite(losses[k].value)) {
        sum += std::log10(losses[k].value);
        ++cnt;
      }
    if (!cnt) continue;
    mean.x.push_back((losses[i].step + losses[e - 1].step) / 2);
    mean.y.push_back(sum / static_cast<double>(cnt));
  }
  return mean;
}

plot::Series val_loss_series(const std::vector<StepValue>& val_losses) {
  plot::Series val;
  val.label = "log10 validation loss (whole split, eval mode)";
  val.width = 2.5;
  val.color = "#2ca02c";
  for (const auto& [s, l] : val_losses) {
    val.x.push_back(s);
    val.y.push_back(l > 0 ? std::log10(l) : kNoValue);
  }
  return val;
}

page::Figure loss_figure(const RunRecord& r) {
  plot::LineChart c;
  c.title = "Training loss";
  c.x_label = "step";
  c.y_label = "log10(loss)";
  c.series = {loss_raw_series(r.losses), loss_mean_series(r.losses)};
  std::string caption = "Minibatch loss per step (log10, thin) and its mean over chunks of steps (thick).";
  if (!r.val_losses.empty()) {
    c.title = "Training and validation loss";
    c.series.push_back(val_loss_series(r.val_losses));
    caption += fmt::format(" Green: the loss on the whole validation split in eval mode, at {} step(s).", r.val_losses.size());
  }
  return {"loss", c.title, caption, plot::render_svg(c), ""};
}

page::Figure saturation_figure(const SaturationMapRecord& m, const std::string& id) {
  const int scale = std::clamp(800 / std::max(m.rows, m.cols), 1, 8);
  return {id, "Saturated tanh units",
          fmt::format("layer {} ({}): white where {}; rows = examples in the batch ({}), columns = units ({}). {:.1f}% white "
                      "(the saturated percentages elsewhere on this page count {}); a fully white column is a dead unit "
                      "that never learns.",
                      m.layer.empty() ? "?" : m.layer, m.type, kMapText, m.rows, m.cols, m.white_pct(), kSaturatedText),
          "", plot::encode_png(plot::saturation_image(m.rows, m.cols, m.bits, scale))};
}

plot::HistogramChart activation_chart(const SnapshotRecord& s) {
  plot::HistogramChart c;
  c.title = "Activation distribution";
  c.x_label = "layer output";
  for (const LayerRecord* l : plotted_layers(s)) {
    std::string lbl = fmt::format("{}: mean {:+.2f}, std {:.2f}", l->label(), l->out_mean, l->out_std);
    if (l->bounded) lbl += fmt::format(", saturated {:.2f}% ({})", l->saturated_pct, kSaturatedText);
    if (auto h = histogram(l->hist, lbl)) c.hists.push_back(*h);
  }
  return c;
}

plot::HistogramChart gradient_chart(const SnapshotRecord& s) {
  plot::HistogramChart c;
  c.title = "Gradient distribution";
  c.x_label = "gradient of the loss w.r.t. the layer output";
  for (const LayerRecord* l : plotted_layers(s))
    if (auto h = histogram(l->grad_hist, fmt::format("{}: mean {:+.6f}, std {:.3e}", l->label(), l->grad_mean, l->grad_std)))
      c.hists.push_back(*h);
  return c;
}

}  // namespace mm::figures
