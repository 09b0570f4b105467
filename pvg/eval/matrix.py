"""Every round's verifier against every round's sneaky prover (the paper's robustness matrix).

The game only ever scores a round's prover with that round's verifier. This fills in the rest: on
the same held-out test problems, each round's prover writes helpful and sneaky solutions once, and
each round's verifier scores them all. A cell (verifier i, prover j) holds the share of prover j's
sneaky *incorrect* solutions that verifier i accepts, at verifier i's own threshold (the game's
rule, `verifier.threshold`, on prover i's solutions), and verifier i's AUROC on prover j's solutions.
A game whose verifiers get robust shows each column's fool rate falling down the rows: a later
verifier is fooled less by the same sneaky prover.
"""

from __future__ import annotations

import random

from pvg.eval.sampling import sample, score
from pvg.eval.store import EvalRun
from pvg.game.metrics import acceptance_threshold, auroc


def cell(scores: list[float], sols: list, threshold: float) -> tuple[float | None, float | None]:
    """One verifier on one prover's solutions: the share of its sneaky wrong ones accepted at
    `threshold`, and the AUROC of correct against incorrect; None where either is undefined.
    `bench/cross_verifiers.py` fills its cross-game matrix with it too."""
    wrong = [v for v, s in zip(scores, sols) if s.role == "sneaky" and not s.correct]
    a = auroc(scores, [s.correct for s in sols])
    return (sum(v >= threshold for v in wrong) / len(wrong) if wrong else None), (None if a != a else a)


def matrix(run: EvalRun, n_problems: int, seed: int, advance=lambda **_: None) -> dict:
    test = run.problems("test")
    problems = random.Random(seed).sample(test, min(n_problems, len(test)))
    ks = run.rounds(what="the verifier x prover matrix")
    by_id = {p.id: p for p in problems}
    sols = {j: sample(run, j, problems, ["helpful", "sneaky"], 1, seed=seed + 1000 * j) for j in ks}
    fool, roc, thresholds = {}, {}, {}
    for i in ks:
        scores = {j: score(run, i, [by_id[s.problem_id].question for s in sols[j]], [s.text for s in sols[j]]) for j in ks}
        own = sols[i]
        t = acceptance_threshold(scores[i], [s.correct for s in own], [s.role for s in own], run.cfg.verifier.threshold)
        thresholds[str(i)] = t
        fool[str(i)], roc[str(i)] = {}, {}
        for j in ks:
            fool[str(i)][str(j)], roc[str(i)][str(j)] = cell(scores[j], sols[j], t)
        advance()
    sneaky_incorrect = {str(j): sum(not s.correct for s in sols[j] if s.role == "sneaky") / len(problems) for j in ks}
    return {"problems": len(problems), "rounds": [str(k) for k in ks], "threshold_rule": run.cfg.verifier.threshold,
            "thresholds": thresholds, "sneaky_fool_rate": fool, "auroc": roc, "sneaky_incorrect_rate": sneaky_incorrect}


def figure(result: dict, dpi: int = 100) -> bytes:
    from pvg.eval.figures import heatmap_figure

    ks = result["rounds"]
    grid = [[result["sneaky_fool_rate"][i][j] for j in ks] for i in ks]
    return heatmap_figure(grid, ks, ks, "sneaky fool rate: verifier (row) vs sneaky prover (column)",
                          "prover round", "verifier round", vmin=0, vmax=1, fmt="{:.0%}", cmap="Reds", dpi=dpi)
