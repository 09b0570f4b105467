"""Session fixtures shared by every test that needs a real game: one warm-start cache, one finished run.

`finished_run` plays `configs/tiny-ci.yaml` once per session through the real CLI (real Ray, real
models, real Parquet); tests that only read a run folder (metrics, plots, report, export) reuse it
and must not modify it: copy it first.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pvgrun import CONFIG, env, overrides, pvg_cmd


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pvg-cache")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, cache_dir) -> Path:
    out = tmp_path_factory.mktemp("runs-a")
    proc = subprocess.run(pvg_cmd("train", str(CONFIG), *overrides(out, cache_dir)), capture_output=True, text=True,
                          env=env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    # what `pvg train` printed, beside (not in) the run folder, for the tests of its output
    (out / "train.stdout").write_text(proc.stdout)
    (out / "train.stderr").write_text(proc.stderr)
    return out / "tiny-ci"
