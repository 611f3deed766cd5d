"""makemore.torch: a run as a standard torch.nn module whose eval-mode loss on every split is the
run's (`makemore eval`) to 1e-5. Skipped where torch is not importable (Debian: python3-torch)."""
import numpy as np
import pytest

import makemore

torch = pytest.importorskip("torch")
import makemore.torch  # noqa: E402


def torch_losses(run):
    net = makemore.torch.to_module(run).eval()
    ds = run.dataset
    with torch.no_grad():
        return {name: torch.nn.functional.cross_entropy(net(torch.from_numpy(split.X)), torch.from_numpy(split.Y)).item()
                for name, split in (("train", ds.train), ("val", ds.val), ("test", ds.test))}


@pytest.mark.parametrize("preset", ["lecture-batchnorm", "lecture-deep", "deep-residual-layernorm", "wavenet"])
def test_round_trip_losses(preset, names, names_path, tmp_path):
    cfg = makemore.Config.from_preset(preset)
    ds = names if cfg.block_size == 3 else makemore.Dataset(names_path, block_size=cfg.block_size)
    run = makemore.train(cfg, ds, out=tmp_path / preset, steps=300, report=False, diag_every=0)
    ours, theirs = run.eval(), torch_losses(run)
    print(preset, {k: (ours[k], theirs[k]) for k in ours})
    for split in ours:
        assert theirs[split] == pytest.approx(ours[split], abs=1e-5)


def test_layouts(small_run):
    net = makemore.torch.to_module(small_run)
    kinds = [type(m).__name__ for m in net.layers]
    assert kinds == ["Linear", "BatchNorm1d", "Tanh", "Linear"]
    assert isinstance(net.embedding, torch.nn.Embedding)
    sd = makemore.torch.state_dict(small_run)
    w = small_run.model.parameters["layers.0.weight"]
    np.testing.assert_array_equal(sd["layers.0.weight"].numpy(), w.T)  # nn.Linear: (out, in)
    np.testing.assert_allclose(sd["layers.1.running_var"].numpy(), small_run.model.buffers["layers.1.running_std"] ** 2,
                               rtol=1e-6)
    assert set(sd) == set(net.state_dict())
