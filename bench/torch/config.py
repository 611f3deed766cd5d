#!/usr/bin/python3
"""Any makemore network as a PyTorch twin, for `makemore bench --torch`: the config's network built
from torch.nn's standard layers (Embedding, Linear, BatchNorm1d, LayerNorm, GroupNorm, Tanh, ReLU,
GELU, Sigmoid, Dropout; a residual block is x + f(x); a flatten merges consecutive positions) and
trained with torch.optim's optimizer of the config on random minibatches of the word list, one
thread. It times the step as PyTorch users write it; its numbers are not makemore's (other
initial values, another split), only its work per step is the same.

usage: /usr/bin/python3 config.py --config FILE.json [--steps N] [--max-seconds S] [--threads N]
                                  [--names PATH]
  FILE.json: the config as `makemore presets show NAME` writes it (no // comments).
  Prints `TIMING ... steps/s=X`; stops after --steps steps or --max-seconds seconds, whichever first.
"""
import argparse, importlib.util, json, os, random, sys, time
import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument('--config', required=True)
ap.add_argument('--steps', type=int, default=1000)
ap.add_argument('--max-seconds', type=float, default=0.0, help='0: no time limit')
ap.add_argument('--threads', type=int, default=1)
ap.add_argument('--names', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'data', 'names.txt'))
args = ap.parse_args()
if args.threads > 0:
    torch.set_num_threads(args.threads)
cfg = json.load(open(args.config))
model_cfg, train_cfg = cfg['model'], cfg.get('train', {})
block_size = cfg.get('data', {}).get('block_size', 3)
batch_size = train_cfg.get('batch_size', 32)

# ---- data: every (context, next character) pair of the words, the lecture's way ------------------
words = [w for w in open(args.names, encoding='utf-8').read().splitlines() if w]
chars = sorted(set(''.join(words)))
stoi = {s: i + 1 for i, s in enumerate(chars)}
vocab_size = len(chars) + 1
random.seed(cfg.get('data', {}).get('split_seed', 42))
random.shuffle(words)
X, Y = [], []
for w in words[:int(0.8 * len(words))]:
    context = [0] * block_size
    for ch in w + '.':
        ix = stoi.get(ch, 0)
        X.append(context)
        Y.append(ix)
        context = context[1:] + [ix]
Xtr, Ytr = torch.tensor(X), torch.tensor(Y)


# ---- the network: makemore.torch's twin of the config (that file alone: no compiled module needed) --
spec = importlib.util.spec_from_file_location(
    'makemore_torch', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'python', 'makemore', 'torch.py'))
mm_torch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mm_torch)
try:
    net = mm_torch.module_for(cfg, vocab_size)
except ValueError as e:  # "model.layers: a 'x' layer has no PyTorch counterpart ..."
    sys.exit(f'config.py: {str(e).split(": ", 1)[-1].split(" has no")[0]} has no PyTorch twin')
params = list(net.parameters())

opt_cfg = train_cfg.get('optimizer', 'sgd')
if isinstance(opt_cfg, str):
    opt_cfg = {'type': opt_cfg}
kind = opt_cfg.get('type', 'sgd')
lr_cfg = train_cfg.get('lr', 0.1)
lr0 = lr_cfg if isinstance(lr_cfg, (int, float)) else (lr_cfg.get('values') or [lr_cfg.get('max', 0.1)])[0]
settings = {k: v for k, v in opt_cfg.items() if k != 'type'}
if 'betas' in settings:
    settings['betas'] = tuple(settings['betas'])
optimizer = {'sgd': torch.optim.SGD, 'rmsprop': torch.optim.RMSprop, 'adam': torch.optim.Adam,
             'adamw': torch.optim.AdamW}[kind](params, lr=lr0, **settings)
clip = train_cfg.get('clip_grad_norm', 0)

# ---- the timed loop -------------------------------------------------------------------------------
g = torch.Generator().manual_seed(train_cfg.get('seed', 2147483647))
t0 = time.perf_counter()
steps = 0
while steps < args.steps:
    ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)
    loss = F.cross_entropy(net(Xtr[ix]), Ytr[ix])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()
    steps += 1
    if args.max_seconds > 0 and time.perf_counter() - t0 > args.max_seconds:
        break
dt = time.perf_counter() - t0
print(f'TIMING config={cfg.get("name", "custom")} threads={torch.get_num_threads()} steps={steps} '
      f'wall={dt:.3f}s steps/s={steps / dt:.1f} last loss {loss.item():.4f}')
