"""Which flaw kind to plant next in a problem (the kinds in turn, the fewest planted first), and at
which step.

Drawn uniformly instead, a kind is missing from a third of the problems (four kinds, four flaws a
problem: 33% of the tiny prover's half had no stale operand; in turn, 5%) though it fits nearly all of
them, and a warm start taught that one kind (`warmstart.sneaky_flaw_kinds`) never trained the
sneaky prompt on those problems: docs/results.md#every-problem-a-sneaky-example.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Literal, Mapping, Sequence

# kind -> the end of the solution it is planted nearest (data.first_step_kinds, data.last_step_kinds);
# a kind not named goes at a random step
FixedSteps = Mapping[str, Literal["first", "last"]]


class KindDraw:
    """One problem's draws. A kind that failed to plant `give_up` times (it does not fit this
    problem's steps, or only gives duplicates) is no longer drawn, so it cannot use up the tries."""

    def __init__(self, kinds: Sequence[str], rng: random.Random, give_up: int = 10):
        self.kinds, self.rng, self.give_up = list(kinds), rng, give_up
        self.planted: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    def next(self) -> str | None:
        """A kind to try, or None once every kind has given up."""
        live = [k for k in self.kinds if self.failed[k] < self.give_up]
        if not live:
            return None
        fewest = min(self.planted[k] for k in live)
        return self.rng.choice([k for k in live if self.planted[k] == fewest])

    def record(self, kind: str, ok: bool) -> None:
        if ok:
            self.planted[kind] += 1
        else:
            self.failed[kind] += 1


# Draws at each step before a fixed-step kind moves on: a kind with random parts (which operand goes
# stale, and to which number) may fit a step in one draw and give the right answer in another.
DRAWS_PER_STEP = 32


def steps_to_try(kind: str, n_steps: int, rng: random.Random, fixed_steps: FixedSteps | None = None) -> list[int]:
    """The steps one try plants `kind` at, in order, until one works: a random step; for a kind fixed
    at "first" every step from the first, at "last" every step from the last (each `DRAWS_PER_STEP`
    times), so it lands at the first, or the last, step it fits.

    Why a fixed place: a tiny prover taught one flaw that may go at either of two steps cannot tell,
    at the second, whether it already planted one, and writes the reference instead (the warm-started
    sneaky role, decoded greedily, was right on 32% of 3-step problems, 6% of 2-step ones). Either
    end keeps the sneaky role at least 92% wrong in every phase; round 0 was exploited within the
    game in no seed at the first step, one of three at the last, two at random: the options stay
    off by default (docs/results.md#the-flaw-at-its-last-step-three-seeds).
    A random step draws exactly as before, so problems without fixed-step kinds do not change.
    """
    end = (fixed_steps or {}).get(kind)
    if end is None:
        return [rng.randrange(n_steps)]
    order = range(n_steps) if end == "first" else reversed(range(n_steps))
    return [k for k in order for _ in range(DRAWS_PER_STEP)]
