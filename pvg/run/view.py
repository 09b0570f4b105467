"""A read-only view of a run folder, live or finished: what `pvg metrics`, `plot` and `report` show.

The game writes its folder for resuming, not for reading: the round rows live in `metrics.jsonl`,
where the run stands lives in `state.json`, why it stopped lives in `summary.json`, and a live run
is told apart from a killed one only by its `.lock`. This module puts those together once, so the
three commands agree on what a run's rounds are and where it stands. It never writes, so it is
safe to point at a run that is training right now. A URI run folder is read through a local mirror
(`pvg.run.folder.open_folder`); `location` is what the user named.
"""

from __future__ import annotations

import json
import math
import socket
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pvg.errors import PvgError
from pvg.progress import console
from pvg.run.folder import _alive, heartbeat_age, open_folder

RUN_FOLDER_LAYOUT = "config.yaml, state.json, metrics.jsonl, pool/, checkpoints/ (what `pvg train` writes)"

# The phases of one round in the order the orchestrator runs them, with the words a reader sees.
ROUND_PHASES = [("verifier", "verifier phase"), ("prover", "prover phase"), ("sample", "sampling the pool"),
                ("eval", "held-out eval")]


@dataclass
class Status:
    """Where a run stands. `state`: finished, running, stopped (killed or crashed) or starting."""

    state: str
    text: str
    round: int | None = None  # the round being played (None once finished, or before round 0)
    phase: str | None = None  # verifier, prover, sample, eval, or initial (warm start, first samples)
    ppo_step: int | None = None  # the live prover phase's last logged PPO update

    def to_json(self) -> dict:
        return {"state": self.state, "text": self.text, "round": self.round, "phase": self.phase,
                "ppo_step": self.ppo_step}


@dataclass
class RunView:
    """One run folder as the inspect commands see it; build it with `load_run`, which checks the folder."""

    path: Path
    config: dict  # the resolved config as plain YAML data (not validated: old runs must still open)
    config_text: str
    finished: list[str]
    rounds: list[dict]  # kind="round" rows, one per round whose eval finished, in round order
    ppo: list[dict]  # kind="ppo" rows, one per PPO update, including a live phase's
    summary: dict | None
    warmstart: dict | None
    location: str = ""  # the run folder as named: a path, or the URI that `path` mirrors
    status: Status = field(init=False)

    def __post_init__(self) -> None:
        self.location = self.location or str(self.path)
        self.status = _status(self)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def stop_reason(self) -> str | None:
        return self.summary.get("stop_reason") if self.summary else None

    def cfg(self, dotted: str, default=None):
        """A config value by dotted key, from the raw YAML (e.g. `ppo.max_steps`)."""
        node = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def require_rounds(self, what: str) -> None:
        if not self.rounds:
            raise PvgError(f"{self.location} has no finished round yet ({self.status.text}); {what} needs at least "
                           "one round's eval; try again later, or `pvg metrics` to follow the run")

    def to_json(self) -> dict:
        """What `pvg metrics --json` prints: strict JSON (NaN, e.g. an AUROC with one class, becomes null)."""
        return _no_nan({"run_dir": self.location, "name": self.name, "status": self.status.to_json(),
                        "stop_reason": self.stop_reason, "rounds": self.rounds, "warmstart": self.warmstart})


def _pct(v) -> str:
    return f"{v:.0%}"


def _num(digits: int):
    return lambda v: f"{v:.{digits}f}"


# The dashboard, one column per round metric (docs/design.md, "Metrics"): key in the round
# row, short header, how to show a number. Shared by the terminal table and the HTML report so the
# two never disagree; `steps_to_exploit` is handled by `cell` (it needs the row's `exploited`).
COLUMNS = [
    ("round", "round", str),
    ("helpful_pass_rate", "helpful\npass", _pct),
    ("sneaky_incorrect_rate", "sneaky\nincorrect", _pct),
    ("verifier_auroc", "AUROC", _num(3)),
    ("verifier_completeness", "complete-\nness", _pct),
    ("verifier_soundness", "sound-\nness", _pct),
    ("sneaky_fool_rate", "sneaky\nfool rate", _pct),
    ("steps_to_exploit", "steps to\nexploit", str),
    ("kl_to_init", "KL to\ninit", _num(2)),
    ("helpful_mean_tokens", "helpful\ntokens", _num(1)),
    ("sneaky_mean_tokens", "sneaky\ntokens", _num(1)),
    ("verifier_phase_s", "verifier\nsec", _num(1)),
    ("prover_phase_s", "prover\nsec", _num(1)),
]
GAME_COLUMNS = 8  # the first 8 are the game's outcome, the rest what it cost (a narrow terminal splits there)
NO_EXPLOIT = "–"  # steps-to-exploit of a round whose sneaky role never exploited the verifier


def header_text(header: str) -> str:
    """A column header on one line (`complete-\\nness` → `completeness`), for HTML and messages."""
    return header.replace("-\n", "").replace("\n", " ")


def cell(row: dict, key: str) -> str:
    """One round metric as text; NaN (e.g. AUROC when the eval had one class) and missing as `n/a`."""
    v = row.get(key)
    if key == "steps_to_exploit":
        return str(v) if row.get("exploited") and v is not None else NO_EXPLOIT
    if v is None or isinstance(v, bool) or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    fmt = dict((k, f) for k, _, f in COLUMNS)[key]
    return fmt(v)


def load_run(run_dir: str | Path) -> RunView:
    """Read a run folder (a path or a URI); a PvgError says what is wrong with a folder that is not one."""
    rf = open_folder(run_dir, f"; a run folder holds {RUN_FOLDER_LAYOUT}")
    path, location = rf.path, rf.location
    missing = [p.name for p in (rf.config_path, rf.state_path) if not p.is_file()]
    # A run still in its warm start has config.yaml and a lock but no state.json yet: that is a run.
    if missing == ["state.json"] and _lock_owner(path)[0] == "live":
        missing = []
    if missing:
        raise PvgError(f"{location} is not a pvg run folder: no {' or '.join(missing)}; a run folder holds "
                       f"{RUN_FOLDER_LAYOUT}")
    config_text = _read_text(rf.config_path)
    try:
        config = yaml.safe_load(config_text) or {}
    except yaml.YAMLError as e:
        raise PvgError(f"{rf.config_path} is not valid YAML ({e.__class__.__name__})") from None
    if not isinstance(config, dict):
        raise PvgError(f"{rf.config_path} is not a config (expected a mapping of sections)")
    finished = rf.finished()  # a damaged state.json: a PvgError naming it
    rows = rf.read_metrics(on_damage="warn")  # a damaged line: a warning, and the other rows shown
    done = set(finished)
    lost = sorted(int(p.split("/")[0]) for p in done if p.endswith("/eval") and p.split("/")[0].isdigit()
                  and not any(r.get("kind") == "round" and r.get("round") == int(p.split("/")[0]) for r in rows))
    if lost:
        console.print(f"[yellow]warning:[/] {rf.metrics_path} has no row for round{'s' * (len(lost) > 1)} "
                      f"{', '.join(map(str, lost))} although state.json lists {'their' if len(lost) > 1 else 'its'} "
                      "eval as finished; not shown (`pvg train --resume` measures a lost round again)",
                      highlight=False, soft_wrap=True)
    # A round row is kept only once its eval is recorded: a row written just before a kill is
    # dropped and written again on resume, and we should not show a round the run will redo.
    rounds = sorted((r for r in rows if r.get("kind") == "round" and f"{r.get('round')}/eval" in done),
                    key=lambda r: r["round"])
    ppo = [r for r in rows if r.get("kind") == "ppo"]
    summary = _read_json(rf.summary_path) if rf.summary_path.is_file() else None
    ws_path = path / "warmstart.json"
    warmstart = _read_json(ws_path) if ws_path.is_file() else None
    return RunView(path=path, config=config, config_text=config_text, finished=finished, rounds=rounds, ppo=ppo,
                   summary=summary, warmstart=warmstart, location=location)


def _read_text(p: Path) -> str:
    try:
        return p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise PvgError(f"cannot read {p}: {e}") from None


def _read_json(p: Path):
    try:
        return json.loads(_read_text(p))
    except json.JSONDecodeError as e:
        raise PvgError(f"{p} is not valid JSON ({e.msg} at line {e.lineno}); was it edited by hand?") from None


def _lock_owner(path: Path, stale_s: float = 300.0) -> tuple[str, str]:
    """("live", who) when a process holds the run's lock, ("stale", "") for a dead one's, ("none", "")."""
    lock = path / ".lock"
    if not lock.is_file():
        return "none", ""
    try:
        owner = json.loads(lock.read_text())
    except (OSError, json.JSONDecodeError):
        return "live", "unknown process"  # being written right now
    pid, host = owner.get("pid"), owner.get("host")
    if host != socket.gethostname():
        age = heartbeat_age(owner)  # a URI run's lock says when its holder was last alive
        if age is not None and age > stale_s:
            return "stale", ""
        # without a heartbeat we cannot look into another machine; trust the lock
        return "live", f"pid {pid} on {host}" + (f", alive {age:.0f}s ago" if age is not None else "")
    return ("live", f"pid {pid}") if isinstance(pid, int) and _alive(pid) else ("stale", "")


def _next_phase(finished: list[str]) -> tuple[int | None, str]:
    """The phase the run is in (live) or would resume at (killed), from its finished phases."""
    if "initial" not in finished:
        return None, "initial"
    k = 0
    while True:
        for phase, _ in ROUND_PHASES:
            if f"{k}/{phase}" not in finished:
                return k, phase
        k += 1


def _status(view: RunView) -> Status:
    n = len(view.rounds)
    if view.summary is not None:
        last = view.summary.get("last_round", n - 1)
        return Status("finished", f"finished after round {last} ({n} round{'s' * (n != 1)}): {view.stop_reason}")
    k, phase = _next_phase(view.finished)
    where = "warm start and the initial prover's samples" if k is None else f"round {k}, {dict(ROUND_PHASES)[phase]}"
    step = None
    if phase == "prover":
        steps = [r.get("step", 0) for r in view.ppo if r.get("round") == k]
        if steps:
            step = max(steps)
            where += f" (PPO step {step} of {view.cfg('ppo.max_steps', '?')})"
    owner, who = _lock_owner(view.path, view.cfg("run.lock_stale_s", 300.0))
    if owner == "live":
        return Status("running", f"running: {where}; {who}", k, phase, step)
    if not view.finished:
        return Status("starting", f"not started: no phase finished and no live process; {where} comes first", k,
                      phase, step)
    return Status("stopped", f"stopped (no live process, no summary.json): at {where}; continue it with "
                  f"`pvg train --resume {view.location}`", k, phase, step)


def _no_nan(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_no_nan(v) for v in x]
    return x
