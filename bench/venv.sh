# Sourced by the bench scripts. `bench_python [PIP_SPEC...]` sets $PY to the Python of
# bench/.venv, making that virtual environment with torch==2.11.0 and numpy from PyPI the
# first time (a large download), and installing any further packages asked for that are
# not there yet (e.g. torchvision==0.26.0 for the loader comparison).
bench_python() {
  local venv
  venv="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.venv"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q torch==2.11.0 numpy
  fi
  local spec
  for spec in "$@"; do
    if ! "$venv/bin/pip" show -q "${spec%%[=<>]*}" >/dev/null 2>&1; then
      "$venv/bin/pip" install -q "$spec"
    fi
  done
  PY="$venv/bin/python"
}
