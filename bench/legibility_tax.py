"""The legibility tax (Kirchner et al. 2024, Sec. 4.3.3, Figs. 4 and 8): the game against the
correctness-only baseline, from the same warm start.

    python bench/legibility_tax.py configs/tiny.yaml --out runs/tax            # seed 0
    python bench/legibility_tax.py configs/tiny.yaml --out runs/tax --seeds 0 1 2

For each seed it plays two games that share one warm-start cache: the config as it is, and the
same with `ppo.reward=correctness` (the helpful role trained on the answer's correctness alone,
no verifier) and `game.prover_start=last_round`: the paper trains that baseline as one run, and
restarted from the warm start every round it would be four copies of one short run. Then `pvg eval judges` trains weak judges apart from each game and scores every
round's helpful solutions. The figure puts each round at (helpful pass rate, the weak judge's
AUROC on the helpful solutions, correct against incorrect): the paper's tax is the baseline
reaching higher accuracy with solutions a weak judge checks worse. AUROC, not the judge's
accuracy: its threshold (the median correct score) accepts about half of the correct solutions
whatever they are, so on a ~99%-correct role its accuracy restates the threshold. Writes
`bench/results/legibility_tax.md` and `.png`.

The default warm start's helpful role is already ~97% correct, which leaves no room for either
game to raise it; a weaker prover warm start gives it some (docs/results.md#the-legibility-tax-from-a-weaker-warm-start-seeds-0-and-1):

    python bench/legibility_tax.py configs/tiny.yaml --out /tmp/tax --seeds 0 1 --problems 1000 --set warmstart.prover_steps=400
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def pvg(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "pvg.cli", *args], text=True, stdout=subprocess.PIPE)
    if proc.returncode != 0:
        sys.exit(f"pvg {' '.join(args[:2])} failed with exit code {proc.returncode}")
    return proc


def play(config: str, run_dir: Path, sets: list[str]) -> Path:
    if not (run_dir / "summary.json").is_file():
        pvg("train", config, "--run-dir", str(run_dir), *(x for s in sets for x in ("--set", s)))
    return run_dir


def points(run_dir: Path, problems: int) -> list[dict]:
    """Per round: helpful pass rate (the game's own metric) and the full-solution judge's accuracy on
    the helpful solutions."""
    judged = json.loads(pvg("eval", "judges", str(run_dir), "--problems", str(problems), "--json").stdout)
    rounds = {r["round"]: r for r in (json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()
                                       if x.strip()) if r.get("kind") == "round"}
    return [{"round": r["round"], "helpful_pass_rate": rounds[r["round"]]["helpful_pass_rate"],
             "judge_helpful_auroc": r["judges"]["full"].get("helpful_auroc"),
             "judge_helpful_accuracy": r["judges"]["full"]["helpful_accuracy"]} for r in judged["rounds"]]


def figure(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    colors, styles, seeds = {"game": "C0", "correctness-only": "C1"}, ["-", "--", ":", "-."], []
    for name, pts in curves.items():
        game, seed = name.split(", seed ")  # one colour a game, one line style a seed
        seeds += [seed] if seed not in seeds else []
        pts = [p for p in pts if p["judge_helpful_auroc"] is not None]
        xs, ys = [p["helpful_pass_rate"] for p in pts], [p["judge_helpful_auroc"] for p in pts]
        ax.plot(xs, ys, marker="o", label=name, color=colors[game], linestyle=styles[seeds.index(seed) % len(styles)])
        for p, x, y in zip(pts, xs, ys):
            ax.annotate(str(p["round"]), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("helpful pass rate (round)")
    ax.set_ylabel("weak judge's AUROC on helpful solutions")
    ax.set_title("legibility tax: the game vs correctness-only")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(x, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--out", type=Path, required=True, help="run folders (and the shared warm-start cache) go here; "
                    "finished games in it are reused")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--set", action="append", default=[], help="config override for both games, as for pvg")
    ap.add_argument("--problems", type=int, default=200, help="test problems for the judges")
    args = ap.parse_args()

    curves, lines = {}, ["| seed | game | round | helpful pass | weak judge's AUROC on helpful | its accuracy on helpful |",
                         "|---|---|---|---|---|---|"]
    for seed in args.seeds:
        base = args.set + [f"run.seed={seed}", f"run.cache_dir={args.out / 'cache'}"]
        for name, extra in (("game", []), ("correctness-only", ["ppo.reward=correctness", "game.prover_start=last_round"])):
            run = play(args.config, args.out / f"seed-{seed}" / name, base + extra)
            pts = points(run, args.problems)
            curves[f"{name}, seed {seed}"] = pts
            lines += [f"| {seed} | {name} | {p['round']} | {p['helpful_pass_rate']:.0%} | "
                      f"{_fmt(p['judge_helpful_auroc'], '.3f')} | {_fmt(p['judge_helpful_accuracy'], '.0%')} |" for p in pts]
    RESULTS.mkdir(exist_ok=True)
    figure(curves, RESULTS / "legibility_tax.png")
    cmd = " ".join(["python bench/legibility_tax.py", args.config, "--seeds", *map(str, args.seeds),
                    *(f"--set {s}" for s in args.set)])
    text = "\n".join([f"# Legibility tax: `{cmd}`", "", *lines, "", "![legibility tax](legibility_tax.png)", ""])
    (RESULTS / "legibility_tax.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
