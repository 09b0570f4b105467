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
    """The whole file under a temporary name, then renamed: `path` is the old file or the new one, and a
    failed write (a full disk) leaves no temporary file behind."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.filename is None:  # a full disk's write names no file: say which one it was
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
    def read_state(self) -> dict:
        """state.json as a dict with a `finished` list of phase names; a PvgError naming the file when it
        is damaged (pvg never guesses which phases finished, and never rewrites a state it cannot read)."""
        if not self.state_path.is_file():
            return {"finished": []}
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            why = (f"is not valid JSON ({e.msg} at line {e.lineno})" if isinstance(e, json.JSONDecodeError)
                   else f"cannot be read ({e})")
            raise PvgError(damaged_state(self.state_path, why)) from None
        finished = state.get("finished") if isinstance(state, dict) else None
        if not isinstance(finished, list) or not all(isinstance(x, str) for x in finished):
            raise PvgError(damaged_state(self.state_path, "has no 'finished' list of phase names"))
        if not isinstance(state.get("phase_info", {}), dict):
            raise PvgError(damaged_state(self.state_path, "has a 'phase_info' that is not a mapping"))
        return state

    def finished(self) -> list[str]:
        return self.read_state()["finished"]

    def mark(self, phase: str, **extra) -> None:
        state = self.read_state()
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
        return self.read_state().get("phase_info", {}).get(phase, {})

    # ---- metrics.jsonl: round rows (kind="round") and per-update PPO rows (kind="ppo")
    def scan_metrics(self) -> "MetricsScan":
        """Every line of metrics.jsonl, sorted into rows, damaged lines and a torn last line."""
        return scan_metrics(self.metrics_path)

    def read_metrics(self, on_damage: str = "raise") -> list[dict]:
        """The rows of metrics.jsonl. A damaged line (not a JSON row with a kind and a round) raises a
        PvgError naming the file, the line and what to do (`on_damage="raise"`, for anything that goes
        on to write the run), or is skipped with a warning on stderr (`"warn"`, for commands that only
        read). A torn last line, no newline at its end (a process killed while writing it, or a
        reader racing the writer), is no row yet and is left out either way."""
        scan = self.scan_metrics()
        if scan.damaged:
            if on_damage == "raise":
                raise PvgError(scan.error())
            console.print(f"[yellow]warning:[/] {scan.warning()}", highlight=False, soft_wrap=True)
        return [row for row, _ in scan.rows]

    def ppo_steps_before(self, round_: int) -> int:
        """PPO batches the rounds before `round_` recorded (an exploit's last batch, not updated on,
        counts too): where round `round_`'s PPO curve starts on the one step axis TensorBoard's
        `ppo/*` tags share. Read from metrics.jsonl, so a resumed run continues the same axis."""
        return sum(1 for r in self.read_metrics() if r.get("kind") == "ppo" and r.get("round", round_) < round_)

    def append_metrics(self, rows: Iterable[dict]) -> None:
        with self.metrics_path.open("a+b") as f:  # a last row that lost its newline gets it back first
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
        with self.metrics_path.open("a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.publish(self.metrics_path)  # an object store has no append: the whole file again (it is small)

    def truncate_metrics(self, keep) -> None:
        """Drop rows written by phases that did not finish (they will be written again); every other
        line is kept as it was written, byte for byte. A damaged line stops this with a PvgError and
        nothing changed: a row that cannot be read is never dropped. A torn last line (a process
        killed while writing it) is copied to metrics.jsonl.torn before it is left out."""
        scan = self.scan_metrics()
        if scan.damaged:
            raise PvgError(scan.error())
        kept = [line for row, line in scan.rows if keep(row)]
        if scan.torn is not None:
            torn = self.metrics_path.with_name(self.metrics_path.name + ".torn")
            with torn.open("a") as f:
                f.write(scan.torn + "\n")
            console.print(f"[yellow]warning:[/] the last line of {self.metrics_path} was cut short (a process killed "
                          f"while writing it); it is kept in {torn} and its phase is played again", highlight=False,
                          soft_wrap=True)
        if len(kept) == len(scan.rows) and scan.torn is None:
            return  # nothing to drop: the file stays as it is
        write_atomic(self.metrics_path, "".join(line + "\n" for line in kept))
        self.publish(self.metrics_path)

    def failed_start(self) -> bool:
        """A folder that a `pvg train` made and left with no finished phase (it failed in its warm start,
        or Ray refused its actors): not a run, so a new start may take it over. Anything else in it, a
        finished phase, a metrics row or a live lock, makes it a run (or not pvg's) that is left alone."""
        if not self.path.is_dir() or self.state_path.exists() or not self.config_path.is_file():
            return False
        if not {p.name for p in self.path.iterdir()} <= FAILED_START_NAMES:
            return False
        scan = self.scan_metrics()
        if scan.rows or scan.damaged:
            return False
        lock = self.path / ".lock"
        if lock.exists():
            try:
                owner = json.loads(lock.read_text())
            except (OSError, ValueError):
                return False
            pid, host = (owner.get("pid"), owner.get("host")) if isinstance(owner, dict) else (None, None)
            if host != socket.gethostname() or not isinstance(pid, int) or (pid != os.getpid() and _alive(pid)):
                return False
        return True

    def lost_rounds(self) -> list[int]:
        """Rounds whose eval state.json lists as finished but whose row metrics.jsonl lacks (a damaged line
        deleted by hand): `pvg train --resume` measures them again from their checkpoints."""
        done = {int(p.split("/")[0]) for p in self.finished() if p.endswith("/eval") and p.split("/")[0].isdigit()}
        have = {r["round"] for r in self.read_metrics() if r["kind"] == "round"}
        return sorted(done - have)

    def check_readable(self) -> None:
        """Before a resume writes anything: every file it will read is readable, or a PvgError that
        names the damaged file and what to do. Nothing is changed either way."""
        finished = set(self.finished())
        scan = self.scan_metrics()
        if scan.damaged:
            raise PvgError(scan.error())
        if self.summary_path.is_file():
            try:
                summary = json.loads(self.summary_path.read_text())
                if not isinstance(summary, dict) or not isinstance(summary.get("stop_reason"), str):
                    raise ValueError("no stop_reason")
            except (OSError, ValueError) as e:
                raise PvgError(f"{self.summary_path} is damaged ({e}); it only records why the game ended: delete it "
                               f"and resume, and the game continues from its last finished round (or ends again "
                               f"at once, rewriting it)") from None
        for phase in sorted(finished):
            k, _, name = phase.partition("/")
            if phase == "initial" or (name == "sample" and k.isdigit()):
                path = self.pool / ("initial.parquet" if phase == "initial" else f"round-{k}.parquet")
                if not path.is_file():
                    raise PvgError(f"pool file {path} is missing although state.json lists {phase} as finished; "
                                   f"{POOL_ADVICE}")
                read_parquet(path)
            if name in ("verifier", "prover") and k.isdigit() and not self.mirror:  # a URI's are fetched on use
                check_checkpoint(self.ckpt(int(k), name), phase)


POOL_ADVICE = ("it holds samples every later round's verifier trains on. Restore it from a copy of the run folder, "
               "or start a new run (the file is written by the phase named in state.json: it cannot be replayed "
               "without the rounds after it)")


def check_checkpoint(folder: Path, phase: str) -> None:
    """A finished phase's checkpoint is whole: its config parses and every safetensors file's header
    covers the file (a cut-short copy or a full disk fails here). Headers only, so a resume checks
    every round's in well under a second before Ray starts, instead of a traceback from an actor."""
    from safetensors import safe_open

    def damaged(why: str) -> PvgError:
        return PvgError(f"checkpoint {folder} is damaged ({why}), although state.json lists {phase} as finished; "
                        "nothing was changed. Restore the folder from a copy of the run folder, or start a new run "
                        "(the rounds before it can still be exported and evaluated)")

    try:
        json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise damaged(f"config.json: {type(e).__name__}: {e}") from None
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise damaged("no *.safetensors weights")
    for path in weights:
        try:
            with safe_open(str(path), framework="numpy") as f:
                f.keys()
        except Exception as e:  # noqa: BLE001 -- safetensors raises its own error type for a damaged header
            raise damaged(f"{path.name}: {str(e).strip().splitlines()[0]}") from None


def read_parquet(path: Path):
    """A pool file as a pyarrow Table; a PvgError naming it when it is damaged (truncated, overwritten)."""
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except Exception as e:  # noqa: BLE001 -- pyarrow raises ArrowInvalid, OSError and more for a damaged file
        first = (str(e).strip() or type(e).__name__).splitlines()[0]
        raise PvgError(f"pool file {path} is damaged ({type(e).__name__}: {first}); nothing was changed; "
                       f"{POOL_ADVICE}") from None


# What a start leaves before its first phase finishes: its config, its lock, the warm start's numbers, TensorBoard's
# and Weights & Biases' folders, an empty metrics file, a pool file being written.
FAILED_START_NAMES = {"config.yaml", ".lock", "metrics.jsonl", "warmstart.json", "tb", "wandb", "pool",
                      "config.yaml.tmp", ".lock.tmp", "warmstart.json.tmp", "state.json.tmp"}


def damaged_state(path: Path, why: str) -> str:
    return (f"{path} {why}, so it is damaged: it is the run's record of which phases finished, and pvg will not guess "
            "it; nothing was changed. Restore it from a copy of the run folder (a URI run's remote copy, a backup), "
            "or start a new run")


class MetricsScan:
    """metrics.jsonl read line by line: `rows` as (row, the line as written), `damaged` as (line number,
    why), `torn` the text of a cut-short last line (no newline at its end), or None."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[tuple[dict, str]] = []
        self.damaged: list[tuple[int, str]] = []
        self.torn: str | None = None

    def _lines(self) -> str:
        n, why = self.damaged[0]
        more = f" (and {len(self.damaged) - 1} more line{'s' * (len(self.damaged) > 2)}: " \
               f"{', '.join(str(i) for i, _ in self.damaged[1:6])}{' ...' if len(self.damaged) > 6 else ''})" \
            if len(self.damaged) > 1 else ""
        return f"{self.path} line {n} is damaged ({why}){more}"

    def error(self) -> str:
        return (f"{self._lines()}; nothing was changed. Repair or delete the damaged line{'s' * (len(self.damaged) > 1)} "
                "(an editor shows the line number), then run the command again: a round whose row is gone is "
                "measured again from its checkpoints on `pvg train --resume`")

    def warning(self) -> str:
        return (f"{self._lines()}; skipped, showing the other rows (`pvg train --resume` refuses until it is "
                "repaired or deleted)")


def scan_metrics(path: Path) -> MetricsScan:
    scan = MetricsScan(path)
    if not path.is_file():
        return scan
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PvgError(f"cannot read {path}: {e.strerror or e}") from None
    lines = data.split(b"\n")
    last = len(lines) - 1  # lines[last] is what follows the last newline: b"" for a whole file
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
            row = json.loads(text)
            if not isinstance(row, dict):
                raise ValueError("a JSON value but not a row")
            if not isinstance(row.get("kind"), str) or not isinstance(row.get("round"), int) \
                    or isinstance(row.get("round"), bool):
                raise ValueError("a JSON row without a kind and a round")
        except UnicodeDecodeError:
            why = "not UTF-8 text"
        except json.JSONDecodeError as e:
            why = f"not JSON: {e.msg} at column {e.colno}"
        except ValueError as e:
            why = str(e)
        else:
            if i == last:  # a whole row that lost only its newline: a row, and the file gets it back
                scan.rows.append((row, text))
            else:
                scan.rows.append((row, text.rstrip("\r")))
            continue
        if i == last:
            scan.torn = raw.decode("utf-8", "replace")
        else:
            scan.damaged.append((i + 1, why))
    return scan


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
