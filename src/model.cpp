// Model: builds the layer stack from a config and runs the step's forward and backward.
#include "makemore/model.h"

#include <algorithm>

#include "makemore/parallel.h"

namespace mm {

std::unique_ptr<Layer> make_layer(const LayerSpec& s, int vocab_size) {
  if (s.type == "linear") return std::make_unique<Linear>(s.out_is_vocab ? vocab_size : s.out, s.bias, s.weight_init, s.bias_init);
  if (s.type == "batchnorm1d") return std::make_unique<BatchNorm1d>(s.bn);
  if (s.type == "tanh") return std::make_unique<Tanh>();
  if (s.type == "flatten") return std::make_unique<Flatten>(s.flatten_n);
  throw std::invalid_argument("unknown layer type " + s.type);
}

Model::Model(const Config& cfg, int vocab_size) : vocab_size_(vocab_size), block_size_(cfg.block_size), config_(cfg) {
  embedding_ = std::make_unique<Embedding>(vocab_size, cfg.n_embd, cfg.embedding_init);
  flatten_ = std::make_unique<Flatten>(0);
  embedding_->build(1, block_size_, params_, "embedding.");
  flatten_->build(embedding_->out_time(), embedding_->out_features(), params_, "flatten.");
  for (const auto& spec : cfg.layers) stack_.add(make_layer(spec, vocab_size));
  stack_.build(flatten_->out_time(), flatten_->out_features(), params_, "layers.");
  params_.finalize();
}

void Model::init(TorchGenerator& gen) {
  for (std::size_t id = 0; id < params_.infos().size(); ++id) {
    const auto& p = params_.info(static_cast<int>(id));
    init_fill(p.init, p.fan_in, p.rows, p.cols, params_.data(static_cast<int>(id)), gen);
  }
}

const Mat& Model::logits() const { return stack_.out(); }

const Mat& Model::forward(const int32_t* x, int batch, Mode mode) {
  tokens_.resize(batch, block_size_);
  float* t = tokens_.data();
  const std::size_t n = static_cast<std::size_t>(batch) * static_cast<std::size_t>(block_size_);
  for (std::size_t i = 0; i < n; ++i) t[i] = static_cast<float>(x[i]);
  embedding_->forward(tokens_, mode);
  flatten_->forward(embedding_->out(), mode);
  stack_.forward(flatten_->out(), mode);
  return stack_.out();
}

float Model::loss(const int32_t* y) { return ce_.forward(stack_.out(), y); }

void Model::backward() {
  ce_.backward(&dlogits_);
  stack_.backward(dlogits_, &dflat_);
  flatten_->backward(dflat_, &demb_);
  embedding_->backward(demb_, nullptr);
}

std::unique_ptr<Model> Model::clone() const {
  auto m = std::make_unique<Model>(config_, vocab_size_);
  m->params_.values() = params_.values();
  m->params_.buffers() = params_.buffers();
  return m;
}

double Model::evaluate(const Examples& ex, int chunk) {
  const std::size_t n = ex.size(), step = static_cast<std::size_t>(chunk);
  const std::size_t n_chunks = (n + step - 1) / step;
  std::vector<double> sums(n_chunks, 0.0);
  auto run_chunks = [&](Model& m, std::size_t first, std::size_t stride) {
    for (std::size_t c = first; c < n_chunks; c += stride) {
      const std::size_t start = c * step;
      const int b = static_cast<int>(std::min(step, n - start));
      m.forward(ex.x.data() + start * static_cast<std::size_t>(block_size_), b, Mode::Eval);
      sums[c] = SoftmaxCrossEntropy::sum_loss_fast(m.stack_.out(), ex.y.data() + start, m.eval_scratch_);
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
    parallel_run(t, [&](int i) { run_chunks(i == 0 ? *this : *eval_twins_[static_cast<std::size_t>(i - 1)], static_cast<std::size_t>(i), static_cast<std::size_t>(t)); });
  } else {
    run_chunks(*this, 0, 1);
  }
  double total = 0;
  for (double s : sums) total += s;
  return n ? total / static_cast<double>(n) : 0.0;
}

// One pass over the data per BatchNorm, in order: each layer's statistics are taken on the
// inputs it sees once the layers before it already use their calibrated statistics.
void Model::calibrate(const Examples& train, int chunk) {
  auto& layers = stack_.layers();
  const std::size_t n = train.size();
  for (std::size_t k = 0; k < layers.size(); ++k) {
    if (!layers[k]->has_running_stats()) continue;
    layers[k]->calibrate_begin();
    for (std::size_t start = 0; start < n; start += static_cast<std::size_t>(chunk)) {
      const int b = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(chunk), n - start));
      tokens_.resize(b, block_size_);
      const int32_t* x = train.x.data() + start * static_cast<std::size_t>(block_size_);
      for (Eigen::Index i = 0; i < tokens_.size(); ++i) tokens_.data()[i] = static_cast<float>(x[i]);
      embedding_->forward(tokens_, Mode::Eval);
      flatten_->forward(embedding_->out(), Mode::Eval);
      const Mat* in = &flatten_->out();
      for (std::size_t i = 0; i < k; ++i) {
        layers[i]->forward(*in, Mode::Eval);
        in = &layers[i]->out();
      }
      layers[k]->calibrate_add(*in);
    }
    layers[k]->calibrate_end();
  }
}

}  // namespace mm
