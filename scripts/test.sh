#!/usr/bin/env bash
# Sets everything up (libtorch, once) and runs every check: formatting, clippy, all tests.
# This is the README's test command and what CI runs (.ci/run).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
command -v cargo >/dev/null || { echo "error: cargo (Rust) is needed: https://rustup.rs" >&2; exit 1; }
bash scripts/setup-libtorch.sh >/dev/null
if [ ! -d ../shared/parity ] && [ -z "${MBLS_SHARED:-}" ]; then
  echo "note: ../shared/parity is absent: parity tests will be skipped (they say so)"
fi
# The TensorBoard read-back test uses the `tensorboard` package's own event reader.
if [ -z "${MBLS_TEST_PYTHON:-}" ]; then
  venv="$root/.venv-test"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import tensorboard" 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check tensorboard \
      || echo "note: could not install tensorboard: its read-back test will be skipped (it says so)"
  fi
  export MBLS_TEST_PYTHON="$venv/bin/python"
fi
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== fuzz harness (fixed seed, bounded: 400 cases per format in process, every 40th through the binary)"
cargo run -q -p mbls-fuzz -- --seed 1 --cases 400 --binary-every 40 --mbls target/debug/mbls
