"""Score solutions with an exported verifier, and measure it on solutions of known correctness.

Scoring goes through `pvg.data.roles.verifier_text` and `pvg.game.verifier_train.score_texts`, the very code
the game scores with, so a score from `pvg score` is the number the prover was rewarded with, not a
re-implementation that could drift (a different padding side alone shifts every score).

Inputs are JSONL, one solution a line. Every line is checked before the model is loaded, so a typo
on line 90 000 fails in a second, with its file:line, instead of after the scoring.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pvg.errors import PvgError
from pvg.export.hf import FORMAT_VERSION, VERIFIER_META, load_checkpoint
from pvg.data.grading import extract_answer, is_correct, parse_number
from pvg.game.metrics import auroc
from pvg.data.roles import ROLES, VERIFIER_FORMAT, verifier_text

LABEL_HELP = ('"is_correct" (true/false) or "answer" (the reference answer: a number like 18, '
              'or GSM8K style "... #### 18")')


# ------------------------------------------------------------------------------ the exported verifier
@dataclass
class Verifier:
    path: Path
    meta: dict
    model: object
    tok: object
    max_length: int

    @property
    def threshold(self) -> float | None:
        t = self.meta.get("threshold")
        return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else None


def read_verifier_meta(path: Path) -> dict:
    """pvg_verifier.json, checked: it is what tells an export apart from any other HF folder."""
    path = Path(path)
    if not path.exists():
        raise PvgError(f"verifier folder {path} does not exist")
    if not path.is_dir():
        raise PvgError(f"{path} is a file; --verifier takes the folder `pvg export-verifier` wrote")
    meta_path = path / VERIFIER_META
    if not meta_path.is_file():
        raw = " (it looks like a raw run checkpoint)" if (path / "config.json").is_file() else ""
        raise PvgError(f"{path} is not an exported pvg verifier: no {VERIFIER_META}{raw}; "
                       "make one with `pvg export-verifier RUN_DIR -o DIR`")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise PvgError(f"{meta_path} is not valid JSON ({e}); re-export the verifier") from None
    if not isinstance(meta, dict) or meta.get("kind") != "pvg-verifier":
        raise PvgError(f"{meta_path} does not describe a pvg verifier (no \"kind\": \"pvg-verifier\")")
    if meta.get("format_version") != FORMAT_VERSION:
        raise PvgError(f"{meta_path} has format_version {meta.get('format_version')!r}; this pvg reads "
                       f"version {FORMAT_VERSION}")
    if meta.get("template") != VERIFIER_FORMAT["template"]:
        raise PvgError(f"{meta_path} uses the input template {meta.get('template')!r}, but this pvg scores "
                       f"with {VERIFIER_FORMAT['template']!r}; score it with the pvg version that exported it")
    max_length = (meta.get("tokenize") or {}).get("max_length")
    if not isinstance(max_length, int) or max_length < 1:
        raise PvgError(f"{meta_path}: tokenize.max_length must be a positive integer, got {max_length!r}")
    return meta


def load_verifier(path: Path, device: str = "auto") -> Verifier:
    import torch

    meta = read_verifier_meta(path)
    model, tok = load_checkpoint(Path(path), "verifier")
    try:
        dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
        model = model.to(dev)
    except (RuntimeError, AssertionError, ValueError) as e:
        raise PvgError(f"--device {device}: {str(e).splitlines()[0]}") from None
    return Verifier(Path(path), meta, model, tok, meta["tokenize"]["max_length"])


# --------------------------------------------------------------------------------------- input rows
@dataclass
class Row:
    where: str  # "file:line", for messages
    data: dict  # the row as read; written back out with "score" added


def read_rows(path: Path) -> list[Row]:
    """Every non-blank line a JSON object with string "question" and "solution"."""
    path = Path(path)
    if not path.exists():
        raise PvgError(f"input file {path} does not exist")
    if path.is_dir():
        raise PvgError(f"{path} is a folder; --input takes a JSONL file, one solution a line")
    rows: list[Row] = []
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            where = f"{path}:{n}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise PvgError(f"{where}: not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as e:
                raise PvgError(f"{where}: not valid JSON ({getattr(e, 'msg', e)}); expected one object a line "
                               'like {"question": "...", "solution": "..."}') from None
            if not isinstance(data, dict):
                raise PvgError(f'{where}: expected a JSON object like {{"question": "...", "solution": "..."}}, '
                               f"got {_kind(data)}")
            for field in ("question", "solution"):
                if field not in data:
                    raise PvgError(f'{where}: missing field "{field}" (expected a string: the {field} text)')
                if not isinstance(data[field], str):
                    raise PvgError(f'{where}: field "{field}" must be a string, got {_kind(data[field])}')
            rows.append(Row(where, data))
    if not rows:
        raise PvgError(f"{path} has no rows (it is empty or blank); expected JSONL, one "
                       '{"question": ..., "solution": ...} a line')
    return rows


def label_of(row: Row) -> bool:
    """Correctness of a row's solution: its own "is_correct", else graded against its "answer"."""
    d = row.data
    if "is_correct" in d:
        if not isinstance(d["is_correct"], bool):
            raise PvgError(f'{row.where}: field "is_correct" must be true or false, got {_kind(d["is_correct"])}')
        return d["is_correct"]
    if "answer" in d:
        ref = d["answer"]
        if isinstance(ref, bool) or not isinstance(ref, (str, int, float)):
            raise PvgError(f'{row.where}: field "answer" must be a string or a number, got {_kind(ref)}')
        ref = str(ref)
        if extract_answer(ref) is None and parse_number(ref) is None:
            raise PvgError(f'{row.where}: field "answer" has no number pvg can read ({ref[:40]!r}); '
                           'expected e.g. 18 or "... #### 18"')
        return is_correct(d["solution"], ref)
    raise PvgError(f"{row.where}: no label to grade the solution against; add {LABEL_HELP}")


def role_of(row: Row) -> str | None:
    role = row.data.get("role")
    if role is not None and role not in ROLES:
        raise PvgError(f'{row.where}: field "role" must be "helpful" or "sneaky" when given, got {_kind(role)}')
    return role


def _kind(v) -> str:
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


# ------------------------------------------------------------------------------------------ scoring
def score_rows(verifier: Verifier, rows: Sequence[Row], batch_size: int, progress: bool = True) -> list[float]:
    """The game's own scoring, a batch at a time so that a long file shows progress."""
    from pvg.progress import progress_bar
    from pvg.game.verifier_train import score_texts

    texts = [verifier_text(r.data["question"], r.data["solution"]) for r in rows]
    scores: list[float] = []
    with progress_bar(f"scoring with {verifier.path.name}", len(texts), progress) as advance:
        for i in range(0, len(texts), batch_size):
            chunk = texts[i : i + batch_size]
            scores.extend(score_texts(verifier.model, verifier.tok, chunk, verifier.max_length, batch_size=batch_size))
            advance(len(chunk))
    return scores


def write_jsonl_atomic(path: Path, rows: Sequence[dict]) -> None:
    """Temporary sibling, then rename: OUT is either the whole result or untouched, never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output(path: Path) -> None:
    """Before any scoring: a folder in OUT's place would only fail at the very end."""
    if Path(path).is_dir():
        raise PvgError(f"{path} is a folder; -o takes the JSONL file to write")


# ------------------------------------------------------------------------------------------ metrics
def _rate(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def evaluate(scores: Sequence[float], correct: Sequence[bool], threshold: float,
             roles: Sequence[str | None] | None = None) -> dict:
    """The dashboard's definitions (pvg.game.metrics): accepted means score >= threshold.

    Balanced accuracy is the mean of completeness and soundness: with GSM-style pools often far from
    50% correct, plain accuracy mostly measures the class balance.
    """
    pos = [s for s, c in zip(scores, correct) if c]
    neg = [s for s, c in zip(scores, correct) if not c]
    completeness = _rate([s >= threshold for s in pos])
    soundness = _rate([s < threshold for s in neg])
    out = {
        "rows": len(scores), "correct": len(pos), "incorrect": len(neg), "threshold": threshold,
        "auroc": auroc(scores, correct),
        "balanced_accuracy": (completeness + soundness) / 2,
        "completeness": completeness, "soundness": soundness,
        "mean_score_correct": _mean(pos), "mean_score_incorrect": _mean(neg),
    }
    if roles is not None and any(r == "sneaky" for r in roles):
        out["sneaky_fool_rate"] = _rate([s >= threshold for s, c, r in zip(scores, correct, roles)
                                         if r == "sneaky" and not c])
    return out


def json_safe(d: dict) -> dict:
    """NaN (a metric with one class empty) is not JSON: null instead."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
