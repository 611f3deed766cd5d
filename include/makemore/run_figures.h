// The lecture's figures of one run, from its typed record (run_record.h), shared by the run
// report (report.h) and the comparison of runs (compare.h): the log10 loss with its chunk means
// (and the validation loss when train --eval-every recorded it), the |h| > 0.99 saturation map
// as a PNG, and the per-layer histograms.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "makemore/page.h"
#include "makemore/plot.h"
#include "makemore/run_record.h"

namespace mm::figures {

// The lecture uses two thresholds: |h| > 0.97 for the saturated percentage (its cell 15) and
// |h| > 0.99 for the white pixels of its saturation picture (and the dead units). Pages show
// both, so every number says which one it counts.
inline constexpr const char* kSaturatedText = "|h| > 0.97";
inline constexpr const char* kMapText = "|h| > 0.99";

// "1.2345", or "n/a" for a non-finite value.
std::string fmt_num(double v, const char* spec = "{:.4f}");

// The layers the lecture plots: the bounded activations (inside residual blocks too); every
// layer when the network has none.
std::vector<const LayerRecord*> plotted_layers(const SnapshotRecord& s);

std::optional<plot::Histogram> histogram(const std::optional<HistRecord>& h, std::string label);

// log10 of each step's loss (thin) and of its means over chunks of steps (the lecture's
// lossi.view(-1, 1000).mean(1); short runs get chunks of a tenth of the run).
plot::Series loss_raw_series(const std::vector<StepValue>& losses);
plot::Series loss_mean_series(const std::vector<StepValue>& losses);
// log10 of the validation losses (train --eval-every); empty without them.
plot::Series val_loss_series(const std::vector<StepValue>& val_losses);

// The run's training loss figure (with the validation loss when recorded).
page::Figure loss_figure(const RunRecord& r);

// The lecture's plt.imshow(h.abs() > 0.99, cmap='gray'): a zlib-compressed PNG.
page::Figure saturation_figure(const SaturationMapRecord& m, const std::string& id);

// Activation and gradient distributions of the plotted layers (legend: the layer's statistics).
plot::HistogramChart activation_chart(const SnapshotRecord& s);
plot::HistogramChart gradient_chart(const SnapshotRecord& s);

}  // namespace mm::figures
