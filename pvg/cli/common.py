"""What every `pvg` command shares: the two consoles, `--set`, and the one-line error contract.

Every user error (a `PvgError`) becomes one clear line on stderr and exit code 2; `--debug` (or
PVG_DEBUG=1) adds the traceback. Anything else escaping a command is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import os
import traceback
from typing import Callable

import typer
from rich.console import Console
from rich.markup import escape

from pvg.errors import PvgError

out = Console()
err = Console(stderr=True)
_state = {"debug": False}

SetOption = typer.Option(None, "--set", help="Override a config key: --set ppo.lr=1e-4 (repeatable).")


def set_debug(debug: bool) -> None:
    _state["debug"] = debug or bool(os.environ.get("PVG_DEBUG"))


def friendly(fn: Callable) -> Callable:
    """Turn PvgError (bad input) into one message and exit code 2; anything else is a real bug."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PvgError as e:
            if _state["debug"]:
                traceback.print_exc()
            err.print(f"[bold red]error:[/] {escape(str(e))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2)

    return wrapper
