"""Benchmark: play a game from a cold cache and report the per-round table and wall times.

    python eval/bench_game.py configs/tiny.yaml            # cold: warm start included
    python eval/bench_game.py configs/tiny.yaml --warm     # reuse the warm-start cache
    python eval/bench_game.py configs/tiny.yaml --out runs/bench   # keep the run folder

Writes `eval/results/<run name>.md` (the table the README quotes) and prints it. Timing claims
live here, not in tests: they depend on the machine (record `nproc` with the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLUMNS = [
    ("round", "round", "{}"),
    ("helpful_pass_rate", "helpful pass", "{:.0%}"),
    ("sneaky_incorrect_rate", "sneaky incorrect", "{:.0%}"),
    ("verifier_auroc", "AUROC", "{:.3f}"),
    ("verifier_completeness", "completeness", "{:.0%}"),
    ("verifier_soundness", "soundness", "{:.0%}"),
    ("sneaky_fool_rate", "sneaky fool rate", "{:.0%}"),
    ("steps_to_exploit", "steps to exploit", "{}"),
    ("kl_to_init", "KL to init", "{:.2f}"),
    ("helpful_mean_tokens", "helpful tokens", "{:.0f}"),
    ("verifier_phase_s", "verifier s", "{:.0f}"),
    ("prover_phase_s", "prover s", "{:.0f}"),
]


def fmt(value, pattern: str) -> str:
    if value is None:
        return "—"
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return str(value)


def table(run: Path) -> str:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rounds = [r for r in rows if r["kind"] == "round"]
    head = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    sep = "|" + "---|" * len(COLUMNS)
    body = ["| " + " | ".join(fmt(r.get(k), p) for k, _, p in COLUMNS) + " |" for r in rounds]
    return "\n".join([head, sep, *body])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--warm", action="store_true", help="reuse the warm-start cache (default: a fresh cache)")
    ap.add_argument("--set", action="append", default=[], help="config override, as for pvg")
    ap.add_argument("--out", type=Path, help="keep the run folder (and the cold cache) under this new folder "
                    "(default: a temporary folder, deleted at the end)")
    args = ap.parse_args()

    if args.out is not None and args.out.exists() and any(args.out.iterdir()):
        sys.exit(f"--out {args.out} exists and is not empty")
    out = args.out or Path(tempfile.mkdtemp(prefix="pvg-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    sets = [f"run.out_dir={out}"] + ([] if args.warm else [f"run.cache_dir={out / 'cache'}"]) + args.set
    cmd = [sys.executable, "-m", "pvg.cli", "train", args.config] + [x for s in sets for x in ("--set", s)]
    t0 = time.time()
    proc = subprocess.run(cmd, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        sys.exit(f"pvg train failed with exit code {proc.returncode}")
    run = next(p for p in out.iterdir() if (p / "summary.json").is_file())
    summary = json.loads((run / "summary.json").read_text())
    ws = json.loads((run / "warmstart.json").read_text())
    report = [
        f"## {run.name}: `pvg train {args.config}` ({'warm' if args.warm else 'cold'} cache, {os.cpu_count()} CPUs)",
        "",
        f"- whole game: {wall / 60:.1f} min wall time; stop: {summary['stop_reason']}",
        f"- warm start: {ws.get('seconds', 0):.0f} s; helpful pass {ws.get('helpful_pass_rate', float('nan')):.0%}, "
        f"sneaky incorrect {ws.get('sneaky_incorrect_rate', float('nan')):.0%} (sampled as in the game), "
        f"greedy {ws.get('helpful_pass_rate_greedy', float('nan')):.0%} / {ws.get('sneaky_incorrect_rate_greedy', float('nan')):.0%}",
        "",
        table(run),
        "",
    ]
    text = "\n".join(report)
    print(text)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / f"{run.name}.md").write_text(text)
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    else:
        print(f"run folder kept: {run}")


if __name__ == "__main__":
    main()
