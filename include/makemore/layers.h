// The lecture's layers with explicit forward and backward: Embedding, Flatten, Linear,
// BatchNorm1d, Tanh, Sequential; and beyond the lecture LayerNorm, GroupNorm, ReLU, GELU and
// Residual (x + f(x)). Kinds that no other code needs by C++ type (Sigmoid, Dropout) are only
// in src/layers.cpp; every kind a config names has a registry entry (layer_kinds.h), which is
// what the rest of the system asks about a layer. Activations are (rows, features) row-major matrices; a
// sequence (B, T, C) is stored as (B*T, C), which is the same memory as (B, T*C), so Flatten
// only reinterprets. Backward contract: backward() OVERWRITES the layer's parameter gradients
// (the lecture zeroes them every step; each layer is used once per step) and writes dx when
// asked. Derivations: docs/backward.md.
#pragma once
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "makemore/gemm.h"
#include "makemore/params.h"
#include "makemore/rng.h"
#include "makemore/tensor.h"

namespace mm {

enum class Mode { Train, Eval };

// What a forward pass may use besides its input: the mode, and the run's generator, from which a
// stochastic layer (Dropout) draws in training so that the seed determines the run. Made from a
// Mode alone where nothing may draw (evaluation, sampling).
struct ForwardContext {
  ForwardContext(Mode m, TorchGenerator* g = nullptr) : mode(m), gen(g) {}
  Mode mode;
  TorchGenerator* gen;
  // A training forward whose activations no one reads but the next layer, the loss, the
  // finiteness check and the backward (Trainer::step when no observer watches the forward):
  // each output that only the next layer's forward reads (a Linear's or a norm's that a norm or
  // a tanh reads next; LayerTraits' backward_reads_output / _input) goes into one of two buffers
  // a Sequential takes in turn, which stay in the L1, instead of the layer's own: that layer's
  // out() then holds its output only until a later layer overwrites it.
  bool scratch_outputs = false;
};

struct LayerKind;  // layer_kinds.h: a kind's registry entry
class Layer;

// Watches each layer's forward and backward as it runs, nested layers (a Residual's branch)
// included, with begin / end around each: bench --profile's clock (perf.cpp). Set per thread
// for a scope; with none set, a step pays one thread-local read per Sequential pass.
enum class Pass { Forward, Backward };
class LayerProbe {
 public:
  virtual ~LayerProbe() = default;
  virtual void begin(const Layer& layer, Pass pass) = 0;
  virtual void end(const Layer& layer, Pass pass) = 0;
};
LayerProbe* layer_probe();  // this thread's, or null
class ScopedLayerProbe {
 public:
  explicit ScopedLayerProbe(LayerProbe* probe);
  ~ScopedLayerProbe();
  ScopedLayerProbe(const ScopedLayerProbe&) = delete;
  ScopedLayerProbe& operator=(const ScopedLayerProbe&) = delete;

 private:
  LayerProbe* previous_;
};
// Runs f() between probe->begin(layer, pass) and probe->end(layer, pass) where a probe is set.
template <class F>
void probed(LayerProbe* probe, const Layer& layer, Pass pass, F&& f) {
  if (probe) probe->begin(layer, pass);
  f();
  if (probe) probe->end(layer, pass);
}

class Layer {
 public:
  virtual ~Layer() = default;
  virtual const LayerKind& kind() const = 0;  // its registry entry: name, traits
  virtual std::string type() const;           // the lecture's class name: "Linear", "Tanh" ...
  virtual std::string describe() const { return type(); }

  // Declares parameters (prefix like "layers.0.") and fixes the output shape given the input's
  // (time, features). Called once, in layer order, before the store is finalized.
  virtual void build(int in_time, int in_features, ParamStore& store, const std::string& prefix) = 0;

  // x is (rows, in_features). Keeps a pointer to x for backward: x must outlive the step.
  virtual void forward(const Mat& x, const ForwardContext& ctx) = 0;
  // dout is (rows, out_features). Overwrites parameter gradients; writes dx if non-null.
  virtual void backward(const Mat& dout, Mat* dx) = 0;

  // The cached output, read by diagnostics: out_, or the buffer Sequential lent for the last
  // forward (set_output_buffer), which a later layer may have overwritten since.
  virtual const Mat& out() const { return lent_ ? *lent_ : out_; }
  // Where the next forward writes its output (null: out_), for a layer whose output only the
  // next layer's forward reads (ForwardContext::scratch_outputs). Only kinds whose forward
  // writes through output() take one.
  void set_output_buffer(Mat* m) { lent_ = m; }
  int in_time() const { return in_time_; }
  int in_features() const { return in_features_; }
  int out_time() const { return out_time_; }
  int out_features() const { return out_features_; }
  const std::vector<int>& param_ids() const { return param_ids_; }
  const Mat* input() const { return x_; }  // the last forward's input (calibration reads it)
  // A layer that checks its input for NaN and infinity while its forward reads it (Tanh): then
  // Model::outputs_finite() asks input_finite() instead of reading the input again.
  virtual bool checks_input() const { return false; }
  virtual bool input_finite() const { return true; }  // of the last forward, where checks_input()
  // Layers nested inside this one (Residual's branch), in forward order; none for most.
  virtual std::vector<Layer*> children() { return {}; }
  // Running statistics to set from data (BatchNorm): see Model::calibrate.
  virtual bool has_running_stats() const { return false; }
  virtual void calibrate_begin() {}
  virtual void calibrate_add(const Mat& /*x*/) {}
  virtual void calibrate_end() {}

 protected:
  ParamStore* store_ = nullptr;
  const Mat* x_ = nullptr;                         // input of the last forward
  Mat out_;                                        // (rows, out_features)
  Mat* lent_ = nullptr;                            // set_output_buffer's
  Mat& output() { return lent_ ? *lent_ : out_; }  // where forward writes
  int in_time_ = 1, in_features_ = 0, out_time_ = 1, out_features_ = 0;
  std::vector<int> param_ids_;
};

// Lookup table C (vocab, n_embd). forward_tokens(): token indices (B, T) -> (B, T * n_embd),
// each example's T embeddings side by side: the lecture's emb.view(B, -1), written in place
// (the same memory as (B*T, n_embd)), so the model needs no separate flatten copy.
// forward(): the Layer interface, token indices as floats.
class Embedding : public Layer {
 public:
  Embedding(int vocab_size, int n_embd, InitSpec init) : vocab_(vocab_size), n_embd_(n_embd), init_(init) {}
  const LayerKind& kind() const override;
  std::string describe() const override;
  void build(int in_time, int in_features, ParamStore& store, const std::string& prefix) override;
  void forward_tokens(const int32_t* tokens, int batch, int block_size);
  void forward(const Mat& x, const ForwardContext& ctx) override;
  void backward(const Mat& dout, Mat* dx) override;  // dout: (B, T * n_embd); dx: none (indices)
  int weight_id() const { return param_ids_[0]; }
  int vocab_size() const { return vocab_; }
  int n_embd() const { return n_embd_; }
  // Token indices of the last forward_tokens(), (B, T) row-major.
  const std::vector<int32_t>& tokens() const { return tokens_; }

 private:
  int vocab_, n_embd_;
  InitSpec init_;
  std::vector<int32_t> tokens_;  // of the last forward, for backward's scatter-add
};

// Concatenates n consecutive time steps: (B*T, C) -> (B*T/n, n*C). n = 0 means all of T,
// the lecture's `emb.view(B, -1)`.
class Flatten : public Layer {
 public:
  explicit Flatten(int n = 0) : n_(n) {}
  const LayerKind& kind() const override;
  std::string type() const override;  // "FlattenConsecutive" with n, as part 5 names it
  void build(int in_time, int in_features, ParamStore& store, const std::string& prefix) override;
  void forward(const Mat& x, const ForwardContext& ctx) override;
  void backward(const Mat& dout, Mat* dx) override;

 private:
  int n_;
};

// The token path of a Linear that reads the embedding's rows (see Linear::read_tokens_from),
// process-wide: Off (every product through x itself, gemm.h), Portable (plain loops) or Simd
// (AVX-512 kernels: the default where the build has them, Off otherwise). The
// environment variable MAKEMORE_TOKEN_LINEAR=off|portable|simd sets the start value.
enum class TokenLinear { Off, Portable, Simd };
bool token_linear_available(TokenLinear t);
void set_token_linear(TokenLinear t);  // throws std::invalid_argument for an unavailable one
TokenLinear token_linear();
const char* token_linear_name(TokenLinear t);  // "off", "portable", "simd"

// out = x @ weight + bias, weight (fan_in, fan_out) as the lecture stores it.
//
// When x is the embedding's output (the first layer of the lecture's MLPs), each row of x is
// block_size rows of C side by side, so x @ W = sum over positions j of C[token_j] @ W_j, with
// W_j the n_embd rows of W that position j meets. A minibatch holds few distinct (position,
// token) pairs (names.txt: ~45 of 96 for batch 32; at most 3 x 27 for any chunk), so the token
// path computes C[v] @ W_j once per distinct pair and adds those rows, and in backward sums
// dout per pair first: dW_j = C_pairs^T G_j and dC[v] = sum_j G_j[v] @ W_j^T, which replaces
// dx = dout W^T and the embedding's scatter-add. The same sums in another order: last-bit
// differences from the plain path (tests/test_token_linear.cpp says how much). The pair table
// is in src/token_linear.cpp, the kernels in src/kernels/kernels.cpp.
class Linear : public Layer {
 public:
  // bias_drawn_unused (with bias false): the lecture video's `b1 = torch.randn(...)` that the
  // network then leaves out (`embcat @ W1  #+ b1`). The bias is drawn from the generator in its
  // place, so the parameters after it get the video's values, and kept as a buffer ("bias_unused":
  // saved, never used, not trained, not counted, not diagnosed).
  Linear(int fan_out, bool bias, InitSpec weight_init, InitSpec bias_init, bool bias_drawn_unused = false)
      : fan_out_(fan_out),
        bias_(bias),
        bias_drawn_unused_(!bias && bias_drawn_unused),
        weight_init_(weight_init),
        bias_init_(bias_init) {}
  const LayerKind& kind() const override;
  std::string describe() const override;
  void build(int in_time, int in_features, ParamStore& store, const std::string& prefix) override;
  void forward(const Mat& x, const ForwardContext& ctx) override;
  void backward(const Mat& dout, Mat* dx) override;
  int weight_id() const { return param_ids_[0]; }
  bool has_bias() const { return bias_; }
  // Lets forward() take the token path whenever x is emb's output (Model sets this for a
  // stack's first Linear), or the output of `through`, a flatten whose last input was emb's
  // output (its rows then hold in_features / n_embd consecutive positions each: the tokens
  // viewed that many to a row). Then backward() also OVERWRITES emb's weight gradient, and the
  // caller passes dx = nullptr and skips emb.backward(); a dx asked for is still written.
  void read_tokens_from(const Embedding* emb, const Layer* through = nullptr) {
    tokens_from_ = emb;
    tokens_through_ = through;
  }
  bool took_token_path() const { return token_path_; }  // by the last forward
  // Set by Model::backward(done) while it runs, for a Linear whose weight opens its layer's
  // update range: a wide weight's backward then runs in blocks of the weight's rows and calls
  // it with each block [r0, r1) once those rows' gradients are final and no longer read
  // (gemm_linear_backward_rows), and weight_rows_reported() is true until the next backward.
  void set_weight_rows_done(RowsDone f) { weight_rows_done_ = std::move(f); }
  bool weight_rows_reported() const { return rows_reported_; }

 private:
  bool reads_tokens(const Mat& x) const;
  void forward_tokens(const Mat& x);
  void backward_tokens(const Mat& dout);

  int fan_out_;
  bool bias_, bias_drawn_unused_;
  InitSpec weight_init_, bias_init_;
  const Embedding* tokens_from_ = nullptr;
  const Layer* tokens_through_ = nullptr;
  bool token_path_ = false;
  RowsDone weight_rows_done_;
  bool rows_reported_ = false;
  // The token path's pairs: slot_of_[j * V + v] is pair (j, v)'s slot or -1; pairs are numbered
  // position by position (pos_begin_[j] .. pos_begin_[j + 1]); row_slot_ is (B, T).
  // slot_rows_[slot_row_begin_[s] ..] are pair s's rows, ascending (backward's sums per pair).
  std::vector<int32_t> slot_of_, slot_token_, row_slot_, pos_begin_, slot_row_begin_, slot_cursor_, slot_rows_;
  Mat pair_;   // (pairs, fan_out padded to 16): forward C[v] @ W_j; backward G, dout summed per pair
  Mat dpair_;  // (pairs, n_embd): G_j @ W_j^T
};

struct BatchNormOptions {
  double eps = 1e-5;
  double momentum = 0.1;
  bool unbiased = true;      // normalize with the unbiased (n-1) variance, as the lecture does
  bool running_std = false;  // track running std (single-layer notebook form) instead of var
  InitSpec gamma_init{InitSpec::Kind::Ones};
  InitSpec beta_init{InitSpec::Kind::Zeros};
};

// Normalizes each feature over the rows of the batch. Two forms cover the lecture:
//  - notebook cells 6-10: eps 0, momentum 0.001, running_std: gain * (x - mean) / std + bias
//  - its BatchNorm1d class: eps 1e-5, momentum 0.1, running var: gamma * xhat + beta
class BatchNorm1d : public Layer {
 public:
  explicit BatchNorm1d(BatchNormOptions opt) : opt_(opt) {}
  const LayerKind& kind() const override;
  std::string describe() const override;
  void build(int in_time, int in_features, ParamStore& store, const std::string& prefix) override;
  void forward(const Mat& x, const ForwardContext& ctx) override;
  void backward(const Mat& dout, Mat* dx) override;
  bool has_running_stats() const override { return true; }
  void calibrate_begin() override;
  void calibrate_add(const Mat& x) override;
  void calibrate_end() override;
  const BatchNormOptions& options() const { return opt_; }

 private:
  BatchNormOptions opt_;
  int gamma_ = -1, beta_ = -1, running_mean_ = -1, running_stat_ = -1;
  Mode last_mode_ = Mode::Train;
  RowVec mean_, inv_std_;      // (1, C) of the last forward
  RowVec var_, gsum_, gxsum_;  // (1, C) scratch, kept so the step allocates nothing
  Mat xhat_;                   // (rows, C)
  Eigen::Matrix<double, 1, Eigen::Dynamic> cal_sum_, cal_sumsq_;
  double cal_n_ = 0;
};

class Tanh : public Layer {
 public:
  const LayerKind& kind() const override;
  void build(int in_time, int in_features, ParamStore& store, const std::string& prefix) override;
  void forward(const Mat& x, const ForwardContext& ctx) override;
  void backward(const Mat& dout, Mat* dx) override;  // dx = dout * (1 - out^2)
  bool checks_input() const override { return true; }
  bool input_finite() const override { return input_finite_; }

 private:
  bool input_finite_ = true;
};

// Normalizes each row over groups of consecutive features (torch.nn.GroupNorm(G, C) on (rows,
// C)): per row and group, biased variance, no running statistics, the same in train and eval.
// With affine, a per-feature gamma / beta (torch's weight / bias). LayerNorm is the one-group
// case. Each row is its own batch: any number of rows works, one included.
struct NormOptions {
  int groups = 1;
  double eps = 1e-5;
  bool affine = true;
  InitSpec gamma_init{InitSpec::Kind::Ones};
  InitSpec beta_init{InitSpec::Kind::Zeros};
};

class GroupNorm : public Layer {
 public:
  explicit GroupNorm(NormOptions opt) : opt_(opt) {}
  const LayerKind& kind() const override;
  std::string describe() const override;
  void build(int in_time, int in_features, ParamStore& store, const std::string& prefix) override;
  void forward(const Mat& x, const ForwardContext& ctx) override;
  void backward(const Mat& dout, Mat* dx) override;
  const NormOptions& options() const { return opt_; }

 protected:
  NormOptions opt_;
  int gamma_ = -1, beta_ = -1;
  Mat xhat_;     // (rows, C)
  Mat inv_std_;  // (rows, groups)
};

// torch.nn.LayerNorm(C): every row normalized over all its features.
class LayerNorm : public GroupNorm {
 public:
  explicit LayerNorm(NormOptions opt) : GroupNorm(with_one_group(opt)) {}
  const LayerKind& kind() const override;
  std::string describe() const override;

 private:
  static NormOptions with_one_group(NormOptions o) {
    o.groups = 1;
    return o;
  }
};

class ReLU : public Layer {
 public:
  const LayerKind& kind() const override;
  void build(int in_time, int in_features, ParamStore& store, const std::string& prefix) override;
  void forward(const Mat& x, const ForwardContext& ctx) override;
  void backward(const Mat& dout, Mat* dx) override;  // dx = dout where x > 0, else 0 (torch's)
};

// torch.nn.functional.gelu: exact x * Phi(x) ("none"), or the tanh approximation ("tanh").
class GELU : public Layer {
 public:
  explicit GELU(bool tanh_approx = false) : tanh_(tanh_approx) {}
  const LayerKind& kind() const override;
  std::string describe() const override { return tanh_ ? "GELU(approximate='tanh')" : "GELU"; }
  void build(int in_time, int in_features, ParamStore& store, const std::string& prefix) override;
  void forward(const Mat& x, const ForwardContext& ctx) override;
  void backward(const Mat& dout, Mat* dx) override;
  bool tanh_approx() const { return tanh_; }

 private:
  bool tanh_;
};

// Scratch matrices in two sets taken in turn (item i in set i % 2, so items i and i + 1 never
// share one), a matrix per element count within a set: where the items differ in size (a
// wavenet's flattens) each finds the same allocation every step, where a single matrix per set
// would be reallocated at every change of size.
class ScratchMats {
 public:
  Mat& get(std::size_t i, Eigen::Index size) {
    auto& set = sets_[i % 2];
    for (auto& [n, m] : set)
      if (n == size) return m;
    return set.emplace_back(size, Mat()).second;
  }

 private:
  std::deque<std::pair<Eigen::Index, Mat>> sets_[2];  // a deque: references stay valid as it grows
};

// Runs its children in order; owns the intermediate gradients.
class Sequential : public Layer {
 public:
  const LayerKind& kind() const override;
  void add(std::unique_ptr<Layer> layer) { layers_.push_back(std::move(layer)); }
  void build(int in_time, int in_features, ParamStore& store, const std::string& prefix) override;
  void forward(const Mat& x, const ForwardContext& ctx) override;
  void backward(const Mat& dout, Mat* dx) override;
  // The same, calling layer_done(i) right after layer i's backward (last to first).
  void backward(const Mat& dout, Mat* dx, const std::function<void(std::size_t)>& layer_done);
  const Mat& out() const override { return layers_.empty() ? *x_ : layers_.back()->out(); }
  std::vector<std::unique_ptr<Layer>>& layers() { return layers_; }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  // Gradient of the loss w.r.t. layer i's output, from the last backward (diagnostics); the last
  // layer's is the Mat the caller passed to backward (the model's, or a block's own dout).
  // Not kept by a backward with scratch gradients.
  const Mat& dout(std::size_t i) const { return i + 1 == grads_.size() && dout_ ? *dout_ : grads_[i]; }
  // With on, the following backwards pass each layer's output gradient to the layer before it in
  // two buffers taken in turn (they stay in the L1) instead of one per layer, so dout(i) keeps
  // nothing; the branches of residual blocks inside follow. For a backward whose gradients of
  // layer outputs no one reads (Model::backward(done)).
  void set_scratch_gradients(bool on);
  std::vector<Layer*> children() override;

 private:
  bool output_is_transient(std::size_t i) const;
  // Layer i's output gradient: its own matrix, or with scratch_ one of scratch_grads_ (the size
  // of layer i's output picks it, so the same one every step).
  Mat& grad_buffer(std::size_t i) { return scratch_ ? scratch_grads_.get(i, layers_[i]->out().size()) : grads_[i]; }

  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Mat> grads_;     // grads_[i]: dL/d(out of layer i), but the last
  const Mat* dout_ = nullptr;  // dL/d(out of the last layer): the last backward's argument
  bool scratch_ = false;
  ScratchMats scratch_grads_;           // with scratch_: layer i's output gradient
  ScratchMats scratch_outs_;            // ForwardContext::scratch_outputs: a transient output of layer i
  std::vector<Eigen::Index> out_size_;  // each layer's output size in the last training forward (0: none yet)
};

// out = x + f(x), f a Sequential of any layers (nested residuals included) whose output shape
// equals its input's. Parameters are named prefix + "layers.<i>." like the top-level stack.
// backward: dx = dout + df/dx^T dout; f's parameter gradients come from f's own backward.
class Residual : public Layer {
 public:
  // where: the config path, for the width-mismatch error ("model.layers[3].layers").
  explicit Residual(std::string where = "residual") : where_(std::move(where)) {}
  const LayerKind& kind() const override;
  std::string describe() const override;
  void add(std::unique_ptr<Layer> layer) { branch_.add(std::move(layer)); }
  void build(int in_time, int in_features, ParamStore& store, const std::string& prefix) override;
  void forward(const Mat& x, const ForwardContext& ctx) override;
  void backward(const Mat& dout, Mat* dx) override;
  Sequential& branch() { return branch_; }
  const Sequential& branch() const { return branch_; }
  std::vector<Layer*> children() override { return branch_.children(); }

 private:
  std::string where_;
  Sequential branch_;
};

// Softmax and cross-entropy fused: numerically stable for any logit magnitude.
class SoftmaxCrossEntropy {
 public:
  // Mean loss over the rows; caches the probabilities for backward.
  float forward(const Mat& logits, const int32_t* targets);
  // Sum (not mean) of per-row losses, in double, without caching (evaluation).
  static double sum_loss(const Mat& logits, const int32_t* targets);
  // The same in float vectors with a double total; scratch is reused between calls. What
  // Model::evaluate sums (via log_normalizers), kept as the reference its tests compare with.
  static double sum_loss_fast(const Mat& logits, const int32_t* targets, Mat& scratch);
  // Each row's log of its softmax denominator, log(sum exp(l - max)) + max, in float: a row's
  // loss is then normalizer - l[y], in float, exactly as sum_loss_fast sums it.
  static void log_normalizers(const Mat& logits, float* out, Mat& scratch);
  void backward(Mat* dlogits) const;  // (probs - onehot) / rows
  const Mat& probs() const { return probs_; }

 private:
  Mat probs_;
  Eigen::VectorXf rmax_, rsum_;
  const int32_t* targets_ = nullptr;
};

}  // namespace mm
