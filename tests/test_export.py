"""Export, score and eval-verifier on a real finished tiny-ci run.

The central promise is that an exported verifier is usable without pvg: plain transformers in a
fresh process must give the scores `pvg score` gives, and those must be the game's own scores. The
rest pins the round-selection rules, the metric definitions against `pvg.game.metrics`, answer grading,
and that every bad input is one line, exit code 2, and leaves no half-written output behind.

In-process tests use an app holding only this module's commands (the `pvg` app also carries other
command groups that are not under test here); the subprocess tests go through the real `pvg.cli`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
import yaml
from typer.testing import CliRunner

from pvg.cli import export as cli_export
from pvg.errors import PvgError
from pvg.export.hf import BEST_RULE, RunInfo, atomic_dir, choose_round
from pvg.data.grading import extract_answer
from pvg.game.metrics import acceptance_threshold, auroc, legibility_metrics
from pvgrun import env, pvg_cmd

pytestmark = pytest.mark.slow

WIDE = {"COLUMNS": "200"}

# What a user with only transformers + torch would write, from the model card.
PLAIN_SCRIPT = r"""
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
path, rows_file = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForSequenceClassification.from_pretrained(path).eval()
rows = [json.loads(line) for line in open(rows_file)]
texts = [r["question"] + "\n" + r["solution"].strip() for r in rows]
enc = tok(texts, return_tensors="pt", padding=True, truncation=True, add_special_tokens=False)
with torch.no_grad():
    scores = model(**enc).logits[:, 0]
print(json.dumps({"scores": scores.tolist(), "pad_token_id": model.config.pad_token_id,
                  "padded": bool((enc["attention_mask"] == 0).any())}))
"""


# ------------------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def run_dir(request) -> Path:
    """The session's finished tiny-ci run, read only; PVG_TEST_FINISHED_RUN may name an existing one instead
    (to iterate on these tests without playing a game first)."""
    given = os.environ.get("PVG_TEST_FINISHED_RUN")
    return Path(given) if given else request.getfixturevalue("finished_run")


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer(add_completion=False)
    cli_export.register(a)
    return a


def invoke(app, args):
    return CliRunner().invoke(app, [str(a) for a in args], env=WIDE)


def assert_user_error(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    msg = " ".join(result.stderr.split())
    assert msg.startswith("error:"), msg
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for n in needles:
        assert n in msg, (n, msg)


def run_pvg(*args, timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run(pvg_cmd(*map(str, args)), capture_output=True, text=True, env=env(), timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def copy_run(run_dir: Path, dst: Path) -> Path:
    shutil.copytree(run_dir, dst, ignore=shutil.ignore_patterns("tb", ".lock"))
    return dst


def round_rows(run: Path) -> dict[int, dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return {r["round"]: r for r in rows if r["kind"] == "round"}


def pool_rows(run: Path, *files: str) -> list[dict]:
    files = files or tuple(sorted(p.name for p in (run / "pool").glob("*.parquet")))
    out = []
    for f in files:
        for r in pq.read_table(run / "pool" / f).to_pylist():
            out.append({"question": r["question"], "solution": r["text"], "is_correct": r["correct"],
                        "role": r["role"], "game_score": r["verifier_score"]})
    return out


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def leftovers(folder: Path) -> list[str]:
    """Hidden temporaries an interrupted write could leave next to its target."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def with_two_rounds(run: Path) -> Path:
    """Make sure rounds 0 and 1 both have a finished verifier and eval (the game may stop after round 0)."""
    state = json.loads((run / "state.json").read_text())
    if "1/eval" not in state["finished"]:
        shutil.copytree(run / "checkpoints/round-0", run / "checkpoints/round-1", dirs_exist_ok=True)
        state["finished"] += [p for p in ("1/verifier", "1/prover", "1/sample", "1/eval") if p not in state["finished"]]
        (run / "state.json").write_text(json.dumps(state))
        rows = round_rows(run)
        with (run / "metrics.jsonl").open("a") as f:
            f.write(json.dumps({**rows[0], "round": 1}) + "\n")
    return run


def set_aurocs(run: Path, aurocs: dict[int, float]) -> None:
    lines = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["kind"] == "round" and r["round"] in aurocs:
            r["verifier_auroc"] = aurocs[r["round"]]
        lines.append(json.dumps(r))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory) -> Path:
    """The default verifier export, made through the real CLI in a subprocess."""
    out = tmp_path_factory.mktemp("export") / "verifier"
    proc = run_pvg("export-verifier", run_dir, "-o", out)
    assert "exported the round" in proc.stdout
    return out


# ------------------------------------------------------------------------------- the central promise
def test_plain_transformers_in_a_fresh_process_matches_pvg_score_and_the_game(run_dir, exported, tmp_path):
    meta = json.loads((exported / "pvg_verifier.json").read_text())
    k = meta["round"]
    rows = pool_rows(run_dir, f"round-{k}.parquet")  # sampled after round k's prover, scored by round k's verifier
    assert len(rows) >= 8 and len({len(r["solution"]) for r in rows}) > 1
    # longer than tokenize.max_length (160 tokens): the saved tokenizer must truncate where the game did
    rows.append({**rows[0], "solution": (rows[0]["solution"] + "\n") * 8, "game_score": None})
    rows_file = write_jsonl(tmp_path / "rows.jsonl", rows)

    run_pvg("score", "--verifier", exported, "--input", rows_file, "-o", tmp_path / "scored.jsonl", "--batch-size", "7")
    scored = [json.loads(x) for x in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert [{k_: v for k_, v in r.items() if k_ != "score"} for r in scored] == rows  # input rows kept as they were

    proc = subprocess.run([sys.executable, "-c", PLAIN_SCRIPT, str(exported), str(rows_file)], capture_output=True,
                          text=True, timeout=300, env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    plain = json.loads(proc.stdout.strip().splitlines()[-1])
    assert plain["pad_token_id"] is not None and plain["padded"], "one padded batch: pad_token_id must be set"
    pvg_scores = [r["score"] for r in scored]
    assert plain["scores"] == pytest.approx(pvg_scores, abs=1e-5)
    game = [(s, r["game_score"]) for s, r in zip(pvg_scores, rows) if r["game_score"] is not None]
    assert [s for s, _ in game] == pytest.approx([g for _, g in game], abs=1e-4), "the game's own scores"
    assert len(set(pvg_scores)) > 1


def test_export_folder_card_and_json(run_dir, exported):
    rows, state = round_rows(run_dir), json.loads((run_dir / "state.json").read_text())["finished"]
    default = max(k for k in rows if f"{k}/verifier" in state and f"{k}/eval" in state)
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md",
            "pvg_verifier.json"} <= {p.name for p in exported.iterdir()}
    assert not leftovers(exported.parent)
    config = json.loads((exported / "config.json").read_text())
    assert config["pad_token_id"] is not None and len(config["id2label"]) == 1
    meta = json.loads((exported / "pvg_verifier.json").read_text())
    assert meta["round"] == default and meta["selection"]["mode"] == "default"
    assert meta["template"] == "{question}\n{solution}"
    assert meta["threshold"] == pytest.approx(rows[default]["verifier_threshold"])
    auroc = rows[default]["verifier_auroc"]  # NaN (one class empty) is written as JSON null
    assert meta["metrics"]["verifier_auroc"] == (None if math.isnan(auroc) else pytest.approx(auroc))
    assert meta["run"]["name"] == "tiny-ci"

    card = (exported / "README.md").read_text()
    assert card.startswith("---\n")
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "transformers"
    assert {"reward-model", "prover-verifier-game"} <= set(front["tags"])
    for needle in ("{question}\n{solution}", "logits[:, 0]", "higher = more convincing", "add_special_tokens=False",
                   f"{meta['threshold']:.6g}", "AutoModelForSequenceClassification", "center_coef", "kl_coef",
                   "verifier_auroc", f"round {default}"):
        assert needle in card, needle


# ---------------------------------------------------------------------------------- choosing a round
def fake_run(finished: list[str], aurocs: dict[int, float]) -> RunInfo:
    return RunInfo(Path("run"), None, set(finished), {k: {"round": k, "verifier_auroc": a} for k, a in aurocs.items()},
                   None)


def test_round_rules():
    three = [f"{k}/{p}" for k in range(3) for p in ("verifier", "prover", "sample", "eval")]
    run = fake_run(three, {0: 0.6, 1: 0.8, 2: 0.7})
    assert choose_round(run, "verifier", None, False)[0] == 2
    assert choose_round(run, "verifier", None, True) == (1, {"mode": "best", "rule": BEST_RULE})
    assert choose_round(fake_run(three, {0: 0.8, 1: 0.8, 2: 0.7}), "verifier", None, True)[0] == 1  # tie: later
    assert choose_round(fake_run(three, {0: 0.6, 1: float("nan"), 2: 0.5}), "verifier", None, True)[0] == 0
    killed = three[:8] + ["2/verifier"]  # round 2's verifier finished, its eval did not
    run = fake_run(killed, {0: 0.6, 1: 0.8})
    assert choose_round(run, "verifier", None, False)[0] == 1
    assert choose_round(run, "verifier", 2, False)[0] == 2
    with pytest.raises(PvgError, match=r"round 3 .* no prover checkpoint; rounds with one: 0, 1"):
        choose_round(run, "prover", 3, False)


def test_best_through_the_cli(app, run_dir, tmp_path):
    run = with_two_rounds(copy_run(run_dir, tmp_path / "run"))
    set_aurocs(run, {0: 0.9, 1: 0.6})
    result = invoke(app, ["export-verifier", run, "--best", "-o", tmp_path / "best"])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "best/pvg_verifier.json").read_text())
    assert meta["round"] == 0 and meta["selection"] == {"mode": "best", "rule": BEST_RULE}
    assert " ".join(BEST_RULE.split()) in " ".join((tmp_path / "best/README.md").read_text().split())
    set_aurocs(run, {0: 0.7, 1: 0.7})
    result = invoke(app, ["export-verifier", run, "--best", "-o", tmp_path / "best", "--force"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "best/pvg_verifier.json").read_text())["round"] == 1
    assert not leftovers(tmp_path)


def test_unmeasured_round_is_not_the_default_but_exports_on_request(app, run_dir, tmp_path):
    """A run killed after round 1's verifier phase: the default is round 0; --round 1 works, with no threshold."""
    run = with_two_rounds(copy_run(run_dir, tmp_path / "run"))
    state = json.loads((run / "state.json").read_text())
    state["finished"] = [p for p in state["finished"] if not p.startswith("1/") or p == "1/verifier"]
    (run / "state.json").write_text(json.dumps(state))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in round_rows(run).values() if r["round"] == 0))
    assert invoke(app, ["export-verifier", run, "-o", tmp_path / "a"]).exit_code == 0
    assert json.loads((tmp_path / "a/pvg_verifier.json").read_text())["round"] == 0
    assert invoke(app, ["export-verifier", run, "--round", "1", "-o", tmp_path / "b"]).exit_code == 0
    meta = json.loads((tmp_path / "b/pvg_verifier.json").read_text())
    assert meta["round"] == 1 and meta["threshold"] is None and meta["metrics"] is None
    assert "no finished eval" in (tmp_path / "b/README.md").read_text()


# -------------------------------------------------------------------------------------------- prover
def test_export_prover_loads_as_a_causal_lm(app, run_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = invoke(app, ["export-prover", run_dir, "-o", tmp_path / "prover"])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "prover/pvg_prover.json").read_text())
    k = meta["round"]
    assert meta["prompt"]["templates"] == {"helpful": "<helpful> {question}\n", "sneaky": "<sneaky> {question}\n"}
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "prover")
    original = AutoModelForCausalLM.from_pretrained(run_dir / f"checkpoints/round-{k}/prover")
    a, b = exported.state_dict(), original.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    tok = AutoTokenizer.from_pretrained(tmp_path / "prover")
    assert tok.padding_side == "left" and "<sneaky>" in tok.get_vocab()
    card = (tmp_path / "prover/README.md").read_text()
    assert yaml.safe_load(card.split("---\n")[1])["library_name"] == "transformers"
    assert "<helpful> {question}" in card and "AutoModelForCausalLM" in card and "never as a source" in card


# -------------------------------------------------------------------------------------- eval-verifier
def test_eval_verifier_matches_pvg_metrics(app, run_dir, exported, tmp_path):
    rows = pool_rows(run_dir, f"round-{max(round_rows(run_dir))}.parquet")
    rows_file = write_jsonl(tmp_path / "rows.jsonl", rows)
    result = invoke(app, ["score", "--verifier", exported, "-i", rows_file, "-o", tmp_path / "scored.jsonl"])
    assert result.exit_code == 0, result.output
    scores = [json.loads(x)["score"] for x in (tmp_path / "scored.jsonl").read_text().splitlines()]
    correct, roles = [r["is_correct"] for r in rows], [r["role"] for r in rows]
    assert 0 < sum(correct) < len(correct)

    expected = legibility_metrics(scores, correct, roles, "helpful_median")
    t = acceptance_threshold(scores, correct, roles, "helpful_median")
    result = invoke(app, ["eval-verifier", "--verifier", exported, "-i", rows_file, "--threshold", repr(t), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["threshold"] == t and got["threshold_source"] == "--threshold"
    assert got["rows"] == len(rows) and got["correct"] == sum(correct)
    assert got["auroc"] == pytest.approx(auroc(scores, correct), abs=1e-9)
    for ours, theirs in [("completeness", "verifier_completeness"), ("soundness", "verifier_soundness"),
                         ("sneaky_fool_rate", "sneaky_fool_rate")]:
        assert got[ours] == pytest.approx(expected[theirs], abs=1e-9), ours
    assert got["balanced_accuracy"] == pytest.approx((expected["verifier_completeness"]
                                                      + expected["verifier_soundness"]) / 2)

    # default threshold: the exported round's
    meta = json.loads((exported / "pvg_verifier.json").read_text())
    result = invoke(app, ["eval-verifier", "--verifier", exported, "-i", rows_file, "--json"])
    got = json.loads(result.stdout)
    assert got["threshold"] == pytest.approx(meta["threshold"]) and "pvg_verifier.json" in got["threshold_source"]
    assert got["completeness"] == pytest.approx(sum(s >= meta["threshold"] for s, c in zip(scores, correct) if c)
                                                / sum(correct))
    # no threshold in the export: 0, and the table says so
    no_t = tmp_path / "no-threshold"
    shutil.copytree(exported, no_t)
    (no_t / "pvg_verifier.json").write_text(json.dumps({**meta, "threshold": None}))
    result = invoke(app, ["eval-verifier", "--verifier", no_t, "-i", rows_file])
    assert result.exit_code == 0, result.output
    table = " ".join(result.stdout.split())
    assert "AUROC" in table and f"{auroc(scores, correct):.4f}" in table and "has no threshold" in table


def test_answer_formats_are_graded(app, exported, tmp_path):
    q = "Eva has read 18 pages. Eva reads 2 more pages. How many pages has Eva read now?"
    solutions = {"reads 2 more: 16 + 2 = 18\n#### 18": True, "reads 2 more: 16 + 2 = 18\nAnswer: 18": True,
                 "reads 2 more: 16 + 2 = 18\nA: 18": True, "reads 2 more: 16 + 2 = 17\n#### 17": False,
                 "reads 2 more: 16 + 2 = 19\nAnswer: 19": False, "reads 2 more: 16 + 3 = 19\nA: 19": False,
                 "reads 2 more: 16 + 2 = 18": False}
    for s in solutions:
        assert extract_answer(s) == (None if s.endswith("= 18") else s.split()[-1])
    refs = ["#### 18", 18, "Eva reads 2 more: 16 + 2 = <<16+2=18>>18\n#### 18", "18.0"]
    rows = [{"question": q, "solution": s, "answer": refs[i % len(refs)]} for i, s in enumerate(solutions)]
    rows.append({"question": q, "solution": "#### 3", "is_correct": True})  # an explicit label wins
    result = invoke(app, ["eval-verifier", "--verifier", exported, "-i", write_jsonl(tmp_path / "r.jsonl", rows),
                          "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert (got["correct"], got["incorrect"]) == (4, 4)
    assert (got["graded_by_answer"], got["unanswered"]) == (7, 1)
    assert "sneaky_fool_rate" not in got  # no roles given


# ------------------------------------------------------------------------------------------- errors
@pytest.fixture
def broken_run(run_dir, tmp_path) -> Path:
    return copy_run(run_dir, tmp_path / "run")


def _last(run: Path, which: str = "verifier") -> Path:
    k = max(round_rows(run))
    return run / f"checkpoints/round-{k}/{which}"


def _truncate(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


@pytest.mark.parametrize("case, needles", [
    ("not-a-run", ["not a pvg run folder", "config.yaml", "state.json"]),
    ("missing", ["does not exist"]),
    ("no-such-round", ["round 7", "no verifier checkpoint", "rounds with one: 0"]),
    ("round-not-yet", ["round 1", "no verifier checkpoint", "rounds with one: 0"]),
    ("truncated", ["verifier checkpoint", "corrupt or partial", "checkpoints/round-"]),
    ("no-config", ["partial", "no config.json", "checkpoints/round-"]),
    ("ckpt-folder-gone", ["is missing", "state.json", "checkpoints/round-"]),
    ("round-and-best", ["either --round K or --best"]),
    ("into-the-run", ["would replace the run folder"]),
])
def test_export_errors(app, broken_run, tmp_path, case, needles):
    run, args = broken_run, []
    out = tmp_path / "out" / "verifier"
    (tmp_path / "out").mkdir()
    if case == "not-a-run":
        run = tmp_path / "empty"
        run.mkdir()
    elif case == "missing":
        run = tmp_path / "nope"
    elif case == "no-such-round":
        args = ["--round", "7"]
    elif case == "round-not-yet":  # killed before round 1's verifier finished
        state = json.loads((run / "state.json").read_text())
        state["finished"] = [p for p in state["finished"] if not p.startswith("1/")]
        (run / "state.json").write_text(json.dumps(state))
        shutil.rmtree(run / "checkpoints/round-1", ignore_errors=True)
        args = ["--round", "1"]
    elif case == "truncated":
        _truncate(_last(run) / "model.safetensors")
    elif case == "no-config":
        (_last(run) / "config.json").unlink()
    elif case == "ckpt-folder-gone":
        shutil.rmtree(_last(run))
    elif case == "round-and-best":
        args = ["--round", "0", "--best"]
    elif case == "into-the-run":
        out, args = run, ["--force"]
    before = sorted(p.name for p in run.iterdir()) if case == "into-the-run" else None
    assert_user_error(invoke(app, ["export-verifier", run, "-o", out, *args]), *needles)
    if case == "into-the-run":
        assert sorted(p.name for p in run.iterdir()) == before
    else:
        assert not out.exists()
        assert not leftovers(tmp_path / "out")


def test_export_prover_corrupt_checkpoint(app, broken_run, tmp_path):
    _truncate(_last(broken_run, "prover") / "model.safetensors")
    assert_user_error(invoke(app, ["export-prover", broken_run, "-o", tmp_path / "p"]),
                      "prover checkpoint", "corrupt or partial")
    assert not (tmp_path / "p").exists() and not leftovers(tmp_path)


def test_existing_export_needs_force(app, run_dir, exported, tmp_path):
    out = tmp_path / "v"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_user_error(invoke(app, ["export-verifier", run_dir, "-o", out]), "not empty", "--force")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    result = invoke(app, ["export-verifier", run_dir, "-o", out, "--force"])
    assert result.exit_code == 0, result.output
    assert (out / "pvg_verifier.json").is_file() and not (out / "keep.txt").exists()
    assert not leftovers(tmp_path)


def test_atomic_dir_leaves_nothing_on_error(tmp_path):
    dest = tmp_path / "d"
    with pytest.raises(RuntimeError):
        with atomic_dir(dest, force=False) as tmp:
            (tmp / "half.bin").write_text("x")
            raise RuntimeError("disk full")
    assert not dest.exists() and list(tmp_path.iterdir()) == []
    dest.mkdir()
    (dest / "old").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(dest, force=True) as tmp:
            (tmp / "new").write_text("new")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["d"] and (dest / "old").read_text() == "old"


GOOD = {"question": "q", "solution": "#### 1", "is_correct": True}


@pytest.mark.parametrize("command, lines, needles", [
    ("score", [GOOD, "{not json"], ["in.jsonl:2", "not valid JSON"]),
    ("score", [GOOD, "", {"question": "q"}], ["in.jsonl:3", 'missing field "solution"', "string"]),
    ("score", [{"question": 3, "solution": "s"}], ["in.jsonl:1", '"question" must be a string', "got 3"]),
    ("score", ["[1, 2]"], ["in.jsonl:1", "expected a JSON object"]),
    ("score", [], ["in.jsonl", "has no rows"]),
    ("score", ["", "  "], ["in.jsonl", "has no rows"]),
    ("eval-verifier", [GOOD, {"question": "q", "solution": "s"}], ["in.jsonl:2", "is_correct", "answer"]),
    ("eval-verifier", [{**GOOD, "is_correct": "yes"}], ["in.jsonl:1", '"is_correct" must be true or false']),
    ("eval-verifier", [{"question": "q", "solution": "s", "answer": "many"}], ["in.jsonl:1", '"answer"', "no number"]),
    ("eval-verifier", [{**GOOD, "role": "judge"}], ["in.jsonl:1", '"role"', "helpful"]),
])
def test_bad_input_lines(app, exported, tmp_path, command, lines, needles):
    rows_file = write_jsonl(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    extra = ["-o", out] if command == "score" else []
    assert_user_error(invoke(app, [command, "--verifier", exported, "-i", rows_file, *extra]), *needles)
    assert out.read_text() == "previous results\n"  # untouched, not truncated
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("case, needles", [
    ("raw-checkpoint", ["not an exported pvg verifier", "pvg_verifier.json", "pvg export-verifier"]),
    ("missing", ["does not exist"]),
    ("truncated", ["corrupt or partial", "verifier"]),
    ("bad-meta", ["pvg_verifier.json", "not valid JSON"]),
    ("other-template", ["template", "{question}\\n{solution}"]),
])
def test_bad_verifier_folder(app, run_dir, exported, tmp_path, case, needles):
    v = tmp_path / "v"
    if case == "raw-checkpoint":
        v = _last(run_dir)
    elif case != "missing":
        shutil.copytree(exported, v)
    if case == "truncated":
        _truncate(v / "model.safetensors")
    elif case == "bad-meta":
        (v / "pvg_verifier.json").write_text("{")
    elif case == "other-template":
        meta = json.loads((v / "pvg_verifier.json").read_text())
        (v / "pvg_verifier.json").write_text(json.dumps({**meta, "template": "Q: {question}\nA: {solution}"}))
    rows_file = write_jsonl(tmp_path / "in.jsonl", [GOOD])
    out = tmp_path / "scored.jsonl"
    assert_user_error(invoke(app, ["score", "--verifier", v, "-i", rows_file, "-o", out]), *needles)
    assert not out.exists() and not leftovers(tmp_path)
    assert_user_error(invoke(app, ["eval-verifier", "--verifier", v, "-i", rows_file]), *needles)


def test_score_output_must_be_a_file(app, exported, tmp_path):
    rows_file = write_jsonl(tmp_path / "in.jsonl", [GOOD])
    (tmp_path / "o").mkdir()
    assert_user_error(invoke(app, ["score", "--verifier", exported, "-i", rows_file, "-o", tmp_path / "o"]),
                      "is a folder")
