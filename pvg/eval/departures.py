"""Where a round's sneaky solutions part from the reference, and how its verifier scored them there.

The round's metrics average over every sneaky solution, so they cannot tell a sneaky role that
fools the verifier only with a late flaw from one that fools it anywhere, nor see that the role
writes the reference where it cannot place its flaw (docs/results.md#the-flaw-at-its-first-step-three-seeds
found both with throwaway scripts). Each sneaky pool solution is read against its problem's compact
reference (`solution_check.first_departure`) and counted by the reference's length and the line it
first differs at. A cell's wrong solutions' mean score is set against the round's helpful correct
mean (the exploit test's target), and the verifier's AUROC between the two says where the round's
AUROC is lost. No model runs: the pool holds the round's own samples and scores.

Synthetic problems only: a hub prover writes free text, which has no line-by-line reference.
"""

from __future__ import annotations

from collections import defaultdict

from pvg.data.solution_check import first_departure
from pvg.errors import PvgError
from pvg.eval.store import EvalRun
from pvg.game.metrics import auroc

SIDE = "verifier"  # the game samples its round pools on the verifier's half
# Cells drawn in the figure need this many wrong solutions: a mean of five scores moves by a point.
MIN_DRAWN = 20


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def round_departures(rows: list[dict], references: dict[str, str]) -> dict:
    """One round's pool rows, counted by (reference steps, first line that differs; None: none does)."""
    helpful = [r["verifier_score"] for r in rows
               if r["role"] == "helpful" and r["correct"] and r["verifier_score"] is not None]
    cells: dict[tuple[int, int | None], dict] = defaultdict(lambda: {"solutions": 0, "wrong": 0, "wrong_scores": []})
    for r in rows:
        ref = references.get(r["problem_id"])
        if r["role"] != "sneaky" or ref is None:
            continue
        steps = len(ref.strip().splitlines()) - 1  # the last line is `#### N`
        cell = cells[(steps, first_departure(r["text"], ref))]
        cell["solutions"] += 1
        if not r["correct"]:
            cell["wrong"] += 1
            if r["verifier_score"] is not None:
                cell["wrong_scores"].append(r["verifier_score"])
    target = _mean(helpful)
    out = []
    for (steps, line), c in sorted(cells.items(), key=lambda kv: (kv[0][0], -1 if kv[0][1] is None else kv[0][1])):
        score, wrong = _mean(c["wrong_scores"]), c["wrong_scores"]
        out.append({"steps": steps, "line": line, "solutions": c["solutions"], "wrong": c["wrong"],
                    "wrong_score": score, "gap": None if score is None or target is None else score - target,
                    "auroc": auroc(helpful + wrong, [True] * len(helpful) + [False] * len(wrong))
                    if helpful and wrong else None})
    return {"helpful_correct_score": target, "sneaky": sum(c["solutions"] for c in cells.values()), "cells": out}


def departures(run: EvalRun, advance=lambda **_: None) -> dict:
    rounds = run.rounds(needs=("prover",), what="departures")
    references = {p.id: p.compact_reference for p in run.problems(SIDE) if p.compact_reference}
    if not references:
        raise PvgError(f"{run.location}: data.source is {run.cfg.data.source}; departures reads solutions line by line "
                       "against synthetic problems' compact references, which GSM8K problems do not have")
    out = []
    for k in rounds:
        out.append({"round": k, **round_departures(run.pool(k), references)})
        advance()
    return {"side": SIDE, "rounds": out}


def figure(result: dict, dpi: int = 100) -> bytes:
    """Per (steps, line) of wrong sneaky solutions: their mean score minus the helpful correct mean, by round
    (the table has every cell; the figure those with `MIN_DRAWN` wrong solutions)."""
    from pvg.eval.figures import line_figure

    series: dict[str, list[tuple[int, float | None]]] = {}
    for r in result["rounds"]:
        for c in r["cells"]:
            if c["line"] is not None and c["line"] < c["steps"] and c["wrong"] >= MIN_DRAWN:
                series.setdefault(f"{c['steps']} steps, wrong from line {c['line'] + 1}", []).append((r["round"], c["gap"]))
    return line_figure(series, f"wrong sneaky solutions by first wrong line ({MIN_DRAWN}+ a cell)",
                       "mean score − helpful correct mean", chance=0.0, chance_label="the exploit's score bar",
                       ylim=None, dpi=dpi)
