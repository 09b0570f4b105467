"""The pool's Parquet round trip, the verifier's mixture (balanced, equal shares) and phase length, and
the stop rule."""

from __future__ import annotations

import collections
import math

import pyarrow.parquet as pq
import pytest

from pvg.config import GameConfig
from pvg.game.orchestrator import pool_episodes, stop_reason
from pvg.game.pool import INITIAL, SCHEMA, PoolRow, file_for, mixture_pairs, read_rounds, write_round
from pvg.game.verifier_train import phase_steps
from pvg.data.roles import verifier_text
from pvg.errors import PvgError


def row(pid: str, rnd: int, correct: bool, i: int, role: str = "helpful") -> PoolRow:
    text = f"{'right' if correct else 'wrong'} r{rnd} s{i}\n#### {1 if correct else 2}"
    return PoolRow(problem_id=pid, round=rnd, role=role, question=f"Q {pid}?", text=text, answer="1" if correct else "2",
                   correct=correct, verifier_score=None if rnd == INITIAL else 0.5, phase="game", sample=i, tokens=5)


def test_write_read_round_trip(tmp_path):
    rows = [row("p1", 0, True, 0), row("p1", 0, False, 1, "sneaky")]
    path = write_round(tmp_path, 0, rows)
    assert path == file_for(tmp_path, 0) and path.name == "round-0.parquet"
    assert file_for(tmp_path, INITIAL).name == "initial.parquet"
    assert pq.read_schema(path).equals(SCHEMA)
    assert read_rounds(tmp_path, [0]) == rows
    assert not list(tmp_path.glob("*.tmp")), "written under a temporary name, then renamed"
    with pytest.raises(PvgError, match="round-1.parquet is missing"):
        read_rounds(tmp_path, [1])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a truncated pool file
    with pytest.raises(PvgError, match="round-0.parquet is damaged .*nothing was changed"):
        read_rounds(tmp_path, [0])


def pool(sources, problems=40, per_source=4):
    rows = []
    for src in sources:
        for n in range(problems):
            for i in range(per_source):
                rows.append(row(f"p{n}", src, correct=i % 2 == 0, i=i))
    return rows


def decode(pair_text: str) -> tuple[str, int]:
    """(problem id, source round) back from a pair member's verifier text."""
    question, solution = pair_text.split("\n", 1)
    return question.removeprefix("Q ").rstrip("?"), int(solution.split()[1][1:])


def test_mixture_is_balanced_per_problem():
    rows = pool([INITIAL, 0, 1])
    pairs = mixture_pairs(rows, [INITIAL, 0, 1], per_problem=4, mixture="equal", seed=0)
    per_problem = collections.Counter(decode(p.chosen)[0] for p in pairs)
    # per_problem/2 correct x per_problem/2 incorrect, every problem that has both
    assert set(per_problem.values()) == {4} and len(per_problem) == 40
    for p in pairs:
        assert p.chosen.split("\n")[1].startswith("right") and p.rejected.split("\n")[1].startswith("wrong")
        assert decode(p.chosen)[0] == decode(p.rejected)[0], "a pair is two solutions of one problem"


def test_mixture_gives_sources_equal_shares_whatever_their_size():
    # round 1 has ten times the rows of the others; with `equal` it still gets a third of the draws
    rows = pool([INITIAL, 0], per_source=2) + pool([1], per_source=20)
    pairs = mixture_pairs(rows, [INITIAL, 0, 1], per_problem=4, mixture="equal", seed=1)
    drawn = collections.Counter(decode(t)[1] for p in pairs for t in (p.chosen, p.rejected))
    total = sum(drawn.values())
    for src in (INITIAL, 0, 1):
        assert abs(drawn[src] / total - 1 / 3) < 0.08, drawn
    proportional = mixture_pairs(rows, [INITIAL, 0, 1], per_problem=4, mixture="proportional", seed=1)
    drawn_p = collections.Counter(decode(t)[1] for p in proportional for t in (p.chosen, p.rejected))
    assert drawn_p[1] / sum(drawn_p.values()) > 0.7, drawn_p


def test_mixture_skips_one_sided_problems_and_other_rounds():
    rows = [row("only-right", 0, True, 0), row("only-right", 0, True, 1),
            row("both", 0, True, 0), row("both", 0, False, 1),
            row("both", 5, False, 2)]  # a round not asked for is never drawn
    pairs = mixture_pairs(rows, [0], per_problem=2, mixture="equal", seed=0)
    assert [decode(p.chosen)[0] for p in pairs] == ["both"]
    assert all(decode(p.rejected)[1] == 0 for p in pairs)


def test_mixture_is_deterministic():
    rows = pool([INITIAL, 0])
    assert mixture_pairs(rows, [INITIAL, 0], 4, "equal", seed=3) == mixture_pairs(rows, [INITIAL, 0], 4, "equal", seed=3)
    assert mixture_pairs(rows, [INITIAL, 0], 4, "equal", seed=3) != mixture_pairs(rows, [INITIAL, 0], 4, "equal", seed=4)


@pytest.mark.parametrize("pairs, epochs, expected", [
    (10000, None, 400),  # unset: the fixed count, whatever the pool
    (10000, 4.0, 1250),  # 4 * 10000 / 32
    (3000, 4.0, 400),  # 375 passes would be fewer than train_steps
    (3201, 4.0, 401),  # 400.125, rounded up
    (100, 0.5, 400),
])
def test_verifier_phase_steps_grow_with_the_pool(pairs, epochs, expected):
    assert phase_steps(pairs, 400, epochs, 32) == expected


def test_verifier_text_joins_question_and_solution():
    assert verifier_text("Q?", "  a: 1 + 1 = 2\n#### 2 \n") == "Q?\na: 1 + 1 = 2\n#### 2"


# ---------------------------------------------------------------- the stop rule

def metrics(fool: float, exploited: bool) -> dict:
    return {"sneaky_fool_rate": fool, "exploited": exploited}


@pytest.mark.parametrize("rule, fool, exploited, k, stops", [
    ("no_exploit_and_fool_rate", 0.05, False, 1, "no longer fools"),
    ("no_exploit_and_fool_rate", 0.05, True, 1, None),  # exploited: the verifier is not robust yet
    ("no_exploit_and_fool_rate", 0.30, False, 1, None),  # still fooled too often
    ("no_exploit_and_fool_rate", math.nan, False, 1, None),  # nothing to measure is not "below the bar"
    ("fool_rate", 0.05, False, 1, "fool rate 5.0% < 10.0% after a full 20-step attack"),
    ("fool_rate", 0.05, True, 1, None),  # an exploit cut the attack short: the bar does not count
    ("no_exploit_and_fool_rate", 0.05, False, 0, None),  # before game.min_rounds=2: play on
    ("fool_rate", 0.05, True, 0, None),
    ("max_rounds", 0.0, False, 1, None),
    ("no_exploit_and_fool_rate", 0.30, True, 2, "reached game.max_rounds=3"),
    ("max_rounds", 0.0, False, 2, "reached game.max_rounds=3"),
])
def test_stop_rule(rule, fool, exploited, k, stops):
    game = GameConfig(max_rounds=3, min_rounds=2, fool_rate_bar=0.1, stop_rule=rule)
    reason = stop_reason(game, 20, metrics(fool, exploited), k)
    if stops is None:
        assert reason is None
    else:
        assert stops in reason


def test_round_limit_applies_before_min_rounds():
    game = GameConfig(max_rounds=1, min_rounds=2)
    assert stop_reason(game, 20, metrics(0.0, False), 0) == "reached game.max_rounds=1"
    assert "no longer fools" in stop_reason(GameConfig(min_rounds=1), 20, metrics(0.0, False), 0)


def test_the_initial_pool_can_hold_the_helpful_role_only():
    both = GameConfig(pool_samples_per_role=2)
    helpful = GameConfig(pool_samples_per_role=2, initial_pool_roles=["helpful"])
    assert collections.Counter(r for _, r, _ in pool_episodes(["a", "b"], INITIAL, both)) == {"helpful": 4, "sneaky": 4}
    assert {r for _, r, _ in pool_episodes(["a", "b"], INITIAL, helpful)} == {"helpful"}
    assert collections.Counter(r for _, r, _ in pool_episodes(["a", "b"], 0, helpful)) == {"helpful": 4, "sneaky": 4}
    with pytest.raises(ValueError):
        GameConfig(initial_pool_roles=[])
