#!/usr/bin/env bash
# Compares the CIFAR-10 training input pipeline of mbls-data with torchvision's DataLoader:
# same folder of JPEGs, same transforms, batch 128, 2 workers, shuffle, drop_last.
# Runs both alternately ROUNDS times (default 3) under /usr/bin/time -v and prints images/s,
# peak RSS and the ratio of the medians.
#
#   bench/compare_loader.sh [ROUNDS] [EPOCHS]
#
# Extracts ../shared/data/cifar10-jpg.tar.gz (or $MBLS_SHARED/data/..., or $CIFAR10_JPG) into
# target/cifar10-jpg if missing. Uses bench/.venv (torch 2.11), adding torchvision 0.26.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
EPOCHS=${2:-1}
ARCHIVE=${CIFAR10_JPG:-${MBLS_SHARED:-../shared}/data/cifar10-jpg.tar.gz}
DATA=target/cifar10-jpg
source bench/venv.sh
bench_python torchvision==0.26.0
OUT=${OUT_DIR:-target/compare_loader}
mkdir -p "$OUT"

if [ ! -d "$DATA/train" ]; then
    if [ ! -f "$ARCHIVE" ]; then
        echo "missing $ARCHIVE (CIFAR-10 JPEG copy); set CIFAR10_JPG" >&2
        exit 2
    fi
    mkdir -p "$DATA"
    tar xzf "$ARCHIVE" -C "$DATA"
fi

cargo build --release -p mbls-data --example bench_loader
BIN=target/release/examples/bench_loader

run() { # name, command...
    local name=$1; shift
    /usr/bin/time -v "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
    local ips rss
    ips=$(grep -o 'images_per_s=[0-9.]*' "$OUT/$name.out" | cut -d= -f2)
    rss=$(grep 'Maximum resident set size' "$OUT/$name.err" | awk '{print $NF}')
    echo "$name images_per_s=$ips peak_rss_kb=$rss" | tee -a "$OUT/summary.txt"
}

: >"$OUT/summary.txt"
for r in $(seq 1 "$ROUNDS"); do
    run "torchvision_r$r" "$PY" bench/torchvision_loader.py "$DATA/train" --epochs "$EPOCHS" --workers 2
    run "rust_r$r" "$BIN" "$DATA/train" --epochs "$EPOCHS" --workers 2
done
run "rust_cached" "$BIN" "$DATA/train" --epochs "$EPOCHS" --workers 2 --cached

"$PY" - "$OUT/summary.txt" <<'PYEOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, ips, rss = line.split()
    kind = name.rsplit("_r", 1)[0] if "_r" in name else name
    rows.setdefault(kind, []).append((float(ips.split("=")[1]), int(rss.split("=")[1])))
med = {k: statistics.median(v[0] for v in vs) for k, vs in rows.items()}
for k, vs in rows.items():
    print(f"{k:12s} median {med[k]:10.0f} images/s over {len(vs)} run(s); "
          f"peak RSS max {max(v[1] for v in vs) / 1024:.0f} MiB")
print(f"ratio rust/torchvision (decode every epoch): {med['rust'] / med['torchvision']:.2f}x")
if "rust_cached" in med:
    print(f"ratio rust cached/torchvision: {med['rust_cached'] / med['torchvision']:.2f}x")
PYEOF
echo "note: /usr/bin/time reports the largest single process; torchvision's 2 worker processes" \
     "are separate processes, so its total memory is higher than its peak RSS line."
