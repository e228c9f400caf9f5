"""Make the small real example that ships with mbls: logits of a real classifier on real data.

Data: scikit-learn's bundled "digits" set (1,797 8x8 handwritten digits, 10 classes; BSD-3;
Debian package python3-sklearn, file sklearn/datasets/data/digits.csv.gz).
Model: a 64-128-10 MLP trained with plain full-batch gradient descent and no regularisation
until it overfits, so that its test predictions are over-confident (as deep networks are).
Split (seeded): 300 train / 700 validation / 797 test (a small training set, so that the
network overfits and is over-confident).

Writes val.npz and test.npz (keys `logits` float32 N x 10, `labels` int64 N), the layout that
the MbLS reference's `save_logits` writes. Usage:

    python3 make_logits.py path/to/digits.csv.gz
"""
import gzip
import sys

import numpy as np

path = sys.argv[1]
with gzip.open(path, "rt") as f:
    data = np.loadtxt(f, delimiter=",")
x = data[:, :64].astype(np.float64) / 16.0
y = data[:, 64].astype(np.int64)

rng = np.random.RandomState(0)
perm = rng.permutation(len(y))
tr, va, te = perm[:300], perm[300:1000], perm[1000:]

w1 = rng.randn(64, 128) * np.sqrt(2.0 / 64)
b1 = np.zeros(128)
w2 = rng.randn(128, 10) * np.sqrt(1.0 / 128)
b2 = np.zeros(10)


def forward(xb):
    h = np.maximum(xb @ w1 + b1, 0.0)
    return h, h @ w2 + b2


onehot = np.eye(10)[y[tr]]
lr = 0.5
for step in range(5000):
    h, z = forward(x[tr])
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    g = (p - onehot) / len(tr)
    gw2 = h.T @ g
    gb2 = g.sum(0)
    gh = (g @ w2.T) * (h > 0)
    gw1 = x[tr].T @ gh
    gb1 = gh.sum(0)
    w1 -= lr * gw1
    b1 -= lr * gb1
    w2 -= lr * gw2
    b2 -= lr * gb2

for name, idx in (("val", va), ("test", te)):
    _, z = forward(x[idx])
    np.savez(name + ".npz", logits=z.astype(np.float32), labels=y[idx])
    acc = (z.argmax(1) == y[idx]).mean()
    print(f"{name}: {len(idx)} samples, accuracy {acc:.4f}")
