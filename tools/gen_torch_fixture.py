#!/usr/bin/python3
"""Write the PyTorch reference fixtures for tests/test_torch_reference.cpp.

usage: /usr/bin/python3 tools/gen_torch_fixture.py [OUTDIR]   (default: tests/data/torch)

Needs Debian's python3-torch and numpy; run it with /usr/bin/python3. Each network is written
the way the lecture (makemore part 3) writes it: the single-layer tanh MLP with Kaiming-style
weights, the notebook's hand-rolled BatchNorm (cells 6-10: bngain * (h - mean) / std + bnbias,
unbiased std, no eps, running std with momentum 0.001), and the deep network built from the
lecture's own Linear / BatchNorm1d / Tanh classes (cells 13-20). For one fixed batch each file
records the parameters, the logits, the loss, every gradient, the BatchNorm running statistics
after the step and the parameters after one SGD step (`p.data += -0.1 * p.grad`).

Widths are reduced (n_hidden below) so that each file stays well under 300 KB; the C++ test
builds the model from the named preset and overrides only the hidden width. Parameter values
are rounded to 4 significant digits (then stored exactly as float32), so they print short;
everything computed is printed as the shortest repr that round-trips the float32.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'tests', 'data', 'torch')
VOCAB = 27
BLOCK = 3
N_EMBD = 10
BATCH = 16
LR = 0.1


def f32(x):
    """Shortest decimal string that reads back as the same float32."""
    if not np.isfinite(x):
        sys.exit(f'non-finite value {x}')  # JSON has no NaN / Infinity
    return str(np.float32(x))


def round4(t):
    """Rounds a float32 tensor to 4 significant digits so its repr is short; stays float32."""
    return torch.tensor([float(f'{v:.4g}') for v in t.flatten().tolist()], dtype=torch.float32).view(t.shape)


def tensor_json(t):
    t = t.detach().contiguous()
    return '{"shape": %s, "data": [%s]}' % (json.dumps(list(t.shape)), ', '.join(f32(v) for v in t.flatten().tolist()))


def write_fixture(name, meta, params, buffers_before, logits, loss, grads, buffers_after, params_after):
    """Hand-written JSON: one tensor per line, floats as their float32 shortest repr."""
    lines = ['{']
    for k, v in meta.items():
        lines.append(f'  {json.dumps(k)}: {json.dumps(v)},')

    def section(title, d, last=False):
        lines.append(f'  {json.dumps(title)}: {{')
        items = list(d.items())
        for i, (k, t) in enumerate(items):
            lines.append(f'    {json.dumps(k)}: {tensor_json(t)}' + (',' if i + 1 < len(items) else ''))
        lines.append('  }' + ('' if last else ','))

    section('params', params)
    section('buffers', buffers_before)
    lines.append(f'  "logits": {tensor_json(logits)},')
    lines.append(f'  "loss": {f32(loss.item())},')
    section('grads', grads)
    section('buffers_after', buffers_after)
    section('params_after_sgd', params_after, last=True)
    lines.append('}')
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name + '.json')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print(f'{path}: {os.path.getsize(path)} bytes, loss {loss.item():.6f}')


def batch(g):
    Xb = torch.randint(0, VOCAB, (BATCH, BLOCK), generator=g)
    Yb = torch.randint(0, VOCAB, (BATCH,), generator=g)
    return Xb, Yb


def sgd(parameters):
    for p in parameters:
        p.data += -LR * p.grad


def meta_for(preset, n_hidden, Xb, Yb, description):
    return {
        'description': description,
        'preset': preset,
        'vocab_size': VOCAB,
        'n_hidden': n_hidden,
        'lr': LR,
        'tokens': Xb.flatten().tolist(),
        'targets': Yb.tolist(),
    }


# ---- lecture-kaiming: Linear(+bias) -> tanh -> Linear ------------------------------------
def kaiming_net():
    n_hidden = 64
    g = torch.Generator().manual_seed(2147483647)
    C = round4(torch.randn((VOCAB, N_EMBD), generator=g))
    W1 = round4(torch.randn((N_EMBD * BLOCK, n_hidden), generator=g) * (5 / 3) / ((N_EMBD * BLOCK) ** 0.5))
    b1 = round4(torch.randn(n_hidden, generator=g) * 0.1)  # non-zero so its gradient path matters
    W2 = round4(torch.randn((n_hidden, VOCAB), generator=g) * 0.1)
    b2 = round4(torch.randn(VOCAB, generator=g) * 0.1)
    parameters = [C, W1, b1, W2, b2]
    names = ['embedding.weight', 'layers.0.weight', 'layers.0.bias', 'layers.2.weight', 'layers.2.bias']
    for p in parameters:
        p.requires_grad = True
    Xb, Yb = batch(g)
    params = {n: p.detach().clone() for n, p in zip(names, parameters)}

    emb = C[Xb]
    embcat = emb.view(emb.shape[0], -1)
    hpreact = embcat @ W1 + b1
    h = torch.tanh(hpreact)
    logits = h @ W2 + b2
    loss = F.cross_entropy(logits, Yb)
    for p in parameters:
        p.grad = None
    loss.backward()
    grads = {n: p.grad.clone() for n, p in zip(names, parameters)}
    sgd(parameters)
    after = {n: p.detach().clone() for n, p in zip(names, parameters)}
    meta = meta_for('lecture-kaiming', n_hidden, Xb, Yb,
                    'lecture-kaiming MLP (Linear+bias, tanh, Linear+bias), one SGD step')
    write_fixture('lecture-kaiming', meta, params, {}, logits, loss, grads, {}, after)


# ---- lecture-batchnorm: the notebook's hand-rolled BatchNorm (cells 6-10) -----------------
def batchnorm_net():
    n_hidden = 64
    g = torch.Generator().manual_seed(2147483647 + 1)
    C = round4(torch.randn((VOCAB, N_EMBD), generator=g))
    W1 = round4(torch.randn((N_EMBD * BLOCK, n_hidden), generator=g) * (5 / 3) / ((N_EMBD * BLOCK) ** 0.5))
    W2 = round4(torch.randn((n_hidden, VOCAB), generator=g) * 0.1)
    b2 = round4(torch.randn(VOCAB, generator=g) * 0.1)
    # gain and bias away from 1 and 0 so a swapped or missing term shows
    bngain = round4(1.0 + 0.2 * torch.randn((1, n_hidden), generator=g))
    bnbias = round4(0.2 * torch.randn((1, n_hidden), generator=g))
    # running statistics away from their initial 0 / 1 so the momentum formula is visible
    bnmean_running = round4(0.5 * torch.randn((1, n_hidden), generator=g))
    bnstd_running = round4(1.0 + 0.5 * torch.rand((1, n_hidden), generator=g))
    parameters = [C, W1, W2, b2, bngain, bnbias]
    names = ['embedding.weight', 'layers.0.weight', 'layers.3.weight', 'layers.3.bias', 'layers.1.gamma',
             'layers.1.beta']
    for p in parameters:
        p.requires_grad = True
    Xb, Yb = batch(g)
    params = {n: p.detach().clone() for n, p in zip(names, parameters)}
    buffers = {'layers.1.running_mean': bnmean_running.clone(), 'layers.1.running_std': bnstd_running.clone()}

    emb = C[Xb]
    embcat = emb.view(emb.shape[0], -1)
    hpreact = embcat @ W1  # + b1: the lecture drops it, BatchNorm's bias replaces it
    bnmeani = hpreact.mean(0, keepdim=True)
    bnstdi = hpreact.std(0, keepdim=True)
    hpreact = bngain * (hpreact - bnmeani) / bnstdi + bnbias
    with torch.no_grad():
        bnmean_running = 0.999 * bnmean_running + 0.001 * bnmeani
        bnstd_running = 0.999 * bnstd_running + 0.001 * bnstdi
    h = torch.tanh(hpreact)
    logits = h @ W2 + b2
    loss = F.cross_entropy(logits, Yb)
    for p in parameters:
        p.grad = None
    loss.backward()
    grads = {n: p.grad.clone() for n, p in zip(names, parameters)}
    sgd(parameters)
    after = {n: p.detach().clone() for n, p in zip(names, parameters)}
    buffers_after = {'layers.1.running_mean': bnmean_running, 'layers.1.running_std': bnstd_running}
    meta = meta_for('lecture-batchnorm', n_hidden, Xb, Yb,
                    'lecture-batchnorm: notebook BatchNorm (unbiased std, no eps, momentum 0.001), one SGD step')
    write_fixture('lecture-batchnorm', meta, params, buffers, logits, loss, grads, buffers_after, after)


# ---- lecture-deep: the lecture's classes (cells 13-20) ------------------------------------
class Linear:
    def __init__(self, fan_in, fan_out, g, bias=True):
        self.weight = round4(torch.randn((fan_in, fan_out), generator=g) / fan_in ** 0.5)
        self.bias = round4(0.1 * torch.randn(fan_out, generator=g)) if bias else None

    def __call__(self, x):
        self.out = x @ self.weight
        if self.bias is not None:
            self.out += self.bias
        return self.out

    def parameters(self):
        return [self.weight] + ([] if self.bias is None else [self.bias])

    def names(self, prefix):
        return [prefix + 'weight'] + ([] if self.bias is None else [prefix + 'bias'])


class BatchNorm1d:
    def __init__(self, dim, g, eps=1e-5, momentum=0.1):
        self.eps = eps
        self.momentum = momentum
        self.training = True
        # perturbed from ones / zeros (and the running buffers too) so every term is exercised
        self.gamma = round4(1.0 + 0.2 * torch.randn(dim, generator=g))
        self.beta = round4(0.2 * torch.randn(dim, generator=g))
        self.running_mean = round4(0.3 * torch.randn(dim, generator=g))
        self.running_var = round4(1.0 + 0.5 * torch.rand(dim, generator=g))

    def __call__(self, x):
        if self.training:
            xmean = x.mean(0, keepdim=True)
            xvar = x.var(0, keepdim=True)  # unbiased, as the lecture's class
        else:
            xmean = self.running_mean
            xvar = self.running_var
        xhat = (x - xmean) / torch.sqrt(xvar + self.eps)
        self.out = self.gamma * xhat + self.beta
        if self.training:
            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * xmean
                self.running_var = (1 - self.momentum) * self.running_var + self.momentum * xvar
        return self.out

    def parameters(self):
        return [self.gamma, self.beta]

    def names(self, prefix):
        return [prefix + 'gamma', prefix + 'beta']


class Tanh:
    def __call__(self, x):
        self.out = torch.tanh(x)
        return self.out

    def parameters(self):
        return []

    def names(self, prefix):
        return []


def deep_net():
    n_hidden = 32
    g = torch.Generator().manual_seed(2147483647 + 2)
    C = round4(torch.randn((VOCAB, N_EMBD), generator=g))
    nin = N_EMBD * BLOCK
    layers = [
        Linear(nin, n_hidden, g, bias=False), BatchNorm1d(n_hidden, g), Tanh(),
        Linear(n_hidden, n_hidden, g, bias=False), BatchNorm1d(n_hidden, g), Tanh(),
        Linear(n_hidden, n_hidden, g, bias=False), BatchNorm1d(n_hidden, g), Tanh(),
        Linear(n_hidden, n_hidden, g, bias=False), BatchNorm1d(n_hidden, g), Tanh(),
        Linear(n_hidden, n_hidden, g, bias=False), BatchNorm1d(n_hidden, g), Tanh(),
        Linear(n_hidden, VOCAB, g, bias=False), BatchNorm1d(VOCAB, g),
    ]
    with torch.no_grad():
        layers[-1].gamma *= 0.1  # the lecture: make the last layer less confident
        layers[-1].gamma = round4(layers[-1].gamma)
    parameters = [C] + [p for layer in layers for p in layer.parameters()]
    names = ['embedding.weight'] + [n for i, layer in enumerate(layers) for n in layer.names(f'layers.{i}.')]
    for p in parameters:
        p.requires_grad = True
    Xb, Yb = batch(g)
    params = {n: p.detach().clone() for n, p in zip(names, parameters)}
    bns = [(i, layer) for i, layer in enumerate(layers) if isinstance(layer, BatchNorm1d)]
    buffers = {}
    for i, bn in bns:
        buffers[f'layers.{i}.running_mean'] = bn.running_mean.clone()
        buffers[f'layers.{i}.running_var'] = bn.running_var.clone()

    emb = C[Xb]
    x = emb.view(emb.shape[0], -1)
    for layer in layers:
        x = layer(x)
    logits = x
    loss = F.cross_entropy(logits, Yb)
    for p in parameters:
        p.grad = None
    loss.backward()
    grads = {n: p.grad.clone() for n, p in zip(names, parameters)}
    sgd(parameters)
    after = {n: p.detach().clone() for n, p in zip(names, parameters)}
    buffers_after = {}
    for i, bn in bns:
        buffers_after[f'layers.{i}.running_mean'] = bn.running_mean
        buffers_after[f'layers.{i}.running_var'] = bn.running_var
    meta = meta_for('lecture-deep', n_hidden, Xb, Yb,
                    'lecture-deep: 5 x [Linear, BatchNorm1d, Tanh] + Linear + BatchNorm1d (lecture classes), one SGD step')
    write_fixture('lecture-deep', meta, params, buffers, logits, loss, grads, buffers_after, after)


if __name__ == '__main__':
    torch.set_num_threads(1)  # summation order independent of the machine's core count
    kaiming_net()
    batchnorm_net()
    deep_net()
