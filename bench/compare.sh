#!/usr/bin/env bash
# Side-by-side benchmark of mbls-metrics against PyTorch, same machine, same sitting, same
# inputs (written by the PyTorch script, read by the Rust example), 2 threads each.
# Prints a markdown table of median times, ratios, peak memory and the metric values.
#
#   bash bench/compare.sh [REPEATS]
#
# Needs PyTorch: a virtual environment in bench/.venv is made with torch==2.11.0 from PyPI
# the first time (large download).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repeats="${1:-3}"
source "$root/bench/venv.sh"
bench_python
if [ -n "${MBLS_BENCH_DIR:-}" ]; then
  out="$MBLS_BENCH_DIR"
else
  # about 0.6 GB of logits: removed when the script ends
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
cd "$root"
cargo build --release -q -p mbls-metrics --example bench_metrics
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
"$PY" bench/torch_metrics.py --threads 2 --repeats "$repeats" --save "$out" | tee "$out/torch.jsonl"
: > "$out/mbls.jsonl"
for which in classification segmentation; do
  /usr/bin/time -v -o "$out/time_$which.txt" \
    target/release/examples/bench_metrics "$out" "$repeats" "$which" | tee -a "$out/mbls.jsonl"
done
"$PY" - "$out" <<'PY'
import json, re, sys
out = sys.argv[1]
rows = [json.loads(l) for f in ("torch.jsonl", "mbls.jsonl") for l in open(f"{out}/{f}")]
def rss(which):
    t = open(f"{out}/time_{which}.txt").read()
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
print()
print("| set | implementation | median s | mbls speed-up |")
print("|---|---|---|---|")
for s in sorted({r["set"] for r in rows}):
    ours = [r for r in rows if r["set"] == s and r["impl"] == "mbls"][0]["median_s"]
    for r in [r for r in rows if r["set"] == s]:
        print(f"| {s} | {r['impl']} | {r['median_s']:.3f} | {r['median_s'] / ours:.1f}x |")
print()
for w in ("classification", "segmentation"):
    print(f"peak RSS of the mbls {w} process (input loaded + metrics): {rss(w):.0f} MiB")
print()
for s in sorted({r["set"] for r in rows}):
    print(s)
    for r in [r for r in rows if r["set"] == s]:
        print("  ", r["impl"], json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in r["values"].items()}))
PY
