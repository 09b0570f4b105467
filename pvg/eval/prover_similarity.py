"""How alike the rounds' provers are: CAPA κ (exact match of final answers) between every pair of
rounds, on the same held-out test problems, greedy helpful solutions.

Near 1: PPO barely moved the prover's answers (every round is the same prover); near 0: two rounds'
provers err independently although trained from the same initial weights.
"""

from __future__ import annotations

import random

from pvg.eval.sampling import sample
from pvg.eval.similarity import capa_exact_match
from pvg.eval.store import EvalRun


def prover_similarity(run: EvalRun, n_problems: int, seed: int, advance=lambda **_: None) -> dict:
    test = run.problems("test")
    problems = random.Random(seed).sample(test, min(n_problems, len(test)))
    gold = [p.answer for p in problems]
    answers, accuracy = {}, {}
    for k in run.rounds(needs=("prover",), what="prover similarity"):
        sols = sample(run, k, problems, ["helpful"], 1, seed=seed, greedy=True)
        answers[k] = [s.answer for s in sols]
        accuracy[str(k)] = sum(s.correct for s in sols) / len(sols)
        advance()
    ks = sorted(answers)
    kappa = {str(a): {str(b): (1.0 if a == b else capa_exact_match(answers[a], answers[b], gold)) for b in ks} for a in ks}
    return {"problems": len(problems), "decoding": "greedy, helpful role", "accuracy": accuracy, "kappa": kappa}


def figure(result: dict, dpi: int = 100) -> bytes:
    from pvg.eval.figures import heatmap_figure

    ks = list(result["kappa"])
    grid = [[result["kappa"][a][b] for b in ks] for a in ks]
    return heatmap_figure(grid, ks, ks, "provers' answers, CAPA κ", "round", "round", vmin=-1, vmax=1, dpi=dpi)
