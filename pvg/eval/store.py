"""What every evaluation shares: the run's checkpoints, problems and pool, and a result cache.

Results live in `RUN_DIR/eval/<name>.json` with the parameters they were computed with and a
fingerprint of the run (its finished phases and its config). A second call with the same
parameters on an unchanged run returns the stored result instead of recomputing it; a run that
played another round, or other parameters, computes afresh. Files are written whole, then
renamed, like every file of a run folder; in a URI run folder (read through a local mirror) they
are uploaded back to it, so `pvg report` anywhere shows them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from pvg.errors import PvgError
from pvg.export.hf import RunInfo, load_checkpoint, open_run, rounds_with
from pvg.run.folder import RunFolder, write_atomic

EVAL_DIR = "eval"


@dataclass
class EvalRun:
    """A finished (or partly played) run, opened for evaluation."""

    info: RunInfo

    @classmethod
    def open(cls, run_dir: str | Path) -> "EvalRun":
        return cls(open_run(run_dir))

    @property
    def path(self) -> Path:
        return self.info.path

    @property
    def cfg(self):
        return self.info.cfg

    @property
    def folder(self) -> RunFolder:
        return self.info.folder or RunFolder(self.path)

    @property
    def location(self) -> str:
        return self.info.location

    def rounds(self, needs: tuple[str, ...] = ("prover", "verifier"), what: str = "this evaluation") -> list[int]:
        """Rounds whose listed checkpoints all exist and whose eval finished; an error that says what to
        run first when there is none."""
        have = set.intersection(*(set(rounds_with(self.info, which)) for which in needs))
        rounds = sorted(k for k in have if f"{k}/eval" in self.info.finished)
        if not rounds:
            raise PvgError(f"{self.location} has no finished round yet, and {what} needs a round's "
                           f"{' and '.join(needs)} checkpoint{'s' * (len(needs) > 1)}; play one with "
                           f"`pvg train` (or `pvg train --resume {self.location}`)")
        return rounds

    def prover(self, k: int):
        return load_checkpoint(self.info.checkpoint(k, "prover"), "prover")

    def verifier(self, k: int):
        return load_checkpoint(self.info.checkpoint(k, "verifier"), "verifier")

    def problems(self, side: str) -> list:
        """The run's problems of one side (prover, verifier, test), rebuilt from its config and seed."""
        from pvg.data.dataset import load_split

        return load_split(self.cfg.data, self.cfg.run.seed)[side]

    def pool(self, k: int | str) -> list[dict]:
        """Round k's pool rows (or "initial": the warm-started prover's), as dicts."""
        from pvg.game.pool import INITIAL, file_for
        from pvg.run.folder import read_parquet

        f = file_for(self.folder.pool, INITIAL if k == "initial" else k)
        if not f.is_file():
            raise PvgError(f"{f} is missing; the run folder has no pool for round {k}")
        return read_parquet(f).to_pylist()

    def threshold(self, k: int, scores: list[float], correct: list[bool], roles: list[str]) -> float:
        """Round k's acceptance threshold: the one its eval recorded, else the game's own rule
        (`verifier.threshold`) applied to the given solutions."""
        from pvg.game.metrics import acceptance_threshold

        stored = self.info.rows.get(k, {}).get("verifier_threshold")
        if isinstance(stored, (int, float)) and not isinstance(stored, bool):
            return float(stored)
        return acceptance_threshold(scores, correct, roles, self.cfg.verifier.threshold)

    def warmstart(self, part: str, what: str) -> Path:
        """A folder of the run's warm-start cache (`prover`, `verifier_base`, `tokenizer`): the initial
        weights, which the run folder does not copy. Deterministic, so a lost cache can be rebuilt."""
        from pvg.game.warmstart import cache_key

        root = Path(self.cfg.run.cache_dir) / f"warmstart-{cache_key(self.cfg)}"
        if not (root / part).is_dir():
            raise PvgError(f"{what} starts from the run's warm start, in its cache {root}, which is gone; rebuild it "
                           f"(deterministic) with `pvg warmstart {self.path / 'config.yaml'}`")
        return root / part

    def fingerprint(self) -> str:
        text = json.dumps({"finished": sorted(self.info.finished),
                           "config": self.folder.config_path.read_text()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def result_path(run: EvalRun, name: str) -> Path:
    return run.path / EVAL_DIR / f"{name}.json"


def shown(run: EvalRun, path: Path) -> str:
    """A file of the run as the user would find it: under the URI for a mirrored run folder."""
    folder = run.folder
    if folder.mirror:
        return folder.mirror.url(Path(path).absolute().relative_to(folder.mirror.root).as_posix())
    return str(path)


def cached(run: EvalRun, name: str, params: dict) -> dict | None:
    """The stored result of `name`, if it was computed with `params` on the run as it is now."""
    path = result_path(run, name)
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a damaged result is recomputed, not trusted
    if stored.get("params") != _plain(params) or stored.get("fingerprint") != run.fingerprint():
        return None
    return stored


def save(run: EvalRun, name: str, params: dict, result: dict, figure_png: bytes | None = None) -> dict:
    """Write `RUN_DIR/eval/<name>.json` (and `<name>.png`); returns what was written."""
    out = run.path / EVAL_DIR
    out.mkdir(exist_ok=True)
    stored = {"eval": name, "params": _plain(params), "fingerprint": run.fingerprint(), **_plain(result)}
    if figure_png is not None:
        tmp = out / f".{name}.png.tmp"
        try:
            tmp.write_bytes(figure_png)
            tmp.replace(out / f"{name}.png")
        finally:
            tmp.unlink(missing_ok=True)
        stored["figure"] = f"{name}.png"
        run.folder.publish(out / f"{name}.png")
    write_atomic(out / f"{name}.json", json.dumps(stored, indent=2, allow_nan=False))
    run.folder.publish(out / f"{name}.json")  # the figure first: a result names its figure
    return stored


def load_all(run_dir: Path) -> dict[str, dict]:
    """Every stored result of a run folder, by name (what `pvg report` shows)."""
    found = {}
    for f in sorted((Path(run_dir) / EVAL_DIR).glob("*.json")):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("eval") == f.stem:
            found[f.stem] = data
    return found


def _plain(x):
    """JSON-safe: NaN and infinities become None, tuples lists, numpy scalars Python numbers."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
