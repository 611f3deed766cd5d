"""A makemore run as PyTorch: the same network built from torch.nn's standard layers, with the
run's parameters in PyTorch's layouts. torch is imported here only, when these are called.

    import makemore, makemore.torch
    run = makemore.Run.open("runs/bn")
    net = makemore.torch.to_module(run).eval()
    Xva, Yva = run.dataset.val
    torch.nn.functional.cross_entropy(net(torch.from_numpy(Xva)), torch.from_numpy(Yva))  # == run.eval()["val"]

Layouts: nn.Linear's weight is (out, in), the transpose of makemore's (in, out); BatchNorm1d's
gamma / beta are weight / bias, and a running std (the lecture's notebook form, "running": "std")
becomes running_var = std^2 - eps, so eval mode divides by the same number. Activations stay 2-D
as in makemore: (rows, features), a sequence of T steps being T rows per example, so BatchNorm1d
normalizes every feature over all rows as the library does.
"""


def _modules():
    import torch
    from torch import nn

    class Residual(nn.Module):
        """x + f(x), f the branch (makemore's "residual")."""

        def __init__(self, layers):
            super().__init__()
            self.layers = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.layers(x)

    class Flatten(nn.Module):
        """Merges n consecutive rows (time steps) of each example into one: (B*T, C) -> (B*T/n, n*C)."""

        def __init__(self, n):
            super().__init__()
            self.n = n

        def forward(self, x):
            return x.reshape(-1, self.n * x.shape[1])

        def extra_repr(self):
            return f"n={self.n}"

    class MakemoreMLP(nn.Module):
        """Embedding -> the stack; logits (B, vocab) from contexts X (B, block_size)."""

        def __init__(self, vocab_size, n_embd, block_size, layers, sequence):
            super().__init__()
            self.block_size, self.sequence = block_size, sequence
            self.embedding = nn.Embedding(vocab_size, n_embd)
            self.layers = nn.Sequential(*layers)

        def forward(self, X):
            if X.dtype != torch.long:
                X = X.long()
            e = self.embedding(X)  # (B, T, C)
            x = e.reshape(-1, e.shape[-1]) if self.sequence else e.reshape(X.shape[0], -1)
            return self.layers(x)

    return torch, nn, Residual, Flatten, MakemoreMLP


def _build(nn, Residual, Flatten, specs, features, time, vocab_size):
    """torch modules for config layers `specs` given the input's (time, features)."""
    out = []
    for s in specs:
        t = s["type"]
        if t == "linear":
            n = vocab_size if s["out"] == "vocab" else s["out"]
            # "drawn-unused": drawn from the generator, not part of the network (no torch bias)
            out.append(nn.Linear(features, n, bias=s.get("bias", True) is True))
            features = n
        elif t == "batchnorm1d":
            out.append(nn.BatchNorm1d(features, eps=s.get("eps", 1e-5), momentum=s.get("momentum", 0.1)))
        elif t == "layernorm":
            out.append(nn.LayerNorm(features, eps=s.get("eps", 1e-5), elementwise_affine=s.get("affine", True)))
        elif t == "groupnorm":
            out.append(nn.GroupNorm(s["groups"], features, eps=s.get("eps", 1e-5), affine=s.get("affine", True)))
        elif t == "tanh":
            out.append(nn.Tanh())
        elif t == "sigmoid":
            out.append(nn.Sigmoid())
        elif t == "relu":
            out.append(nn.ReLU())
        elif t == "gelu":
            out.append(nn.GELU(approximate=s.get("approximate", "none")))
        elif t == "dropout":
            out.append(nn.Dropout(s.get("p", 0.5)))
        elif t == "flatten":
            n = s.get("n", 0) or time
            out.append(Flatten(n))
            features, time = features * n, time // n
        elif t == "residual":
            inner, f, _ = _build(nn, Residual, Flatten, s["layers"], features, time, vocab_size)
            out.append(Residual(inner))
        else:
            raise ValueError(f"model.layers: a {t!r} layer has no PyTorch counterpart in makemore.torch")
    return out, features, time


def state_dict(run):
    """The run's parameters and buffers as torch tensors in PyTorch's layouts, named as
    to_module(run)'s state_dict() names them (a module of your own with the same structure loads it)."""
    import numpy as np
    import torch

    cfg = run.config.to_dict()
    bn_std = {}  # prefix -> (eps) of BatchNorms that keep a running std

    def walk(specs, prefix):
        for i, s in enumerate(specs):
            if s["type"] == "batchnorm1d" and s.get("running", "var") == "std":
                bn_std[f"{prefix}{i}."] = s.get("eps", 1e-5)
            if s["type"] == "residual":
                walk(s["layers"], f"{prefix}{i}.layers.")

    walk(cfg["model"]["layers"], "layers.")
    params = dict(run.model.parameters)
    params.update(run.model.buffers)
    sd = {}
    for name, value in params.items():
        prefix, _, leaf = name.rpartition(".")
        prefix += "."
        if leaf == "bias_unused":
            continue  # a linear's "bias": "drawn-unused": drawn, never part of the network
        a = np.array(value, dtype=np.float32)
        if leaf == "weight" and a.ndim == 2 and name != "embedding.weight":
            a = a.T  # nn.Linear: (out, in)
        if leaf == "gamma":
            leaf = "weight"
        elif leaf == "beta":
            leaf = "bias"
        elif leaf == "running_std":
            eps = bn_std.get(prefix, 0.0)
            a = (a.astype(np.float64) ** 2 - eps).astype(np.float32)
            leaf = "running_var"
        sd[prefix + leaf] = torch.from_numpy(np.ascontiguousarray(a))
        if leaf == "running_var":
            sd[prefix + "num_batches_tracked"] = torch.tensor(run.step, dtype=torch.long)
    return sd


def module_for(config, vocab_size):
    """An untrained nn.Module of the network `config` describes (a dict as Config.to_dict() or
    `makemore presets show NAME` writes it), with torch's own initial values: what
    `makemore bench --torch` times, and what to_module fills with a run's parameters."""
    torch, nn, Residual, Flatten, MakemoreMLP = _modules()
    model = config["model"]
    block_size, n_embd = config.get("data", {}).get("block_size", 3), model.get("n_embd", 10)
    layers = model["layers"]
    sequence = bool(layers) and layers[0]["type"] == "flatten"
    time, features = (block_size, n_embd) if sequence else (1, block_size * n_embd)
    mods, _, _ = _build(nn, Residual, Flatten, layers, features, time, vocab_size)
    return MakemoreMLP(vocab_size, n_embd, block_size, mods, sequence)


def to_module(run):
    """An nn.Module computing the run's logits from contexts X (B, block_size): torch.nn's
    Embedding, Linear, BatchNorm1d, LayerNorm, GroupNorm, Tanh, ReLU, GELU, Sigmoid, Dropout, and
    two small modules of its own (Residual: x + f(x); Flatten: consecutive time steps merged).
    Put it in eval mode (.eval()) for the run's evaluation losses."""
    net = module_for(run.config.to_dict(), len(run.vocab))
    net.load_state_dict(state_dict(run), strict=True)
    return net
