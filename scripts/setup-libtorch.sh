#!/usr/bin/env bash
# Fetch libtorch 2.11.0 (the version tch 0.24 is built for) from PyPI's torch wheel, once,
# into an ignored cache folder of the repository (.libtorch/). Offline machines reach PyPI.
#
# Usage: scripts/setup-libtorch.sh        # prints the LIBTORCH path on its last line
#
# If LIBTORCH is already set by the user, nothing is downloaded and that path is used.
set -euo pipefail

TORCH_VERSION=2.11.0
CUDA_RT=13.0.96      # libcudart.so.13, needed by libtorch_cpu.so
CUPTI=13.0.85        # libcupti.so.13, needed by libtorch_cpu.so

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${MBLS_LIBTORCH_DIR:-$root/.libtorch}"

if [ -n "${LIBTORCH:-}" ]; then
  echo "LIBTORCH is set by the user: $LIBTORCH (nothing to fetch)" >&2
  echo "$LIBTORCH"
  exit 0
fi

stamp="$dest/.complete-$TORCH_VERSION"
if [ -f "$stamp" ] && [ -f "$dest/torch/lib/libtorch_cpu.so" ]; then
  echo "$dest/torch"
  exit 0
fi

py="$(command -v python3 || command -v python || true)"
if [ -z "$py" ]; then
  echo "error: python3 with pip is needed once to fetch libtorch from PyPI" >&2
  exit 1
fi

echo "fetching torch==$TORCH_VERSION (about 530 MB, once) into $dest ..." >&2
tmp="$dest.partial"
rm -rf "$tmp"
mkdir -p "$tmp"
"$py" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
  --target "$tmp" \
  "torch==$TORCH_VERSION" "nvidia-cuda-runtime==$CUDA_RT" "nvidia-cuda-cupti==$CUPTI" >&2
# Drop what a tch binary never loads, to keep the cache small.
rm -rf "$tmp/torch/_inductor" "$tmp/torch/testing" "$tmp/functorch" "$tmp/torchgen" 2>/dev/null || true
test -f "$tmp/torch/lib/libtorch_cpu.so" || { echo "error: libtorch_cpu.so missing after install" >&2; exit 1; }
rm -rf "$dest"
mv "$tmp" "$dest"
touch "$dest/.complete-$TORCH_VERSION"
echo "$dest/torch"
