"""Two games' verifiers scored on the same solutions: which game made the better verifier?

A game's round metrics score each round's prover with that round's verifier, so comparing two
games (SRC against CGC, say) by their AUROC mixes two things: how good each verifier is and how
hard its own sneaky prover is. This script separates them. On one set of held-out test problems
(both games must share data config and seed), every round's prover of both games writes one
helpful and one sneaky solution per problem, and every round's verifier of both games scores all of
them:

    python bench/cross_verifiers.py SRC=/tmp/g2/conf/seed-0/tiny-confirm CGC=/tmp/g2/cgc-0
    python bench/cross_verifiers.py A=RUN_A B=RUN_B --problems 500 --out bench/results/cross.md

Reported, for each verifier (game, round):
- its AUROC on each prover's solutions (correct against incorrect) and on all provers' pooled:
  the pooled column is a fair single number, every verifier graded on the same solutions;
- the share of each sneaky prover's wrong solutions it accepts, at its own threshold (the game's
  rule, `verifier.threshold`, on its own round's solutions): the paper's robustness matrix, across games.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pvg.errors import PvgError  # noqa: E402
from pvg.eval.matrix import cell  # noqa: E402
from pvg.eval.sampling import sample, score  # noqa: E402
from pvg.eval.store import EvalRun  # noqa: E402
from pvg.game.metrics import acceptance_threshold  # noqa: E402


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_runs(items: list[str]) -> dict[str, EvalRun]:
    runs = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            fail(f"{item!r} is not NAME=RUN_DIR (e.g. SRC=runs/tiny)")
        try:
            runs[name] = EvalRun.open(path)
        except PvgError as e:
            fail(f"{name}: {e}")
    return runs


def shared_problems(runs: dict[str, EvalRun], n: int) -> list:
    """The first n test problems, which must be the same problems in every game."""
    sets = {name: run.problems("test")[:n] for name, run in runs.items()}
    ids = {name: [p.id for p in ps] for name, ps in sets.items()}
    first = next(iter(ids.values()))
    for name, these in ids.items():
        if these != first:
            fail(f"{name}'s test problems differ from the others' (data config or run.seed): "
                     "the games must share them to be graded on the same solutions")
    return next(iter(sets.values()))


def cross(runs: dict[str, EvalRun], problems: list, seed: int) -> dict:
    by_id = {p.id: p for p in problems}
    provers = [(name, k) for name, run in runs.items() for k in run.rounds(what="cross-game verifiers")]
    sols = {}
    for name, k in provers:
        print(f"sampling {name} round {k}", file=sys.stderr, flush=True)
        sols[(name, k)] = sample(runs[name], k, problems, ["helpful", "sneaky"], 1, seed=seed + 1000 * k)
    rows = []
    for vname, i in provers:
        print(f"scoring with {vname} round {i}", file=sys.stderr, flush=True)
        scores = {key: score(runs[vname], i, [by_id[s.problem_id].question for s in ss], [s.text for s in ss])
                  for key, ss in sols.items()}
        own = sols[(vname, i)]
        t = acceptance_threshold(scores[(vname, i)], [s.correct for s in own], [s.role for s in own],
                                 runs[vname].cfg.verifier.threshold)
        row = {"verifier": (vname, i), "auroc": {}, "fool": {}}
        for key, ss in sols.items():
            row["fool"][key], row["auroc"][key] = cell(scores[key], ss, t)
        _, row["pooled_auroc"] = cell([v for key in sols for v in scores[key]], [s for ss in sols.values() for s in ss], t)
        rows.append(row)
    sneaky_wrong = {key: statistics.fmean(not s.correct for s in ss if s.role == "sneaky") for key, ss in sols.items()}
    helpful_right = {key: statistics.fmean(s.correct for s in ss if s.role == "helpful") for key, ss in sols.items()}
    return {"provers": provers, "rows": rows, "sneaky_incorrect": sneaky_wrong, "helpful_pass": helpful_right}


def table(result: dict, what: str, fmt: str, pooled: bool) -> list[str]:
    cols = result["provers"]
    head = "| verifier \\ prover | " + " | ".join(f"{n} {k}" for n, k in cols) + (" | all pooled |" if pooled else " |")
    lines = [head, "|---" * (len(cols) + 1 + pooled) + "|"]
    for row in result["rows"]:
        n, i = row["verifier"]
        values = [row[what][c] for c in cols] + ([row["pooled_auroc"]] if pooled else [])
        cells = ["–" if v is None else format(v, f) for v, f in zip(values, [fmt] * len(cols) + [".3f"])]
        lines.append(f"| {n} {i} | " + " | ".join(cells) + " |")
    return lines


def report(result: dict, command: str, problems: int) -> str:
    cols = result["provers"]
    return "\n".join([
        f"# Cross-game verifiers: `{command}`", "",
        f"{problems} held-out test problems, one helpful and one sneaky solution each per prover.", "",
        "Provers: " + "; ".join(f"{n} {k}: helpful pass {result['helpful_pass'][(n, k)]:.0%}, sneaky incorrect "
                                f"{result['sneaky_incorrect'][(n, k)]:.0%}" for n, k in cols), "",
        "## AUROC (correct against incorrect), each verifier on each prover's solutions", "",
        *table(result, "auroc", ".3f", True), "",
        "## Share of each sneaky prover's wrong solutions accepted, at the verifier's own threshold", "",
        *table(result, "fool", ".0%", False), ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="NAME=RUN_DIR, two or more finished games")
    ap.add_argument("--problems", type=int, default=1000, help="held-out test problems")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed")
    ap.add_argument("--out", type=Path, help="write the markdown tables here too")
    args = ap.parse_args()
    if len(args.runs) < 2:
        fail("give two or more NAME=RUN_DIR")
    runs = parse_runs(args.runs)
    problems = shared_problems(runs, args.problems)
    text = report(cross(runs, problems, args.seed), "python bench/cross_verifiers.py " + " ".join(sys.argv[1:]),
                  len(problems))
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
