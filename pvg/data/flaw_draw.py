"""Which flaw kind to plant next in a problem: the kinds in turn, the fewest planted first.

Drawn uniformly instead, a kind is missing from a third of the problems (four kinds, four flaws a
problem: 33% of the tiny prover's half had no stale operand; in turn, 5%) though it fits nearly all of
them, and a warm start taught that one kind (`warmstart.sneaky_flaw_kinds`) never trained the
sneaky prompt on those problems: docs/results.md#every-problem-a-sneaky-example.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Sequence


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
