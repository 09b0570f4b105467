import hashlib
import json
import random
import re
from collections import Counter

import pytest

from pvg.data.grading import is_correct
from pvg.data.flaw_draw import KindDraw
from pvg.data.synth import DEFAULT_FLAW_KINDS, FLAW_KINDS, generate

# "<the question's words for the step>: a op b = c"
LINE = re.compile(r"^[^:\n]+: (\d+) ([-+*/]) (\d+) = (-?\d+)$")
FINAL = re.compile(r"^#### (-?\d+)$")


def parse(compact: str) -> tuple[list[tuple[int, str, int, int]], int]:
    """Compact solution -> ([(a, op, b, c), ...], final answer); asserts the shape."""
    lines = compact.split("\n")
    m = FINAL.match(lines[-1])
    assert m, f"no final '#### N' line in {compact!r}"
    steps = []
    for line in lines[:-1]:
        s = LINE.match(line)
        assert s, f"malformed line {line!r} in {compact!r}"
        a, op, b, c = int(s[1]), s[2], int(s[3]), int(s[4])
        steps.append((a, op, b, c))
    return steps, int(m[1])


def valid(a: int, op: str, b: int, c: int) -> bool:
    if op == "+":
        return a + b == c
    if op == "-":
        return a - b == c
    if op == "*":
        return a * b == c
    return b != 0 and a % b == 0 and a // b == c


@pytest.fixture(scope="module")
def problems():
    return generate(500, seed=3, min_steps=2, max_steps=6, flaw_kinds=FLAW_KINDS)


def test_deterministic_and_seed_dependent():
    a = generate(15, seed=11)
    assert a == generate(15, seed=11)
    b = generate(15, seed=12)
    assert [p.id for p in a] != [p.id for p in b]


def test_ids_and_questions_unique(problems):
    assert len(problems) == 500
    assert len({p.id for p in problems}) == len(problems)
    assert len({p.question for p in problems}) == len(problems)
    assert all(p.id.startswith("synth-") for p in problems)


@pytest.mark.parametrize("lo, hi", [(2, 2), (3, 5), (6, 6), (2, 6)])
def test_steps_within_bounds(lo, hi):
    ps = generate(40, seed=1, min_steps=lo, max_steps=hi)
    for p in ps:
        assert lo <= p.difficulty.steps <= hi
        steps, _ = parse(p.compact_reference)
        assert len(steps) == p.difficulty.steps
    if lo < hi:
        assert len({p.difficulty.steps for p in ps}) > 1


def test_references_correct(problems):
    for p in problems:
        steps, final = parse(p.compact_reference)
        for a, op, b, c in steps:
            assert valid(a, op, b, c), (p.compact_reference, (a, op, b, c))
            assert min(a, b, c) >= 0
        assert str(final) == p.answer == str(steps[-1][3])
        assert is_correct(p.reference, p.answer)
        # the GSM8K-style text carries the same arithmetic as the compact one
        gsm_lines = p.reference.split("\n")
        assert len(gsm_lines) == len(steps) + 1 and gsm_lines[-1] == f"#### {p.answer}"
        for line, (a, op, b, c) in zip(gsm_lines, steps):
            assert line.endswith(f": {a}{op}{b} = <<{a}{op}{b}={c}>>{c}"), line


def test_questions_mention_their_numbers(problems):
    for p in problems[:100]:
        steps, _ = parse(p.compact_reference)
        q_numbers = set(re.findall(r"\d+", p.question))
        assert str(steps[0][0]) in q_numbers or str(steps[0][2]) in q_numbers


def test_magnitude_counts_every_number(problems):
    for p in problems:
        numbers = [int(x) for x in re.findall(r"\d+", p.question + "\n" + p.compact_reference)]
        assert p.difficulty.magnitude == len(str(max(numbers))), (p.question, p.compact_reference)


def test_magnitude_covers_results_and_operands(problems):
    for p in problems:
        steps, _ = parse(p.compact_reference)
        largest = max(max(b, c) for _, _, b, c in steps)
        assert p.difficulty.magnitude >= len(str(largest))


def test_flawed_answers_are_wrong(problems):
    for p in problems:
        assert 1 <= len(p.flawed) <= 2
        assert len({(f.flaw.kind, f.flaw.step) for f in p.flawed}) == len(p.flawed)
        for f in p.flawed:
            assert f.answer != p.answer
            assert not is_correct(f.text, p.answer)
            assert is_correct(f.text, f.answer)
            assert f.text.endswith(f"#### {f.answer}")


def test_flawed_texts_distinct(problems):
    for p in problems:
        assert len({f.text for f in p.flawed}) == len(p.flawed), p.flawed


def test_flaw_is_one_changed_step(problems):
    for p in problems:
        ref, _ = parse(p.compact_reference)
        for f in p.flawed:
            lines, final = parse(f.compact)
            ctx = (f.flaw, p.compact_reference, f.compact)
            k = f.flaw.step
            assert 0 <= k < len(ref), ctx
            assert str(final) == f.answer, ctx
            if f.flaw.kind == "miscopied_answer":  # every line the reference's, only `#### N` off
                assert k == len(ref) - 1 and lines == ref, ctx
                assert final != lines[-1][3], ctx
                continue
            assert f.answer == str(lines[-1][3]), ctx
            assert all(min(a, b, c) >= 0 for a, _, b, c in lines), ctx
            bad = [j for j, line in enumerate(lines) if not valid(*line)]
            assert f.compact != p.compact_reference, ctx
            if f.flaw.kind == "arithmetic_slip":
                assert bad == [k], ctx
                assert len(lines) == len(ref) and lines[:k] == ref[:k], ctx
                a, op, b, c = lines[k]
                assert (a, op, b) == ref[k][:3] and c != ref[k][3], ctx
                continue
            assert bad == [], ctx
            if f.flaw.kind == "dropped_step":
                assert len(lines) == len(ref) - 1, ctx
                assert lines[:k] == ref[:k], ctx
            else:
                assert len(lines) == len(ref), ctx
                first_diff = next(j for j, (x, y) in enumerate(zip(lines, ref)) if x != y)
                assert first_diff == k, ctx
                a, op, b, _ = lines[k]
                ra, rop, rb, _ = ref[k]
                if f.flaw.kind == "wrong_operation":
                    assert (a, b) == (ra, rb) and op != rop, ctx
                elif f.flaw.kind == "misread_quantity":
                    assert a == ra and op == rop and b != rb, ctx
                elif f.flaw.kind == "stale_operand":  # an earlier result's own operand in its place
                    assert k >= 1 and op == rop and (a == ra) != (b == rb), ctx
                    old_v, new_v = (ra, a) if a != ra else (rb, b)
                    assert any(ref[j][3] == old_v and new_v in (ref[j][0], ref[j][2]) for j in range(k)), ctx
                else:  # stale_value: the value before the previous step is used again
                    assert k >= 1 and op == rop and b == rb and a == ref[k - 1][0] and a != ra, ctx


def test_every_flaw_kind_appears(problems):
    kinds = Counter(f.flaw.kind for p in problems for f in p.flawed)
    assert set(kinds) == set(FLAW_KINDS)
    assert min(kinds.values()) >= 20, kinds


def test_default_kinds_leave_the_answer_line_alone():
    """`miscopied_answer` is opt-in: a config that names no kinds gets the problems it always had."""
    ps = generate(200, seed=3)
    assert {f.flaw.kind for p in ps for f in p.flawed} == set(FLAW_KINDS) - {"miscopied_answer", "stale_operand"}


def test_the_configs_flaw_kinds_are_the_generators():
    """`data.flaw_kinds` is validated and defaulted in pvg.config, which imports nothing of the data
    side: its kinds and its default must stay the ones synth plants and plants by default."""
    from typing import get_args

    from pvg.config import DataConfig, FlawKind

    assert get_args(FlawKind) == FLAW_KINDS
    assert DataConfig().flaw_kinds == list(DEFAULT_FLAW_KINDS)


def test_flaw_kinds_restricted():
    ps = generate(60, seed=5, flaw_kinds=["dropped_step", "stale_value"], flaws_per_problem=3)
    kinds = {f.flaw.kind for p in ps for f in p.flawed}
    assert kinds == {"dropped_step", "stale_value"}
    ps = generate(30, seed=5, flaw_kinds=["wrong_operation"])
    assert {f.flaw.kind for p in ps for f in p.flawed} == {"wrong_operation"}
    assert all(p.flawed for p in ps)


def test_flaws_per_problem():
    ps = generate(30, seed=2, flaws_per_problem=4, min_steps=4, max_steps=6)
    assert all(1 <= len(p.flawed) <= 4 for p in ps)
    assert sum(len(p.flawed) == 4 for p in ps) >= 25


def test_kinds_are_drawn_in_turn_and_a_failing_kind_gives_up():
    draw = KindDraw(["a", "b", "c"], random.Random(0), give_up=2)
    first = []
    for _ in range(3):
        first.append(draw.next())
        draw.record(first[-1], True)
    assert sorted(first) == ["a", "b", "c"]  # each kind once before any twice
    draw.record("a", False)
    draw.record("a", False)
    assert {draw.next() for _ in range(30)} == {"b", "c"}
    for kind in "bb" "cc":
        draw.record(kind, False)
    assert draw.next() is None


def test_a_kind_that_fits_is_planted_in_nearly_every_problem():
    """The tiny config's four kinds, four flaws a problem: drawn uniformly, stale_operand was missing
    from 33% of the problems though it fits nearly all of them (the sneaky role's warm start is taught
    that kind only)."""
    kinds = ["wrong_operation", "misread_quantity", "dropped_step", "stale_operand"]
    ps = generate(400, seed=0, min_steps=2, max_steps=3, flaws_per_problem=4, flaw_kinds=kinds)
    for kind in ("wrong_operation", "stale_operand"):  # fit every step / every step that uses a result
        assert sum(any(f.flaw.kind == kind for f in p.flawed) for p in ps) / len(ps) >= 0.9, kind


def test_max_start_bounds_starting_quantity():
    for p in generate(40, seed=9, max_start=5):
        start = int(re.search(r"\d+", p.question)[0])
        assert 2 <= start <= 5, p.question


@pytest.mark.parametrize("end", ["first", "last"])
def test_a_fixed_step_kind_goes_at_the_first_or_last_step_it_fits(end):
    """No step before (first) or after (last) the planted one takes the kind in any of many draws (it
    does not fit there, or only as a copy of another of the problem's flaws), and without fixed-step
    kinds the problems are drawn as before."""
    from pvg.data.synth import _story, execute, plant_flaw, render

    kinds = ["wrong_operation", "misread_quantity", "dropped_step", "stale_operand"]
    fixed = generate(300, seed=0, min_steps=2, max_steps=3, flaws_per_problem=4, flaw_kinds=kinds,
                     fixed_steps={"stale_operand": end})
    pick = min if end == "first" else max  # a second one goes at a step further in
    stale = [(p, pick((f for f in p.flawed if f.flaw.kind == "stale_operand"), key=lambda f: f.flaw.step))
             for p in fixed if any(f.flaw.kind == "stale_operand" for f in p.flawed)]
    assert len(stale) >= 250
    steps_of = {}
    rng = random.Random(0)
    for _ in range(200_000):  # the stories behind the problems, found again by their question
        story = _story(rng, rng.randint(2, 3), 30, 20, 200)
        if story:
            steps_of.setdefault(story[0], story[1])
    checked = 0
    for p, f in stale:
        steps = steps_of.get(p.question)
        if steps is None:
            continue
        checked += 1
        passed = range(f.flaw.step) if end == "first" else range(f.flaw.step + 1, len(steps))
        for k in passed:  # every step tried before it: no draw plants a wrong answer there
            for seed in range(16):
                planted = plant_flaw(steps, "stale_operand", k, random.Random(seed))
                values = planted and execute(planted.steps, planted.slip)
                if values and str(values[-1]) != p.answer:
                    text = render(planted.steps, values, "compact", values[-1])
                    assert text in {g.compact for g in p.flawed}, (p.question, k, f.flaw.step)
    assert checked >= 50
    at = Counter(f.flaw.step for p, f in stale if p.reference.count("<<") == 3)  # 3-step problems
    assert (at[1] > at[2]) if end == "first" else (at[2] > 5 * at[1])
    randoms = generate(300, seed=0, min_steps=2, max_steps=3, flaws_per_problem=4, flaw_kinds=kinds)
    fingerprint = hashlib.sha256(json.dumps([p.to_json() for p in randoms]).encode()).hexdigest()[:16]
    assert fingerprint == "25975ea64d17bac8"  # these problems as drawn before first_step_kinds existed (8ec7ca2)
    assert randoms != fixed


def test_first_step_kinds_must_be_planted_kinds():
    from pydantic import ValidationError

    from pvg.config import DataConfig

    both = DataConfig(flaw_kinds=["wrong_operation", "stale_operand"], first_step_kinds=["wrong_operation"],
                      last_step_kinds=["stale_operand"])
    assert both.fixed_steps == {"wrong_operation": "first", "stale_operand": "last"}
    assert DataConfig().fixed_steps == {}

    with pytest.raises(ValidationError, match="first_step_kinds names stale_operand"):
        DataConfig(flaw_kinds=["wrong_operation"], first_step_kinds=["stale_operand"])
    with pytest.raises(ValidationError, match="last_step_kinds names stale_operand"):
        DataConfig(flaw_kinds=["wrong_operation"], last_step_kinds=["stale_operand"])
    with pytest.raises(ValidationError, match="stale_operand is in both"):
        DataConfig(flaw_kinds=["stale_operand"], first_step_kinds=["stale_operand"], last_step_kinds=["stale_operand"])
