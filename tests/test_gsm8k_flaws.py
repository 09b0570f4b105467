"""Flaws planted in GSM8K's own annotated solutions (pvg/data/gsm8k_flaws.py), on hand-made items."""

from __future__ import annotations

import random

import pytest

from pvg.data.gsm8k_flaws import planted_flaws, plant, read_program, with_planted_flaws, evaluate, parse_number
from pvg.data.grading import extract_answer, is_correct
from pvg.data.problems import Problem, stable_id
from pvg.data.synth import DEFAULT_FLAW_KINDS


def gsm8k(question: str, answer: str) -> Problem:
    final = answer.rsplit("####", 1)[1].strip()
    return Problem(id=stable_id("gsm8k", question), question=question, answer=final, reference=answer)


NATALIA = gsm8k(
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips "
    "did Natalia sell altogether in April and May?",
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April "
    "and May.\n#### 72")
WENG = gsm8k(
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
    "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n"
    "#### 10")
SODA = gsm8k(
    "Rebecca bought 3 packs of 6 bottles of soda. She drinks 4 half bottles a day. How many bottles are left after 7 "
    "days?",
    "Rebecca bought 3 * 6 = <<3*6=18>>18 bottles of soda.\nShe drinks 4 * 7 = <<4*7=28>>28 half bottles in a week.\n"
    "That is 28 / 2 = <<28/2=14>>14 bottles.\nShe has 18 - 14 = <<18-14=4>>4 bottles left.\n#### 4")
ITEMS = [NATALIA, WENG, SODA]


def consistent_except(text: str, step: int | None) -> bool:
    """Every annotation computes its result (bar the slipped one), as the reference's do."""
    import re

    for j, m in enumerate(re.finditer(r"<<([^<>=]+)=([^<>=]+)>>", text)):
        if j != step and evaluate(re.findall(r"\d*\.\d+|\d+|[-+*/()]", m.group(1))) != parse_number(m.group(2)):
            return False
    return True


@pytest.mark.parametrize("kind", DEFAULT_FLAW_KINDS + ("miscopied_answer", "stale_operand"))
def test_each_kind_is_wrong_and_self_consistent(kind):
    made = 0
    for p in ITEMS:
        for k in range(len(read_program(p.reference))):
            for seed in range(3):
                f = plant(p, kind, k, random.Random(seed))
                if f is None:
                    continue
                made += 1
                assert f.flaw.kind == kind and f.flaw.step == k
                assert not is_correct(f.text, p.answer), (p.reference, f.text)
                assert extract_answer(f.text) is not None and is_correct(f.text, f.answer)
                assert f.text.count("####") == 1 and f.text.rstrip().endswith(f"#### {f.answer}")
                if kind == "arithmetic_slip":
                    assert consistent_except(f.text, k) and not consistent_except(f.text, None)
                elif kind != "miscopied_answer":
                    assert read_program(f.text) is not None, f.text  # every annotation computes its result
    assert made, f"no {kind} planted in any hand-made item"


def test_later_steps_are_recomputed_from_the_flaw():
    f = plant(NATALIA, "arithmetic_slip", 0, random.Random(0))
    off = int(f.text.split("<<48/2=")[1].split(">>")[0]) - 24
    assert off != 0
    # the second step uses the slipped value, in the annotation and in the visible text, and the answer follows
    assert f"48+{24 + off}=<<48+{24 + off}={72 + off}>>{72 + off}" in f.text.replace(" ", "")
    assert f.answer == str(72 + off)


def test_misread_quantity_changes_a_number_of_the_question_in_text_and_annotation():
    f = plant(SODA, "misread_quantity", 1, random.Random(0))  # 4 * 7: both numbers are the question's
    line = f.text.splitlines()[1]
    visible, annotation = line.split("<<")[0], line.split("<<")[1].split(">>")[0]
    assert visible.replace(" ", "").rstrip("=").endswith(annotation.split("=")[0]) and annotation.split("=")[0] != "4*7"


def test_dropped_step_removes_its_line_and_redirects_later_uses():
    f = plant(SODA, "dropped_step", 1, random.Random(0))  # drop 4 * 7: the next step halves the 4 it started from
    assert "4 * 7" not in f.text and len(f.text.splitlines()) == len(SODA.reference.splitlines()) - 1
    assert "<<4/2=2>>2" in f.text and "<<18-2=16>>16" in f.text and f.answer == "16"
    assert plant(SODA, "dropped_step", 2, random.Random(0)) is None  # 18 - 28 < 0: no negative answers


def test_stale_value_uses_the_value_before_the_last_step():
    f = plant(NATALIA, "stale_value", 1, random.Random(0))  # 48 + 24 → 48 + 48
    assert "<<48+48=96>>96" in f.text and f.answer == "96"


def test_stale_operand_uses_a_number_the_earlier_step_started_from():
    made = {plant(NATALIA, "stale_operand", 1, random.Random(seed)).text for seed in range(8)}  # 48/2=24, 48+24
    assert made and all("<<48+48=96>>96" in t or "<<48+2=50>>50" in t for t in made), made
    assert plant(NATALIA, "stale_operand", 0, random.Random(0)) is None  # the first step builds on nothing


def test_unreadable_or_inconsistent_solutions_get_no_flaw():
    wrong = gsm8k("A question with 2 and 3?", "2+3 = <<2+3=6>>6\n#### 6")
    prose = gsm8k("A question with 2 and 3?", "Add them to get 5.\n#### 5")
    assert planted_flaws(wrong, DEFAULT_FLAW_KINDS, 2, random.Random(0)) == ()
    assert planted_flaws(prose, DEFAULT_FLAW_KINDS, 2, random.Random(0)) == ()


def test_planting_is_seeded_per_problem():
    alone = with_planted_flaws([WENG], DEFAULT_FLAW_KINDS, 2, seed=0)[0]
    among = with_planted_flaws([NATALIA, SODA, WENG], DEFAULT_FLAW_KINDS, 2, seed=0)[2]
    assert alone.flawed and alone.flawed == among.flawed
    assert len({f.text for f in alone.flawed}) == len(alone.flawed) <= 2


def test_data_preview_shows_flaws_planted_in_gsm8k(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from pvg.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.jsonl").write_text("".join(json.dumps({"question": p.question, "answer": p.reference}) + "\n"
                                              for p in ITEMS))
    (tmp_path / "g.yaml").write_text("data:\n  source: jsonl\n  path: g.jsonl\n  split: {prover: 0.98, verifier: 0.01}\n")
    result = CliRunner().invoke(app, ["data", "preview", "g.yaml", "-n", "3"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "flawed" in result.stdout and "step" in result.stdout


def test_without_real_gsm8k_the_hub_tests_play_on_generated_gsm8k_format(monkeypatch, tmp_path):
    import hubkit
    from pvg.data.problems import load_jsonl

    monkeypatch.setattr(hubkit, "GSM8K", tmp_path / "absent")
    problems, source = hubkit.gsm8k_problems(20)
    assert source.startswith("generated") and len(problems) == 20
    loaded = load_jsonl(hubkit.write_gsm8k_jsonl(problems, tmp_path / "g.jsonl"))
    assert [p.answer for p in loaded] == [p.answer for p in problems]
    assert all(read_program(p.reference) and int(p.answer) < 10 for p in loaded)
    assert all(planted_flaws(p, DEFAULT_FLAW_KINDS, 1, random.Random(0)) for p in loaded[:5])


def test_a_fixed_step_kind_goes_at_the_first_or_last_step_it_fits():
    """SODA's first two steps build on nothing (3*6, 4*7), its third and fourth on earlier results
    (28/2, 18-14): as a first-step kind, stale_operand lands on the third, as a last-step kind on the
    fourth, every seed."""
    for seed in range(12):
        f, = planted_flaws(SODA, ["stale_operand"], 1, random.Random(seed), {"stale_operand": "first"})
        assert f.flaw.step == 2, f.text
    for seed in range(12):  # as a last-step kind, on the fourth (18-14), every seed
        f, = planted_flaws(SODA, ["stale_operand"], 1, random.Random(seed), {"stale_operand": "last"})
        assert f.flaw.step == 3, f.text
    drawn = {f.flaw.step for seed in range(12) for f in planted_flaws(SODA, ["stale_operand"], 1, random.Random(seed))}
    assert len(drawn) > 1  # at random it goes at more than one step
