"""`pvg metrics`, `pvg plot`, `pvg report` on a real run folder (the session's `finished_run`), and on
copies of it doctored into a live run, a killed run, a run with no round yet, or one that is not a
run at all. The folder itself is never modified: each test that alters a run alters its own copy.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pvg.cli import app
from pvg.inspect.plots import run_labels
from pvg.inspect.report import DEPARTS, WRONG_CALC, line_marks
from pvg.run.view import load_run
from pvg.data.synth import FLAW_KINDS, generate
from pvgrun import assert_user_error, env, pvg_cmd

WIDE = {"COLUMNS": "200"}
NARROW = {"COLUMNS": "80"}
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, args, env=WIDE):
    return runner.invoke(app, [str(a) for a in args], env=env)


def jsonl_rows(run: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


def copy_run(run: Path, dest: Path) -> Path:
    """A copy without the checkpoints and TensorBoard events, which no inspect command reads."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("checkpoints", "tb"))
    return dest


def make_live(run: Path, dest: Path, finished: list[str], keep, torn: bool = True, lock: bool = True) -> Path:
    """A copy of `run` as it looked mid-game: only `finished` phases, only metric rows `keep` accepts,
    a half-written last line (the writer is appending), no summary, and a lock held by this process."""
    live = copy_run(run, dest)
    (live / "summary.json").unlink()
    state = json.loads((live / "state.json").read_text())
    state["finished"] = finished
    (live / "state.json").write_text(json.dumps(state))
    lines = [line for line in (live / "metrics.jsonl").read_text().splitlines() if keep(json.loads(line))]
    (live / "metrics.jsonl").write_text("".join(x + "\n" for x in lines) + ('{"kind": "ppo", "rou' if torn else ""))
    if lock:
        (live / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    return live


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def pixels_near(path: Path, rgb: tuple[float, float, float], tol: float = 0.08) -> int:
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(str(path))[..., :3]
    return int((np.abs(img - np.array(rgb)).max(axis=-1) < tol).sum())


# ---------------------------------------------------------------------------------------- metrics


def test_metrics_table_matches_jsonl(runner, finished_run):
    result = invoke(runner, ["metrics", finished_run])
    assert result.exit_code == 0, result.output
    rounds = jsonl_rows(finished_run, "round")
    assert len(rounds) == 2  # tiny-ci plays two rounds
    lines = result.stdout.splitlines()
    for r in rounds:
        def shown(key: str, spec: str) -> str:  # NaN (a rate or AUROC over an empty class) reads n/a
            return "n/a" if math.isnan(r[key]) else format(r[key], spec)

        expected = [
            str(r["round"]), f"{r['helpful_pass_rate']:.0%}", f"{r['sneaky_incorrect_rate']:.0%}",
            shown("verifier_auroc", ".3f"), shown("verifier_completeness", ".0%"), shown("verifier_soundness", ".0%"),
            shown("sneaky_fool_rate", ".0%"),
            str(r["steps_to_exploit"]) if r["exploited"] else "–", f"{r['kl_to_init']:.2f}",
            f"{r['helpful_mean_tokens']:.1f}", f"{r['sneaky_mean_tokens']:.1f}",
            f"{r['verifier_phase_s']:.1f}", f"{r['prover_phase_s']:.1f}",
        ]
        assert expected in [line.split() for line in lines], (expected, result.stdout)
    summary = json.loads((finished_run / "summary.json").read_text())
    assert f"finished after round {summary['last_round']}" in result.stdout
    assert summary["stop_reason"] in " ".join(result.stdout.split())


def test_metrics_fits_a_narrow_terminal(runner, finished_run):
    result = invoke(runner, ["metrics", finished_run], env=NARROW)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
    for header in ("AUROC", "sneaky", "fool rate", "exploit", "KL to", "verifier", "prover"):
        assert header in result.stdout, header
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] == ["1"]]
    assert len(rows) == 2  # round 1 appears in the game table and in the cost table, no cell cut off
    assert "…" not in result.stdout


def test_metrics_json_matches_jsonl(finished_run):
    proc = subprocess.run(pvg_cmd("metrics", str(finished_run), "--json"), capture_output=True, text=True, env=env(),
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # strict JSON: a NaN would have to be null here
    expected = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in jsonl_rows(finished_run, "round")]
    assert data["rounds"] == expected
    assert data["status"]["state"] == "finished"
    assert data["stop_reason"] == json.loads((finished_run / "summary.json").read_text())["stop_reason"]
    assert data["run_dir"] == str(finished_run)


def test_metrics_on_a_live_run(runner, finished_run, tmp_path):
    live = make_live(finished_run, tmp_path / "tiny-ci",
                     ["initial", "0/verifier", "0/prover", "0/sample", "0/eval", "1/verifier"],
                     keep=lambda r: r["round"] == 0 or (r["kind"] == "ppo" and r["step"] <= 2))
    result = invoke(runner, ["metrics", live])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "running: round 1, prover phase (PPO step 2 of 4)" in text
    assert f"pid {os.getpid()}" in text
    assert [line.split()[0] for line in result.stdout.splitlines() if re.match(r"^\s+\d+\s", line)] == ["0"]

    data = json.loads(invoke(runner, ["metrics", live, "--json"]).stdout)
    assert data["status"] == {"state": "running", "round": 1, "phase": "prover", "ppo_step": 2,
                              "text": data["status"]["text"]}
    assert data["stop_reason"] is None
    assert [r["round"] for r in data["rounds"]] == [0]

    (live / ".lock").unlink()  # the process died: no lock, no summary
    data = json.loads(invoke(runner, ["metrics", live, "--json"]).stdout)
    assert data["status"]["state"] == "stopped"
    assert f"pvg train --resume {live}" in data["status"]["text"]


def test_round_row_without_finished_eval_is_not_shown(runner, finished_run, tmp_path):
    """A row written just before a kill (its eval not marked) is redone on resume: not a round yet."""
    live = make_live(finished_run, tmp_path / "tiny-ci", ["initial", "0/verifier", "0/prover", "0/sample"],
                     keep=lambda r: r["round"] == 0, torn=False, lock=False)
    data = json.loads(invoke(runner, ["metrics", live, "--json"]).stdout)
    assert data["rounds"] == []
    assert data["status"]["state"] == "stopped"
    assert (data["status"]["round"], data["status"]["phase"]) == (0, "eval")


def test_run_with_no_finished_round(runner, finished_run, tmp_path):
    live = make_live(finished_run, tmp_path / "tiny-ci", ["initial", "0/verifier"],
                     keep=lambda r: r["kind"] == "ppo" and r["round"] == 0 and r["step"] == 1)
    result = invoke(runner, ["metrics", live])
    assert result.exit_code == 0, result.output  # a status, not an error
    text = " ".join(result.stdout.split())
    assert "no finished round yet" in text and "running: round 0, prover phase (PPO step 1 of 4)" in text
    assert_user_error(invoke(runner, ["plot", live, "-o", tmp_path / "p.png"]), "no finished round yet", "a plot")
    assert_user_error(invoke(runner, ["report", live, "-o", tmp_path / "r.html"]), "no finished round yet")
    assert not (tmp_path / "p.png").exists() and not (tmp_path / "r.html").exists()


# ------------------------------------------------------------------------------------------- plot


def test_plot_one_and_two_runs(runner, finished_run, tmp_path):
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    result = invoke(runner, ["plot", finished_run, "-o", one])
    assert result.exit_code == 0, result.output
    assert png_size(one.read_bytes()) == (1200, 800)
    other = copy_run(finished_run, tmp_path / "b" / finished_run.name)
    result = invoke(runner, ["plot", finished_run, other, "-o", two, "--title", "two runs"])
    assert result.exit_code == 0, result.output
    assert png_size(two.read_bytes()) == (1200, 800)
    # The second run is drawn in matplotlib's second colour (C1, orange); the first alone never is.
    orange = (1.0, 0.498, 0.055)
    assert pixels_near(one, orange) == 0
    assert pixels_near(two, orange) > 500
    assert pixels_near(one, (0.122, 0.467, 0.706)) > 500  # C0, blue: the first run's lines
    result = invoke(runner, ["plot", finished_run, "-o", tmp_path / "small.png", "--dpi", "50"])
    assert png_size((tmp_path / "small.png").read_bytes()) == (600, 400)


def test_run_labels_tell_same_named_runs_apart(finished_run, tmp_path):
    a = load_run(finished_run)
    b = load_run(copy_run(finished_run, tmp_path / "srcrun" / finished_run.name))
    c = load_run(copy_run(finished_run, tmp_path / "other"))
    assert run_labels([a, c]) == [finished_run.name, "other"]
    assert run_labels([a, b]) == [f"{finished_run.parent.name}/{finished_run.name}", f"srcrun/{finished_run.name}"]


# ----------------------------------------------------------------------------------------- report


@pytest.fixture(scope="module")
def report_html(finished_run, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = CliRunner().invoke(app, ["report", str(finished_run), "-o", str(out), "--examples", "2"], env=WIDE)
    assert result.exit_code == 0, result.output
    return out.read_text()


def test_report_is_self_contained(report_html):
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", report_html, re.I)
    assert not re.search(r"<script|<link|@import|url\(", report_html, re.I)
    imgs = re.findall(r'<img[^>]*src="data:image/png;base64,([^"]+)"', report_html)
    assert len(imgs) == 1
    assert png_size(base64.b64decode(imgs[0])) == (1200, 800)


def test_report_has_config_rounds_and_examples(report_html, finished_run):
    assert "<details>" in report_html and "resolved config.yaml" in report_html
    assert "cache_dir:" in report_html  # the resolved config, verbatim
    rounds = jsonl_rows(finished_run, "round")
    for r in rounds:
        k = r["round"]
        assert f'<tr id="metrics-round-{k}">' in report_html
        assert f'<h3 id="round-{k}">Round {k}</h3>' in report_html
        assert f"<td>{r['sneaky_fool_rate']:.0%}</td>" in report_html
    pairs = re.findall(r'<div class="pair">(.*?)</div></div></div>(?=<div class="problem"|</section>)', report_html, re.S)
    assert len(pairs) == 2 * len(rounds)  # --examples 2, every round
    for pair in pairs:
        roles = re.findall(r'<div class="solution (helpful|sneaky) (?:correct|incorrect)">', pair)
        assert roles == ["helpful", "sneaky"]  # side by side, helpful left
        assert len(re.findall(r"score -?\d+\.\d{3}", pair)) == 2
    # Every problem shown is one of its round's pool, with that problem's question.
    for k, pid, question in re.findall(r'<div class="problem" id="round-(\d+)-([^"]+)"><p class="question">'
                                       r'<span class="pid">[^<]*</span> ([^<]*)</p>', report_html):
        rows = pq.read_table(finished_run / "pool" / f"round-{k}.parquet").to_pylist()
        assert any(r["problem_id"] == pid and r["question"] == question for r in rows), pid


def test_report_marks_where_wrong_solutions_go_wrong(report_html):
    # tiny-ci's sneaky role is >90% incorrect and its problems are synthetic: the most convincing
    # sneaky solutions shown are incorrect, so a departure from the reference is marked.
    assert re.search(r'<div class="line departs[^"]*"><code>[^<]+</code><span class="why">' + re.escape(DEPARTS),
                     report_html)
    assert "reference solution (answer" in report_html


def test_line_marks_find_the_planted_flaw():
    checked = 0
    for p in generate(60, seed=5, min_steps=2, max_steps=5, flaw_kinds=FLAW_KINDS):
        assert line_marks(p.compact_reference, True, p)[1] == {}
        ref = p.compact_reference.splitlines()
        for f in p.flawed:
            lines, marks, short = line_marks(f.compact, False, p)
            departs = [i for i, m in marks.items() if DEPARTS in m]
            assert len(departs) == 1, (f, marks)
            d = departs[0]
            assert lines[:d] == ref[:d] and lines[d] != ref[d]
            if f.flaw.kind == "dropped_step":  # the next line can read like the dropped one ("3 times" twice)
                assert d >= f.flaw.step, (f, marks)
            elif f.flaw.kind == "miscopied_answer":  # the `#### N` line after the last step
                assert d == f.flaw.step + 1 == len(lines) - 1, (f, marks)
            else:
                assert d == f.flaw.step, (f, marks)
            slips = [i for i, m in marks.items() if WRONG_CALC in m]
            assert slips == ([f.flaw.step] if f.flaw.kind == "arithmetic_slip" else []), (f, marks)
            assert not short
            checked += 1
    assert checked > 80
    p = generate(1, seed=0)[0]
    # a correct final answer on a wrong calculation: no departure mark, the calculation still marked
    lines = p.compact_reference.splitlines()
    fudged = "\n".join([re.sub(r"= (\d+)$", lambda m: f"= {int(m.group(1)) + 1}", lines[0])] + lines[1:])
    assert line_marks(fudged, True, p)[1] == {0: [WRONG_CALC]}
    assert line_marks(lines[0], False, p)[2] is True  # stops before the reference's end
    assert line_marks(fudged, False, None)[1] == {}  # no known problem, no marks


def test_report_escapes_text_and_skips_marks_without_problems(runner, finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path / "tiny-ci")
    pool = run / "pool" / "round-0.parquet"
    table = pq.read_table(pool)
    rows = table.to_pylist()
    target = next(r for r in rows if r["role"] == "sneaky" and not r["correct"])
    evil = '<script>alert("x")</script> & <b>'
    target["text"] = evil + "\n" + target["text"]
    target["verifier_score"] = 99.0  # now the round's most convincing sneaky solution: shown first
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), pool)
    config = (run / "config.yaml").read_text().replace("source: synthetic", "source: hub").replace(
        "hub_name: null", "hub_name: openai/gsm8k")
    (run / "config.yaml").write_text(config)
    out = tmp_path / "r.html"
    result = invoke(runner, ["report", run, "-o", out, "--examples", "1"])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in page
    assert "score 99.000" in page and "fools the verifier" in page
    assert "No line marks" in page and "hub data set" in page
    assert 'class="line departs' not in page and 'class="line wrongcalc' not in page


def test_report_renders_in_headless_chromium(report_html, tmp_path):
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        pytest.skip(f"no headless browser ({', '.join(BROWSERS)}) installed; "
                    "PVG_INSTALL_BROWSER=1 bash scripts/install.sh installs one")
    page = tmp_path / "report.html"
    page.write_text(report_html)
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<table class="metrics">' in dom.stdout and "Round 1</h3>" in dom.stdout
    assert dom.stdout.count('class="pair"') == report_html.count('class="pair"')
    shot = tmp_path / "shot.png"
    proc = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    assert png_size(shot.read_bytes()) == (1200, 2000)
    import matplotlib.image as mpimg

    img = mpimg.imread(str(shot))[..., :3]
    assert img.std() > 0.05  # text, table and the figure: not a blank page
    assert pixels_near(shot, (0.122, 0.467, 0.706)) > 200  # the embedded figure's blue lines were painted


# ----------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("command", ["metrics", "plot", "report"])
def test_not_a_run_folder(runner, tmp_path, command):
    extra = {"metrics": [], "plot": ["-o", tmp_path / "p.png"], "report": ["-o", tmp_path / "r.html"]}[command]
    assert_user_error(invoke(runner, [command, tmp_path / "nope", *extra]), "nope does not exist",
                      "config.yaml, state.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_user_error(invoke(runner, [command, empty, *extra]), "not a pvg run folder", "no config.yaml or state.json")
    (empty / "config.yaml").write_text("run: {name: x}\n")
    assert_user_error(invoke(runner, [command, empty, *extra]), "not a pvg run folder: no state.json")
    (empty / "state.json").write_text("{not json")
    assert_user_error(invoke(runner, [command, empty, *extra]), "state.json is not valid JSON")
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    assert_user_error(invoke(runner, [command, a_file, *extra]), "is a file, not a run folder")


def test_bad_output_paths(runner, finished_run, tmp_path):
    missing = tmp_path / "no" / "such"
    assert_user_error(invoke(runner, ["plot", finished_run, "-o", missing / "p.png"]), f"the folder {missing} does not exist")
    assert_user_error(invoke(runner, ["report", finished_run, "-o", missing / "r.html"]), f"the folder {missing} does not exist")
    assert_user_error(invoke(runner, ["plot", finished_run, "-o", tmp_path / "p.txt"]), ".png, .pdf, .svg")
    assert_user_error(invoke(runner, ["report", finished_run, "-o", tmp_path]), "is a directory")
    assert not missing.exists() and not (tmp_path / "p.txt").exists()


def test_plot_error_names_the_run_with_no_round(runner, finished_run, tmp_path):
    young = make_live(finished_run, tmp_path / "young", ["initial"], keep=lambda r: False, lock=False)
    result = invoke(runner, ["plot", finished_run, young, "-o", tmp_path / "p.png"])
    assert_user_error(result, f"{young} has no finished round yet", "stopped")
