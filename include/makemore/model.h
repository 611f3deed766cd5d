// The whole network: Embedding -> Flatten -> the configured layer stack -> softmax
// cross-entropy, over one ParamStore. The training step allocates nothing once buffers are
// sized for the batch.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "makemore/config.h"
#include "makemore/data.h"
#include "makemore/layers.h"
#include "makemore/params.h"
#include "makemore/rng.h"

namespace mm {

class Model {
 public:
  Model(const Config& cfg, int vocab_size);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Draws every parameter in declaration order (embedding, then layers) from gen.
  void init(TorchGenerator& gen);

  // x: (batch, block_size) token indices. Returns the logits (batch, vocab).
  const Mat& forward(const int32_t* x, int batch, Mode mode);
  // Mean cross-entropy of the last forward's logits; needed before backward().
  float loss(const int32_t* y);
  void backward();  // overwrites every parameter gradient

  // Mean loss over a whole split in eval mode, in chunks (no batch statistics). With
  // threads() > 1 the chunks are shared among copies of the model; each chunk's sum is kept
  // and added in order, so the result is the same for any thread count.
  double evaluate(const Examples& ex, int chunk = 1024);
  // A new model with this one's architecture, parameters and buffers.
  std::unique_ptr<Model> clone() const;
  // Sets every BatchNorm's running statistics from the whole data (notebook cell 9).
  void calibrate(const Examples& train, int chunk = 1024);

  ParamStore& params() { return params_; }
  const ParamStore& params() const { return params_; }
  Embedding& embedding() { return *embedding_; }
  Flatten& flatten() { return *flatten_; }
  Sequential& stack() { return stack_; }
  const Sequential& stack() const { return stack_; }
  const Mat& logits() const;
  const Mat& dlogits() const { return dlogits_; }
  const SoftmaxCrossEntropy& criterion() const { return ce_; }
  int vocab_size() const { return vocab_size_; }
  int block_size() const { return block_size_; }
  std::size_t num_params() const { return params_.num_trainable(); }

 private:
  int vocab_size_, block_size_;
  Config config_;
  ParamStore params_;
  std::unique_ptr<Embedding> embedding_;
  std::unique_ptr<Flatten> flatten_;
  Sequential stack_;
  SoftmaxCrossEntropy ce_;
  Mat tokens_;   // (B, block_size) as floats
  Mat dlogits_;  // (B, vocab)
  Mat dflat_;    // (B, block_size * n_embd)
  Mat demb_;     // (B * block_size, n_embd)
  Mat eval_scratch_;
  std::vector<std::unique_ptr<Model>> eval_twins_;  // evaluate()'s helpers, kept between calls
};

std::unique_ptr<Layer> make_layer(const LayerSpec& spec, int vocab_size);

}  // namespace mm
