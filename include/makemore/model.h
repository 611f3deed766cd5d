// The whole network: Embedding (each example's block_size embeddings side by side, the
// lecture's emb.view(B, -1)) -> the configured layer stack -> softmax cross-entropy, over one
// ParamStore. The training step allocates nothing once buffers are
// sized for the batch.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
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
  // The parameters a model of `cfg` would hold (names, shapes, offsets) and the sizes of its
  // values() and buffers(), allocating none of them: a stored config is checked against the
  // tensors beside it before anything of the size it asks for is built.
  struct Layout {
    std::vector<ParamInfo> params;
    std::size_t values = 0, buffers = 0;
  };
  static Layout layout_of(const Config& cfg, int vocab_size);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Draws every parameter in declaration order (embedding, then layers) from gen.
  void init(TorchGenerator& gen);
  // The same, then the data-dependent pass when some Linear's weight_init is lsuv (see lsuv()).
  // What every training entry point calls: train_and_evaluate, inspect, bench, fidelity.
  void init(TorchGenerator& gen, const Examples& train);

  // LSUV (Mishkin & Matas 2015): one batch of real examples drawn from gen (randint with
  // replacement, as a training minibatch; size: the largest "batch" of the lsuv layers), then
  // for each lsuv Linear in forward order (nested ones included): forward the batch in train
  // mode and divide the weight by sqrt(var(output)) until |var - 1| < tol or max_iter rescales.
  // BatchNorm running statistics are restored afterwards. Draws nothing without lsuv layers.
  struct LsuvLayer {
    std::string weight;   // "layers.0.weight"
    double variance = 0;  // of the layer's output on the batch, after the last rescale
    int rescales = 0;
  };
  std::vector<LsuvLayer> lsuv(const Examples& train, TorchGenerator& gen);
  bool has_lsuv() const;

  // x: (batch, block_size) token indices. Returns the logits (batch, vocab). In training, ctx
  // carries the generator a stochastic layer draws from (the run's: Trainer passes it).
  const Mat& forward(const int32_t* x, int batch, const ForwardContext& ctx);
  // Mean cross-entropy of the last forward's logits; needed before backward().
  float loss(const int32_t* y);
  // False when some layer's output of the last forward holds a value that is not finite: the
  // parameters overflow float somewhere, and a loss computed after a squashing layer (tanh of
  // inf is 1) can still look finite. The trainer and evaluate() treat that loss as not finite.
  bool outputs_finite() const;
  void backward();  // overwrites every parameter gradient
  // The same backward, calling done(k0, k1) as soon as the gradients of params().values()'
  // elements [k0, k1) are final: one range per top-level layer of the stack (its nested layers'
  // parameters included), last to first, then the embedding's. The ranges tile values(), so an
  // element-wise optimizer can update each while its gradient is still in cache (Trainer::step).
  // Needs updates_by_layer(): each layer's parameters one block of values(), in the stack's order.
  // The layers' output gradients are not kept by this form (Sequential::set_scratch_gradients):
  // it is for a step that no observer inspects. row: the length of a row of the range's first
  // parameter (1 for a vector), so that threads can split the update at whole rows
  // (Optimizer::update).
  using RangeDone = std::function<void(std::size_t k0, std::size_t k1, std::size_t row)>;
  void backward(const RangeDone& done);
  // What backward(done) hands a Linear that reports its weight's rows itself: the range's first
  // element and row length, for done (model.cpp's WeightRowHooks).
  struct RowHook {
    const RangeDone* done = nullptr;
    std::size_t first = 0, row = 1;
  };
  bool updates_by_layer() const { return !update_ranges_.empty(); }
  // backward(done)'s ranges: [0] the embedding's, [1 + i] stack layer i's (possibly empty:
  // {0, 0}); no ranges without updates_by_layer().
  const std::vector<std::pair<std::size_t, std::size_t>>& update_ranges() const { return update_ranges_; }
  // The last forward's first Linear computed from the tokens (Linear's token path): its
  // backward then writes the embedding's gradient, and there is no dL/d(stack input).
  bool first_linear_took_tokens() const;

  // Mean loss over a whole split in eval mode (no batch statistics): each distinct context
  // forwarded once (distinct_contexts), in forwards of `chunk` rows; with threads() > 1 the
  // chunks are shared among copies of the model. The losses are summed over chunks of `chunk`
  // examples and the chunk sums added in order: the number of forwarding every example in
  // chunks of `chunk` rows (to the bit on the default paths, see model.cpp), the same for any
  // thread count. NaN when a forward overflows (outputs_finite()).
  double evaluate(const Examples& ex, int chunk = 1024);
  // The mean loss of each of several sets of examples (the three splits), each as evaluate(ex,
  // chunk) gives it, with the contexts the sets share forwarded once for all of them (the
  // splits of names.txt: 5,686 contexts in all against 11,386 split by split). NaN for every
  // set when a forward overflows.
  std::vector<double> evaluate(const std::vector<const Examples*>& sets, int chunk = 1024);
  // A new model with this one's architecture, parameters and buffers.
  std::unique_ptr<Model> clone() const;
  // Sets every BatchNorm's running statistics from the whole data (notebook cell 9).
  void calibrate(const Examples& train, int chunk = 1024);
  bool has_running_stats() const;  // some layer (BatchNorm) has statistics calibrate() would set

  // Every layer of the stack, depth first (a Residual, then its branch's layers), in forward order.
  std::vector<Layer*> all_layers() const;

  ParamStore& params() { return params_; }
  const ParamStore& params() const { return params_; }
  Embedding& embedding() { return *embedding_; }
  // The stack's input of the last forward: (batch, block_size * n_embd).
  const Mat& stack_input() const { return embedding_->out(); }
  Sequential& stack() { return stack_; }
  const Sequential& stack() const { return stack_; }
  const Mat& logits() const;
  const Mat& dlogits() const { return dlogits_; }
  const SoftmaxCrossEntropy& criterion() const { return ce_; }
  int vocab_size() const { return vocab_size_; }
  int block_size() const { return block_size_; }
  std::size_t num_params() const { return params_.num_trainable(); }

 private:
  Model(const Config& cfg, int vocab_size, bool allocate);
  std::vector<std::pair<std::size_t, std::size_t>> layer_ranges() const;
  std::vector<std::size_t> range_rows() const;
  std::vector<Linear*> weight_row_linears();
  struct ContextLogits {
    std::vector<float> logits, norm;  // (rows, vocab) and each row's log normalizer
    bool finite = true;
  };
  // evaluate()'s forwards: every context of d once (d.x filled up to whole chunks).
  ContextLogits forward_contexts(DistinctContexts& d, int chunk);
  int vocab_size_, block_size_;
  Config config_;
  ParamStore params_;
  std::unique_ptr<Embedding> embedding_;
  Sequential stack_;
  SoftmaxCrossEntropy ce_;
  Mat dlogits_;                               // (B, vocab)
  Mat dflat_;                                 // (B, block_size * n_embd)
  Linear* token_reader_ = nullptr;            // the stack's first Linear when it reads the embedding's tokens
  std::vector<const Layer*> checked_;         // the layers whose outputs outputs_finite() reads
  std::vector<const Layer*> input_checkers_;  // and those whose input_finite() it asks
  // backward(done)'s ranges of values(): [0] the embedding's, [1 + i] stack layer i's; empty
  // when the parameters are not laid out one layer after another.
  std::vector<std::pair<std::size_t, std::size_t>> update_ranges_;
  std::vector<std::size_t> update_rows_;  // the row length of each range's first parameter
  // Per range, the stack's Linear whose weight opens it (else null): backward(done) lets it
  // report its weight's rows from inside its backward (Linear::set_weight_rows_done).
  std::vector<Linear*> row_linears_;
  std::vector<RowHook> row_hooks_;  // backward(done)'s, kept between steps
  bool scratch_gradients_ = false;  // the stack's mode (set_scratch_gradients) since the last backward
  Mat eval_scratch_;
  std::vector<std::unique_ptr<Model>> eval_twins_;  // evaluate()'s helpers, kept between calls
};

// where: the spec's config path ("model.layers[3]"), named by shape errors found at build.
std::unique_ptr<Layer> make_layer(const LayerSpec& spec, int vocab_size, const std::string& where = "model.layers[?]");

}  // namespace mm
