"""Golden vectors: other libraries' calibration-error conventions on fixed inputs.

Builds two seeded float32 inputs (a 10-class "multiclass" case and a "binary" p(positive)
case, both salted with values that sit exactly on, or one float32 ulp either side of, the
10- and 15-bin edges, plus exact 0.0 and 1.0) and records what torchmetrics, netcal,
scikit-learn, relplot and uncertainty-calibration report on them, together with our own
plain-numpy KS calibration error (Gupta et al. 2021). The result is
crates/plain/mbls-metrics/tests/data/compat_parity.json, read by the Rust tests.

Inputs are written as the shortest decimal that gives the float32 back (parse as f64, cast
to f32); labels as ints. Outputs are f64 (repr round-trips).

Run it through bench/compat_parity.sh, which pins the library versions.
    python bench/compat_parity.py [--out PATH] [--allow-version-mismatch]
"""
import argparse
import importlib.metadata as md
import json
import os
import sys
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402

PINNED = {
    "torch": "2.11.0",
    "torchmetrics": "1.9.0",
    "netcal": "1.4.0",
    "scikit-learn": "1.9.1",
    "relplot": "1.0.3",
    "uncertainty-calibration": "0.1.4",
}
F32 = np.float32
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "crates/plain/mbls-metrics/tests/data/compat_parity.json")


# ----------------------------------------------------------------------------- inputs

def torch_linspace_f32(n):
    """torch.linspace(0, 1, n + 1, dtype=float32) as the CPU kernel computes it: step in f32,
    first half start + step*i, second half end - step*(steps-1-i), each a single rounding
    (fused multiply-add). Checked against torch below."""
    step = float(F32(1) / F32(n))
    steps = n + 1
    half = steps // 2
    return np.array([F32(step * i) if i < half else F32(1.0 - step * (steps - 1 - i))
                     for i in range(steps)], dtype=F32)


def edge_values(min_value):
    """float32 values at and around every interior edge k/n for n in 5, 10, 15: f32(k/n),
    the f32 neighbours either side of it, and torch's float32 linspace value."""
    vals = set()
    for n in (5, 10, 15):
        tl = torch_linspace_f32(n)
        for k in range(1, n):
            e = F32(k / n)
            for v in (e, np.nextafter(e, F32(0)), np.nextafter(e, F32(1)), tl[k]):
                if v > min_value:
                    vals.add(float(v))
    return sorted(vals)


def softmax64(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def top_accuracy(c):
    """P(top label correct | confidence c): off the diagonal by +-0.1, the sign flipping at
    every tenth, so neighbouring 10-bins have residuals of opposite sign and moving an
    edge sample across an edge changes even the L1 ECE. Exactly 1.0 gets 0.8, against the
    positive residual of [0.9, 1), so whether 1.0 has a bin of its own shows in L1 too."""
    flip = np.where(np.floor(c * 10.0) % 2 == 1, 1.0, -1.0)
    return np.where(c == 1.0, 0.8, np.clip(c + 0.1 * flip, 0.0, 1.0))


def positive_rate(p):
    """P(y = 1 | p) for the binary case: the same, with the sign flipping every fifteenth."""
    flip = np.where(np.floor(p * 15.0) % 2 == 0, 1.0, -1.0)
    return np.where(p == 1.0, 0.8, np.clip(p + 0.08 * flip, 0.0, 1.0))


def make_multiclass(n=1500, k=10, seed=20240611):
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.uniform(np.log(0.1), np.log(10.0), n))
    logits = rng.standard_normal((n, k)) * scales[:, None]
    probs = softmax64(logits).astype(F32)

    row = 0
    # rows with exactly 1.0 on one class (and exact zeros elsewhere)
    for _ in range(40):
        probs[row] = 0.0
        probs[row, int(rng.integers(k))] = 1.0
        row += 1
    # rows whose top-label confidence sits on / next to a bin edge (or just below 1.0)
    tops = edge_values(0.11) + [float(np.nextafter(F32(1), F32(0)))]
    for c in tops:
        for _ in range(3):
            j = int(rng.integers(k))
            for _try in range(1000):
                rest = (1.0 - c) * rng.dirichlet(np.full(k - 1, 3.0))
                if rest.astype(F32).max() < F32(c):
                    break
            else:
                raise RuntimeError(f"could not fill a row with top {c}")
            r = np.insert(rest, j, 0.0).astype(F32)
            r[j] = F32(c)
            probs[row] = r
            row += 1
    probs = probs[rng.permutation(n)]
    # the top label must be unique in every row, so argmax conventions cannot matter
    s = np.sort(probs, axis=1)
    assert (s[:, -1] > s[:, -2]).all(), "tie for the top label"
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    top = probs.argmax(axis=1)
    correct = rng.random(n) < top_accuracy(probs.max(axis=1).astype(np.float64))
    other = (top + 1 + rng.integers(0, k - 1, n)) % k
    labels = np.where(correct, top, other).astype(np.int64)
    return probs, labels


def make_binary(n=1000, seed=20240612):
    rng = np.random.default_rng(seed)
    special = [0.0] * 25 + [1.0] * 25
    special += [float(np.nextafter(F32(0), F32(1))), 1e-7, float(np.nextafter(F32(1), F32(0)))] * 2
    for v in edge_values(0.0):
        special += [v, v]
    m = n - len(special)
    p = np.concatenate([
        np.asarray(special, dtype=F32),
        rng.uniform(0.0, 1.0, m - 200).astype(F32),
        rng.beta(0.5, 0.5, 200).astype(F32),
    ])
    labels = (rng.random(n) < positive_rate(p.astype(np.float64))).astype(np.int64)
    perm = rng.permutation(n)
    return p[perm], labels[perm]


def f32_token(x):
    """Shortest decimal that parses (as f64, then cast to f32) back to this float32."""
    x = F32(x)
    s = str(x)
    if F32(float(s)) != x or np.signbit(x):
        s = repr(float(x))
        assert F32(float(s)) == x
    return s


def f32_list(a):
    a = np.asarray(a, dtype=F32)
    if a.ndim == 1:
        return "[" + ",".join(f32_token(v) for v in a) + "]"
    return "[" + ",".join(f32_list(r) for r in a) + "]"


# ----------------------------------------------------------------------------- helpers

def fl(x):
    x = float(x)
    return None if not np.isfinite(x) else x


def ks_error(conf, correct):
    """KS calibration error (Gupta et al. 2021): sort by confidence, cumulate
    (correct - confidence)/N, take the largest |prefix|. Ties: "stable" keeps input order and
    takes the max over every prefix; "tie_ends" only looks at the end of each run of equal
    confidences (order-free)."""
    conf = np.asarray(conf, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    order = np.argsort(conf, kind="stable")
    c, y = conf[order], y[order]
    d = np.cumsum(y - c) / len(c)
    ends = np.append(c[1:] != c[:-1], True)
    return {"stable": float(np.abs(d).max()), "tie_ends": float(np.abs(d[ends]).max())}


# ----------------------------------------------------------------------------- libraries

def run_torchmetrics(case, x, y):
    import torch
    from torchmetrics.functional.classification import (
        binary_calibration_error, multiclass_calibration_error)
    from torchmetrics.utilities.compute import normalize_logits_if_needed
    torch.set_num_threads(1)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    out = {}
    if case == "multiclass":
        out["normalization_applied"] = not torch.equal(normalize_logits_if_needed(tx, "softmax"), tx)
        conf = tx.max(dim=1).values
        fn = lambda nb, norm: multiclass_calibration_error(tx, ty, num_classes=x.shape[1],
                                                            n_bins=nb, norm=norm)
    else:
        out["normalization_applied"] = not torch.equal(normalize_logits_if_needed(tx, "sigmoid"), tx)
        conf = tx
        fn = lambda nb, norm: binary_calibration_error(tx, ty, n_bins=nb, norm=norm)
    for nb in (10, 15):
        b = torch.linspace(0, 1, nb + 1, dtype=torch.float32)
        assert np.array_equal(b.numpy(), torch_linspace_f32(nb)), "linspace emulation is off"
        idx = torch.bucketize(conf, b, right=True) - 1
        out[f"bin_boundaries_{nb}"] = [float(v) for v in b]
        out[f"bin_counts_{nb}"] = torch.bincount(idx, minlength=nb + 1).tolist()
        for norm in ("l1", "l2", "max"):
            out[f"{norm}_{nb}"] = fl(fn(nb, norm))
    return out


def run_netcal(case, x, y):
    from netcal.metrics import ACE, ECE, MCE
    out = {}
    for dtype in ("f32", "f64"):
        xx = x if dtype == "f32" else x.astype(np.float64)
        r = {}
        for nb in (10, 15):
            r[f"ece_{nb}"] = fl(ECE(bins=nb).measure(xx, y))
            r[f"mce_{nb}"] = fl(MCE(bins=nb).measure(xx, y))
            r[f"ace_{nb}"] = fl(ACE(bins=nb).measure(xx, y))
            r[f"ece_equal_mass_{nb}"] = fl(ECE(bins=nb, equal_intervals=False).measure(xx, y))
            r[f"mce_equal_mass_{nb}"] = fl(MCE(bins=nb, equal_intervals=False).measure(xx, y))
            r[f"ace_equal_mass_{nb}"] = fl(ACE(bins=nb, equal_intervals=False).measure(xx, y))
        out[dtype] = r
    # where netcal's two binnings disagree (counts from np.histogramdd with f64 edges, means
    # from scipy binned_statistic_dd with edges cast to the sample dtype): own replication
    conf = x.max(axis=1) if case == "multiclass" else x
    eps = np.finfo(F32).eps
    c = np.clip(conf, eps, 1 - eps)
    for nb in (10, 15):
        e64 = np.linspace(0.0, 1.0, nb + 1)
        a = np.searchsorted(e64, c.astype(np.float64), side="right")
        b = np.digitize(c, e64.astype(F32))
        out[f"f32_samples_binned_differently_{nb}"] = int((a != b).sum())
    return out


def run_sklearn(case, conf, correct):
    import sklearn.calibration as skc
    import sklearn.metrics as skm
    out = {"calibration_error_functions": sorted(
        n for n in dir(skm) + dir(skc) if "calibration_error" in n or n.endswith("_ece"))}
    n = len(conf)
    for strategy in ("uniform", "quantile"):
        for nb in (5, 10, 15):
            pt, pp = skc.calibration_curve(correct, conf, n_bins=nb, strategy=strategy)
            # replicate the binning to get the per-bin counts (and check the replication)
            if strategy == "quantile":
                bins = np.percentile(conf, np.linspace(0, 1, nb + 1) * 100)
            else:
                bins = np.linspace(0.0, 1.0, nb + 1)
            ids = np.searchsorted(bins[1:-1], conf)
            tot = np.bincount(ids, minlength=nb)
            nz = tot != 0
            assert np.array_equal(pt, np.bincount(ids, weights=correct, minlength=nb)[nz] / tot[nz])
            assert np.array_equal(pp, np.bincount(ids, weights=conf, minlength=nb)[nz] / tot[nz])
            cnt = tot[nz]
            out[f"{strategy}_{nb}"] = {
                "bin_edges": [float(v) for v in bins],
                "prob_true": [float(v) for v in pt],
                "prob_pred": [float(v) for v in pp],
                "counts": [int(v) for v in cnt],
                "ece": float(np.sum(cnt * np.abs(pt - pp)) / n),
            }
    return out


def run_relplot(case, conf, correct):
    import relplot
    from relplot import metrics as rm
    f = np.asarray(conf, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    val, sigma = relplot.smECE(f, y, return_width=True)
    # the bandwidth search, step by step (same predicate as relplot.metrics.smECE)
    trace = []
    s_hi, s_lo = 1.0, 0.0
    e = rm.smooth_ece(f, y, 1.0)
    trace.append([1.0, float(e)])
    if not (1.0 < 0.001 or 1.0 < e):
        for _ in range(10):
            mid = (s_hi + s_lo) / 2
            e = rm.smooth_ece(f, y, mid)
            trace.append([mid, float(e)])
            if mid < 0.001 or mid < e:
                s_lo = mid
            else:
                s_hi = mid
    out = {
        "smece": float(val), "sigma": float(sigma), "search_trace": trace,
        "smece_sigma_0_05": float(relplot.smECE_sigma(f, y, 0.05)),
        # same call on float32 confidences and int labels, as a caller might pass them
        "smece_f32_input": float(relplot.smECE(np.asarray(conf, dtype=F32),
                                               np.asarray(correct, dtype=np.int64))),
    }
    for nb in (10, 15):
        out[f"binned_ece_{nb}"] = float(rm.binnedECE(f, y, nbins=nb))
    return out


def run_uncertainty_calibration(case, x, y):
    import calibration as cal
    out = {"is_discrete": bool(cal.utils.is_discrete(x))}
    modes = ("marginal", "top-label") if case == "multiclass" else ("binary",)
    for mode in modes:
        m = "marginal" if mode == "binary" else mode
        r = {}
        for p in (1, 2):
            for debias in (False, True):
                np.random.seed(0)  # p=1 with debias draws 1000 Gaussian resamples
                try:
                    v = fl(cal.get_calibration_error(x, y, p=p, debias=debias, mode=m))
                except ValueError as err:
                    v = f"ValueError: {err}"
                r[f"p{p}_{'debiased' if debias else 'plugin'}"] = v
        for nb in (10, 15):
            r[f"ece_{nb}"] = fl(cal.get_ece(x, y, num_bins=nb, mode=m))
            r[f"ece_em_{nb}"] = fl(cal.get_ece_em(x, y, num_bins=nb, mode=m))
            for debias in (False, True):
                r[f"p2_{'debiased' if debias else 'plugin'}_equal_width_{nb}"] = fl(
                    cal.lower_bound_scaling_ce(x, y, p=2, debias=debias, num_bins=nb,
                                               binning_scheme=cal.get_equal_prob_bins, mode=m))
        out[mode.replace("-", "_")] = r
    conf = x.max(axis=1) if case == "multiclass" else x
    out["equal_mass_bins_15"] = [float(v) for v in cal.get_equal_bins(list(conf), num_bins=15)]
    out["p1_debiased_is_stochastic"] = True
    return out


# ----------------------------------------------------------------------------- main

def versions():
    return {k: md.version(k) for k in PINNED} | {"numpy": np.__version__,
                                                 "scipy": md.version("scipy"),
                                                 "python": sys.version.split()[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--allow-version-mismatch", action="store_true")
    args = ap.parse_args()
    ver = versions()
    bad = {k: (ver[k], v) for k, v in PINNED.items() if ver[k] != v}
    if bad and not args.allow_version_mismatch:
        sys.exit(f"installed versions differ from the pins (got, want): {bad}")

    mc_x, mc_y = make_multiclass()
    bi_x, bi_y = make_binary()
    cases = {}
    raw = {}
    for case, x, y in (("multiclass", mc_x, mc_y), ("binary", bi_x, bi_y)):
        if case == "multiclass":
            conf = x.max(axis=1)
            correct = (x.argmax(axis=1) == y).astype(np.int64)
        else:
            conf, correct = x, y
        raw[case] = f32_list(x)
        c = {"n": int(x.shape[0])}
        if case == "multiclass":
            c["k"] = int(x.shape[1])
        c["probs"] = f"@@{case}@@"
        c["labels"] = [int(v) for v in y]
        c["torchmetrics"] = run_torchmetrics(case, x, y)
        c["netcal"] = run_netcal(case, x, y)
        c["sklearn"] = run_sklearn(case, conf, correct)
        c["relplot"] = run_relplot(case, conf, correct)
        c["uncertainty_calibration"] = run_uncertainty_calibration(case, x, y)
        c["ks"] = ks_error(conf, correct)
        cases[case] = c
        print(case, "done", file=sys.stderr)
    doc = {
        "generator": "bench/compat_parity.py (run via bench/compat_parity.sh)",
        "versions": ver,
        "inputs": "probs are float32 (parse f64, cast f32); multiclass = N x K rows; binary = "
                  "p(positive); top-label confidence = row max, correct = argmax == label",
        "cases": cases,
    }
    text = json.dumps(doc, indent=1)
    for case, s in raw.items():
        text = text.replace(f'"@@{case}@@"', s)
    json.loads(text)  # still valid JSON
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write(text + "\n")
    print(f"wrote {args.out} ({len(text) + 1} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
