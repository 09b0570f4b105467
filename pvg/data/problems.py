"""Problem records, their loaders (GSM8K JSONL, a hub data set) and the stable three-way split."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Literal

from pvg.errors import PvgError

Side = Literal["prover", "verifier", "test"]


@dataclass(frozen=True)
class Difficulty:
    steps: int
    magnitude: int  # digits of the largest number in the problem or its solution


@dataclass(frozen=True)
class Flaw:
    kind: str
    step: int  # 0-based index of the reference step the flaw changes


@dataclass(frozen=True)
class FlawedSolution:
    text: str  # GSM8K style, ends in "#### N" with N wrong
    compact: str  # the form the tiny prover writes
    answer: str
    flaw: Flaw


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str  # the final number, as text
    reference: str | None = None  # GSM8K-style worked solution ending in "#### N"
    difficulty: Difficulty | None = None
    compact_reference: str | None = None  # the short solution form the tiny prover writes (synthetic only)
    flawed: tuple[FlawedSolution, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(d: dict) -> "Problem":
        diff = d.get("difficulty")
        return Problem(
            id=d["id"],
            question=d["question"],
            answer=str(d["answer"]),
            reference=d.get("reference"),
            difficulty=Difficulty(**diff) if diff else None,
            compact_reference=d.get("compact_reference"),
            flawed=tuple(
                FlawedSolution(f["text"], f["compact"], f["answer"], Flaw(**f["flaw"])) for f in d.get("flawed", ())
            ),
        )


def stable_id(prefix: str, question: str) -> str:
    return f"{prefix}-{hashlib.sha256(question.encode()).hexdigest()[:12]}"


def split_of(problem_id: str, prover: float = 0.45, verifier: float = 0.45) -> Side:
    """Which side a problem belongs to, from a hash of its id alone.

    Hashing the id (not the position in a file or the seed) is what keeps a problem on the same
    side across runs, data orderings and resumes, so prover and verifier never share a problem.
    """
    u = int.from_bytes(hashlib.sha256(problem_id.encode()).digest()[:8], "big") / 2**64
    if u < prover:
        return "prover"
    if u < prover + verifier:
        return "verifier"
    return "test"


def split_problems(problems: Iterable[Problem], prover: float = 0.45, verifier: float = 0.45) -> dict[Side, list[Problem]]:
    out: dict[Side, list[Problem]] = {"prover": [], "verifier": [], "test": []}
    for p in problems:
        out[split_of(p.id, prover, verifier)].append(p)
    return out


def _gsm8k_final(answer: str) -> str | None:
    if "####" not in answer:
        return None
    final = answer.rsplit("####", 1)[1].strip().replace(",", "")
    return final or None


def _gsm8k_record(obj: object, where: str) -> Problem:
    if not isinstance(obj, dict):
        raise PvgError(f"{where}: expected a JSON object with 'question' and 'answer'")
    for key in ("question", "answer"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise PvgError(f"{where}: missing or empty string field {key!r}")
    final = _gsm8k_final(obj["answer"])
    if final is None:
        raise PvgError(f"{where}: 'answer' has no final '#### N' line (GSM8K format)")
    return Problem(id=stable_id("gsm8k", obj["question"]), question=obj["question"], answer=final, reference=obj["answer"])


def load_jsonl(path: str | Path) -> list[Problem]:
    """GSM8K-format JSONL (`{"question", "answer"}`, answers ending in `#### N`), or our own synth files."""
    p = Path(path)
    if not p.is_file():
        raise PvgError(f"data file not found: {p}")
    problems = []
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{p}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise PvgError(f"{where}: not UTF-8 text (byte {e.start + 1})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise PvgError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            if isinstance(obj, dict) and "id" in obj and "compact_reference" in obj:
                try:
                    problems.append(Problem.from_json(obj))
                except (KeyError, TypeError) as e:
                    raise PvgError(f"{where}: malformed pvg problem record ({e})") from None
            else:
                problems.append(_gsm8k_record(obj, where))
    if not problems:
        raise PvgError(f"{p}: no problems in file")
    return problems


def load_hub(name: str, config: str | None = "main", split: str = "train", data_files=None) -> list[Problem]:
    """A data set with GSM8K's columns through `datasets.load_dataset`: a hub name, or a builder such
    as "json" with `data_files` (how it is tested here, with no hub)."""
    import datasets

    try:
        kwargs = {"data_files": data_files} if data_files else {}
        ds = datasets.load_dataset(name, config, split=split, **kwargs)
    except Exception as e:  # datasets raises many types for "not reachable / not found"
        raise PvgError(f"could not load data set {name!r} (config {config!r}, split {split!r}): {e}") from None
    return [_gsm8k_record(row, f"{name}[{i}]") for i, row in enumerate(ds)]


def save_jsonl(problems: Iterable[Problem], path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    try:
        with tmp.open("w") as f:
            for prob in problems:
                f.write(json.dumps(prob.to_json()) + "\n")
        tmp.replace(p)
    finally:  # a failed write (a full disk) leaves no partial file
        tmp.unlink(missing_ok=True)
