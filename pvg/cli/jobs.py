"""`pvg submit` and `pvg jobs list|status|logs|stop`: the game as a Ray job on a cluster (docs/jobs.md).

Thin commands over `pvg.cluster.jobs`, which holds the checks and the Jobs API calls. Ray is imported
inside the commands, keeping `pvg --help` instant.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from pvg.cli.common import SetOption, err, friendly, out
from pvg.errors import PvgError

ADDRESS_HELP = ("Ray dashboard address (the Jobs API), e.g. http://HEAD:8265 "
                "(env: PVG_JOBS_ADDRESS, else RAY_API_SERVER_ADDRESS, else RAY_ADDRESS).")
TOKEN_HELP = ("Cluster auth token when Ray's token authentication is on (env: RAY_AUTH_TOKEN; "
              "else the file RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token, see docs/jobs.md).")
AddressOption = typer.Option(None, "--address", help=ADDRESS_HELP, show_default=False)
TokenOption = typer.Option(None, "--token", envvar="RAY_AUTH_TOKEN", help=TOKEN_HELP, show_default=False,
                           show_envvar=False)
JobArg = typer.Argument(..., help="Job id, as `pvg submit` printed it (`pvg jobs list` shows them).")

jobs_app = typer.Typer(no_args_is_help=True, help="List, follow and stop the Ray jobs that `pvg submit` started.")


def submit(
    config: Optional[Path] = typer.Argument(None, help="YAML config file, inside the folder that is shipped "
                                            "(e.g. configs/); not with --resume."),
    set: Optional[List[str]] = SetOption,
    address: Optional[str] = AddressOption,
    token: Optional[str] = TokenOption,
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help="Run folder on the cluster: an absolute path every "
                                          "node sees (default: run.out_dir/run.name, and run.out_dir must be absolute)."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name (sets run.name); the job id is pvg-NAME-<time>-<hex>."),
    follow: bool = typer.Option(False, "--follow/--no-wait",
                                help="Stream the job's logs until it ends and exit with its result (0 succeeded, "
                                     "1 failed or stopped), or return once it is submitted (the default)."),
    pip: bool = typer.Option(False, "--pip", help="Also install pvg's requirements (torch included) in a per-job "
                             "virtualenv. Off by default: the cluster's image is assumed to have them (much faster)."),
    working_dir: Optional[Path] = typer.Option(None, "--working-dir",
                                               help="Folder shipped as the job's working dir (default: the pvg "
                                                    "checkout this command runs from, else the current folder)."),
    python: str = typer.Option("python", "--python", help="Python executable on the cluster that runs the job."),
    resource_check: bool = typer.Option(True, "--resource-check/--no-resource-check",
                                        help="Refuse a config that asks for more CPUs/GPUs than the cluster's nodes "
                                             "have, here and in the job's driver (turn off for an autoscaling "
                                             "cluster that grows on demand: sets resources.precheck=false)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the job (entrypoint, runtime env) "
                                 "without contacting the cluster."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue a stopped run instead: its absolute run "
                                         "folder on the cluster (`pvg train --resume RUN_DIR` as a job); "
                                         "--set takes only game.max_rounds with it."),
) -> None:
    """Run `pvg train CONFIG` on a Ray cluster as a job (Ray's Jobs API); prints the job id.

    Ships this project as the job's working dir (no .venv, runs, caches, .git); the cluster's Python must already have pvg's dependencies (torch, transformers, ray) unless --pip.
    """
    from pvg.cluster import jobs

    if resume is not None:
        if config is not None or run_dir or name:
            raise PvgError("--resume continues a run with its own config.yaml; drop CONFIG, --run-dir and --name")
        sub = jobs.plan_resume(resume, list(set or []), working_dir=working_dir, pip=pip, python=python)
    elif config is None:
        raise PvgError("give a config (e.g. configs/tiny.yaml), or --resume RUN_DIR to continue a stopped run")
    else:
        overrides = list(set or []) + ([] if resource_check else ["resources.precheck=false"])  # the job's driver too
        sub = jobs.plan_submission(config, overrides, run_dir=run_dir, name=name, working_dir=working_dir, pip=pip,
                                   python=python)
    for w in sub.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
    if dry_run:
        out.print_json(data={"submission_id": sub.submission_id, "entrypoint": sub.entrypoint,
                             "runtime_env": sub.runtime_env, "metadata": sub.metadata})
        return
    cluster = jobs.connect(address, token)
    if resource_check:
        try:
            nodes = jobs.cluster_nodes(cluster)
        except Exception as e:  # an older or proxied dashboard without the state API: say so, go on
            err.print(f"[yellow]warning:[/] could not read the cluster's nodes ({escape(str(e))}); "
                      "resources not checked", highlight=False, soft_wrap=True)
        else:
            if sub.cfg is not None:
                jobs.check_fits(sub.cfg.resources, nodes, cluster.url)
    job_id = jobs.submit(cluster, sub)
    print(job_id, flush=True)
    err.print(f"submitted job [bold]{escape(job_id)}[/] to {escape(cluster.url)} (working dir: {escape(str(sub.working_dir))})\n"
              f"  run folder on the cluster: {escape(sub.run_dir)}\n"
              f"  follow it:  {escape(cluster.follow_hint(job_id))}\n"
              f"  status:     pvg jobs status {escape(job_id)} --address {escape(cluster.url)}\n"
              f"  stop it:    pvg jobs stop {escape(job_id)} --address {escape(cluster.url)}", highlight=False,
              soft_wrap=True)
    if follow:
        _follow(cluster, job_id)


def _write(chunk: str) -> None:
    sys.stdout.write(chunk)
    sys.stdout.flush()


def _follow(cluster, job_id: str) -> None:
    from pvg.cluster import jobs

    try:
        info = jobs.follow(cluster, job_id, _write)
    except KeyboardInterrupt:
        err.print(f"stopped following; the job keeps running (pvg jobs stop {job_id} --address {cluster.url})")
        raise typer.Exit(130)
    err.print(f"job {escape(job_id)}: [bold]{info.status}[/] {escape(info.message or '')}", highlight=False)
    if str(info.status) == "STOPPED":
        _say_how_to_resume(cluster, info)
    if str(info.status) != "SUCCEEDED":
        raise typer.Exit(1)


def _say_how_to_resume(cluster, info) -> None:
    """A stopped job's run folder keeps every finished phase: the job that continues it."""
    hint = cluster.resume_hint((info.metadata or {}).get("pvg_run_dir"))
    if hint:
        err.print(f"continue with `{escape(hint)}`", highlight=False, soft_wrap=True)


def _when(ms: Optional[int], short: bool = False) -> str:
    return time.strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def _duration(info) -> str:
    if not info.start_time:
        return "-"
    s = ((info.end_time or time.time() * 1000) - info.start_time) / 1000
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.0f} s"


def _as_dict(info) -> dict:
    meta = info.metadata or {}
    return {"job_id": info.submission_id, "status": str(info.status), "message": info.message,
            "run_dir": meta.get("pvg_run_dir"), "config": meta.get("pvg_config"), "entrypoint": info.entrypoint,
            "start_time": info.start_time, "end_time": info.end_time, "metadata": meta}


@jobs_app.command("list")
@friendly
def jobs_list(
    address: Optional[str] = AddressOption,
    token: Optional[str] = TokenOption,
    as_json: bool = typer.Option(False, "--json", help="Print the jobs as JSON."),
) -> None:
    """Every submitted job on the cluster, oldest first, with its status and (for pvg jobs) run folder."""
    from pvg.cluster import jobs

    cluster = jobs.connect(address, token)
    found = jobs.list_jobs(cluster)
    if as_json:
        out.print_json(data=[_as_dict(j) for j in found])
        return
    if not found:
        err.print(f"no jobs on {cluster.url}")
        return
    t = Table(title=f"jobs on {cluster.url}", title_justify="left")
    for col in ("job id", "status", "started", "ran"):
        t.add_column(col, no_wrap=True)
    t.add_column("run folder (or entrypoint)", overflow="fold", min_width=20)
    for j in found:
        where = (j.metadata or {}).get("pvg_run_dir") or j.entrypoint or ""
        where = where if len(where) <= 60 else where[:59] + "…"
        t.add_row(escape(j.submission_id), str(j.status), _when(j.start_time, short=True), _duration(j), escape(where))
    out.print(t)


@jobs_app.command("status")
@friendly
def jobs_status(
    job_id: str = JobArg,
    address: Optional[str] = AddressOption,
    token: Optional[str] = TokenOption,
    as_json: bool = typer.Option(False, "--json", help="Print the job's details as JSON."),
) -> None:
    """One job's status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED), message and run folder."""
    from pvg.cluster import jobs

    cluster = jobs.connect(address, token)
    d = _as_dict(jobs.status(cluster, job_id))
    if as_json:
        out.print_json(data=d)
        return
    out.print(f"{d['job_id']}: [bold]{d['status']}[/]", highlight=False)
    rows = [("message", d["message"]), ("run folder", d["run_dir"]), ("config", d["config"]),
            ("entrypoint", d["entrypoint"]), ("started", _when(d["start_time"])), ("ended", _when(d["end_time"]))]
    if d["status"] == "STOPPED":
        rows.append(("continue", cluster.resume_hint(d["run_dir"])))
    for k, v in rows:
        if v:
            out.print(f"  {k:<11} {escape(str(v))}", highlight=False, soft_wrap=True)


@jobs_app.command("logs")
@friendly
def jobs_logs(
    job_id: str = JobArg,
    address: Optional[str] = AddressOption,
    token: Optional[str] = TokenOption,
    follow: bool = typer.Option(False, "--follow", "-f", help="Stream new lines until the job ends, then exit with "
                                "its result (0 succeeded, 1 failed or stopped)."),
) -> None:
    """A job's output so far (the driver's: round lines, the stop reason, the summary)."""
    from pvg.cluster import jobs

    cluster = jobs.connect(address, token)
    if follow:
        _follow(cluster, job_id)
        return
    _write(jobs.logs(cluster, job_id))


@jobs_app.command("stop")
@friendly
def jobs_stop(
    job_id: str = JobArg,
    address: Optional[str] = AddressOption,
    token: Optional[str] = TokenOption,
    wait: float = typer.Option(30, "--wait", min=0, help="Seconds to wait for the job to end (0: don't wait)."),
) -> None:
    """Stop a running job (its driver is interrupted, then killed); its run folder keeps every finished phase."""
    from pvg.cluster import jobs

    cluster = jobs.connect(address, token)
    requested, info = jobs.stop(cluster, job_id, wait_s=wait)
    if not requested:
        out.print(f"{escape(job_id)} had already ended: {info.status}", highlight=False)
        return
    out.print(f"{escape(job_id)}: stop requested; now {info.status}", highlight=False)
    _say_how_to_resume(cluster, info)


def register(app: typer.Typer) -> None:
    """Add `pvg submit` and the `pvg jobs` group to the main `pvg` app."""
    app.command("submit")(friendly(submit))
    app.add_typer(jobs_app, name="jobs")
