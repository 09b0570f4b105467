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
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = list(result["kappa"])
    grid = [[result["kappa"][a][b] if result["kappa"][a][b] is not None else float("nan") for b in ks] for a in ks]
    fig, ax = plt.subplots(figsize=(4.5, 4), dpi=dpi)
    im = ax.imshow(grid, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(ks)), ks)
    ax.set_yticks(range(len(ks)), ks)
    for i in range(len(ks)):
        for j in range(len(ks)):
            if grid[i][j] == grid[i][j]:
                ax.text(j, i, f"{grid[i][j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xlabel("round")
    ax.set_ylabel("round")
    ax.set_title("provers' answers, CAPA κ")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
