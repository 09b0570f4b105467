"""The solution pool: every sampled solution of every round, one Parquet file per round, append-only.

Each file is written whole, under a temporary name, then renamed: a killed run leaves either a
complete round or none, never half a round or a duplicated row.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from pvg.data.roles import verifier_text
from pvg.errors import PvgError
from pvg.run.folder import POOL_ADVICE, read_parquet
from pvg.game.verifier_train import Pair

INITIAL = -1  # the `round` of the initial (warm-started) prover's samples

SCHEMA = pa.schema(
    [
        ("problem_id", pa.string()),
        ("round", pa.int32()),
        ("role", pa.string()),
        ("question", pa.string()),
        ("text", pa.string()),
        ("answer", pa.string()),
        ("correct", pa.bool_()),
        ("verifier_score", pa.float64()),
        ("phase", pa.string()),
        ("sample", pa.int32()),
        ("tokens", pa.int32()),
    ]
)


@dataclass
class PoolRow:
    problem_id: str
    round: int
    role: str
    question: str
    text: str
    answer: str | None
    correct: bool
    verifier_score: float | None
    phase: str  # "initial" (warm-started prover) or "game" (after the round's prover phase)
    sample: int
    tokens: int


def file_for(pool_dir: Path, round_: int) -> Path:
    return pool_dir / ("initial.parquet" if round_ == INITIAL else f"round-{round_}.parquet")


def write_round(pool_dir: Path, round_: int, rows: Sequence[PoolRow]) -> Path:
    pool_dir.mkdir(parents=True, exist_ok=True)
    path = file_for(pool_dir, round_)
    table = pa.Table.from_pylist([asdict(r) for r in rows], schema=SCHEMA)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def read_rounds(pool_dir: Path, rounds: Sequence[int]) -> list[PoolRow]:
    rows: list[PoolRow] = []
    for r in rounds:
        path = file_for(pool_dir, r)
        if not path.is_file():
            raise PvgError(f"pool file {path} is missing; {POOL_ADVICE}")
        rows.extend(PoolRow(**d) for d in read_parquet(path).to_pylist())
    return rows


def mixture_pairs(
    rows: Sequence[PoolRow], sources: Sequence[int], per_problem: int, mixture: str, seed: int
) -> list[Pair]:
    """Balanced (correct, incorrect) pairs: per problem `per_problem/2` of each, sources mixed by weight.

    Every round the verifier sees the same number of solutions per problem whatever the pool size;
    with `equal` mixing each earlier round (and the initial prover) gets the same share, so old
    sneaky tricks stay in the training data after the prover has moved on.
    """
    rng = random.Random(f"mixture-{seed}")
    by_problem: dict[str, dict[bool, dict[int, list[PoolRow]]]] = {}
    sizes = {s: 0 for s in sources}
    for r in rows:
        if r.round in sizes:
            by_problem.setdefault(r.problem_id, {True: {}, False: {}})[r.correct].setdefault(r.round, []).append(r)
            sizes[r.round] += 1
    weight = {s: (1.0 if mixture == "equal" else float(sizes[s])) for s in sources}
    half = max(1, per_problem // 2)
    pairs: list[Pair] = []
    for pid in sorted(by_problem):
        kinds = by_problem[pid]
        if not kinds[True] or not kinds[False]:
            continue
        drawn = {}
        for label in (True, False):
            srcs = sorted(kinds[label])
            picks = []
            for _ in range(half):
                src = rng.choices(srcs, weights=[weight[s] for s in srcs])[0]
                picks.append(rng.choice(kinds[label][src]))
            drawn[label] = picks
        for c in drawn[True]:
            for i in drawn[False]:
                pairs.append(Pair(verifier_text(c.question, c.text), verifier_text(i.question, i.text)))
    rng.shuffle(pairs)
    return pairs
