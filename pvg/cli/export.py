"""`pvg export-verifier`, `export-prover`, `score`, `eval-verifier`: take a trained model out of a run.

The commands are thin: the work and its checks live in `pvg.export.hf` and `pvg.export.scoring`, so tests and
notebooks get the same behaviour without a subprocess. Heavy imports (torch, transformers) happen
inside the commands, keeping `pvg --help` instant.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from pvg.cli.common import ForceOption, err, friendly, out, refuse_overwrite
from pvg.export.hf import BEST_RULE
from pvg.errors import PvgError

DEVICE_HELP = "Where to run the verifier: auto (a GPU when there is one), cpu, cuda, cuda:N."


def export_verifier(
    run_dir: str = typer.Argument(..., help="A run folder written by `pvg train`: a path or a URI (s3://..., gs://...)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write (built aside, then renamed into place)."),
    round_: Optional[int] = typer.Option(None, "--round", min=0,
                                         help="Round to export (default: the last round whose verifier and eval finished)."),
    best: bool = typer.Option(False, "--best", help=f"Export the best round: {BEST_RULE}."),
    force: bool = typer.Option(False, "--force", help="Replace OUTPUT if it exists and is not empty."),
) -> None:
    """Export one round's verifier as a Hugging Face folder (safetensors, tokenizer, model card, pvg_verifier.json)."""
    from pvg.export.hf import export_verifier as run_export

    meta = run_export(run_dir, output, round_=round_, best=best, force=force)
    m = meta["metrics"] or {}
    auroc = m.get("verifier_auroc")
    measured = (f"AUROC {auroc:.3f}, threshold {meta['threshold']:.4g}" if isinstance(auroc, float)
                and meta["threshold"] is not None else "no eval measured")
    out.print(f"exported the round {meta['round']} verifier ({meta['selection']['mode']}; {measured}) to {output}",
              highlight=False)


def export_prover(
    run_dir: str = typer.Argument(..., help="A run folder written by `pvg train`: a path or a URI (s3://..., gs://...)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write (built aside, then renamed into place)."),
    round_: Optional[int] = typer.Option(None, "--round", min=0,
                                         help="Round to export (default: the last round whose prover and eval finished)."),
    force: bool = typer.Option(False, "--force", help="Replace OUTPUT if it exists and is not empty."),
    adapter_only: bool = typer.Option(False, "--adapter-only", help="A LoRA prover (prover.lora): write its adapter "
                                      "(peft) and not the merged model; the card names the base it loads on."),
) -> None:
    """Export one round's PPO-trained prover as a Hugging Face causal-LM folder with a model card and pvg_prover.json."""
    from pvg.export.hf import export_prover as run_export

    meta = run_export(run_dir, output, round_=round_, force=force, adapter_only=adapter_only)
    what = f"LoRA adapter (base: {meta['adapter']['base']})" if adapter_only else "prover"
    out.print(f"exported the round {meta['round']} {what} ({meta['selection']['mode']}) to {output}", highlight=False)


def score(
    verifier: Path = typer.Option(..., "--verifier", help="A folder written by `pvg export-verifier`."),
    input_: Path = typer.Option(..., "--input", "-i", help='JSONL, one {"question": ..., "solution": ...} a line.'),
    output: Path = typer.Option(..., "-o", "--output", help='JSONL to write: each input row with "score" added.'),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Solutions per forward pass."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    force: bool = ForceOption,
) -> None:
    """Score solutions with an exported verifier, exactly as the game scores them (higher = more convincing)."""
    from pvg.export import scoring

    rows = scoring.read_rows(input_)
    scoring.check_output(output)
    refuse_overwrite(output, force)
    v = scoring.load_verifier(verifier, device)
    scores = scoring.score_rows(v, rows, batch_size)
    scoring.write_jsonl_atomic(output, [{**r.data, "score": s} for r, s in zip(rows, scores)])
    err.print(f"scored {len(rows)} solutions with {verifier} -> {output} "
              f"(mean score {sum(scores) / len(scores):.4g})", highlight=False)


def eval_verifier(
    verifier: Path = typer.Option(..., "--verifier", help="A folder written by `pvg export-verifier`."),
    input_: Path = typer.Option(..., "--input", "-i",
                                help='JSONL rows {"question", "solution"} plus "is_correct" (bool) or "answer" '
                                     '(reference, e.g. "#### 18"); an optional "role" adds the sneaky fool rate.'),
    threshold: Optional[float] = typer.Option(None, "--threshold",
                                              help="Accept when score >= T (default: the exported round's "
                                                   "threshold from pvg_verifier.json, else 0)."),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON instead of a table."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Solutions per forward pass."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> None:
    """Measure an exported verifier on labelled solutions: AUROC, balanced accuracy, completeness, soundness."""
    from pvg.export import scoring
    from pvg.data.grading import extract_answer

    rows = scoring.read_rows(input_)
    labels = [scoring.label_of(r) for r in rows]
    roles = [scoring.role_of(r) for r in rows]
    graded = [r for r in rows if "is_correct" not in r.data]
    unanswered = sum(extract_answer(r.data["solution"]) is None for r in graded)
    meta = scoring.read_verifier_meta(verifier)  # before the model: a bad folder fails fast
    if threshold is not None:
        if not math.isfinite(threshold):
            raise PvgError(f"--threshold must be a finite number, got {threshold}")
        t, source = threshold, "--threshold"
    elif isinstance(meta.get("threshold"), (int, float)):
        t = float(meta["threshold"])
        source = f"{scoring.VERIFIER_META} (round {meta.get('round')}'s {meta.get('threshold_rule')})"
    else:
        t, source = 0.0, f"0: {scoring.VERIFIER_META} has no threshold"
    v = scoring.load_verifier(verifier, device)
    scores = scoring.score_rows(v, rows, batch_size, progress=True)
    result = scoring.evaluate(scores, labels, t, roles)
    result.update(threshold_source=source, graded_by_answer=len(graded), unanswered=unanswered)
    if as_json:
        out.print_json(data=scoring.json_safe(result))
        return
    out.print(_table(result, verifier, input_))


def _table(r: dict, verifier: Path, input_: Path) -> Table:
    def pct(x):
        return "n/a" if x != x else f"{x:.1%}"

    empty = "no incorrect rows" if not r["incorrect"] else "no correct rows" if not r["correct"] else ""
    t = Table(title=f"{verifier} on {input_}", title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("what it is")
    t.add_row("solutions", str(r["rows"]), f"{r['correct']} correct, {r['incorrect']} incorrect"
              + (f"; {r['graded_by_answer']} graded against \"answer\" ({r['unanswered']} state no answer)"
                 if r["graded_by_answer"] else ""))
    t.add_row("AUROC", "n/a" if r["auroc"] != r["auroc"] else f"{r['auroc']:.4f}",
              "P(a correct solution outscores an incorrect one)" + (f" [{empty}]" if empty else ""))
    t.add_row("balanced accuracy", pct(r["balanced_accuracy"]), "(completeness + soundness) / 2")
    t.add_row("completeness", pct(r["completeness"]), "correct solutions accepted")
    t.add_row("soundness", pct(r["soundness"]), "incorrect solutions rejected")
    if "sneaky_fool_rate" in r:
        t.add_row("sneaky fool rate", pct(r["sneaky_fool_rate"]), "sneaky, incorrect solutions accepted")
    t.add_row("threshold", f"{r['threshold']:.4g}", f"accept when score >= threshold; from {r['threshold_source']}")
    return t


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main `pvg` app."""
    app.command("export-verifier")(friendly(export_verifier))
    app.command("export-prover")(friendly(export_prover))
    app.command("score")(friendly(score))
    app.command("eval-verifier")(friendly(eval_verifier))
