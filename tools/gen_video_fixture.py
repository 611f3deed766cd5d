#!/usr/bin/python3
"""Write the PyTorch reference of the lecture video's first three runs (issue 17).

usage: /usr/bin/python3 tools/gen_video_fixture.py [--steps 40001] [--trace 3000] [OUT]
       (default OUT: tests/data/torch/video.json; needs data/names.txt and Debian's python3-torch)

The video's code differs from the published notebook in one line: b1 is drawn from the
generator (so W2 and b2 come later in the stream) but left out of the network,
`hpreact = embcat @ W1  #+ b1`, and `parameters = [C, W1, W2, b2]`. Three runs:
  1 video-original:    every tensor N(0, 1)
  2 video-fix-softmax: W2 * 0.01, b2 * 0
  3 video-fix-tanh:    also W1 * 0.2 (and b1 * 0.02, which changes nothing: b1 is unused)
each trained by the lecture's loop (minibatch indices from the same generator, lr 0.1 below
step 100k). For each run the file records the parameter count, the loss printed every 10k
steps (the 4-decimal string and the full float32), and for runs 2 and 3 the minibatch loss
every 100 steps through --trace steps (tests/test_video.cpp compares makemore's to these).
"""
import argparse
import json
import os
import random

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument('out', nargs='?', default=os.path.join(ROOT, 'tests', 'data', 'torch', 'video.json'))
ap.add_argument('--steps', type=int, default=40001, help='steps per run (the log prints at every 10k)')
ap.add_argument('--trace', type=int, default=3000, help='steps of runs 2 and 3 whose losses are kept every 100')
ap.add_argument('--names', default=os.path.join(ROOT, 'data', 'names.txt'))
args = ap.parse_args()
torch.set_num_threads(1)

words = open(args.names, 'r').read().splitlines()
chars = sorted(list(set(''.join(words))))
stoi = {s: i + 1 for i, s in enumerate(chars)}
stoi['.'] = 0
vocab_size = len(stoi)
block_size = 3


def build_dataset(words):
    X, Y = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + '.':
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(X), torch.tensor(Y)


random.seed(42)
random.shuffle(words)
n1 = int(0.8 * len(words))
Xtr, Ytr = build_dataset(words[:n1])


def run(variant):
    n_embd, n_hidden = 10, 200
    g = torch.Generator().manual_seed(2147483647)
    C = torch.randn((vocab_size, n_embd), generator=g)
    W1 = torch.randn((n_embd * block_size, n_hidden), generator=g)
    b1 = torch.randn(n_hidden, generator=g)  # drawn, never used
    W2 = torch.randn((n_hidden, vocab_size), generator=g)
    b2 = torch.randn(vocab_size, generator=g)
    if variant in ('fix-softmax', 'fix-tanh'):
        W2 = W2 * 0.01
        b2 = b2 * 0
    if variant == 'fix-tanh':
        W1 = W1 * 0.2
        b1 = b1 * 0.02
    parameters = [C, W1, W2, b2]
    for p in parameters:
        p.requires_grad = True
    logged, trace = [], []
    for i in range(args.steps):
        ix = torch.randint(0, Xtr.shape[0], (32,), generator=g)
        Xb, Yb = Xtr[ix], Ytr[ix]
        emb = C[Xb]
        embcat = emb.view(emb.shape[0], -1)
        hpreact = embcat @ W1  # + b1
        h = torch.tanh(hpreact)
        logits = h @ W2 + b2
        loss = F.cross_entropy(logits, Yb)
        for p in parameters:
            p.grad = None
        loss.backward()
        lr = 0.1 if i < 100000 else 0.01
        for p in parameters:
            p.data += -lr * p.grad
        if i % 10000 == 0:
            logged.append({'step': i, 'printed': f'{loss.item():.4f}', 'loss': loss.item()})
            print(f'{variant:12s} {i:7d}/{args.steps:7d}: {loss.item():.4f}', flush=True)
        if i % 100 == 0 and i <= args.trace and variant != 'original':
            trace.append({'step': i, 'loss': loss.item()})
    return {'params': sum(p.nelement() for p in parameters), 'logged': logged, 'trace': trace}


out = {'torch': torch.__version__, 'steps': args.steps,
       'runs': {'video-' + v: run(v) for v in ('original', 'fix-softmax', 'fix-tanh')}}
os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
with open(args.out, 'w') as f:
    json.dump(out, f, indent=1)
    f.write('\n')
print('wrote', args.out)
