"""`pvg submit` and `pvg jobs` against a real two-node Ray cluster on loopback, with token auth on.

The cluster is ours alone: its own temp dir, free ports, its own token (never ~/.ray/auth_token),
and it is stopped by killing exactly the processes it started (every process in the sessions of
our two `ray start`s, plus job drivers whose RAY_ADDRESS points at our GCS port): `ray stop` would
stop every Ray on the machine. The head has 2 CPUs; a worker declares 1 CPU and 2 logical GPUs, so
placement spans nodes and a config asking for 8 GPUs is refused before any job is created.

The fast tests at the bottom check the submission plan and the resource check without a cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from pvgrun import CONFIG, REPO, env as base_env, overrides, pvg_cmd

RAY = str(Path(sys.executable).parent / "ray")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class LocalCluster:
    url: str
    env: dict  # for pvg commands: the token in RAY_AUTH_TOKEN, no RAY_ADDRESS


def _session_procs(sids: set[int], gcs_port: int) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) in sids:
                found.append(p)
            elif p.environ().get("RAY_ADDRESS", "").endswith(f":{gcs_port}"):  # a job driver (own session)
                found.append(p)
        except (psutil.Error, OSError):
            pass
    return found


def _kill(sids: set[int], gcs_port: int) -> None:
    procs = _session_procs(sids, gcs_port)
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=20)
    for p in alive + _session_procs(sids, gcs_port):
        try:
            p.kill()
        except psutil.Error:
            pass


@pytest.fixture(scope="module")
def ray_cluster():
    # Ray puts Unix sockets under the temp dir; keep its path short (pytest's tmp_path is too long).
    temp = Path(tempfile.mkdtemp(prefix="pvgray-", dir="/tmp"))
    token = secrets.token_hex(16)
    ray_env = base_env()
    for k in ("RAY_API_SERVER_ADDRESS", "PVG_JOBS_ADDRESS", "RAY_AUTH_TOKEN_PATH"):
        ray_env.pop(k, None)
    ray_env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_USAGE_STATS_ENABLED="0",
                   # a job's entrypoint runs `python`: this venv's, as on a cluster image with pvg installed
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    p = _free_ports(18)
    gcs_port, dash_port = p[0], p[1]
    common = ["--node-ip-address=127.0.0.1", f"--temp-dir={temp}", "--min-worker-port=0", "--max-worker-port=0",
              "--object-store-memory=100000000", "--disable-usage-stats"]
    head = [RAY, "start", "--head", f"--port={gcs_port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}",
            f"--ray-client-server-port={p[2]}", f"--dashboard-agent-listen-port={p[3]}",
            f"--dashboard-agent-grpc-port={p[4]}", f"--runtime-env-agent-port={p[5]}", f"--metrics-export-port={p[6]}",
            f"--node-manager-port={p[7]}", f"--object-manager-port={p[8]}", "--num-cpus=2", "--num-gpus=0", *common]
    worker = [RAY, "start", f"--address=127.0.0.1:{gcs_port}", f"--dashboard-agent-listen-port={p[10]}",
              f"--dashboard-agent-grpc-port={p[11]}", f"--runtime-env-agent-port={p[12]}",
              f"--metrics-export-port={p[13]}", f"--node-manager-port={p[14]}", f"--object-manager-port={p[15]}",
              "--num-cpus=1", "--num-gpus=2", *common]
    sids: set[int] = set()
    try:
        for cmd in (head, worker):
            # its own session: every daemon it leaves behind is in it, and only those
            proc = subprocess.Popen(cmd, env=ray_env, start_new_session=True, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            sids.add(proc.pid)
            output, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, output[-4000:]
        pvg_env = base_env()
        for k in ("RAY_API_SERVER_ADDRESS", "PVG_JOBS_ADDRESS", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
            pvg_env.pop(k, None)
        pvg_env.update(RAY_AUTH_TOKEN=token, COLUMNS="200")
        yield LocalCluster(f"http://127.0.0.1:{dash_port}", pvg_env)
    finally:
        _kill(sids, gcs_port)
        shutil.rmtree(temp, ignore_errors=True)


def pvg(cluster: LocalCluster, *args: str, env: dict | None = None, timeout: float = 120):
    return subprocess.run(pvg_cmd(*args), capture_output=True, text=True, env=env or cluster.env, timeout=timeout,
                          cwd=REPO)


@pytest.mark.slow
def test_submit_follow_and_list(ray_cluster, tmp_path, cache_dir):
    c, addr = ray_cluster, ["--address", ray_cluster.url]
    t0 = time.time()

    # More GPUs than the cluster has: refused before anything is created, naming asked and available.
    bad = pvg(c, "submit", str(CONFIG), *addr, *overrides(tmp_path, cache_dir),
              "--set", "resources.prover.gpus_per_actor=8")
    msg = " ".join(bad.stderr.split())
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "error:" in msg and "Traceback" not in msg
    assert "8 GPU in all but the cluster has 2" in msg and "GPU=8" in msg and "on 2 nodes" in msg, msg
    listed = pvg(c, "jobs", "list", "--json", *addr)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []

    # Token auth is on: a wrong token is one clear line, exit 2.
    wrong = pvg(c, "jobs", "list", *addr, env={**c.env, "RAY_AUTH_TOKEN": "not-the-token"})
    assert wrong.returncode == 2 and "refused the token" in wrong.stderr, wrong.stderr

    # The real thing: submit (returns at once), then follow to the end.
    # Two prover actors, one DeepSpeed group over gloo, placed on the worker's logical GPUs (half a CPU
    # each: the worker has one); the verifier on the head.
    # One round: what a job adds (shipping, placement, the driver on the cluster) shows in round 0; more
    # rounds are the resume tests' (tests/test_game_e2e.py).
    multi = ["--set", "resources.prover.actors=2", "--set", "resources.prover.gpus_per_actor=1",
             "--set", "resources.prover.cpus_per_actor=0.5", "--set", "game.max_rounds=1"]
    sub = pvg(c, "submit", str(CONFIG), *addr, *overrides(tmp_path, cache_dir), *multi, "--name", "jobs-e2e")
    assert sub.returncode == 0, sub.stdout + sub.stderr
    job_id = sub.stdout.split()[0]
    assert job_id.startswith("pvg-jobs-e2e-")
    assert f"pvg jobs logs {job_id} --follow --address {c.url}" in sub.stderr
    t_submit = time.time()
    followed = pvg(c, "jobs", "logs", job_id, "--follow", *addr, timeout=600)
    t_done = time.time()
    assert followed.returncode == 0, followed.stdout[-4000:] + followed.stderr[-2000:]
    assert "SUCCEEDED" in followed.stderr
    # Ray's own INFO lines ("Connected to Ray cluster") are kept off a run's output now; pvg's own say it ran
    for needle in ("run folder:", "prover: 2 actors, DeepSpeed ZeRO-2 over gloo on cpu, fp32",
                   "round 0:", "game over"):
        assert needle in followed.stdout, (needle, followed.stdout[-4000:])

    status = pvg(c, "jobs", "status", job_id, "--json", *addr)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    run = tmp_path / "jobs-e2e"
    assert info["status"] == "SUCCEEDED" and info["run_dir"] == str(run)

    # The run folder is complete, written by the job's actors on the cluster.
    for f in ("config.yaml", "summary.json", "state.json", "metrics.jsonl", "pool/initial.parquet",
              "pool/round-0.parquet"):
        assert (run / f).is_file(), f
    for role in ("prover", "verifier"):
        assert (run / f"checkpoints/round-0/{role}/model.safetensors").is_file()
    rounds = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "round"]
    assert [r["round"] for r in rounds] == [0]
    assert json.loads((run / "summary.json").read_text())["rounds"] == 1

    logs = pvg(c, "jobs", "logs", job_id, *addr)
    assert logs.returncode == 0 and "game over" in logs.stdout
    listed = pvg(c, "jobs", "list", "--json", *addr)
    assert [(j["job_id"], j["status"], j["run_dir"]) for j in json.loads(listed.stdout)] == \
        [(job_id, "SUCCEEDED", str(run))]
    table = pvg(c, "jobs", "list", *addr)
    assert job_id in table.stdout and "SUCCEEDED" in table.stdout

    # Resuming a finished run as a job: its driver reads the run folder and says the game is over.
    again = pvg(c, "submit", "--resume", str(run), *addr, "--follow", timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert "game already finished" in again.stdout + again.stderr
    print(f"\ncluster up + checks {t_submit - t0:.0f}s, job {t_done - t_submit:.0f}s, total {time.time() - t0:.0f}s")


# --------------------------------------------------------------------------- no cluster needed
def test_plan_ships_the_checkout_and_joins_the_cluster():
    from pvg.cluster.jobs import plan_submission

    sub = plan_submission(CONFIG, ["run.out_dir=/shared/runs"], name="r1")
    assert sub.working_dir == REPO
    assert sub.entrypoint == ("python -u -m pvg.cli train configs/tiny-ci.yaml --set run.out_dir=/shared/runs "
                              "--set run.name=r1")  # RAY_ADDRESS, set by Ray for the driver, makes it join
    assert sub.runtime_env["working_dir"] == str(REPO) and ".venv/" in sub.runtime_env["excludes"]
    assert "pip" not in sub.runtime_env and "py_modules" not in sub.runtime_env
    assert sub.run_dir == "/shared/runs/r1" and sub.metadata["pvg_run_dir"] == "/shared/runs/r1"
    assert any("cache_dir" in w for w in sub.warnings)
    piped = plan_submission(CONFIG, ["run.out_dir=/x"], run_dir="/shared/runs/here", pip=True)
    assert piped.entrypoint.endswith("--run-dir /shared/runs/here") and piped.run_dir == "/shared/runs/here"
    assert any(r.startswith("torch") for r in piped.runtime_env["pip"])
    assert not any(r.startswith("ray") for r in piped.runtime_env["pip"])


@pytest.mark.parametrize("args, needles", [
    ([], ["run.out_dir=runs is relative"]),
    (["--run-dir", "rel/dir"], ["--run-dir rel/dir", "absolute"]),
    (["--set", "ppo.lrr=1"], ["ppo.lrr", "unknown key"]),
    (["--set", "resources.prover.actors=3"], ["resources.prover.actors=3", "must divide the PPO batch"]),
])
def test_submit_refuses_bad_input_before_contacting_anyone(args, needles):
    proc = subprocess.run(pvg_cmd("submit", str(CONFIG), "--address", "http://127.0.0.1:1", *args),
                          capture_output=True, text=True, env={**base_env(), "COLUMNS": "200"}, cwd=REPO, timeout=120)
    msg = " ".join(proc.stderr.split())
    assert proc.returncode == 2, msg
    assert "Traceback" not in msg and "cannot reach" not in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_resume_plan(tmp_path):
    from pvg.errors import PvgError
    from pvg.cluster.jobs import plan_resume

    with pytest.raises(PvgError, match="absolute path"):
        plan_resume("runs/tiny")
    sub = plan_resume("/shared/runs/tiny-x")
    assert sub.entrypoint == "python -u -m pvg.cli train --resume /shared/runs/tiny-x"
    assert sub.cfg is None and sub.run_dir == "/shared/runs/tiny-x" and sub.submission_id.startswith("pvg-tiny-x-resume-")
    assert any("not visible here" in w for w in sub.warnings)
    run = tmp_path / "tiny-ci"
    run.mkdir()
    (run / "config.yaml").write_text(CONFIG.read_text())
    seen = plan_resume(str(run))  # a shared mount: the run's config is read and checked here
    assert seen.cfg is not None and seen.cfg.run.name == "tiny-ci" and not seen.warnings
    more = plan_resume(str(run), ["game.max_rounds=5"])  # play on: the one setting a resumed run may change
    assert more.cfg.game.max_rounds == 5 and more.entrypoint.endswith(f"--resume {run} --set game.max_rounds=5")
    with pytest.raises(PvgError, match="cannot change ppo.lr.*game.max_rounds"):
        plan_resume(str(run), ["ppo.lr=0.1"])
    dry = subprocess.run(pvg_cmd("submit", "--resume", str(run), "--dry-run"), capture_output=True, text=True,
                         env={**base_env(), "COLUMNS": "200"}, cwd=REPO, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["entrypoint"].endswith(f"train --resume {run}")
    both = subprocess.run(pvg_cmd("submit", str(CONFIG), "--resume", str(run), "--dry-run"), capture_output=True,
                          text=True, env={**base_env(), "COLUMNS": "200"}, cwd=REPO, timeout=120)
    assert both.returncode == 2 and "drop CONFIG" in both.stderr


def test_config_outside_the_shipped_folder(tmp_path):
    from pvg.errors import PvgError
    from pvg.cluster.jobs import plan_submission

    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.read_text())
    with pytest.raises(PvgError, match="outside the folder that is shipped"):
        plan_submission(cfg, ["run.out_dir=/x"])
    assert plan_submission(cfg, ["run.out_dir=/x"], working_dir=tmp_path).entrypoint.split()[5] == "c.yaml"
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "c.yaml").write_text(CONFIG.read_text())
    with pytest.raises(PvgError, match="not shipped"):
        plan_submission(tmp_path / "runs" / "c.yaml", ["run.out_dir=/x"], working_dir=tmp_path)


def test_check_fits_names_what_was_asked_and_what_exists():
    from pvg.config import load_config
    from pvg.errors import PvgError
    from pvg.cluster.jobs import check_fits

    nodes = [{"resources_total": {"CPU": 2.0}}, {"resources_total": {"CPU": 1.0, "GPU": 2.0}}]
    check_fits(load_config(CONFIG).resources, nodes, "http://h:8265")  # 1 + 1 CPU: fits
    check_fits(load_config(CONFIG, ["resources.prover.gpus_per_actor=2"]).resources, nodes, "u")
    for sets, needle in [
        (["resources.prover.gpus_per_actor=3"], "3 GPU in all but the cluster has 2"),
        (["resources.verifier.cpus_per_actor=3"], "4 CPU in all but the cluster has 3"),
        (["resources.prover.cpus_per_actor=2", "resources.prover.gpus_per_actor=1"],
         "resources.prover needs CPU=2, GPU=1 on one node"),
    ]:
        with pytest.raises(PvgError) as e:
            check_fits(load_config(CONFIG, sets).resources, nodes, "http://h:8265")
        assert needle in str(e.value) and "CPU=3, GPU=2 on 2 nodes" in str(e.value), str(e.value)


def test_address_and_token_resolution(monkeypatch, tmp_path):
    from pvg.errors import PvgError
    from pvg.cluster.jobs import resolve_address, resolve_token

    for k in ("PVG_JOBS_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(PvgError, match="--address"):
        resolve_address(None)
    monkeypatch.setenv("RAY_ADDRESS", "head:8265")
    assert resolve_address(None) == "http://head:8265"
    monkeypatch.setenv("PVG_JOBS_ADDRESS", "https://jobs.example/")
    assert resolve_address(None) == "https://jobs.example"
    assert resolve_address("10.0.0.1:8265") == "http://10.0.0.1:8265"
    with pytest.raises(PvgError, match="dashboard"):
        resolve_address("ray://head:10001")
    assert resolve_token(" abc ", "http://h:1") == ("abc", "--token")
    token_file = tmp_path / "tok"
    token_file.write_text("from-file\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
    assert resolve_token(None, "http://h:1") == ("from-file", str(token_file))
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    monkeypatch.setattr("pvg.cluster.jobs.DEFAULT_TOKEN_FILE", token_file)
    assert resolve_token(None, "http://10.1.2.3:8265") == (None, "")  # a local token never goes to another cluster
    assert resolve_token(None, "http://127.0.0.1:8265")[0] == "from-file"
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # ... unless asked to, as Ray's own clients do
    assert resolve_token(None, "http://10.1.2.3:8265")[0] == "from-file"
