"""The `pvg` command line. Every user error is one clear line and exit code 2 (`--debug` for a traceback)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax

from pvg.cli import eval as cli_eval

from pvg.cli import export as cli_export

from pvg.cli import inspect as cli_inspect

from pvg.cli import jobs as cli_jobs
from pvg.cli.common import SetOption, err, friendly, out, set_debug
from pvg.errors import PvgError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="pvg: prover-verifier games (checkability training) for GSM-style math.",
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(no_args_is_help=True, help="Inspect configs.")
data_app = typer.Typer(no_args_is_help=True, help="Generate and preview problems.")
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")) -> None:
    set_debug(debug)

def _load(config: Path, overrides: Optional[List[str]]):
    from pvg.config import load_config

    return load_config(config, overrides or [])


@config_app.command("show")
@friendly
def config_show(config: Path = typer.Argument(..., help="YAML config file."), set: Optional[List[str]] = SetOption) -> None:
    """Print the resolved config (file + --set overrides + defaults) as YAML."""
    cfg = _load(config, set)
    out.print(Syntax(cfg.to_yaml(), "yaml", background_color="default"))


@data_app.command("synth")
@friendly
def data_synth(
    n: int = typer.Option(100, "-n", min=1, help="Number of problems."),
    output: Path = typer.Option(..., "-o", "--output", help="JSONL file to write."),
    seed: int = typer.Option(0, help="Random seed (same seed, same problems)."),
    min_steps: int = typer.Option(2, min=2, max=6),
    max_steps: int = typer.Option(6, min=2, max=6),
    flaws: int = typer.Option(2, min=1, max=8, help="Flawed solutions per problem."),
) -> None:
    """Write N synthetic GSM-style problems with reference and flawed solutions as JSONL."""
    from pvg.data.problems import save_jsonl
    from pvg.data.synth import generate

    if min_steps > max_steps:
        raise PvgError(f"--min-steps ({min_steps}) must be <= --max-steps ({max_steps})")
    if output.exists() and output.is_dir():
        raise PvgError(f"{output} is a directory; give a file name ending in .jsonl")
    problems = generate(n, seed=seed, min_steps=min_steps, max_steps=max_steps, flaws_per_problem=flaws)
    save_jsonl(problems, output)
    err.print(f"wrote {len(problems)} problems to {output}")


@data_app.command("preview")
@friendly
def data_preview(
    config: Path = typer.Argument(..., help="YAML config file."),
    n: int = typer.Option(3, "-n", min=1, help="How many problems to show."),
    set: Optional[List[str]] = SetOption,
) -> None:
    """Show a few problems of the config's data with their solutions and planted flaws."""
    from pvg.data.dataset import load_split

    cfg = _load(config, set)
    sides = load_split(cfg.data, cfg.run.seed)
    counts = ", ".join(f"{k}: {len(v)}" for k, v in sides.items())
    out.print(f"[bold]{cfg.data.source}[/] problems, split {counts}")
    for p in sides["prover"][:n]:
        body = [f"[bold]{escape(p.question)}[/]", "", "[green]reference[/]", escape(p.reference or "(none)")]
        for f in p.flawed:
            where = "in the answer line" if f.flaw.kind == "miscopied_answer" else f"at step {f.flaw.step + 1}"
            body += ["", f"[red]flawed: {f.flaw.kind} {where}[/]", escape(f.text)]
        diff = f" · {p.difficulty.steps} steps, {p.difficulty.magnitude}-digit numbers" if p.difficulty else ""
        out.print(Panel("\n".join(body), title=f"{p.id} · answer {p.answer}{diff}", expand=False))


@app.command("warmstart")
@friendly
def warmstart(
    config: Path = typer.Argument(..., help="YAML config file."),
    set: Optional[List[str]] = SetOption,
    force: bool = typer.Option(False, "--force", help="Retrain even when a cached warm start exists."),
) -> None:
    """Warm-start the tiny prover (both roles) and the verifier's base; cached by config hash."""
    from pvg.game.warmstart import run_warmstart

    cfg = _load(config, set)
    ws = run_warmstart(cfg, force=force, progress=cfg.logging.progress)
    out.print_json(data={"prover": ws.prover, "verifier_base": ws.verifier_base, **ws.metrics})


@app.command("train")
@friendly
def train(
    config: Optional[Path] = typer.Argument(None, help="YAML config file (not needed with --resume)."),
    set: Optional[List[str]] = SetOption,
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue the run in this folder (a path or a URI) "
                                         "from its last finished phase; with it, --set takes only "
                                         "game.max_rounds (e.g. to play more rounds of a finished game)."),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help="Run folder: a path or a URI such as "
                                          "s3://bucket/runs/NAME (default: run.out_dir/run.name)."),
    address: Optional[str] = typer.Option(None, "--address", envvar="RAY_ADDRESS",
                                          help="Ray cluster to join (default: start a local Ray)."),
) -> None:
    """Play the prover-verifier game: verifier and prover rounds until the sneaky prover stops fooling the verifier."""
    from pvg.game.orchestrator import Orchestrator, default_run_dir

    if resume is not None:
        if config is not None:
            raise PvgError("--resume takes the run's own config.yaml; drop CONFIG")
        orch = Orchestrator.for_resume(resume, set, address=address)
    else:
        if config is None:
            raise PvgError("give a config (e.g. configs/tiny.yaml) or --resume RUN_DIR")
        cfg = _load(config, set)
        orch = Orchestrator(cfg, run_dir or default_run_dir(cfg), address=address)
    summary = orch.run()
    out.print_json(data=summary)


cli_inspect.register(app)  # metrics, plot, report
cli_export.register(app)  # export-verifier, export-prover, score, eval-verifier
cli_jobs.register(app)  # submit, jobs list/status/logs/stop
cli_eval.register(app)  # eval best-of-n/separability/judges/similarity/reliability/human-*


def entrypoint() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    entrypoint()
