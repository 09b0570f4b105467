"""`pvg metrics`, `pvg plot`, `pvg report`: look at a run, live or finished, without touching it.

The reading lives in `pvg.run.view` (one view of a run folder that all three share), the figure in
`pvg.inspect.plots` and the page in `pvg.inspect.report`; these commands only check their arguments and print.
matplotlib and pyarrow are imported inside the commands that need them, so `pvg metrics` on a
live run and `pvg --help` stay instant.
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
from pvg.errors import PvgError
from pvg.run.view import COLUMNS, GAME_COLUMNS, NO_EXPLOIT, cell, load_run

RUN_DIR_HELP = "A run folder written by `pvg train` (live or finished): a path or a URI (s3://..., gs://...)."


def check_output(output: Path, suffixes: tuple[str, ...] | None = None) -> None:
    """Fail before any work when the output cannot be written where asked."""
    if output.is_dir():
        raise PvgError(f"{output} is a directory; give a file name, e.g. {output / ('plot' + (suffixes or ('.html',))[0])}")
    parent = output.parent
    if not parent.is_dir():
        raise PvgError(f"cannot write {output}: the folder {parent} does not exist; create it first (mkdir -p {parent})")
    if suffixes and output.suffix.lower() not in suffixes:
        raise PvgError(f"cannot tell the image format of {output}: end the name in {', '.join(suffixes)}")


def metrics(
    run_dir: str = typer.Argument(..., metavar="RUN_DIR", help=RUN_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (status, stop_reason, rounds) for scripts."),
) -> None:
    """The legibility dashboard, one row a round, and where the run stands (live) or why it stopped."""
    view = load_run(run_dir)
    if as_json:
        sys.stdout.write(json.dumps(view.to_json(), indent=2, allow_nan=False) + "\n")
        return
    if not view.rounds:  # a run in its first round: its status is the answer, not an error
        out.print(f"[bold]{escape(view.name)}[/]: no finished round yet", highlight=False)
        out.print(escape(view.status.text), highlight=False)
        return
    title = f"{escape(view.name)} · {len(view.rounds)} round{'s' * (len(view.rounds) != 1)}"
    if _table_width(view, COLUMNS) <= out.width:
        out.print(_table(view, COLUMNS, title))
    else:  # a narrow terminal: the game's outcome, then what it cost, each still one row a round
        out.print(_table(view, COLUMNS[:GAME_COLUMNS], title))
        out.print(_table(view, COLUMNS[:1] + COLUMNS[GAME_COLUMNS:], "cost"))
    ws = view.warmstart or {}
    if isinstance(ws.get("helpful_pass_rate"), (int, float)) and isinstance(ws.get("sneaky_incorrect_rate"), (int, float)):
        out.print(f"warm start (before round 0): helpful pass {ws['helpful_pass_rate']:.0%} · "
                  f"sneaky incorrect {ws['sneaky_incorrect_rate']:.0%}", highlight=False)
    out.print(f"{NO_EXPLOIT} steps to exploit: no exploit within ppo.max_steps={view.cfg('ppo.max_steps', '?')} · "
              "rates and AUROC on held-out test problems · phase times in seconds", highlight=False, style="dim")
    style = {"finished": "bold green", "running": "bold cyan"}.get(view.status.state, "bold yellow")
    out.print(f"[{style}]{escape(view.status.text)}[/]", highlight=False)


def _table_width(view, columns) -> int:
    widths = [max([len(line) for line in header.split("\n")] + [len(cell(r, k)) for r in view.rounds])
              for k, header, _ in columns]
    return sum(widths) + 2 * len(columns) + 1  # a divider and a left pad per column, one edge


def _table(view, columns, title: str) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD,
                  padding=(0, 0, 0, 1))
    for _, header, _ in columns:
        table.add_column(header, justify="right", no_wrap=True)
    for r in view.rounds:
        table.add_row(*(cell(r, k) for k, _, _ in columns))
    return table


def plot(
    run_dirs: List[str] = typer.Argument(..., metavar="RUN_DIR", help="One or more run folders (paths or URIs); each "
                                         "gets its own colour."),
    output: Path = typer.Option(..., "-o", "--output", help="Image to write: .png (or .pdf, .svg)."),
    dpi: int = typer.Option(100, "--dpi", min=30, max=600, help="Resolution; the figure is 12x8 inches."),
    title: Optional[str] = typer.Option(None, "--title", help="A title above the figure."),
    force: bool = ForceOption,
) -> None:
    """Plot the legibility metrics over rounds, one panel per family, several runs on one figure."""
    from pvg.inspect.plots import FORMATS, save_figure

    check_output(output, FORMATS)
    refuse_overwrite(output, force)
    views = [load_run(d) for d in run_dirs]
    for v in views:
        v.require_rounds("a plot")
    save_figure(views, output, dpi=dpi, title=title)
    err.print(f"wrote {output} ({len(views)} run{'s' * (len(views) != 1)}, "
              f"{max(len(v.rounds) for v in views)} rounds at most)", highlight=False)


def report(
    run_dir: str = typer.Argument(..., metavar="RUN_DIR", help=RUN_DIR_HELP),
    output: Path = typer.Option(..., "-o", "--output", help="HTML file to write (one self-contained page)."),
    examples: int = typer.Option(3, "--examples", min=0, help="Problems shown per round (helpful and sneaky side by side)."),
    dpi: int = typer.Option(100, "--dpi", min=30, max=300, help="Resolution of the embedded figure."),
    force: bool = ForceOption,
) -> None:
    """Write one self-contained HTML page: config, per-round table, plots, and solutions with their flaws marked."""
    from pvg.inspect.report import build_report
    from pvg.run.folder import write_atomic

    check_output(output)
    refuse_overwrite(output, force)
    view = load_run(run_dir)
    page = build_report(view, examples=examples, dpi=dpi)
    write_atomic(output, page)
    err.print(f"wrote {output} ({len(view.rounds)} rounds, {len(page) // 1024} KiB)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main `pvg` app."""
    app.command("metrics")(friendly(metrics))
    app.command("plot")(friendly(plot))
    app.command("report")(friendly(report))
