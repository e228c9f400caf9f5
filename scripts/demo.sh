#!/usr/bin/env bash
# Sets everything up (libtorch, once; release build) and runs the main job on the small real
# image set that ships with the repository (examples/cifar10-mini: 3,500 CIFAR-10 images):
# trains a CIFAR ResNet-18 with MbLS (margin 10, alpha 0.1), validates every epoch, tests the
# best checkpoint, fits the post-hoc temperature on the validation split and prints the
# calibration summary; the run folder (logs, metrics, TensorBoard, diagrams) is out/quickstart.
# Then the second example: mbls eval on the shipped digits logits (out/digits).
# Extra arguments are passed to mbls train (e.g. train.max_epoch=2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
command -v cargo >/dev/null || { echo "error: cargo (Rust) is needed: https://rustup.rs" >&2; exit 1; }
bash scripts/setup-libtorch.sh >/dev/null
cargo build --release -p mbls
rm -rf out/quickstart
./target/release/mbls train data=folder data.data_root=examples/cifar10-mini/cifar10-mini.tar.gz \
  model=resnet18_cifar loss=logit_margin loss.margin=10 loss.alpha=0.1 \
  optim=sgd optim.lr=0.05 scheduler=multi_step "scheduler.milestones=[5]" train.max_epoch=8 \
  log_period=5 hydra.run.dir=out/quickstart "$@"
echo
echo "== second example: calibration of saved logits (mbls eval)"
./target/release/mbls eval examples/digits/test.npz \
  --temperature grid --val examples/digits/val.npz \
  --bootstrap 1000 --seed 1 --plot out/digits
