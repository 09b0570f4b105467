"""`pvg eval ...`: evaluations of a finished run, each writing RUN_DIR/eval/<name>.json and a figure.

Thin commands over `pvg.eval.*`; a second call with the same options on an unchanged run prints the
stored result instead of recomputing it (`--force` recomputes). Heavy imports stay inside the
commands, keeping `pvg --help` instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from pvg.cli.common import err, friendly, out
from pvg.errors import PvgError

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate a finished run: sneaky-only attacks, best-of-n, separability, departures, "
                                                  "weak judges, similarity, weak-to-strong, reliability by difficulty, human study kit (docs/eval.md).")

RUN_DIR_ARG = typer.Argument(..., metavar="RUN_DIR", help="A run folder written by `pvg train`: a path or a URI "
                             "(s3://..., gs://...; results are written back to it).")
FORCE = typer.Option(False, "--force", help="Recompute even when a stored result matches.")
JSON = typer.Option(False, "--json", help="Print the stored result as JSON.")
SEED = typer.Option(0, "--seed", min=0, help="Seed of the problem draw and the sampling.")
PROBLEMS = typer.Option(200, "--problems", min=1, help="Held-out test problems to sample.")


def run_eval(run_dir: str | Path, name: str, params: dict, units: Callable, compute: Callable, figure: Callable,
             force: bool) -> dict:
    """The shared routine: reuse a stored result, or compute with a progress bar and store it."""
    from pvg.eval.store import EvalRun, cached, result_path, save, shown
    from pvg.progress import progress_bar

    run = EvalRun.open(run_dir)
    if not force:
        hit = cached(run, name, params)
        if hit is not None:
            err.print(f"{name}: reusing {shown(run, result_path(run, name))} (same options, run unchanged; --force recomputes)",
                      highlight=False)
            return hit
    with progress_bar(f"eval {name}", units(run), run.cfg.logging.progress) as advance:
        result = compute(run, advance)
    stored = save(run, name, params, result, figure(result))
    err.print(f"wrote {shown(run, result_path(run, name))}" + (f" and {stored['figure']}" if "figure" in stored else ""),
              highlight=False)
    return stored


def _pct(v) -> str:
    return "–" if v is None else f"{v:.0%}"


def _num(v, digits=3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _table(title: str, headers: list[str]) -> Table:
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, header_style="bold")
    for h in headers:
        t.add_column(h, justify="right")
    return t


def _emit(result: dict, as_json: bool, table: Table) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        out.print(table)


@eval_app.command("best-of-n")
@friendly
def best_of_n_cmd(
    run_dir: str = RUN_DIR_ARG,
    n: Optional[List[int]] = typer.Option(None, "--n", help="Set size (even, >= 2; repeatable). Default: 2, 4, 8."),
    samples: Optional[int] = typer.Option(None, "--samples", min=2, help="Helpful solutions sampled per problem, "
                                          "from which each set is balanced (default: 4 x the largest n)."),
    problems: int = PROBLEMS,
    seed: int = SEED,
    force: bool = FORCE,
    as_json: bool = JSON,
) -> None:
    """Balanced best-of-n: per round, how often its verifier's top pick among n/2 correct and n/2 incorrect
    helpful solutions is correct (chance: 50%)."""
    from pvg.eval import best_of_n as bon

    ns = sorted(set(n or [2, 4, 8]))
    bad = [x for x in ns if x < 2 or x % 2]
    if bad:
        raise PvgError(f"--n {bad[0]}: a balanced set has n/2 correct and n/2 incorrect solutions; give an even n >= 2")
    m = samples or bon.default_samples(ns)
    if m < max(ns):
        raise PvgError(f"--samples {m}: fewer than the largest --n {max(ns)}; sample at least that many")
    res = run_eval(run_dir, "best_of_n", {"n": ns, "samples": m, "problems": problems, "seed": seed},
                   lambda run: len(run.rounds(what="best-of-n")),
                   lambda run, adv: bon.best_of_n(run, ns, problems, seed, adv, samples=m), bon.figure, force)
    t = _table(f"balanced best-of-n on {res['problems']} test problems, {res['samples']} samples each "
               "(accuracy of the verifier's pick · problems kept)",
               ["round", "helpful pass"] + [f"n={x}" for x in res["ns"]])
    for r in res["rounds"]:
        t.add_row(str(r["round"]), _pct(r["helpful_pass_rate"]),
                  *(f"{_pct(r['n'][str(x)]['accuracy'])} · {r['n'][str(x)]['problems_kept']}" for x in res["ns"]))
    _emit(res, as_json, t)


@eval_app.command("separability")
@friendly
def separability_cmd(run_dir: str = RUN_DIR_ARG, force: bool = FORCE, as_json: bool = JSON) -> None:
    """Per round, the ROC AUC of a small discriminator telling helpful from sneaky pool solutions
    (near 50%: the sneaky role has learned to look helpful)."""
    from pvg.eval import separability as sep

    res = run_eval(run_dir, "separability", {}, lambda run: 1 + len(run.rounds(needs=("prover",), what="separability")),
                   lambda run, adv: sep.separability(run, adv), sep.figure, force)
    t = _table("separability of helpful and sneaky solutions (held-out problems)",
               ["round", "AUC", "train", "test", "sneaky incorrect"])
    for r in res["rounds"]:
        t.add_row(str(r["round"]), _num(r["auc"]), str(r["train"]), str(r["test"]), _pct(r["sneaky_incorrect_rate"]))
    _emit(res, as_json, t)


@eval_app.command("departures")
@friendly
def departures_cmd(run_dir: str = RUN_DIR_ARG, force: bool = FORCE, as_json: bool = JSON) -> None:
    """Per round, where the sneaky pool solutions first part from the reference (by the reference's number
    of steps) and how the round's verifier scored the wrong ones against the helpful correct mean."""
    from pvg.eval import departures as dep

    res = run_eval(run_dir, "departures", {}, lambda run: len(run.rounds(needs=("prover",), what="departures")),
                   lambda run, adv: dep.departures(run, adv), dep.figure, force)
    t = _table("sneaky pool solutions by the first line that differs from the reference "
               "(gap: the wrong ones' mean score − the round's helpful correct mean)",
               ["round", "steps", "first differing line", "solutions", "wrong", "wrong ones' score", "gap",
                "AUROC vs helpful correct"])
    for r in res["rounds"]:
        for c in r["cells"]:
            line = ("none (the reference)" if c["line"] is None else
                    "#### answer" if c["line"] >= c["steps"] else str(c["line"] + 1))
            t.add_row(str(r["round"]), str(c["steps"]), line, str(c["solutions"]), _pct(c["wrong"] / c["solutions"]),
                      _num(c["wrong_score"], 2), "–" if c["gap"] is None else f"{c['gap']:+.2f}", _num(c["auroc"]))
        t.add_section()
    _emit(res, as_json, t)


@eval_app.command("reliability")
@friendly
def reliability_cmd(
    run_dir: str = RUN_DIR_ARG,
    problems: int = PROBLEMS,
    seed: int = SEED,
    force: bool = FORCE,
    as_json: bool = JSON,
) -> None:
    """Per round and difficulty bin, each role's share of correct, avoidant and incorrect answers; the
    helpful error rate in the easiest bin; accuracy spread over paraphrased prompts."""
    from pvg.eval import reliability as rel

    res = run_eval(run_dir, "reliability", {"problems": problems, "seed": seed},
                   lambda run: len(run.rounds(needs=("prover",), what="reliability")),
                   lambda run, adv: rel.reliability(run, problems, seed, adv), rel.figure, force)
    t = _table(f"reliability on {res['problems']} test problems",
               ["round", "helpful correct", "helpful avoidant", "sneaky incorrect", "easiest bin", "helpful error there",
                "prompt spread"])
    for r in res["rounds"]:
        e = r["easiest_bin"] or {}
        t.add_row(str(r["round"]), _pct(r["overall"]["helpful"]["correct"]), _pct(r["overall"]["helpful"]["avoidant"]),
                  _pct(r["overall"]["sneaky"]["incorrect"]), escape(e.get("bin", "–")), _pct(e.get("helpful_error_rate")),
                  _pct(r["prompt_spread"]))
    _emit(res, as_json, t)


@eval_app.command("judges")
@friendly
def judges_cmd(
    run_dir: str = RUN_DIR_ARG,
    problems: int = PROBLEMS,
    seed: int = SEED,
    force: bool = FORCE,
    as_json: bool = JSON,
) -> None:
    """Weak judges independent of the game (whole solutions; first half only, a stand-in for a time limit):
    their accuracy on each round's helpful and sneaky solutions, and their CAPA similarity to the verifier."""
    from pvg.eval import judges as jd

    res = run_eval(run_dir, "judges", {"problems": problems, "seed": seed},
                   lambda run: 1 + len(run.rounds(what="the judges")),
                   lambda run, adv: jd.judges(run, problems, seed, adv), jd.figure, force)
    t = _table(f"weak judges on {res['problems']} test problems (accuracy on helpful · on sneaky · sneaky incorrect "
               "accepted · κp to the verifier)", ["round", "verifier"] + [f"{n} judge" for n in res["judges"]])
    for r in res["rounds"]:
        v = r["verifier"]
        cells = [f"{_pct(v['helpful_accuracy'])} · {_pct(v['sneaky_accuracy'])} · {_pct(v['sneaky_accepted'])}"]
        for name in res["judges"]:
            j = r["judges"][name]
            cells.append(f"{_pct(j['helpful_accuracy'])} · {_pct(j['sneaky_accuracy'])} · {_pct(j['sneaky_accepted'])}"
                         f" · {_num(j['capa_vs_verifier'], 2)}")
        t.add_row(str(r["round"]), *cells)
    _emit(res, as_json, t)


@eval_app.command("matrix")
@friendly
def matrix_cmd(
    run_dir: str = RUN_DIR_ARG,
    problems: int = PROBLEMS,
    seed: int = SEED,
    force: bool = FORCE,
    as_json: bool = JSON,
) -> None:
    """Every round's verifier against every round's sneaky prover: the share of sneaky incorrect
    solutions each verifier accepts (at its own threshold), and its AUROC, on the same test problems."""
    from pvg.eval import matrix as mx

    res = run_eval(run_dir, "matrix", {"problems": problems, "seed": seed},
                   lambda run: len(run.rounds(what="the verifier x prover matrix")),
                   lambda run, adv: mx.matrix(run, problems, seed, adv), mx.figure, force)
    ks = res["rounds"]
    t = _table(f"sneaky fool rate · AUROC: verifier of round (row) on the provers of round (column), "
               f"{res['problems']} test problems", ["verifier"] + [f"prover {k}" for k in ks])
    for i in ks:
        t.add_row(i, *(f"{_pct(res['sneaky_fool_rate'][i][j])} · {_num(res['auroc'][i][j], 3)}" for j in ks))
    _emit(res, as_json, t)


@eval_app.command("similarity")
@friendly
def similarity_cmd(
    run_dir: str = RUN_DIR_ARG,
    problems: int = PROBLEMS,
    seed: int = SEED,
    force: bool = FORCE,
    as_json: bool = JSON,
) -> None:
    """CAPA κ between the rounds' provers (exact match of their greedy helpful answers on the same test
    problems). The verifier-vs-judge κp is part of `pvg eval judges`."""
    from pvg.eval import prover_similarity as ps

    res = run_eval(run_dir, "prover_similarity", {"problems": problems, "seed": seed},
                   lambda run: len(run.rounds(needs=("prover",), what="prover similarity")),
                   lambda run, adv: ps.prover_similarity(run, problems, seed, adv), ps.figure, force)
    ks = list(res["kappa"])
    t = _table(f"CAPA κ between rounds' provers ({res['problems']} test problems, greedy helpful answers)",
               ["round", "accuracy"] + ks)
    for a in ks:
        t.add_row(a, _pct(res["accuracy"][a]), *(_num(res["kappa"][a][b], 2) for b in ks))
    _emit(res, as_json, t)


def _round_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        rounds = [int(part) for part in text.split(",")]
    except ValueError:
        rounds = [-1]
    if any(k < 0 for k in rounds):
        raise PvgError(f"--rounds {text}: give round numbers, comma-separated (e.g. 0 or 0,3)")
    return rounds


@eval_app.command("attack")
@friendly
def attack_cmd(
    run_dir: str = RUN_DIR_ARG,
    reward: str = typer.Option("cgc", "--reward", help="The attacker's reward: src, cgc (sneaky role) or goodhart "
                                                     "(the score alone)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Step cap per round (default: the "
                                                                             "run's ppo.max_steps)."),
    lr: Optional[float] = typer.Option(None, "--lr", min=0, help="The attacker's learning rate (default: the run's "
                                                                 "ppo.lr). With no helpful role to keep it may be "
                                                                 "higher than the game's."),
    rounds: Optional[str] = typer.Option(None, "--rounds", help="Only these finished rounds, comma-separated "
                                         "(e.g. 0 or 0,3; default: every finished round)."),
    seed: int = SEED,
    force: bool = FORCE,
    as_json: bool = JSON,
) -> None:
    """Per round, train a fresh sneaky-only prover from the initial prover against that round's frozen verifier
    and count the PPO steps until it exploits it (rising over rounds: the verifiers got more robust)."""
    from pvg.eval import attack as atk
    from pvg.eval.store import EvalRun

    if reward not in ("src", "src_ordered", "cgc", "goodhart"):
        raise PvgError(f"--reward {reward}: choose src, src_ordered, cgc or goodhart")
    if lr is not None and not (0 < lr < float("inf")):
        raise PvgError(f"--lr {lr}: give a positive, finite learning rate")
    only = _round_list(rounds)
    ppo = EvalRun.open(run_dir).cfg.ppo
    steps = max_steps or ppo.max_steps
    params = {"reward": reward, "max_steps": steps, "seed": seed, "exploit_test": 5, "window": ppo.exploit_window,
              "confirm": ppo.exploit_confirm_problems,
              "lr": lr} | ({"rounds": only} if only is not None else {})  # unset: old stored results still match
    res = run_eval(run_dir, f"attack_{reward}", params, lambda run: steps * len(atk.attacked_rounds(run, only)),
                   lambda run, adv: atk.attack(run, reward, steps, seed, adv, lr, only), atk.figure, force)
    t = _table(f"{reward} attacker, at most {res['max_steps']} PPO steps per round, lr {res.get('lr', '?')} "
               f"({escape(res['exploit_rule'])})",
               ["round", "steps to exploit", "last accuracy", "last wrong ones' mean score", "target score"])
    for r in res["rounds"]:
        last = r["history"][-1] if r["history"] else {}
        t.add_row(str(r["round"]), str(r["steps_to_exploit"]) if r["exploited"] else f"> {res['max_steps']}",
                  _pct(last.get("accuracy")), _num(last.get("incorrect_mean_score"), 2), _num(r["target_score"], 2))
    _emit(res, as_json, t)


@eval_app.command("w2s")
@friendly
def w2s_cmd(
    run_dir: str = RUN_DIR_ARG,
    student: Optional[str] = typer.Option(None, "--student", help="The strong student's starting weights (hub id or "
                                          "path); default: the run's initial prover."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="The student's training steps, each of the two "
                                        "trainings (default: the run's verifier.train_steps)."),
    seed: int = SEED,
    force: bool = FORCE,
    as_json: bool = JSON,
) -> None:
    """Weak-to-strong: a larger student trained on each round verifier's judgments, against the same student
    trained on ground truth; PGR = (acc_w2s - acc_weak) / (acc_ceiling - acc_weak)."""
    from pvg.eval import w2s as w

    res = run_eval(run_dir, "w2s", {"student": student, "seed": seed, "steps": steps},
                   lambda run: len(run.rounds(needs=("verifier",), what="weak-to-strong")),
                   lambda run, adv: w.w2s(run, student, seed, adv, steps), w.figure, force)
    t = _table(f"weak-to-strong, student: {escape(res['student'])} (accuracy on held-out pool solutions)",
               ["round", "weak", "strong on weak", "ceiling", "untrained", "PGR", "κp weak/strong"])
    for r in res["rounds"]:
        t.add_row(str(r["round"]), _pct(r["acc_weak"]), _pct(r["acc_w2s"]), _pct(r["acc_ceiling"]),
                  _pct(r["acc_student_untrained"]), _num(r["pgr"], 2), _num(r["capa_weak_strong"], 2))
    _emit(res, as_json, t)


def register(app: typer.Typer) -> None:
    from pvg.cli import eval_human as cli_eval_human

    cli_eval_human.register(eval_app)
    app.add_typer(eval_app, name="eval")
