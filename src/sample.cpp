// Sampling as the notebook's cell 20: context of boundary tokens, softmax of the logits,
// one torch.multinomial draw, shift the context, stop at the boundary token.
#include "makemore/sample.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace mm {

std::vector<std::u32string> sample_words(Model& model, const Vocab& vocab, const SampleOptions& opt, TorchGenerator& gen) {
  const int T = model.block_size(), V = model.vocab_size();
  std::vector<int32_t> context(static_cast<std::size_t>(T));
  std::vector<float> logits(static_cast<std::size_t>(V)), probs(static_cast<std::size_t>(V));
  std::vector<std::u32string> out;
  for (int s = 0; s < opt.count; ++s) {
    std::fill(context.begin(), context.end(), 0);
    std::u32string word;
    for (int len = 0; len < opt.max_length; ++len) {
      const Mat& l = model.forward(context.data(), 1, Mode::Eval);
      if (!model.outputs_finite()) throw std::domain_error("its activations overflow float (they are not finite)");
      for (int v = 0; v < V; ++v) logits[static_cast<std::size_t>(v)] = l(0, v);
      if (opt.temperature != 1.0)
        for (auto& x : logits) x = static_cast<float>(x / opt.temperature);
      if (opt.top_k > 0 && opt.top_k < V) {
        std::vector<float> sorted = logits;
        std::nth_element(sorted.begin(), sorted.begin() + (opt.top_k - 1), sorted.end(), std::greater<float>());
        const float kth = sorted[static_cast<std::size_t>(opt.top_k - 1)];
        for (auto& x : logits)
          if (x < kth) x = -std::numeric_limits<float>::infinity();
      }
      // F.softmax in float: exp(x - max) / sum
      const float m = *std::max_element(logits.begin(), logits.end());
      // Finite logits divided by a tiny temperature can overflow float: the draw would be NaN.
      if (!std::isfinite(m)) throw std::overflow_error("its logits divided by the temperature overflow float");
      float sum = 0;
      for (int v = 0; v < V; ++v) sum += probs[static_cast<std::size_t>(v)] = std::exp(logits[static_cast<std::size_t>(v)] - m);
      for (auto& p : probs) p /= sum;
      const auto ix = static_cast<int32_t>(gen.multinomial1(probs.data(), probs.size()));
      std::rotate(context.begin(), context.begin() + 1, context.end());
      context.back() = ix;
      if (ix == 0) break;
      word.push_back(vocab.decode(ix));
    }
    out.push_back(word);
  }
  return out;
}

}  // namespace mm
