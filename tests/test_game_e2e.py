"""End to end: `pvg train configs/tiny-ci.yaml` on a real local Ray, then kill -9 and resume.

These run the real CLI in subprocesses (real Ray, real transformers models, real Parquet), share
one warm-start cache, and compare a killed-and-resumed run with an uninterrupted one row by row.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pvg.config import load_config
from pvg.game.verifier_train import phase_steps
from pvgrun import CONFIG, env, overrides, pvg_cmd

ROUND_KEYS = [
    "round", "helpful_pass_rate", "sneaky_incorrect_rate", "verifier_auroc", "verifier_completeness",
    "verifier_soundness", "sneaky_fool_rate", "steps_to_exploit", "exploited", "kl_to_init",
    "helpful_mean_tokens", "sneaky_mean_tokens", "verifier_phase_s", "prover_phase_s",
]
PPO_KEYS = ["round", "step", "reward_helpful", "reward_sneaky", "kl_to_init", "entropy", "clipfrac", "approx_kl",
            "vf_loss", "pg_loss", "explained_variance", "window_sneaky_incorrect_rate",
            "window_sneaky_incorrect_mean_score", "window_helpful_correct_mean_score",
            "helpful_identical_groups", "sneaky_identical_groups", "window_exploited"]
pytestmark = pytest.mark.slow


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_run_folder_and_metrics_schema(finished_run: Path):
    run = finished_run
    for name in ("config.yaml", "state.json", "summary.json", "warmstart.json", "metrics.jsonl"):
        assert (run / name).is_file(), name
    assert not (run / ".lock").exists(), "the lock is released when the run ends"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stop_reason"]
    rows = read_metrics(run)
    rounds = [r for r in rows if r["kind"] == "round"]
    assert [r["round"] for r in rounds] == list(range(len(rounds))) and 1 <= len(rounds) <= 2
    cfg = load_config(run / "config.yaml")
    for r in rounds:
        missing = [k for k in ROUND_KEYS if k not in r]
        assert not missing, missing
        assert 0 <= r["helpful_pass_rate"] <= 1 and 0 <= r["sneaky_incorrect_rate"] <= 1
        assert isinstance(r["exploited"], bool)
        v = cfg.verifier
        assert r["verifier_steps"] == phase_steps(r["verifier_pairs"], v.train_steps, v.train_epochs, v.batch_pairs)
    ppo = [r for r in rows if r["kind"] == "ppo"]
    assert ppo, "per-update PPO rows are recorded"
    for r in ppo:
        assert not [k for k in PPO_KEYS if k not in r]
    # pool: the initial prover's samples, then one file a round, both roles
    pool = run / "pool"
    assert (pool / "initial.parquet").is_file()
    for r in rounds:
        table = pq.read_table(pool / f"round-{r['round']}.parquet")
        cols = set(table.column_names)
        assert {"problem_id", "round", "role", "text", "answer", "correct", "verifier_score", "phase"} <= cols
        assert set(table.column("role").to_pylist()) == {"helpful", "sneaky"}
        assert set(table.column("round").to_pylist()) == {r["round"]}
    # checkpoints load with plain transformers
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    k = rounds[-1]["round"]
    assert (run / f"checkpoints/round-{k}/prover/model.safetensors").is_file()
    AutoModelForCausalLM.from_pretrained(run / f"checkpoints/round-{k}/prover")
    AutoModelForSequenceClassification.from_pretrained(run / f"checkpoints/round-{k}/verifier")
    AutoTokenizer.from_pretrained(run / f"checkpoints/round-{k}/verifier")
    assert list((run / "tb").glob("events.out.tfevents.*")), "TensorBoard events are written"
    # TensorBoard, read back as TensorBoard reads it: one tag a metric, PPO on one step axis across rounds
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    tb.Reload()
    tags = tb.Tags()["scalars"]
    assert tags and all(t.split("/")[0] in ("round", "ppo") and t.count("/") == 1 for t in tags), tags
    assert not [t for t in tags if t.split("/")[1] in ("round", "step", "kind")], "an index plotted as a metric"
    for key in ("reward_helpful", "reward_sneaky", "kl_to_init"):
        events = tb.Scalars(f"ppo/{key}")  # a batch that exploited was not updated on: it has no kl_to_init
        logged = [(i + 1, r[key]) for i, r in enumerate(ppo) if r.get(key) is not None]
        assert [e.step for e in events] == [s for s, _ in logged], "one PPO curve over every round's steps"
        assert [e.value for e in events] == pytest.approx([v for _, v in logged], rel=1e-5, abs=1e-6)
    assert len({r["round"] for r in ppo}) == len(rounds) >= 2, "PPO rows of more than one round on that axis"
    aurocs = tb.Scalars("round/verifier_auroc")
    assert [e.step for e in aurocs] == [r["round"] for r in rounds]
    assert [e.value for e in aurocs] == pytest.approx([r["verifier_auroc"] for r in rounds], rel=1e-5)
    # what `pvg train` said: where the run is, first; at the end a short summary and what to run next
    said, logged = (run.parent / "train.stdout").read_text(), (run.parent / "train.stderr").read_text()
    lines = logged.splitlines()
    assert f"run folder: {run}" in lines, logged[:2000]
    assert not [line for line in lines[:lines.index(f"run folder: {run}")] if "Ray" in line], "before Ray's lines"
    assert f"stopped after {summary['rounds']} rounds: {summary['stop_reason']}" in said, said
    for command in (f"pvg metrics {run}", f"pvg report {run} -o report.html", f"pvg export-verifier {run} -o"):
        assert command in said, (command, said)
    assert "{" not in said, "no JSON blob: `pvg train --json` is the machine-readable summary"


def _without_timings(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]


def _state(run: Path) -> list[str]:
    try:
        return json.loads((run / "state.json").read_text())["finished"]
    except (OSError, json.JSONDecodeError, KeyError):
        return []


def _ppo_started(run: Path, round_: int) -> bool:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return False
    return any(f'"kind": "ppo", "round": {round_},' in line for line in lines)


def test_sigkill_mid_prover_phase_then_resume(finished_run: Path, tmp_path: Path, cache_dir: Path):
    out = tmp_path / "runs-b"
    run = out / "tiny-ci"
    proc = subprocess.Popen(pvg_cmd("train", str(CONFIG), *overrides(out, cache_dir)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env(), start_new_session=True)
    deadline = time.time() + 600
    try:
        # wait until round 1's prover phase has logged its first PPO update (the phase takes about a
        # second here), then kill the whole process tree with SIGKILL at once
        while not _ppo_started(run, 1):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have died on its own: show that failure
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = _state(run)
    assert "1/prover" not in finished, "killed in the middle of the prover phase"
    assert (run / ".lock").exists(), "a SIGKILLed run leaves its lock behind"
    before = read_metrics(run)

    proc = subprocess.run(pvg_cmd("train", "--resume", str(run)), capture_output=True, text=True, env=env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "stale lock" in proc.stderr
    after = read_metrics(run)
    # every row from before the kill is still there, and none is duplicated
    assert _without_timings(after[: len(before)]) == _without_timings(before)
    keys = [(r["kind"], r["round"], r.get("step")) for r in after]
    assert len(keys) == len(set(keys)), "no metrics row duplicated"
    # the resumed run is the uninterrupted run: same metrics, same pool
    assert _without_timings(after) == _without_timings(read_metrics(finished_run))
    for f in sorted((finished_run / "pool").glob("*.parquet")):
        assert pq.read_table(run / "pool" / f.name).equals(pq.read_table(f)), f.name


def test_sigterm_stops_cleanly(tmp_path: Path, cache_dir: Path):
    """`pvg jobs stop` and schedulers send SIGTERM: the run unwinds, releases its lock, says how to resume."""
    out = tmp_path / "runs-t"
    run = out / "tiny-ci"
    proc = subprocess.Popen(pvg_cmd("train", str(CONFIG), *overrides(out, cache_dir)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env(), start_new_session=True)
    deadline = time.time() + 600
    try:
        while not _ppo_started(run, 0):
            assert proc.poll() is None, "the run ended before it could be stopped"
            assert time.time() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, stdout[-2000:] + stderr[-4000:]
    assert f"continue with `pvg train --resume {run}`" in " ".join(stderr.split())
    assert "Traceback" not in stderr
    assert not (run / ".lock").exists(), "a stopped run releases its lock"
    assert "0/prover" not in _state(run)


def test_second_live_run_is_refused(finished_run: Path, tmp_path: Path):
    lock = finished_run / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename}))
        proc = subprocess.run(pvg_cmd("train", "--resume", str(finished_run)), capture_output=True, text=True,
                              env=env(), timeout=120)
        assert proc.returncode == 2
        assert "in use by a live run" in proc.stderr and "Traceback" not in proc.stderr
    finally:
        holder.kill()
        lock.unlink(missing_ok=True)


def test_new_run_refuses_existing_folder(finished_run: Path, cache_dir: Path):
    out = finished_run.parent
    proc = subprocess.run(pvg_cmd("train", str(CONFIG), *overrides(out, cache_dir)), capture_output=True, text=True,
                          env=env(), timeout=120)
    assert proc.returncode == 2 and "already exists" in proc.stderr


def test_resume_with_more_rounds_plays_on(finished_run: Path, tmp_path: Path, cache_dir: Path):
    """A game that ended at its round limit, resumed with `--set game.max_rounds=N`, plays on: the result is
    the game that had N rounds from the start. Settings that earlier rounds were made with are refused."""
    assert json.loads((finished_run / "summary.json").read_text())["rounds"] == 2, "the 2-round game to compare with"
    out = tmp_path / "runs-x"
    run = out / "tiny-ci"
    short = subprocess.run(pvg_cmd("train", str(CONFIG), *overrides(out, cache_dir), "--set", "game.max_rounds=1"),
                           capture_output=True, text=True, env=env(), timeout=900)
    assert short.returncode == 0, short.stdout[-3000:] + short.stderr[-6000:]
    assert json.loads((run / "summary.json").read_text())["stop_reason"] == "reached game.max_rounds=1"

    refused = subprocess.run(pvg_cmd("train", "--resume", str(run), "--set", "ppo.lr=0.5"), capture_output=True,
                             text=True, env=env(), timeout=120)
    assert refused.returncode == 2 and "cannot change ppo.lr" in " ".join(refused.stderr.split()), refused.stderr
    assert "Traceback" not in refused.stderr

    more = subprocess.run(pvg_cmd("train", "--resume", str(run), "--set", "game.max_rounds=2"), capture_output=True,
                          text=True, env=env(), timeout=900)
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-6000:]
    assert "game reopened" in more.stdout + more.stderr
    assert "max_rounds: 2" in (run / "config.yaml").read_text()
    assert _without_timings(read_metrics(run)) == _without_timings(read_metrics(finished_run))
    for f in sorted((finished_run / "pool").glob("*.parquet")):
        assert pq.read_table(run / "pool" / f.name).equals(pq.read_table(f)), f.name
    extended, whole = (json.loads((r / "summary.json").read_text()) for r in (run, finished_run))
    assert _without_timings([extended.pop("final")]) == _without_timings([whole.pop("final")]) and extended == whole

    fewer = subprocess.run(pvg_cmd("train", "--resume", str(run), "--set", "game.max_rounds=1"), capture_output=True,
                           text=True, env=env(), timeout=120)
    assert fewer.returncode == 2 and "below the 2 rounds" in " ".join(fewer.stderr.split()), fewer.stderr
