"""Balanced best-of-n: does each round's verifier pick a correct solution out of a balanced set?

Per round, per test problem: `samples` solutions from that round's helpful prover (many more than
n: the paper's "sample many, then balance"). A problem counts for n when at least n/2 of them are
correct and n/2 incorrect; then the first n/2 of each kind, in sample order, form its set, and the
verifier's top-scored pick is either correct or not. Balancing makes chance exactly 1/2 for every
problem and every round, so the accuracy measures the verifier, not how often the prover happens to
be right. The sets are nested (n's set holds every smaller n's), so a larger n is a harder test of
the same solutions. A prover right 95% of the time leaves few problems with n/2 wrong answers:
raise `samples` for the larger n.
"""

from __future__ import annotations

import random

from pvg.eval.sampling import sample, score
from pvg.eval.store import EvalRun


def pick_balanced(solutions: list, n: int) -> list | None:
    """n/2 correct and n/2 incorrect of all `solutions`, the first of each kind in sample order; None if too few."""
    half = n // 2
    good = [s for s in solutions if s[0]][:half]
    bad = [s for s in solutions if not s[0]][:half]
    if len(good) < half or len(bad) < half:
        return None
    return good + bad


def default_samples(ns: list[int]) -> int:
    return 4 * max(ns)


def best_of_n(run: EvalRun, ns: list[int], n_problems: int, seed: int, advance=lambda **_: None,
              samples: int | None = None) -> dict:
    test = run.problems("test")
    problems = random.Random(seed).sample(test, min(n_problems, len(test)))
    n_max = max(samples or default_samples(ns), max(ns))
    rows = []
    for k in run.rounds(what="best-of-n"):
        sols = sample(run, k, problems, ["helpful"], n_max, seed=seed + 1000 * k)
        scores = score(run, k, [p.question for p in problems for _ in range(n_max)], [s.text for s in sols])
        by_problem = [[(s.correct, v) for s, v in zip(sols[i * n_max:(i + 1) * n_max], scores[i * n_max:(i + 1) * n_max])]
                      for i in range(len(problems))]
        per_n = {}
        for n in ns:
            sets = [pick_balanced(group, n) for group in by_problem]
            sets = [s for s in sets if s is not None]
            hits = [max(s, key=lambda cv: cv[1])[0] for s in sets]
            per_n[str(n)] = {"accuracy": sum(hits) / len(hits) if hits else None, "problems_kept": len(sets)}
        rows.append({"round": k, "helpful_pass_rate": sum(s.correct for s in sols) / len(sols), "n": per_n})
        advance()
    return {"problems": len(problems), "ns": ns, "samples": n_max, "chance": 0.5, "rounds": rows}


def figure(result: dict, dpi: int = 100) -> bytes:
    from pvg.eval.figures import line_figure

    series = {f"n={n}": [(r["round"], r["n"][str(n)]["accuracy"]) for r in result["rounds"]] for n in result["ns"]}
    return line_figure(series, "verifier's pick is correct (balanced sets)", "accuracy", chance=0.5, dpi=dpi)
