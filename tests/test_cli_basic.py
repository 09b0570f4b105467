import json

import pytest
import yaml
from typer.testing import CliRunner

from pvg.cli import app
from pvg.data.problems import load_jsonl

# A fixed width makes rich's rendering independent of the terminal pytest runs in.
WIDE = {"COLUMNS": "200"}
NARROW = {"COLUMNS": "80"}


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths keep messages short and files inside tmp_path
    return CliRunner()


def invoke(runner, args, env=WIDE):
    return runner.invoke(app, args, env=env)


def assert_user_error(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    msg = " ".join(result.stderr.split())
    assert msg.startswith("error:"), msg
    for n in needles:
        assert n in msg, (n, msg)


def test_config_show_with_override(runner, tmp_path):
    (tmp_path / "c.yaml").write_text("ppo:\n  lr: 0.01\n  epochs: 5\nrun:\n  name: shown\n")
    result = invoke(runner, ["config", "show", "c.yaml", "--set", "ppo.epochs=3", "--set", "ppo.lr=1e-4"])
    assert result.exit_code == 0, result.output
    tree = yaml.safe_load(result.stdout)
    assert tree["ppo"]["epochs"] == 3
    assert tree["ppo"]["lr"] == pytest.approx(1e-4)
    assert tree["run"]["name"] == "shown"
    assert tree["data"]["source"] == "synthetic"  # defaults are filled in
    assert set(tree) >= {"run", "data", "prover", "verifier", "ppo", "game"}


@pytest.mark.parametrize(
    "text, args, needles",
    [
        ("ppo:\n  lrr: 1\n", [], ["c.yaml", "ppo.lrr", "unknown key", "lr"]),
        ("ppo:\n  reward: foo\n", [], ["c.yaml", "ppo.reward", "goodhart"]),
        ("ppo: [unclosed\n", [], ["c.yaml", "not valid YAML"]),
        ("- a\n", [], ["c.yaml", "mapping"]),
        ("{}\n", ["--set", "ppo.epochs=many"], ["ppo.epochs", "integer"]),
        ("{}\n", ["--set", "nope"], ["dotted.key=value"]),
    ],
)
def test_config_show_bad_config(runner, tmp_path, text, args, needles):
    (tmp_path / "c.yaml").write_text(text)
    result = invoke(runner, ["config", "show", "c.yaml", *args])
    assert_user_error(result, *needles)


def test_config_show_missing_file_is_one_line(runner):
    result = invoke(runner, ["config", "show", "missing.yaml"], env=NARROW)
    assert_user_error(result, "missing.yaml", "not found")
    assert len(result.stderr.strip().splitlines()) == 1


def test_long_error_stays_one_line(runner, tmp_path):
    (tmp_path / "c.yaml").write_text("{}\n")
    result = invoke(runner, ["config", "show", "c.yaml", "--set", "ppo.lrr=1"], env=NARROW)
    assert_user_error(result, "ppo.lrr", "allowed here")
    assert len(result.stderr.strip().splitlines()) == 1


def test_debug_flag_shows_traceback(runner):
    result = invoke(runner, ["--debug", "config", "show", "missing.yaml"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr


def test_data_synth_writes_jsonl(runner, tmp_path):
    result = invoke(runner, ["data", "synth", "-n", "20", "-o", "tmp/x.jsonl", "--seed", "3"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "tmp" / "x.jsonl"
    lines = out.read_text().splitlines()
    assert len(lines) == 20
    assert all(json.loads(line)["flawed"] for line in lines)
    ps = load_jsonl(out)
    assert len(ps) == 20 and len({p.id for p in ps}) == 20
    assert all(2 <= p.difficulty.steps <= 6 for p in ps)
    assert "20" in result.stderr
    # same seed, same file
    assert invoke(runner, ["data", "synth", "-n", "20", "-o", "tmp/y.jsonl", "--seed", "3"]).exit_code == 0
    assert (tmp_path / "tmp" / "y.jsonl").read_text() == out.read_text()


def test_data_synth_step_options(runner, tmp_path):
    result = invoke(runner, ["data", "synth", "-n", "10", "-o", "s.jsonl", "--min-steps", "3", "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    assert {p.difficulty.steps for p in load_jsonl(tmp_path / "s.jsonl")} == {3}


def test_data_synth_min_above_max(runner, tmp_path):
    result = invoke(runner, ["data", "synth", "-n", "5", "-o", "x.jsonl", "--min-steps", "5", "--max-steps", "3"])
    assert_user_error(result, "--min-steps", "--max-steps")
    assert not (tmp_path / "x.jsonl").exists()


def test_data_synth_output_is_directory(runner, tmp_path):
    (tmp_path / "d").mkdir()
    result = invoke(runner, ["data", "synth", "-n", "5", "-o", "d"])
    assert_user_error(result, "directory")


def test_data_preview(runner, tmp_path):
    (tmp_path / "p.yaml").write_text("data:\n  num_problems: 30\n  max_steps: 3\n")
    result = invoke(runner, ["data", "preview", "p.yaml", "-n", "2"])
    assert result.exit_code == 0, result.output
    assert "synthetic" in result.stdout
    assert "reference" in result.stdout
    assert "flawed" in result.stdout
    assert "####" in result.stdout
    assert result.stdout.count("reference") == 2


def test_data_preview_bad_config(runner, tmp_path):
    (tmp_path / "p.yaml").write_text("data:\n  num_problems: 30\n")
    result = invoke(runner, ["data", "preview", "p.yaml", "--set", "data.min_steps=5", "--set", "data.max_steps=3"])
    assert_user_error(result, "min_steps", "max_steps")
    result = invoke(runner, ["data", "preview", "p.yaml", "--set", "data.source=jsonl", "--set", "data.path=none.jsonl"])
    assert_user_error(result, "none.jsonl", "not found")


def test_data_preview_shows_brackets_verbatim(runner, tmp_path):
    row = {"question": "Tom has [x] 3 apples. How many?", "answer": "3 apples [b]\n#### 3"}
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "j.yaml").write_text(
        "data:\n  source: jsonl\n  path: m.jsonl\n  split: {prover: 0.98, verifier: 0.01}\n"
    )
    result = invoke(runner, ["data", "preview", "j.yaml"])
    assert result.exit_code == 0, result.output
    assert "[x]" in result.stdout and "[b]" in result.stdout


def test_train_rejects_unplaceable_config_before_any_work(tmp_path):
    """More CPUs than the (local) cluster has is refused at once, before the warm start, leaving no
    run folder and no Ray behind."""
    import ray

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run: {{out_dir: {tmp_path / 'runs'}, cache_dir: {tmp_path / 'cache'}}}\n"
                   "resources: {prover: {actors: 2, cpus_per_actor: 64}}\n")
    result = CliRunner().invoke(app, ["train", str(cfg)])
    assert result.exit_code == 2, result.output
    msg = " ".join(result.stderr.split())
    assert "cannot place this config" in msg and "prover 2 x {CPU=64}" in msg, msg
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()
    assert not ray.is_initialized()


def test_config_show_doc(runner, tmp_path):
    """`--doc`: one unwrapped line per leaf key (even 80 columns wide), its resolved value, its description."""
    from pvg.config import PvgConfig, describe

    (tmp_path / "c.yaml").write_text("run:\n  name: shown\nppo:\n  epochs: 5\n")
    result = invoke(runner, ["config", "show", "c.yaml", "--doc", "--set", "ppo.lr=0.25", "--set", "data.path=null"],
                    env=NARROW)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    fields = PvgConfig.model_fields
    for key, value in [("run.name", "shown"), ("ppo.epochs", "5"), ("ppo.lr", "0.25"), ("data.path", "null"),
                       ("resources.prover.actors", "1")]:
        section, *_, leaf = key.split(".")
        model = fields[section].annotation
        if key.count(".") == 2:
            model = model.model_fields[key.split(".")[1]].annotation
        description = model.model_fields[leaf].description
        assert lines[key].split()[1] == value, lines[key]
        assert lines[key].rstrip().endswith(description), (lines[key], description)  # whole, on one line
    keys = [k for k, _, _ in describe(PvgConfig())]
    assert [line.split()[0] for line in result.stdout.splitlines()] == keys  # every key once, nothing wrapped
    assert "ppo.reward" in lines and "deepspeed.zero_stage" in lines
    plain = invoke(runner, ["config", "show", "c.yaml"])
    assert yaml.safe_load(plain.stdout)["ppo"]["epochs"] == 5  # without --doc: the YAML, as before


# ----------------------------------------------------------------------------------------- output a person can use
def test_flags_show_no_value_in_help(runner):
    """A flag takes no value: typer's rich help would print `--debug <bool>`; pvg's shows none."""
    for args in (["--help"], ["warmstart", "--help"], ["train", "--help"], ["jobs", "list", "--help"]):
        result = invoke(runner, args)
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output, (args, result.output)
    top = invoke(runner, ["--help"]).output
    assert "--debug" in top and "Show tracebacks" in top
    assert "--set" in invoke(runner, ["warmstart", "--help"]).output
    assert "<list" not in invoke(runner, ["warmstart", "--help"]).output, "--set shows KEY=VALUE"
    assert "<str>" in invoke(runner, ["jobs", "list", "--help"]).output, "an option with a value still shows it"


def test_output_in_a_pipe_is_not_wrapped(tmp_path):
    """Logs, `pvg jobs logs` and pipes are no terminal: rich would wrap them at 80 columns."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TERM")}
    deep = tmp_path / ("a-long-folder-name-" * 6) / "problems.jsonl"
    deep.parent.mkdir()
    name = "run-" + "x" * 150
    (tmp_path / "c.yaml").write_text(f"run:\n  name: {name}\n")
    synth = subprocess.run([sys.executable, "-m", "pvg.cli", "data", "synth", "-n", "2", "-o", str(deep)],
                           capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert synth.returncode == 0, synth.stderr
    assert f"wrote 2 problems to {deep}" in synth.stderr.splitlines(), synth.stderr  # stderr: one line
    shown = subprocess.run([sys.executable, "-m", "pvg.cli", "config", "show", str(tmp_path / "c.yaml")],
                           capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert shown.returncode == 0, shown.stderr
    assert f"  name: {name}" in shown.stdout.splitlines(), shown.stdout  # stdout: one line
    assert max(len(line) for line in shown.stdout.splitlines()) < 200, "no padding to the wide width"


class _FakeRun:
    def __init__(self, location: str):
        self.location = location


def _fake_orchestrator(summary: dict, location: str):
    class FakeOrchestrator:
        def __init__(self, cfg, run_dir, address=None):
            self.rf = _FakeRun(location)

        def run(self):
            return summary

    return FakeOrchestrator


SUMMARY = {"stop_reason": "reached game.max_rounds=2", "rounds": 2, "last_round": 1,
           "final": {"round": 1, "helpful_pass_rate": 0.75, "sneaky_incorrect_rate": 1.0, "verifier_auroc": 0.8123,
                     "sneaky_fool_rate": 0.125, "steps_to_exploit": None, "exploited": False, "kl_to_init": 0.95}}


def test_train_ends_with_a_summary_and_what_to_run_next(runner, tmp_path, monkeypatch):
    import pvg.game.orchestrator as orchestrator

    monkeypatch.setattr(orchestrator, "Orchestrator", _fake_orchestrator(SUMMARY, "runs/my run"))
    (tmp_path / "c.yaml").write_text("run: {name: x}\n")
    result = invoke(runner, ["train", "c.yaml"])
    assert result.exit_code == 0, result.output
    said = result.stdout
    assert "stopped after 2 rounds: reached game.max_rounds=2" in said
    assert "helpful pass 75% · sneaky incorrect 100% · AUROC 0.812 · fool rate 12% · no exploit · KL 0.95" in said
    for command in ("pvg metrics 'runs/my run'", "pvg report 'runs/my run' -o report.html",
                    "pvg export-verifier 'runs/my run' -o verifier"):
        assert command in said, (command, said)
    assert "{" not in said, "a person's summary, not a JSON blob"

    scripted = invoke(runner, ["train", "c.yaml", "--json"])
    assert scripted.exit_code == 0, scripted.output
    assert json.loads(scripted.stdout) == SUMMARY


def test_a_stopped_job_says_pvg_submit_resume(monkeypatch):
    """In a job's log (Ray hands the driver its metadata) and after `pvg jobs stop`: resume as a job."""
    from pvg.cluster.jobs import Cluster
    from pvg.run.folder import RAY_JOB_CONFIG_ENV, in_pvg_job, resume_command

    monkeypatch.delenv(RAY_JOB_CONFIG_ENV, raising=False)
    assert not in_pvg_job() and resume_command("/shared/runs/x") == "pvg train --resume /shared/runs/x"
    monkeypatch.setenv(RAY_JOB_CONFIG_ENV, json.dumps({"runtime_env": {}, "metadata": {"pvg": "train"}}))
    assert in_pvg_job() and resume_command("/shared/runs/x") == "pvg submit --resume /shared/runs/x"
    monkeypatch.setenv(RAY_JOB_CONFIG_ENV, json.dumps({"metadata": {"other": "job"}}))
    assert not in_pvg_job()

    class Info:
        status, message, metadata = "STOPPED", "", {"pvg_run_dir": "/shared/runs/x"}
        submission_id, entrypoint, start_time, end_time = "pvg-x-1", "python -u -m pvg.cli train", 0, 0

    class Client:
        def stop_job(self, job_id):
            return True

        def get_job_info(self, job_id):
            return Info()

    import pvg.cluster.jobs as jobs

    monkeypatch.setattr(jobs, "connect", lambda address, token: Cluster("http://head:8265", Client()))
    result = CliRunner().invoke(app, ["jobs", "stop", "pvg-x-1", "--wait", "0"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "continue with `pvg submit --resume /shared/runs/x --address http://head:8265`" in result.stderr
    status = CliRunner().invoke(app, ["jobs", "status", "pvg-x-1"], env=WIDE)
    assert "pvg submit --resume /shared/runs/x --address http://head:8265" in status.stdout, status.output
