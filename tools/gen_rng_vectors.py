#!/usr/bin/python3
"""Write the multinomial / interleaving / shuffle-permutation vectors for tests/test_rng.cpp.

usage: /usr/bin/python3 tools/gen_rng_vectors.py [OUTDIR]   (default: tests/data/rng)

Needs Debian's python3-torch (1.13.1) and numpy; run it with /usr/bin/python3. Besides writing
the files it checks, against torch itself, the model of exponential_ that src/rng.cpp uses, so
a torch whose exponential_ draws differently fails here rather than in the C++ tests.
"""
import math
import os
import random
import struct
import sys

# randn(20) below must come from the scalar kernel, which the C++ side reproduces bit for bit;
# torch reads this the first time it dispatches, so set it before importing torch.
os.environ.setdefault('ATEN_CPU_CAPABILITY', 'default')

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'tests', 'data', 'rng')
os.makedirs(OUT, exist_ok=True)
SEED = 2147483647
SAMPLE_SEED = SEED + 10  # the lecture's sampling generator


def dump(name, lines, header):
    with open(os.path.join(OUT, name), 'w') as f:
        f.write('# ' + header + '\n')
        for v in lines:
            f.write((repr(float(v)) if isinstance(v, float) else str(v)) + '\n')
    print(f'{name}: {len(lines)} lines')


def tl(t):  # float32 tensor -> python floats (exact, repr round-trips)
    return [float(x) for x in t.flatten().tolist()]


# --- the probability rows: float32 values, written exactly --------------------------------
# A softmax-like row over 27 characters, and the same row with a few categories at zero.
logits = torch.tensor([math.sin(1.7 * i) * 2.0 + 0.1 * i for i in range(27)], dtype=torch.float32)
probs = torch.softmax(logits, dim=0)
probs_zero = probs.clone()
probs_zero[[0, 3, 4, 10, 26]] = 0.0
probs_zero = probs_zero / probs_zero.sum()
dump('multinomial_probs27.txt', tl(probs), 'float32 probs row: softmax([sin(1.7 i) * 2 + 0.1 i for i in 0..26])')
dump('multinomial_probs27_zeros.txt', tl(probs_zero),
     'float32 probs row: multinomial_probs27 with [0,3,4,10,26] set to 0, renormalised')

# --- torch.multinomial(p, 1): 200 draws from one generator ---------------------------------
# The lecture samples with the default replacement=False (exponential_ + argmax, what
# TorchGenerator::multinomial1 reproduces). replacement=True is a different algorithm in torch
# 1.13.1 (one double uniform per sample, inverse CDF); its vectors are written too, suffix _repl.
for src, p in (('multinomial_probs27', probs), ('multinomial_probs27_zeros', probs_zero)):
    for repl in (False, True):
        g = torch.Generator().manual_seed(SAMPLE_SEED)
        draws = [torch.multinomial(p.view(1, 27), num_samples=1, replacement=repl, generator=g).item()
                 for _ in range(200)]
        name = f'{src}_seed{SAMPLE_SEED}_200{"_repl" if repl else ""}.txt'
        dump(name, draws, f'g=manual_seed({SAMPLE_SEED}); 200 x torch.multinomial({src}.view(1,27), '
             f'num_samples=1, replacement={repl}, generator=g).item()')

# --- interleaving: randn (both paths), multinomial and randint share one stream ------------
g = torch.Generator().manual_seed(SAMPLE_SEED)
seq = []
seq += [f'randn {x!r}' for x in tl(torch.randn(5, generator=g))]
seq += [f'multinomial {torch.multinomial(probs, 1, generator=g).item()}']
seq += [f'randint {x}' for x in torch.randint(0, 27, (3,), generator=g).tolist()]
seq += [f'randn {x!r}' for x in tl(torch.randn(3, generator=g))]  # starts with the kept spare
seq += [f'multinomial {torch.multinomial(probs_zero, 1, generator=g).item()}']
seq += [f'randn {x!r}' for x in tl(torch.randn(20, generator=g))]  # block path (scalar kernel)
seq += [f'multinomial {torch.multinomial(probs, 1, generator=g).item()}']
seq += [f'randint {x}' for x in torch.randint(0, 182625, (4,), generator=g).tolist()]
seq += [f'randn {x!r}' for x in tl(torch.randn(1, generator=g))]
seq += [f'multinomial {torch.multinomial(probs, 1, generator=g).item()}']
dump('interleaved_seed2147483657.txt', seq,
     f'g=manual_seed({SAMPLE_SEED}); randn(5), multinomial(probs27,1), randint(0,27,(3,)), randn(3), '
     'multinomial(probs27_zeros,1), randn(20), multinomial(probs27,1), randint(0,182625,(4,)), randn(1), '
     'multinomial(probs27,1); lines are "<op> <value>" (randn(20): scalar kernel, ATEN_CPU_CAPABILITY=default)')

# --- random.seed(42); random.shuffle(range(32033)): the permutation behind words_shuffled_* --
perm = list(range(32033))
random.seed(42)
random.shuffle(perm)
dump('shuffle_perm_seed42_32033.txt', perm,
     'random.seed(42); p = list(range(32033)); random.shuffle(p); p (shuffled[i] = original[p[i]])')
# randbelow beyond 32 bits: Python builds getrandbits(k > 32) from 32-bit words, low word first
random.seed(42)
big = [random.randrange(n) for n in (2**32 + 15, 2**40 + 3, 2**63 + 5, 2**64 - 1, 2**33)]
dump('py_random_seed42_randbelow_big.txt', big,
     'random.seed(42); [random.randrange(n) for n in (2**32+15, 2**40+3, 2**63+5, 2**64-1, 2**33)]')


# --- check the exponential_ model used by src/rng.cpp --------------------------------------
# torch 1.13.1 without MKL (Debian's build): per element, u = uniform double from random64()
# (53 bits), e = (float)(-1/lambda * log(1 - u)); multinomial(p, 1) = argmax(p / e) in float.
def init_genrand(s):
    mt = [s & 0xffffffff]
    for i in range(1, 624):
        mt.append((1812433253 * (mt[-1] ^ (mt[-1] >> 30)) + i) & 0xffffffff)
    return mt


r = random.Random()
r.setstate((3, tuple(init_genrand(SAMPLE_SEED)) + (624,), None))
g = torch.Generator().manual_seed(SAMPLE_SEED)
got = tl(torch.empty(1000).exponential_(1, generator=g))
want = []
for _ in range(1000):
    hi = r.getrandbits(32)
    lo = r.getrandbits(32)
    u = ((hi << 32 | lo) & ((1 << 53) - 1)) * 2.0**-53
    want.append(struct.unpack('f', struct.pack('f', -1.0 / 1.0 * math.log(1.0 - u)))[0])
assert got == want, 'torch exponential_ does not match the random64 / -log(1-u) model'
# ... and the multinomial draws follow argmax(p / e) over the same stream
r.setstate((3, tuple(init_genrand(SAMPLE_SEED)) + (624,), None))
g = torch.Generator().manual_seed(SAMPLE_SEED)
pn = probs.numpy()
for _ in range(200):
    e = []
    for _ in range(27):
        hi = r.getrandbits(32)
        lo = r.getrandbits(32)
        u = ((hi << 32 | lo) & ((1 << 53) - 1)) * 2.0**-53
        e.append(-math.log(1.0 - u))
    q = pn / np.array(e, dtype=np.float32)
    assert int(np.argmax(q)) == torch.multinomial(probs, 1, generator=g).item()
print('exponential_ / multinomial model verified against torch', torch.__version__)


# --- check the replacement=True model (documentation only; not used by src/rng.cpp) ---------
# Per row: float cumulative sums, divided by the float sum, last entry forced to 1; per sample
# one 53-bit double uniform u and the first index whose cumulative value is >= u (binary search).
def multinomial_repl(pn, rr):
    cum = np.cumsum(pn, dtype=np.float32)
    cum = (cum / cum[-1]).astype(np.float32)
    cum[-1] = 1.0
    hi = rr.getrandbits(32)
    lo = rr.getrandbits(32)
    u = ((hi << 32 | lo) & ((1 << 53) - 1)) * 2.0**-53
    left, right = 0, len(cum)
    while right > left:
        mid = left + (right - left) // 2
        if float(cum[mid]) < u:
            left = mid + 1
        else:
            right = mid
    return left


for p in (probs, probs_zero):
    r.setstate((3, tuple(init_genrand(SAMPLE_SEED)) + (624,), None))
    g = torch.Generator().manual_seed(SAMPLE_SEED)
    for _ in range(500):
        assert multinomial_repl(p.numpy(), r) == torch.multinomial(p, 1, True, generator=g).item()
print('replacement=True inverse-CDF model verified')
