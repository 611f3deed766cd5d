// Model: builds the layer stack from a config and runs the step's forward and backward.
#include "makemore/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <tuple>

#include "kernels/kernels.h"
#include "makemore/layer_kinds.h"
#include "makemore/parallel.h"

namespace mm {

std::unique_ptr<Layer> make_layer(const LayerSpec& s, int vocab_size, const std::string& where) {
  return s.kind->make(s, LayerBuild{vocab_size, where});
}

namespace {
// The layers whose outputs outputs_finite() reads, from one Sequential's layers (and recursively
// the layers inside its blocks). Left out: a bounded activation's output (tanh, sigmoid), finite
// whenever its input is; and an output that a normalization reads next, since a non-finite
// input makes the norm's output non-finite in both modes (inf - inf in its statistics, inf times
// its scale), and the norm's output is checked itself (or, norm after norm, the last one's).
// Also left out: a residual block whose branch ends in a bounded activation, x + b with |b| <= 1
// (tanh) being finite whenever x is (the sum rounds to at most the largest float); a layer that
// only moves numbers (Flatten: LayerRole::Gather), finite exactly when its input is; and an
// output that a layer checking its input (Tanh, Layer::checks_input) reads next: such layers go
// to `checkers`, whose input_finite() outputs_finite() asks. The input of each is another
// layer's output or the embedding's, checked itself or finite by these rules.
bool bounded_sum(const Layer& layer) {
  const auto* block = dynamic_cast<const Residual*>(&layer);
  if (!block || block->branch().layers().empty()) return false;
  const auto& bounds = block->branch().layers().back()->kind().traits.bounds;
  return bounds && std::max(std::abs(bounds->lo), std::abs(bounds->hi)) <= 1.0;
}

void collect_checked_outputs(const std::vector<Layer*>& layers, std::vector<const Layer*>& out,
                             std::vector<const Layer*>& checkers) {
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const Layer* next = i + 1 < layers.size() ? layers[i + 1] : nullptr;
    const bool read_next = next && (next->kind().traits.role == LayerRole::Normalization || next->checks_input());
    const bool moves_only = layers[i]->kind().traits.role == LayerRole::Gather;
    if (layers[i]->checks_input()) checkers.push_back(layers[i]);
    if (!layers[i]->kind().bounded() && !read_next && !moves_only && !bounded_sum(*layers[i])) out.push_back(layers[i]);
    collect_checked_outputs(layers[i]->children(), out, checkers);
  }
}
}  // namespace

Model::Model(const Config& cfg, int vocab_size) : Model(cfg, vocab_size, true) {}

Model::Layout Model::layout_of(const Config& cfg, int vocab_size) {
  Model m(cfg, vocab_size, false);
  Layout l;
  std::tie(l.values, l.buffers) = m.params_.lay_out();
  l.params = m.params_.infos();
  return l;
}

Model::Model(const Config& cfg, int vocab_size, bool allocate)
    : vocab_size_(vocab_size), block_size_(cfg.block_size), config_(cfg) {
  embedding_ = std::make_unique<Embedding>(vocab_size, cfg.n_embd, cfg.embedding_init);
  embedding_->build(1, block_size_, params_, "embedding.");
  for (std::size_t i = 0; i < cfg.layers.size(); ++i)
    stack_.add(make_layer(cfg.layers[i], vocab_size, fmt::format("model.layers[{}]", i)));
  // The embedding's (B, block_size * n_embd) rows are the same memory as (B * block_size, n_embd):
  // a stack that starts with a flatten takes them as a sequence (stack_takes_sequence).
  const auto& layers = stack_.layers();
  if (stack_takes_sequence(cfg.layers)) {
    stack_.build(block_size_, embedding_->out_features(), params_, "layers.");
    // A Linear right after the stack's first flatten reads n consecutive positions' embeddings
    // per row, the embedding's tokens viewed n to a row (part 5's first FlattenConsecutive).
    if (layers.size() >= 2 && dynamic_cast<const Flatten*>(layers[0].get()))
      token_reader_ = dynamic_cast<Linear*>(layers[1].get());
    if (token_reader_) token_reader_->read_tokens_from(embedding_.get(), layers[0].get());
  } else {
    stack_.build(1, block_size_ * embedding_->out_features(), params_, "layers.");
    // The first Linear of a flattened context reads the embedding's tokens (Linear's token path).
    token_reader_ = layers.empty() ? nullptr : dynamic_cast<Linear*>(layers[0].get());
    if (token_reader_) token_reader_->read_tokens_from(embedding_.get());
  }
  if (allocate) params_.finalize();
  collect_checked_outputs(stack_.children(), checked_, input_checkers_);
  update_ranges_ = allocate ? layer_ranges() : decltype(update_ranges_){};
  update_rows_ = range_rows();
  row_linears_ = weight_row_linears();
}

void Model::init(TorchGenerator& gen) {
  for (std::size_t id = 0; id < params_.infos().size(); ++id) {
    const auto& p = params_.info(static_cast<int>(id));
    init_fill(p.init, p.fan_in, p.rows, p.cols, params_.data(static_cast<int>(id)), gen);
  }
}

void Model::init(TorchGenerator& gen, const Examples& train) {
  init(gen);
  if (has_lsuv()) lsuv(train, gen);
}

namespace {
void collect_layers(Layer* l, std::vector<Layer*>& out) {
  out.push_back(l);
  for (Layer* c : l->children()) collect_layers(c, out);
}

bool is_lsuv_linear(const Layer& l, const ParamStore& ps) {
  return dynamic_cast<const Linear*>(&l) && ps.info(l.param_ids()[0]).init.kind == InitSpec::Kind::Lsuv;
}
}  // namespace

std::vector<Layer*> Model::all_layers() const {
  std::vector<Layer*> out;
  // children() hands out mutable pointers; the layers are the model's own.
  for (Layer* l : const_cast<Sequential&>(stack_).children()) collect_layers(l, out);
  return out;
}

// Each parameter's owner (0: the embedding, 1 + i: stack layer i, nested layers included) must
// not decrease along values(): then owner o's elements are [its first parameter's offset, the
// next owner's first offset), the padding after them included. Otherwise no ranges.
std::vector<std::pair<std::size_t, std::size_t>> Model::layer_ranges() const {
  const std::size_t n_owners = stack_.layers().size() + 1;
  std::vector<std::pair<std::size_t, int>> offset_owner;  // (offset, owner) of each trainable parameter
  auto add_owned = [&](const Layer& l, int owner) {
    for (int id : l.param_ids())
      if (params_.info(id).trainable) offset_owner.emplace_back(params_.info(id).offset, owner);
  };
  add_owned(*embedding_, 0);
  for (std::size_t i = 0; i < stack_.layers().size(); ++i) {
    std::vector<Layer*> nested;
    collect_layers(stack_.layers()[i].get(), nested);
    for (const Layer* l : nested) add_owned(*l, static_cast<int>(i + 1));
  }
  std::size_t trainable = 0;
  for (const auto& p : params_.infos()) trainable += p.trainable ? 1 : 0;
  if (offset_owner.size() != trainable) return {};  // a parameter no layer (or two layers) lists
  std::sort(offset_owner.begin(), offset_owner.end());
  std::vector<std::pair<std::size_t, std::size_t>> ranges(n_owners, {0, 0});
  std::vector<char> seen(n_owners, 0);
  int last = -1;
  for (const auto& [offset, owner] : offset_owner) {
    if (owner < last) return {};
    if (owner != last) ranges[static_cast<std::size_t>(owner)].first = offset;
    seen[static_cast<std::size_t>(owner)] = 1;
    last = owner;
  }
  // Each owner's range ends where the next owner with parameters starts; the first starts at 0.
  std::size_t end = params_.values().size(), first = n_owners;
  for (std::size_t o = n_owners; o-- > 0;) {
    if (!seen[o]) continue;  // stays {0, 0}: nothing to update
    ranges[o].second = end;
    end = ranges[o].first;
    first = o;
  }
  if (first < n_owners) ranges[first].first = 0;
  return ranges;
}

// The row length of each update range's first parameter: a matrix's columns, 1 for a vector.
std::vector<Linear*> Model::weight_row_linears() {
  std::vector<Linear*> out(update_ranges_.size(), nullptr);
  for (std::size_t i = 0; i + 1 < out.size() && i < stack_.layers().size(); ++i) {
    auto* lin = dynamic_cast<Linear*>(stack_.layers()[i].get());
    if (lin && params_.info(lin->weight_id()).trainable && params_.info(lin->weight_id()).offset == update_ranges_[i + 1].first)
      out[i + 1] = lin;
  }
  return out;
}

std::vector<std::size_t> Model::range_rows() const {
  std::vector<std::size_t> rows(update_ranges_.size(), 1);
  for (const auto& p : params_.infos())
    for (std::size_t o = 0; o < update_ranges_.size(); ++o)
      if (p.trainable && p.offset == update_ranges_[o].first && p.rows > 1) rows[o] = static_cast<std::size_t>(p.cols);
  return rows;
}

bool Model::has_lsuv() const {
  for (const auto& p : params_.infos())
    if (p.init.kind == InitSpec::Kind::Lsuv) return true;
  return false;
}

std::vector<Model::LsuvLayer> Model::lsuv(const Examples& train, TorchGenerator& gen) {
  std::vector<Layer*> targets;
  int batch = 0;
  for (Layer* l : all_layers()) {
    if (!is_lsuv_linear(*l, params_)) continue;
    targets.push_back(l);
    batch = std::max(batch, params_.info(l->param_ids()[0]).init.lsuv_batch);
  }
  std::vector<LsuvLayer> report;
  if (targets.empty() || train.size() == 0) return report;
  const auto B = static_cast<std::size_t>(batch), T = static_cast<std::size_t>(block_size_);
  std::vector<int64_t> ix(B);
  gen.randint(0, static_cast<int64_t>(train.size()), ix.data(), B);
  std::vector<int32_t> xb(B * T);
  for (std::size_t b = 0; b < B; ++b)
    std::copy_n(train.x.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(ix[b]) * T), T,
                xb.begin() + static_cast<std::ptrdiff_t>(b * T));
  const FloatBuf buffers = params_.buffers();  // train-mode forwards move BatchNorm's running stats
  const auto variance = [](const Mat& o) {
    double sum = 0, sumsq = 0;
    for (Eigen::Index i = 0; i < o.size(); ++i) sum += o.data()[i];
    const double mean = sum / static_cast<double>(o.size());
    for (Eigen::Index i = 0; i < o.size(); ++i) sumsq += (o.data()[i] - mean) * (o.data()[i] - mean);
    return sumsq / static_cast<double>(o.size());
  };
  for (Layer* l : targets) {
    const int w = l->param_ids()[0];
    const InitSpec& spec = params_.info(w).init;
    LsuvLayer r;
    r.weight = params_.info(w).name;
    for (;;) {
      forward(xb.data(), batch, ForwardContext(Mode::Train, &gen));
      r.variance = variance(l->out());
      if (std::fabs(r.variance - 1.0) < spec.lsuv_tol || r.rescales >= spec.lsuv_max_iter || !(r.variance > 0) ||
          !std::isfinite(r.variance))
        break;
      const float s = static_cast<float>(1.0 / std::sqrt(r.variance));
      float* d = params_.data(w);
      for (std::size_t k = 0; k < params_.info(w).size(); ++k) d[k] *= s;
      ++r.rescales;
    }
    report.push_back(r);
  }
  params_.buffers() = buffers;
  return report;
}

const Mat& Model::logits() const { return stack_.out(); }

const Mat& Model::forward(const int32_t* x, int batch, const ForwardContext& ctx) {
  probed(layer_probe(), *embedding_, Pass::Forward, [&] { embedding_->forward_tokens(x, batch, block_size_); });
  stack_.forward(embedding_->out(), ctx);
  return stack_.out();
}

float Model::loss(const int32_t* y) { return ce_.forward(stack_.out(), y); }

bool Model::outputs_finite() const {
  const auto& k = kernels::kernels();
  if (!k.all_finite(embedding_->out().data(), embedding_->out().size())) return false;
  for (const Layer* l : input_checkers_)
    if (!l->input_finite()) return false;
  for (const Layer* l : checked_)
    if (!k.all_finite(l->out().data(), l->out().size())) return false;
  return true;
}

void Model::backward() { backward(RangeDone{}); }

namespace {
// Model::backward(done)'s row reports from inside the Linears (Linear::set_weight_rows_done): rows
// [r0, r1) of the weight opening range o are its elements [first + r0 * row, first + r1 * row).
// Set for the backward's duration only, since each hook refers to that call's done.
class WeightRowHooks {
 public:
  // hooks: one entry per Linear of `linears`, kept by the model between steps: each hook
  // captures only its entry's address, which std::function holds without allocating.
  WeightRowHooks(const std::vector<Linear*>& linears, const std::vector<std::pair<std::size_t, std::size_t>>& ranges,
                 const std::vector<std::size_t>& rows, const Model::RangeDone& done, std::vector<Model::RowHook>& hooks)
      : linears_(linears) {
    if (!done) return;
    hooks.resize(linears_.size());
    for (std::size_t o = 0; o < linears_.size(); ++o)
      if (Linear* lin = linears_[o]) {
        Model::RowHook* h = &hooks[o];
        *h = {&done, ranges[o].first, rows[o]};
        lin->set_weight_rows_done([h](int r0, int r1) {
          (*h->done)(h->first + static_cast<std::size_t>(r0) * h->row, h->first + static_cast<std::size_t>(r1) * h->row, h->row);
        });
      }
  }
  ~WeightRowHooks() {
    for (Linear* lin : linears_)
      if (lin) lin->set_weight_rows_done({});
  }
  WeightRowHooks(const WeightRowHooks&) = delete;
  WeightRowHooks& operator=(const WeightRowHooks&) = delete;

 private:
  const std::vector<Linear*>& linears_;
};
}  // namespace

// One backward for both forms: with done, each range is reported once its gradients are final.
void Model::backward(const RangeDone& done) {
  if (done && update_ranges_.empty()) throw std::logic_error("Model::backward(done) needs updates_by_layer()");
  // A Linear that reported its weight's rows itself leaves the rest of its range (the bias).
  auto report = [&](std::size_t owner) {
    if (!done) return;
    auto r = update_ranges_[owner];
    if (const Linear* lin = row_linears_[owner]; lin && lin->weight_rows_reported())
      r.first += params_.info(lin->weight_id()).size();
    if (r.first < r.second) done(r.first, r.second, r.first == update_ranges_[owner].first ? update_rows_[owner] : 1);
  };
  WeightRowHooks hooks(row_linears_, update_ranges_, update_rows_, done, row_hooks_);
  // With done the parameters are updated inside: no observer reads the layers' output gradients.
  if (scratch_gradients_ != static_cast<bool>(done)) {
    scratch_gradients_ = static_cast<bool>(done);
    stack_.set_scratch_gradients(scratch_gradients_);
  }
  ce_.backward(&dlogits_);
  const bool tokens = first_linear_took_tokens();  // then the first Linear writes the embedding's gradient
  stack_.backward(dlogits_, tokens ? nullptr : &dflat_, [&](std::size_t i) { report(i + 1); });
  if (!tokens) probed(layer_probe(), *embedding_, Pass::Backward, [&] { embedding_->backward(dflat_, nullptr); });
  report(0);
}

bool Model::first_linear_took_tokens() const { return token_reader_ && token_reader_->took_token_path(); }

std::unique_ptr<Model> Model::clone() const {
  auto m = std::make_unique<Model>(config_, vocab_size_);
  m->params_.values() = params_.values();
  m->params_.buffers() = params_.buffers();
  return m;
}

// Each distinct context's logits once (an eval-mode forward is a function of the row alone),
// in chunks shared among copies of the model when threads() > 1. The last chunk is filled up
// with the all-boundary context: every forward has the same number of rows, a multiple of 16, so
// each row goes through the same kernels (an exp's remainder path, a product's remainder rows,
// may round a last bit differently). Then each example's loss, normalizer -
// logit[y] in float, summed in double over chunks of `chunk` examples and the chunk sums added
// in order: the additions and the order of forwarding every example in chunks of `chunk`. The
// result is that evaluation's to the bit wherever a row's forward does not depend on where in
// the chunk the row sits or on the chunk's size (the default paths: tests/test_model.cpp); libxsmm's kernel for some
// shapes (the lecture's 1024 x 30 x 200 without the token path) sums a few rows in another order.
double Model::evaluate(const Examples& ex, int chunk) { return evaluate(std::vector<const Examples*>{&ex}, chunk).front(); }

std::vector<double> Model::evaluate(const std::vector<const Examples*>& sets, int chunk) {
  std::vector<double> losses(sets.size(), 0.0);
  std::size_t n = 0;
  for (const Examples* ex : sets) n += ex->size();
  if (n == 0) return losses;
  DistinctContexts d = distinct_contexts(sets);
  const ContextLogits f = forward_contexts(d, chunk);
  if (!f.finite) return std::vector<double>(sets.size(), std::numeric_limits<double>::quiet_NaN());
  const std::size_t step = static_cast<std::size_t>(chunk), V = static_cast<std::size_t>(vocab_size_);
  const int32_t* index = d.index.data();  // the sets' examples one after another
  for (std::size_t s = 0; s < sets.size(); ++s) {
    const Examples& ex = *sets[s];
    double total = 0;
    for (std::size_t start = 0; start < ex.size(); start += step) {
      double sum = 0;
      for (std::size_t i = start, end = std::min(ex.size(), start + step); i < end; ++i) {
        const auto k = static_cast<std::size_t>(index[i]);
        sum += static_cast<double>(f.norm[k] - f.logits[k * V + static_cast<std::size_t>(ex.y[i])]);
      }
      total += sum;
    }
    if (ex.size() > 0) losses[s] = total / static_cast<double>(ex.size());
    index += ex.size();
  }
  return losses;
}

// Forwards of at most kEvalRows rows: a deep model's activations for 1,024 rows are tens of
// megabytes, which the allocator maps fresh (page faults) at every switch from the training
// batch's size; 256 rows stay in reused memory (a d50 cell's first evaluation: 107 -> 25 ms).
Model::ContextLogits Model::forward_contexts(DistinctContexts& d, int chunk) {
  constexpr std::size_t kEvalRows = 256;
  const std::size_t step = static_cast<std::size_t>(chunk), V = static_cast<std::size_t>(vocab_size_);
  const std::size_t fstep = std::min((step + 15) / 16 * 16, kEvalRows), m = d.count(), n_chunks = (m + fstep - 1) / fstep,
                    rows = n_chunks * fstep;
  d.x.resize(rows * static_cast<std::size_t>(block_size_), 0);
  ContextLogits f;
  f.logits.resize(rows * V);
  f.norm.resize(rows);
  std::vector<char> finite(n_chunks, 1);
  auto run_chunks = [&](Model& model, std::size_t first, std::size_t stride) {
    for (std::size_t c = first; c < n_chunks; c += stride) {
      const std::size_t start = c * fstep;
      const int b = static_cast<int>(fstep);
      const Mat& out = model.forward(d.x.data() + start * static_cast<std::size_t>(block_size_), b, Mode::Eval);
      finite[c] = model.outputs_finite();
      if (!finite[c]) continue;
      std::copy_n(out.data(), static_cast<std::size_t>(b) * V, f.logits.data() + start * V);
      SoftmaxCrossEntropy::log_normalizers(out, f.norm.data() + start, model.eval_scratch_);
    }
  };
  const int t = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(threads()), n_chunks));
  if (t > 1) {
    eval_twins_.resize(static_cast<std::size_t>(t - 1));
    for (auto& twin : eval_twins_) {
      if (!twin) twin = clone();
      twin->params_.values() = params_.values();
      twin->params_.buffers() = params_.buffers();
    }
    parallel_run(t, [&](int i) {
      run_chunks(i == 0 ? *this : *eval_twins_[static_cast<std::size_t>(i - 1)], static_cast<std::size_t>(i),
                 static_cast<std::size_t>(t));
    });
  } else {
    run_chunks(*this, 0, 1);
  }
  f.finite = std::find(finite.begin(), finite.end(), 0) == finite.end();
  return f;
}

// One pass over the data per BatchNorm, in order: each layer's statistics are taken on the
// inputs it sees once the layers before it already use their calibrated statistics. A
// BatchNorm inside a Residual's branch is reached by running its whole top-level block and
// reading the input it kept.
bool Model::has_running_stats() const {
  for (const Layer* l : all_layers())
    if (l->has_running_stats()) return true;
  return false;
}

void Model::calibrate(const Examples& train, int chunk) {
  auto& layers = stack_.layers();
  const std::size_t n = train.size();
  for (std::size_t k = 0; k < layers.size(); ++k) {
    std::vector<Layer*> inside;
    collect_layers(layers[k].get(), inside);
    for (Layer* bn : inside) {
      if (!bn->has_running_stats()) continue;
      const bool nested = bn != layers[k].get();
      bn->calibrate_begin();
      for (std::size_t start = 0; start < n; start += static_cast<std::size_t>(chunk)) {
        const int b = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(chunk), n - start));
        embedding_->forward_tokens(train.x.data() + start * static_cast<std::size_t>(block_size_), b, block_size_);
        const Mat* in = &embedding_->out();
        for (std::size_t i = 0; i < k; ++i) {
          layers[i]->forward(*in, Mode::Eval);
          in = &layers[i]->out();
        }
        if (nested) {
          layers[k]->forward(*in, Mode::Eval);
          in = bn->input();
        }
        bn->calibrate_add(*in);
      }
      bn->calibrate_end();
    }
  }
}

}  // namespace mm
