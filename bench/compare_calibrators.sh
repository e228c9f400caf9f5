#!/usr/bin/env bash
# Reference fits of other libraries' post-hoc calibrators (torch-uncertainty, netcal, and
# scikit-learn's sigmoid / isotonic / temperature, which netcal brings along) on seeded
# float32 logits, for the Rust calibrators to be compared against. Writes the .npy inputs
# and reference.json under bench/out/calibrators_k{K}_n{N}_s{SEED}/ (or --out DIR).
#   bash bench/compare_calibrators.sh [--n 50000] [--k 100] [--seed 0] [--only ...] [--skip ...]
#   bash bench/compare_calibrators.sh --k 2        # binary variant: Platt, beta, 1-D paths
#
# Pins: netcal==1.4.0 (the latest; it needs numpy>=2, scipy>=1.11, torch>=2.3, pyro-ppl,
# gpytorch, tensorboard, scikit-learn>=1.3 and pins nothing old, so it sits with torch
# 2.11.0 and the scikit-learn==1.9.1 that compat_parity.sh pins). torch-uncertainty==0.13.0
# declares only einops and seaborn, but importing it at all (torch_uncertainty/__init__.py
# -> utils) needs lightning, torchvision, matplotlib and rich, so those are listed here;
# torchvision 0.26.0 is the one built for torch 2.11.0. Do NOT install
# torch-uncertainty[others]: it pins scikit-learn<1.7 and would downgrade 1.9.1.
# betacal==1.1.0 (pure Python) adds the reference beta calibration for --k 2.
# dirichletcal 0.5.x needs Python >= 3.12 (this venv is 3.11; pip would fall back to the
# broken 0.1.dev1/0.3.devN releases), so it is not installed; the script skips it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/venv.sh"
bench_python scikit-learn==1.9.1 netcal==1.4.0 torch-uncertainty==0.13.0 "lightning>=2.0,<2.7" \
  torchvision==0.26.0 rich betacal==1.1.0
cd "$root"
OMP_NUM_THREADS=2 "$PY" bench/calibrators.py --threads 2 "$@"
