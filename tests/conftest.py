"""Session fixtures shared by every test that needs a real game: one warm-start cache, one finished run.

`finished_run` plays `configs/tiny-ci.yaml` once per session through the real CLI (real Ray, real
models, real Parquet); tests that only read a run folder (metrics, plots, report, export) reuse it
and must not modify it: copy it first.

The suite runs on two pytest-xdist workers (`-n 2`, one test file per worker at a time): most game
tests keep one core busy, so two workers use both. Each fixture here is built once per session,
not once per worker: the first worker to need it builds it under a file lock in the directory the
workers share, the other waits and reuses it. `cache_dir` comes warmed (`pvg warmstart`), so no two
tests ever build the same warm start at once.

A worker's environment has COLUMNS=80 (pytest-xdist passes the controller's terminal width on),
which a serial run's has not: pvg's console, writing to no terminal, then folds lines at 80 instead
of printing them whole (`pvg.progress.PvgConsole`), and so does every `pvg` subprocess the tests
start. The workers drop it, so that both runs see what CI's serial run saw; a test that wants a
width still sets its own.

Ray runs its workers at nice 15, so a game's actors beside the other worker's in-process test (at
nice 0) got almost no CPU and the longest game tests ran up to twice as long side by side. Every Ray
the suite starts (in-process, `pvg` subprocesses, the test cluster) runs its workers at nice 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from filelock import FileLock

from pvgrun import CONFIG, env, overrides, pvg_cmd

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)  # see the docstring
os.environ.setdefault("RAY_worker_niceness", "0")  # see the docstring


@contextmanager
def built_once(tmp_path_factory, name: str):
    """The folder `name` shared by this session's workers, and whether the caller must build it now.
    Yields (folder, build): the folder exists, empty, when build is True; ready when False."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if done.exists():
            yield folder, False
            return
        shutil.rmtree(folder, ignore_errors=True)  # what a failed build left (pvg train refuses a used folder)
        folder.mkdir()
        yield folder, True
        done.touch()  # only after the build returned: a failed build is tried again, not reused


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A warm-start cache holding tiny-ci's warm start."""
    with built_once(tmp_path_factory, "pvg-cache") as (cache, build):
        if build:
            proc = subprocess.run(pvg_cmd("warmstart", str(CONFIG), "--set", f"run.cache_dir={cache}", "--set",
                                          "logging.progress=false"), capture_output=True, text=True, env=env(),
                                  timeout=900)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return cache


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, cache_dir) -> Path:
    with built_once(tmp_path_factory, "runs-a") as (out, build):
        if build:
            proc = subprocess.run(pvg_cmd("train", str(CONFIG), *overrides(out, cache_dir)), capture_output=True,
                                  text=True, env=env(), timeout=900)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
            # what `pvg train` printed, beside (not in) the run folder, for the tests of its output
            (out / "train.stdout").write_text(proc.stdout)
            (out / "train.stderr").write_text(proc.stderr)
    return out / "tiny-ci"
