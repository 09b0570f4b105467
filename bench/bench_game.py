"""Benchmark: play a game from a cold cache and report the per-round table and wall times.

    python bench/bench_game.py configs/tiny.yaml            # cold: warm start included
    python bench/bench_game.py configs/tiny.yaml --warm     # reuse the warm-start cache
    python bench/bench_game.py configs/tiny.yaml --out runs/bench   # keep the run folder
    python bench/bench_game.py configs/tiny.yaml --seeds 0 1 2 --out runs/seeds   # one cold game a seed
    python bench/bench_game.py configs/tiny.yaml --seeds 0 1 2 --attack src_ordered --attack-lr 1e-3 --attack-steps 150
    python bench/bench_game.py --tabulate 0=runs/a/tiny 1=runs/b/tiny 2=runs/c/tiny   # games already played
    python bench/bench_game.py --tabulate 0=runs/a/tiny --attack cgc   # with their stored `pvg eval attack --reward cgc`

Writes `bench/results/<run name>.md` (the table docs/results.md quotes) and prints it; with `--seeds`,
one section a seed (its own warm start and game, run one after another so that each is timed
alone) and a last table of each seed's first and last round, written to
`bench/results/<run name>-seeds.md`. `--tabulate SEED=RUN ...` makes that last table from run
folders (seeds played apart, resumed, or stopped by hand after some rounds), with no minutes: a resumed game has no one wall
time. One seed's game says little: a dynamic worth reporting shows in every seed. Timing claims
live here, not in tests: they depend on the machine (record `nproc` with the numbers).

With `--attack`, each game is followed by `pvg eval attack` (the paper's Fig. 6a: a fresh sneaky-only
prover per round's frozen verifier, counting PPO updates until it exploits it), and the tables gain
its steps to exploit by round; its minutes are reported apart from the game's.
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

import yaml

COLUMNS = [
    ("round", "round", "{}"),
    ("helpful_pass_rate", "helpful pass", "{:.0%}"),
    ("sneaky_incorrect_rate", "sneaky incorrect", "{:.0%}"),
    ("phase_end_sneaky_incorrect", "sneaky incorrect, last 10 PPO batches", "{:.0%}"),
    ("verifier_auroc", "AUROC", "{:.3f}"),
    ("verifier_completeness", "completeness", "{:.0%}"),
    ("verifier_soundness", "soundness", "{:.0%}"),
    ("sneaky_fool_rate", "sneaky fool rate", "{:.0%}"),
    ("steps_to_exploit", "steps to exploit", "{}"),
    ("closest_gap", "closest window: wrong sneaky − helpful correct score", "{:+.2f}"),
    ("sneaky_score_gap", "the same over every eval solution", "{:+.2f}"),
    ("ppo_steps", "PPO steps", "{}"),
    ("kl_to_init", "KL to init", "{:.2f}"),
    ("helpful_mean_tokens", "helpful tokens", "{:.0f}"),
    ("verifier_phase_s", "verifier s", "{:.0f}"),
    ("prover_phase_s", "prover s", "{:.0f}"),
]


# The phase's end read over its last ten PPO batches: one batch holds 64 sneaky solutions in the tiny
# game, so its rate moves by about 4 points from batch to batch at 90%; ten hold 640.
PHASE_END_BATCHES = 10


def fmt(value, pattern: str) -> str:
    if value is None:
        return "—"
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return str(value)


def round_rows(run: Path) -> list[dict]:
    """The round rows, each with `phase_end_sneaky_incorrect`: the sneaky role's incorrect rate over the
    prover phase's last PPO batches (the issue's "stays sneaky" measure, before the pool is sampled), and
    how near the phase came to an exploit (`closest_gap`)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    from pvg.config import PPOConfig

    # the run's own keys, PPOConfig's defaults for keys older run folders lack (not load_config:
    # it refuses a folder written under an older schema, which --tabulate still reads)
    ppo = PPOConfig().model_dump() | yaml.safe_load((run / "config.yaml").read_text()).get("ppo", {})
    bar, size = ppo["exploit_incorrect_rate"], ppo["exploit_window"]
    by_round: dict[int, list[dict]] = {}
    for r in rows:
        if r["kind"] == "ppo":
            by_round.setdefault(r["round"], []).append(r)
    return [r | {"phase_end_sneaky_incorrect": phase_end_rate(by_round.get(r["round"], [])),
                 "closest_gap": closest_gap(by_round.get(r["round"], []), bar, size)}
            for r in rows if r["kind"] == "round"]


def phase_end_rate(batches: list[dict]) -> float | None:
    """The sneaky incorrect rate over the phase's last `PHASE_END_BATCHES` batches (equal-sized, so the
    mean of their rates); None when none has a sneaky role (the correctness-only baseline)."""
    rates = [b["sneaky_incorrect_rate"] for b in batches[-PHASE_END_BATCHES:] if b.get("sneaky_incorrect_rate") is not None]
    return sum(rates) / len(rates) if rates else None


def closest_gap(batches: list[dict], bar: float, size: int) -> float | None:
    """The best pooled window's wrong-sneaky mean score minus its helpful-correct mean, among the full
    windows that met the wrong-rate half of the exploit rule: >= 0 is an exploit, a small negative
    value a near miss (None: no window was wrong enough). A count of updates alone hides how close
    a phase came."""
    gaps = [b["window_sneaky_incorrect_mean_score"] - b["window_helpful_correct_mean_score"]
            for b in batches[size - 1:]
            if (b.get("window_sneaky_incorrect_rate") or 0) >= bar
            and b.get("window_sneaky_incorrect_mean_score") is not None
            and b.get("window_helpful_correct_mean_score") is not None]
    return max(gaps) if gaps else None


def table(run: Path) -> str:
    rounds = round_rows(run)
    head = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    sep = "|" + "---|" * len(COLUMNS)
    body = ["| " + " | ".join(fmt(r.get(k), p) for k, _, p in COLUMNS) + " |" for r in rounds]
    return "\n".join([head, sep, *body])


def play(config: str, out: Path, sets: list[str], warm: bool) -> tuple[Path, float]:
    """One `pvg train` in a subprocess: its run folder and wall time."""
    out.mkdir(parents=True, exist_ok=True)
    sets = [f"run.out_dir={out}"] + ([] if warm else [f"run.cache_dir={out / 'cache'}"]) + sets
    cmd = [sys.executable, "-m", "pvg.cli", "train", config] + [x for s in sets for x in ("--set", s)]
    t0 = time.time()
    proc = subprocess.run(cmd, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        sys.exit(f"pvg train failed with exit code {proc.returncode}")
    return next(p for p in out.iterdir() if (p / "summary.json").is_file()), wall


def attack(run: Path, reward: str, lr: float | None, steps: int) -> tuple[dict, float]:
    """`pvg eval attack` on a finished run: its JSON result and wall time."""
    cmd = [sys.executable, "-m", "pvg.cli", "eval", "attack", str(run), "--reward", reward,
           "--max-steps", str(steps), "--json"] + ([] if lr is None else ["--lr", str(lr)])
    t0 = time.time()
    proc = subprocess.run(cmd, text=True, capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"pvg eval attack failed with exit code {proc.returncode}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout), time.time() - t0


def attack_steps(res: dict | None) -> str:
    if not res:
        return "—"
    return " / ".join(str(r["steps_to_exploit"]) if r["exploited"] else f"> {res['max_steps']}" for r in res["rounds"])


def report(run: Path, title: str, wall: float, atk: tuple[dict, float] | None = None) -> str:
    summary = json.loads((run / "summary.json").read_text())
    ws = json.loads((run / "warmstart.json").read_text())
    extra = [] if atk is None else [
        f"- sneaky-only attack (`pvg eval attack --reward {atk[0]['reward']} --lr {atk[0].get('lr')} --max-steps "
        f"{atk[0]['max_steps']}`, {atk[1] / 60:.1f} min): steps to exploit by round {attack_steps(atk[0])}"]
    return "\n".join([
        title,
        "",
        f"- whole game: {wall / 60:.1f} min wall time; stop: {summary['stop_reason']}",
        f"- warm start: {ws.get('seconds', 0):.0f} s; helpful pass {ws.get('helpful_pass_rate', float('nan')):.0%}, "
        f"sneaky incorrect {ws.get('sneaky_incorrect_rate', float('nan')):.0%} (sampled as in the game), "
        f"greedy {ws.get('helpful_pass_rate_greedy', float('nan')):.0%} / {ws.get('sneaky_incorrect_rate_greedy', float('nan')):.0%}",
        *extra,
        "",
        table(run),
        "",
    ])


def across_seeds(runs: dict[int, tuple[Path, float | None]],
                 attacks: dict[int, tuple[dict, float]] | None = None) -> str:
    """Each seed's round 0 against its last round: does the dynamic show in every seed?"""
    attacks = attacks or {}
    head = ("| seed | minutes | stop | rounds | AUROC first → last | fool rate first → last | "
            "helpful pass first → last | steps to exploit, by round | closest window's score gap, by round | "
            "eval's score gap, by round | sneaky incorrect at each phase's end |"
            + (" attacker's steps to exploit, by round |" if attacks else ""))
    lines = [head, "|" + "---|" * (12 if attacks else 11)]
    for seed, (run, wall) in runs.items():
        minutes = "—" if wall is None else f"{wall / 60:.1f}"
        rounds = round_rows(run)
        first, last = rounds[0], rounds[-1]
        if (run / "summary.json").is_file():
            summary = json.loads((run / "summary.json").read_text())
            stop = "round limit" if summary["stop_reason"].startswith("reached") else "stop rule"
        else:  # stopped by hand: `pvg train --resume` plays on
            stop = "stopped, resumable"
        lines.append(
            f"| {seed} | {minutes} | {stop} | {len(rounds)} | {first['verifier_auroc']:.3f} → "
            f"{last['verifier_auroc']:.3f} | {first['sneaky_fool_rate']:.0%} → {last['sneaky_fool_rate']:.0%} | "
            f"{first['helpful_pass_rate']:.0%} → {last['helpful_pass_rate']:.0%} | "
            f"{' / '.join(fmt(r['steps_to_exploit'], '{}') for r in rounds)} | "
            f"{' / '.join(fmt(r['closest_gap'], '{:+.2f}') for r in rounds)} | "
            f"{' / '.join(fmt(r.get('sneaky_score_gap'), '{:+.2f}') for r in rounds)} | "
            f"{' / '.join(fmt(r['phase_end_sneaky_incorrect'], '{:.0%}') for r in rounds)} |"
            + (f" {attack_steps(attacks.get(seed, (None,))[0])} |" if attacks else ""))
    return "\n".join(lines) + "\n"


def stored_attack(run: Path, reward: str) -> tuple[dict, float] | None:
    """The `pvg eval attack --reward REWARD` result stored in the run folder, or None (no minutes: its
    run may have shared the cores)."""
    path = run / "eval" / f"attack_{reward}.json"
    return (json.loads(path.read_text()), float("nan")) if path.is_file() else None


def tabulate(items: list[str], label: str | None = None, attack_reward: str | None = None) -> None:
    runs: dict[int, tuple[Path, float | None]] = {}
    for item in items:
        seed, sep, path = item.partition("=")
        run = Path(path)
        if not sep or not seed.isdigit() or not (run / "metrics.jsonl").is_file() or not round_rows(run):
            sys.exit(f"--tabulate {item}: expected SEED=RUN, RUN a run folder with at least one finished round")
        runs[int(seed)] = (run, None)
    names = {yaml.safe_load((r / "config.yaml").read_text())["run"]["name"] for r, _ in runs.values()}
    attacks = None
    if attack_reward:
        found = {seed: stored_attack(run, attack_reward) for seed, (run, _) in runs.items()}
        attacks = {seed: atk for seed, atk in found.items() if atk is not None}
        if not attacks:
            sys.exit(f"--attack {attack_reward}: no run folder has eval/attack_{attack_reward}.json; run "
                     f"`pvg eval attack RUN --reward {attack_reward}` first")
        for seed in sorted(set(found) - set(attacks)):
            print(f"seed {seed}: no eval/attack_{attack_reward}.json, its attacker column reads —", file=sys.stderr)
    summary = across_seeds(runs, attacks)
    print(summary)
    sources = "\n".join(f"- seed {seed}: `{run}`" for seed, (run, _) in runs.items())
    out = Path(__file__).parent / "results" / f"{label or sorted(names)[0]}-seeds.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(f"## {', '.join(sorted(names))}: every seed, first and last round (tabulated)\n\n{sources}\n\n"
                   + summary)
    print(f"written to {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", nargs="?", help="the config to play (not with --tabulate)")
    ap.add_argument("--warm", action="store_true", help="reuse the warm-start cache (default: a fresh cache)")
    ap.add_argument("--set", action="append", default=[], help="config override, as for pvg")
    ap.add_argument("--seeds", type=int, nargs="+", help="play one game a seed (run.seed), one after another")
    ap.add_argument("--out", type=Path, help="keep the run folders (and the cold caches) under this new folder "
                    "(default: a temporary folder, deleted at the end)")
    ap.add_argument("--jobs", type=int, default=1, help="seeds played at once (default 1: one after another, each "
                    "timed alone; more shares the cores, so the minutes then say nothing about one game, and each "
                    "game's actors get one torch thread unless --set says otherwise)")
    ap.add_argument("--attack", help="after each game, run `pvg eval attack --reward ATTACK` on it (e.g. src_ordered)")
    ap.add_argument("--attack-lr", type=float, help="the attacker's learning rate (default: the run's ppo.lr)")
    ap.add_argument("--attack-steps", type=int, default=150, help="the attacker's step cap per round (default 150)")
    ap.add_argument("--tabulate", nargs="+", metavar="SEED=RUN", help="print the every-seed table of run folders "
                    "with at least one finished round instead of playing (written to bench/results/<run name>-seeds.md)")
    ap.add_argument("--label", help="with --tabulate: name the table's file bench/results/<label>-seeds.md instead "
                    "(games of one config name played under different code)")
    args = ap.parse_args()
    if args.tabulate:
        tabulate(args.tabulate, args.label, args.attack)
        return
    if args.config is None:
        ap.error("a config to play, or --tabulate")

    if args.out is not None and args.out.exists() and any(args.out.iterdir()):
        sys.exit(f"--out {args.out} exists and is not empty")
    out = args.out or Path(tempfile.mkdtemp(prefix="pvg-bench-"))
    cache = "warm" if args.warm else "cold"
    runs: dict[int, tuple[Path, float]] = {}
    attacks: dict[int, tuple[dict, float]] = {}
    sections = []
    seeds = args.seeds or [None]
    played = {}
    if args.jobs > 1 and len(seeds) > 1:
        from concurrent.futures import ThreadPoolExecutor

        # four games at 2 threads each on 2 cores spent ~5x the CPU time in the verifier phase
        # (20% system time, threads waiting on each other): docs/results.md#one-thread-a-game-when-games-share-cores
        for role in ("prover", "verifier"):
            key = f"resources.{role}.torch_threads="
            if not any(s.startswith(key) for s in args.set):
                args.set.append(key + "1")
                print(f"--jobs {args.jobs}: --set {key}1 (games sharing the cores)", flush=True)

        with ThreadPoolExecutor(args.jobs) as pool:
            futures = {seed: pool.submit(play, args.config, out / f"seed-{seed}", args.set + [f"run.seed={seed}"],
                                         args.warm) for seed in seeds}
            played = {seed: f.result() for seed, f in futures.items()}
        cache += f", {args.jobs} games at once"
    for seed in seeds:
        where = out if seed is None else out / f"seed-{seed}"
        run, wall = played.get(seed) or play(args.config, where, args.set + ([] if seed is None else [f"run.seed={seed}"]),
                                            args.warm)
        label = "" if seed is None else f", run.seed={seed}"
        atk = attack(run, args.attack, args.attack_lr, args.attack_steps) if args.attack else None
        if atk is not None and seed is not None:
            attacks[seed] = atk
        sections.append(report(run, f"## {run.name}: `pvg train {args.config}` ({cache} cache, {os.cpu_count()} CPUs{label})",
                               wall, atk))
        print(sections[-1], flush=True)
        if seed is not None:
            runs[seed] = (run, wall)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    if args.seeds:
        summary = across_seeds(runs, attacks)
        print(summary)
        (results / f"{run.name}-seeds.md").write_text(
            "\n".join(sections + [f"## {run.name}: every seed, first and last round\n", summary]))
    else:
        (results / f"{run.name}.md").write_text(sections[0])
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    else:
        print(f"run folders kept under {out}")


if __name__ == "__main__":
    main()
