#!/usr/bin/env bash
# Set up .venv with pvg and its test tools. Safe to re-run: installs only what is missing.
# torch is pinned to the CPU wheel here only (a bare `torch` pulls a multi-GB CUDA build);
# pyproject.toml keeps a wide range for users with GPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -c "import torch" 2>/dev/null || pip install -q "torch==${PVG_TORCH_VERSION:-2.13.0}"
pip install -q -e '.[test]'
echo "pvg installed in $(pwd)/.venv"

# Opt-in (PVG_INSTALL_BROWSER=1), best effort: a headless Chromium for the three tests that render
# `pvg report` and the human-study form in a browser (tests/test_inspect.py, tests/test_human_kit.py);
# they skip without one. Needs apt-get and root (or sudo without a password); never fails the install.
if [ "${PVG_INSTALL_BROWSER:-0}" = 1 ]; then
  if command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; then
    echo "browser: found one"
  else
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
      { DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium ||
        { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium; }; } \
        >/dev/null 2>&1 && echo "browser: installed chromium" ||
        echo "note: could not install chromium; the three browser tests will be skipped"
    else
      echo "note: no apt-get as root here; install Chromium yourself, or the three browser tests will be skipped"
    fi
  fi
fi
