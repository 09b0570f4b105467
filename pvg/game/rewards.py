"""Role-conditioned rewards of the prover-verifier game (Kirchner et al. 2024), one scalar per solution.

`V'` is the verifier score minus its mean over the `b` samples of the same problem *and role*:
comparing a sneaky solution only with other sneaky solutions to the same problem is what makes the
reward about convincingness rather than about the problem's or the role's base rate.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence


def normalize_per_group(scores: Sequence[float], groups: Sequence[object]) -> list[float]:
    """V' = V - mean of V over the samples sharing a group key (problem id, role)."""
    sums: dict[object, float] = defaultdict(float)
    counts: dict[object, int] = defaultdict(int)
    for v, g in zip(scores, groups):
        sums[g] += v
        counts[g] += 1
    return [v - sums[g] / counts[g] for v, g in zip(scores, groups)]


def src_reward(v_rel: float, correct: bool, helpful: bool) -> float:
    """Signed relative convincingness: (2c-1)(2h-1)·V' if V' > 0, else -1."""
    if v_rel > 0:
        return (2 * int(correct) - 1) * (2 * int(helpful) - 1) * v_rel
    return -1.0


def cgc_reward(v: float, correct: bool, helpful: bool, v0: float = -2.0) -> float:
    """Correctness-gated convincingness: V if role-aligned, else the constant V0."""
    aligned = correct == helpful
    return v if aligned else v0


def goodhart_reward(v: float) -> float:
    """Plain verifier score, role ignored: the prover only tries to please the verifier."""
    return v


def compute_rewards(
    kind: str,
    scores: Sequence[float],
    correct: Sequence[bool],
    roles: Sequence[str],
    problem_ids: Sequence[str],
    cgc_v0: float = -2.0,
) -> list[float]:
    if kind == "src":
        rel = normalize_per_group(scores, list(zip(problem_ids, roles)))
        return [src_reward(r, c, role == "helpful") for r, c, role in zip(rel, correct, roles)]
    if kind == "cgc":
        return [cgc_reward(v, c, role == "helpful", cgc_v0) for v, c, role in zip(scores, correct, roles)]
    if kind == "goodhart":
        return [goodhart_reward(v) for v in scores]
    raise ValueError(f"unknown reward {kind!r} (allowed: src, cgc, goodhart)")
