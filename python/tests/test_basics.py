"""presets, Config and Dataset, checked against the lecture's own Python and the CLI."""
import json
import os
import random
import subprocess

import numpy as np
import pytest

import makemore
from conftest import BINARY


def run_cli(*args):
    return subprocess.run([BINARY, *args], check=True, capture_output=True, text=True).stdout


def test_presets_match_the_cli():
    names = makemore.presets()
    listed = [line.split()[0] for line in run_cli("presets").splitlines() if " params  " in line]
    assert sorted(names) == sorted(listed)
    for name in names:  # each preset's config is the file `presets show` prints
        shown = makemore.Config.from_json(run_cli("presets", "show", name), source=name)
        assert makemore.Config.from_preset(name).to_dict() == shown.to_dict()


def test_config_round_trip():
    cfg = makemore.Config.from_preset("lecture-batchnorm")
    d = cfg.to_dict()
    assert d["model"]["layers"][1]["type"] == "batchnorm1d"
    assert (cfg.name, cfg.steps, cfg.batch_size, cfg.block_size) == ("lecture-batchnorm", 200000, 32, 3)
    d["train"]["steps"] = 123
    again = makemore.Config.from_dict(d)
    assert again.steps == 123
    assert makemore.Config.from_json(json.dumps(d)).to_dict() == again.to_dict()


def test_config_errors_are_value_errors_naming_the_field():
    with pytest.raises(ValueError, match="lecture-nope"):
        makemore.Config.from_preset("lecture-nope")
    with pytest.raises(ValueError, match="mine"):
        makemore.Config.from_json("{not json", source="mine")
    d = makemore.Config.from_preset("lecture-batchnorm").to_dict()
    d["train"]["steps"] = -5
    with pytest.raises(ValueError, match="train.steps"):
        makemore.Config.from_dict(d)
    with pytest.raises(TypeError):
        makemore.Config.from_dict({"model": object()})
    with pytest.raises(FileNotFoundError, match="no such config file"):
        makemore.Config.from_file("/nonexistent/cfg.json")


def lecture_arrays(words, block_size=3):
    """The lecture's build_dataset over its own shuffle (independent of makemore)."""
    chars = sorted(set("".join(words)))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi["."] = 0

    def build(ws):
        X, Y = [], []
        for w in ws:
            context = [0] * block_size
            for ch in w + ".":
                ix = stoi[ch]
                X.append(context)
                Y.append(ix)
                context = context[1:] + [ix]
        return np.array(X), np.array(Y)

    words = list(words)
    random.seed(42)
    random.shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return ["."] + chars, build(words[:n1]), build(words[n1:n2]), build(words[n2:])


def test_dataset_is_the_lectures(names_path, names):
    with open(names_path) as f:
        words = f.read().splitlines()
    vocab, tr, va, te = lecture_arrays(words)
    assert names.vocab == vocab
    for split, (X, Y) in zip((names.train, names.val, names.test), (tr, va, te)):
        assert split.X.dtype == np.int64 and split.Y.dtype == np.int64
        np.testing.assert_array_equal(split.X, X)
        np.testing.assert_array_equal(split.Y, Y)
    Xtr, Ytr = names.train  # unpacks as the lecture's Xtr, Ytr
    assert Xtr.shape == (182625, 3) and len(names) == 32033


def test_dataset_from_a_list_of_words():
    words = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail", "zoé"]
    ds = makemore.Dataset(words, block_size=4)
    vocab, tr, va, te = lecture_arrays(words, 4)
    assert ds.vocab == vocab and "é" in ds.vocab
    np.testing.assert_array_equal(ds.train.X, tr[0])
    np.testing.assert_array_equal(ds.test.Y, te[1])
    assert ds.words == words


@pytest.mark.parametrize("bad, error, match", [
    ([], ValueError, "empty"),
    (["ok", ""], ValueError, r"words\[1\]: empty"),
    (["ok", 3], TypeError, r"words\[1\]"),
    (["a\nb"], ValueError, "line break"),
    ([" anna"], ValueError, "whitespace"),
    ("/nonexistent/words.txt", FileNotFoundError, "no such file"),
])
def test_dataset_refuses_bad_input(bad, error, match):
    with pytest.raises(error, match=match):
        makemore.Dataset(bad)


def test_dataset_refuses_bad_block_size(names_path):
    with pytest.raises(ValueError, match="block_size"):
        makemore.Dataset(names_path, block_size=0)
    with pytest.raises(TypeError):
        makemore.Dataset(names_path, block_size="3")


def test_install_dir_is_where_python_looks():
    """`cmake --install` (default prefix /usr/local) puts the package in python/site_dir.py's
    directory under the prefix; Debian's python3 searches /usr/local's."""
    import sys
    from conftest import SOURCE
    rel = subprocess.run([sys.executable, os.path.join(SOURCE, "python", "site_dir.py")], check=True,
                         capture_output=True, text=True).stdout.strip()
    if sys.prefix != "/usr":
        pytest.skip("not a system interpreter: its prefix is its own")
    assert os.path.join("/usr/local", rel) in sys.path


def test_load_study(tmp_path, names_path):
    out = tmp_path / "study"
    run_cli("study", "init", "-i", names_path, "--seeds", "2", "--steps", "30", "-o", str(out), "--json")
    rows = makemore.load_study(str(out))
    assert [r["preset"] for r in rows][:2] == ["lecture-original", "lecture-fix-softmax"]
    assert rows == json.load(open(out / "study.json"))["variants"]
    with pytest.raises(ValueError, match="not a study"):
        (tmp_path / "x.json").write_text("{}")
        makemore.load_study(str(tmp_path / "x.json"))
