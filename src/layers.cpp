// Forward and backward of the lecture's layers. Each backward overwrites its parameter
// gradients (see layers.h). Float expressions follow the lecture's PyTorch code term by term
// where the order of roundings matters for reproducing its numbers. A Linear's token path
// (its kernels and the pair table) is in token_linear.cpp.
#include "makemore/layers.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "kernels/kernels.h"
#include "makemore/gemm.h"
#include "makemore/layer_kinds.h"
#include "makemore/parallel.h"

namespace mm {

using nlohmann::json;
using InitUse = LayerOptionReader::InitUse;

std::string Layer::type() const { return kind().class_name; }

namespace {
int declare(ParamStore& store, const std::string& name, int rows, int cols, bool is_1d, bool trainable, int fan_in,
            InitSpec init) {
  ParamInfo p;
  p.name = name;
  p.rows = rows;
  p.cols = cols;
  p.is_1d = is_1d;
  p.trainable = trainable;
  p.fan_in = fan_in;
  p.init = init;
  return store.add(std::move(p));
}

// f(begin, count) over [0, n) in threads() pieces of whole 16-float vectors (so each piece
// starts 64-byte aligned where the data does), where the work (work floats in all) is large
// enough to be worth the hand-out (big-mlp's 32 x 1000) and the team is free; else f(0, n).
// False where any piece returned false. For work per element (tanh: n = work) or per column of an
// (rows, n) block (BatchNorm: work = rows * n): each gets the same operations either way.
template <class F>
bool split_in_vectors(Eigen::Index n, Eigen::Index work, F&& f) {
  constexpr int kMaxPieces = 16;
  const int t = std::min(threads(), kMaxPieces);
  if (t > 1 && work >= (1 << 14) && n >= 32 * t) {
    const Eigen::Index per = (n / t + 15) / 16 * 16;
    bool ok[kMaxPieces];
    std::fill_n(ok, kMaxPieces, true);
    if (try_parallel_run(t, [&](int i) {
          const Eigen::Index b = std::min<Eigen::Index>(n, per * i), e = std::min<Eigen::Index>(n, b + per);
          if (e > b) ok[i] = f(b, e - b);
        }))
      return std::all_of(ok, ok + t, [](bool b) { return b; });
  }
  return f(0, n);
}
}  // namespace

// ---- Embedding ---------------------------------------------------------------------------
std::string Embedding::describe() const { return fmt::format("Embedding({}, {})", vocab_, n_embd_); }

void Embedding::build(int in_time, int in_features, ParamStore& store, const std::string& prefix) {
  store_ = &store;
  in_time_ = in_time;
  in_features_ = in_features;  // the context length: one token per column
  out_time_ = in_features;
  out_features_ = n_embd_;
  param_ids_ = {declare(store, prefix + "weight", vocab_, n_embd_, false, true, n_embd_, init_)};
}

void Embedding::forward_tokens(const int32_t* tokens, int batch, int block_size) {
  x_ = nullptr;
  const std::size_t n = static_cast<std::size_t>(batch) * static_cast<std::size_t>(block_size);
  tokens_.assign(tokens, tokens + n);
  out_.resize(batch, static_cast<Eigen::Index>(block_size) * n_embd_);
  kernels::kernels().embedding_rows(store_->data(param_ids_[0]), tokens_.data(), n, static_cast<std::size_t>(n_embd_),
                                    out_.data());
}

void Embedding::forward(const Mat& x, const ForwardContext&) {
  std::vector<int32_t> tok(static_cast<std::size_t>(x.size()));
  for (std::size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int32_t>(x.data()[i]);
  forward_tokens(tok.data(), static_cast<int>(x.rows()), static_cast<int>(x.cols()));
  x_ = &x;
}

// dC[v] = sum of the dout rows (n_embd wide) whose token is v (a scatter-add).
void Embedding::backward(const Mat& dout, Mat* dx) {
  kernels::kernels().embedding_scatter(store_->grad(param_ids_[0]), static_cast<std::size_t>(vocab_),
                                       static_cast<std::size_t>(n_embd_), tokens_.data(), tokens_.size(), dout.data());
  if (dx && x_) dx->setZero(x_->rows(), x_->cols());  // token indices have no gradient
}

// Not a config kind: the model's first layer (layer_kinds() leaves it out).
const LayerKind& Embedding::kind() const {
  static const LayerKind k{.name = "embedding",
                           .class_name = "Embedding",
                           .summary = "rows of C for the tokens",
                           .traits = {.role = LayerRole::Gather}};
  return k;
}

// ---- Flatten -----------------------------------------------------------------------------
void Flatten::build(int in_time, int in_features, ParamStore& store, const std::string&) {
  store_ = &store;
  in_time_ = in_time;
  in_features_ = in_features;
  const int n = n_ == 0 ? in_time : n_;
  if (n <= 0 || in_time % n != 0)
    throw std::invalid_argument(fmt::format("FlattenConsecutive({}) needs a time length divisible by {}, got {}", n, n, in_time));
  out_time_ = in_time / n;
  out_features_ = in_features * n;
}

// (B*T, C) row-major is the same memory as (B*T/n, n*C): copy without reordering.
void Flatten::forward(const Mat& x, const ForwardContext&) {
  x_ = &x;
  const Eigen::Index rows = x.rows() * x.cols() / out_features_;
  out_.resize(rows, out_features_);
  std::copy(x.data(), x.data() + x.size(), out_.data());
}

void Flatten::backward(const Mat& dout, Mat* dx) {
  if (!dx) return;
  dx->resize(x_->rows(), x_->cols());
  std::copy(dout.data(), dout.data() + dout.size(), dx->data());
}

namespace {
const LayerKind& flatten_kind() {
  static const LayerKind k{.name = "flatten",
                           .class_name = "Flatten",
                           .summary = "n consecutive positions side by side (FlattenConsecutive); without n, all of them",
                           .traits = {.role = LayerRole::Gather, .takes_sequence = true},
                           .keys = {"n"},
                           .parse =
                               [](const LayerOptionReader& r, LayerSpec& s) {
                                 if (r.has("n")) s.flatten_n = static_cast<int>(r.integer("n", 1, 1 << 16));
                               },
                           .write =
                               [](const LayerSpec& s, json& j) {
                                 if (s.flatten_n) j["n"] = s.flatten_n;
                               },
                           .shape =
                               [](const LayerSpec& s, ShapeCheck& c) {
                                 const int n = s.flatten_n == 0 ? c.time : s.flatten_n;
                                 if (c.time % n != 0)
                                   c.fail("n", fmt::format("the time length {} is not divisible by {}", c.time, n));
                                 c.time /= n;
                                 if (c.features > 0) c.features *= n;
                               },
                           .make = [](const LayerSpec& s, const LayerBuild&) -> std::unique_ptr<Layer> {
                             return std::make_unique<Flatten>(s.flatten_n);
                           },
                           .examples = {"{}", R"({"n": 2})"}};
  return k;
}
}  // namespace

const LayerKind& Flatten::kind() const { return flatten_kind(); }
std::string Flatten::type() const { return n_ == 0 ? "Flatten" : "FlattenConsecutive"; }

// ---- Linear ------------------------------------------------------------------------------
std::string Linear::describe() const {
  return fmt::format("Linear({}, {}{})", in_features_, fan_out_,
                     bias_                ? ""
                     : bias_drawn_unused_ ? ", bias=False; a bias drawn, unused"
                                          : ", bias=False");
}

void Linear::build(int in_time, int in_features, ParamStore& store, const std::string& prefix) {
  store_ = &store;
  in_time_ = out_time_ = in_time;
  in_features_ = in_features;
  out_features_ = fan_out_;
  param_ids_ = {declare(store, prefix + "weight", in_features, fan_out_, false, true, in_features, weight_init_)};
  if (bias_) param_ids_.push_back(declare(store, prefix + "bias", 1, fan_out_, true, true, in_features, bias_init_));
  // Drawn in the bias's place (Model::init fills buffers in declaration order too); not trainable,
  // so not counted, updated or diagnosed, and never read by forward.
  if (bias_drawn_unused_) declare(store, prefix + "bias_unused", 1, fan_out_, true, false, in_features, bias_init_);
}

// x is the embedding's output, or the flatten's that copied it, so its rows are the embedding's
// tokens' rows of C, in_features / n_embd to a row.
bool Linear::reads_tokens(const Mat& x) const {
  if (!tokens_from_) return false;
  if (!tokens_through_) return &x == &tokens_from_->out();
  return &x == &tokens_through_->out() && tokens_through_->input() == &tokens_from_->out();
}

void Linear::forward(const Mat& x, const ForwardContext&) {
  x_ = &x;
  token_path_ = reads_tokens(x) && token_linear() != TokenLinear::Off && x.rows() > 0;
  const int rows = static_cast<int>(x.rows());
  Mat& o = output();
  o.resize(rows, fan_out_);
  if (token_path_) return forward_tokens(x);  // adds the bias itself
  gemm(Op::N, Op::N, rows, fan_out_, in_features_, x.data(), in_features_, store_->data(param_ids_[0]), fan_out_, o.data(),
       fan_out_);
  if (bias_) kernels::kernels().add_bias_rows(o.data(), rows, fan_out_, store_->data(param_ids_[1]));
}

void Linear::backward(const Mat& dout, Mat* dx) {
  const int rows = static_cast<int>(dout.rows());
  if (dx) dx->resize(rows, in_features_);
  rows_reported_ = !token_path_ && weight_rows_done_ &&
                   gemm_linear_backward_rows(rows, in_features_, fan_out_, x_->data(), dout.data(), store_->data(param_ids_[0]),
                                             store_->grad(param_ids_[0]), dx ? dx->data() : nullptr, weight_rows_done_);
  // dx before dW: the update that may follow this backward (Trainer::step) reads W and dW, and
  // dW is then the last thing written, still in the L1 (the two products are independent).
  if (dx && !rows_reported_)
    gemm(Op::N, Op::T, rows, in_features_, fan_out_, dout.data(), fan_out_, store_->data(param_ids_[0]), fan_out_, dx->data(),
         in_features_);
  if (token_path_) {
    backward_tokens(dout);
  } else if (!rows_reported_) {
    gemm(Op::T, Op::N, in_features_, fan_out_, rows, x_->data(), in_features_, dout.data(), fan_out_, store_->grad(param_ids_[0]),
         fan_out_);
  }
  if (bias_) {
    // db = the column sums of dout, rows added in order, accumulated in registers (the same
    // bits as copying row 0 and adding the others; faster than that row loop).
    kernels::kernels().column_sums(dout.data(), rows, fan_out_, store_->grad(param_ids_[1]));
  }
}

namespace {
void parse_linear(const LayerOptionReader& r, LayerSpec& s) {
  if (!r.has("out")) r.fail(r.field("out"), "missing; the number of outputs, or \"vocab\"");
  if (r.at("out").is_string()) {
    if (r.at("out") != "vocab") r.fail(r.field("out"), "must be a positive integer or \"vocab\"");
    s.out_is_vocab = true;
  } else {
    s.out = static_cast<int>(r.integer("out", 1, 1 << 20));
  }
  if (r.has("bias") && r.at("bias").is_string()) {
    if (r.at("bias") != "drawn-unused")
      r.fail(r.field("bias"), "must be true, false or \"drawn-unused\" (drawn from the generator, left out of the network)");
    s.bias = false;
    s.bias_drawn_unused = true;
  } else if (r.has("bias")) {
    s.bias = r.boolean("bias");
  }
  s.weight_init = r.has("weight_init") ? r.init("weight_init", InitUse::LinearWeight) : InitSpec{InitSpec::Kind::TorchLinear};
  if (r.has("bias_init")) {
    if (!s.bias && !s.bias_drawn_unused) r.fail(r.field("bias_init"), "given for a layer with \"bias\": false");
    s.bias_init = r.init("bias_init", InitUse::Bias);
  } else if (s.bias_drawn_unused) {
    s.bias_init = InitSpec{InitSpec::Kind::Normal};  // the lecture video's torch.randn(n_hidden)
  } else {
    s.bias_init = s.weight_init.kind == InitSpec::Kind::TorchLinear ? InitSpec{InitSpec::Kind::TorchLinearBias}
                                                                    : InitSpec{InitSpec::Kind::Zeros};
  }
  if (s.bias_init.kind == InitSpec::Kind::TorchLinear) s.bias_init.kind = InitSpec::Kind::TorchLinearBias;
  using K = InitSpec::Kind;
  if (s.bias_drawn_unused && (s.bias_init.kind == K::Zeros || s.bias_init.kind == K::Ones || s.bias_init.kind == K::Constant))
    r.fail(r.field("bias_init"),
           "draws nothing, so a \"drawn-unused\" bias would not be drawn; use a kind that draws (normal, as the lecture "
           "video's torch.randn) or \"bias\": false");
}

const LayerKind& linear_kind() {
  static const LayerKind k{
      .name = "linear",
      .class_name = "Linear",
      .summary = "out = x @ weight + bias",
      .traits = {.role = LayerRole::Matmul, .kaiming_gain = 1.0, .backward_reads_output = false},
      .keys = {"out", "bias", "weight_init", "bias_init"},
      .parse = parse_linear,
      .write =
          [](const LayerSpec& s, json& j) {
            j["out"] = s.out_is_vocab ? json("vocab") : json(s.out);
            j["bias"] = s.bias_drawn_unused ? json("drawn-unused") : json(s.bias);
            j["weight_init"] = init_to_json(s.weight_init);
            if (s.bias || s.bias_drawn_unused) j["bias_init"] = init_to_json(s.bias_init);
          },
      .shape = [](const LayerSpec& s, ShapeCheck& c) { c.features = s.out_is_vocab ? -1 : s.out; },
      .make = [](const LayerSpec& s, const LayerBuild& b) -> std::unique_ptr<Layer> {
        return std::make_unique<Linear>(s.out_is_vocab ? b.vocab_size : s.out, s.bias, s.weight_init, s.bias_init,
                                        s.bias_drawn_unused);
      },
      .examples = {R"({"out": 4})", R"({"out": 5, "bias": false})", R"({"out": 3, "bias": "drawn-unused"})"}};
  return k;
}
}  // namespace

const LayerKind& Linear::kind() const { return linear_kind(); }

// ---- BatchNorm1d -------------------------------------------------------------------------

std::string BatchNorm1d::describe() const {
  return fmt::format("BatchNorm1d({}, eps={}, momentum={}{})", in_features_, opt_.eps, opt_.momentum,
                     opt_.running_std ? ", running std" : "");
}

void BatchNorm1d::build(int in_time, int in_features, ParamStore& store, const std::string& prefix) {
  store_ = &store;
  in_time_ = out_time_ = in_time;
  in_features_ = out_features_ = in_features;
  gamma_ = declare(store, prefix + "gamma", 1, in_features, true, true, in_features, opt_.gamma_init);
  beta_ = declare(store, prefix + "beta", 1, in_features, true, true, in_features, opt_.beta_init);
  running_mean_ =
      declare(store, prefix + "running_mean", 1, in_features, true, false, in_features, InitSpec{InitSpec::Kind::Zeros});
  running_stat_ = declare(store, prefix + (opt_.running_std ? "running_std" : "running_var"), 1, in_features, true, false,
                          in_features, InitSpec{InitSpec::Kind::Ones});
  param_ids_ = {gamma_, beta_};
}

void BatchNorm1d::forward(const Mat& x, const ForwardContext& ctx) {
  const Mode mode = ctx.mode;
  x_ = &x;
  last_mode_ = mode;
  const Eigen::Index n = x.rows(), C = x.cols();
  const float* gamma = store_->data(gamma_);
  const float* beta = store_->data(beta_);
  float* rmean = store_->data(running_mean_);
  float* rstat = store_->data(running_stat_);
  mean_.resize(C);
  inv_std_.resize(C);
  var_.resize(C);
  if (mode == Mode::Train) xhat_.resize(n, C);
  output().resize(n, C);
  float* mean = mean_.data();
  float* var = var_.data();
  float* inv = inv_std_.data();
  const float* xd = x.data();
  // Explicit loops over rows with the features innermost: each pass streams the (n, C) block
  // once and vectorizes over C; statistics in two passes (mean, then centered squares) as
  // torch.var does, so a large mean costs no precision.
  if (mode == Mode::Train && n < 2) throw std::invalid_argument("BatchNorm1d in training needs at least 2 rows per batch");
  const float div = static_cast<float>(opt_.unbiased ? n - 1 : n);
  const float eps = static_cast<float>(opt_.eps);
  const float keep = static_cast<float>(1.0 - opt_.momentum), m = static_cast<float>(opt_.momentum);
  float* xhat = mode == Mode::Train ? xhat_.data() : nullptr;
  float* out = output().data();
  const kernels::Table& k = kernels::kernels();
  split_in_vectors(C, n * C, [&](Eigen::Index c0, Eigen::Index w) {
    if (mode == Mode::Train) {
      k.bn_statistics(xd + c0, n, w, C, mean + c0, var + c0, inv + c0, rmean + c0, rstat + c0, div, eps, keep, m,
                      opt_.running_std);
    } else {
      for (Eigen::Index c = c0; c < c0 + w; ++c) {
        mean[c] = rmean[c];
        inv[c] = 1.0f / (opt_.running_std ? rstat[c] : std::sqrt(rstat[c] + eps));
      }
    }
    // One pass: xhat = (x - mean) / std, out = gamma * xhat + beta (the notebook's
    // gain * (x - mean) / std + bias is the same expression up to rounding).
    // Evaluation writes only the output; backward recomputes xhat if it is ever asked.
    k.bn_normalize(xd + c0, n, w, C, mean + c0, inv + c0, gamma + c0, beta + c0, xhat ? xhat + c0 : nullptr, out + c0);
    return true;
  });
}

// With g = dout * gamma and s the divisor: dx = (g - mean(g) - xhat * sum(g xhat) / (n - k)) / s,
// k = 1 for the unbiased variance, 0 for the biased; in eval mode the statistics are constants
// and dx = g / s. dgamma = sum(dout * xhat), dbeta = sum(dout). One pass for both sums, one
// for dx.
void BatchNorm1d::backward(const Mat& dout, Mat* dx) {
  const Eigen::Index n = dout.rows(), C = dout.cols();
  const float* gamma = store_->data(gamma_);
  float* dgamma = store_->grad(gamma_);
  float* dbeta = store_->grad(beta_);
  const float* d = dout.data();
  if (last_mode_ == Mode::Eval) {  // the forward skipped xhat
    xhat_.resize(n, C);
    const float* xd = x_->data();
    for (Eigen::Index r = 0; r < n; ++r)
      for (Eigen::Index c = 0; c < C; ++c) xhat_(r, c) = (xd[r * C + c] - mean_[c]) * inv_std_[c];
  }
  const float* xh = xhat_.data();
  const kernels::Table& k = kernels::kernels();
  float* out = nullptr;
  if (dx) {
    dx->resize(n, C);
    out = dx->data();
  }
  const float* inv = inv_std_.data();
  gsum_.resize(C);
  gxsum_.resize(C);
  var_.resize(C);
  float* a = gsum_.data();   // gamma / s
  float* b = gxsum_.data();  // (mean(g) + ...) folded: see below
  float* cc = var_.data();   // the forward's variance is not needed again
  const bool eval = last_mode_ == Mode::Eval;
  const float div = static_cast<float>(opt_.unbiased ? n - 1 : n);
  const float inv_n = 1.0f / static_cast<float>(n);
  split_in_vectors(C, n * C, [&](Eigen::Index c0, Eigen::Index w) {
    k.bn_grad_sums(d + c0, xh + c0, n, w, C, dgamma + c0, dbeta + c0);
    if (!out) return true;
    // dx = a * dout - b * xhat - cc with a = gamma / s, b = gamma * dgamma / ((n - k) s),
    // cc = gamma * dbeta / (n s); in eval mode dx = a * dout.
    for (Eigen::Index c = c0; c < c0 + w; ++c) a[c] = gamma[c] * inv[c];
    if (!eval)
      for (Eigen::Index c = c0; c < c0 + w; ++c) {
        b[c] = a[c] * dgamma[c] / div;
        cc[c] = a[c] * dbeta[c] * inv_n;
      }
    k.bn_dx(d + c0, xh + c0, n, w, C, a + c0, eval ? nullptr : b + c0, eval ? nullptr : cc + c0, out + c0);
    return true;
  });
}

void BatchNorm1d::calibrate_begin() {
  cal_sum_.setZero(in_features_);
  cal_sumsq_.setZero(in_features_);
  cal_n_ = 0;
}

void BatchNorm1d::calibrate_add(const Mat& x) {
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xd = x.cast<double>();
  cal_sum_ += xd.colwise().sum();
  cal_sumsq_ += xd.array().square().matrix().colwise().sum();
  cal_n_ += static_cast<double>(x.rows());
}

// Whole-training-set statistics (notebook cell 9), in double so 182k rows lose nothing.
void BatchNorm1d::calibrate_end() {
  if (cal_n_ < 2) return;
  auto rmean = store_->value(running_mean_).row(0);
  auto rstat = store_->value(running_stat_).row(0);
  for (int c = 0; c < in_features_; ++c) {
    const double mean = cal_sum_[c] / cal_n_;
    double var = (cal_sumsq_[c] - cal_n_ * mean * mean) / (opt_.unbiased ? cal_n_ - 1 : cal_n_);
    if (var < 0) var = 0;
    rmean[c] = static_cast<float>(mean);
    rstat[c] = static_cast<float>(opt_.running_std ? std::sqrt(var + opt_.eps) : var);
  }
}

namespace {
void parse_batchnorm(const LayerOptionReader& r, LayerSpec& s) {
  if (r.has("eps")) s.bn.eps = r.number("eps", 0, 1);
  if (r.has("momentum")) s.bn.momentum = r.number("momentum", 0, 1);
  if (r.has("unbiased")) s.bn.unbiased = r.boolean("unbiased");
  if (r.has("running")) {
    const std::string v = r.string("running");
    if (v != "std" && v != "var")
      r.fail(r.field("running"), "must be \"var\" (BatchNorm1d) or \"std\" (the notebook's cells 6-10)");
    s.bn.running_std = v == "std";
  }
  if (r.has("gamma_init")) s.bn.gamma_init = r.init("gamma_init", InitUse::Vector);
  if (r.has("beta_init")) s.bn.beta_init = r.init("beta_init", InitUse::Vector);
}

const LayerKind& batchnorm_kind() {
  static const LayerKind k{
      .name = "batchnorm1d",
      .class_name = "BatchNorm1d",
      .summary = "each feature normalized over the batch; running statistics for evaluation",
      .traits = {.role = LayerRole::Normalization,
                 .running_stats = true,
                 .after_output = true,
                 .backward_reads_output = false,
                 .backward_reads_input = false},
      .keys = {"eps", "momentum", "unbiased", "running", "gamma_init", "beta_init"},
      .parse = parse_batchnorm,
      .write =
          [](const LayerSpec& s, json& j) {
            j["eps"] = s.bn.eps;
            j["momentum"] = s.bn.momentum;
            j["unbiased"] = s.bn.unbiased;
            j["running"] = s.bn.running_std ? "std" : "var";
            j["gamma_init"] = init_to_json(s.bn.gamma_init);
            j["beta_init"] = init_to_json(s.bn.beta_init);
          },
      .make = [](const LayerSpec& s, const LayerBuild&) -> std::unique_ptr<Layer> { return std::make_unique<BatchNorm1d>(s.bn); },
      .examples = {"{}", R"({"eps": 0, "momentum": 0.001, "running": "std"})"}};
  return k;
}
}  // namespace

const LayerKind& BatchNorm1d::kind() const { return batchnorm_kind(); }

// ---- Tanh --------------------------------------------------------------------------------
void Tanh::build(int in_time, int in_features, ParamStore& store, const std::string&) {
  store_ = &store;
  in_time_ = out_time_ = in_time;
  in_features_ = out_features_ = in_features;
}

void Tanh::forward(const Mat& x, const ForwardContext&) {
  x_ = &x;
  out_.resize(x.rows(), x.cols());
  input_finite_ = split_in_vectors(x.size(), x.size(), [&](Eigen::Index b, Eigen::Index n) {
    return kernels::kernels().tanh_forward(x.data() + b, n, out_.data() + b);
  });
}

// d tanh(x)/dx = 1 - tanh(x)^2: the cached output is all backward needs.
void Tanh::backward(const Mat& dout, Mat* dx) {
  if (!dx) return;
  dx->resize(dout.rows(), dout.cols());
  split_in_vectors(dout.size(), dout.size(), [&](Eigen::Index b, Eigen::Index n) {
    kernels::kernels().tanh_backward(dout.data() + b, out_.data() + b, n, dx->data() + b);
    return true;
  });
}

namespace {
const LayerKind& tanh_kind() {
  static const LayerKind k{
      .name = "tanh",
      .class_name = "Tanh",
      .summary = "tanh(x), bounded to [-1, 1]",
      .traits = {.role = LayerRole::Activation,
                 .bounds = LayerTraits::Bounds{-1.0, 1.0},
                 .kaiming_gain = 5.0 / 3.0,
                 .backward_reads_input = false},
      .make = [](const LayerSpec&, const LayerBuild&) -> std::unique_ptr<Layer> { return std::make_unique<Tanh>(); },
      .examples = {"{}"}};
  return k;
}
}  // namespace

const LayerKind& Tanh::kind() const { return tanh_kind(); }

// ---- Sigmoid -----------------------------------------------------------------------------
namespace {
// torch.sigmoid: 1 / (1 + exp(-x)), bounded to [0, 1], so the doctor measures its saturation.
// Nothing needs its C++ type: its registry entry is all the rest of the system sees.
class Sigmoid final : public Layer {
 public:
  const LayerKind& kind() const override;
  void build(int in_time, int in_features, ParamStore& store, const std::string&) override {
    store_ = &store;
    in_time_ = out_time_ = in_time;
    in_features_ = out_features_ = in_features;
  }
  void forward(const Mat& x, const ForwardContext&) override {
    x_ = &x;
    out_.resize(x.rows(), x.cols());
    out_.array() = 1.0f / (1.0f + (-x.array()).exp());
  }
  // d sigmoid(x)/dx = s (1 - s): the cached output is all backward needs.
  void backward(const Mat& dout, Mat* dx) override {
    if (!dx) return;
    dx->resize(dout.rows(), dout.cols());
    dx->array() = dout.array() * out_.array() * (1.0f - out_.array());
  }
};

const LayerKind& sigmoid_kind() {
  static const LayerKind k{
      .name = "sigmoid",
      .class_name = "Sigmoid",
      .summary = "1 / (1 + exp(-x)), bounded to [0, 1]",
      .traits = {.role = LayerRole::Activation, .bounds = LayerTraits::Bounds{0.0, 1.0}, .kaiming_gain = 1.0},
      .make = [](const LayerSpec&, const LayerBuild&) -> std::unique_ptr<Layer> { return std::make_unique<Sigmoid>(); },
      .examples = {"{}"}};
  return k;
}

const LayerKind& Sigmoid::kind() const { return sigmoid_kind(); }
}  // namespace

// ---- GroupNorm / LayerNorm ---------------------------------------------------------------
std::string GroupNorm::describe() const {
  return fmt::format("GroupNorm({}, {}, eps={}{})", opt_.groups, in_features_, opt_.eps, opt_.affine ? "" : ", affine=False");
}

std::string LayerNorm::describe() const {
  return fmt::format("LayerNorm({}, eps={}{})", in_features_, opt_.eps, opt_.affine ? "" : ", elementwise_affine=False");
}

void GroupNorm::build(int in_time, int in_features, ParamStore& store, const std::string& prefix) {
  store_ = &store;
  in_time_ = out_time_ = in_time;
  in_features_ = out_features_ = in_features;
  if (opt_.groups <= 0 || in_features % opt_.groups != 0)
    throw std::invalid_argument(
        fmt::format("GroupNorm({}): {} features cannot be split into {} equal groups; "
                    "\"groups\" must divide the layer's input width",
                    opt_.groups, in_features, opt_.groups));
  param_ids_.clear();
  if (opt_.affine) {
    gamma_ = declare(store, prefix + "gamma", 1, in_features, true, true, in_features, opt_.gamma_init);
    beta_ = declare(store, prefix + "beta", 1, in_features, true, true, in_features, opt_.beta_init);
    param_ids_ = {gamma_, beta_};
  }
}

// Per row r and group g of K = C/G features: mu = mean, v = biased variance (sums in double),
// xhat = (x - mu) / sqrt(v + eps), out = gamma * xhat + beta.
void GroupNorm::forward(const Mat& x, const ForwardContext&) {
  x_ = &x;
  const Eigen::Index n = x.rows(), C = x.cols(), G = opt_.groups;
  xhat_.resize(n, C);
  inv_std_.resize(n, G);
  output().resize(n, C);
  kernels::kernels().group_norm_forward(x.data(), n, C, G, opt_.eps, opt_.affine ? store_->data(gamma_) : nullptr,
                                        opt_.affine ? store_->data(beta_) : nullptr, xhat_.data(), inv_std_.data(),
                                        output().data());
}

// With g = dout * gamma, per row and group (K features, s = 1/sqrt(v + eps)):
//   dx = s * (g - mean(g) - xhat * mean(g * xhat));  dgamma = sum_rows(dout * xhat), dbeta = sum_rows(dout).
// The statistics are those of the row itself, so train and eval share this backward.
void GroupNorm::backward(const Mat& dout, Mat* dx) {
  const Eigen::Index n = dout.rows(), C = dout.cols(), G = opt_.groups;
  if (dx) dx->resize(n, C);
  kernels::kernels().group_norm_backward(
      dout.data(), xhat_.data(), inv_std_.data(), n, C, G, opt_.affine ? store_->data(gamma_) : nullptr,
      opt_.affine ? store_->grad(gamma_) : nullptr, opt_.affine ? store_->grad(beta_) : nullptr, dx ? dx->data() : nullptr);
}

namespace {
void parse_norm(const LayerOptionReader& r, NormOptions& n) {
  if (r.has("eps")) n.eps = r.number("eps", 0, 1);
  if (r.has("affine")) n.affine = r.boolean("affine");
  for (const char* key : {"gamma_init", "beta_init"})
    if (r.has(key) && !n.affine) r.fail(r.field(key), "given for a layer with \"affine\": false (no gamma / beta)");
  if (r.has("gamma_init")) n.gamma_init = r.init("gamma_init", InitUse::Vector);
  if (r.has("beta_init")) n.beta_init = r.init("beta_init", InitUse::Vector);
}

void write_norm(const LayerSpec& s, json& j) {
  j["eps"] = s.norm.eps;
  j["affine"] = s.norm.affine;
  if (s.norm.affine) {
    j["gamma_init"] = init_to_json(s.norm.gamma_init);
    j["beta_init"] = init_to_json(s.norm.beta_init);
  }
}

const LayerKind& layernorm_kind() {
  static const LayerKind k{
      .name = "layernorm",
      .class_name = "LayerNorm",
      .summary = "each row normalized over its features",
      .traits = {.role = LayerRole::Normalization, .backward_reads_output = false, .backward_reads_input = false},
      .keys = {"eps", "affine", "gamma_init", "beta_init"},
      .parse = [](const LayerOptionReader& r, LayerSpec& s) { parse_norm(r, s.norm); },
      .write = write_norm,
      .make = [](const LayerSpec& s, const LayerBuild&) -> std::unique_ptr<Layer> { return std::make_unique<LayerNorm>(s.norm); },
      .examples = {"{}", R"({"affine": false, "eps": 0.001})"}};
  return k;
}

const LayerKind& groupnorm_kind() {
  static const LayerKind k{
      .name = "groupnorm",
      .class_name = "GroupNorm",
      .summary = "each row normalized over groups of consecutive features",
      .traits = {.role = LayerRole::Normalization, .backward_reads_output = false, .backward_reads_input = false},
      .keys = {"groups", "eps", "affine", "gamma_init", "beta_init"},
      .parse =
          [](const LayerOptionReader& r, LayerSpec& s) {
            if (!r.has("groups"))
              r.fail(r.field("groups"), "missing; the number of groups, a divisor of the layer's input width");
            s.norm.groups = static_cast<int>(r.integer("groups", 1, 1 << 20));
            parse_norm(r, s.norm);
          },
      .write =
          [](const LayerSpec& s, json& j) {
            j["groups"] = s.norm.groups;
            write_norm(s, j);
          },
      .shape =
          [](const LayerSpec& s, ShapeCheck& c) {
            if (c.features > 0 && c.features % s.norm.groups != 0)
              c.fail("groups", fmt::format("{} features cannot be split into {} equal groups; use a divisor of {}", c.features,
                                           s.norm.groups, c.features));
          },
      .make = [](const LayerSpec& s, const LayerBuild&) -> std::unique_ptr<Layer> { return std::make_unique<GroupNorm>(s.norm); },
      .examples = {R"({"groups": 3})", R"({"groups": 2, "affine": false})", R"({"groups": 6, "eps": 0.1})"}};
  return k;
}
}  // namespace

const LayerKind& GroupNorm::kind() const { return groupnorm_kind(); }
const LayerKind& LayerNorm::kind() const { return layernorm_kind(); }

// ---- ReLU --------------------------------------------------------------------------------
void ReLU::build(int in_time, int in_features, ParamStore& store, const std::string&) {
  store_ = &store;
  in_time_ = out_time_ = in_time;
  in_features_ = out_features_ = in_features;
}

void ReLU::forward(const Mat& x, const ForwardContext&) {
  x_ = &x;
  out_.resize(x.rows(), x.cols());
  out_.array() = x.array().max(0.0f);
}

// d relu/dx = 1 where x > 0, 0 elsewhere (0 at x = 0 itself, as torch).
void ReLU::backward(const Mat& dout, Mat* dx) {
  if (!dx) return;
  dx->resize(dout.rows(), dout.cols());
  dx->array() = (x_->array() > 0.0f).select(dout.array(), 0.0f);
}

namespace {
const LayerKind& relu_kind() {
  static const LayerKind k{
      .name = "relu",
      .class_name = "ReLU",
      .summary = "max(x, 0)",
      .traits = {.role = LayerRole::Activation, .kaiming_gain = 1.4142135623730951},  // sqrt 2
      .make = [](const LayerSpec&, const LayerBuild&) -> std::unique_ptr<Layer> { return std::make_unique<ReLU>(); },
      .examples = {"{}"}};
  return k;
}
}  // namespace

const LayerKind& ReLU::kind() const { return relu_kind(); }

// ---- GELU --------------------------------------------------------------------------------
namespace {
constexpr double kSqrt1_2 = 0.70710678118654752440;      // 1/sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1/sqrt(2 pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2/pi)
constexpr double kGeluCubic = 0.044715;
}  // namespace

void GELU::build(int in_time, int in_features, ParamStore& store, const std::string&) {
  store_ = &store;
  in_time_ = out_time_ = in_time;
  in_features_ = out_features_ = in_features;
}

// exact: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2));
// tanh:  0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
void GELU::forward(const Mat& x, const ForwardContext&) {
  x_ = &x;
  out_.resize(x.rows(), x.cols());
  const float* in = x.data();
  float* o = out_.data();
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    const double v = in[i];
    o[i] = static_cast<float>(tanh_ ? 0.5 * v * (1.0 + std::tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v)))
                                    : 0.5 * v * (1.0 + std::erf(v * kSqrt1_2)));
  }
}

// exact: d/dx = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi);
// tanh:  with u = sqrt(2/pi) (x + 0.044715 x^3), t = tanh(u):
//        d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
void GELU::backward(const Mat& dout, Mat* dx) {
  if (!dx) return;
  dx->resize(dout.rows(), dout.cols());
  const float* in = x_->data();
  const float* d = dout.data();
  float* o = dx->data();
  for (Eigen::Index i = 0; i < dout.size(); ++i) {
    const double v = in[i];
    double slope;
    if (tanh_) {
      const double t = std::tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
      slope = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * kSqrt2OverPi * (1.0 + 3.0 * kGeluCubic * v * v);
    } else {
      slope = 0.5 * (1.0 + std::erf(v * kSqrt1_2)) + v * kInvSqrt2Pi * std::exp(-0.5 * v * v);
    }
    o[i] = static_cast<float>(d[i] * slope);
  }
}

namespace {
const LayerKind& gelu_kind() {
  static const LayerKind k{
      .name = "gelu",
      .class_name = "GELU",
      .summary = "x Phi(x), exact (erf) or its tanh approximation",
      .traits = {.role = LayerRole::Activation},
      .keys = {"approximate"},
      .parse =
          [](const LayerOptionReader& r, LayerSpec& s) {
            if (!r.has("approximate")) return;
            const std::string a = r.string("approximate");
            if (a != "none" && a != "tanh")
              r.fail(r.field("approximate"), fmt::format("must be \"none\" (erf, the default) or \"tanh\", got \"{}\"", a));
            s.gelu_tanh = a == "tanh";
          },
      .write = [](const LayerSpec& s, json& j) { j["approximate"] = s.gelu_tanh ? "tanh" : "none"; },
      .make = [](const LayerSpec& s, const LayerBuild&) -> std::unique_ptr<Layer> { return std::make_unique<GELU>(s.gelu_tanh); },
      .examples = {"{}", R"({"approximate": "tanh"})"}};
  return k;
}
}  // namespace

const LayerKind& GELU::kind() const { return gelu_kind(); }

// ---- Dropout -----------------------------------------------------------------------------
namespace {
// torch.nn.Dropout(p): in training each unit is kept with probability 1 - p and scaled by
// 1 / (1 - p) (inverted dropout: the expected output is x, and evaluation is the identity). The
// mask is drawn from the run's generator (ForwardContext::gen), one torch.rand value per unit in
// row-major order, kept where u < 1 - p (torch's bernoulli_(1 - p)), so a seed fixes the run.
// With p = 0 nothing is drawn.
class Dropout final : public Layer {
 public:
  explicit Dropout(double p) : p_(p) {}
  const LayerKind& kind() const override;
  std::string describe() const override { return fmt::format("Dropout(p={})", p_); }
  void build(int in_time, int in_features, ParamStore& store, const std::string&) override {
    store_ = &store;
    in_time_ = out_time_ = in_time;
    in_features_ = out_features_ = in_features;
  }
  void forward(const Mat& x, const ForwardContext& ctx) override {
    x_ = &x;
    dropped_ = ctx.mode == Mode::Train && p_ > 0;
    if (!dropped_) {
      out_ = x;
      return;
    }
    if (!ctx.gen)
      throw std::logic_error("Dropout in training draws its mask from the run's generator: pass it in the ForwardContext");
    mask_.resize(x.rows(), x.cols());
    ctx.gen->rand(mask_.data(), static_cast<std::size_t>(mask_.size()));
    const float keep = static_cast<float>(1.0 - p_), scale = static_cast<float>(1.0 / (1.0 - p_));
    for (Eigen::Index i = 0; i < mask_.size(); ++i) mask_.data()[i] = mask_.data()[i] < keep ? scale : 0.0f;
    out_.resize(x.rows(), x.cols());
    out_.array() = x.array() * mask_.array();
  }
  // out = x * m with m in {0, 1/(1-p)} fixed by the forward: dx = dout * m (dout in evaluation).
  void backward(const Mat& dout, Mat* dx) override {
    if (!dx) return;
    dx->resize(dout.rows(), dout.cols());
    if (dropped_)
      dx->array() = dout.array() * mask_.array();
    else
      *dx = dout;
  }

 private:
  double p_;
  bool dropped_ = false;  // the last forward drew a mask
  Mat mask_;              // (rows, features): 0 or 1/(1-p)
};

const LayerKind& dropout_kind() {
  static const LayerKind k{.name = "dropout",
                           .class_name = "Dropout",
                           .summary = "zeroes each unit with probability p in training, scales the rest by 1/(1-p)",
                           .traits = {.role = LayerRole::Regularization, .stochastic = true},
                           .keys = {"p"},
                           .parse =
                               [](const LayerOptionReader& r, LayerSpec& s) {
                                 if (!r.has("p")) return;
                                 s.dropout_p = r.number("p", 0, 1);
                                 if (s.dropout_p >= 1)
                                   r.fail(r.field("p"), "must be below 1 (p = 1 would drop every unit); torch's default is 0.5");
                               },
                           .write = [](const LayerSpec& s, json& j) { j["p"] = s.dropout_p; },
                           .make = [](const LayerSpec& s, const LayerBuild&) -> std::unique_ptr<Layer> {
                             return std::make_unique<Dropout>(s.dropout_p);
                           },
                           .examples = {R"({"p": 0.5})", R"({"p": 0.1})"}};
  return k;
}

const LayerKind& Dropout::kind() const { return dropout_kind(); }
}  // namespace

// ---- LayerProbe ---------------------------------------------------------------------------
namespace {
thread_local LayerProbe* current_probe = nullptr;
}
LayerProbe* layer_probe() { return current_probe; }
ScopedLayerProbe::ScopedLayerProbe(LayerProbe* probe) : previous_(current_probe) { current_probe = probe; }
ScopedLayerProbe::~ScopedLayerProbe() { current_probe = previous_; }

// ---- Sequential --------------------------------------------------------------------------
void Sequential::build(int in_time, int in_features, ParamStore& store, const std::string& prefix) {
  store_ = &store;
  in_time_ = in_time;
  in_features_ = in_features;
  int t = in_time, f = in_features;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->build(t, f, store, prefix + std::to_string(i) + ".");
    t = layers_[i]->out_time();
    f = layers_[i]->out_features();
  }
  out_time_ = t;
  out_features_ = f;
  grads_.resize(layers_.size());
}

bool Sequential::output_is_transient(std::size_t i) const {
  return i + 1 < layers_.size() && !layers_[i]->kind().traits.backward_reads_output &&
         !layers_[i + 1]->kind().traits.backward_reads_input;
}

void Sequential::forward(const Mat& x, const ForwardContext& ctx) {
  x_ = &x;
  const Mat* in = &x;
  LayerProbe* probe = layer_probe();
  const bool scratch = ctx.scratch_outputs && ctx.mode == Mode::Train;  // (BatchNorm's backward reads x after an eval forward)
  out_size_.resize(layers_.size(), 0);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    auto& l = layers_[i];
    // Lent from the second training forward on: the output's size in the last one picks the matrix.
    const bool lend = scratch && out_size_[i] > 0 && output_is_transient(i);
    l->set_output_buffer(lend ? &scratch_outs_.get(i, out_size_[i]) : nullptr);
    probed(probe, *l, Pass::Forward, [&] { l->forward(*in, ctx); });
    in = &l->out();
    if (ctx.mode == Mode::Train) out_size_[i] = in->size();
  }
}

void Sequential::backward(const Mat& dout, Mat* dx) { backward(dout, dx, {}); }

void Sequential::backward(const Mat& dout, Mat* dx, const std::function<void(std::size_t)>& layer_done) {
  if (layers_.empty()) {
    if (dx) *dx = dout;
    return;
  }
  dout_ = &dout;  // the last layer's output gradient is the caller's, read in place
  // With no input gradient asked for and no one reading the layers' output gradients, leading
  // layers that only move numbers (a flatten under a Linear that took the token path) need no
  // backward, and the layer above them no dx.
  std::size_t lowest = 0;
  if (!dx && scratch_)
    while (lowest + 1 < layers_.size() && layers_[lowest]->kind().traits.role == LayerRole::Gather) ++lowest;
  LayerProbe* probe = layer_probe();
  for (std::size_t i = layers_.size(); i-- > 0;) {
    if (i < lowest) {
      if (layer_done) layer_done(i);
      continue;
    }
    const Mat& d = i + 1 == layers_.size() ? dout : grad_buffer(i);
    probed(probe, *layers_[i], Pass::Backward, [&] { layers_[i]->backward(d, i > lowest ? &grad_buffer(i - 1) : dx); });
    if (layer_done) layer_done(i);
  }
}

void Sequential::set_scratch_gradients(bool on) {
  scratch_ = on;
  for (auto& l : layers_)
    if (auto* block = dynamic_cast<Residual*>(l.get())) block->branch().set_scratch_gradients(on);
}

std::vector<Layer*> Sequential::children() {
  std::vector<Layer*> out;
  for (auto& l : layers_) out.push_back(l.get());
  return out;
}

// Not a config kind: the model's stack and a residual's branch.
const LayerKind& Sequential::kind() const {
  static const LayerKind k{
      .name = "sequential", .class_name = "Sequential", .summary = "its layers in order", .traits = {.role = LayerRole::Block}};
  return k;
}

// ---- Residual ----------------------------------------------------------------------------
std::string Residual::describe() const {
  std::string inner;
  for (const auto& l : branch_.layers()) inner += (inner.empty() ? "" : ", ") + l->describe();
  return fmt::format("Residual(x + [{}])", inner);
}

void Residual::build(int in_time, int in_features, ParamStore& store, const std::string& prefix) {
  store_ = &store;
  in_time_ = out_time_ = in_time;
  in_features_ = out_features_ = in_features;
  branch_.build(in_time, in_features, store, prefix + "layers.");
  if (branch_.out_time() != in_time)
    throw std::invalid_argument(
        fmt::format("{}: residual branch changes the time length from {} to {} (a flatten inside); its "
                    "output shape must equal its input's",
                    where_, in_time, branch_.out_time()));
  if (branch_.out_features() != in_features)
    throw std::invalid_argument(
        fmt::format("{}: residual branch maps {} features to {}; its output width must equal its input ({})", where_, in_features,
                    branch_.out_features(), in_features));
}

void Residual::forward(const Mat& x, const ForwardContext& ctx) {
  x_ = &x;
  branch_.forward(x, ctx);
  out_.resize(x.rows(), x.cols());
  kernels::kernels().add(x.data(), branch_.out().data(), x.size(), out_.data());
}

// out = x + f(x): dx = dout + (df/dx)^T dout, the branch's part written into dx and dout added
// in place.
void Residual::backward(const Mat& dout, Mat* dx) {
  branch_.backward(dout, dx);
  if (!dx) return;
  kernels::kernels().add(dout.data(), dx->data(), dout.size(), dx->data());
}

namespace {
// Residual blocks inside residual blocks: each level is a C++ call in parsing, building and
// every forward / backward, so an absurd nesting (thousands) would overflow the stack.
constexpr int kMaxResidualNesting = 64;

void parse_residual(const LayerOptionReader& r, LayerSpec& s) {
  if (!r.has("layers") || !r.at("layers").is_array() || r.at("layers").empty())
    r.fail(r.field("layers"), "must be a non-empty list of layers: the branch f of x + f(x)");
  if (r.nesting() >= kMaxResidualNesting)
    r.fail(r.where(),
           fmt::format("residual blocks nested more than {} deep; put blocks one after another instead", kMaxResidualNesting));
  s.layers = r.layers("layers");
}

void residual_shape(const LayerSpec& s, ShapeCheck& c) {
  int t = c.time, f = c.features;
  check_layer_shapes(s.layers, c.where + ".layers", *c.source, t, f);
  if (t != c.time)
    c.fail("layers", fmt::format("residual branch changes the time length from {} to {} (a flatten inside); its output "
                                 "shape must equal its input's",
                                 c.time, t));
  if (c.features > 0 && f > 0 && f != c.features)
    c.fail("layers", fmt::format("residual branch maps {} features to {}; its output width must equal its input ({})", c.features,
                                 f, c.features));
}

std::unique_ptr<Layer> make_residual(const LayerSpec& s, const LayerBuild& b) {
  auto r = std::make_unique<Residual>(b.where + ".layers");
  for (std::size_t i = 0; i < s.layers.size(); ++i) {
    const LayerSpec& inner = s.layers[i];
    r->add(inner.kind->make(inner, LayerBuild{b.vocab_size, fmt::format("{}.layers[{}]", b.where, i)}));
  }
  return r;
}

const LayerKind& residual_kind() {
  static const LayerKind k{
      .name = "residual",
      .class_name = "Residual",
      .summary = "x + f(x), f a list of layers that keeps the width",
      .traits = {.role = LayerRole::Block},
      .keys = {"layers"},
      .parse = parse_residual,
      .write =
          [](const LayerSpec& s, json& j) {
            json inner = json::array();
            for (const auto& l : s.layers) inner.push_back(layer_spec_json(l));
            j["layers"] = inner;
          },
      .shape = residual_shape,
      .make = make_residual,
      .examples = {R"({"layers": [{"type": "linear", "out": 6}, {"type": "layernorm"}, {"type": "tanh"}]})"}};
  return k;
}
}  // namespace

const LayerKind& Residual::kind() const { return residual_kind(); }

// ---- the registry -------------------------------------------------------------------------
// Every kind a config can name, in the order listings and error messages show them.
const std::vector<const LayerKind*>& layer_kinds() {
  static const std::vector<const LayerKind*> kinds{&linear_kind(),  &batchnorm_kind(), &layernorm_kind(), &groupnorm_kind(),
                                                   &tanh_kind(),    &sigmoid_kind(),   &relu_kind(),      &gelu_kind(),
                                                   &dropout_kind(), &flatten_kind(),   &residual_kind()};
  return kinds;
}

// ---- SoftmaxCrossEntropy -----------------------------------------------------------------
namespace {
// probs := softmax of each row of logits (B, V), with each row's max and sum(exp(l - max)) for
// the loss (the kernels' softmax_rows says how).
void softmax_rows(const Mat& logits, Mat& probs, Eigen::VectorXf& rmax, Eigen::VectorXf& rsum) {
  const Eigen::Index B = logits.rows(), V = logits.cols();
  probs.resize(B, V);
  rmax.resize(B);
  rsum.resize(B);
  kernels::kernels().softmax_rows(logits.data(), B, V, probs.data(), rmax.data(), rsum.data());
}
}  // namespace

// loss_i = logsumexp(l_i) - l_i[y_i], with the row max subtracted first so no exp overflows.
float SoftmaxCrossEntropy::forward(const Mat& logits, const int32_t* targets) {
  targets_ = targets;
  const Eigen::Index B = logits.rows(), V = logits.cols();
  softmax_rows(logits, probs_, rmax_, rsum_);
  kernels::kernels().normalize_rows(probs_.data(), B, V, rsum_.data());
  double total = 0;
  for (Eigen::Index b = 0; b < B; ++b)
    total += static_cast<double>(std::log(rsum_[b]) + rmax_[b] - logits.data()[b * V + targets[b]]);
  return static_cast<float>(total / static_cast<double>(B));
}

// The reference: every term in double. Gradient checks difference it, so it must be exact.
double SoftmaxCrossEntropy::sum_loss(const Mat& logits, const int32_t* targets) {
  double total = 0;
  for (Eigen::Index b = 0; b < logits.rows(); ++b) {
    const double m = logits.row(b).maxCoeff();
    double s = 0;
    for (Eigen::Index c = 0; c < logits.cols(); ++c) s += std::exp(static_cast<double>(logits(b, c)) - m);
    total += std::log(s) + m - logits(b, targets[b]);
  }
  return total;
}

// Evaluation: float exps in full vectors (as the training step's), each row's loss summed in
// double. Agrees with sum_loss to ~1e-7 relative per row.
double SoftmaxCrossEntropy::sum_loss_fast(const Mat& logits, const int32_t* targets, Mat& scratch) {
  std::vector<float> norm(static_cast<std::size_t>(logits.rows()));
  log_normalizers(logits, norm.data(), scratch);
  const Eigen::Index V = logits.cols();
  double total = 0;
  for (Eigen::Index b = 0; b < logits.rows(); ++b)
    total += static_cast<double>(norm[static_cast<std::size_t>(b)] - logits.data()[b * V + targets[b]]);
  return total;
}

void SoftmaxCrossEntropy::log_normalizers(const Mat& logits, float* out, Mat& scratch) {
  Eigen::VectorXf rmax, rsum;
  softmax_rows(logits, scratch, rmax, rsum);
  for (Eigen::Index b = 0; b < logits.rows(); ++b) out[b] = std::log(rsum[b]) + rmax[b];
}

// d loss / d logits = (softmax - onehot(y)) / B for the mean loss.
void SoftmaxCrossEntropy::backward(Mat* dlogits) const {
  const Eigen::Index B = probs_.rows();
  dlogits->resize(B, probs_.cols());
  *dlogits = probs_ / static_cast<float>(B);
  for (Eigen::Index b = 0; b < B; ++b) (*dlogits)(b, targets_[b]) -= 1.0f / static_cast<float>(B);
}

}  // namespace mm
