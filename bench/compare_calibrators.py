"""Side-by-side table of mbls's calibrators against torch-uncertainty, netcal, scikit-learn and
betacal on the same seeded logits (issue 15, item 6: fit and apply at least 10x faster, the
same fitted parameters within tolerance).

    python bench/compare_calibrators.py DIR [--ours FILE] [--cal-dir DIR] [--out FILE] [--tol X]
    python bench/compare_calibrators.py DIR --print-variants   # what compare_calibrators_mbls.sh fits

Pure numpy (runs with bench/.venv's python or any python with numpy). DIR is a folder that
bench/calibrators.py wrote (bench/out/calibrators_k{K}_n{N}_s{SEED}): the .npy inputs,
reference.json (the libraries' timings, parameters and test summaries) and lib_probs/ (each
library method's calibrated test probabilities, float32; absent in runs made before it
existed, and then the "max |dp|" column reads n/a). Our side:

  DIR/mbls_bench.jsonl   the stdout of `bench_calibrators DIR REPEATS` (one JSON line per
                         method, default FitOptions: median fit_s / apply_s over REPEATS, in
                         process, on the already loaded arrays). Timings come from here.
  DIR/mbls/VARIANT.json  calibrators written by `mbls calibrate fit --method M [ARGS] --val
                         DIR/val_logits.npy DIR/val_labels.npy -o ...` (full parameters; the
                         variants and their arguments: --print-variants). Parameters come from
                         here, and our test probabilities are computed from them here in numpy.
  DIR/mbls/VARIANT.npz   optional: `mbls calibrate apply` of that calibrator to the test set;
                         when present, our test probabilities are taken from it, and the largest
                         difference to the numpy re-application is printed as a check of the
                         mapping below.
  DIR/mbls/cli_times.json optional: {VARIANT: {"fit_wall_s", "apply_wall_s"}}, wall-clock of
                         those CLI runs (process start, .npy read and file write included). Used
                         (marked "+") only for variants whose options differ from the defaults
                         that bench_calibrators times (matrix-noreg, dirichlet-noreg,
                         dirichlet-odir, hist10).

Parameter conventions and how they are mapped (ours on the left):
  ts / ts-nll   softmax(z / T). TorchUncertainty TemperatureScaler stores inv_temp = 1/T
                (applies inv_temp * z); netcal TemperatureScaling stores the weight w = 1/T and
                applies softmax(w * ln clip(p, eps, 1 - eps)), the same map since ln softmax(z)
                differs from z by a per-row constant; scikit-learn _TemperatureScaling stores
                beta_ = 1/T. Compared: |T_ours - 1/w_lib|.
  vector        ours w * z + b (b free, mu = 0 by default). TU VectorScaler: inv_temp * z, no
                bias (a different model: b is compared as |b_ours - 0| and reported). netcal
                LogisticCalibration (K > 2): w * ln p + b = w * z + b - w * lse(z): not our
                family unless w is constant (reported, marked "different model").
  matrix        ours weights[i][j] (output class i, input class j) and bias[i], z' = W z + b;
                TU MatrixScaler: nn.functional.linear(z, W, b), W[i, j] the same orientation.
  dirichlet     as matrix on ln softmax(z); TU DirichletScaler the same (linear of log_softmax).
                Unregularised matrix / Dirichlet fits are not identifiable: W + 1 v^T, b + c 1
                give the same softmax for any v, c (the row-constant gauge), so for the
                unregularised pairs W is also compared with each column centred
                (W - mean over rows) and b centred ("centred" below). Both L-BFGS runs start at
                the identity and their gradients have zero column sums, so both stay in the
                gauge 1^T W = 1^T, sum(b) = 0 and the raw numbers are meaningful too.
                ODIR: ours lambda * sum_{i!=j} W_ij^2 / (K (K-1)) + mu * sum_j b_j^2 / K; TU
                DirichletScaler(lambda_reg, mu_reg): lambda * offdiag_sq / (K (K-1)) +
                mu * mean(b^2): the same objective, so dirichlet-odir is run with TU's
                dirichlet_odir lambda / mu (reference.json meta.odir).
  hist          ours values[k][b], equal-width bins, (lower, upper] membership, empty bin ->
                midpoint, one-vs-rest then rows renormalised. TU HistogramBinningScaler:
                bin_values[k, b], torch.bucketize(right=False) on float32 softmax, i.e.
                (lower, upper] too, empty -> centre, 15 bins (our default). netcal
                HistogramBinning: 10 bins (so ours is fitted with --bins 10, "hist10"),
                models[k].bin_map[b]; fit membership [lower, upper) (binned_statistic_dd),
                apply (lower, upper]; p clipped to [eps, 1 - eps]. For K = 2 netcal (and TU's
                1-D path) fit one binary model on p(class 1): compared with our class-1
                sub-model (the same regression); the outputs still differ because ours
                renormalises the two one-vs-rest columns.
  isotonic      ours per class breakpoints (x, y), linear interpolation, clipped outside;
                sklearn / netcal / TU store X_thresholds_, y_thresholds_ (the same
                representation: first and last point of every pooled block). Compared: per
                class, max |f_ours(t) - f_lib(t)| over the union t of both breakpoint sets
                (the functions, since breakpoints of a float32 input, TU's, sit elsewhere).
  platt         ours sigma(a s + b), s = z1 - z0. sklearn _SigmoidCalibration: p =
                expit(-(a_ s + b_)), so a = -a_, b = -b_. netcal LogisticCalibration (K = 2):
                sigma(w logit(clip(p1)) + bias), logit(p1) = s: a = w, b = bias.
  beta          ours sigma(a ln p - b ln(1 - p) + c), p = sigma(s). betacal: features
                [ln p, -ln(1 - p)], a, b = map_[0], map_[1], c = lr_.intercept_. netcal
                BetaCalibration: weights [a, b] on the same features, bias [c].

Objectives (the "same obj." column; a "no" explains parameter differences, it is not hidden):
  ts-nll vs TU / netcal / sklearn temperature: all minimise the mean validation NLL of
    softmax(z / T). Ours: Newton on ln T in float64 (T in [0.01, 100]). TU: LBFGS(lr=0.1,
    max_iter=100, no line search) in float32 from T = 1. netcal: L-BFGS-B with 2-point finite
    differences on float64 ln p. sklearn: bounded Brent on ln(1/T), float32.
  ts (ours, grid search of the lowest validation ECE, the reference trainer's method) vs TU
    temperature: different objective.
  vector vs TU vector: different model (ours has intercepts).
  matrix / dirichlet at our defaults (ODIR lambda = mu = 1e-3) vs TU's (no regulariser, 200
    LBFGS iterations at lr 0.1 without line search, which need not reach the optimum of a
    K^2 + K parameter problem): different objective. matrix-noreg / dirichlet-noreg
    (--reg-lambda 0 --reg-mu 0) are the same objective; our L-BFGS (More-Thuente, memory 10,
    up to 500 iterations, gradient tolerance 1e-7, float64) and TU's float32 LBFGS can still
    stop at different points of a flat optimum, which the test |dp| measures.
  hist / isotonic: the same estimator (closed form / PAV), differences only from bin
    membership at edges, float32 vs float64 probabilities, clipping and output clamps
    (TU clamps calibrated probabilities to [1e-6, 1 - 1e-6] and renormalises).
  platt vs sklearn: the same objective (Platt's smoothed targets (N+ + 1) / (N+ + 2),
    1 / (N- + 2)); vs netcal: 0/1 targets, slightly different.
  beta vs betacal: the same (unpenalised logistic regression, C = 1e11; a negative weight is
    dropped and the rest refitted); vs netcal: the same likelihood with a, b >= 0 as bounds.

Test-set NLL / ECE: our own numpy over the calibrated test probabilities (NLL with p clipped
at 1e-12; ECE: 15 equal-width bins of the top-label confidence, (lower, upper]), the same
function bench/calibrators.py uses for reference.json, so both columns are computed alike.
Speed-ups are library seconds / our seconds.
"""
import argparse
import json
import os
import sys

import numpy as np
from calib_common import summary

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("dir", help="folder written by bench/calibrators.py")
ap.add_argument("--ours", default=None, help="bench_calibrators JSON lines (default DIR/mbls_bench.jsonl)")
ap.add_argument("--cal-dir", default=None, help="our calibrator files (default DIR/mbls)")
ap.add_argument("--out", default=None, help="also write the markdown here")
ap.add_argument("--tol", type=float, default=1e-3,
                help="largest |dp| on the test set for a same-objective pair to count as the same fit")
ap.add_argument("--print-variants", action="store_true",
                help="print VARIANT<TAB>METHOD<TAB>EXTRA ARGS for `mbls calibrate fit` and exit")
args = ap.parse_args()

DIR = args.dir
REF = json.load(open(os.path.join(DIR, "reference.json")))
META = REF["meta"]
K = int(META["k"])
ODIR = META.get("odir", {"lambda": 1e-2, "mu": 1e-2})

# Our variants: name -> (mbls method, extra `mbls calibrate fit` arguments, bench_calibrators
# method whose timing applies, or None when the options differ from FitOptions::default()).
VARIANTS = {
    "ts-nll": ("ts-nll", [], "ts-nll"),
    "ts": ("ts", [], "ts"),
    "vector": ("vector", [], "vector"),
    "matrix": ("matrix", [], "matrix"),
    "matrix-noreg": ("matrix", ["--reg-lambda", "0", "--reg-mu", "0"], None),
    "dirichlet": ("dirichlet", [], "dirichlet"),
    "dirichlet-noreg": ("dirichlet", ["--reg-lambda", "0", "--reg-mu", "0"], None),
    "dirichlet-odir": ("dirichlet", ["--reg-lambda", repr(float(ODIR["lambda"])),
                                     "--reg-mu", repr(float(ODIR["mu"]))], None),
    "hist": ("hist", [], "hist"),
    "hist10": ("hist", ["--bins", "10"], None),
    "isotonic": ("isotonic", [], "isotonic"),
}
if K == 2:
    VARIANTS["platt"] = ("platt", [], "platt")
    VARIANTS["beta"] = ("beta", [], "beta")

if args.print_variants:
    for v, (m, extra, _) in VARIANTS.items():
        print(f"{v}\t{m}\t{' '.join(extra)}")
    sys.exit(0)

CAL_DIR = args.cal_dir or os.path.join(DIR, "mbls")
OURS_FILE = args.ours or os.path.join(DIR, "mbls_bench.jsonl")

test_z = np.load(os.path.join(DIR, "test_logits.npy"))
test_y = np.load(os.path.join(DIR, "test_labels.npy")).astype(np.int64)
assert test_z.dtype == np.float32 and test_z.shape[1] == K


# ----------------------------------------------------------------------------- numerics

def softmax64(z):
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax64(z):
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=1, keepdims=True)
    return z - (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))


def softplus(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def ours_apply(cal, z):
    """Our calibrator JSON applied in numpy, mirroring crates/plain/mbls-metrics/src/calibrate
    (float64 arithmetic, float32 output like Calibrator::apply); returns float64 probs."""
    m, p = cal["method"], cal["params"]
    z64 = z.astype(np.float64)
    if m in ("ts", "ts-nll"):
        out = z / np.float32(p["temperature"])
        return softmax64(out)
    if m == "vector":
        out = (np.asarray(p["weights"]) * z64 + np.asarray(p["bias"])).astype(np.float32)
        return softmax64(out)
    if m in ("matrix", "dirichlet"):
        x = log_softmax64(z) if m == "dirichlet" else z64
        out = (x @ np.asarray(p["weights"]).T + np.asarray(p["bias"])).astype(np.float32)
        return softmax64(out)
    if m in ("hist", "isotonic"):
        q = softmax64(z)
        if m == "hist":
            nb = int(p["num_bins"])
            vals = np.asarray(p["values"])
            b = np.minimum(np.maximum(np.ceil(q * nb).astype(np.int64) - 1, 0), nb - 1)
            c = np.broadcast_to(np.arange(K), q.shape)
            q = vals[c, b]
        else:
            q = np.stack([np.interp(q[:, c], p["x"][c], p["y"][c]) for c in range(K)], axis=1)
        s = q.sum(axis=1, keepdims=True)
        out = np.where(s > 0, q / np.where(s > 0, s, 1.0), 1.0 / K).astype(np.float32)
        return out.astype(np.float64)
    s = z64[:, 1] - z64[:, 0]
    if m == "platt":
        u = p["a"] * s + p["b"]
    elif m == "beta":
        u = -p["a"] * softplus(-s) + p["b"] * softplus(s) + p["c"]
    else:
        raise ValueError(f"unknown method {m}")
    out = np.stack([np.zeros_like(u), u], axis=1).astype(np.float32)
    return softmax64(out)


# ----------------------------------------------------------------------------- our side

def load_jsonl(path):
    rows = {}
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                r = json.loads(line)
                rows[r["method"]] = r
    return rows


BENCH = load_jsonl(OURS_FILE)
CLI_TIMES = {}
if os.path.exists(os.path.join(CAL_DIR, "cli_times.json")):
    CLI_TIMES = json.load(open(os.path.join(CAL_DIR, "cli_times.json")))

OURS = {}          # variant -> dict(cal, probs, check)
for v in VARIANTS:
    f = os.path.join(CAL_DIR, v + ".json")
    if not os.path.exists(f):
        continue
    cal = json.load(open(f))
    probs = ours_apply(cal, test_z)
    rec = {"cal": cal, "probs": probs, "check": None}
    npz = os.path.join(CAL_DIR, v + ".npz")
    if os.path.exists(npz):
        d = np.load(npz)
        key = "probs" if "probs" in d.files else "logits"
        got = d[key]
        got = got.astype(np.float64) if key == "probs" else softmax64(got)
        rec["check"] = float(np.abs(got - probs).max())
        rec["probs"] = got
    rec["test"] = summary(rec["probs"], test_y)
    OURS[v] = rec


def our_times(v):
    """(fit_s, apply_s, mark) from bench_calibrators, else the CLI wall-clock ("+")."""
    bench_m = VARIANTS[v][2]
    if bench_m and bench_m in BENCH:
        return BENCH[bench_m]["fit_s"], BENCH[bench_m]["apply_s"], ""
    t = CLI_TIMES.get(v)
    if t:
        return t.get("fit_wall_s"), t.get("apply_wall_s"), "+"
    return None, None, ""


# ----------------------------------------------------------------------------- library side

RESULTS = REF.get("results", {})


def lib_rec(lib, m):
    return RESULTS.get(lib, {}).get(m)


def lib_probs(rec):
    f = rec.get("probs_file") if rec else None
    if f and os.path.exists(os.path.join(DIR, f)):
        return np.load(os.path.join(DIR, f)).astype(np.float64)
    return None


# parameter comparisons: (ours cal, lib record) -> (max |d|, text)

def fmt(x):
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    return f"{x:.2e}" if (abs(x) < 1e-3 or abs(x) >= 1e4) else f"{x:.4g}"


def cmp_temperature(cal, rec, key="inv_temperature"):
    inv = np.asarray(rec["params"][key], dtype=np.float64).reshape(-1)[0]
    t_lib, t_ours = 1.0 / inv, cal["params"]["temperature"]
    d = abs(t_ours - t_lib)
    return d, f"T {t_ours:.6g} vs {t_lib:.6g} (rel {d / t_lib:.1e})"


def cmp_vector_tu(cal, rec):
    w_l = np.asarray(rec["params"]["weights"], dtype=np.float64)
    w_o, b_o = np.asarray(cal["params"]["weights"]), np.asarray(cal["params"]["bias"])
    dw = float(np.abs(w_o - w_l).max())
    return dw, f"w {fmt(dw)}; TU has no bias, ours max|b| {fmt(float(np.abs(b_o).max()))}"


def cmp_vector_netcal(cal, rec):
    w_l = np.asarray(rec["params"]["weights"], dtype=np.float64).reshape(-1)
    b_l = np.asarray(rec["params"]["bias"], dtype=np.float64).reshape(-1)
    w_o, b_o = np.asarray(cal["params"]["weights"]), np.asarray(cal["params"]["bias"])
    if w_l.shape != w_o.shape:
        return None, f"netcal weights shape {w_l.shape}"
    dw = float(np.abs(w_o - w_l).max())
    db = float(np.abs((b_o - b_o.mean()) - (b_l - b_l.mean())).max())
    return max(dw, db), f"w {fmt(dw)}, b (centred) {fmt(db)}; netcal's map is w*ln p + b"


def cmp_matrix(cal, rec, centred):
    W_l = np.asarray(rec["params"]["weights"], dtype=np.float64)
    b_l = np.asarray(rec["params"]["bias"], dtype=np.float64)
    W_o, b_o = np.asarray(cal["params"]["weights"]), np.asarray(cal["params"]["bias"])
    dW, db = float(np.abs(W_o - W_l).max()), float(np.abs(b_o - b_l).max())
    txt = f"W {fmt(dW)}, b {fmt(db)}"
    d = max(dW, db)
    if centred:
        cW = float(np.abs((W_o - W_o.mean(0)) - (W_l - W_l.mean(0))).max())
        cb = float(np.abs((b_o - b_o.mean()) - (b_l - b_l.mean())).max())
        txt += f"; centred W {fmt(cW)}, b {fmt(cb)}"
        d = max(cW, cb)
    diag_o, diag_l = np.diag(W_o), np.diag(W_l)
    txt += f"; mean diag {diag_o.mean():.4g} vs {diag_l.mean():.4g}"
    return d, txt


def cmp_hist_tu(cal, rec):
    v_o = np.asarray(cal["params"]["values"])
    v_l = np.asarray(rec["params"]["bin_values"], dtype=np.float64)
    if v_l.ndim == 1:   # TU's binary path: one model on p(class 1)
        v_o, what = v_o[1], "class-1 sub-model"
    else:
        what = "all classes"
    if v_o.shape != v_l.shape:
        return None, f"shapes {v_o.shape} vs {v_l.shape}"
    d = float(np.abs(v_o - v_l).max())
    return d, f"bin values ({what}, {v_l.shape[-1]} bins) {fmt(d)}"


def cmp_hist_netcal(cal, rec):
    v_o = np.asarray(cal["params"]["values"])
    models = rec["params"]["models"]
    if models[0]["label"] is None:  # binary netcal: one model on p(class 1)
        v_l = {1: np.asarray(models[0]["bin_map"], dtype=np.float64).reshape(-1)}
        what = "class-1 sub-model"
    else:
        v_l = {int(m["label"]): np.asarray(m["bin_map"], dtype=np.float64).reshape(-1) for m in models}
        what = "all classes"
    if any(v_o[c].shape != v.shape for c, v in v_l.items()):
        return None, f"bins {v_o.shape[-1]} vs {len(next(iter(v_l.values())))}"
    d = max(float(np.abs(v_o[c] - v).max()) for c, v in v_l.items())
    nb = len(next(iter(v_l.values())))
    return d, f"bin values ({what}, {nb} bins) {fmt(d)}"


def cmp_isotonic(cal, rec):
    xs, ys = cal["params"]["x"], cal["params"]["y"]
    models = rec["params"]["models"] if "models" in rec["params"] else [dict(rec["params"], label=None)]
    if len(models) == 1 and K == 2:
        pairs = [(1, models[0])]  # binary: one model on p(class 1)
        what = "class-1 sub-model"
    else:
        pairs = [(int(m["label"]) if m.get("label") is not None else c, m) for c, m in enumerate(models)]
        what = "all classes"
    d, n_o, n_l = 0.0, 0, 0
    for c, m in pairs:
        xl = np.asarray(m["X_thresholds"], dtype=np.float64)
        yl = np.asarray(m["y_thresholds"], dtype=np.float64)
        t = np.union1d(np.asarray(xs[c]), xl)
        d = max(d, float(np.abs(np.interp(t, xs[c], ys[c]) - np.interp(t, xl, yl)).max()))
        n_o += len(xs[c])
        n_l += len(xl)
    return d, f"max |f_ours - f_lib| ({what}) {fmt(d)}; breakpoints {n_o} vs {n_l}"


def cmp_platt_sklearn(cal, rec):
    a, b = -rec["params"]["a"], -rec["params"]["b"]
    da, db = abs(cal["params"]["a"] - a), abs(cal["params"]["b"] - b)
    return max(da, db), f"a {cal['params']['a']:.6g} vs {a:.6g}, b {cal['params']['b']:.6g} vs {b:.6g}"


def cmp_platt_netcal(cal, rec):
    a = float(np.asarray(rec["params"]["weights"]).reshape(-1)[0])
    b = float(np.asarray(rec["params"]["bias"]).reshape(-1)[0])
    da, db = abs(cal["params"]["a"] - a), abs(cal["params"]["b"] - b)
    return max(da, db), f"a {cal['params']['a']:.6g} vs {a:.6g}, b {cal['params']['b']:.6g} vs {b:.6g}"


def cmp_beta(cal, rec, lib):
    if lib == "betacal":
        a, b, c = rec["params"]["a"], rec["params"]["b"], rec["params"]["lr_intercept"]
    else:
        w = np.asarray(rec["params"]["weights"], dtype=np.float64).reshape(-1)
        a, b, c = float(w[0]), float(w[1]), float(np.asarray(rec["params"]["bias"]).reshape(-1)[0])
    p = cal["params"]
    d = max(abs(p["a"] - a), abs(p["b"] - b), abs(p["c"] - c))
    return d, f"a {p['a']:.5g}/{a:.5g}, b {p['b']:.5g}/{b:.5g}, c {p['c']:.5g}/{c:.5g}"


# (our variant, library, library method, same objective?, compare(cal, rec))
PAIRS = [
    ("ts-nll", "torch_uncertainty", "temperature", "yes", cmp_temperature),
    ("ts-nll", "netcal", "temperature", "yes (ln clip p)", cmp_temperature),
    ("ts-nll", "sklearn", "temperature", "yes", cmp_temperature),
    ("ts", "torch_uncertainty", "temperature", "no (ours: grid, val ECE)", cmp_temperature),
    ("vector", "torch_uncertainty", "vector", "no (TU: no bias)", cmp_vector_tu),
    ("vector", "netcal", "logistic", "no (netcal: w ln p + b)", cmp_vector_netcal) if K > 2 else None,
    ("matrix", "torch_uncertainty", "matrix", "no (ours: ODIR 1e-3)", lambda c, r: cmp_matrix(c, r, False)),
    ("matrix-noreg", "torch_uncertainty", "matrix", "yes (no reg)", lambda c, r: cmp_matrix(c, r, True)),
    ("dirichlet", "torch_uncertainty", "dirichlet", "no (ours: ODIR 1e-3)", lambda c, r: cmp_matrix(c, r, False)),
    ("dirichlet-noreg", "torch_uncertainty", "dirichlet", "yes (no reg)", lambda c, r: cmp_matrix(c, r, True)),
    ("dirichlet-odir", "torch_uncertainty", "dirichlet_odir",
     f"yes (ODIR {ODIR['lambda']:g}/{ODIR['mu']:g})", lambda c, r: cmp_matrix(c, r, False)),
    ("hist", "torch_uncertainty", "histogram", "yes", cmp_hist_tu),
    ("hist10", "netcal", "histogram", "yes" if K > 2 else "sub-model (netcal: binary)", cmp_hist_netcal),
    ("isotonic", "netcal", "isotonic", "yes" if K > 2 else "sub-model (netcal: binary)", cmp_isotonic),
    ("isotonic", "torch_uncertainty", "isotonic", "yes", cmp_isotonic),
]
if K == 2:
    PAIRS += [
        ("ts-nll", "torch_uncertainty", "temperature_1d", "yes (clamp 1e-8)", cmp_temperature),
        ("hist", "torch_uncertainty", "histogram_1d", "sub-model (TU: binary)", cmp_hist_tu),
        ("isotonic", "torch_uncertainty", "isotonic_1d", "sub-model (TU: binary)", cmp_isotonic),
        ("isotonic", "sklearn", "isotonic", "sub-model (binary)", cmp_isotonic),
        ("platt", "sklearn", "sigmoid", "yes (Platt targets)", cmp_platt_sklearn),
        ("platt", "netcal", "logistic", "no (netcal: 0/1 targets)", cmp_platt_netcal),
        ("beta", "betacal", "beta", "yes", lambda c, r: cmp_beta(c, r, "betacal")),
        ("beta", "netcal", "beta", "yes (bounds a, b >= 0)", lambda c, r: cmp_beta(c, r, "netcal")),
    ]
PAIRS = [p for p in PAIRS if p]

SHORT = {"torch_uncertainty": "TU", "netcal": "netcal", "sklearn": "sklearn", "betacal": "betacal"}


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return "n/a"
    return f"{a / b:.1f}x"


def secs(x, mark=""):
    return "n/a" if x is None else f"{x:.4f}{mark}" if x < 1 else f"{x:.2f}{mark}"


lines = []
w = lines.append
w(f"### Calibrators, {META['n_val']} x {K} validation logits, {META['n_test']} x {K} test logits "
  f"(seed {META['seed']}, {META['threads']} threads)")
w("")
vers = META.get("versions", {})
w("Libraries: " + ", ".join(f"{k} {v}" for k, v in vers.items() if v) + f"; Python {META.get('python')}.")
bench_threads = {r.get("threads") for r in BENCH.values()}
w(f"Ours: bench_calibrators ({len(BENCH)} methods, threads {sorted(t for t in bench_threads if t is not None)}), "
  f"{len(OURS)} calibrator files from {CAL_DIR}.")
unc = META.get("uncalibrated_test", {})
if unc:
    w(f"Uncalibrated test: NLL {unc['nll']:.5f}, ECE {unc['ece15_top_label']:.5f}, accuracy {unc['accuracy']:.4f}.")
w("")
w("| ours | library | same obj. | lib fit s | our fit s | fit speed-up | lib apply s | our apply s "
  "| apply speed-up | max abs param diff | test NLL lib / ours | test ECE lib / ours | max abs dp test | verdict |")
w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
notes = []
for v, lib, lm, same, cmp in PAIRS:
    rec = lib_rec(lib, lm)
    o = OURS.get(v)
    label = f"{SHORT[lib]} {lm}"
    if rec is None:
        why = REF.get("skipped", {}).get(lib, "not in reference.json")
        w(f"| {v} | {label} | {same} | missing ({why}) |  |  |  |  |  |  |  |  |  |  |")
        continue
    if "error" in rec:
        w(f"| {v} | {label} | {same} | {rec['error']} |  |  |  |  |  |  |  |  |  |  |")
        continue
    of, oa, mark = our_times(v)
    lf, la = rec["fit_s"], rec["apply_s"]
    if o is None:
        w(f"| {v} | {label} | {same} | {secs(lf)} | {secs(of, mark)} | {ratio(lf, of)} | {secs(la)} "
          f"| {secs(oa, mark)} | {ratio(la, oa)} | (no {v}.json) | {rec['test']['nll']:.5f} / n/a "
          f"| {rec['test']['ece15_top_label']:.5f} / n/a | n/a |  |")
        continue
    try:
        d, txt = cmp(o["cal"], rec)
    except Exception as e:  # a parameter layout this script does not know: say so
        d, txt = None, f"cannot compare: {type(e).__name__}: {e}"
    lp = lib_probs(rec)
    dp = None
    if lp is not None and lp.shape == o["probs"].shape:
        dp = float(np.abs(np.nan_to_num(lp, nan=1.0) - o["probs"]).max())
    fast = (of is not None and oa is not None and lf / of >= 10 and la / oa >= 10)
    verdict = ("10x " + ("yes" if fast else "no"))
    if same.startswith("yes"):
        verdict += "; same fit " + ("n/a" if dp is None else "yes" if dp <= args.tol else "no")
    w(f"| {v} | {label} | {same} | {secs(lf)} | {secs(of, mark)} | {ratio(lf, of)} | {secs(la)} "
      f"| {secs(oa, mark)} | {ratio(la, oa)} | {txt} "
      f"| {rec['test']['nll']:.5f} / {o['test']['nll']:.5f} "
      f"| {rec['test']['ece15_top_label']:.5f} / {o['test']['ece15_top_label']:.5f} | {fmt(dp)} | {verdict} |")
    if rec.get("note"):
        notes.append(f"- {label}: {rec['note']}")

w("")
w(f"Verdict: \"10x\" asks fit and apply speed-up >= 10; \"same fit\" (same-objective pairs only) asks "
  f"max |dp| on the test set <= {args.tol:g}. \"+\": our time is the wall-clock of the `mbls calibrate` "
  "process (start, .npy read and file write included), because bench_calibrators only times the "
  "default options.")
w("")
w("Our side, checks:")
for v, o in OURS.items():
    cal = o["cal"]
    b = BENCH.get(VARIANTS[v][2]) if VARIANTS[v][2] else None
    extra = ""
    if b is not None and b.get("test_nll") is not None:
        extra = f"; bench_calibrators test NLL {b['test_nll']:.5f} (numpy here {o['test']['nll']:.5f})"
    chk = "" if o["check"] is None else f"; numpy re-apply vs `mbls calibrate apply` max |dp| {fmt(o['check'])}"
    opts = cal.get("fit", {}).get("options", {})
    w(f"- {v}: {cal['method']}, lambda {opts.get('reg_lambda')}, mu {opts.get('reg_mu')}, bins "
      f"{opts.get('num_bins')}, {cal['fit'].get('iterations')} iterations, val NLL "
      f"{cal['fit']['nll_before']:.5f} -> {cal['fit']['nll_after']:.5f}{extra}{chk}")
missing = [v for v in VARIANTS if v not in OURS]
if missing:
    w(f"- missing calibrator files: {', '.join(missing)} (see --print-variants)")
if not BENCH:
    w(f"- no bench_calibrators output at {OURS_FILE}: our timings are n/a")
w("")
w("Library notes (from reference.json):")
lines.extend(sorted(set(notes)))
skipped = REF.get("skipped", {})
for lib, why in skipped.items():
    w(f"- skipped {lib}: {why}")

text = "\n".join(lines)
print(text)
if args.out:
    with open(args.out, "w") as f:
        f.write(text + "\n")
