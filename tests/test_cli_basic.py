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
