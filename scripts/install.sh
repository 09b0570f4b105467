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
