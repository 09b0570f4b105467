"""One piece of work in a second process, its progress bars drawn by this one.

For CPU work that a second core speeds up poorly (a tiny model's training): two processes of one
thread each get nearly twice the throughput of one process with two. The child only computes;
every bar it opens and every step it makes comes back over a queue, so the user sees one live
display, and an error in the child comes back as an error here.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import traceback
from typing import Any, Callable

from pvg.errors import PvgError
from pvg.progress import AddBar


class SideJob:
    """`fn(*args, add_bar)` running in a spawned process with `threads` torch threads."""

    def __init__(self, fn: Callable[..., Any], args: tuple, threads: int):
        _reenter_working_dir()  # spawn hands the child our cwd
        ctx = mp.get_context("spawn")  # never fork a process that holds torch threads (and maybe Ray)
        self._name = fn.__name__
        self._queue = ctx.Queue()
        self._proc = ctx.Process(target=_child, args=(fn, args, max(1, threads), self._queue, os.getpid()),
                                 name=f"pvg-{self._name}", daemon=True)
        self._proc.start()
        self._bars: dict[str, Callable[..., None]] = {}
        self._outcome: tuple | None = None

    def relaying(self, add_bar: AddBar) -> AddBar:
        """`add_bar` for this process's own work, whose every step also draws the child's progress."""
        def add(description: str, total: int) -> Callable[..., None]:
            advance = add_bar(description, total)

            def advance_and_relay(n: int = 1, **fields) -> None:
                advance(n, **fields)
                self._drain(add_bar, timeout=None)

            return advance_and_relay

        return add

    def result(self, add_bar: AddBar) -> Any:
        """Wait for the child, drawing its bars; its return value, or its error raised here."""
        while self._outcome is None:
            self._drain(add_bar, timeout=0.5)
            if self._outcome is None and not self._proc.is_alive():
                self._drain(add_bar, timeout=None)  # its last words may have arrived as it exited
                if self._outcome is None:
                    raise PvgError(f"{self._name} died in its own process (exit code {self._proc.exitcode}); "
                                   "run again, or look for an out-of-memory kill in the system log")
        self._proc.join()
        kind, value = self._outcome
        if kind == "error":
            raise PvgError(f"{self._name} failed in its own process:\n{value}")
        return value

    def stop(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)

    def _drain(self, add_bar: AddBar, timeout: float | None) -> None:
        """Everything the child has said so far; with `timeout`, wait that long for the first word."""
        while self._outcome is None:
            try:
                msg = self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
            except queue.Empty:
                return
            if msg[0] == "bar":
                self._bars[msg[1]] = add_bar(msg[1], msg[2])
            elif msg[0] == "advance":
                self._bars[msg[1]](msg[2], **msg[3])
            else:
                self._outcome = msg


def _reenter_working_dir() -> None:
    """Step back into our working folder by its path when the folder we stand in was replaced.

    A Ray job's driver runs in the job's unpacked `working_dir`; when a second Ray node on the same
    machine (a test cluster, or two raylets sharing a temp dir) unpacks the same package, it replaces
    that folder, and `os.getcwd()`, which spawn calls, fails although the path exists again with the
    same files. The shell that started us recorded the path in PWD.
    """
    try:
        os.getcwd()
        return
    except FileNotFoundError:
        pass
    path = os.environ.get("PWD", "")
    if path and os.path.isdir(path):
        os.chdir(path)
        return
    raise PvgError(f"the working folder of this process is gone{f' ({path})' if path else ''}: cannot start "
                   "a second process from it; run from a folder that stays in place")


def _child(fn: Callable[..., Any], args: tuple, threads: int, out: mp.Queue, parent: int) -> None:
    import torch

    from pvg.game.models import quiet_libraries

    torch.set_num_threads(threads)
    quiet_libraries()

    def add_bar(description: str, total: int) -> Callable[..., None]:
        out.put(("bar", description, total))

        def advance(n: int = 1, **fields) -> None:
            if os.getppid() != parent:  # the run that started us is gone (killed): stop working for it
                os._exit(1)
            out.put(("advance", description, n, fields))

        return advance

    try:
        out.put(("done", fn(*args, add_bar)))
    except PvgError as e:
        out.put(("error", str(e)))
    except BaseException:  # noqa: BLE001 - whatever it was, the parent must hear of it
        out.put(("error", traceback.format_exc()))
