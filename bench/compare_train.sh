#!/usr/bin/env bash
# End-to-end training benchmark, mbls against the PyTorch mirror of the reference trainer
# (bench/torch_train.py): one epoch of resnet18_cifar on a subset of the CIFAR-10 JPEG copy
# (data=folder protocol: 10 % of train/ held out for validation, batch 128, drop_last, 4 loader
# workers, SGD 0.1 / 0.9 / 5e-4, clip_grad_norm 2, fp32) on 2 threads, in the same sitting:
#   lm_contig   MbLS (logit_margin, margin 10, alpha 0.1), contiguous tensors
#   lm_cl       MbLS, channels-last
#   ce_contig   plain cross-entropy, contiguous (for the MbLS / CE cost ratio)
# each configuration run by mbls and PyTorch alternately (the order flips every round), each run
# under /usr/bin/time -v (peak RSS), with OMP_NUM_THREADS=2 MKL_NUM_THREADS=2; plus, per
# configuration and round, the pure compute of mbls on a fixed batch (bench_models, as many
# steps as the epoch has batches; PyTorch measures its own inside torch_train.py).
#
#   bash bench/compare_train.sh [ROUNDS] [TRAIN_IMAGES]      # defaults: 1 round, 2560 images
#
# EPOCHS (default 1): epochs per mbls run. With more than one, mbls's phase times are the
# median over its warm epochs (1, 2, ...; epoch 0 carries the first steps' kernel and
# allocator warm-up, which the fixed-batch medians leave out). MBLS_ONLY=1 skips the PyTorch
# runs (for the overhead of mbls's own pipeline and the MbLS / CE cost).
#
# TRAIN_IMAGES (a multiple of 10, at most 50000): the first TRAIN_IMAGES/10 images (file-name
# order) of each class of train/ and the first 100 of each class of test/ are extracted once
# into a temporary folder with the same layout; the split makes 10 % of them validation
# (2560 -> 2304 train images = 18 batches, 256 validation images = 2 batches).
# Environment: CIFAR10_JPG (archive; default ../shared/data/cifar10-jpg.tar.gz from the repo
# root), WORKERS (loader workers, default 4), MBLS_BENCH_DIR (keep the subset, logs and run
# folders there instead of a temporary folder removed at the end).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${1:-1}"; n="${2:-2560}"; workers="${WORKERS:-4}"; epochs="${EPOCHS:-1}"
archive="${CIFAR10_JPG:-${MBLS_SHARED:-$root/../shared}/data/cifar10-jpg.tar.gz}"
if (( n % 10 != 0 || n < 10 || n > 50000 )); then
  echo "TRAIN_IMAGES must be a multiple of 10 in 10..50000 (got $n)" >&2; exit 2
fi
per_class=$((n / 10))
n_val=$((n / 10))                       # floor(0.1 * n), as the reference's split
n_train=$((n - n_val))
batches=$((n_train / 128))              # drop_last
if (( batches < 1 )); then echo "TRAIN_IMAGES=$n gives no full training batch" >&2; exit 2; fi
if [ ! -f "$archive" ]; then echo "missing $archive (CIFAR-10 JPEG copy); set CIFAR10_JPG" >&2; exit 2; fi

source "$root/bench/venv.sh"
bench_python torchvision==0.26.0
cd "$root"

if [ -n "${MBLS_BENCH_DIR:-}" ]; then
  tmp="$MBLS_BENCH_DIR"; mkdir -p "$tmp"
else
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
fi
data="$tmp/data"; logs="$tmp/logs"; mkdir -p "$logs"

# ---- the subset, extracted once
if [ ! -f "$data/.complete-$n" ]; then
  rm -rf "$data"; mkdir -p "$data"
  tar tzf "$archive" | "$PY" -c '
import sys, collections
k = int(sys.argv[1])
by = collections.defaultdict(list)
for line in sys.stdin:
    p = line.rstrip("\n").removeprefix("./")
    parts = p.split("/")
    if len(parts) == 3 and parts[0] in ("train", "test") and parts[2].lower().endswith((".jpg", ".jpeg")):
        by[(parts[0], parts[1])].append(p)
for (split, cls), files in sorted(by.items()):
    want = k if split == "train" else 100
    if len(files) < want:
        sys.exit(f"{split}/{cls}: only {len(files)} images, {want} wanted")
    print("\n".join(sorted(files)[:want]))
' "$per_class" >"$tmp/subset.txt"
  tar xzf "$archive" -C "$data" -T "$tmp/subset.txt"
  got=$(find "$data/train" -type f | wc -l)
  if (( got != n )); then echo "subset: $got train images extracted, $n wanted" >&2; exit 1; fi
  touch "$data/.complete-$n"
fi
echo "subset: $n train images ($n_train train + $n_val validation after the split, $batches batches)," \
     "$(find "$data/test" -type f | wc -l) test images in $data" >&2

# ---- builds
bash scripts/setup-libtorch.sh >/dev/null
cargo build --release -q -p mbls
cargo build --release -q -p mbls-engine --features jemalloc --example bench_models

export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
manifest="$tmp/manifest.jsonl"; : >"$manifest"

# run NAME KIND IMPL CFG ROUND RUN_DIR COMMAND...: runs it under /usr/bin/time -v, logs to
# $logs/NAME.{out,err,time}, and records it in the manifest (a failed run is recorded, not fatal).
run() {
  local name=$1 kind=$2 impl=$3 cfg=$4 r=$5 dir=$6; shift 6
  echo "[$(date +%H:%M:%S)] $name: $*" >&2
  local rc=0
  /usr/bin/time -v -o "$logs/$name.time" "$@" >"$logs/$name.out" 2>"$logs/$name.err" || rc=$?
  if (( rc != 0 )); then echo "  failed (rc $rc); see $logs/$name.err" >&2; fi
  printf '{"name":"%s","kind":"%s","impl":"%s","cfg":"%s","round":%d,"rc":%d,"run_dir":"%s"}\n' \
    "$name" "$kind" "$impl" "$cfg" "$r" "$rc" "$dir" >>"$manifest"
}

mbls_train() { # CFG ROUND
  local cfg=$1 r=$2 loss cl dir
  case $cfg in
    lm_contig) loss=(loss=logit_margin loss.margin=10 loss.alpha=0.1); cl=false ;;
    lm_cl)     loss=(loss=logit_margin loss.margin=10 loss.alpha=0.1); cl=true ;;
    ce_contig) loss=(loss=ce); cl=false ;;
  esac
  dir="$tmp/run_${cfg}_r$r"; rm -rf "$dir"
  run "mbls_train_${cfg}_r$r" train mbls "$cfg" "$r" "$dir" \
    target/release/mbls train data=folder data.data_root="$data" data.num_workers="$workers" \
    model=resnet18_cifar "${loss[@]}" optim=sgd optim.lr=0.1 train.max_epoch="$epochs" \
    train.channels_last=$cl hydra.run.dir="$dir"
}

torch_train() { # CFG ROUND
  if [ -n "${MBLS_ONLY:-}" ]; then return; fi
  local cfg=$1 r=$2 args=()
  case $cfg in
    lm_contig) args=(--loss logit_margin) ;;
    lm_cl)     args=(--loss logit_margin --channels-last) ;;
    ce_contig) args=(--loss ce) ;;
  esac
  run "pytorch_train_${cfg}_r$r" train pytorch "$cfg" "$r" "" \
    "$PY" bench/torch_train.py "$data" --model resnet18_cifar "${args[@]}" \
    --threads 2 --workers "$workers" --epochs 1 --seed 1
}

mbls_fixed() { # CFG ROUND
  local cfg=$1 r=$2 args=()
  case $cfg in
    lm_contig) args=(--loss logit_margin) ;;
    lm_cl)     args=(--loss logit_margin --channels-last) ;;
    ce_contig) args=(--loss ce) ;;
  esac
  run "mbls_fixed_${cfg}_r$r" fixed mbls "$cfg" "$r" "" \
    target/release/examples/bench_models resnet18_cifar --steps "$batches" --threads 2 --clip 2 "${args[@]}"
}

for r in $(seq "$rounds"); do
  for cfg in lm_contig lm_cl ce_contig; do
    if (( r % 2 == 1 )); then mbls_train "$cfg" "$r"; torch_train "$cfg" "$r"
    else torch_train "$cfg" "$r"; mbls_train "$cfg" "$r"; fi
    mbls_fixed "$cfg" "$r"
  done
done

"$PY" - "$tmp" <<'PY'
import json, os, re, statistics as st, sys

tmp = sys.argv[1]
logs = f"{tmp}/logs"
runs = [json.loads(l) for l in open(f"{tmp}/manifest.jsonl")]
CFGS = ("lm_contig", "lm_cl", "ce_contig")
LABEL = {"lm_contig": "MbLS, contiguous", "lm_cl": "MbLS, channels-last", "ce_contig": "CE, contiguous"}


def rss_mib(name):
    try:
        t = open(f"{logs}/{name}.time").read()
        return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
    except (OSError, AttributeError):
        return None


def mbls_train(run):
    """Train/Val records of the run folder's epochs.jsonl: epoch 0 of a one-epoch run, else the
    median phase times over the warm epochs (1, 2, ...) and the last epoch's loss and accuracy."""
    rec = {}
    with open(os.path.join(run["run_dir"], "epochs.jsonl")) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                if r.get("phase") in ("Train", "Val", "Test"):
                    rec.setdefault(r["phase"], {})[r["epoch"]] = r
    epochs = sorted(rec["Train"])
    warm = [e for e in epochs if e > 0] or epochs
    tr, va = rec["Train"], rec["Val"]
    last = epochs[-1]
    test = rec.get("Test", {})
    test = next(iter(test.values()), None)
    return dict(train_seconds=st.median(float(tr[e]["time"]) for e in warm),
                train_images=int(tr[last]["samples"]), train_loss=tr[last].get("loss"),
                val_seconds=st.median(float(va[e]["time"]) for e in warm),
                val_images=int(va[last]["samples"]), val_acc=va[last].get("acc"),
                epochs_timed=len(warm),
                test_seconds=float(test["time"]) if test and "time" in test else None,
                test_images=int(test["samples"]) if test else None)


def mbls_fixed(run):
    m = {}
    for line in open(f"{logs}/{run['name']}.out"):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            if r.get("measure") in ("train_step", "inference"):
                m[r["measure"]] = r["median_s"]
    return dict(step_median_s=m["train_step"], infer_median_s=m["inference"])


def torch_result(run):
    for line in open(f"{logs}/{run['name']}.out"):
        if line.startswith("RESULT "):
            r = json.loads(line[len("RESULT "):])
            r["step_median_s"], r["infer_median_s"] = r["fixed_step_median_s"], r["fixed_infer_median_s"]
            return r
    raise ValueError("no RESULT line")


rows = {}  # (impl, cfg) -> list of per-round dicts
fixed = {}  # (cfg, round) -> mbls fixed medians
failed = []
for run in runs:
    try:
        if run["rc"] != 0:
            raise RuntimeError(f"rc {run['rc']}")
        if run["kind"] == "fixed":
            fixed[(run["cfg"], run["round"])] = mbls_fixed(run)
            continue
        v = mbls_train(run) if run["impl"] == "mbls" else torch_result(run)
        v["round"], v["rss"] = run["round"], rss_mib(run["name"])
        rows.setdefault((run["impl"], run["cfg"]), []).append(v)
    except Exception as e:  # noqa: BLE001 -- report and go on
        failed.append(f"{run['name']}: {type(e).__name__}: {e}")

# The pure compute of as many batches as the phase had: median fixed-batch step (or inference)
# time x images / 128, for both implementations alike (mbls: bench_models of the same round).
for (impl, cfg), vs in rows.items():
    for v in vs:
        f = fixed.get((cfg, v["round"])) if impl == "mbls" else v
        if f:
            v["ovh_train"] = v["train_seconds"] / (f["step_median_s"] * v["train_images"] / 128)
            v["ovh_val"] = v["val_seconds"] / (f["infer_median_s"] * v["val_images"] / 128)
            if v.get("test_seconds"):
                v["ovh_test"] = v["test_seconds"] / (f["infer_median_s"] * v["test_images"] / 128)
            v["step_ips"], v["infer_ips"] = 128 / f["step_median_s"], 128 / f["infer_median_s"]
        v["train_ips"] = v["train_images"] / v["train_seconds"]
        v["val_ips"] = v["val_images"] / v["val_seconds"]


def med(impl, cfg, key):
    xs = [v[key] for v in rows.get((impl, cfg), []) if v.get(key) is not None]
    return st.median(xs) if xs else None


def mx(impl, cfg, key):
    xs = [v[key] for v in rows.get((impl, cfg), []) if v.get(key) is not None]
    return max(xs) if xs else None


def fmt(x, spec=".1f"):
    return "n/a" if x is None else format(x, spec)


def ratio(a, b, spec=".3f"):
    return "n/a" if a is None or b is None or b == 0 else format(a / b, spec)


n_rounds = max((r["round"] for r in runs), default=0)
EPOCHS_NOTE = "1.. (warm)" if int(os.environ.get("EPOCHS", "1")) > 1 else "0 (cold)"
print(f"\nmedians over {n_rounds} round(s), mbls epochs {EPOCHS_NOTE}; overhead = phase time / (median fixed-batch step or inference "
      "x images/128); peak RSS = max over rounds of /usr/bin/time's figure")
print()
print("| configuration | impl | train images/s | val images/s | fixed step images/s | fixed infer images/s "
      "| overhead train | overhead val | peak RSS MiB | train loss | val acc |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for cfg in CFGS:
    for impl in ("mbls", "pytorch"):
        print(f"| {LABEL[cfg]} | {impl} | {fmt(med(impl, cfg, 'train_ips'))} | {fmt(med(impl, cfg, 'val_ips'))} "
              f"| {fmt(med(impl, cfg, 'step_ips'))} | {fmt(med(impl, cfg, 'infer_ips'))} "
              f"| {fmt(med(impl, cfg, 'ovh_train'), '.2f')} | {fmt(med(impl, cfg, 'ovh_val'), '.2f')} "
              f"| {fmt(mx(impl, cfg, 'rss'), '.0f')} | {fmt(med(impl, cfg, 'train_loss'), '.4f')} "
              f"| {fmt(med(impl, cfg, 'val_acc'), '.4f')} |")

print()
print("test pass (mbls, with the best model, its test split) / fixed inference x images/128: "
      + ", ".join(f"{LABEL[c]} {fmt(med('mbls', c, 'ovh_test'), '.3f')}" for c in CFGS))

print()
print("| configuration | mbls / PyTorch train images/s | val images/s | fixed step | fixed infer | peak RSS |")
print("|---|---|---|---|---|---|")
for cfg in CFGS:
    print(f"| {LABEL[cfg]} | {ratio(med('mbls', cfg, 'train_ips'), med('pytorch', cfg, 'train_ips'))} "
          f"| {ratio(med('mbls', cfg, 'val_ips'), med('pytorch', cfg, 'val_ips'))} "
          f"| {ratio(med('mbls', cfg, 'step_ips'), med('pytorch', cfg, 'step_ips'))} "
          f"| {ratio(med('mbls', cfg, 'infer_ips'), med('pytorch', cfg, 'infer_ips'))} "
          f"| {ratio(mx('mbls', cfg, 'rss'), mx('pytorch', cfg, 'rss'))} |")

print()
print("| impl | channels-last / contiguous (MbLS) train images/s | val images/s | fixed step | fixed infer "
      "| MbLS / CE train-phase time | MbLS / CE fixed step time |")
print("|---|---|---|---|---|---|---|")
for impl in ("mbls", "pytorch"):
    lm_t, ce_t = med(impl, "lm_contig", "train_ips"), med(impl, "ce_contig", "train_ips")
    lm_s, ce_s = med(impl, "lm_contig", "step_ips"), med(impl, "ce_contig", "step_ips")
    print(f"| {impl} | {ratio(med(impl, 'lm_cl', 'train_ips'), lm_t)} "
          f"| {ratio(med(impl, 'lm_cl', 'val_ips'), med(impl, 'lm_contig', 'val_ips'))} "
          f"| {ratio(med(impl, 'lm_cl', 'step_ips'), lm_s)} "
          f"| {ratio(med(impl, 'lm_cl', 'infer_ips'), med(impl, 'lm_contig', 'infer_ips'))} "
          f"| {ratio(ce_t, lm_t)} | {ratio(ce_s, lm_s)} |")

print()
print("note: PyTorch's loader workers are separate processes; /usr/bin/time's peak RSS is the largest single "
      "process, so its total memory is higher (torch_train.py's RESULT also gives children_max_rss_kb).")
if failed:
    keep = "" if os.environ.get("MBLS_BENCH_DIR") else " (set MBLS_BENCH_DIR to keep them)"
    print(f"\nfailed or unreadable runs; logs in {logs}{keep}:")
    for f in failed:
        print("  " + f)
PY
