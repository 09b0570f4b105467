"""How the sneaky prover is wrong, round by round, and how convincing each kind of error is.

For every incorrect solution in a run's pool, compare its calculations with the problem's
reference solution (`pvg.data.solution_check.departure_kind`: dropped step, wrong operation, a wrong
operand, ...) and report per round and role the count of each kind and its mean verifier score
next to that of the helpful role's correct solutions, and how well the round's verifier tells that
kind from every correct solution (AUROC: 0.5 is a blind spot, 1 a solved kind). A healthy game shows the sneaky role moving
to the kinds the verifier scores highest (its blind spots) and the next round's verifier scoring
those lower. Synthetic data only (the reference solution must be known).

    python bench/sneaky_tricks.py runs/tiny
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pvg.config import load_config  # noqa: E402
from pvg.data.dataset import load_split  # noqa: E402
from pvg.game.metrics import auroc  # noqa: E402
from pvg.data.solution_check import departure_kind  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    args = ap.parse_args()
    cfg = load_config(args.run / "config.yaml", [])
    problems = {p.id: p for side in load_split(cfg.data, cfg.run.seed).values() for p in side}
    files = sorted((args.run / "pool").glob("round-*.parquet"), key=lambda f: int(f.stem.split("-")[1]))
    print("| round | role | kind | count | mean score | helpful correct mean score | AUROC against correct |")
    print("|---|---|---|---|---|---|---|")
    for f in files:
        rows = pq.read_table(f).to_pylist()
        good = [r["verifier_score"] for r in rows if r["correct"] and r["role"] == "helpful"]
        ref_score = statistics.mean(good) if good else float("nan")
        correct = [r["verifier_score"] for r in rows if r["correct"]]
        kinds: dict[tuple[str, str], list[float]] = defaultdict(list)
        for r in rows:
            if not r["correct"] and r["problem_id"] in problems:
                kinds[(r["role"], departure_kind(r["text"], problems[r["problem_id"]].compact_reference))].append(
                    r["verifier_score"])
        for (role, kind), scores in sorted(kinds.items(), key=lambda kv: (kv[0][0], -len(kv[1]))):
            separated = auroc(correct + scores, [True] * len(correct) + [False] * len(scores))
            print(f"| {f.stem.split('-')[1]} | {role} | {kind} | {len(scores)} | {statistics.mean(scores):.2f} | "
                  f"{ref_score:.2f} | {separated:.2f} |")


if __name__ == "__main__":
    main()
