#!/usr/bin/env bash
# Regenerates crates/plain/mbls-metrics/tests/data/compat_parity.json: what torchmetrics,
# netcal, scikit-learn, relplot and uncertainty-calibration report on fixed seeded inputs.
#   bash bench/compat_parity.sh [--out PATH]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/venv.sh"
bench_python torchmetrics==1.9.0 scikit-learn==1.9.1 netcal==1.4.0 relplot==1.0.3 \
  uncertainty-calibration==0.1.4
cd "$root"
OMP_NUM_THREADS=1 "$PY" bench/compat_parity.py "$@"
