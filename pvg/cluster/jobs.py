"""Run the game as a Ray job: `pvg submit` and `pvg jobs ...` through Ray's Jobs API.

A submission ships the project to the cluster in a Ray runtime environment (`working_dir`: the
pvg checkout, minus virtualenvs, runs, caches and git; `py_modules`: the pvg package when it lives
outside that folder; `pip`: pvg's own requirements only when asked) and runs
`python -u -m pvg.cli train CONFIG --set ...` as the job's entrypoint. Ray sets RAY_ADDRESS for a
job's driver, and `pvg train` reads it, so the driver joins the cluster instead of starting a Ray
of its own.

Everything a user can get wrong is checked here, before anything is uploaded: the config (loaded
and validated with its overrides, exactly as `pvg train` will), where the run folder will land
(an absolute path on the cluster), and whether the cluster has the CPUs and GPUs that
`resources.prover` / `resources.verifier` ask for. Each failure is a PvgError: one line, exit 2.

The address is the Ray dashboard's HTTP address (`http://HEAD:8265`), which is where the Jobs API
lives. The token, for clusters with Ray's token authentication on, is sent as an
`Authorization: Bearer` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import ipaddress
import os
import re
import secrets
import shlex
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator
from urllib.parse import urlsplit

from pvg.run import storage
from pvg.config import PvgConfig, ResourcesConfig, check_resume_keys, load_config
from pvg.errors import PvgError

ADDRESS_ENV = ("PVG_JOBS_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = Path.home() / ".ray" / "auth_token"

# Never shipped (gitignore syntax, relative to the working dir); `.gitignore` and `.rayignore` in
# the working dir are honoured by Ray as well.
EXCLUDES = [".venv/", "venv/", ".git/", "runs/", ".cache/", "__pycache__/", "*.pyc", "*.egg-info/",
            ".pytest_cache/", ".mypy_cache/", ".ruff_cache/", "build/", "dist/", "/exports/"]

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


# --------------------------------------------------------------------------- address and token
def resolve_address(address: str | None) -> str:
    """The Jobs API's base URL: `--address`, else PVG_JOBS_ADDRESS, RAY_API_SERVER_ADDRESS, RAY_ADDRESS."""
    source = "--address"
    if not address:
        for name in ADDRESS_ENV:
            if os.environ.get(name):
                address, source = os.environ[name], name
                break
    if not address:
        raise PvgError("no cluster given: pass --address http://HEAD:8265 (the Ray dashboard's address) "
                       "or set PVG_JOBS_ADDRESS")
    address = address.strip().rstrip("/")
    if address == "auto" or address.startswith("ray://"):
        raise PvgError(f"{source}={address!r}: pvg submit talks to Ray's Jobs API, which is the dashboard's "
                       "HTTP address, e.g. http://HEAD:8265")
    if "://" not in address:
        address = "http://" + address
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PvgError(f"{source}={address!r}: expected http://HOST:PORT (the Ray dashboard, default port 8265)")
    return address


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == socket.gethostname()


def resolve_token(token: str | None, url: str) -> tuple[str | None, str]:
    """The cluster's auth token and where it came from, or (None, "") to send none.

    `--token` / RAY_AUTH_TOKEN, else the file named by RAY_AUTH_TOKEN_PATH, else `~/.ray/auth_token`
    — but that default file only for a cluster on this machine or with RAY_AUTH_MODE=token set
    (Ray's own rule: a local token is never sent to another cluster unless you opt in).
    """
    if token and token.strip():
        return token.strip(), "--token" if os.environ.get(TOKEN_ENV) != token else TOKEN_ENV
    path = os.environ.get(TOKEN_PATH_ENV)
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise PvgError(f"{TOKEN_PATH_ENV}={path}: no such file")
        return p.read_text().strip() or None, str(p)
    opted_in = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    if DEFAULT_TOKEN_FILE.is_file() and (opted_in or _is_loopback(url)):
        return DEFAULT_TOKEN_FILE.read_text().strip() or None, str(DEFAULT_TOKEN_FILE)
    return None, ""


@dataclass
class Cluster:
    """A connected Jobs API client and how to reach the same cluster again."""

    url: str
    client: object
    headers: dict = field(default_factory=dict)
    token_source: str = ""

    def follow_hint(self, job_id: str) -> str:
        return f"pvg jobs logs {job_id} --follow --address {self.url}"

    def resume_hint(self, run_dir: str | None) -> str | None:
        """For a pvg job that ended before its game did: the job that continues its run folder."""
        if not run_dir:
            return None
        return f"pvg submit --resume {shlex.quote(run_dir)} --address {self.url}"


@contextlib.contextmanager
def api_errors(url: str) -> Iterator[None]:
    """Turn the Jobs API's failures into one-line PvgErrors that say what to do."""
    from ray.exceptions import AuthenticationError
    from requests.exceptions import RequestException, Timeout

    try:
        yield
    except AuthenticationError as e:
        if "Authentication required" in str(e) or "Missing" in str(e):
            raise PvgError(f"the Ray cluster at {url} has token authentication on and no token was sent: pass "
                           f"--token or set {TOKEN_ENV} (on the head node, `ray get-auth-token` prints it)") from None
        raise PvgError(f"the Ray cluster at {url} refused the token: it is not this cluster's "
                       f"(on the head node, `ray get-auth-token` prints the right one)") from None
    except Timeout:
        raise PvgError(f"Ray's Jobs API at {url} accepted the connection but sent no answer within "
                       f"{HTTP_TIMEOUT_S[1]:g}s: is this the dashboard's port (default 8265) of a running cluster? "
                       "A port of some other server, or a head node too busy to answer, looks like this") from None
    except (ConnectionError, RequestException) as e:
        why = " ".join(str(e).split())[:200]
        raise PvgError(f"cannot reach Ray's Jobs API at {url} ({why}); give the dashboard's address "
                       "(default port 8265, not the GCS port 6379) of a cluster started with ray[default]") from None
    except RuntimeError as e:
        msg = " ".join(str(e).split())
        if "status code 404" in msg:
            raise PvgError(f"{url}: {msg.split('404:', 1)[-1].strip()} (`pvg jobs list` shows the jobs)") from None
        raise PvgError(f"Ray Jobs API at {url}: {msg}") from None


@contextlib.contextmanager
def _without_env(*names: str) -> Iterator[None]:
    """JobSubmissionClient lets RAY_API_SERVER_ADDRESS / RAY_ADDRESS override an explicit address."""
    saved = {n: os.environ.pop(n) for n in names if n in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _quiet_ray_logs() -> None:
    """Ray's client logs every file it skips and every package it uploads; keep its errors only."""
    import logging

    for name in ("ray._private.runtime_env", "ray.dashboard", "ray.dashboard.modules.dashboard_sdk",
                 "ray.dashboard.modules.job.sdk"):
        logging.getLogger(name).setLevel(logging.ERROR)


# (connect, read) seconds for every Jobs API request: Ray's client sets none, so a port that accepts
# and never answers (another server, a wedged head) hung `pvg jobs` / `pvg submit` for good.
HTTP_TIMEOUT_S = (10.0, 60.0)


def _bounded_client():
    from ray.job_submission import JobSubmissionClient

    class BoundedClient(JobSubmissionClient):
        def _do_request(self, method, endpoint, **kwargs):
            kwargs.setdefault("timeout", HTTP_TIMEOUT_S)
            return super()._do_request(method, endpoint, **kwargs)

    return BoundedClient


def connect(address: str | None, token: str | None) -> Cluster:
    _quiet_ray_logs()

    url = resolve_address(address)
    tok, source = resolve_token(token, url)
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    with api_errors(url), _without_env("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        client = _bounded_client()(url, headers=dict(headers))
    return Cluster(url, client, headers, source)


# --------------------------------------------------------------------------- what a submission ships
def project_root() -> Path | None:
    """The source checkout pvg was imported from (a folder whose pyproject.toml names pvg), if any."""
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "pvg"' in pyproject.read_text():
        return root
    return None


def _ignored(rel: PurePosixPath, working_dir: Path) -> str | None:
    """The exclude pattern (ours or a top-level .gitignore's) that keeps `rel` from being shipped."""
    patterns = list(EXCLUDES)
    gitignore = working_dir / ".gitignore"
    if gitignore.is_file():
        patterns += [ln.strip() for ln in gitignore.read_text().splitlines()
                     if ln.strip() and not ln.startswith(("#", "!"))]
    parts = rel.parts
    for pat in patterns:
        is_dir = pat.endswith("/")
        p = pat.strip("/")
        names = parts[:-1] if is_dir else parts
        if any(fnmatch.fnmatch(n, p) for n in names) or (not is_dir and fnmatch.fnmatch(str(rel), p)):
            return pat
    return None


def pip_requirements() -> list[str]:
    """pvg's own runtime requirements (no extras, not ray: the cluster's Ray runs the job), as installed here."""

    from importlib.metadata import PackageNotFoundError, requires

    try:
        reqs = requires("pvg") or []
    except PackageNotFoundError:
        raise PvgError("--pip needs pvg installed here (pip install -e .) to know its requirements") from None
    return [r for r in reqs if "extra ==" not in r and re.split(r"[^A-Za-z0-9_.-]", r, maxsplit=1)[0].lower() != "ray"]


def _runtime_env(wd: Path, pip: bool) -> dict:
    """What a job ships: the working dir (minus EXCLUDES), the pvg package when it lives outside it,
    and pvg's requirements with --pip."""
    runtime_env: dict = {"working_dir": str(wd), "excludes": list(EXCLUDES)}
    pkg = Path(__file__).resolve().parent
    if not pkg.is_relative_to(wd):
        runtime_env["py_modules"] = [str(pkg)]
    if pip:
        runtime_env["pip"] = pip_requirements()
    return runtime_env


@dataclass
class Submission:
    cfg: PvgConfig | None  # None: a resumed run whose config.yaml is not visible from here
    entrypoint: str
    runtime_env: dict
    metadata: dict
    submission_id: str
    run_dir: str
    working_dir: Path
    warnings: list[str]


def _shared(location: str) -> bool:
    """A run folder a job can use: an absolute path (on storage every node mounts) or a URI."""
    return storage.is_uri(location) or PurePosixPath(location).is_absolute()


def plan_submission(config: Path, overrides: list[str], *, run_dir: str | None = None, name: str | None = None,
                    working_dir: Path | None = None, pip: bool = False, python: str = "python") -> Submission:
    """Validate locally and build the job: entrypoint, runtime env, metadata. Uploads nothing."""
    overrides = list(overrides) + ([f"run.name={name}"] if name else [])
    cfg = load_config(config, overrides)  # a bad config fails here, before anything is uploaded
    root = project_root()
    wd = (working_dir or root or Path.cwd()).resolve()
    if not wd.is_dir():
        raise PvgError(f"--working-dir {wd}: not a folder")
    try:
        rel = PurePosixPath(config.resolve().relative_to(wd).as_posix())
    except ValueError:
        raise PvgError(f"config {config} is outside the folder that is shipped to the cluster ({wd}); "
                       "copy it into that folder (e.g. configs/) or pass --working-dir") from None
    pat = _ignored(rel, wd)
    if pat:
        raise PvgError(f"config {config} is not shipped to the cluster (it matches the exclude pattern {pat!r}); "
                       "copy it into configs/")
    warnings = []
    if run_dir is not None:
        if not _shared(run_dir):
            raise PvgError(f"--run-dir {run_dir}: give an absolute path on the cluster's storage; a relative one "
                           "would land in Ray's temporary copy of the working dir")
        final_run_dir = run_dir
    else:
        if not _shared(cfg.run.out_dir):
            raise PvgError(f"run.out_dir={cfg.run.out_dir} is relative: in a job it would land in Ray's temporary "
                           "copy of the working dir; pass --set run.out_dir=/shared/runs (storage every node sees) "
                           "or --run-dir /shared/runs/NAME")
        final_run_dir = (storage.join(cfg.run.out_dir, cfg.run.name) if storage.is_uri(cfg.run.out_dir)
                         else str(PurePosixPath(cfg.run.out_dir) / cfg.run.name))
    if not PurePosixPath(cfg.run.cache_dir).is_absolute():
        warnings.append(f"run.cache_dir={cfg.run.cache_dir} is relative: each job rebuilds the warm start in its "
                        "copy of the working dir; --set run.cache_dir=/shared/pvg-cache reuses it across jobs")
    if cfg.data.source == "jsonl" and cfg.data.path and not PurePosixPath(cfg.data.path).is_absolute():
        if not (wd / cfg.data.path).is_file() or _ignored(PurePosixPath(cfg.data.path), wd):
            raise PvgError(f"data.path={cfg.data.path} is relative but not shipped in {wd}; put the file in that "
                           "folder or give an absolute path on the cluster's storage")

    args = [python, "-u", "-m", "pvg.cli", "train", str(rel)]
    for item in overrides:
        args += ["--set", item]
    if run_dir is not None:
        args += ["--run-dir", run_dir]
    runtime_env = _runtime_env(wd, pip)
    submission_id = f"pvg-{cfg.run.name}-{time.strftime('%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    metadata = {"pvg": "train", "pvg_config": str(rel), "pvg_run_name": cfg.run.name, "pvg_run_dir": final_run_dir}
    return Submission(cfg, shlex.join(args), runtime_env, metadata, submission_id, final_run_dir, wd, warnings)


def plan_resume(run_dir: str, overrides: list[str] | None = None, *, working_dir: Path | None = None,
                pip: bool = False, python: str = "python") -> Submission:
    """A job that continues a stopped run: `pvg train --resume RUN_DIR` on the cluster.

    The run's own config.yaml decides everything but `RESUME_SETTABLE` keys (`--set game.max_rounds=N`
    plays on); when the run folder is visible here too (a shared mount), it is read to check the
    resources before submitting, else the job's driver checks them.
    """
    overrides = list(overrides or [])
    check_resume_keys(overrides)
    if not _shared(run_dir):
        raise PvgError(f"--resume {run_dir}: give the run folder's absolute path or URI on the cluster's storage "
                       "(as `pvg jobs list` shows it)")
    local = Path(run_dir) / "config.yaml"
    cfg = load_config(local, overrides) if not storage.is_uri(run_dir) and local.is_file() else None
    warnings = [] if cfg else [f"{local} is not visible here: the job's driver checks the run folder and its resources"]
    wd = (working_dir or project_root() or Path.cwd()).resolve()
    runtime_env = _runtime_env(wd, pip)
    name = storage.basename(run_dir)
    submission_id = f"pvg-{name}-resume-{time.strftime('%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    metadata = {"pvg": "train --resume", "pvg_run_name": name, "pvg_run_dir": run_dir}
    sets = [arg for o in overrides for arg in ("--set", o)]
    entrypoint = shlex.join([python, "-u", "-m", "pvg.cli", "train", "--resume", run_dir, *sets])
    return Submission(cfg, entrypoint, runtime_env, metadata, submission_id, run_dir, wd, warnings)


# --------------------------------------------------------------------------- will it fit?
def cluster_nodes(cluster: Cluster) -> list[dict]:
    """Alive nodes and their total resources, from the dashboard's state API (same server as the Jobs API)."""
    import requests

    r = requests.get(f"{cluster.url}/api/v0/nodes", params={"limit": 10000, "detail": "true"},
                     headers=cluster.headers, timeout=HTTP_TIMEOUT_S)
    r.raise_for_status()
    nodes = r.json()["data"]["result"]["result"]
    return [n for n in nodes if n.get("state") == "ALIVE"]


def check_fits(resources: ResourcesConfig, nodes: list[dict], url: str) -> None:
    """Raise a PvgError naming what the config asks for and what the cluster has, if it cannot be placed."""
    from pvg.game.placement import check_fits as fits

    fits(resources, [n.get("resources_total") or {} for n in nodes], f"the cluster at {url}")


# --------------------------------------------------------------------------- submit, follow, stop
def submit(cluster: Cluster, sub: Submission) -> str:
    with api_errors(cluster.url):
        return cluster.client.submit_job(entrypoint=sub.entrypoint, submission_id=sub.submission_id,
                                         runtime_env=sub.runtime_env, metadata=sub.metadata)


def status(cluster: Cluster, job_id: str):
    with api_errors(cluster.url):
        return cluster.client.get_job_info(job_id)


def list_jobs(cluster: Cluster) -> list:
    with api_errors(cluster.url):
        jobs = cluster.client.list_jobs()
    jobs = [j for j in jobs if j.submission_id]  # not the drivers of plain `ray.init()` scripts
    return sorted(jobs, key=lambda j: j.start_time or 0)


def logs(cluster: Cluster, job_id: str) -> str:
    with api_errors(cluster.url):
        return cluster.client.get_job_logs(job_id)


def follow(cluster: Cluster, job_id: str, write: Callable[[str], None], poll_s: float = 1.0):
    """Stream the job's logs until it ends; return its final JobDetails."""
    status(cluster, job_id)  # an unknown id fails here, with the usual message

    async def tail() -> None:
        async for chunk in cluster.client.tail_job_logs(job_id):
            write(chunk)

    with api_errors(cluster.url):
        asyncio.run(tail())
    while True:  # the log stream closes as the job ends; its status may lag a moment behind
        info = status(cluster, job_id)
        if str(info.status) in TERMINAL:
            return info
        time.sleep(poll_s)


def stop(cluster: Cluster, job_id: str, wait_s: float = 0) -> tuple[bool, object]:
    with api_errors(cluster.url):
        stopped = cluster.client.stop_job(job_id)
    deadline = time.time() + wait_s
    info = status(cluster, job_id)
    while str(info.status) not in TERMINAL and time.time() < deadline:
        time.sleep(1)
        info = status(cluster, job_id)
    return stopped, info
