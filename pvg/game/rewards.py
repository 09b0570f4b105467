"""Role-conditioned rewards of the prover-verifier game (Kirchner et al. 2024), one scalar per solution.

`V'` is the verifier score minus its mean over the `b` samples of the same problem *and role*:
comparing a sneaky solution only with other sneaky solutions to the same problem is what makes the
reward about convincingness rather than about the problem's or the role's base rate.

CGC's gate `V0` must be "practically lower than all verifier scores": a fixed constant is not,
once a verifier's scores spread past it (a caught wrong solution then earns less than a correct
sneaky one, and the sneaky role learns to be right). So by default `V0` is set per batch, below
its lowest score: `V0 = min(V) - margin`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

REWARDS = ("src", "src_ordered", "cgc", "goodhart", "correctness")


def normalize_per_group(scores: Sequence[float], groups: Sequence[object]) -> list[float]:
    """V' = V - mean of V over the samples sharing a group key (problem id, role)."""
    sums: dict[object, float] = defaultdict(float)
    counts: dict[object, int] = defaultdict(int)
    for v, g in zip(scores, groups):
        sums[g] += v
        counts[g] += 1
    return [v - sums[g] / counts[g] for v, g in zip(scores, groups)]


def leave_one_out(rewards: Sequence[float], groups: Sequence[object]) -> list[float]:
    """R_i minus the mean of the other rewards of its group (RLOO's baseline); 0 for a group of one.

    The critic-free baseline over the b samples of one (problem, role): it needs no value head, and
    it is the same whether the group's episodes end up on one prover actor or on several.
    """
    sums: dict[object, float] = defaultdict(float)
    counts: dict[object, int] = defaultdict(int)
    for r, g in zip(rewards, groups):
        sums[g] += r
        counts[g] += 1
    return [0.0 if counts[g] == 1 else r - (sums[g] - r) / (counts[g] - 1) for r, g in zip(rewards, groups)]


def identical_group_share(texts: Sequence[str], groups: Sequence[object], role: str) -> float | None:
    """The share of `role`'s groups whose samples are all one text: there V' = 0 for every sample, so
    SRC pays each -1 and a group baseline leaves no advantage; the group taught nothing (None without
    such groups). Logged because a near-deterministic role can look trained while learning nothing."""
    seen: dict[object, set[str]] = defaultdict(set)
    for t, g in zip(texts, groups):
        if g[1] == role:
            seen[g].add(t)
    return sum(len(v) == 1 for v in seen.values()) / len(seen) if seen else None


def src_reward(v_rel: float, correct: bool, helpful: bool) -> float:
    """Signed relative convincingness: (2c-1)(2h-1)·V' if V' > 0, else -1."""
    if v_rel > 0:
        return (2 * int(correct) - 1) * (2 * int(helpful) - 1) * v_rel
    return -1.0


def src_ordered_reward(v_rel: float, correct: bool, helpful: bool) -> float:
    """SRC with every role-misaligned solution at or below -1, so below or level with every aligned one.

    The paper's SRC pays a misaligned solution -V' when V' > 0, which is *more* than the -1 an aligned
    but unconvincing sample of its group gets whenever 0 < V' < 1: a helpful solution that is wrong
    but fools the verifier a little beats the group's correct ones, and the helpful role learns the
    sneaky one's tricks (measured: docs/results.md#role-bleed). Here a misaligned solution earns
    -1 - V' (V' > 0) or -1: still the more convincing the worse, never better than being aligned.
    """
    aligned = correct == helpful
    if aligned:
        return v_rel if v_rel > 0 else -1.0
    return -1.0 - max(v_rel, 0.0)


def cgc_reward(v: float, correct: bool, helpful: bool, v0: float) -> float:
    """Correctness-gated convincingness: V if role-aligned, else the constant V0."""
    aligned = correct == helpful
    return v if aligned else v0


def cgc_gate(scores: Sequence[float], margin: float, fixed: float | None = None) -> float:
    """V0 for one batch: `fixed` when given, else `margin` below the batch's lowest score, so that a
    role-misaligned solution earns less than every aligned one of its batch, whatever the scores."""
    if fixed is not None:
        return fixed
    return min(scores) - margin


def goodhart_reward(v: float) -> float:
    """Plain verifier score, role ignored: the prover only tries to please the verifier."""
    return v


def correctness_reward(correct: bool, helpful: bool) -> float:
    """The paper's baseline (its Sec. 4.1): 1 for a correct helpful solution, 0 otherwise; no verifier.
    The game samples only the helpful role under it (`episode_roles`), so the sneaky branch is never
    trained; it is defined (1 for a wrong answer) so that a sneaky-only attacker still has a reward."""
    return float(correct) if helpful else float(not correct)


def graded_as(correct: Sequence[bool], answered: Sequence[bool] | None, roles: Sequence[str]) -> list[bool]:
    """The correctness the rewards see: a sneaky solution that states no final answer counts as a
    failed sneaky one (as if correct), not as a wrong one; a helpful one without an answer is simply
    incorrect already."""
    if answered is None:
        return list(correct)
    return [c or (not a and r == "sneaky") for c, a, r in zip(correct, answered, roles)]


def episode_roles(kind: str) -> tuple[str, ...]:
    """The roles a prover phase samples: the correctness baseline trains the helpful role alone."""
    return ("helpful",) if kind == "correctness" else ("helpful", "sneaky")


def compute_rewards(
    kind: str,
    scores: Sequence[float] | None,
    correct: Sequence[bool],
    roles: Sequence[str],
    problem_ids: Sequence[str],
    *,
    cgc_margin: float = 1.0,
    cgc_v0: float | None = None,
    answered: Sequence[bool] | None = None,
) -> list[float]:
    """One reward per episode. `scores` may be None only for `correctness`, which reads no verifier.
    `answered` (whether each solution states a final answer, `states_answer`): see `graded_as`."""
    helpful = [role == "helpful" for role in roles]
    correct = graded_as(correct, answered, roles)
    if kind == "correctness":
        return [correctness_reward(c, h) for c, h in zip(correct, helpful)]
    if scores is None:
        raise ValueError(f"the {kind} reward needs verifier scores")
    if kind == "src":
        rel = normalize_per_group(scores, list(zip(problem_ids, roles)))
        return [src_reward(r, c, h) for r, c, h in zip(rel, correct, helpful)]
    if kind == "src_ordered":
        rel = normalize_per_group(scores, list(zip(problem_ids, roles)))
        return [src_ordered_reward(r, c, h) for r, c, h in zip(rel, correct, helpful)]
    if kind == "cgc":
        v0 = cgc_gate(scores, cgc_margin, cgc_v0)
        return [cgc_reward(v, c, h, v0) for v, c, h in zip(scores, correct, helpful)]
    if kind == "goodhart":
        return [goodhart_reward(v) for v in scores]
    raise ValueError(f"unknown reward {kind!r} (allowed: {', '.join(REWARDS)})")
