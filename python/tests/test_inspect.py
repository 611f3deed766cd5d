"""inspect(): the doctor's findings and, per layer, numpy arrays that agree with the doctor's own
numbers and with the CLI's `inspect --json`."""
import numpy as np
import pytest

import makemore
from conftest import cli


@pytest.fixture(scope="module")
def original(names):
    return makemore.inspect(makemore.Config.from_preset("lecture-original"), names)


def test_same_diagnosis_as_the_cli(original, names_path):
    theirs = cli("inspect", "--preset", "lecture-original", "-i", names_path)
    ours = original.to_dict()
    assert ours["initial_loss"] == theirs["initial_loss"]
    assert [f["id"] for f in original.findings] == [f["id"] for f in theirs["findings"]]
    assert [l["sat99_pct"] for l in ours["layers"]] == [l["sat99_pct"] for l in theirs["layers"]]


def test_layer_arrays_agree_with_the_doctors_numbers(original):
    assert original.initial_loss > original.expected_loss + 10  # the lecture's 27.9 vs 3.30
    assert original.expected_loss == pytest.approx(np.log(27))
    tanh = next(l for l in original.layers if l.type == "Tanh")
    assert tanh.out.shape == (32, 200) and tanh.pre.shape == (32, 200) and tanh.grad.shape == (32, 200)
    assert tanh.out.mean() == pytest.approx(tanh.stats["out_mean"], abs=1e-6)
    assert tanh.out.std(ddof=1) == pytest.approx(tanh.stats["out_std"], rel=1e-5)
    np.testing.assert_allclose(np.tanh(tanh.pre), tanh.out, atol=1e-6)
    np.testing.assert_array_equal(tanh.saturated, np.abs(tanh.out) > 0.99)
    assert 100 * tanh.saturated.mean() == pytest.approx(tanh.stats["sat99_pct"], abs=1e-9)
    counts, edges = tanh.hist
    assert counts.sum() == tanh.out.size and len(edges) == len(counts) + 1 and edges[0] == -1 and edges[-1] == 1
    assert "tanh-saturated" in [f["id"] for f in original.findings] or original.findings
    linear = original.layers[0]
    assert linear.saturated is None and linear.pre is None
    assert "initial" in original.text or original.text


def test_deep_network_update_ratios(names):
    s = makemore.inspect(makemore.Config.from_preset("lecture-deep"), names, steps=50)
    assert s.steps_trained == 50 and s.losses.shape == (51,)
    assert s.ratios.shape == (len(s.ratio_steps), len(s.param_names)) and len(s.ratio_steps) >= 50
    assert s.param_names[0] == "embedding.weight"
    assert np.isfinite(s.ratios[:, s.param_names.index("layers.0.weight")]).all()
    assert len([l for l in s.layers if l.type == "Tanh"]) == 5


def test_inspect_a_saved_run(small_run, names_path):
    s = small_run.inspect()
    theirs = cli("inspect", "-o", small_run.dir)
    assert s.to_dict()["loss"] == theirs["loss"] and s.steps_trained == 300
    assert [f["id"] for f in s.findings] == [f["id"] for f in theirs["findings"]]
    assert small_run.model.grads["layers.0.weight"].shape == (30, 200)


def test_inspect_refuses_bad_input(names):
    cfg = makemore.Config.from_preset("lecture-original")
    with pytest.raises(ValueError, match="steps"):
        makemore.inspect(cfg, names, steps=-1)
    with pytest.raises(ValueError, match="block_size"):
        makemore.inspect(cfg, makemore.Dataset(names.words[:50], block_size=2))
