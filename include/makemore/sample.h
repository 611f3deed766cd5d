// Sampling words from a trained model, one token at a time as the lecture does
// (softmax, then torch.multinomial with the sampling generator), with temperature and top-k.
#pragma once
#include <string>
#include <vector>

#include "makemore/data.h"
#include "makemore/model.h"
#include "makemore/rng.h"

namespace mm {

struct SampleOptions {
  int count = 20;
  double temperature = 1.0;  // > 0
  int top_k = 0;             // 0 = all tokens
  int max_length = 256;      // stop a word that never emits the boundary token
};

std::vector<std::u32string> sample_words(Model& model, const Vocab& vocab, const SampleOptions& opt, TorchGenerator& gen);

}  // namespace mm
