// train_and_sample WORDS DIR [STEPS]: trains the lecture's BatchNorm network (a shorter run
// unless STEPS says otherwise) on the word list WORDS into the run folder DIR, evaluates it and
// prints ten names drawn from it: what `makemore train` and `makemore sample` do, through the
// library.
#include <makemore/data.h>
#include <makemore/presets.h>
#include <makemore/run.h>

#include <cstdio>
#include <exception>
#include <string>

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: train_and_sample WORDS DIR [STEPS]\n");
    return 2;
  }
  try {
    mm::TrainOverrides overrides;
    overrides.steps = argc == 4 ? std::stoll(argv[3]) : 2000;
    const mm::Config cfg = mm::apply_overrides(mm::load_preset("lecture-batchnorm"), overrides, "lecture-batchnorm");
    const mm::Dataset data = mm::Dataset::load(argv[1]);

    mm::RunSettings settings;
    settings.report = false;  // no report.html: a library user draws what it needs
    mm::Run run = mm::Run::create(argv[2], cfg, data, "lecture-batchnorm", /*overwrite=*/true, settings);
    const mm::RunResult result = run.train();
    std::printf("%lld steps: train %.4f, val %.4f\n", static_cast<long long>(run.step()), result.losses.train, result.losses.val);

    const mm::SplitLosses again = run.evaluate();  // the saved model, evaluated anew
    std::printf("evaluated again: val %.4f\n", again.val);

    mm::SampleOptions opt;
    opt.count = 10;
    for (const std::u32string& word : run.sample(opt)) std::printf("%s\n", mm::to_utf8(word).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_and_sample: %s\n", e.what());
    return 1;
  }
  return 0;
}
