"""The run folder: everything a run makes, written so that a killed run resumes with nothing lost.

Layout: `config.yaml`, `state.json` (finished phases), `pool/*.parquet`, `metrics.jsonl`, `tb/`,
`checkpoints/round-K/{verifier,prover}/`, `summary.json`, `.lock`. Every file is replaced whole
(temporary file, then rename), and `state.json` is written last, so on disk a phase is either
finished with all its outputs or not finished at all.

A run folder given as a URI (`s3://...`, `pvg.run.storage`) is the same folder kept in a local mirror:
each file is uploaded whole right after it is written there, `state.json` last, so the remote
folder keeps that property; its lock carries a heartbeat instead of relying on a PID check.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from pvg.run import storage
from pvg.errors import PvgError
from pvg.progress import console


# Ray's job supervisor hands a job's driver its metadata in this variable; pvg's jobs carry "pvg" there.
RAY_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def in_pvg_job() -> bool:
    """Whether this process is the driver of a job `pvg submit` started (a Ray job with pvg's metadata)."""
    try:
        meta = json.loads(os.environ.get(RAY_JOB_CONFIG_ENV) or "{}").get("metadata") or {}
    except (ValueError, AttributeError):
        return False
    return isinstance(meta, dict) and "pvg" in meta


def resume_command(location: str) -> str:
    """How to continue a stopped run: as a job again when it ran as one, else in this shell."""
    import shlex

    return f"pvg {'submit' if in_pvg_job() else 'train'} --resume {shlex.quote(str(location))}"


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


def heartbeat_age(owner: dict) -> float | None:
    """Seconds since a remote lock's holder last showed it was alive (None: a lock without heartbeat)."""
    beat = owner.get("heartbeat")
    return max(0.0, time.time() - beat) if isinstance(beat, (int, float)) else None


class RemoteLock:
    """The lock of a URI run folder: `.lock` holds host, pid and a heartbeat timestamp.

    An object store cannot tell whether a process on another host is alive, so the holder refreshes
    the heartbeat every `stale_s / 5` seconds (a background thread) and before every phase is
    recorded. A lock from this host whose process is gone, or from another host whose heartbeat is
    older than `stale_s` (`run.lock_stale_s`), is stale and taken over with a warning; a fresh one
    refuses. Object stores have no compare-and-swap, so two drivers starting within the same second
    are told apart only by reading the lock back; each checks, before recording a phase, that the
    lock is still its own, and stops if another run has taken it over.
    """

    def __init__(self, uri: str, stale_s: float = 300.0):
        import uuid

        self.uri = storage.join(uri, ".lock")
        self.folder = uri
        self.stale_s = stale_s
        self.me = {"pid": os.getpid(), "host": socket.gethostname(), "token": uuid.uuid4().hex,
                   "started": time.time(), "heartbeat": time.time()}
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> dict | None:
        text = storage.read_text(self.uri)
        if text is None:
            return None
        try:
            owner = json.loads(text)
        except json.JSONDecodeError:
            return {}
        return owner if isinstance(owner, dict) else {}

    def _write(self) -> None:
        self.me["heartbeat"] = time.time()
        storage.write_text(self.uri, json.dumps(self.me))

    def acquire(self) -> None:
        other = self._read()
        if other is not None and other.get("token") != self.me["token"]:
            pid, host, age = other.get("pid"), other.get("host"), heartbeat_age(other)
            if host == self.me["host"] and isinstance(pid, int) and pid != self.me["pid"] and _alive(pid):
                raise PvgError(f"{self.folder} is in use by a live run (pid {pid} on this host); wait for it or stop it")
            if host not in (None, self.me["host"]) and age is not None and age < self.stale_s:
                raise PvgError(
                    f"{self.folder} is locked by a run on host {host} (pid {pid}), alive {age:.0f}s ago by its "
                    f"heartbeat; if that run is dead, wait until its heartbeat is {self.stale_s:g}s old "
                    f"(run.lock_stale_s) or delete {self.uri}"
                )
            why = (f"pid {pid} is gone" if host == self.me["host"] else
                   f"host {host}, pid {pid}: no heartbeat for {age:.0f}s" if age is not None else f"host {host}, pid {pid}")
            console.print(f"[yellow]warning:[/] taking over a stale lock in {self.folder} ({why})", soft_wrap=True)
        self._write()
        time.sleep(0.2)  # two drivers racing for one lock: the later write wins, and the other sees it
        mine = self._read()
        if (mine or {}).get("token") != self.me["token"]:
            raise PvgError(f"{self.folder}: another run (host {(mine or {}).get('host')}, pid {(mine or {}).get('pid')}) "
                           "took the lock at the same moment; try again once it has stopped")
        self._thread = threading.Thread(target=self._beat_loop, name="pvg-lock-heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        """Refresh the heartbeat; a PvgError when another run has taken the lock over (stop writing)."""
        with self._mutex:
            owner = self._read()
            if (owner or {}).get("token") != self.me["token"]:
                who = f"host {owner.get('host')}, pid {owner.get('pid')}" if owner else "nobody: the lock was deleted"
                raise PvgError(f"lost the lock of {self.folder} (held now by {who}); stopping so that two runs do not "
                               "write one folder")
            self._write()

    def _beat_loop(self) -> None:
        while not self._stop.wait(max(1.0, self.stale_s / 5)):
            try:
                self.beat()
            except PvgError:
                return  # the main thread finds out at its next phase
            except Exception as e:  # a network blip: try again at the next beat
                console.print(f"[yellow]warning:[/] could not refresh the lock {self.uri}: {e}", soft_wrap=True)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            with self._mutex:
                if (self._read() or {}).get("token") == self.me["token"]:
                    storage.remove(self.uri)
        except PvgError as e:  # never hide the error a run is unwinding with
            console.print(f"[yellow]warning:[/] could not release the lock {self.uri}: {e}", soft_wrap=True)


class RunFolder:
    """A run folder's files. With a `mirror` (a URI run folder), `path` is the local mirror and every
    write is uploaded right after it is made, `state.json` last; without one, nothing changes."""

    def __init__(self, path: Path, mirror: "storage.Mirror | None" = None):
        self.path = Path(path)
        self.mirror = mirror
        self.guard: Callable[[], None] | None = None  # run before state.json is published: the lock's check
        self.pool = self.path / "pool"
        self.checkpoints = self.path / "checkpoints"
        self.metrics_path = self.path / "metrics.jsonl"
        self.state_path = self.path / "state.json"
        self.summary_path = self.path / "summary.json"
        self.config_path = self.path / "config.yaml"
        self.tb = self.path / "tb"

    def ckpt(self, round_: int, which: str) -> Path:
        return self.checkpoints / f"round-{round_}" / which

    @property
    def location(self) -> str:
        """The run folder as the user named it: the URI of a mirrored one, else its path."""
        return self.mirror.remote if self.mirror else str(self.path)

    def ckpt_target(self, round_: int, which: str) -> str:
        """Where the actors save and load a checkpoint: its URI in a mirrored folder (the actor that
        writes it uploads it itself, from whichever node it runs on), else its path."""
        if self.mirror:
            return self.mirror.url(f"checkpoints/round-{round_}/{which}")
        return str(self.ckpt(round_, which))

    def fetch_ckpt(self, round_: int, which: str) -> Path:
        """A checkpoint to read here: downloaded into the mirror first when the folder is a URI's."""
        if self.mirror:
            self.mirror.pull(f"checkpoints/round-{round_}/{which}")
        return self.ckpt(round_, which)

    # ---- writes: each file whole, then uploaded when the folder is mirrored
    def publish(self, *paths: Path) -> None:
        if self.mirror:
            for p in paths:
                self.mirror.push(Path(p))

    def sync_tb(self) -> None:
        if self.mirror:
            self.mirror.push_tree("tb")

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        write_atomic(path, text)
        self.publish(path)
        return path

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
        if self.mirror:  # everything the phase wrote is uploaded already; state.json goes last
            if self.guard is not None:
                self.guard()
            self.sync_tb()
            self.publish(self.state_path)

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

    def ppo_steps_before(self, round_: int) -> int:
        """PPO batches the rounds before `round_` recorded (an exploit's last batch, not updated on,
        counts too): where round `round_`'s PPO curve starts on the one step axis TensorBoard's
        `ppo/*` tags share. Read from metrics.jsonl, so a resumed run continues the same axis."""
        return sum(1 for r in self.read_metrics() if r.get("kind") == "ppo" and r.get("round", round_) < round_)

    def append_metrics(self, rows: Iterable[dict]) -> None:
        with self.metrics_path.open("a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.publish(self.metrics_path)  # an object store has no append: the whole file again (it is small)

    def truncate_metrics(self, keep) -> None:
        """Drop rows written by phases that did not finish (they will be written again)."""
        rows = [r for r in self.read_metrics() if keep(r)]
        write_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))
        self.publish(self.metrics_path)


def open_folder(run_dir: str | Path, hint: str = "") -> RunFolder:
    """A run folder to read: a local path as it is; a URI through a local mirror brought up to date
    first (checkpoints are fetched only when a command loads one: `RunFolder.fetch_ckpt`). `hint`
    ends the message when a local path is missing or is a file."""
    location = str(run_dir)
    if isinstance(run_dir, Path) or not storage.is_uri(location):
        path = Path(run_dir)
        if not path.exists():
            raise PvgError(f"run folder {path} does not exist{hint}")
        if not path.is_dir():
            raise PvgError(f"{path} is a file, not a run folder{hint}")
        return RunFolder(path)
    mirror = storage.Mirror(location, "read")
    if not mirror.pull(exclude=("checkpoints/", "tb/")):
        raise PvgError(f"run folder {location} does not exist (nothing is stored under it)")
    console.print(f"reading {location} through its local mirror {mirror.root}", style="dim", highlight=False,
                  soft_wrap=True)
    return RunFolder(mirror.root, mirror)
