#!/usr/bin/env bash
# Sets everything up (libtorch, once; release build) and runs the main job on the small real
# example that ships with the repository: calibration of an over-confident digits classifier
# before and after temperature scaling, with reliability diagrams written to out/digits/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
command -v cargo >/dev/null || { echo "error: cargo (Rust) is needed: https://rustup.rs" >&2; exit 1; }
bash scripts/setup-libtorch.sh >/dev/null
cargo build --release -p mbls
./target/release/mbls eval examples/digits/test.npz \
  --temperature grid --val examples/digits/val.npz \
  --bootstrap 1000 --seed 1 --plot out/digits "$@"
