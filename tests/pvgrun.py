"""How the tests run the real `pvg` CLI: a subprocess of this interpreter, no RAY_ADDRESS inherited."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "tiny-ci.yaml"


def pvg_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pvg.cli", *args]


def env() -> dict:
    e = dict(os.environ)
    e.pop("RAY_ADDRESS", None)
    e["PYTHONUNBUFFERED"] = "1"
    return e


def overrides(out: Path, cache: Path) -> list[str]:
    return ["--set", f"run.out_dir={out}", "--set", f"run.cache_dir={cache}", "--set", "logging.progress=false"]


def assert_user_error(result, *needles):
    """A CliRunner result that is a user error: exit 2, one `error:` message, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    msg = " ".join(result.stderr.split())
    assert msg.startswith("error:"), msg
    for n in needles:
        assert n in msg, (n, msg)
