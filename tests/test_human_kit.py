"""`pvg eval human-export` / `human-import`: the human study kit on a copy of the session's `finished_run`
(never the run itself), the item picking on synthetic pools, the page's JavaScript in headless Chromium
when one is installed, and every user error.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from pvg.cli import eval_human as cli_eval_human
from pvg.errors import PvgError
from pvg.eval import human
from pvgrun import assert_user_error

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
ROLES = ("helpful", "sneaky")


def make_app() -> typer.Typer:
    """`pvg eval` with only this kit's commands: the tests do not depend on how pvg.cli wires it."""
    root, group = typer.Typer(), typer.Typer()
    cli_eval_human.register(group)
    root.add_typer(group, name="eval")
    return root


APP = make_app()


def invoke(args):
    return CliRunner().invoke(APP, ["eval", *map(str, args)], env={"COLUMNS": "200"})


def ok(result):
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def copy_run(run: Path, dest: Path) -> Path:
    """A copy without checkpoints and TensorBoard events: the kit reads only the pool and state."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("checkpoints", "tb", "eval"))
    return dest


@pytest.fixture(scope="module")
def kit(finished_run, tmp_path_factory):
    """One export of the default kit (10 per round, both rounds), shared by the read-only tests."""
    base = tmp_path_factory.mktemp("human")
    run = copy_run(finished_run, base / "run")
    form = base / "form.html"
    result = ok(invoke(["human-export", run, "-o", form]))
    keys = list((run / "eval" / "human").glob("*.key.json"))
    assert len(keys) == 1, keys
    key = json.loads(keys[0].read_text())
    return {"run": run, "form": form, "html": form.read_text(), "key": key, "key_path": keys[0],
            "stdout": result.stdout, "base": base}


def pool(run: Path, k: int) -> list[dict]:
    return pq.read_table(run / "pool" / f"round-{k}.parquet").to_pylist()


def write_answers(path: Path, key: dict, choose, rater="r", seconds=3.5) -> Path:
    """An answer file as the form writes it; `choose(item_key)` gives "correct", "incorrect" or None."""
    answers = []
    for item_id in key["order"]:
        a = choose(key["items"][item_id])
        answers.append({"item": item_id, "answer": a, "seconds": key["seconds"] if a is None else seconds})
    path.write_text(json.dumps({"format": human.ANSWER_FORMAT, "kit_id": key["kit_id"], "rater": rater,
                                "answers": answers}))
    return path


# ------------------------------------------------------------------------------------------ export
def test_export_writes_form_and_key(kit):
    key, run = kit["key"], kit["run"]
    out = " ".join(kit["stdout"].split())
    assert str(kit["form"]) in out and str(kit["key_path"]) in out and key["kit_id"] in out
    assert kit["key_path"] == run / "eval" / "human" / f"{key['kit_id']}.key.json"
    assert re.fullmatch(r"[0-9a-f]{10}", key["kit_id"])
    assert key["rounds"] == [0, 1] and key["per_round"] == 10 and key["seconds"] == 45 and key["seed"] == 0
    assert len(key["order"]) == len(key["items"]) == 20 and set(key["order"]) == set(key["items"])
    for info in key["items"].values():
        assert set(info) >= {"round", "role", "correct", "problem_id", "verifier_score"}
    # every item of the key is a real row of its round's pool
    for info in key["items"].values():
        rows = [r for r in pool(run, info["round"]) if r["problem_id"] == info["problem_id"]
                and r["role"] == info["role"] and r["sample"] == info["sample"]]
        assert len(rows) == 1 and rows[0]["correct"] == info["correct"]
    # the page shows the items in the key's order, each with its pool row's question and text
    shown = re.findall(r'<article class="item" data-item="([^"]+)"', kit["html"])
    assert shown == key["order"]


def test_form_is_self_contained(kit):
    page = kit["html"]
    for bad in ("http://", "https://", "<link", "src=", "@import", "//cdn", "<iframe", "<img", "fetch(",
                "xmlhttprequest", "websocket", "import("):
        assert bad not in page.lower(), bad
    assert "url(" not in human.CSS
    assert page.count("<script>") == 1 and page.count("<style>") == 1
    assert 'id="btn-correct"' in page and 'id="btn-incorrect"' in page and 'id="save"' in page
    assert ">correct</button>" in page and ">incorrect</button>" in page and ">save answers</button>" in page
    assert f"item 1 of {len(kit['key']['order'])}" in page and 'id="rater"' in page


def test_form_is_blind(kit):
    page, key, run = kit["html"], kit["key"], kit["run"]
    # the script is the same fixed text for every kit: nothing about an item can be in it
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert scripts == [human.JS]
    assert re.findall(r"<style>(.*?)</style>", page, re.S) == [human.CSS]
    rest = page.replace(human.JS, "").replace(human.CSS, "")
    # each item carries only its id, question and text
    for attrs in re.findall(r"<article ([^>]*)>", rest):
        assert re.fullmatch(r'class="item" data-item="i\d+" hidden', attrs), attrs
    rows = {(r["problem_id"], r["role"], r["sample"]): r for k in key["rounds"] for r in pool(run, k)}
    texts = []
    for info in key["items"].values():
        row = rows[(info["problem_id"], info["role"], info["sample"])]
        texts += [html.escape(row["question"])] + [html.escape(line) for line in row["text"].strip().splitlines()]
        assert info["problem_id"] not in page
        score = info["verifier_score"]
        if score is not None:
            for shown in (repr(score), f"{score:.4f}", f"{score:.3f}", f"{score:.2f}"):
                assert shown not in page, shown
    outside = rest
    for t in sorted(set(texts), key=len, reverse=True):
        outside = outside.replace(t, "")
    for word in ("helpful", "sneaky", "verifier", "round", "score", "problem_id", "synth-", "role"):
        assert word not in outside.lower(), word
    # and nothing in data attributes but the kit, the limit and the format
    assert set(re.findall(r"data-([a-z-]+)=", rest)) == {"kit", "seconds", "format", "item"}


def test_items_balanced_over_roles_and_correctness(kit):
    key, run = kit["key"], kit["run"]
    items = list(key["items"].values())
    for k in key["rounds"]:
        mine = [i for i in items if i["round"] == k]
        assert len(mine) == 10
        by_role = Counter(i["role"] for i in mine)
        assert by_role == {"helpful": 5, "sneaky": 5}, by_role
        rows = pool(run, k)
        for role in ROLES:
            avail_c = sum(r["role"] == role and r["correct"] for r in rows)
            avail_i = sum(r["role"] == role and not r["correct"] for r in rows)
            want_c = 3 if role == "helpful" else 2  # an odd share: the extra to the role's aligned outcome
            got_c = sum(i["role"] == role and i["correct"] for i in mine)
            assert got_c == min(avail_c, max(want_c, 5 - avail_i)), (k, role, got_c, avail_c, avail_i)
    # distinct problems where the pools allow it
    assert len({(i["problem_id"]) for i in items}) >= 18


def test_same_seed_same_file_other_seed_other_kit(kit):
    base = kit["base"]
    again = base / "again.html"
    ok(invoke(["human-export", kit["run"], "-o", again, "--seed", "0"]))
    assert again.read_bytes() == kit["form"].read_bytes()
    other = base / "other.html"
    ok(invoke(["human-export", kit["run"], "-o", other, "--seed", "1", "--per-round", "4", "--seconds", "20",
               "--rounds", "1"]))
    page = other.read_text()
    assert page != kit["html"]
    keys = {p.name for p in (kit["run"] / "eval" / "human").glob("*.key.json")}
    assert f"{kit['key']['kit_id']}.key.json" in keys and len(keys) >= 2
    new_id = re.search(r'data-kit="([0-9a-f]+)"', page).group(1)
    new_key = json.loads((kit["run"] / "eval" / "human" / f"{new_id}.key.json").read_text())
    assert new_key["rounds"] == [1] and new_key["seconds"] == 20 and len(new_key["items"]) == 4
    assert {i["round"] for i in new_key["items"].values()} == {1}
    assert Counter(i["role"] for i in new_key["items"].values()) == {"helpful": 2, "sneaky": 2}
    assert 'data-seconds="20"' in page and "20 seconds each" in page


# ---------------------------------------------------------------------------------- item picking
def synthetic_pool(counts: dict, k: int = 0, problems: int = 50) -> list[dict]:
    rows, n = [], 0
    for (role, correct), how_many in counts.items():
        for s in range(how_many):
            rows.append({"problem_id": f"p{n % problems:03d}", "round": k, "role": role, "question": f"q{n}",
                         "text": f"{role} {correct} {s}", "answer": "1", "correct": correct,
                         "verifier_score": 0.1 * n, "phase": "game", "sample": s, "tokens": 3})
            n += 1
    return rows


def test_pick_round_balances_and_falls_back():
    full = synthetic_pool({(r, c): 20 for r in ROLES for c in (True, False)})
    picked = human.pick_round(full, 0, 8, 0, set())
    assert Counter((r["role"], r["correct"]) for r in picked) == {(r, c): 2 for r in ROLES for c in (True, False)}
    odd = human.pick_round(full, 0, 7, 0, set())
    assert Counter((r["role"], r["correct"]) for r in odd) == {("helpful", True): 2, ("helpful", False): 1,
                                                               ("sneaky", False): 2, ("sneaky", True): 2}
    # no correct sneaky solution: its share goes to the incorrect sneaky ones
    few = synthetic_pool({("helpful", True): 20, ("helpful", False): 20, ("sneaky", False): 20})
    got = Counter((r["role"], r["correct"]) for r in human.pick_round(few, 0, 8, 0, set()))
    assert got == {("helpful", True): 2, ("helpful", False): 2, ("sneaky", False): 4}
    # a role with too few solutions: the other role makes up the rest
    lopsided = synthetic_pool({("helpful", True): 1, ("sneaky", False): 20, ("sneaky", True): 20})
    got = Counter(r["role"] for r in human.pick_round(lopsided, 0, 8, 0, set()))
    assert got == {"helpful": 1, "sneaky": 7}
    # deterministic from the seed, whatever the row order; another seed picks others
    assert human.pick_round(full, 0, 8, 3, set()) == human.pick_round(full[::-1], 0, 8, 3, set())
    assert human.pick_round(full, 0, 8, 3, set()) != human.pick_round(full, 0, 8, 4, set())
    # distinct problems first
    assert len({r["problem_id"] for r in picked}) == 8
    with pytest.raises(PvgError, match="only 3 solutions"):
        human.pick_round(synthetic_pool({("helpful", True): 3}), 0, 4, 0, set())


def test_make_kit_shuffles_rounds_together_with_opaque_ids():
    pools = {k: synthetic_pool({(r, c): 10 for r in ROLES for c in (True, False)}, k) for k in (0, 1, 2)}
    kit = human.make_kit(pools, 6, 30, 0)
    assert [it.id for it in kit.items] == [f"i{i:02d}" for i in range(1, 19)]
    assert Counter(it.round for it in kit.items) == {0: 6, 1: 6, 2: 6}
    rounds_in_order = [it.round for it in kit.items]
    assert rounds_in_order != sorted(rounds_in_order)  # shuffled, not round by round
    assert human.make_kit(pools, 6, 30, 0) == kit
    assert human.make_kit(pools, 6, 31, 0).kit_id != kit.kit_id  # the limit is part of the kit
    assert human.build_form(kit) == human.build_form(human.make_kit(pools, 6, 30, 0))


def test_parse_rounds():
    assert human.parse_rounds(None) is None and human.parse_rounds(" ") is None
    assert human.parse_rounds("2, 0,2") == [0, 2]
    with pytest.raises(PvgError, match="not 'a,b'"):
        human.parse_rounds("a,b")


# --------------------------------------------------------------------------------- export errors
def test_export_errors(kit, finished_run, tmp_path):
    run = kit["run"]
    form = tmp_path / "f.html"
    assert_user_error(invoke(["human-export", run, "-o", form, "--rounds", "0,7"]),
                      "round 7", "not a finished round", "finished rounds: 0, 1")
    assert_user_error(invoke(["human-export", run, "-o", tmp_path / "nope" / "f.html"]),
                      "the folder", "does not exist", "mkdir -p")
    assert_user_error(invoke(["human-export", run, "-o", tmp_path]), "is a directory")
    assert_user_error(invoke(["human-export", run, "-o", form, "--per-round", "1"]), "--per-round", "at least 2")
    assert_user_error(invoke(["human-export", run, "-o", form, "--seconds", "0"]), "--seconds")
    assert_user_error(invoke(["human-export", run, "-o", form, "--rounds", "x"]), "--rounds", "'x'")
    assert_user_error(invoke(["human-export", run, "-o", form, "--per-round", "100000"]),
                      "pool has only", "--per-round")
    assert_user_error(invoke(["human-export", tmp_path / "missing", "-o", form]), "does not exist")
    young = copy_run(finished_run, tmp_path / "young")
    state = json.loads((young / "state.json").read_text())
    state["finished"] = [p for p in state["finished"] if not p.startswith(("0/", "1/"))]
    (young / "state.json").write_text(json.dumps(state))
    assert_user_error(invoke(["human-export", young, "-o", form]), "no finished round yet", "pvg train")
    assert not form.exists() and not (young / "eval").exists()


# ------------------------------------------------------------------------------------------ import
def test_import_perfect_and_always_correct_raters(kit, tmp_path):
    key, run = kit["key"], kit["run"]
    perfect = write_answers(tmp_path / "perfect.json", key,
                            lambda i: "correct" if i["correct"] else "incorrect", rater="Perfect", seconds=2.0)
    yes = write_answers(tmp_path / "yes.json", key, lambda i: "correct", rater="Yes", seconds=4.0)
    none = write_answers(tmp_path / "slow.json", key, lambda i: None, rater="Slow")

    data = json.loads(ok(invoke(["human-import", run, perfect, "--json"])).stdout)
    assert data["kits"] == [key["kit_id"]] and data["files"] == ["perfect.json"]
    rows = {(r["round"], r["role"]): r for r in data["rows"]}
    assert set(rows) == {(k, role) for k in (0, 1, "all") for role in ("helpful", "sneaky", "all")}
    for r in data["rows"]:
        assert r["accuracy"] == 1.0 and r["mean_seconds"] == 2.0 and r["answered"] == r["items"]
        assert r["fool_rate"] in (0.0, None)
    assert rows[("all", "all")]["items"] == 20
    assert data["raters"][0]["rater"] == "Perfect" and data["raters"][0]["accuracy"] == 1.0

    data = json.loads(ok(invoke(["human-import", run, yes, "--json"])).stdout)
    items = list(key["items"].values())
    for r in data["rows"]:
        mine = [i for i in items if r["round"] in ("all", i["round"]) and r["role"] in ("all", i["role"])]
        share = sum(i["correct"] for i in mine) / len(mine)
        assert r["accuracy"] == pytest.approx(share) and r["correct_share"] == pytest.approx(share)
        sneaky_wrong = sum(i["role"] == "sneaky" and not i["correct"] for i in mine)
        assert r["sneaky_incorrect"] == sneaky_wrong
        assert r["fool_rate"] == (1.0 if sneaky_wrong else None)
    assert any(r["fool_rate"] == 1.0 for r in data["rows"])

    # three raters at once: ratings add up; timed-out items count in items only
    data = json.loads(ok(invoke(["human-import", run, perfect, yes, none, "--json"])).stdout)
    total = {(r["round"], r["role"]): r for r in data["rows"]}[("all", "all")]
    assert total["items"] == 60 and total["answered"] == 40 and total["mean_seconds"] == pytest.approx(3.0)
    slow = next(r for r in data["raters"] if r["rater"] == "Slow")
    assert slow["answered"] == 0 and slow["accuracy"] is None and slow["items"] == 20
    stored = json.loads((run / "eval" / "human.json").read_text())
    assert stored["eval"] == "human"
    assert stored["params"] == {"kits": [key["kit_id"]], "files": ["perfect.json", "slow.json", "yes.json"]}
    assert stored["rows"] == data["rows"] and data["saved"] == str(run / "eval" / "human.json")

    # the table for people
    res = ok(invoke(["human-import", run, perfect, yes]))
    for needle in ("fool rate", "accuracy", "Perfect", "Yes", "perfect.json", key["kit_id"]):
        assert needle in res.stdout, needle


def test_import_errors(kit, tmp_path):
    run, key = kit["run"], kit["key"]
    good = write_answers(tmp_path / "good.json", key, lambda i: "correct")

    def bad(name, content):
        p = tmp_path / name
        p.write_text(content if isinstance(content, str) else json.dumps(content))
        return p

    assert_user_error(invoke(["human-import", run, bad("nokey.json", {"kit_id": "ffffffffff", "answers": []})]),
                      "nokey.json", "no answer key for kit ffffffffff", key["kit_id"])
    assert_user_error(invoke(["human-import", run, bad("text.json", "not json")]),
                      "text.json", "not an answer file", "not valid JSON")
    assert_user_error(invoke(["human-import", run, bad("list.json", [1, 2])]), "list.json", "not an object")
    assert_user_error(invoke(["human-import", run, bad("metrics.json", {"rounds": []})]),
                      "metrics.json", "not an answer file", "'kit_id'")
    answers = [{"item": "i01", "answer": "yes", "seconds": 1}]
    assert_user_error(invoke(["human-import", run, bad("yes.json", {"kit_id": key["kit_id"], "answers": answers})]),
                      "yes.json", "answers[0]", "'yes'")
    answers = [{"item": "i99", "answer": "correct", "seconds": 1}]
    assert_user_error(invoke(["human-import", run, bad("stray.json", {"kit_id": key["kit_id"], "answers": answers})]),
                      "stray.json", "i99", "not in kit")
    answers = [{"item": "i01", "answer": "correct", "seconds": 1}] * 2
    assert_user_error(invoke(["human-import", run, bad("twice.json", {"kit_id": key["kit_id"], "answers": answers})]),
                      "twice.json", "i01", "answered twice")
    assert_user_error(invoke(["human-import", run, good, good]), "good.json", "given twice")
    assert_user_error(invoke(["human-import", run, tmp_path / "missing.json"]), "missing.json", "does not exist")


# ----------------------------------------------------------------------------------------- browser
def browser() -> str:
    found = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if found is None:
        pytest.skip(f"no headless browser ({', '.join(BROWSERS)}) installed; "
                    "PVG_INSTALL_BROWSER=1 bash scripts/install.sh installs one")
    return found


def dump_dom(page: Path, budget_ms: int | None = None, profile: Path | None = None) -> str:
    """The page's DOM after load (and `budget_ms` of virtual time). Headless Chromium sometimes keeps
    running after it has printed the DOM, so the DOM is read as it arrives and the browser is then
    stopped, rather than waiting for it to exit."""
    import tempfile
    import threading

    cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={profile or tempfile.mkdtemp(prefix='pvg-chromium-')}", "--dump-dom"]
    if budget_ms:
        cmd.insert(-1, f"--virtual-time-budget={budget_ms}")
    proc = subprocess.Popen([*cmd, page.resolve().as_uri()], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    timer = threading.Timer(120, proc.kill)
    timer.start()
    try:
        dom = []
        for line in proc.stdout:
            dom.append(line)
            if "</html>" in line:
                break
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()
    text = "".join(dom)
    assert "</html>" in text, f"chromium printed no DOM within 120 s: {text[-2000:]}"
    return text


def test_form_renders_in_headless_chromium(kit):
    dom = dump_dom(kit["form"])
    assert 'data-ready="1"' in dom  # the script ran to its end without an error
    first = kit["key"]["order"][0]
    article = re.search(rf'<article class="item" data-item="{first}"[^>]*>(.*?)</article>', dom, re.S)
    assert article, dom[:2000]
    question = re.search(rf'data-item="{first}" hidden><p class="question">(.*?)</p>', kit["html"]).group(1)
    assert question in article.group(1)
    assert "item 1 of 20" in dom


# Injected into a copy of the page by this test only (the product has no test hook): it plays a rater
# who forgets the name, answers two items by click and key, lets the third run out, answers the rest,
# and saves; then writes what it saw into the DOM for --dump-dom.
DRIVER = r"""
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var log = [];
  function visible() {
    return Array.prototype.filter.call(document.querySelectorAll("article.item"), function (e) { return !e.hidden; })
      .map(function (e) { return e.getAttribute("data-item"); }).join(",");
  }
  $("start").click();
  log.push("no name: " + $("intro-msg").textContent + " study hidden " + $("study").hidden);
  $("rater").value = "Test Rater";
  $("start").click();
  log.push(visible() + " " + $("progress").textContent);
  $("btn-correct").click();
  log.push(visible() + " " + $("progress").textContent);
  document.dispatchEvent(new KeyboardEvent("keydown", {key: "i"}));
  log.push(visible() + " " + $("progress").textContent);
  setTimeout(function () {
    log.push("locked " + !$("locked").hidden + " disabled " + $("btn-correct").disabled + " " + $("timer").textContent);
    $("btn-correct").click();  /* ignored: the item is locked */
    $("next").click();
    log.push(visible() + " " + $("progress").textContent + " disabled " + $("btn-correct").disabled);
    while ($("done").hidden) { $("btn-incorrect").click(); }
    $("save").click();
    var pre = document.createElement("pre");
    pre.id = "test-result";
    pre.textContent = JSON.stringify({log: log, answers: JSON.parse($("answers-json").value),
      download: $("download").getAttribute("download"), href: $("download").getAttribute("href").slice(0, 5),
      summary: $("summary").textContent});
    document.body.appendChild(pre);
  }, 2500);
})();
"""


def test_form_javascript_records_answers_and_timeouts(kit, tmp_path):
    browser()
    run = kit["run"]
    form = tmp_path / "fast.html"
    ok(invoke(["human-export", run, "-o", form, "--seconds", "2", "--per-round", "3", "--seed", "5"]))
    kit_id = re.search(r'data-kit="([0-9a-f]+)"', form.read_text()).group(1)
    driven = tmp_path / "driven.html"
    driven.write_text(form.read_text().replace("</body>", f"<script>{DRIVER}</script></body>"))
    dom = dump_dom(driven, budget_ms=8000)
    m = re.search(r'<pre id="test-result">(.*?)</pre>', dom, re.S)
    assert m, dom[-3000:]
    got = json.loads(html.unescape(m.group(1)))
    log = got["log"]
    assert log[0] == "no name: Enter your name first. study hidden true"
    assert log[1:4] == ["i01 item 1 of 6", "i02 item 2 of 6", "i03 item 3 of 6"]
    assert log[4] == "locked true disabled true 0 s"
    assert log[5] == "i04 item 4 of 6 disabled false"
    sheet = got["answers"]
    assert sheet["kit_id"] == kit_id and sheet["rater"] == "Test Rater" and sheet["format"] == human.ANSWER_FORMAT
    assert [a["item"] for a in sheet["answers"]] == [f"i0{i}" for i in range(1, 7)]
    assert [a["answer"] for a in sheet["answers"]] == ["correct", "incorrect", None, "incorrect", "incorrect",
                                                       "incorrect"]
    assert sheet["answers"][2]["seconds"] == 2
    assert all(0 <= a["seconds"] <= 2 for a in sheet["answers"])
    assert got["download"] == f"answers-{kit_id}-test-rater.json" and got["href"] == "blob:"
    assert "You answered 5 of 6" in got["summary"]
    # what the page saved imports as it is
    saved = tmp_path / got["download"]
    saved.write_text(json.dumps(sheet))
    data = json.loads(ok(invoke(["human-import", run, saved, "--json"])).stdout)
    total = {(r["round"], r["role"]): r for r in data["rows"]}[("all", "all")]
    assert total["items"] == 6 and total["answered"] == 5
