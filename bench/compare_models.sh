#!/usr/bin/env bash
# Side-by-side model benchmark: training step (forward + CE + backward + SGD) and inference
# throughput of resnet18_cifar and resnet50_cifar at batch 128 on 2 threads, mbls (libtorch via
# tch) and PyTorch alternately in the same sitting, each run under /usr/bin/time -v for peak RSS.
#   bash bench/compare_models.sh [ROUNDS] [STEPS] [--channels-last]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${1:-2}"; steps="${2:-4}"; extra="${3:-}"
source "$root/bench/venv.sh"
bench_python
cd "$root"
bash scripts/setup-libtorch.sh >/dev/null
cargo build --release -q -p mbls-engine --features jemalloc --example bench_models
out="$(mktemp -d)"
for r in $(seq "$rounds"); do
  for m in resnet18_cifar resnet50_cifar; do
    for impl in mbls pytorch; do
      if [ "$impl" = mbls ]; then cmd=(target/release/examples/bench_models "$m" --steps "$steps" $extra)
      else cmd=("$PY" bench/torch_models.py "$m" --steps "$steps" $extra); fi
      OMP_NUM_THREADS=2 /usr/bin/time -v "${cmd[@]}" >>"$out/results.jsonl" 2>"$out/time.txt"
      rss=$(awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' "$out/time.txt")
      echo "{\"impl\":\"$impl\",\"model\":\"$m\",\"round\":$r,\"peak_rss_kb\":$rss}" >>"$out/rss.jsonl"
    done
  done
done
"$PY" - "$out" <<'PY'
import json, sys, statistics as st
out = sys.argv[1]
res = [json.loads(l) for l in open(f"{out}/results.jsonl")]
rss = [json.loads(l) for l in open(f"{out}/rss.jsonl")]
print("| model | measure | mbls images/s | PyTorch images/s | mbls / PyTorch | peak RSS mbls / PyTorch (MiB) |")
print("|---|---|---|---|---|---|")
for m in ("resnet18_cifar", "resnet50_cifar"):
    r = {i: max(x["peak_rss_kb"] for x in rss if x["impl"] == i and x["model"] == m) / 1024 for i in ("mbls", "pytorch")}
    for what in ("train_step", "inference"):
        v = {i: st.median(x["images_per_s"] for x in res if x["impl"] == i and x["model"] == m and x["measure"] == what) for i in ("mbls", "pytorch")}
        print(f"| {m} | {what} | {v['mbls']:.1f} | {v['pytorch']:.1f} | {v['mbls']/v['pytorch']:.3f} | {r['mbls']:.0f} / {r['pytorch']:.0f} |")
PY
