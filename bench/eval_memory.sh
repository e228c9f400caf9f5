#!/usr/bin/env bash
# Whole-process cost of `mbls eval` on large classification inputs: peak RSS and wall time
# against the time to read the same files from the page cache, and against the baseline
# RSS of the process (the same binary on a 10-sample input). Inputs: seeded float32 logits
# N x C with int64 labels, as two .npy files, as a stored .npz (np.savez) and as a deflated
# .npz (np.savez_compressed).
#
#   bash bench/eval_memory.sh [N] [C] [REPEATS]      # default 1000000 100 3
#
# Needs numpy (bench/.venv, made on first use) and builds the release binary.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n="${1:-1000000}"
c="${2:-100}"
repeats="${3:-3}"
source "$root/bench/venv.sh"
bench_python
cd "$root"
cargo build --release -q -p mbls
bin="$root/target/release/mbls"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$PY" - "$out" "$n" "$c" <<'PY'
import sys, numpy as np
out, n, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
y = rng.integers(0, c, size=n).astype(np.int64)
z = np.empty((n, c), np.float32)
for s in range(0, n, 100000):  # in slices: the generator's own peak stays small
    e = min(n, s + 100000)
    z[s:e] = rng.standard_normal((e - s, c), dtype=np.float32) * 2
    z[np.arange(s, e), y[s:e]] += 3
np.save(f"{out}/logits.npy", z)
np.save(f"{out}/labels.npy", y)
np.savez(f"{out}/stored.npz", logits=z, labels=y)
np.savez_compressed(f"{out}/deflated.npz", logits=z, labels=y)
np.savez(f"{out}/tiny.npz", logits=z[:10], labels=y[:10])
PY
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# wall seconds and peak RSS (MiB) of one run of "$@", measured by /usr/bin/time
measure() {
  /usr/bin/time -f "%e %M" -o "$out/t" "$@" >/dev/null
  awk '{printf "%s %.1f\n", $1, $2 / 1024}' "$out/t"
}
base=$(measure "$bin" eval "$out/tiny.npz" | awk '{print $2}')
echo "baseline peak RSS (10 samples): $base MiB"
echo
echo "| input | bytes (MiB) | read from page cache s | mbls eval s | eval / read | peak RSS MiB | (RSS - baseline) / input |"
echo "|---|---|---|---|---|---|---|"
for input in npy stored deflated; do
  case "$input" in
    npy) files=("$out/logits.npy" "$out/labels.npy") ;;
    *) files=("$out/$input.npz") ;;
  esac
  bytes=$(cat "${files[@]}" | wc -c)
  cat "${files[@]}" >/dev/null  # warm the page cache
  reads=() evals=() rss=()
  for _ in $(seq "$repeats"); do
    reads+=("$(measure cat "${files[@]}" | awk '{print $1}')")
    r=$(measure "$bin" eval "${files[@]}")
    evals+=("${r% *}") rss+=("${r#* }")
  done
  rd=$(printf '%s\n' "${reads[@]}" | median)
  ev=$(printf '%s\n' "${evals[@]}" | median)
  mx=$(printf '%s\n' "${rss[@]}" | median)
  awk -v i="$input" -v b="$bytes" -v rd="$rd" -v ev="$ev" -v mx="$mx" -v base="$base" 'BEGIN {
    mib = b / 1048576
    printf "| %s | %.0f | %.2f | %.2f | %.1fx | %.0f | %.3f |\n", i, mib, rd, ev, (rd > 0 ? ev / rd : 0), mx, (mx - base) / mib
  }'
done
