"""`pvg eval human-export` and `pvg eval human-import`: the human study kit (docs/eval-human.md).

The logic lives in `pvg.eval.human`; these commands only parse options and print.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from pvg.cli.common import ForceOption, err, friendly, out, refuse_overwrite

RUN_DIR_ARG = typer.Argument(..., metavar="RUN_DIR", help="A run folder written by `pvg train`: a path or a URI "
                             "(s3://..., gs://...; the answer key and results are written back to it).")


def human_export(
    run_dir: str = RUN_DIR_ARG,
    output: Path = typer.Option(..., "-o", "--output", help="The form to write: one self-contained HTML page."),
    per_round: int = typer.Option(10, "--per-round", help="Solutions per round (at least 2), balanced over roles "
                                                           "and correctness."),
    seconds: int = typer.Option(45, "--seconds", help="Time limit per solution, in seconds."),
    seed: int = typer.Option(0, "--seed", help="Picks and orders the solutions; the same seed gives the same form."),
    rounds: Optional[str] = typer.Option(None, "--rounds", help="Rounds to draw from, e.g. 0,2 (default: every "
                                                                "finished round)."),
    force: bool = ForceOption,
) -> None:
    """Write a blind, timed form of the run's solutions for human raters; the answer key stays in the run."""
    from pvg.eval.human import export_kit, parse_rounds

    refuse_overwrite(output, force)
    done = export_kit(run_dir, output, per_round=per_round, seconds=seconds, seed=seed, rounds=parse_rounds(rounds))
    kit = done.kit
    rounds_text = ", ".join(map(str, kit.rounds))
    out.print(f"wrote the form {escape(str(done.form))} (kit {kit.kit_id}: {len(kit.items)} solutions, "
              f"{kit.per_round} from each of round{'s' * (len(kit.rounds) > 1)} {rounds_text}, "
              f"{kit.seconds} s each, {done.size // 1024} KiB)", highlight=False)
    out.print(f"wrote the answer key {escape(str(done.key))} (keep it from the raters)", highlight=False)
    out.print(f"send the form to raters, then: pvg eval human-import {escape(str(run_dir))} answers-*.json",
              highlight=False, style="dim")


def _pct(x) -> str:
    return "–" if x is None else f"{x:.0%}"


def _secs(x) -> str:
    return "–" if x is None else f"{x:.1f}"


def human_import(
    run_dir: str = RUN_DIR_ARG,
    files: List[Path] = typer.Argument(..., metavar="ANSWERS.json...", help="Answer files saved by the form."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Score raters' answer files against their kit's key: accuracy, time and fool rate per round and role."""
    from pvg.eval.human import import_answers

    result, saved = import_answers(run_dir, files)
    if as_json:
        sys.stdout.write(json.dumps({**result.to_json(), "saved": str(saved)}, indent=2, allow_nan=False) + "\n")
        return
    n_raters = len(result.raters)
    kits = f"kit{'s' * (len(result.kits) > 1)} {', '.join(result.kits)}"
    table = Table(title=f"human study · {n_raters} answer file{'s' * (n_raters != 1)} · {kits}", box=box.SIMPLE_HEAD)
    for name in ("round", "role", "items", "correct", "answered", "accuracy", "mean s", "fool rate"):
        table.add_column(name, justify="left" if name == "role" else "right")
    last = None
    for r in result.rows:
        if last is not None and r["round"] != last:
            table.add_section()
        last = r["round"]
        fool = _pct(r["fool_rate"]) if r["role"] != "helpful" else ""
        if fool != "" and r["fool_rate"] is not None:
            fool += f" ({r['sneaky_incorrect']})"
        style = "bold" if r["role"] == "all" else None
        table.add_row(str(r["round"]), r["role"], str(r["items"]), _pct(r["correct_share"]), str(r["answered"]),
                      _pct(r["accuracy"]), _secs(r["mean_seconds"]), fool, style=style)
    out.print(table)
    raters = Table(title="raters", box=box.SIMPLE_HEAD)
    for name in ("file", "rater", "kit", "answered", "accuracy", "mean s", "fool rate"):
        raters.add_column(name, justify="left" if name in ("file", "rater", "kit") else "right")
    for r in result.raters:
        raters.add_row(escape(r["file"]), escape(r["rater"]), r["kit_id"], f"{r['answered']}/{r['items']}",
                       _pct(r["accuracy"]), _secs(r["mean_seconds"]), _pct(r["fool_rate"]))
    out.print(raters)
    out.print("accuracy: answers that match the solution's correctness, of those answered in time · fool rate: sneaky "
              "incorrect solutions judged correct (of how many answered) · items: solutions x raters · correct: "
              "share of those solutions that are correct", style="dim",
              highlight=False)
    err.print(f"saved {escape(str(saved))}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `human-export` and `human-import` to the `pvg eval` app."""
    app.command("human-export")(friendly(human_export))
    app.command("human-import")(friendly(human_import))
