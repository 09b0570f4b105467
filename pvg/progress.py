"""Progress bars and console output shared by every long step (rich)."""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yields `advance(n=1, **fields)`; `fields` (e.g. loss) are shown after the bar."""
    if not enabled:
        yield lambda n=1, **fields: None
        return
    if not console.is_terminal:  # a log file or CI: a plain line every tenth of the way, not a live bar
        state = {"done": 0, "t0": time.time()}
        every = max(1, total // 10)

        def advance_lines(n: int = 1, **fields) -> None:
            state["done"] += n
            if state["done"] % every == 0 or state["done"] >= total:
                info = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
                console.print(f"{description}: {state['done']}/{total} {time.time() - state['t0']:.0f}s {info}",
                              highlight=False)

        yield advance_lines
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
        task = bar.add_task(description, total=total, info="")

        def advance(n: int = 1, **fields) -> None:
            info = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
            bar.update(task, advance=n, info=info)

        yield advance
