#!/usr/bin/env bash
# The one entry point: ./build.sh run | test | bench | lint | venv
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PY=$VENV/bin/python

need_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# A fresh Debian 12 has python3 but not always its venv module (package python3-venv).
ensure_python() {
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    echo "==> installing python3-venv (apt)"
    need_root apt-get update -q
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
  fi
}

# The venv is rebuilt only when pyproject.toml changes (its hash is the stamp).
ensure_venv() {
  ensure_python
  local stamp="$VENV/.installed" want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ -x "$PY" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  echo "==> setting up $VENV"
  [ -x "$PY" ] || python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
}

cmd_venv() { ensure_venv; }

cmd_run() {
  ensure_venv
  exec "$VENV/bin/qey" run "$@"
}

cmd_lint() {
  ensure_venv
  echo "==> ruff"
  "$VENV/bin/ruff" check appliance tests bench
  "$VENV/bin/ruff" format --check appliance tests bench
  echo "==> mypy --strict appliance/"
  "$VENV/bin/mypy" --strict appliance
}

# The browser tests drive Debian's Chromium (never a browser download); installed once.
ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    echo "==> installing chromium (apt)"
    need_root apt-get update -q
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
  fi
}

cmd_test() {
  ensure_venv
  ensure_chromium
  cmd_lint
  echo "==> pytest"
  "$VENV/bin/pytest" -q "$@"
}

# The router model (models/export_router.py) is built in its own venv: torch is needed to
# export it, never to run it. The build checks the result byte for byte against SHA256SUMS.
MODELS_VENV=.venv-models

cmd_model() {
  ensure_python
  if [ ! -x "$MODELS_VENV/bin/python" ] || ! cmp -s models/requirements.txt "$MODELS_VENV/.installed"; then
    echo "==> setting up $MODELS_VENV (torch CPU and the export's pinned packages)"
    [ -x "$MODELS_VENV/bin/python" ] || python3 -m venv "$MODELS_VENV"
    "$MODELS_VENV/bin/python" -m pip install -q --upgrade pip
    # torch first and alone, pinned: the CPU build that pip finds; nothing may pull another
    "$MODELS_VENV/bin/python" -m pip install -q "torch==2.13.0"
    "$MODELS_VENV/bin/python" -m pip install -q -r models/requirements.txt
    cp models/requirements.txt "$MODELS_VENV/.installed"
  fi
  "$MODELS_VENV/bin/python" models/export_router.py "$@"
}

cmd_eval_router() {
  ensure_venv
  "$PY" models/eval_router.py "$@"
}

cmd_bench() {
  ensure_venv
  local failed=0
  for b in bench/bench_*.py; do
    echo "==> $b"
    "$PY" "$b" || failed=1
  done
  return $failed
}

usage() {
  cat <<'USAGE'
usage: ./build.sh COMMAND
  run     set up .venv and run the appliance on this host (simulated hardware)
  test    set up .venv, then ruff, mypy --strict and pytest (extra args go to pytest)
  lint    ruff and mypy only
  bench   run the benchmarks in bench/ (figures and ratios to their baselines)
  venv    only set up .venv
  model   rebuild the router model in .venv-models and check its sha256 (--record: write it)
  eval-router  the router's accuracy, confusion, rejection and latency on models/ test split
USAGE
}

case "${1:-}" in
  run|test|bench|lint|venv|model) cmd=$1; shift; "cmd_$cmd" "$@" ;;
  eval-router) shift; cmd_eval_router "$@" ;;
  *) usage; exit 2 ;;
esac
