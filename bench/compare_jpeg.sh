#!/usr/bin/env bash
# JPEG pixels of mbls-data against PIL's (what torchvision's ImageFolder gives PyTorch users):
# every *.jpg of the CIFAR-10 JPEG copy (60,000 images) decoded by both, compared value by
# value: mean absolute difference, per-channel bias, largest difference, and the decoding time
# per image of each (one thread).
#
#   bash bench/compare_jpeg.sh
#
# Extracts ../shared/data/cifar10-jpg.tar.gz (or $MBLS_SHARED/data/..., or $CIFAR10_JPG) into
# target/cifar10-jpg if missing. Uses a small virtual environment with Pillow and NumPy
# (target/pil-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHIVE=${CIFAR10_JPG:-${MBLS_SHARED:-../shared}/data/cifar10-jpg.tar.gz}
DATA=target/cifar10-jpg
OUT=target/compare_jpeg
mkdir -p "$OUT"
if [ ! -d "$DATA/train" ]; then
    if [ ! -f "$ARCHIVE" ]; then
        echo "missing $ARCHIVE (CIFAR-10 JPEG copy); set CIFAR10_JPG" >&2
        exit 2
    fi
    mkdir -p "$DATA"
    tar xzf "$ARCHIVE" -C "$DATA"
fi
VENV=target/pil-venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q pillow numpy
fi
cargo build -q --release -p mbls-data --example jpeg_dump
"$VENV/bin/python" bench/pil_jpeg_diff.py list "$DATA" "$OUT/list.txt"
target/release/examples/jpeg_dump "$OUT/list.txt" "$OUT/mbls.raw"
"$VENV/bin/python" bench/pil_jpeg_diff.py compare "$OUT/list.txt" "$OUT/mbls.raw"
