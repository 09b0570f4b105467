"""Run folders on shared storage (`pvg.run.storage`): a `file://` URI, which takes the remote code path on
the local file system, and real `s3://` served by a local S3-compatible server (moto, a subprocess;
s3fs talks to it over HTTP as it would to AWS). Then the whole game on S3: killed mid-round,
resumed from the URI, read back with `pvg metrics` and `pvg export-verifier`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from pvg.run import storage
from pvg.cli import app
from pvg.errors import PvgError
from pvg.run.folder import RemoteLock, RunFolder, open_folder
from pvgrun import CONFIG, assert_user_error, env, overrides, pvg_cmd

BUCKET = "pvg-test"
WIDE = {"COLUMNS": "250"}  # rich folds a long URI in a narrow console
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_env(tmp_path_factory):
    """A local S3 server with one bucket; yields the environment that points s3fs (botocore) at it."""
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[test]' brings it)")
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]' brings it)")
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "w") as f:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=f, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None, log.read_text()
            assert time.time() < deadline, "the moto server did not start: " + log.read_text()
            time.sleep(0.2)
    values = {**S3_ENV, "AWS_ENDPOINT_URL_S3": endpoint}
    mp = pytest.MonkeyPatch()
    for k, v in values.items():
        mp.setenv(k, v)
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(BUCKET)
    yield values
    mp.undo()
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(params=["file", "s3"])
def remote(request, tmp_path):
    """A fresh remote folder: a file:// URI, or a prefix of the moto bucket."""
    if request.param == "file":
        return (tmp_path / "remote" / "run-a").as_uri()
    request.getfixturevalue("s3_env")
    return f"s3://{BUCKET}/{tmp_path.name}/run-a"


@pytest.fixture(autouse=True)
def mirrors(tmp_path, monkeypatch):
    monkeypatch.setenv("PVG_MIRROR_DIR", str(tmp_path / "mirrors"))


# ------------------------------------------------------------------------------------ the basics
def test_uri_helpers():
    assert storage.is_uri("s3://b/runs") and storage.is_uri("file:///tmp/x") and storage.is_uri("gs://b")
    assert not storage.is_uri("runs/tiny") and not storage.is_uri("/shared/runs") and not storage.is_uri("C:/x")
    assert storage.join("s3://b/runs/", "tiny", "/pool/") == "s3://b/runs/tiny/pool"
    assert storage.basename("s3://b/runs/tiny/") == "tiny"


def test_a_scheme_without_its_package_fails_naming_it():
    if _has("gcsfs"):
        pytest.skip("gcsfs is installed here")
    with pytest.raises(PvgError, match=r"gs://.*pvg\[gcs\].*gcsfs"):
        storage.filesystem("gs://bucket/runs")
    with pytest.raises(PvgError, match="cannot open"):
        storage.filesystem("nosuchscheme://bucket/runs")


def test_train_refuses_before_ray_a_uri_it_cannot_use(tmp_path, monkeypatch, s3_env):
    """No fsspec implementation, or a bucket that is not there: one line, before Ray or the warm start."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    base = ["train", str(CONFIG), "--set", f"run.cache_dir={tmp_path / 'cache'}"]
    t0 = time.time()
    if not _has("gcsfs"):
        assert_user_error(runner.invoke(app, base + ["--run-dir", "gs://bucket/runs/x"]), "gcsfs", "pip install")
    assert_user_error(runner.invoke(app, base + ["--run-dir", "s3://no-such-bucket-here/runs/x"]),
                      "cannot write to s3://no-such-bucket-here/runs/x", "credentials")
    assert_user_error(runner.invoke(app, ["train", "--resume", f"s3://{BUCKET}/nothing-here/x"]),
                      "is not a pvg run folder (no config.yaml)")
    assert time.time() - t0 < 60  # no warm start happened (it takes minutes); only a coarse bound
    assert not (tmp_path / "cache").exists()


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def test_jobs_take_a_uri_run_folder():
    """`pvg submit` refuses a relative run folder (it would die with the job); a URI is shared storage."""
    from pvg.cluster.jobs import plan_resume, plan_submission

    sub = plan_submission(CONFIG, ["run.out_dir=s3://bucket/runs"], name="r1")
    assert sub.run_dir == "s3://bucket/runs/r1" and sub.metadata["pvg_run_dir"] == "s3://bucket/runs/r1"
    assert plan_submission(CONFIG, [], run_dir="gs://b/runs/x").entrypoint.endswith("--run-dir gs://b/runs/x")
    resumed = plan_resume("s3://bucket/runs/r1")
    assert resumed.entrypoint.endswith("train --resume s3://bucket/runs/r1")
    assert resumed.submission_id.startswith("pvg-r1-resume-") and resumed.cfg is None


def test_probe_and_whole_objects(remote):
    storage.probe(remote)
    assert storage.list_files(remote) == {}, "the probe leaves nothing behind"
    assert storage.read_text(storage.join(remote, "a.txt")) is None
    storage.write_text(storage.join(remote, "sub/a.txt"), "hello")
    assert storage.read_text(storage.join(remote, "sub/a.txt")) == "hello"
    assert list(storage.list_files(remote)) == ["sub/a.txt"]
    storage.remove(storage.join(remote, "sub/a.txt"))
    storage.remove(storage.join(remote, "sub/a.txt"))  # gone already: no error
    assert storage.list_files(remote) == {}


def test_upload_tree_replaces_and_local_folder_cleans_up(remote, tmp_path):
    src = tmp_path / "ckpt"
    (src / "sub").mkdir(parents=True)
    (src / "model.safetensors").write_bytes(b"\0" * 1000)
    (src / "sub" / "extra.json").write_text("{}")
    target = storage.join(remote, "checkpoints/round-0/prover")
    storage.upload_tree(src, target)
    assert sorted(storage.list_files(target)) == ["model.safetensors", "sub/extra.json"]
    (src / "sub" / "extra.json").unlink()
    storage.upload_tree(src, target)  # a re-run phase: the old upload's extra file must not stay
    assert sorted(storage.list_files(target)) == ["model.safetensors"]
    with storage.local_folder(target) as local:
        assert (local / "model.safetensors").read_bytes() == b"\0" * 1000
        seen = local
    assert not seen.exists(), "the download is removed after use"
    with storage.local_folder(str(src)) as local:
        assert local == src, "a local path is used as it is"
    with pytest.raises(PvgError, match="missing or empty"):
        with storage.local_folder(storage.join(remote, "checkpoints/round-9/prover")):
            pass


# ------------------------------------------------------------------------------ mirrors, run folders
def test_run_folder_writes_through_and_readers_mirror_it(remote, tmp_path):
    mirror = storage.Mirror(remote, "run")
    mirror.reset()
    rf = RunFolder(mirror.root, mirror)
    guarded = []
    rf.guard = lambda: guarded.append(True)
    assert rf.location == remote and rf.path.name == "run-a" and rf.path.is_relative_to(tmp_path / "mirrors")
    assert rf.ckpt_target(0, "prover") == f"{remote}/checkpoints/round-0/prover"

    rf.write_text("config.yaml", "run:\n  name: run-a\n")
    rf.append_metrics([{"kind": "ppo", "round": 0, "step": 1}])
    rf.append_metrics([{"kind": "ppo", "round": 0, "step": 2}])
    assert storage.read_text(storage.join(remote, "metrics.jsonl")).count("\n") == 2, "re-uploaded whole"
    assert storage.read_text(storage.join(remote, "state.json")) is None
    rf.tb.mkdir()
    (rf.tb / "events.out.tfevents.1").write_bytes(b"x" * 10)
    rf.mark("initial")
    assert guarded == [True], "the lock is checked before a phase is recorded"
    assert json.loads(storage.read_text(storage.join(remote, "state.json")))["finished"] == ["initial"]
    assert storage.read_text(storage.join(remote, "tb/events.out.tfevents.1")) == "x" * 10
    rf.truncate_metrics(lambda r: r["step"] == 1)
    assert storage.read_text(storage.join(remote, "metrics.jsonl")).count("\n") == 1

    storage.write_text(storage.join(remote, "checkpoints/round-0/verifier/model.safetensors"), "w")
    reader = open_folder(remote)
    assert reader.path != rf.path, "a reader's mirror is never the live driver's"
    assert reader.finished() == ["initial"] and len(reader.read_metrics()) == 1
    assert not reader.checkpoints.exists() and not reader.tb.exists(), "checkpoints and tb only on demand"
    assert (reader.fetch_ckpt(0, "verifier") / "model.safetensors").read_text() == "w"

    # a second read downloads only what changed, and drops what is gone
    config_mtime = reader.config_path.stat().st_mtime_ns
    time.sleep(0.01)
    rf.mark("0/verifier")
    storage.remove(storage.join(remote, "checkpoints/round-0/verifier/model.safetensors"))
    reader = open_folder(remote)
    assert reader.finished() == ["initial", "0/verifier"]
    assert reader.config_path.stat().st_mtime_ns == config_mtime, "an unchanged file is not downloaded again"
    assert not (reader.fetch_ckpt(0, "verifier") / "model.safetensors").exists(), "gone from the remote, gone here"


def test_reading_a_uri_that_holds_nothing(remote):
    with pytest.raises(PvgError, match="does not exist"):
        open_folder(remote)
    result = CliRunner().invoke(app, ["metrics", remote])
    assert_user_error(result, "does not exist")


# ------------------------------------------------------------------------------------------- lock
def _write_lock(remote: str, **owner) -> None:
    storage.write_text(storage.join(remote, ".lock"), json.dumps(owner))


def test_remote_lock(remote):
    uri = storage.join(remote, ".lock")
    other = {"host": "some-other-host", "pid": 4242, "token": "theirs"}
    _write_lock(remote, **other, heartbeat=time.time() - 5)
    with pytest.raises(PvgError, match=r"locked by a run on host some-other-host \(pid 4242\).*delete .*\.lock"):
        RemoteLock(remote, stale_s=300).acquire()

    _write_lock(remote, **other, heartbeat=time.time() - 1000)  # its heartbeat stopped long ago: a dead run
    lock = RemoteLock(remote, stale_s=300)
    lock.acquire()
    try:
        assert json.loads(storage.read_text(uri))["token"] == lock.me["token"]
        lock.beat()
        _write_lock(remote, **other, heartbeat=time.time())  # taken over meanwhile (e.g. a forced resume)
        with pytest.raises(PvgError, match="lost the lock .* some-other-host"):
            lock.beat()
    finally:
        lock.release()
    assert json.loads(storage.read_text(uri))["token"] == "theirs", "release never deletes another run's lock"

    # this host: a live process holds it (refused), a dead one held it (taken over)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(remote, host=socket.gethostname(), pid=holder.pid, token="t", heartbeat=time.time())
        with pytest.raises(PvgError, match=f"in use by a live run \\(pid {holder.pid}"):
            RemoteLock(remote).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = RemoteLock(remote, stale_s=5)  # heartbeat every second
    lock.acquire()
    first = json.loads(storage.read_text(uri))["heartbeat"]
    time.sleep(2.5)
    assert json.loads(storage.read_text(uri))["heartbeat"] > first, "the heartbeat is refreshed while the run lives"
    lock.release()
    assert storage.read_text(uri) is None


# ------------------------------------------------------------------------------------- end to end
def _remote_state(fs, run: str) -> list[str]:
    try:
        return json.loads(fs.cat_file(f"{run}/state.json"))["finished"]
    except (FileNotFoundError, ValueError, KeyError):
        return []


def _remote_ppo_started(fs, run: str, round_: int) -> bool:
    try:
        text = fs.cat_file(f"{run}/metrics.jsonl").decode()
    except FileNotFoundError:
        return False
    return f'"kind": "ppo", "round": {round_},' in text


@pytest.mark.slow
def test_game_on_s3_killed_resumed_and_read(s3_env, finished_run, cache_dir, tmp_path):
    """`pvg train` with the run folder on S3, SIGKILLed mid-round, resumed from the URI: the remote folder
    has every file of a local run, and the same metrics and pool as the uninterrupted local run."""
    import fsspec
    import pyarrow.parquet as pq

    fs = fsspec.filesystem("s3")
    out = f"s3://{BUCKET}/e2e-{tmp_path.name}"
    uri = f"{out}/tiny-ci"
    key = uri.removeprefix("s3://")
    run_env = {**env(), **s3_env, "PVG_MIRROR_DIR": str(tmp_path / "mirrors")}
    cmd = pvg_cmd("train", str(CONFIG), *overrides(out, cache_dir))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=run_env,
                            start_new_session=True)
    deadline = time.time() + 600
    try:
        while not _remote_ppo_started(fs, key, 1):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have died on its own: show that failure
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = _remote_state(fs, key)
    assert "0/eval" in finished and "1/prover" not in finished
    assert fs.exists(f"{key}/.lock"), "a SIGKILLed run leaves its lock behind"

    proc = subprocess.run(pvg_cmd("train", "--resume", uri), capture_output=True, text=True, env=run_env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "stale lock" in proc.stderr and "is gone" in proc.stderr

    files = set(storage.list_files(uri))
    assert {"config.yaml", "state.json", "warmstart.json", "metrics.jsonl", "summary.json",
            "pool/initial.parquet"} <= files
    assert ".lock" not in files, "the lock is released when the run ends"
    assert not [f for f in files if ".pvg-probe-" in f or f.endswith((".tmp", ".partial"))]
    assert [f for f in files if f.startswith("tb/events.out.tfevents.")]
    rows = [json.loads(line) for line in fs.cat_file(f"{key}/metrics.jsonl").decode().splitlines()]
    local = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
    strip = lambda rs: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rs]  # noqa: E731
    assert strip(rows) == strip(local), "the resumed S3 run is the uninterrupted local run"
    rounds = [r["round"] for r in rows if r["kind"] == "round"]
    for k in rounds:
        for which in ("prover", "verifier"):
            assert {"config.json", "model.safetensors"} <= {f.rsplit("/", 1)[-1] for f in files
                                                            if f.startswith(f"checkpoints/round-{k}/{which}/")}
        assert f"pool/round-{k}.parquet" in files
    for f in sorted((finished_run / "pool").glob("*.parquet")):
        with fs.open(f"{key}/pool/{f.name}", "rb") as remote_file:
            assert pq.read_table(remote_file).equals(pq.read_table(f)), f.name

    # the readers take the URI: the dashboard, and an export that downloads only the one checkpoint
    runner = CliRunner()
    result = runner.invoke(app, ["metrics", uri, "--json"], env=WIDE)
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["run_dir"] == uri and view["status"]["state"] == "finished"
    assert [r["round"] for r in view["rounds"]] == rounds
    assert "through its local mirror" in " ".join(result.stderr.split())
    from pvg.export.hf import export_verifier

    meta = export_verifier(uri, tmp_path / "exported")
    assert meta["round"] == rounds[-1] and meta["run"]["path"] == uri
    assert (tmp_path / "exported" / "model.safetensors").is_file()
    mirrored = {p.parent.name for p in (tmp_path / "mirrors").rglob("model.safetensors")}
    assert mirrored == {"verifier"}, "only the exported checkpoint was downloaded"

    # an evaluation reads the URI's provers and stores its result back in the bucket, where a second
    # call (through the same mirror or any other) finds it
    args = ["eval", "similarity", uri, "--problems", "10"]
    first = runner.invoke(app, args, env=WIDE)
    assert first.exit_code == 0, first.output
    assert f"wrote {uri}/eval/prover_similarity.json" in " ".join(first.stderr.split())
    assert "eval/prover_similarity.json" in storage.list_files(uri)
    again = runner.invoke(app, args, env=WIDE)
    assert again.exit_code == 0 and f"reusing {uri}/eval/prover_similarity.json" in " ".join(again.stderr.split())
