#!/usr/bin/python3
"""Write tests/data/torch/layers.json, the PyTorch reference for tests/test_layers.cpp.

usage: /usr/bin/python3 tools/gen_layers_fixture.py [OUT]   (default: tests/data/torch/layers.json)

For each layer beyond the lecture (LayerNorm, GroupNorm, ReLU, GELU both forms, Residual around
Linear + LayerNorm + Tanh, a nested Residual, Sigmoid) one fixed random input x (rows, C), random
parameters (gamma near 1, beta / bias near 0), and a random projection R: the file records
torch's out = layer(x), and the gradients of L = sum(out * R) w.r.t. x and every parameter.
Parameters are named as makemore.cpp names them when the layer is built with the prefix
"layers.0." (a Linear's weight stored (fan_in, fan_out), the lecture's layout). Each case
carries its config spec, so the C++ test builds the layer from the same JSON a user writes.

It also records torch.nn.init.xavier_normal_ / xavier_uniform_ draws on a seeded generator,
for tensors shaped (fan_in, fan_out) as our Linear stores its weight (run with
ATEN_CPU_CAPABILITY=default, set below: the scalar normal kernel).

Inputs and parameters are rounded to 4 significant digits (stored exactly as float32); computed
values are written as the shortest repr that round-trips the float32. Needs python3-torch.
"""
import json
import math
import os
import sys

# The scalar normal kernel, the one our generator reproduces bit for bit (the AVX2 one uses
# Sleef's cos/sin); see docs/rng.md. Must be set before torch loads.
os.environ.setdefault('ATEN_CPU_CAPABILITY', 'default')

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'tests', 'data', 'torch', 'layers.json')
ROWS = 6
C = 12


def f32(x):
    if not np.isfinite(x):
        sys.exit(f'non-finite value {x}')
    return str(np.float32(x))


def round4(t):
    return torch.tensor([float(f'{v:.4g}') for v in t.flatten().tolist()], dtype=torch.float32).view(t.shape)


def tensor_json(t):
    t = t.detach().contiguous()
    return '{"shape": %s, "data": [%s]}' % (json.dumps(list(t.shape)), ', '.join(f32(v) for v in t.flatten().tolist()))


class Builder:
    """Makes named leaf parameters from a generator and runs a forward function over them."""

    def __init__(self, g):
        self.g = g
        self.params = {}

    def param(self, name, t):
        p = round4(t).requires_grad_(True)
        self.params[name] = p
        return p

    def linear(self, prefix, fan_in, fan_out):
        w = self.param(prefix + 'weight', torch.randn((fan_in, fan_out), generator=self.g) / fan_in ** 0.5)
        b = self.param(prefix + 'bias', 0.1 * torch.randn(fan_out, generator=self.g))
        return lambda x: x @ w + b

    def norm(self, prefix, groups, eps, affine):
        if affine:
            gamma = self.param(prefix + 'gamma', 1.0 + 0.3 * torch.randn(C, generator=self.g))
            beta = self.param(prefix + 'beta', 0.3 * torch.randn(C, generator=self.g))
        else:
            gamma = beta = None
        if groups is None:
            return lambda x: F.layer_norm(x, (C,), gamma, beta, eps)
        return lambda x: F.group_norm(x, groups, gamma, beta, eps)


def case(name, spec, make, g):
    b = Builder(g)
    fn = make(b)
    x = round4(1.5 * torch.randn((ROWS, C), generator=g)).requires_grad_(True)
    R = round4(torch.randn((ROWS, C), generator=g))
    params_before = {k: v.detach().clone() for k, v in b.params.items()}
    out = fn(x)
    (out * R).sum().backward()
    grads = {k: v.grad for k, v in b.params.items()}
    return name, spec, x.detach(), params_before, R, out.detach(), x.grad, grads


def residual_lin_ln_tanh(prefix):
    def make(b):
        lin = b.linear(prefix + 'layers.0.', C, C)
        ln = b.norm(prefix + 'layers.1.', None, 1e-5, True)
        return lambda x: x + torch.tanh(ln(lin(x)))
    return make


def nested(b):
    # residual[ linear, relu, residual[ layernorm, gelu(tanh) ], groupnorm(3) ]
    lin = b.linear('layers.0.layers.0.', C, C)
    ln = b.norm('layers.0.layers.2.layers.0.', None, 1e-5, True)
    gn = b.norm('layers.0.layers.3.', 3, 1e-5, True)
    def inner(h):
        return h + F.gelu(ln(h), approximate='tanh')
    return lambda x: x + gn(inner(torch.relu(lin(x))))


def main():
    g = torch.Generator().manual_seed(20251128)
    cases = [
        case('layernorm', {'type': 'layernorm'}, lambda b: b.norm('layers.0.', None, 1e-5, True), g),
        case('layernorm-plain', {'type': 'layernorm', 'affine': False, 'eps': 1e-3},
             lambda b: b.norm('layers.0.', None, 1e-3, False), g),
        case('groupnorm-3', {'type': 'groupnorm', 'groups': 3}, lambda b: b.norm('layers.0.', 3, 1e-5, True), g),
        case('groupnorm-4-plain', {'type': 'groupnorm', 'groups': 4, 'affine': False},
             lambda b: b.norm('layers.0.', 4, 1e-5, False), g),
        case('groupnorm-12', {'type': 'groupnorm', 'groups': 12, 'eps': 0.01},
             lambda b: b.norm('layers.0.', 12, 0.01, True), g),
        case('relu', {'type': 'relu'}, lambda b: torch.relu, g),
        case('gelu', {'type': 'gelu'}, lambda b: F.gelu, g),
        case('gelu-tanh', {'type': 'gelu', 'approximate': 'tanh'}, lambda b: (lambda x: F.gelu(x, approximate='tanh')), g),
        case('residual', {'type': 'residual', 'layers': [{'type': 'linear', 'out': C}, {'type': 'layernorm'}, {'type': 'tanh'}]},
             residual_lin_ln_tanh('layers.0.'), g),
        case('residual-nested', {'type': 'residual', 'layers': [
            {'type': 'linear', 'out': C}, {'type': 'relu'},
            {'type': 'residual', 'layers': [{'type': 'layernorm'}, {'type': 'gelu', 'approximate': 'tanh'}]},
            {'type': 'groupnorm', 'groups': 3}]}, nested, g),
        # New cases go last: each draws from g, so the cases above keep their values.
        case('sigmoid', {'type': 'sigmoid'}, lambda b: torch.sigmoid, g),
    ]
    lines = ['{', '  "generator": "tools/gen_layers_fixture.py, torch %s",' % torch.__version__, '  "cases": [']
    for i, (name, spec, x, params, R, out, dx, grads) in enumerate(cases):
        lines.append('    {')
        lines.append(f'      "name": {json.dumps(name)},')
        lines.append(f'      "spec": {json.dumps(spec)},')
        lines.append(f'      "x": {tensor_json(x)},')
        lines.append(f'      "R": {tensor_json(R)},')
        lines.append(f'      "out": {tensor_json(out)},')
        lines.append(f'      "dx": {tensor_json(dx)},')
        lines.append('      "params": {' + ', '.join(f'{json.dumps(k)}: {tensor_json(v)}' for k, v in params.items()) + '},')
        lines.append('      "grads": {' + ', '.join(f'{json.dumps(k)}: {tensor_json(v)}' for k, v in grads.items()) + '}')
        lines.append('    }' + (',' if i + 1 < len(cases) else ''))
    lines.append('  ],')
    # Xavier draws: torch.nn.init on a (fan_in, fan_out) float tensor after manual_seed(seed).
    inits = []
    for kind, seed, fan_in, fan_out, gain_name, gain in [('xavier-normal', 7, 30, 20, 'tanh', 5 / 3),
                                                        ('xavier-normal', 8, 9, 4, 'linear', 1.0),
                                                        ('xavier-uniform', 9, 30, 20, 'relu', math.sqrt(2.0)),
                                                        ('xavier-uniform', 10, 3, 5, 'linear', 1.0)]:
        gen = torch.manual_seed(seed)
        w = torch.empty(fan_in, fan_out)
        if kind == 'xavier-normal':
            torch.nn.init.xavier_normal_(w, gain=gain)
        else:
            torch.nn.init.xavier_uniform_(w, gain=gain)
        inits.append('    {"kind": %s, "seed": %d, "fan_in": %d, "fan_out": %d, "gain": %s, "w": %s}' % (
            json.dumps(kind), seed, fan_in, fan_out, json.dumps(gain_name), tensor_json(w)))
    lines.append('  "xavier": [')
    lines.append(',\n'.join(inits))
    lines.append('  ]')
    lines.append('}')
    with open(OUT, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print(f'wrote {OUT} ({os.path.getsize(OUT)} bytes)')


if __name__ == '__main__':
    main()
