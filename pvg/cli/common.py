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
import typer.core
from rich.markup import escape

from pvg.errors import PvgError, fault_error
from pvg.progress import PvgConsole

out = PvgConsole()  # unwrapped when not a terminal (logs, pipes): see pvg.progress.PvgConsole
err = PvgConsole(stderr=True)
_state = {"debug": False}

SetOption = typer.Option(None, "--set", metavar="KEY=VALUE", help="Override a config key: --set ppo.lr=1e-4 (repeatable).")
ForceOption = typer.Option(False, "--force", help="Replace OUTPUT if it exists.")


def refuse_overwrite(output, force: bool) -> None:
    """The one rule of every command that writes a file the user names: an existing file is replaced only
    with --force (a folder never), checked before any work is done."""
    from pathlib import Path

    output = Path(output)
    if output.is_dir():
        raise PvgError(f"{output} is a directory; -o takes the file to write")
    if output.exists() and not force:
        raise PvgError(f"{output} already exists; pass --force to replace it, or give another -o")


def _flags_take_no_value() -> None:
    """A flag takes no value, so its help shows none. typer's rich help (0.2x) prints every option's
    type, flags included (`--debug <bool>`, `--help <bool>`); its plain help skips flags and counts
    (`TyperOption.get_help_record`), and so does this, for every command at once."""
    option = getattr(typer.core, "TyperOption", None)
    shown = getattr(option, "display_type_rich", None)
    if shown is None or getattr(shown, "_pvg_flags_fixed", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag or self.count else shown(self, ctx)

    display_type_rich._pvg_flags_fixed = True
    option.display_type_rich = display_type_rich


_flags_take_no_value()


def set_debug(debug: bool) -> None:
    _state["debug"] = debug or bool(os.environ.get("PVG_DEBUG"))


def friendly(fn: Callable) -> Callable:
    """Turn PvgError (bad input) into one message and exit code 2; anything else is a real bug."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            # a full disk, a read-only file system: named by the file, else by the command's output
            user = e if isinstance(e, PvgError) else fault_error(e, kwargs.get("output"))
            if user is None:
                raise
            if _state["debug"]:
                traceback.print_exc()
            err.print(f"[bold red]error:[/] {escape(str(user))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2)

    return wrapper
