"""Run every `pvg eval` command on one finished run and write the results as Markdown.

    python bench/bench_game.py configs/tiny.yaml --out runs/bench     # the game (keeps its folder)
    python bench/evals_tiny.py runs/bench/tiny                          # then this

Writes `bench/results/<run name>-evals.md` (the tables docs/results.md quotes) and prints it. Each result
also stays in RUN_DIR/eval/ (JSON + figure), where `pvg report` shows it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = [
    ("attack", ["attack", "--reward", "src"]),
    ("best-of-n", ["best-of-n", "--n", "2", "--n", "4", "--n", "8"]),
    ("separability", ["separability"]),
    ("judges", ["judges"]),
    ("similarity", ["similarity"]),
    ("matrix", ["matrix"]),
    ("reliability", ["reliability"]),
    ("w2s", ["w2s"]),
]


def pct(v) -> str:
    return "—" if v is None else f"{v:.0%}"


def num(v, d=2) -> str:
    return "—" if v is None else f"{v:.{d}f}"


def table(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows])


def render(name: str, res: dict) -> str:
    if name == "attack":
        return table(["round", "steps to exploit", "last accuracy", "last mean score", "target score"], [
            [str(r["round"]), str(r["steps_to_exploit"]) if r["exploited"] else f"> {res['max_steps']}",
             pct(r["history"][-1]["accuracy"]), num(r["history"][-1]["mean_score"]), num(r["target_score"])]
            for r in res["rounds"]])
    if name == "best-of-n":
        return table(["round", "helpful pass"] + [f"n={n} (kept)" for n in res["ns"]], [
            [str(r["round"]), pct(r["helpful_pass_rate"])] +
            [f"{pct(r['n'][str(n)]['accuracy'])} ({r['n'][str(n)]['problems_kept']})" for n in res["ns"]]
            for r in res["rounds"]])
    if name == "separability":
        return table(["round", "AUC", "sneaky incorrect"], [[str(r["round"]), num(r["auc"], 3), pct(r["sneaky_incorrect_rate"])]
                                                           for r in res["rounds"]])
    if name == "judges":
        head = ["round", "verifier: helpful / sneaky acc, sneaky accepted"] + [
            f"{j} judge: helpful / sneaky acc, sneaky accepted, κp" for j in res["judges"]]
        rows = []
        for r in res["rounds"]:
            v = r["verifier"]
            cells = [f"{pct(v['helpful_accuracy'])} / {pct(v['sneaky_accuracy'])}, {pct(v['sneaky_accepted'])}"]
            for j in res["judges"]:
                x = r["judges"][j]
                cells.append(f"{pct(x['helpful_accuracy'])} / {pct(x['sneaky_accuracy'])}, {pct(x['sneaky_accepted'])}, "
                             f"{num(x['capa_vs_verifier'])}")
            rows.append([str(r["round"])] + cells)
        return table(head, rows)
    if name == "similarity":
        ks = list(res["kappa"])
        return table(["round", "accuracy"] + [f"κ vs {k}" for k in ks],
                     [[a, pct(res["accuracy"][a])] + [num(res["kappa"][a][b]) for b in ks] for a in ks])
    if name == "matrix":
        ks = res["rounds"]
        return table(["verifier \\ sneaky prover"] + [f"round {j}: fool rate · AUROC" for j in ks],
                     [[f"round {i}"] + [f"{pct(res['sneaky_fool_rate'][i][j])} · {num(res['auroc'][i][j], 3)}" for j in ks]
                      for i in ks])
    if name == "reliability":
        return table(["round", "helpful correct / avoidant / incorrect", "sneaky incorrect", "easiest bin: helpful error",
                      "prompt accuracies", "spread"], [
            [str(r["round"]), " / ".join(pct(r["overall"]["helpful"][o]) for o in ("correct", "avoidant", "incorrect")),
             pct(r["overall"]["sneaky"]["incorrect"]),
             f"{r['easiest_bin']['bin']}: {pct(r['easiest_bin']['helpful_error_rate'])}" if r["easiest_bin"] else "—",
             ", ".join(pct(a) for a in r["prompt_accuracies"]), pct(r["prompt_spread"])] for r in res["rounds"]])
    if name == "w2s":
        return table(["round", "weak", "strong on weak labels", "ceiling", "untrained", "PGR", "κp weak/strong"], [
            [str(r["round"]), pct(r["acc_weak"]), pct(r["acc_w2s"]), pct(r["acc_ceiling"]), pct(r["acc_student_untrained"]),
             num(r["pgr"]), num(r["capa_weak_strong"])] for r in res["rounds"]])
    raise ValueError(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    args = ap.parse_args()
    parts = [f"## `pvg eval` on {args.run_dir.name} ({args.run_dir})", ""]
    for name, cmd in COMMANDS:
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "pvg.cli", "eval", *cmd, str(args.run_dir), "--json"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"pvg eval {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        res = json.loads(proc.stdout)
        took = "a stored result, reused" if "reusing" in proc.stderr else f"{time.time() - t0:.0f} s"
        parts += [f"### `pvg eval {' '.join(cmd)} RUN_DIR` ({took})", "", render(name, res), ""]
    text = "\n".join(parts)
    print(text)
    out = Path(__file__).parent / "results" / f"{args.run_dir.name}-evals.md"
    out.write_text(text)


if __name__ == "__main__":
    main()
