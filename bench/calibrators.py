"""Reference fits of post-hoc calibrators from other libraries, for our Rust fits to match.

Generates seeded float32 logits of a miscalibrated classifier and their labels, saves them
as .npy (validation and test halves) under --out, fits each calibrator that
torch-uncertainty and netcal offer (plus scikit-learn's sigmoid / isotonic / temperature
and betacal / dirichletcal when they are importable) with the library's defaults, times
fit and apply separately, and writes <out>/reference.json with the timings, the fitted
parameters and a few test-set numbers.

Data: base logits z = s * N(0, 1) with one class per row boosted by N(margin, 2); labels
are drawn (Gumbel-max) from softmax(z / T_true + b_true) with T_true = --true-temperature
(default 1.5 > 1: the logits are over-confident, the fitted temperature should come out
near 1.5) and a per-class bias b_true ~ N(0, --class-bias-sd) so that vector / matrix
scaling have something beyond a temperature to find. (Labels from softmax(z / 0.6) would
make z under-confident: T_true = 0.6 < 1.)

Inputs each library is given (its own convention, see the notes in the report):
  torch-uncertainty: the float32 logits (N, K) through a DataLoader, model=None.
  netcal:            float64 softmax probabilities (N, K); for K == 2 the 1-D p(class 1).
                     float64 on purpose: netcal's MLE uses scipy finite differences with a
                     1e-8 step, which float32 losses cannot resolve.
  scikit-learn:      _SigmoidCalibration on the decision value z1 - z0 (K == 2 only),
                     _TemperatureScaling on the float32 logits, IsotonicRegression on
                     p(class 1) (K == 2 only).
  betacal:           p(class 1) (K == 2 only), float64.
  dirichletcal:      float64 probabilities (needs Python >= 3.12 and jax; skipped if absent
                     or if its (N, K+1, K+1) float64 temporary would exceed 2 GiB).

    python bench/calibrators.py [--n 50000] [--k 100] [--seed 0] [--out DIR]
        [--only NAME,...] [--skip NAME,...] [--sample-rows 8] [--threads 2]
Names for --only / --skip are "<library>:<method>", e.g. torch_uncertainty:matrix, or a
bare library / method name. Missing libraries are skipped with the reason printed.
"""
import argparse
import importlib
import importlib.metadata as md
import json
import logging
import os
import platform
import signal
import sys
import time
import warnings

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--n", type=int, default=50000, help="total rows; first half val, second test")
ap.add_argument("--k", type=int, default=100, help="number of classes (2: binary variant)")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--out", default=None, help="output folder (default bench/out/calibrators_k{K}_n{N}_s{SEED})")
ap.add_argument("--true-temperature", type=float, default=1.5)
ap.add_argument("--class-bias-sd", type=float, default=0.3)
ap.add_argument("--scale", type=float, default=1.0, help="sd of the base logits")
ap.add_argument("--margin", type=float, default=None, help="mean boost of the top class (default 8, or 2 for K=2)")
ap.add_argument("--odir-lambda", type=float, default=1e-2, help="lambda of the extra ODIR Dirichlet runs")
ap.add_argument("--odir-mu", type=float, default=1e-2, help="mu of the extra ODIR Dirichlet runs")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--sample-rows", type=int, default=8, help="calibrated test rows stored per method")
ap.add_argument("--no-save-probs", action="store_true",
                help="do not write each method's calibrated test probabilities to <out>/lib_probs/LIB__METHOD.npy")
ap.add_argument("--time-limit", type=float, default=600.0,
                help="seconds one fit + apply may take before it is stopped (SIGALRM) and recorded as timed out")
ap.add_argument("--only", default="", help="comma list of names to run")
ap.add_argument("--skip", default="", help="comma list of names to skip")
ap.add_argument("--netcal-beta-multiclass", action="store_true",
                help="also fit netcal's multiclass BetaCalibration (3K parameters, finite differences: slow)")
args = ap.parse_args()

os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
os.environ.setdefault("MKL_NUM_THREADS", str(args.threads))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)  # torch-uncertainty logs "model is None" on every fit

import numpy as np  # noqa: E402
from calib_common import as_probs, summary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = int(args.k)
N = int(args.n)
OUT = args.out or os.path.join(ROOT, "bench", "out", f"calibrators_k{K}_n{N}_s{args.seed}")
os.makedirs(OUT, exist_ok=True)
ONLY = {s.strip() for s in args.only.split(",") if s.strip()}
SKIP = {s.strip() for s in args.skip.split(",") if s.strip()}


def wanted(lib, method):
    names = {lib, method, f"{lib}:{method}"}
    if ONLY and not (names & ONLY):
        return False
    return not (names & SKIP)


def version(dist):
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def try_import(module, lib):
    """Import lazily; on failure print why and return None."""
    try:
        return importlib.import_module(module)
    except Exception as e:  # ImportError, or a broken dependency raising something else
        msg = f"{type(e).__name__}: {e}"
        print(f"[skip] {lib}: cannot import {module} ({msg})", file=sys.stderr)
        SKIPPED[lib] = f"import {module} failed: {msg}"
        return None


# ----------------------------------------------------------------------------- data

def softmax64(z):
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def make_data(n, k, seed):
    rng = np.random.default_rng(seed)
    margin = args.margin if args.margin is not None else (8.0 if k > 2 else 2.0)
    z = rng.standard_normal((n, k)) * args.scale
    top = rng.integers(0, k, size=n)
    z[np.arange(n), top] += rng.normal(margin, 2.0, size=n)
    logits = z.astype(np.float32)
    b_true = rng.normal(0.0, args.class_bias_sd, size=k)
    true_logits = logits.astype(np.float64) / args.true_temperature + b_true
    labels = np.argmax(true_logits + rng.gumbel(size=(n, k)), axis=1).astype(np.int64)
    return logits, labels, {"margin": margin, "b_true": b_true.tolist()}


logits, labels, gen = make_data(N, K, args.seed)
h = N // 2
val_z, val_y, test_z, test_y = logits[:h], labels[:h], logits[h:], labels[h:]
for name, arr in (("val_logits", val_z), ("val_labels", val_y), ("test_logits", test_z), ("test_labels", test_y)):
    np.save(os.path.join(OUT, name + ".npy"), arr)
val_p, test_p = softmax64(val_z), softmax64(test_z)

# ----------------------------------------------------------------------------- helpers

SKIPPED = {}
RESULTS = {}


class TimedOut(BaseException):
    """Raised by SIGALRM when a method runs past --time-limit (BaseException, so that a
    library's own `except Exception` does not swallow it)."""


def _alarm(signum, frame):
    raise TimedOut()


signal.signal(signal.SIGALRM, _alarm)


def tolist(x):
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x).tolist()


def clean(o):
    """JSON-safe: numpy scalars to Python, non-finite floats to None."""
    if isinstance(o, dict):
        return {str(k): clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return clean(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


def lib_wanted(lib, methods):
    return any(wanted(lib, m) for m in methods)


def run(lib, method, fit, apply, params, output="probs", note=None, y_test=None):
    """fit() -> model; apply(model) -> calibrated output; params(model) -> dict.
    output: 'probs' (N,K) or (N,) p1, 'logits' (N,K) (softmax taken here), 'logit1' (N,) logit."""
    if not wanted(lib, method):
        return
    key = f"{lib}:{method}"
    print(f"[run ] {key}", file=sys.stderr, flush=True)
    limit = int(max(1, round(args.time_limit))) if args.time_limit and args.time_limit > 0 else 0
    t0 = time.perf_counter()
    try:
        if limit:
            signal.alarm(limit)
        model = fit()
        t1 = time.perf_counter()
        out = apply(model)
        t2 = time.perf_counter()
    except TimedOut:
        el = time.perf_counter() - t0
        print(f"[time] {key}: stopped after {el:.0f}s (--time-limit {limit})", file=sys.stderr)
        RESULTS.setdefault(lib, {})[method] = {"error": f"timed out: stopped after {el:.0f}s (--time-limit {limit})",
                                               "timed_out": True, "elapsed_s": el}
        return
    except Exception as e:
        print(f"[fail] {key}: {type(e).__name__}: {e}", file=sys.stderr)
        RESULTS.setdefault(lib, {})[method] = {"error": f"{type(e).__name__}: {e}"}
        return
    finally:
        if limit:
            signal.alarm(0)
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    out = np.asarray(out)
    if output == "logits":
        probs = softmax64(out)
    elif output == "logit1":
        probs = 1.0 / (1.0 + np.exp(-out.astype(np.float64).reshape(-1)))
    else:
        probs = out
    try:
        fitted = params(model)
    except Exception as e:
        fitted = {"error": f"{type(e).__name__}: {e}"}
        print(f"[warn] {key}: reading the fitted parameters failed: {fitted['error']}", file=sys.stderr)
    probs_file = None
    if not args.no_save_probs:
        os.makedirs(os.path.join(OUT, "lib_probs"), exist_ok=True)
        probs_file = os.path.join("lib_probs", f"{lib}__{method}.npy")
        np.save(os.path.join(OUT, probs_file), as_probs(probs).astype(np.float32))
    rec = {"fit_s": t1 - t0, "apply_s": t2 - t1, "output": output, "probs_file": probs_file,
           "params": fitted,
           "test": summary(probs, test_y if y_test is None else y_test),
           "sample_output": tolist(out[: args.sample_rows]),
           "sample_probs": tolist(as_probs(probs)[: args.sample_rows])}
    if note:
        rec["note"] = note
    RESULTS.setdefault(lib, {})[method] = rec
    print(f"[done] {key}: fit {rec['fit_s']:.3f}s apply {rec['apply_s']:.3f}s nll {rec['test']['nll']:.5f}",
          file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- torch-uncertainty

def run_torch_uncertainty():
    lib = "torch_uncertainty"
    if not lib_wanted(lib, ("temperature", "vector", "matrix", "dirichlet", "dirichlet_odir",
                            "histogram", "isotonic", "temperature_1d", "histogram_1d", "isotonic_1d")):
        return
    torch = try_import("torch", lib)
    if torch is None:
        return
    cal = try_import("torch_uncertainty.post_processing.calibration", lib)
    if cal is None:
        return
    torch.set_num_threads(args.threads)
    from torch.utils.data import DataLoader, TensorDataset

    zv, yv = torch.from_numpy(val_z), torch.from_numpy(val_y)
    zt = torch.from_numpy(test_z)

    def loader(x, y):
        return DataLoader(TensorDataset(x, y), batch_size=8192, shuffle=False)

    def fit_with(make, x=zv):
        def f():
            m = make()
            m.fit(loader(x, yv), progress=False)
            return m
        return f

    def apply_with(x=zt):
        def a(m):
            with torch.no_grad():
                return m(x)
        return a

    lbfgs = "torch.optim.LBFGS(lr=0.1, line_search_fn=None, tolerance_grad=1e-7, tolerance_change=1e-9, history_size=100), float32"
    run(lib, "temperature", fit_with(lambda: cal.TemperatureScaler()), apply_with(),
        lambda m: {"temperature": float(1.0 / m.inv_temp.item()), "inv_temperature": float(m.inv_temp.item()),
                   "optimizer": lbfgs + ", max_iter=100"},
        output="logits", note="softmax(inv_temperature * z)")
    run(lib, "vector", fit_with(lambda: cal.VectorScaler(num_classes=K)), apply_with(),
        lambda m: {"weights": tolist(m.inv_temp), "bias": None, "optimizer": lbfgs + ", max_iter=200"},
        output="logits", note="softmax(w * z), no bias")
    run(lib, "matrix", fit_with(lambda: cal.MatrixScaler(num_classes=K)), apply_with(),
        lambda m: {"weights": tolist(m.inv_temperature_weight), "bias": tolist(m.inv_temperature_bias),
                   "optimizer": lbfgs + ", max_iter=200"},
        output="logits", note="softmax(W z + b), W[i, j]: output class i, input j")
    run(lib, "dirichlet", fit_with(lambda: cal.DirichletScaler(num_classes=K)), apply_with(),
        lambda m: {"weights": tolist(m.inv_temperature_weight), "bias": tolist(m.inv_temperature_bias),
                   "lambda_reg": m.lambda_reg, "mu_reg": m.mu_reg, "optimizer": lbfgs + ", max_iter=200"},
        output="logits", note="softmax(W log_softmax(z) + b); defaults lambda_reg=mu_reg=None: no regularisation")
    if K > 2:
        run(lib, "dirichlet_odir",
            fit_with(lambda: cal.DirichletScaler(num_classes=K, lambda_reg=args.odir_lambda, mu_reg=args.odir_mu)),
            apply_with(),
            lambda m: {"weights": tolist(m.inv_temperature_weight), "bias": tolist(m.inv_temperature_bias),
                       "lambda_reg": m.lambda_reg, "mu_reg": m.mu_reg, "optimizer": lbfgs + ", max_iter=200"},
            output="logits",
            note="mean CE + lambda * sum_{i!=j} W_ij^2 / (K(K-1)) + mu * mean(b^2)")

    def hist_params(m):
        return {"num_bins": m.num_bins, "bin_edges": tolist(m.bin_edges), "bin_values": tolist(m.bin_values),
                "num_classes": m.num_classes}

    def iso_params(m):
        return {"models": [{"X_thresholds": tolist(r.X_thresholds_), "y_thresholds": tolist(r.y_thresholds_),
                            "X_min": float(r.X_min_), "X_max": float(r.X_max_),
                            "dtype": str(r.X_thresholds_.dtype)} for r in m.ir_models],
                "num_classes": m.num_classes}

    run(lib, "histogram", fit_with(lambda: cal.HistogramBinningScaler()), apply_with(), hist_params,
        output="logits", note="returns log(clamp(renormalised OvR bin values, 1e-6, 1-1e-6))")
    run(lib, "isotonic", fit_with(lambda: cal.IsotonicRegressionScaler()), apply_with(), iso_params,
        output="logits", note="returns log(clamp(renormalised OvR isotonic values, 1e-6, 1-1e-6))")

    if K == 2:
        # torch-uncertainty's own binary path: 1-D logits s = z1 - z0.
        sv = torch.from_numpy((val_z[:, 1] - val_z[:, 0]).astype(np.float32))
        st = torch.from_numpy((test_z[:, 1] - test_z[:, 0]).astype(np.float32))
        run(lib, "temperature_1d", fit_with(lambda: cal.TemperatureScaler(), x=sv), apply_with(st),
            lambda m: {"temperature": float(1.0 / m.inv_temp.item()), "inv_temperature": float(m.inv_temp.item())},
            output="logit1", note="fit on log([1-p, p]) with p = clamp(sigmoid(s), 1e-8, 1-1e-8); apply inv_t * s")
        run(lib, "histogram_1d", fit_with(lambda: cal.HistogramBinningScaler(), x=sv), apply_with(st), hist_params,
            output="logit1", note="sigmoid(s) binned; returns logit(clamp(bin value, 1e-6, 1-1e-6))")
        run(lib, "isotonic_1d", fit_with(lambda: cal.IsotonicRegressionScaler(), x=sv), apply_with(st), iso_params,
            output="logit1", note="sigmoid(s) isotonic; returns logit(clamp(value, 1e-6, 1-1e-6))")


# ----------------------------------------------------------------------------- netcal

def run_netcal():
    lib = "netcal"
    if not lib_wanted(lib, ("temperature", "logistic", "histogram", "isotonic", "beta")):
        return
    scaling = try_import("netcal.scaling", lib)
    binning = try_import("netcal.binning", lib) if scaling is not None else None
    if scaling is None or binning is None:
        return
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    if K == 2:
        xv, xt = val_p[:, 1].copy(), test_p[:, 1].copy()
    else:
        xv, xt = val_p, test_p

    def fit_with(make):
        def f():
            m = make()
            m.fit(xv, val_y)
            return m
        return f

    def apply(m):
        return m.transform(xt)

    opt = "scipy.optimize.minimize(bounds=...) -> L-BFGS-B, 2-point finite differences (abs step 1e-8), gtol=1e-5, ftol=2.22e-9"
    run(lib, "temperature", fit_with(lambda: scaling.TemperatureScaling()), apply,
        lambda m: {"inv_temperature": tolist(m._sites["weights"]["values"]),
                   "temperature": tolist(1.0 / np.asarray(m._sites["weights"]["values"], dtype=np.float64)),
                   "optimizer": opt},
        note="netcal's .temperature property returns the weight w = 1/T; softmax(w * log(clip(p, eps, 1-eps)))")
    run(lib, "logistic", fit_with(lambda: scaling.LogisticCalibration()), apply,
        lambda m: {"weights": tolist(m._sites["weights"]["values"]), "bias": tolist(m._sites["bias"]["values"]),
                   "optimizer": opt},
        note=("Platt: sigmoid(w * logit(clip(p)) + b)" if K == 2 else
              "vector scaling: softmax(w * log(clip(p)) + b)"))
    if K == 2 or args.netcal_beta_multiclass:
        run(lib, "beta", fit_with(lambda: scaling.BetaCalibration()), apply,
            lambda m: {"weights": tolist(m._sites["weights"]["values"]), "bias": tolist(m._sites["bias"]["values"]),
                       "optimizer": opt + "; weights bounded to [0, inf)"},
            note="sigmoid(a ln p - b ln(1-p) + c), weights = [a, b] (per class interleaved if multiclass)")

    def hist_params(m):
        subs = [(None, m)] if not m._multiclass_instances else m._multiclass_instances
        return {"bins": m.bins, "equal_intervals": m.equal_intervals,
                "models": [{"label": lab, "bin_bounds": tolist(s._bin_bounds[0]), "bin_map": tolist(s._bin_map)}
                           for lab, s in subs]}

    def iso_params(m):
        subs = [(None, m)] if not m._multiclass_instances else m._multiclass_instances
        return {"models": [{"label": lab, "X_thresholds": tolist(s._iso.X_thresholds_),
                            "y_thresholds": tolist(s._iso.y_thresholds_),
                            "X_min": float(s._iso.X_min_), "X_max": float(s._iso.X_max_)} for lab, s in subs]}

    run(lib, "histogram", fit_with(lambda: binning.HistogramBinning()), apply, hist_params,
        note="10 equal-width bins; fit [lo, hi) (binned_statistic_dd), apply (lo, hi]; OvR + renormalise")
    run(lib, "isotonic", fit_with(lambda: binning.IsotonicRegression()), apply, iso_params,
        note="sklearn IsotonicRegression(y_min=0, y_max=1, increasing=True, out_of_bounds='clip') on float64; OvR + renormalise")


# ----------------------------------------------------------------------------- scikit-learn, betacal, dirichletcal

def run_sklearn():
    lib = "sklearn"
    if not lib_wanted(lib, ("sigmoid", "temperature", "isotonic")):
        return
    calib = try_import("sklearn.calibration", lib)
    if calib is None:
        return
    if K == 2 and hasattr(calib, "_SigmoidCalibration"):
        sv = (val_z[:, 1] - val_z[:, 0]).astype(np.float64)
        st = (test_z[:, 1] - test_z[:, 0]).astype(np.float64)

        def fit_sig():
            return calib._SigmoidCalibration().fit(sv, (val_y == 1).astype(np.float64))
        run(lib, "sigmoid", fit_sig, lambda m: m.predict(st),
            lambda m: {"a": float(m.a_), "b": float(m.b_)},
            note="p1 = expit(-(a s + b)), s = z1 - z0 (float64); Platt targets (N+ +1)/(N+ +2), 1/(N- +2)")
    if hasattr(calib, "_TemperatureScaling"):
        def fit_ts():
            return calib._TemperatureScaling().fit(val_z, val_y)
        run(lib, "temperature", fit_ts, lambda m: m.predict(test_z),
            lambda m: {"inv_temperature": float(m.beta_), "temperature": float(1.0 / m.beta_),
                       "optimizer": "minimize_scalar(bounded) on log beta in [-10, 10], xatol=64*eps(dtype)"},
            note="softmax(beta * z) on the float32 logits (mean multinomial loss, float32)")
    if K == 2:
        iso = try_import("sklearn.isotonic", lib)
        if iso is not None:
            def fit_iso():
                return iso.IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                    val_p[:, 1], (val_y == 1).astype(np.float64))
            run(lib, "isotonic", fit_iso, lambda m: m.predict(test_p[:, 1]),
                lambda m: {"X_thresholds": tolist(m.X_thresholds_), "y_thresholds": tolist(m.y_thresholds_)},
                note="float64 p(class 1)")


def run_betacal():
    lib = "betacal"
    if K != 2 or not wanted(lib, "beta"):
        return
    bc = try_import("betacal", lib)
    if bc is None:
        return

    def fit():
        return bc.BetaCalibration(parameters="abm").fit(val_p[:, 1], (val_y == 1).astype(np.int64))

    def params(m):
        c = m.calibrator_
        return {"a": float(c.map_[0]), "b": float(c.map_[1]), "m": float(c.map_[2]),
                "lr_coef": tolist(c.lr_.coef_[0]), "lr_intercept": float(c.lr_.intercept_[0])}
    run(lib, "beta", fit, lambda m: m.predict(test_p[:, 1]), params,
        note="LogisticRegression(C=1e11, lbfgs, tol=1e-4) on [ln p, -ln(1-p)]; drop a feature and refit if its coef < 0")


def run_dirichletcal():
    lib = "dirichletcal"
    if not lib_wanted(lib, ("dirichlet", "dirichlet_odir")):
        return
    need = h * (K + 1) ** 2 * 8
    if need > 2 * 2 ** 30:
        SKIPPED[lib] = f"FullDirichletCalibrator builds an (N, K+1, K+1) float64 array: {need / 2**30:.1f} GiB"
        print(f"[skip] {lib}: {SKIPPED[lib]}", file=sys.stderr)
        return
    fd = try_import("dirichletcal.calib.fulldirichlet", lib)
    if fd is None:
        return

    def params(m):
        w = np.asarray(m.weights)
        return {"weights": tolist(w[:, :-1]), "bias": tolist(w[:, -1]),
                "optimizer": "newton (K <= 36) else fmin_l_bfgs_b(factr=1, maxls=128)"}
    run(lib, "dirichlet", lambda: fd.FullDirichletCalibrator().fit(val_p, val_y),
        lambda m: m.predict_proba(test_p), params,
        note="softmax(W log(clip(p, tiny)) + b), last row of [W | b] fixed to 0 (ref_row); no regularisation")
    if K > 2:
        run(lib, "dirichlet_odir",
            lambda: fd.FullDirichletCalibrator(reg_lambda=args.odir_lambda, reg_mu=args.odir_mu,
                                               reg_norm=True).fit(val_p, val_y),
            lambda m: m.predict_proba(test_p), params,
            note="reg_norm=True: lambda/(K(K-1)) sum offdiag^2 + mu/K sum b^2, on the ref_row weights")


# ----------------------------------------------------------------------------- main

run_torch_uncertainty()
run_netcal()
run_sklearn()
run_betacal()
run_dirichletcal()

report = {
    "meta": {
        "n": N, "k": K, "seed": args.seed, "n_val": int(h), "n_test": int(N - h),
        "true_temperature": args.true_temperature, "class_bias_sd": args.class_bias_sd,
        "scale": args.scale, "threads": args.threads, "python": platform.python_version(),
        "versions": {d: version(d) for d in ("numpy", "scipy", "torch", "torch-uncertainty", "netcal",
                                             "scikit-learn", "betacal", "dirichletcal", "jax", "pyro-ppl")},
        "files": {"val_logits": "val_logits.npy (float32, N/2 x K)", "val_labels": "val_labels.npy (int64)",
                  "test_logits": "test_logits.npy", "test_labels": "test_labels.npy"},
        "generator": {"base": "z = scale * N(0,1); z[i, top_i] += N(margin, 2); float32",
                      "labels": "argmax(z / true_temperature + b_true + Gumbel)", **gen},
        "uncalibrated_test": summary(test_p, test_y),
        "odir": {"lambda": args.odir_lambda, "mu": args.odir_mu},
    },
    "skipped": SKIPPED,
    "results": RESULTS,
}
path = os.path.join(OUT, "reference.json")
with open(path, "w") as f:
    json.dump(clean(report), f, indent=1, allow_nan=False)
print(path)
