"""`pvg eval ...` on a real tiny-ci run folder (a copy of the session's `finished_run`, checkpoints
included): every command runs, stores its result and figure in RUN_DIR/eval/, reuses it on a second
call, and `pvg report` shows it. The numbers of a tiny-ci game say little; what is checked here is
that each result is consistent with the run and with itself.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
from typer.testing import CliRunner

from pvg.cli import app

pytestmark = pytest.mark.slow
ENV = {"COLUMNS": "200"}


@pytest.fixture(scope="module")
def run(finished_run, tmp_path_factory):
    dest = tmp_path_factory.mktemp("eval-run") / finished_run.name
    shutil.copytree(finished_run, dest)
    return dest


def pvg(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], env=ENV)
    return result


def ok(*args) -> dict:
    result = pvg(*args, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def stored(run, name) -> dict:
    data = json.loads((run / "eval" / f"{name}.json").read_text())
    assert (run / "eval" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def rounds_of(run) -> list[int]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["round"] for r in rows if r["kind"] == "round"]


def test_balanced_sets_take_the_first_of_each_kind_among_all_samples():
    from pvg.eval.best_of_n import pick_balanced

    first_two_right = [(True, 1), (True, 2), (False, 3), (False, 4)]
    # every sample counts (the paper's "sample many, then balance"), not only the first n
    assert pick_balanced(first_two_right, 2) == [(True, 1), (False, 3)]
    assert pick_balanced(first_two_right, 4) == first_two_right
    assert pick_balanced([(False, 1), (True, 2), (True, 3), (False, 4)], 2) == [(True, 2), (False, 1)]
    assert pick_balanced([(True, 1), (True, 2), (True, 3), (False, 4)], 4) is None  # one incorrect only


def test_best_of_n_is_balanced_and_reused(run):
    res = ok("eval", "best-of-n", run, "--n", "2", "--n", "4", "--problems", "12")
    assert res == stored(run, "best_of_n")
    assert res["samples"] == 16  # 4 x the largest n by default
    assert [r["round"] for r in res["rounds"]] == rounds_of(run)
    for r in res["rounds"]:
        assert set(r["n"]) == {"2", "4"}
        for cell in r["n"].values():
            assert 0 <= cell["problems_kept"] <= 12
            assert (cell["accuracy"] is None) == (cell["problems_kept"] == 0)
    mtime = (run / "eval" / "best_of_n.json").stat().st_mtime_ns
    again = pvg("eval", "best-of-n", run, "--n", "4", "--n", "2", "--problems", "12", "--samples", "16")
    assert again.exit_code == 0 and "reusing" in again.stderr
    assert (run / "eval" / "best_of_n.json").stat().st_mtime_ns == mtime
    forced = pvg("eval", "best-of-n", run, "--n", "2", "--n", "4", "--problems", "12", "--force")
    few = pvg("eval", "best-of-n", run, "--n", "4", "--samples", "2")
    assert few.exit_code == 2 and "--samples 2" in few.stderr
    assert forced.exit_code == 0 and "reusing" not in forced.stderr
    assert json.loads((run / "eval" / "best_of_n.json").read_text())["rounds"] == res["rounds"]  # seeded: the same


def test_pick_balanced_sets_are_nested():
    from pvg.eval.best_of_n import pick_balanced

    sols = [(True, 0.1), (True, 0.9), (False, 2.0), (True, 0.3), (False, -1.0), (False, 0.0), (True, 5.0)]
    two, four, six = (pick_balanced(sols, n) for n in (2, 4, 6))
    assert two == [(True, 0.1), (False, 2.0)]
    assert four == [(True, 0.1), (True, 0.9), (False, 2.0), (False, -1.0)]
    assert six == [(True, 0.1), (True, 0.9), (True, 0.3), (False, 2.0), (False, -1.0), (False, 0.0)]
    assert set(two) <= set(four) <= set(six)
    assert pick_balanced(sols, 8) is None  # three incorrect solutions only


def test_separability(run):
    res = ok("eval", "separability", run)
    assert [r["round"] for r in res["rounds"]] == ["initial"] + rounds_of(run)
    for r in res["rounds"]:
        assert r["train"] > 0 and r["test"] > 0
        assert r["auc"] is None or 0 <= r["auc"] <= 1


def test_discriminator_finds_a_planted_style():
    """Sneaky solutions that always say "clearly" are told apart; identical styles are not."""
    from pvg.eval.separability import discriminator_auc

    rows = [{"problem_id": f"p{i}", "role": role, "text": f"{i} + 2 = {i + 2}" + (" clearly" if role == "sneaky" else "")}
            for i in range(300) for role in ("helpful", "sneaky")]
    assert discriminator_auc(rows)["auc"] > 0.95
    same = [{**r, "text": f"{r['problem_id']} + 2"} for r in rows]
    assert abs(discriminator_auc(same)["auc"] - 0.5) < 0.1


def test_departures(run):
    """Every sneaky pool solution of a round is in one cell; one that departs nowhere is the reference,
    so it is right; a cell's gap is its wrong ones' mean score less the helpful correct mean."""
    import pyarrow.parquet as pq

    res = ok("eval", "departures", run)
    assert [r["round"] for r in res["rounds"]] == rounds_of(run)
    stored(run, "departures")
    for r in res["rounds"]:
        pool = pq.read_table(run / "pool" / f"round-{r['round']}.parquet").to_pylist()
        assert r["sneaky"] == sum(c["solutions"] for c in r["cells"]) == sum(x["role"] == "sneaky" for x in pool)
        for c in r["cells"]:
            assert 0 <= c["wrong"] <= c["solutions"]
            if c["line"] is None:
                assert c["wrong"] == 0
            if c["gap"] is not None:
                assert c["gap"] == pytest.approx(c["wrong_score"] - r["helpful_correct_score"])
    again = pvg("eval", "departures", run)
    assert again.exit_code == 0 and "reusing" in again.stderr


def test_departures_counted_by_hand():
    from pvg.eval.departures import round_departures

    ref = "buys 5 more: 12 + 5 = 17\ngives 2 away: 17 - 2 = 15\n#### 15"
    row = lambda role, text, correct, score: {"problem_id": "p", "role": role, "text": text, "correct": correct,
                                              "verifier_score": score}
    rows = [row("helpful", ref, True, 2.0), row("helpful", ref, True, 4.0),
            row("helpful", "buys 5 more: 12 + 5 = 18\n#### 18", False, 9.0),  # not a helpful *correct* one
            row("sneaky", ref, True, 3.0),
            row("sneaky", "buys 5 more: 12 + 5 = 17\ngives 2 away: 12 - 2 = 10\n#### 10", False, 1.0),
            row("sneaky", "buys 5 more: 12 + 5 = 17\ngives 2 away: 5 - 2 = 3\n#### 3", False, 2.0),
            row("sneaky", "buys 5 more: 12 + 5 = 17\ngives 2 away: 17 - 2 = 15\n#### 17", False, -1.0),
            row("sneaky", "a question of another problem", False, 0.0) | {"problem_id": "q"}]
    res = round_departures(rows, {"p": ref})
    assert res["helpful_correct_score"] == 3.0 and res["sneaky"] == 4
    assert res["cells"] == [
        {"steps": 2, "line": None, "solutions": 1, "wrong": 0, "wrong_score": None, "gap": None, "auroc": None},
        # helpful correct 2, 4 against wrong 1, 2: three pairs ordered, one tied
        {"steps": 2, "line": 1, "solutions": 2, "wrong": 2, "wrong_score": 1.5, "gap": -1.5, "auroc": 0.875},
        {"steps": 2, "line": 2, "solutions": 1, "wrong": 1, "wrong_score": -1.0, "gap": -4.0, "auroc": 1.0},  # the answer line
    ]


def test_reliability(run):
    res = ok("eval", "reliability", run, "--problems", "30")
    assert [r["round"] for r in res["rounds"]] == rounds_of(run)
    for r in res["rounds"]:
        for role in ("helpful", "sneaky"):
            assert sum(r["overall"][role].values()) == pytest.approx(1.0)
        steps = [c for c in r["bins"].values() if c["axis"] == "steps"]
        assert sum(c["helpful"]["n"] for c in steps) == 30  # every problem in exactly one steps bin
        for c in r["bins"].values():
            for role in ("helpful", "sneaky"):
                if c[role]["n"]:
                    assert sum(c[role][o] for o in ("correct", "avoidant", "incorrect")) == pytest.approx(1.0)
        assert len(r["prompt_accuracies"]) == 3
        assert r["prompt_spread"] == pytest.approx(max(r["prompt_accuracies"]) - min(r["prompt_accuracies"]))


def test_outcomes():
    from pvg.eval.reliability import outcome
    from pvg.eval.sampling import Solution

    assert outcome(Solution("p", "helpful", "3 + 4 = 7\n#### 7", "7", True, 5)) == "correct"
    assert outcome(Solution("p", "helpful", "3 + 4 = 8\n#### 8", "8", False, 5)) == "incorrect"
    assert outcome(Solution("p", "helpful", "3 + 4 =", None, False, 3)) == "avoidant"
    assert outcome(Solution("p", "helpful", "I cannot tell.\n#### 0", "0", False, 5)) == "avoidant"


def test_similarity(run):
    res = ok("eval", "similarity", run, "--problems", "30")
    ks = [str(k) for k in rounds_of(run)]
    assert list(res["kappa"]) == ks
    for a in ks:
        assert res["kappa"][a][a] == 1.0
        for b in ks:
            assert res["kappa"][a][b] == res["kappa"][b][a]
            assert res["kappa"][a][b] is None or -1 <= res["kappa"][a][b] <= 1


def test_verifier_by_prover_matrix(run):
    res = ok("eval", "matrix", run, "--problems", "30")
    ks = [str(k) for k in rounds_of(run)]
    assert res["rounds"] == ks and res == stored(run, "matrix")
    for i in ks:
        assert set(res["sneaky_fool_rate"][i]) == set(res["auroc"][i]) == set(ks)
        for j in ks:
            for v in (res["sneaky_fool_rate"][i][j], res["auroc"][i][j]):
                assert v is None or 0 <= v <= 1
    # the diagonal is the game's own pairing: verifier i judged at its threshold on prover i's solutions
    assert set(res["thresholds"]) == set(ks)


def test_judges(run):
    res = ok("eval", "judges", run, "--problems", "30")
    assert [r["round"] for r in res["rounds"]] == rounds_of(run)
    for r in res["rounds"]:
        assert set(r["judges"]) == {"full", "prefix"}
        for j in [r["verifier"], *r["judges"].values()]:
            for k in ("helpful_accuracy", "sneaky_accuracy"):
                assert j[k] is None or 0 <= j[k] <= 1
        for j in r["judges"].values():
            assert j["capa_vs_verifier"] is None or -1 <= j["capa_vs_verifier"] <= 1
            assert j["auroc"] is None or 0 <= j["auroc"] <= 1
            assert j["helpful_auroc"] is None or 0 <= j["helpful_auroc"] <= 1


def test_attack(run):
    res = ok("eval", "attack", run, "--reward", "cgc", "--max-steps", "2")
    assert res == stored(run, "attack_cgc")
    assert [r["round"] for r in res["rounds"]] == rounds_of(run)
    for r in res["rounds"]:
        assert len(r["history"]) == 2 and r["history"][0]["step"] == 1
        # the exploit test pools ppo.exploit_window (4) batches: two cannot fill it, whatever they scored
        assert not r["exploited"] and r["steps_to_exploit"] is None
        assert "over the last 4 batches together and then a fresh batch of" in res["exploit_rule"]
    assert res["lr"] == stored(run, "attack_cgc")["lr"]  # the game's ppo.lr unless --lr says otherwise
    fast = ok("eval", "attack", run, "--reward", "src_ordered", "--max-steps", "1", "--lr", "0.001")
    assert fast["lr"] == 0.001 and fast["reward"] == "src_ordered"
    gh = ok("eval", "attack", run, "--reward", "goodhart", "--max-steps", "1")
    assert gh["reward"] == "goodhart" and "accuracy < 0.2" in gh["exploit_rule"]
    bad = pvg("eval", "attack", run, "--reward", "nope")
    assert bad.exit_code == 2 and "src, src_ordered, cgc or goodhart" in bad.stderr
    last = rounds_of(run)[-1]
    one = ok("eval", "attack", run, "--reward", "src_ordered", "--max-steps", "1", "--rounds", str(last))
    assert [r["round"] for r in one["rounds"]] == [last] and one == stored(run, "attack_src_ordered")
    for rounds, says in ((f"{last + 1}", f"no finished round {last + 1}"), ("0,x", "comma-separated")):
        bad = pvg("eval", "attack", run, "--rounds", rounds)
        assert bad.exit_code == 2 and says in bad.stderr and "Traceback" not in bad.stderr
    assert pvg("eval", "attack", run, "--lr", "inf").exit_code == 2


def test_w2s(run):
    res = ok("eval", "w2s", run, "--steps", "6")  # 6 of the run's 40: the arithmetic is what is checked here
    assert res["steps"] == 6 and [r["round"] for r in res["rounds"]] == rounds_of(run)
    for r in res["rounds"]:
        assert r["train"] > 0 and r["test"] > 0
        for k in ("acc_weak", "acc_w2s", "acc_ceiling", "acc_student_untrained"):
            assert 0 <= r[k] <= 1
        assert r["student_gain"] == pytest.approx(r["acc_w2s"] - r["acc_student_untrained"])
        gap = r["acc_ceiling"] - r["acc_weak"]
        if gap > 0:
            assert r["pgr"] == pytest.approx((r["acc_w2s"] - r["acc_weak"]) / gap)
        else:  # nothing to recover
            assert r["pgr"] is None


def test_judge_round_helpful_auroc_reads_the_helpful_role_alone():
    from types import SimpleNamespace as S

    from pvg.eval.judges import judge_round

    sols = [S(role="helpful", correct=True), S(role="helpful", correct=False), S(role="helpful", correct=True),
            S(role="sneaky", correct=False), S(role="sneaky", correct=True)]
    out = judge_round([3.0, 1.0, 0.5, 2.0, -1.0], 1.5, sols)
    # helpful: correct 3.0 and 0.5 against wrong 1.0: one of two pairs ranked right
    assert out["helpful_auroc"] == 0.5
    # all five: correct {3.0, 0.5, -1.0} against wrong {1.0, 2.0}: 2 of 6 pairs
    assert out["auroc"] == pytest.approx(2 / 6)
    # accepted at 1.5: 3.0 and 2.0; helpful right on 3.0 (accepted, correct) and 1.0 (rejected, wrong)
    assert out["helpful_accuracy"] == pytest.approx(2 / 3) and out["sneaky_accepted"] == 1.0
    only_right = judge_round([1.0, 2.0], 0.0, [S(role="helpful", correct=True), S(role="sneaky", correct=False)])
    assert only_right["helpful_auroc"] is None  # one class among the helpful solutions: no ranking to judge


def test_prefix():
    from pvg.eval.judges import prefix

    assert prefix("a\nb\nc\nd") == "a\nb"
    assert prefix("a\nb\nc") == "a\nb"
    assert prefix("only") == "only"


def test_report_shows_the_evals(run, tmp_path):
    for name in ("best_of_n", "separability"):
        assert (run / "eval" / f"{name}.json").is_file(), "runs after the eval tests above"
    out = tmp_path / "r.html"
    result = pvg("report", run, "-o", out, "--examples", "0")
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert '<section id="evals">' in page
    for name in ("best_of_n", "separability"):
        assert f'id="eval-{name}"' in page
    assert page.count('class="evalfig"') == len(list((run / "eval").glob("*.png")))


def test_errors(run, finished_run, tmp_path):
    bad = pvg("eval", "best-of-n", run, "--n", "3")
    assert bad.exit_code == 2 and "even n" in bad.stderr
    young = tmp_path / "young"
    young.mkdir()
    shutil.copy(finished_run / "config.yaml", young / "config.yaml")
    (young / "state.json").write_text(json.dumps({"finished": ["initial"]}))
    for cmd in ("best-of-n", "reliability", "judges", "similarity", "matrix"):
        r = pvg("eval", cmd, young)
        assert r.exit_code == 2, (cmd, r.output)
        msg = " ".join(r.stderr.split())
        assert "no finished round yet" in msg and "pvg train" in msg, msg
    gsm8k = tmp_path / "gsm8k-run"
    shutil.copytree(run, gsm8k, ignore=shutil.ignore_patterns("eval"))
    (tmp_path / "g.jsonl").write_text(json.dumps({"question": "Ann has 3 apples and buys 2. How many?",
                                                  "answer": "3 + 2 = <<3+2=5>>5\n#### 5"}) + "\n")
    cfg = (gsm8k / "config.yaml").read_text()
    (gsm8k / "config.yaml").write_text(cfg.replace("source: synthetic\n  path: null", f"source: jsonl\n  path: {tmp_path}/g.jsonl", 1))
    r = pvg("eval", "departures", gsm8k)
    assert r.exit_code == 2 and "compact references" in " ".join(r.stderr.split()), r.output
    missing = pvg("eval", "separability", tmp_path / "nope")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_judges_need_the_warm_start(run, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(run, moved, ignore=shutil.ignore_patterns("eval"))
    cfg = (moved / "config.yaml").read_text()
    (moved / "config.yaml").write_text(cfg.replace("cache_dir: ", f"cache_dir: {tmp_path}/no-cache #", 1))
    for cmd in (["judges", "--problems", "4"], ["attack", "--max-steps", "1"]):
        r = pvg("eval", *cmd, moved)
        assert r.exit_code == 2, r.output
        assert "pvg warmstart" in " ".join(r.stderr.split())


def test_store_rejects_a_changed_run(run):
    from pvg.eval.store import EvalRun, cached, save

    ev = EvalRun.open(run)
    save(ev, "probe", {"a": 1}, {"value": math.nan})
    assert cached(ev, "probe", {"a": 1})["value"] is None  # NaN is stored as null: strict JSON
    assert cached(ev, "probe", {"a": 2}) is None
    ev.info.finished.add("99/eval")  # as if the run played on
    assert cached(ev, "probe", {"a": 1}) is None
    (run / "eval" / "probe.json").unlink()
