"""makemore.train and Run: the same run folder, losses and samples as the CLI, parameters as
zero-copy views, callbacks, Ctrl-C, and bad input refused without a crash."""
import os
import signal
import threading

import numpy as np
import pytest

import makemore
from conftest import cli


def test_train_writes_a_finished_run(small_run):
    r = small_run.result
    assert r["steps"] == 300 and not r["interrupted"]
    m = small_run.metrics
    np.testing.assert_array_equal(m["step"], np.arange(300))
    assert m["loss"].dtype == np.float32 and np.isfinite(m["loss"]).all()
    np.testing.assert_allclose(m["lr"], 0.1)
    assert small_run.step == 300 and small_run.config.name == "lecture-batchnorm"
    # The validation curve at its default (every 20000 steps): step 0 and the last, which is the
    # final model's val_loss in result.json.
    np.testing.assert_array_equal(m["val_step"], [0, 300])
    assert m["val_loss"][-1] == pytest.approx(r["val_loss"], abs=1e-12) and m["val_loss"][0] > m["val_loss"][-1]


def test_eval_every_sets_the_validation_curve(tmp_path, names):
    cfg = makemore.Config.from_preset("lecture-kaiming")
    run = makemore.train(cfg, names, out=str(tmp_path / "r"), steps=50, eval_every=20, report=False)
    np.testing.assert_array_equal(run.metrics["val_step"], [0, 20, 40, 50])
    assert run.metrics["val_loss"].dtype == np.float64 and np.isfinite(run.metrics["val_loss"]).all()
    with pytest.raises(ValueError, match="eval_every"):
        makemore.train(cfg, names, out=str(tmp_path / "bad"), steps=5, eval_every=-1)


def test_eval_and_sample_are_the_clis(small_run):
    ours = small_run.eval()
    theirs = cli("eval", "-o", small_run.dir)
    for split in ("train", "val", "test"):
        assert ours[split] == pytest.approx(theirs[split + "_loss"], abs=1e-9)
    assert ours["val"] == pytest.approx(small_run.result["val_loss"], abs=1e-9)
    words = small_run.sample(8, temperature=0.8, top_k=5, seed=3)
    assert words == [s["text"] for s in cli("sample", "-o", small_run.dir, "-n", "8", "--temperature", "0.8",
                                            "--top-k", "5", "--seed", "3")["samples"]]
    assert small_run.sample(3) == small_run.sample(3)  # the run's seed + 10 by default


def test_the_same_run_as_the_cli(tmp_path, names_path, names):
    """train through Python and through the binary: the same losses, bit for bit."""
    cfg = makemore.Config.from_preset("lecture-kaiming")
    run = makemore.train(cfg, names, out=str(tmp_path / "py"), steps=200, report=False)
    cli("train", "--preset", "lecture-kaiming", "-i", names_path, "--steps", "200", "-o", str(tmp_path / "cli"),
        "--no-report", "-q")
    theirs = makemore.Run.open(str(tmp_path / "cli"))
    np.testing.assert_array_equal(run.metrics["loss"], theirs.metrics["loss"])
    assert run.result["val_loss"] == theirs.result["val_loss"]


def test_parameters_are_zero_copy_views(small_run):
    model = small_run.model
    params = model.parameters
    assert list(params)[:2] == ["embedding.weight", "layers.0.weight"]
    w = params["layers.3.weight"]
    assert w.shape == (200, 27) and w.dtype == np.float32 and not w.flags["OWNDATA"]
    before = small_run.eval()["val"]
    saved = w.copy()
    w[:] = 0.0  # a uniform output: the loss becomes ln(27) minus what the bias knows
    after = small_run.eval()["val"]
    assert after != before and after == pytest.approx(model.loss(*small_run.dataset.val), abs=1e-12)
    w[:] = saved
    assert small_run.eval()["val"] == before
    assert set(model.buffers) == {"layers.1.running_mean", "layers.1.running_std"}


def test_forward_and_loss(small_run):
    model = small_run.model
    Xva, Yva = small_run.dataset.val
    logits = model.forward(Xva[:50])
    assert logits.shape == (50, 27) and logits.dtype == np.float32
    lp = logits - logits.max(1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(1, keepdims=True))
    ce = -lp[np.arange(50), Yva[:50]].mean()
    assert model.loss(Xva[:50], Yva[:50]) == pytest.approx(ce, abs=1e-5)
    assert model.loss(Xva.astype(np.int32), Yva.astype(np.int32)) == pytest.approx(small_run.eval()["val"], abs=1e-12)
    assert model.mode == "eval"


@pytest.mark.parametrize("bad, error, match", [
    (lambda X, Y: (X.astype(np.float32), Y), ValueError, "dtype"),
    (lambda X, Y: (X[:, :2].copy(), Y), ValueError, "3 columns"),
    (lambda X, Y: (X[::2], Y[::2]), ValueError, "C-contiguous"),
    (lambda X, Y: (X, Y[:-1]), ValueError, "rows"),
    (lambda X, Y: (X + 30, Y), ValueError, "not a token"),
    (lambda X, Y: (X - 1, Y), ValueError, "not a token"),
    (lambda X, Y: (X[:0], Y[:0]), ValueError, "no rows"),
    (lambda X, Y: (X.tolist(), Y), TypeError, "numpy array"),
    (lambda X, Y: (X[None], Y), ValueError, "dimension"),
])
def test_bad_arrays_are_refused(small_run, bad, error, match):
    X, Y = small_run.dataset.val
    X, Y = X[:10], Y[:10]
    bX, bY = bad(X, Y)
    with pytest.raises(error, match=match):
        small_run.model.loss(bX, bY)


def test_train_mode_needs_two_rows(small_run):
    model = makemore.Run.open(small_run.dir).model  # its own: a train-mode forward moves BatchNorm's statistics
    X, Y = small_run.dataset.train
    model.mode = "train"
    try:
        with pytest.raises(ValueError, match="2 rows"):
            model.forward(X[:1])
        assert np.isfinite(model.loss(X[:32], Y[:32]))
    finally:
        model.mode = "eval"
    with pytest.raises(ValueError, match="mode"):
        model.mode = "training"


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n:"), (dict(temperature=0.0), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(top_k=-1), "top_k"),
])
def test_bad_sample_options(small_run, kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_run.sample(**kwargs)


def test_missing_runs_are_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        makemore.Run.open(str(tmp_path / "nope"))
    os.mkdir(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        makemore.Run.open(tmp_path / "empty")


def test_callback_steps_and_stats(tmp_path, names):
    seen = []
    cfg = makemore.Config.from_preset("lecture-batchnorm")
    run = makemore.train(cfg, names, out=tmp_path / "cb", steps=250, every=100, report=False, diag_every=0,
                         callback=lambda step, loss: seen.append((step, loss)))
    assert [s for s, _ in seen] == [0, 100, 200, 249]
    np.testing.assert_array_equal([l for _, l in seen], run.metrics["loss"][[0, 100, 200, 249]])

    stats = []
    makemore.train(cfg, names, out=tmp_path / "st", steps=120, every=50, report=False, stats=True,
                   callback=lambda step, loss, s: stats.append((step, s)))
    assert [s for s, _ in stats] == [0, 50, 100, 119]
    tanh = stats[-1][1]["layers"][2]
    assert tanh["type"] == "Tanh" and 0 <= tanh["sat99_pct"] <= 100


def test_a_callback_error_stops_and_saves(tmp_path, names):
    def boom(step, loss):
        if step == 100:
            raise RuntimeError("enough")

    cfg = makemore.Config.from_preset("lecture-batchnorm")
    with pytest.raises(RuntimeError, match="enough"):
        makemore.train(cfg, names, out=tmp_path / "x", steps=1000, every=50, callback=boom, report=False)
    run = makemore.Run.open(tmp_path / "x")
    assert run.step == 101 and run.result["interrupted"]
    done = makemore.resume(tmp_path / "x", report=False)
    assert done.step == 1000 and not done.result["interrupted"]


def test_ctrl_c_stops_at_the_next_step_and_saves(tmp_path, names):
    cfg = makemore.Config.from_preset("lecture-batchnorm")
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        makemore.train(cfg, names, out=tmp_path / "int", report=False)  # 200000 steps: minutes
    timer.join()
    run = makemore.Run.open(tmp_path / "int")
    assert 0 < run.step < 200000 and run.result["interrupted"]
    assert len(run.metrics["loss"]) == run.step


def test_train_refuses_bad_input(tmp_path, names):
    cfg = makemore.Config.from_preset("lecture-batchnorm")
    with pytest.raises(ValueError, match="block_size"):
        makemore.train(cfg, makemore.Dataset(names.words[:100], block_size=4), out=tmp_path / "a", steps=10)
    with pytest.raises(ValueError, match="steps"):
        makemore.train(cfg, names, out=tmp_path / "b", steps=-1)
    with pytest.raises(ValueError, match="every"):
        makemore.train(cfg, names, out=tmp_path / "c", steps=5, every=-1)
    with pytest.raises(TypeError):
        makemore.train(cfg, "names.txt", out=tmp_path / "d")
    with pytest.raises(ValueError, match="at least 10"):
        makemore.train(cfg, makemore.Dataset(["ab", "cd"]), out=tmp_path / "e", steps=5)


def test_views_keep_their_run_alive(small_run):
    import gc
    w = makemore.Run.open(small_run.dir).model.parameters["layers.0.weight"]
    model = makemore.Run.open(small_run.dir).model
    gc.collect()
    assert w.base is not None
    np.testing.assert_array_equal(w, small_run.model.parameters["layers.0.weight"])
    assert model.loss(*small_run.dataset.val) == pytest.approx(small_run.result["val_loss"], abs=1e-9)


def test_inspect_and_report_of_a_saved_run(small_run, tmp_path):
    page = small_run.report(html=tmp_path / "page.html")
    assert page.endswith("page.html") and os.path.getsize(page) > 1000
    with pytest.raises(FileNotFoundError, match="no such file"):
        small_run.inspect(words=tmp_path / "missing.txt")
