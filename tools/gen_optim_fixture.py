#!/usr/bin/python3
"""Write the PyTorch reference fixture for tests/test_optim.cpp.

usage: /usr/bin/python3 tools/gen_optim_fixture.py [OUT]   (default: tests/data/torch/optim.json)

Needs Debian's python3-torch (1.13) and numpy; run it with /usr/bin/python3.

A small fixed "model" (four parameters of odd sizes, so the C++ side's 64-byte padding between
them is exercised) and five fixed gradient sets, some entries exactly zero. For each optimizer
case, torch.optim (single-tensor path: foreach=False) runs five steps: before each step the
gradients are set to the fixed set, optionally clipped with torch.nn.utils.clip_grad_norm_, and
the learning rate of the step is set from torch's own schedulers (LinearLR warmup followed by
CosineAnnealingLR through SequentialLR, or MultiStepLR-like steps written out); the parameter
values after each step are recorded. Each case also carries the makemore config fragments
("optimizer", "lr") that must reproduce it. A longer schedule-only section records the learning
rates torch's schedulers give for 40 steps, and a clipping section the clipped gradients.
"""
import json
import math
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'tests', 'data', 'torch', 'optim.json')
SHAPES = {'w1': (4, 6), 'b1': (6,), 'w2': (6, 3), 'b2': (3,)}
STEPS = 5


def f32(x):
    if not np.isfinite(x):
        sys.exit(f'non-finite value {x}')
    return float(str(np.float32(x)))


def flat(t):
    return [f32(v) for v in t.detach().flatten().tolist()]


g = torch.Generator().manual_seed(1234)


def rnd(shape, scale):
    t = torch.randn(shape, generator=g) * scale
    return torch.tensor([float(f'{v:.4g}') for v in t.flatten().tolist()], dtype=torch.float32).view(shape)


INIT = {k: rnd(s, 0.5) for k, s in SHAPES.items()}
GRADS = []
for step in range(STEPS):
    gs = {k: rnd(s, 0.1 * (step + 1)) for k, s in SHAPES.items()}
    gs['w1'][0, :] = 0.0          # a row that never gets a gradient (an unused embedding row)
    if step == 1:
        gs['b2'][:] = 0.0         # a parameter with an all-zero gradient for one step
    GRADS.append(gs)


def lr_schedule(opt, lr_cfg, total):
    """torch schedulers for our lr config (the makemore fragment); returns a scheduler or None."""
    kind = lr_cfg.get('schedule', 'step') if isinstance(lr_cfg, dict) else 'const'
    if kind == 'const':
        return None
    warmup = lr_cfg.get('warmup', 0)
    if kind == 'cosine':
        cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=lr_cfg.get('min', 0.0))
        if warmup == 0:
            return cos
        # factor (e + 1) / warmup at epoch e < warmup: LinearLR from 1/warmup over warmup-1 epochs
        lin = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / warmup, end_factor=1.0,
                                                total_iters=max(warmup - 1, 1))
        return torch.optim.lr_scheduler.SequentialLR(opt, [lin, cos], milestones=[warmup])
    assert warmup == 0
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=lr_cfg['boundaries'],
                                                gamma=lr_cfg['values'][1] / lr_cfg['values'][0])


def start_lr(lr_cfg):
    if not isinstance(lr_cfg, dict):
        return lr_cfg
    return lr_cfg['max'] if lr_cfg.get('schedule') == 'cosine' else lr_cfg['values'][0]


def make_opt(params, ocfg, lr):
    o = {'type': ocfg} if isinstance(ocfg, str) else dict(ocfg)
    t = o.pop('type')
    if 'betas' in o:
        o['betas'] = tuple(o['betas'])
    cls = {'sgd': torch.optim.SGD, 'rmsprop': torch.optim.RMSprop, 'adam': torch.optim.Adam,
           'adamw': torch.optim.AdamW}[t]
    return cls(params, lr=lr, foreach=False, **o)


CASES = [
    ('sgd', 'sgd', {'values': [0.1, 0.01], 'boundaries': [3]}, 0),
    ('sgd_momentum', {'type': 'sgd', 'momentum': 0.9, 'dampening': 0.1}, 0.05, 0),
    ('sgd_nesterov_wd', {'type': 'sgd', 'momentum': 0.9, 'nesterov': True, 'weight_decay': 0.01},
     {'schedule': 'cosine', 'max': 0.1, 'min': 0.001, 'warmup': 2}, 0),
    ('rmsprop', 'rmsprop', 0.01, 0),
    ('rmsprop_momentum_wd', {'type': 'rmsprop', 'momentum': 0.9, 'weight_decay': 0.01, 'alpha': 0.9}, 0.01, 0),
    ('rmsprop_centered', {'type': 'rmsprop', 'centered': True, 'eps': 1e-6}, 0.001, 0),
    ('adam', 'adam', {'schedule': 'cosine', 'max': 0.01, 'min': 0.0, 'warmup': 2}, 0),
    ('adam_wd', {'type': 'adam', 'weight_decay': 0.1, 'betas': [0.8, 0.99]}, 0.01, 0),
    ('adam_amsgrad', {'type': 'adam', 'amsgrad': True}, 0.001, 0),
    ('adamw', 'adamw', 0.01, 0),
    ('adamw_wd_cosine_clip', {'type': 'adamw', 'weight_decay': 0.1, 'eps': 1e-6},
     {'schedule': 'cosine', 'max': 0.02, 'min': 0.002, 'warmup': 0}, 0.5),
    ('sgd_clip', 'sgd', 0.1, 0.3),
]


def run_case(name, ocfg, lr_cfg, clip):
    params = {k: v.clone().requires_grad_(True) for k, v in INIT.items()}
    opt = make_opt(list(params.values()), ocfg, start_lr(lr_cfg))
    sched = lr_schedule(opt, lr_cfg, STEPS)
    lrs, after = [], []
    for step in range(STEPS):
        for k, p in params.items():
            p.grad = GRADS[step][k].clone()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(list(params.values()), clip)
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        if sched is not None:
            sched.step()
        after.append({k: flat(p) for k, p in params.items()})
    return {'name': name, 'optimizer': ocfg, 'lr': lr_cfg, 'clip_grad_norm': clip, 'steps': STEPS,
            'lrs': lrs, 'params_after': after}


def schedule_only(lr_cfg, total):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=start_lr(lr_cfg))
    sched = lr_schedule(opt, lr_cfg, total)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    return {'lr': lr_cfg, 'steps': total, 'lrs': lrs}


def clip_case(scale, max_norm):
    params = {k: v.clone().requires_grad_(True) for k, v in INIT.items()}
    for k, p in params.items():
        p.grad = GRADS[2][k].clone() * scale
    norm = torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm)
    return {'scale': scale, 'max_norm': max_norm, 'norm': float(norm), 'grads': {k: flat(p.grad) for k, p in params.items()}}


def main():
    import warnings
    warnings.filterwarnings('ignore')  # SequentialLR passes an epoch to step(): deprecated, still exact
    torch.set_num_threads(1)
    out = {
        'torch': torch.__version__,
        'shapes': {k: list(s) for k, s in SHAPES.items()},
        'init': {k: flat(v) for k, v in INIT.items()},
        'grads': [{k: flat(v) for k, v in gs.items()} for gs in GRADS],
        'cases': [run_case(*c) for c in CASES],
        'schedules': [schedule_only({'schedule': 'cosine', 'max': 0.1, 'min': 0.01, 'warmup': 10}, 40),
                      schedule_only({'schedule': 'cosine', 'max': 0.05, 'min': 0.0, 'warmup': 0}, 40),
                      schedule_only({'values': [0.1, 0.01], 'boundaries': [25]}, 40)],
        'clip': [clip_case(10.0, 1.0), clip_case(1.0, 100.0)],
    }
    # Our documented formula, checked here against torch's schedulers so the fixture is sound.
    for s in out['schedules']:
        c = s['lr']
        if c.get('schedule') != 'cosine':
            continue
        W, T = c['warmup'], s['steps']
        for i, lr in enumerate(s['lrs']):
            base = c['min'] + 0.5 * (c['max'] - c['min']) * (1 + math.cos(math.pi * max(0, i - W) / (T - W)))
            mine = base * (i + 1) / W if i < W else base
            assert abs(mine - lr) <= 1e-12 * max(1e-3, abs(lr)), (i, mine, lr)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    text = json.dumps(out, separators=(',', ':'))
    with open(OUT, 'w') as f:
        f.write(text + '\n')
    print(f'{OUT}: {len(text)} bytes')


if __name__ == '__main__':
    main()
