"""Shared by bench/calibrators.py and bench/compare_calibrators.py: the test-set numbers
both compute on calibrated probabilities (plain numpy)."""
import numpy as np


def as_probs(p):
    """(N,) p(class 1) or (N, K) -> (N, K) float64."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    return p


def summary(p, y):
    """Test-set numbers on calibrated probabilities (our own plain numpy)."""
    p = as_probs(p)
    bad = ~np.all(np.isfinite(p), axis=1)
    q = np.where(bad[:, None], 1.0 / p.shape[1], p)
    py = np.clip(q[np.arange(len(y)), y], 1e-12, 1.0)
    conf = q.max(axis=1)
    correct = (q.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, 16)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, 14)  # (e_i, e_i+1], 0 in bin 0
    ece = 0.0
    for b in range(15):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return {"nll": float(-np.log(py).mean()), "accuracy": float(correct.mean()),
            "ece15_top_label": float(ece), "nonfinite_rows": int(bad.sum()),
            "row_sum_max_dev": float(np.abs(np.nansum(p, axis=1) - 1.0).max())}
