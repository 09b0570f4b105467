"""The run folder: everything a run makes, written so that a killed run resumes with nothing lost.

Layout: `config.yaml`, `state.json` (finished phases), `pool/*.parquet`, `metrics.jsonl`, `tb/`,
`checkpoints/round-K/{verifier,prover}/`, `summary.json`, `.lock`. Every file is replaced whole
(temporary file, then rename), and `state.json` is written last, so on disk a phase is either
finished with all its outputs or not finished at all.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Iterable

from pvg.errors import PvgError
from pvg.progress import console


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


class RunLock:
    """One live run per folder; a lock whose process is gone (same host) is taken over with a warning."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"

    def acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        if self.path.exists():
            try:
                other = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                other = {}
            pid, host = other.get("pid"), other.get("host")
            if host == me["host"] and isinstance(pid, int) and _alive(pid) and pid != me["pid"]:
                raise PvgError(f"{self.path.parent} is in use by a live run (pid {pid}); wait for it or stop it")
            if host not in (None, me["host"]):
                raise PvgError(
                    f"{self.path.parent} is locked by a run on host {host} (pid {pid}); if that run is dead, "
                    f"delete {self.path}"
                )
            console.print(f"[yellow]warning:[/] taking over a stale lock in {self.path.parent} (pid {pid} is gone)")
        write_atomic(self.path, json.dumps(me))

    def release(self) -> None:
        try:
            if json.loads(self.path.read_text()).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, json.JSONDecodeError):
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is not a live run
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.pool = self.path / "pool"
        self.checkpoints = self.path / "checkpoints"
        self.metrics_path = self.path / "metrics.jsonl"
        self.state_path = self.path / "state.json"
        self.summary_path = self.path / "summary.json"
        self.config_path = self.path / "config.yaml"
        self.tb = self.path / "tb"

    def ckpt(self, round_: int, which: str) -> Path:
        return self.checkpoints / f"round-{round_}" / which

    # ---- state: the list of finished phases, e.g. ["initial", "0/verifier", "0/prover", "0/sample"]
    def finished(self) -> list[str]:
        if not self.state_path.is_file():
            return []
        return json.loads(self.state_path.read_text())["finished"]

    def mark(self, phase: str, **extra) -> None:
        state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {"finished": []}
        if phase not in state["finished"]:
            state["finished"].append(phase)
        state.setdefault("phase_info", {})[phase] = extra
        write_atomic(self.state_path, json.dumps(state, indent=1))

    def phase_info(self, phase: str) -> dict:
        if not self.state_path.is_file():
            return {}
        return json.loads(self.state_path.read_text()).get("phase_info", {}).get(phase, {})

    # ---- metrics.jsonl: round rows (kind="round") and per-update PPO rows (kind="ppo")
    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.is_file():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a torn last line from a killed process
        return rows

    def append_metrics(self, rows: Iterable[dict]) -> None:
        with self.metrics_path.open("a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate_metrics(self, keep) -> None:
        """Drop rows written by phases that did not finish (they will be written again)."""
        rows = [r for r in self.read_metrics() if keep(r)]
        write_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))
