"""Progress bars and console output shared by every long step (rich)."""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

from rich.console import Console, ConsoleDimensions
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# Output that is not a terminal (a log file, `pvg jobs logs`, a pipe) has no width to fit, and rich would
# wrap it at 80 columns: tables folded, paths broken. There, lines come out whole, as wide as they are.
PIPE_WIDTH = 1000


class PvgConsole(Console):
    """A rich Console that is PIPE_WIDTH wide when it writes to no terminal and COLUMNS says nothing;
    decided at each print (the stream can change: pytest's capture, typer's CliRunner)."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal and not self._environ.get("COLUMNS", "").isdigit():
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = PvgConsole(stderr=True)

# Starts a bar: `add_bar(description, total)` returns its `advance(n=1, **fields)`.
AddBar = Callable[[str, int], Callable[..., None]]


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yields `advance(n=1, **fields)`; `fields` (e.g. loss) are shown after the bar."""
    with progress_bars(enabled) as add:
        yield add(description, total)


@contextlib.contextmanager
def progress_bars(enabled: bool = True) -> Iterator[AddBar]:
    """Bars live at once, for work running side by side: yields `add(description, total)`, which
    starts one more bar (its clock starts then) and returns its `advance(n=1, **fields)`."""
    if not enabled:
        yield lambda description, total: (lambda n=1, **fields: None)
        return
    if not console.is_terminal:  # a log file or CI: a plain line every tenth of the way, not a live bar
        yield _line_advance
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    with Progress(*columns, console=console, transient=False) as bar:
        def add(description: str, total: int) -> Callable[..., None]:
            task = bar.add_task(description, total=total, info="")

            def advance(n: int = 1, **fields) -> None:
                bar.update(task, advance=n, info=_info(fields))

            return advance

        yield add


def _info(fields: dict) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())


def _line_advance(description: str, total: int) -> Callable[..., None]:
    state = {"done": 0, "t0": time.time()}
    every = max(1, total // 10)

    def advance(n: int = 1, **fields) -> None:
        state["done"] += n
        if state["done"] % every == 0 or state["done"] >= total:
            console.print(f"{description}: {state['done']}/{total} {time.time() - state['t0']:.0f}s {_info(fields)}",
                          highlight=False)

    return advance
