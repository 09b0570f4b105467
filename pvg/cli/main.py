"""The `pvg` command line. Every user error is one clear line and exit code 2 (`--debug` for a traceback)."""

from __future__ import annotations

import json
import shlex
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
from pvg.cli.common import ForceOption, SetOption, err, friendly, out, refuse_overwrite, set_debug
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
def config_show(
    config: Path = typer.Argument(..., help="YAML config file."),
    set: Optional[List[str]] = SetOption,
    doc: bool = typer.Option(False, "--doc", help="One line per key instead: dotted key, resolved value, what it means."),
) -> None:
    """Print the resolved config (file + --set overrides + defaults) as YAML."""
    cfg = _load(config, set)
    if doc:
        _print_doc(cfg)
        return
    out.print(Syntax(cfg.to_yaml(), "yaml", background_color="default"))


def _doc_value(value) -> str:
    """A value as YAML would write it inline: strings bare (quoted when empty), the rest as JSON."""
    import json

    return value if isinstance(value, str) and value else json.dumps(value)


def _print_doc(cfg) -> None:
    """Aligned plain lines, never wrapped: `key  value  description` (grep-able, readable in a pipe)."""
    from pvg.config import describe

    rows = [(key, _doc_value(value), description) for key, value, description in describe(cfg)]
    key_w = max(len(k) for k, _, _ in rows)
    value_w = min(24, max(len(v) for _, v, _ in rows))  # a long list just pushes its description along
    for key, value, description in rows:
        out.print(f"{key:<{key_w}}  {value:<{value_w}}  {description}".rstrip(), soft_wrap=True, markup=False,
                  highlight=False)


@data_app.command("synth")
@friendly
def data_synth(
    n: int = typer.Option(100, "-n", min=1, help="Number of problems."),
    output: Path = typer.Option(..., "-o", "--output", help="JSONL file to write."),
    seed: int = typer.Option(0, help="Random seed (same seed, same problems)."),
    min_steps: int = typer.Option(2, min=2, max=6),
    max_steps: int = typer.Option(6, min=2, max=6),
    flaws: int = typer.Option(2, min=1, max=8, help="Flawed solutions per problem."),
    force: bool = ForceOption,
) -> None:
    """Write N synthetic GSM-style problems with reference and flawed solutions as JSONL."""
    from pvg.data.problems import save_jsonl
    from pvg.data.synth import generate

    if min_steps > max_steps:
        raise PvgError(f"--min-steps ({min_steps}) must be <= --max-steps ({max_steps})")
    if output.exists() and output.is_dir():
        raise PvgError(f"{output} is a directory; give a file name ending in .jsonl")
    refuse_overwrite(output, force)
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
    from pvg.data.dataset import load_split, with_flaws

    cfg = _load(config, set)
    sides = load_split(cfg.data, cfg.run.seed)
    counts = ", ".join(f"{k}: {len(v)}" for k, v in sides.items())
    out.print(f"[bold]{cfg.data.source}[/] problems, split {counts}")
    for p in with_flaws(sides["prover"][:n], cfg.data, cfg.run.seed):
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
    """Warm-start the tiny prover (both roles) and the verifier's base, or a hub prover's roles
    (warmstart.hub_prover_steps); cached by config hash."""
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
    as_json: bool = typer.Option(False, "--json", help="End with the summary as one JSON object on stdout "
                                 "(summary.json: stop_reason, rounds, final metrics) for scripts."),
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
    summary = orch.run()  # says first where the run folder is, then plays
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    out.print(train_summary(summary, orch.rf.location), highlight=False, soft_wrap=True)


def _pct(v) -> str:
    return f"{v:.0%}" if isinstance(v, (int, float)) else "-"


def train_summary(summary: Optional[dict], location: str) -> str:
    """The end of `pvg train`: why the game stopped, the last round's numbers, and what to run next."""
    run = shlex.quote(location)
    lines = []
    if summary:
        n = summary.get("rounds", 0)
        lines.append(f"[bold]stopped[/] after {n} round{'s' * (n != 1)}: {escape(str(summary.get('stop_reason')))}")
        f = summary.get("final") or {}
        if f:
            auroc = f.get("verifier_auroc")
            exploit = (f"exploited after {f.get('steps_to_exploit')} PPO steps" if f.get("exploited") else "no exploit")
            kl = f.get("kl_to_init")
            lines.append(f"round {f.get('round')}: helpful pass {_pct(f.get('helpful_pass_rate'))} · sneaky incorrect "
                         f"{_pct(f.get('sneaky_incorrect_rate'))} · AUROC "
                         f"{f'{auroc:.3f}' if isinstance(auroc, (int, float)) else '-'} · fool rate "
                         f"{_pct(f.get('sneaky_fool_rate'))} · {exploit}"
                         f"{f' · KL {kl:.2f}' if isinstance(kl, (int, float)) else ''}")
    lines.append(f"run folder: {escape(location)}")
    steps = [(f"pvg metrics {run}", "the dashboard, one row a round"),
             (f"pvg report {run} -o report.html", "one HTML page: config, table, plots, solutions"),
             (f"pvg export-verifier {run} -o verifier", "the last round's verifier as a Hugging Face folder "
                                                        "(--best: the best round)")]
    width = max(len(cmd) for cmd, _ in steps)
    lines += ["next:", *(f"  {escape(cmd.ljust(width))}  [dim]# {why}[/]" for cmd, why in steps)]
    return "\n".join(lines)


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
