#!/usr/bin/env bash
# Our side of the calibrator comparison (issue 15, item 6), on the inputs that
# bench/calibrators.py wrote (bench/compare_calibrators.sh runs both in one sitting):
#   1. bench_calibrators DIR REPEATS  -> DIR/mbls_bench.jsonl (median in-process fit / apply
#      seconds of every method at its default options; RAYON_NUM_THREADS=2)
#   2. `mbls calibrate fit` for every variant that bench/compare_calibrators.py
#      --print-variants lists (defaults, unregularised matrix / Dirichlet, the ODIR run that
#      matches torch-uncertainty's dirichlet_odir, 10-bin histogram for netcal)
#      -> DIR/mbls/VARIANT.json, and `mbls calibrate apply` to the test set -> VARIANT.npz,
#      wall-clock of each in DIR/mbls/cli_times.json
#   3. bench/compare_calibrators.py DIR -> markdown table on stdout and in DIR/comparison.md
#
#   bash bench/compare_calibrators_mbls.sh DIR [REPEATS]
#
# Builds the release binaries with cargo unless MBLS_NO_BUILD=1; MBLS_BIN and BENCH_BIN
# override the binaries (defaults target/release/mbls and
# target/release/examples/bench_calibrators). PY: the python to run the comparison with
# (default bench/.venv/bin/python, else python3; it needs numpy only).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$(cd "${1:?usage: compare_calibrators_mbls.sh DIR [REPEATS]}" && pwd)"
repeats="${2:-3}"
cd "$root"
if [ "${MBLS_NO_BUILD:-0}" != 1 ]; then
  bash scripts/setup-libtorch.sh >/dev/null
  cargo build --release -q -p mbls
  cargo build --release -q -p mbls-metrics --example bench_calibrators
fi
mbls="${MBLS_BIN:-$root/target/release/mbls}"
bench="${BENCH_BIN:-$root/target/release/examples/bench_calibrators}"
py="${PY:-}"
if [ -z "$py" ]; then
  if [ -x "$root/bench/.venv/bin/python" ]; then py="$root/bench/.venv/bin/python"; else py=python3; fi
fi
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2

"$bench" "$dir" "$repeats" | tee "$dir/mbls_bench.jsonl"

mkdir -p "$dir/mbls"
now() { date +%s%N; }
times="$dir/mbls/cli_times.tsv"
: > "$times"
while IFS=$'\t' read -r variant method extra; do
  # shellcheck disable=SC2086  # extra holds separate arguments
  t0="$(now)"
  "$mbls" calibrate fit --method "$method" $extra \
    --val "$dir/val_logits.npy" "$dir/val_labels.npy" -o "$dir/mbls/$variant.json" </dev/null >"$dir/mbls/$variant.fit.log"
  t1="$(now)"
  "$mbls" calibrate apply --calibrator "$dir/mbls/$variant.json" \
    "$dir/test_logits.npy" "$dir/test_labels.npy" -o "$dir/mbls/$variant.npz" </dev/null >"$dir/mbls/$variant.apply.log"
  t2="$(now)"
  printf '%s\t%s\t%s\n' "$variant" "$((t1 - t0))" "$((t2 - t1))" >> "$times"
  echo "$variant: $(head -1 "$dir/mbls/$variant.fit.log")" >&2
done < <("$py" bench/compare_calibrators.py "$dir" --print-variants)
"$py" - "$times" "$dir/mbls/cli_times.json" <<'PY'
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
json.dump({v: {"fit_wall_s": int(f) / 1e9, "apply_wall_s": int(a) / 1e9} for v, f, a in rows},
          open(sys.argv[2], "w"), indent=1)
PY

"$py" bench/compare_calibrators.py "$dir" --out "$dir/comparison.md"
