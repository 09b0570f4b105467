"""Nothing lost, nothing hangs, no traceback: damaged run folders, refused overwrites, failed starts,
unreachable clusters, full and read-only file systems, and a local Ray that listens on loopback only.

The run folders here are made by hand with the real writers (RunFolder, pool.write_round, the resolved
config), so each test reads real files; the commands that refuse run before Ray starts and are fast.
The tests that need Ray start a real one (a subprocess, or in-process for the socket check).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pvg.cli import app
from pvg.config import load_config
from pvg.errors import PvgError, fault_error
from pvg.run.folder import RunFolder
from pvgrun import CONFIG, assert_user_error, env, pvg_cmd
from runkit import make_run, mute_server, snapshot


def lines(run: Path) -> list[str]:
    return (run / "metrics.jsonl").read_text().splitlines()


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, args):
    return runner.invoke(app, [str(a) for a in args])


# ------------------------------------------------------------------ class 1: damaged run folders
def test_resume_refuses_a_damaged_metrics_line_and_changes_nothing(runner, tmp_path):
    """The worst of the issue: resume rewrote metrics.jsonl down to the rows before a damaged line."""
    import ray

    run = make_run(tmp_path)
    text = lines(run)
    assert len(text) == 10
    text[3] = text[3][:12] + "\x00garbage"  # line 4: damaged in the middle of the file
    (run / "metrics.jsonl").write_text("\n".join(text) + "\n")
    before = snapshot(run)
    result = invoke(runner, ["train", "--resume", run])
    assert_user_error(result, str(run / "metrics.jsonl"), "line 4 is damaged", "nothing was changed",
                      "delete the damaged line", "measured again from its checkpoints")
    assert snapshot(run) == before, "a row that could not be read is never dropped, nor any other"
    assert not ray.is_initialized(), "refused before Ray starts"
    # the same damage through every writer of the file: refused, nothing changed
    rf = RunFolder(run)
    with pytest.raises(PvgError, match="line 4 is damaged"):
        rf.truncate_metrics(lambda r: True)
    with pytest.raises(PvgError, match="line 4 is damaged"):
        rf.check_readable()
    assert snapshot(run) == before


@pytest.mark.parametrize("damage, needle", [
    (lambda t: t[:4] + ["[1, 2]"] + t[4:], "a JSON value but not a row"),
    (lambda t: t[:4] + ['{"step": 3}'] + t[4:], "without a kind and a round"),
    (lambda t: t[:2] + ["{not json"] + t[2:], "not JSON"),
])
def test_every_kind_of_damaged_line_is_named(tmp_path, damage, needle):
    run = make_run(tmp_path)
    (run / "metrics.jsonl").write_text("\n".join(damage(lines(run))) + "\n")
    with pytest.raises(PvgError, match=needle):
        RunFolder(run).read_metrics()


def test_metrics_warns_about_a_damaged_line_and_shows_every_other_round(runner, tmp_path):
    run = make_run(tmp_path)
    text = lines(run)
    text[2] = "{torn"  # a ppo row of round 0: rounds 0 and 1 are both intact
    (run / "metrics.jsonl").write_text("\n".join(text) + "\n")
    result = runner.invoke(app, ["metrics", str(run), "--json"])
    assert result.exit_code == 0, result.output
    assert "line 3 is damaged" in " ".join(result.stderr.split()) and "Traceback" not in result.output
    assert [r["round"] for r in json.loads(result.stdout)["rounds"]] == [0, 1], "all intact rounds, not fewer"


def test_metrics_warns_about_a_finished_round_whose_row_is_gone(runner, tmp_path):
    run = make_run(tmp_path)
    (run / "metrics.jsonl").write_text("\n".join(t for t in lines(run) if '"kind": "round", "round": 0' not in t) + "\n")
    result = runner.invoke(app, ["metrics", str(run), "--json"])
    assert result.exit_code == 0, result.output
    msg = " ".join(result.stderr.split())
    assert "no row for round 0" in msg and "--resume" in msg, msg
    assert RunFolder(run).lost_rounds() == [0]


def test_a_torn_last_line_is_kept_aside_and_every_other_line_is_kept_byte_for_byte(tmp_path):
    run = make_run(tmp_path)
    rf = RunFolder(run)
    whole = (run / "metrics.jsonl").read_bytes()
    (run / "metrics.jsonl").write_bytes(whole + b'{"kind": "ppo", "round": 2, "st')  # killed while writing
    assert len(rf.read_metrics()) == 10, "a torn last line is no row yet, and no error"
    rf.check_readable()
    rf.truncate_metrics(lambda r: True)
    assert (run / "metrics.jsonl").read_bytes() == whole
    assert (run / "metrics.jsonl.torn").read_text() == '{"kind": "ppo", "round": 2, "st\n', "kept, not deleted"
    # a last row that lost only its newline is a row, and the next append does not glue onto it
    (run / "metrics.jsonl").write_bytes(whole.rstrip(b"\n"))
    rf.append_metrics([{"kind": "ppo", "round": 2, "step": 1}])
    assert len(rf.read_metrics()) == 11 and (run / "metrics.jsonl").read_bytes().startswith(whole)


def test_truncating_keeps_the_lines_as_written(tmp_path):
    run = make_run(tmp_path)
    rf = RunFolder(run)
    text = lines(run)
    text[0] = text[0].replace(", ", ",   ")  # hand-edited spacing: a row, kept as written
    (run / "metrics.jsonl").write_text("\n".join(text) + "\n")
    rf.truncate_metrics(lambda r: r["round"] == 0)
    assert lines(run) == text[:5]


@pytest.mark.parametrize("state, needle", [
    ('{"finished": ["initial", "0/veri', "not valid JSON"),
    ('{"finished": "initial"}', "no 'finished' list"),
    ("[]", "no 'finished' list"),
    ("", "not valid JSON"),
])
def test_a_damaged_state_json_is_a_clear_error_in_every_command(runner, tmp_path, state, needle):
    import ray

    run = make_run(tmp_path)
    (run / "state.json").write_text(state)
    before = snapshot(run)
    for args in (["train", "--resume", run], ["metrics", run], ["export-verifier", run, "-o", tmp_path / "v"],
                 ["eval", "separability", run], ["report", run, "-o", tmp_path / "r.html"]):
        assert_user_error(invoke(runner, args), str(run / "state.json"), needle, "will not guess")
    assert snapshot(run) == before and not ray.is_initialized()
    assert not (tmp_path / "v").exists() and not (tmp_path / "r.html").exists()


def test_a_truncated_pool_file_is_a_clear_error_in_every_command_that_reads_it(runner, tmp_path):
    import ray

    run = make_run(tmp_path)
    pool = run / "pool" / "round-0.parquet"
    pool.write_bytes(pool.read_bytes()[: pool.stat().st_size // 2])
    before = snapshot(run)
    for args in (["train", "--resume", run], ["eval", "separability", run]):
        assert_user_error(invoke(runner, args), str(pool), "is damaged", "nothing was changed", "Restore it")
    assert snapshot(run) == before and not ray.is_initialized()
    result = invoke(runner, ["metrics", run])  # does not read the pool
    assert result.exit_code == 0, result.output
    pool.unlink()
    assert_user_error(invoke(runner, ["train", "--resume", run]), str(pool), "is missing", "0/sample")


@pytest.mark.parametrize("damage", ["truncated weights", "no weights", "bad config.json"])
def test_a_damaged_checkpoint_is_a_clear_error_before_resuming(runner, tmp_path, damage):
    import ray

    run = make_run(tmp_path)
    ckpt = run / "checkpoints" / "round-1" / "prover"
    weights = ckpt / "model.safetensors"
    if damage == "truncated weights":  # a copy cut short, a disk that filled while saving
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "no weights":
        weights.unlink()
    else:
        (ckpt / "config.json").write_text("{")
    before = snapshot(run)
    assert_user_error(invoke(runner, ["train", "--resume", run]), f"checkpoint {ckpt} is damaged", "1/prover",
                      "nothing was changed", "Restore the folder")
    assert snapshot(run) == before and not ray.is_initialized()


def test_a_damaged_summary_is_a_clear_error_before_resuming(runner, tmp_path):
    run = make_run(tmp_path)
    (run / "summary.json").write_text('{"stop_reason": ')
    assert_user_error(invoke(runner, ["train", "--resume", run]), str(run / "summary.json"), "delete it")


# ------------------------------------------------------------------ class 2: one rule for every write
def test_every_command_that_writes_a_file_refuses_to_replace_one_without_force(runner, tmp_path):
    target = tmp_path / "existing.jsonl"
    target.write_text("keep me\n")
    assert_user_error(invoke(runner, ["data", "synth", "-n", "3", "-o", target]), "already exists", "--force")
    assert target.read_text() == "keep me\n"
    result = invoke(runner, ["data", "synth", "-n", "3", "-o", target, "--force"])
    assert result.exit_code == 0 and len(target.read_text().splitlines()) == 3
    run = make_run(tmp_path)
    for args, name in ((["report", run], "r.html"), (["plot", run], "p.png")):
        out = tmp_path / name
        out.write_text("keep me")
        assert_user_error(invoke(runner, [*args, "-o", out]), str(out), "already exists", "--force")
        assert out.read_text() == "keep me"
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"question": "q", "solution": "s"}) + "\n")
    assert_user_error(invoke(runner, ["score", "--verifier", tmp_path / "nope", "-i", inputs, "-o", target]),
                      "already exists", "--force")
    assert_user_error(invoke(runner, ["eval", "human-export", run, "-o", target]), "already exists", "--force")
    assert target.read_text().count("\n") == 3


# ------------------------------------------------------------------ class 6: failed starts
def _dead_start(root: Path) -> Path:
    """What a `pvg train` that failed after Ray started left behind: config.yaml, an empty metrics.jsonl,
    a lock whose process is gone, an empty TensorBoard folder."""
    run = root / "tiny-ci"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(load_config(CONFIG).to_yaml())
    (run / "metrics.jsonl").write_text("")
    (run / ".lock").write_text(json.dumps({"pid": 2 ** 22 + 7, "host": os.uname().nodename}))
    (run / "tb").mkdir()
    return run


def test_a_folder_with_no_finished_phase_is_not_a_run(runner, tmp_path):
    dead = _dead_start(tmp_path)
    assert RunFolder(dead).failed_start()
    made = make_run(tmp_path / "real")
    assert not RunFolder(made).failed_start()
    (dead / "notes.txt").write_text("mine")  # something pvg did not write: not ours to take over
    assert not RunFolder(dead).failed_start()
    (dead / "notes.txt").unlink()
    (dead / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": os.uname().nodename}))
    assert not RunFolder(dead).failed_start(), "a live process holds it"


def test_a_refused_start_writes_nothing_and_a_dead_start_does_not_block_the_next(runner, tmp_path):
    import ray

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run: {{name: tiny-ci, out_dir: {tmp_path}, cache_dir: {tmp_path / 'cache'}}}\n"
                   "data: {num_problems: 10}\n")
    result = invoke(runner, ["train", cfg])
    assert_user_error(result, "side has", "raise data.num_problems")
    assert not (tmp_path / "tiny-ci").exists() and not ray.is_initialized(), "checked before anything is written"
    dead = _dead_start(tmp_path)
    result = invoke(runner, ["train", cfg])  # the dead start is not "already exists; resume it"
    assert_user_error(result, "side has")
    assert "already exists" not in result.stderr
    real = make_run(tmp_path, "real")
    cfg.write_text(cfg.read_text().replace("name: tiny-ci", "name: real"))
    assert_user_error(invoke(runner, ["train", cfg]), "already exists", "--resume")
    assert (dead / "config.yaml").is_file() and (real / "state.json").is_file()


# ------------------------------------------------------------------ class 3 and 7: bounded waits, clean stderr
def test_an_address_with_nothing_listening_fails_in_seconds_and_names_it(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run: {{out_dir: {tmp_path / 'runs'}, cache_dir: {tmp_path / 'cache'}}}\n")
    t0 = time.time()
    proc = subprocess.run(pvg_cmd("train", str(cfg), "--address", "127.0.0.1:1"), capture_output=True, text=True,
                          env=env(), timeout=120)
    assert time.time() - t0 < 60
    assert proc.returncode == 2, proc.stderr[-3000:]
    msg = " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr and "cannot reach a Ray cluster at 127.0.0.1:1" in msg, msg
    assert "ray start --head" in msg and "RAY_ADDRESS" in msg
    assert not (tmp_path / "runs").exists()


def test_a_port_that_accepts_but_is_no_ray_fails_in_seconds_and_names_it(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run: {{out_dir: {tmp_path / 'runs'}, cache_dir: {tmp_path / 'cache'}}}\n")
    with mute_server() as port:
        t0 = time.time()
        proc = subprocess.run(pvg_cmd("train", str(cfg), "--address", f"127.0.0.1:{port}"), capture_output=True,
                              text=True, env=env(), timeout=120)
    assert time.time() - t0 < 90  # Ray's own wait on such a port ran past 200 s
    assert proc.returncode == 2, proc.stderr[-3000:]
    msg = " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr and f"127.0.0.1:{port} accepts connections but is no Ray GCS" in msg, msg
    assert not (tmp_path / "runs").exists()


def test_a_jobs_api_that_never_answers_is_a_bounded_error(runner, monkeypatch):
    from pvg.cluster import jobs

    monkeypatch.setattr(jobs, "HTTP_TIMEOUT_S", (2.0, 2.0))
    for name in ("PVG_JOBS_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    with mute_server() as port:
        t0 = time.time()
        result = invoke(runner, ["jobs", "list", "--address", f"http://127.0.0.1:{port}"])
    assert time.time() - t0 < 30  # without a timeout, Ray's client waited for good
    assert result.exit_code == 2, result.output
    assert f"http://127.0.0.1:{port} accepted the connection but sent no answer within 2s" in " ".join(
        result.output.split())


def test_a_failure_after_ray_starts_keeps_ray_log_lines_off_stderr(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run: {{out_dir: {tmp_path / 'runs'}, cache_dir: {tmp_path / 'cache'}}}\n"
                   "resources: {prover: {actors: 2, cpus_per_actor: 64}}\n")
    proc = subprocess.run(pvg_cmd("train", str(cfg)), capture_output=True, text=True, env=env(), timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert err[0].startswith("run folder:"), err
    assert " ".join(err).count("error:") == 1 and "cannot place this config" in " ".join(err)
    ray_lines = [line for line in err if " INFO " in line or " WARNING " in line or "worker.py" in line]
    assert not ray_lines, ray_lines


# ------------------------------------------------------------------ class 4: full and read-only file systems
@contextlib.contextmanager
def small_fs(path: Path, size: str = "64k", ro: bool = False):
    """A tiny tmpfs at `path` (root and a mountable tmpfs only, else the test is skipped)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_a_full_disk_is_a_clear_error_and_leaves_no_partial_file(runner, tmp_path):
    run = make_run(tmp_path)
    with small_fs(tmp_path / "full") as full:
        result = invoke(runner, ["data", "synth", "-n", "2000", "-o", full / "p.jsonl"])
        assert_user_error(result, "cannot write", "No space left on device", "free some space")
        assert list(full.iterdir()) == [], "no partial file, no temporary file"
        (full / "filler").write_bytes(b"x" * (60 * 1024))
        assert_user_error(invoke(runner, ["report", run, "-o", full / "r.html", "--examples", "1"]),
                          "No space left on device")
        assert_user_error(invoke(runner, ["plot", run, "-o", full / "p.png"]), "No space left on device")
        assert sorted(p.name for p in full.iterdir()) == ["filler"]


def test_exports_and_scores_onto_a_full_disk_are_clear_errors_and_leave_nothing(runner, tmp_path):
    """The commands that write models and scores, end to end onto a real full file system: one line,
    exit 2, and no folder or file left half-written (real checkpoints, real safetensors)."""
    run = make_run(tmp_path)
    verifier = tmp_path / "verifier"
    assert invoke(runner, ["export-verifier", run, "-o", verifier]).exit_code == 0
    solutions = tmp_path / "s.jsonl"
    solutions.write_text("".join(json.dumps({"question": f"q{i}", "solution": f"step\n#### {i}"}) + "\n"
                                 for i in range(2000)))
    with small_fs(tmp_path / "full", size="64k") as full:
        with contextlib.suppress(OSError), open(full / "filler", "wb", buffering=0) as f:
            while True:  # every byte taken: nothing a command starts can be written
                f.write(b"x" * 1024)
        for args in (["export-verifier", run, "-o", full / "v"], ["export-prover", run, "-o", full / "p"]):
            assert_user_error(invoke(runner, args), "No space left on device")
            assert sorted(p.name for p in full.iterdir()) == ["filler"], args
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"run: {{out_dir: {full / 'runs'}, cache_dir: {tmp_path / 'cache'}}}\n")
        result = invoke(runner, ["train", cfg])  # says where its run folder is first, then the error
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: cannot write") and "config.yaml: No space left on device" in last, last
        assert not list((full / "runs").rglob("*.tmp")) if (full / "runs").exists() else True
        shutil.rmtree(full / "runs", ignore_errors=True)
        result = invoke(runner, ["score", "--verifier", verifier, "-i", solutions, "-o", full / "scores.jsonl"])
        last = result.stderr.strip().splitlines()[-1]  # after its progress lines
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert last.startswith("error: cannot write") and "No space left on device" in last, last
        assert sorted(p.name for p in full.iterdir()) == ["filler"]


def test_a_read_only_file_system_is_a_clear_error(runner, tmp_path):
    with small_fs(tmp_path / "ro", ro=True) as ro:
        assert_user_error(invoke(runner, ["data", "synth", "-n", "3", "-o", ro / "p.jsonl"]), "read-only")


def test_a_write_fault_injected_at_the_write_and_a_library_carrying_an_os_error(runner, tmp_path, monkeypatch):
    import errno

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.jsonl.tmp"))

    monkeypatch.setattr("pvg.data.problems.json.dumps", full)
    assert_user_error(invoke(runner, ["data", "synth", "-n", "3", "-o", tmp_path / "x.jsonl"]),
                      "No space left on device", "free some space")
    assert not list(tmp_path.glob("x.jsonl*"))

    class SafetensorError(Exception):  # safetensors' own error type, as save_file raises it
        pass

    e = fault_error(SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                                    'message: "No space left on device" })'))
    assert e is not None and "No space left on device" in str(e)
    e = fault_error(SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"))
    assert e is not None and "No space left on device" in str(e)
    assert fault_error(ValueError("a bug")) is None and fault_error(OSError(errno.ENOENT, "x")) is None


# ------------------------------------------------------------------ class 8: a local Ray listens on loopback only
def test_a_local_ray_listens_on_loopback_only():
    import ipaddress

    import psutil
    import ray

    from pvg.game.orchestrator import start_ray

    assert not ray.is_initialized()
    # a cluster the machine's last `ray start` recorded and that is gone (here: a port that never
    # answers): a local game starts a Ray of its own instead of joining it and waiting for good
    bootstrap = Path(ray._private.utils.get_ray_address_file(None))  # /tmp/ray/ray_current_cluster
    saved = bootstrap.read_bytes() if bootstrap.exists() else None
    with mute_server() as port:
        bootstrap.parent.mkdir(parents=True, exist_ok=True)
        bootstrap.write_text(f"127.0.0.1:{port}")
        try:
            start_ray(None, num_cpus=1)
        finally:
            if saved is None:
                bootstrap.unlink(missing_ok=True)
            else:
                bootstrap.write_bytes(saved)
    try:
        assert ray._private.worker._global_node.gcs_address.rpartition(":")[2] != str(port)
        @ray.remote
        def ping():
            return os.getpid()

        ray.get(ping.remote())  # a worker is up, with its own server
        session = ray._private.worker._global_node.get_session_dir_path()
        roots = [psutil.Process()] + [p for p in psutil.process_iter(["cmdline"])
                                      if any(session in c for c in (p.info["cmdline"] or []))]
        procs = {p.pid: p for r in roots for p in [r, *r.children(recursive=True)]}
        listening = []
        for p in procs.values():
            with contextlib.suppress(psutil.Error):
                listening += [(p.pid, c.laddr.ip, c.laddr.port) for c in p.net_connections(kind="inet")
                              if c.status == psutil.CONN_LISTEN]
        assert len(listening) >= 3, listening  # GCS, raylet, a worker at least
        exposed = [x for x in listening if not ipaddress.ip_address(x[1].removeprefix("::ffff:")).is_loopback]
        assert not exposed, f"listening beyond loopback: {exposed}"
    finally:
        ray.shutdown()
    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") is None, "the switch is only set while Ray starts"


# ------------------------------------------------------------------ the data-loss scenario on a real run
def test_resume_after_a_damaged_line_loses_nothing_and_measures_a_deleted_round_again(finished_run, tmp_path):
    """On a real finished run: a damaged round row is refused (the file untouched); once the user deletes
    the line as told, the resume measures that round again from its checkpoints and ends as before."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run, ignore=shutil.ignore_patterns(".lock"))
    text = lines(run)
    original = [json.loads(t) for t in text]
    i = next(n for n, r in enumerate(original) if r["kind"] == "round" and r["round"] == 0)
    damaged = text[:i] + [text[i][: len(text[i]) // 2]] + text[i + 1:]
    (run / "metrics.jsonl").write_text("\n".join(damaged) + "\n")
    before = (run / "metrics.jsonl").read_bytes()
    proc = subprocess.run(pvg_cmd("train", "--resume", str(run)), capture_output=True, text=True, env=env(), timeout=600)
    assert proc.returncode == 2 and f"line {i + 1} is damaged" in " ".join(proc.stderr.split()), proc.stderr[-3000:]
    assert (run / "metrics.jsonl").read_bytes() == before and "Traceback" not in proc.stderr
    (run / "metrics.jsonl").write_text("\n".join(text[:i] + text[i + 1:]) + "\n")  # the user deletes it
    proc = subprocess.run(pvg_cmd("train", "--resume", str(run)), capture_output=True, text=True, env=env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "measuring round 0 again" in " ".join(proc.stderr.split())
    after = [json.loads(t) for t in lines(run)]
    assert len(after) == len(original), "every row back, none duplicated"
    timing = ("verifier_phase_s", "prover_phase_s", "sample_s", "update_s", "sample_tokens_per_s")
    key = lambda r: (r["kind"], r["round"], r.get("step"))  # noqa: E731
    strip = lambda r: {k: v for k, v in r.items() if k not in timing}  # noqa: E731
    assert sorted(map(key, after)) == sorted(map(key, original))
    assert strip(next(r for r in after if key(r) == ("round", 0, None))) == strip(original[i]), "measured the same"
    assert json.loads((run / "summary.json").read_text())["stop_reason"] == \
        json.loads((finished_run / "summary.json").read_text())["stop_reason"]
