#!/usr/bin/env bash
# Side-by-side loss benchmark: forward + backward of CE, MbLS, focal, FLSD-53 and MMCE in
# mbls (libtorch through tch) and in PyTorch, same machine, same sitting, 2 threads each.
#   bash bench/compare_losses.sh [REPEATS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repeats="${1:-20}"
source "$root/bench/venv.sh"
bench_python
cd "$root"
bash scripts/setup-libtorch.sh >/dev/null
cargo build --release -q -p mbls-engine --features jemalloc --example bench_losses
out="$(mktemp -d)"
OMP_NUM_THREADS=2 target/release/examples/bench_losses "$repeats" 2 | tee "$out/mbls.jsonl"
OMP_NUM_THREADS=2 "$PY" bench/torch_losses.py --repeats "$repeats" --threads 2 | tee "$out/torch.jsonl"
"$PY" - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows = {}
for f in ("mbls.jsonl", "torch.jsonl"):
    for l in open(f"{out}/{f}"):
        r = json.loads(l)
        rows[(r["impl"], r["loss"], r["shape"])] = r
print()
print("| shape | loss | mbls ms | mbls / CE | PyTorch ms | PyTorch / CE | mbls speed-up |")
print("|---|---|---|---|---|---|---|")
for (impl, loss, shape), r in rows.items():
    if impl != "mbls":
        continue
    t = rows.get(("pytorch", loss, shape))
    print(f"| {shape} | {loss} | {r['median_s']*1e3:.3f} | {r['vs_ce']:.2f} | "
          f"{t['median_s']*1e3:.3f} | {t['vs_ce']:.2f} | {t['median_s']/r['median_s']:.2f}x |")
PY
