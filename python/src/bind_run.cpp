// train / resume and Run: run.h's Run from Python. The training runs in C++ with the GIL
// released; Python is entered only when a callback is due or, a few times a second, to let
// Ctrl-C (KeyboardInterrupt) through: then the run stops before its next step, saves itself
// through the library's stop flag, and the exception is raised again once it is on disk.
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <optional>

#include "common.h"
#include "inspection.h"
#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/metrics.h"
#include "makemore/parallel.h"
#include "makemore/report.h"

namespace mm::python {

namespace {

std::string path_arg(py::handle p) { return py::module_::import("os").attr("fspath")(p).cast<std::string>(); }

// Calls fn(step, loss[, stats]) at steps where step % every == 0 and at the last step, and polls
// for signals between; a Python exception (KeyboardInterrupt, or one the callback raised) is
// kept and raises the library's stop flag.
class PyProgress final : public Observer {
 public:
  PyProgress(py::object fn, int64_t every, const DiagObserver* diag, std::atomic<bool>* stop)
      : fn_(std::move(fn)), every_(every), diag_(diag), stop_(stop), next_poll_(std::chrono::steady_clock::now()) {}
  void after_forward(Trainer&, int64_t, float loss) override { loss_ = loss; }
  bool watches_backward(int64_t) const override { return false; }
  void after_update(Trainer& t, int64_t step, double) override {
    const bool due = !fn_.is_none() && ((every_ > 0 && step % every_ == 0) || step + 1 == t.config().steps);
    if (!due && (++since_poll_ < 16 || std::chrono::steady_clock::now() < next_poll_)) return;
    since_poll_ = 0;
    next_poll_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    if (error_) return;
    py::gil_scoped_acquire gil;
    try {
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      if (!due) return;
      if (diag_ && diag_->last() && diag_->last()->step == step)
        fn_(step, loss_, json_to_py(snapshot_json(*diag_->last(), false)));
      else
        fn_(step, loss_);
    } catch (py::error_already_set& e) {
      error_.emplace(std::move(e));
      stop_->store(true);
    }
  }
  // The Python exception that stopped the run, if any (read with the GIL held).
  std::optional<py::error_already_set>& error() { return error_; }

 private:
  py::object fn_;
  int64_t every_;
  const DiagObserver* diag_;
  std::atomic<bool>* stop_;
  std::chrono::steady_clock::time_point next_poll_;
  int since_poll_ = 0;
  float loss_ = 0;
  std::optional<py::error_already_set> error_;
};

struct TrainArgs {
  py::object callback;
  int64_t every = 1000;
  bool stats = false, verbose = false;
};

py::object open_run(const std::string& dir) { return py::cast(std::make_unique<PyRun>(Run::open(dir))); }

// Trains `run` to its end (or a stop), then returns the run opened afresh from its folder.
py::object train_run(Run run, const TrainArgs& a, std::vector<std::string>& notes) {
  auto emit_notes = [&] {
    for (const auto& n : notes) PyErr_WarnEx(PyExc_UserWarning, n.c_str(), 1);
    notes.clear();
  };
  emit_notes();
  if (a.every < 0) throw py::value_error(fmt::format("every: {} is negative; use 0 (the last step only) or more", a.every));
  if (a.verbose) {
    py::print("makemore:", describe_data(run));
    py::print("makemore:", describe_start(run));
  }
  std::atomic<bool> stop{false};
  std::optional<DiagObserver> diag;
  if (a.stats && !a.callback.is_none()) {
    DiagOptions opt;
    opt.every = a.every;
    opt.last_step = run.config().steps - 1;
    opt.sample_from = &run.splits().train;
    opt.config = &run.config();
    diag.emplace(opt);
  }
  PyProgress progress(a.callback, a.every, diag ? &*diag : nullptr, &stop);
  TrainHooks hooks;
  hooks.stop = &stop;
  if (diag) hooks.observers.push_back(&*diag);
  hooks.observers.push_back(&progress);
  RunResult r;
  {
    py::gil_scoped_release release;
    r = run.train(hooks);
  }
  const std::string dir = run.dir();
  if (a.verbose && r.divergence.empty()) py::print(describe_result(run, r), py::arg("end") = "");
  { Run done = std::move(run); }  // the folder's lock released
  emit_notes();
  if (progress.error()) throw std::move(*progress.error());  // saved: raise KeyboardInterrupt / the callback's error
  if (!r.divergence.empty()) throw std::runtime_error(r.divergence);
  if (!r.report_error.empty()) PyErr_WarnEx(PyExc_UserWarning, ("report not written: " + r.report_error).c_str(), 1);
  return open_run(dir);
}

RunSettings settings_of(std::vector<std::string>& notes, std::optional<int64_t> diag_every, std::optional<int64_t> save_every,
                        bool report, int threads, std::optional<int64_t> eval_every = std::nullopt) {
  if (threads < 1 || threads > 256) throw py::value_error(fmt::format("threads: {} is out of range; use 1 to 256", threads));
  if (diag_every && *diag_every < 0) throw py::value_error("diag_every: must be 0 (off) or more");
  if (save_every && *save_every < 0) throw py::value_error("save_every: must be 0 (only at the end) or more");
  if (eval_every && *eval_every < 0) throw py::value_error("eval_every: must be 0 (off) or more");
  RunSettings s;
  s.diag_every = diag_every.value_or(-1);
  s.save_every = save_every.value_or(-1);
  s.eval_every = eval_every.value_or(-1);
  s.threads = threads;
  s.report = report;
  s.note = [&notes](const std::string& m) { notes.push_back(m); };
  set_threads(threads);
  return s;
}

const char* kTrainDoc =
    "Trains `config` on `dataset` into the run folder `out` (`makemore train`), in C++ with the GIL released. "
    "steps: overrides the config's. callback(step, loss) is called at every `every`-th step (step 0 "
    "included) and the last; with stats=True, callback(step, loss, stats) also gets the doctor's statistics of "
    "that step (a dict: layers, params). Ctrl-C (KeyboardInterrupt) or an exception in the callback stops the run "
    "before its next step; the run is saved (makemore.resume continues it) and the exception raised again. "
    "eval_every: the validation loss into metrics.jsonl every N steps (`train --eval-every`; 0 off, default "
    "20000). Returns the Run, opened from its folder.";

void bind_train(py::module_& m) {
  m.def(
      "train",
      [](const Config& config, const PyDataset& ds, py::object out, std::optional<int64_t> steps, py::object callback,
         int64_t every, bool stats, bool overwrite, std::optional<int64_t> diag_every, std::optional<int64_t> save_every,
         bool report, int threads, bool verbose, std::optional<int64_t> eval_every) {
        if (ds.block_size != config.block_size)
          throw py::value_error(
              fmt::format("the dataset's block_size {} is not the config's data.block_size {}; make "
                          "Dataset(..., block_size={})",
                          ds.block_size, config.block_size, config.block_size));
        if (steps && *steps < 0) throw py::value_error(fmt::format("steps: {} is negative", *steps));
        TrainOverrides o;
        o.steps = steps.value_or(-1);
        const std::string source = "config " + config.name;
        const Config cfg = apply_overrides(config, o, source);
        std::vector<std::string> notes;
        RunSettings s = settings_of(notes, diag_every, save_every, report, threads, eval_every);
        Run run = Run::create(path_arg(out), cfg, ds.data, source, overwrite, s);
        return train_run(std::move(run), TrainArgs{callback, every, stats, verbose}, notes);
      },
      py::arg("config"), py::arg("dataset"), py::arg("out"), py::kw_only(), py::arg("steps") = py::none(),
      py::arg("callback") = py::none(), py::arg("every") = 1000, py::arg("stats") = false, py::arg("overwrite") = false,
      py::arg("diag_every") = py::none(), py::arg("save_every") = py::none(), py::arg("report") = true, py::arg("threads") = 1,
      py::arg("verbose") = false, py::arg("eval_every") = py::none(), kTrainDoc);

  m.def(
      "resume",
      [](py::object out, std::optional<int64_t> steps, py::object callback, int64_t every, bool stats, bool report, int threads,
         bool verbose) {
        if (steps && *steps < 0) throw py::value_error(fmt::format("steps: {} is negative", *steps));
        std::vector<std::string> notes;
        RunSettings s = settings_of(notes, std::nullopt, std::nullopt, report, threads);
        Run run = Run::resume(path_arg(out), steps.value_or(-1), s);
        return train_run(std::move(run), TrainArgs{callback, every, stats, verbose}, notes);
      },
      py::arg("out"), py::kw_only(), py::arg("steps") = py::none(), py::arg("callback") = py::none(), py::arg("every") = 1000,
      py::arg("stats") = false, py::arg("report") = true, py::arg("threads") = 1, py::arg("verbose") = false,
      "Continues the run in `out` (`makemore train --resume`): stopped runs to their end, finished ones to `steps` "
      "steps in all; the same bits as a run never stopped. Arguments as train().");
}

py::dict metrics_of(const PyRun& r) {
  const MetricsColumns c = r.run.metrics();
  py::dict d;
  d["step"] = py::array_t<int64_t>(static_cast<py::ssize_t>(c.step.size()), c.step.data());
  d["loss"] = py::array_t<float>(static_cast<py::ssize_t>(c.loss.size()), c.loss.data());
  d["lr"] = py::array_t<double>(static_cast<py::ssize_t>(c.lr.size()), c.lr.data());
  // The validation curve (train --eval-every): its own steps, NaN where not finite.
  d["val_step"] = py::array_t<int64_t>(static_cast<py::ssize_t>(c.val_step.size()), c.val_step.data());
  d["val_loss"] = py::array_t<double>(static_cast<py::ssize_t>(c.val_loss.size()), c.val_loss.data());
  return d;
}

py::list sample_of(PyRun& r, int n, double temperature, int top_k, std::optional<uint64_t> seed) {
  if (n < 1 || n > 1000000) throw py::value_error(fmt::format("n: {} is out of range; use 1 to 1000000", n));
  SampleOptions opt;
  opt.count = n;
  opt.temperature = temperature;
  opt.top_k = top_k;
  py::list out;
  for (const auto& w : r.run.sample(opt, seed)) out.append(to_utf8(w));
  return out;
}

}  // namespace

void bind_run(py::module_& m) {
  bind_train(m);
  py::class_<PyRun>(m, "Run", "A run folder, opened read-only (`makemore sample / eval / inspect / report -o DIR`).")
      .def_static(
          "open", [](py::object dir) { return open_run(path_arg(dir)); }, py::arg("dir"))
      .def_property_readonly("dir", [](const PyRun& r) { return r.run.dir(); })
      .def_property_readonly(
          "step", [](const PyRun& r) { return r.run.step(); }, "Steps the checkpoint has trained.")
      .def_property_readonly("config", [](const PyRun& r) { return r.run.config(); })
      .def_property_readonly("vocab",
                             [](const PyRun& r) {
                               std::vector<std::string> v;
                               for (int i = 0; i < r.run.vocab().size(); ++i) v.push_back(r.run.vocab().token_utf8(i));
                               return v;
                             })
      .def_property_readonly(
          "result", [](const PyRun& r) { return r.run.result() ? json_to_py(*r.run.result()) : py::object(py::none()); },
          "result.json as a dict (None while the run has not ended).")
      .def_property_readonly("metrics", &metrics_of, "metrics.jsonl as columns: {'step', 'loss', 'lr'} numpy arrays.")
      .def_property_readonly(
          "dataset", [](PyRun& r) { return PyDataset(r.run.data(), r.run.config().block_size, r.run.config().split_seed); },
          "The words it was trained on, split as it was.")
      .def_property_readonly(
          "model",
          [](py::object self) {
            return PyModel{self, &self.cast<PyRun&>()};
          },
          "The network: parameters as views of the checkpoint's values as loaded (no copy).")
      .def(
          "eval",
          [](PyRun& r, bool calibrate) {
            const SplitLosses l = r.run.evaluate(calibrate);
            py::dict d;
            d["train"] = l.train;
            d["val"] = l.val;
            d["test"] = l.test;
            return d;
          },
          py::arg("calibrate") = false,
          "Split losses of the model as it is now (`makemore eval`); calibrate: first set BatchNorm statistics from "
          "the training split (in memory only).")
      .def("sample", &sample_of, py::arg("n") = 20, py::arg("temperature") = 1.0, py::arg("top_k") = 0,
           py::arg("seed") = py::none(), "Words drawn from the model (`makemore sample`); seed None: the run's seed + 10.")
      .def(
          "inspect",
          [](PyRun& r, std::optional<py::object> words, int batch_size) {
            const Diagnosis d = inspect_run(r.run, words ? path_arg(*words) : "", batch_size);
            return make_inspection(d, r.run.model());
          },
          py::arg("words") = py::none(), py::arg("batch_size") = -1,
          "The doctor on this run (`makemore inspect -o DIR`): one minibatch measured in train mode, no update.")
      .def(
          "report",
          [](PyRun& r, std::optional<py::object> html) {
            ReportOptions opt;
            opt.run_dir = r.run.dir();
            if (html) opt.out_file = path_arg(*html);
            const ReportResult res = write_report(opt);
            return res.html_path;
          },
          py::arg("html") = py::none(), "Writes the run's report (`makemore report`); returns the page's path.")
      .def("__repr__",
           [](const PyRun& r) { return fmt::format("Run({}, {}, step {})", r.run.dir(), r.run.config().name, r.run.step()); });
}

}  // namespace mm::python
