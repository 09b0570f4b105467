"""Seeded GSM-style word problems with reference solutions and subtly flawed ones.

A problem is a short story about one running quantity (counts, money, minutes, pages per day) and
its solution is a tiny program: each step combines the running value (or a sub-result) with a
number from the question. Keeping the program explicit is what lets us plant exactly one flaw at
one step, recompute everything after it honestly, and check the invariants in tests. The rendered
lines are short and regular on purpose: a ~1M-parameter model can learn them in minutes.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

from pvg.data.flaw_draw import FixedSteps, KindDraw, steps_to_try
from pvg.data.problems import Difficulty, Flaw, FlawedSolution, Problem, stable_id

FLAW_KINDS = ("arithmetic_slip", "wrong_operation", "misread_quantity", "dropped_step", "stale_value", "miscopied_answer",
              "stale_operand")
# What is planted unless asked otherwise (`data.flaw_kinds`' default): the five that change a step.
# `miscopied_answer` is opt-in, so the problems of every config written before it stay the same.
DEFAULT_FLAW_KINDS = FLAW_KINDS[:5]
MAX_VALUE = 9999

# ("q", v) is a number read from the question, ("s", j) the result of step j.
Ref = tuple[str, int]


@dataclass(frozen=True)
class Step:
    op: str  # one of + - * /
    left: Ref
    right: Ref
    cue: str = ""  # the question's words for this step, {L}/{R} standing for the quoted numbers


def _cue(sentence_template: str) -> str:
    """`{n} buys {b} more.` → `buys {R} more`: the line quotes the question before computing.

    Quoting is what a careful GSM8K solution does ("She buys 5 more, so 12+5=17"), and for a tiny
    model it turns finding the right number into copying the word after a repeated cue.
    """
    body = sentence_template.removeprefix("{n} ").rstrip(".").replace("{b}", "{R}")
    m = re.match(r"^(.*\{[bcLR]\})( [a-z]+)?", body)  # up to the last number, and one word more
    return m.group(0) if m else body


NAMES = ["Sam", "Ana", "Tom", "Mia", "Leo", "Ivy", "Max", "Zoe", "Ben", "Eva"]

# Each context: the opening sentence, sentences per operation ({b} the number, {c} a second one for
# "group" sentences, which take two steps: b*c, then add it), and the question.
CONTEXTS = [
    {
        "items": ["apples", "pens", "cards", "stickers", "marbles", "eggs", "books", "shells"],
        "start": "{n} has {a} {i}.",
        "+": ["{n} buys {b} more.", "{n} finds {b} more.", "{n} gets {b} more."],
        "-": ["{n} gives away {b}.", "{n} loses {b}.", "{n} sells {b}."],
        "*": ["{n} gets {b} times as many."],
        "/": ["{n} splits them into {b} equal bags and keeps one bag."],
        "g": ["{n} buys {b} boxes of {c}.", "{n} gets {b} packs of {c}."],
        "q": "How many {i} does {n} have now?",
    },
    {
        "items": ["dollars"],
        "start": "{n} has ${a}.",
        "+": ["{n} earns ${b}.", "{n} gets a gift of ${b}."],
        "-": ["{n} spends ${b}.", "{n} pays ${b} for lunch."],
        "*": ["{n} saves until it is {b} times as much."],
        "/": ["{n} splits it into {b} equal jars and keeps one jar."],
        "g": ["{n} works {b} hours at ${c} per hour.", "{n} sells {b} cakes at ${c} each."],
        "q": "How many dollars does {n} have now?",
    },
    {
        "items": ["minutes"],
        "start": "{n} plays for {a} minutes.",
        "+": ["{n} plays {b} more minutes."],
        "-": ["{n} stops {b} minutes early."],
        "*": ["{n} plays until it is {b} times as long."],
        "/": ["{n} splits the time over {b} equal days and counts one day."],
        "g": ["{n} plays {b} days for {c} minutes a day."],
        "q": "How many minutes does {n} count now?",
    },
    {
        "items": ["pages"],
        "start": "{n} has read {a} pages.",
        "+": ["{n} reads {b} more pages."],
        "-": ["{n} takes off {b} pages read twice."],
        "*": ["{n} reads until it is {b} times as many."],
        "/": ["{n} splits the pages into {b} equal parts and counts one part."],
        "g": ["{n} reads {c} pages a day for {b} days."],
        "q": "How many pages has {n} read now?",
    },
]


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        return None
    return a / b


def execute(steps: Sequence[Step], slip: dict[int, int] | None = None) -> list[int] | None:
    """Run a solution program; None when a value leaves the whole numbers 0..MAX_VALUE."""
    values: list[int] = []
    for j, st in enumerate(steps):
        a = st.left[1] if st.left[0] == "q" else values[st.left[1]]
        b = st.right[1] if st.right[0] == "q" else values[st.right[1]]
        r = _apply(st.op, Fraction(a), Fraction(b))
        if r is None or r.denominator != 1 or not 0 <= r <= MAX_VALUE:
            return None
        values.append(int(r) + (slip or {}).get(j, 0))
        if not 0 <= values[-1] <= MAX_VALUE:
            return None
    return values


def _operand(ref: Ref, values: list[int]) -> int:
    return ref[1] if ref[0] == "q" else values[ref[1]]


def render(steps: Sequence[Step], values: list[int], style: str, answer: int | None = None) -> str:
    """`compact`: the tiny models' lines `12 + 5 = 17`; `gsm8k`: with `<<12+5=17>>` annotations.

    `answer` is the final `#### N` (default: the last line's result; another for a miscopied answer)."""
    lines = []
    for st, v in zip(steps, values):
        a, b = _operand(st.left, values), _operand(st.right, values)
        cue = st.cue.format(L=a, R=b, i="") if st.cue else "so"
        if style == "compact":
            lines.append(f"{cue}: {a} {st.op} {b} = {v}")
        else:
            lines.append(f"{cue}: {a}{st.op}{b} = <<{a}{st.op}{b}={v}>>{v}")
    lines.append(f"#### {values[-1] if answer is None else answer}")
    return "\n".join(lines)


def _story(rng: random.Random, n_steps: int, max_start: int, max_operand: int = 20,
           max_value: int = 200) -> tuple[str, list[Step]] | None:
    ctx = rng.choice(CONTEXTS)
    fmt = {"n": rng.choice(NAMES), "i": rng.choice(ctx["items"])}
    start = rng.randint(2, max_start)
    sentences = [ctx["start"].format(a=start, **fmt)]
    steps: list[Step] = []
    cur: Ref = ("q", start)
    value = start
    while len(steps) < n_steps:
        remaining = n_steps - len(steps)
        choices = ["+", "-", "*", "/"] + (["g", "g"] if remaining >= 2 else [])
        op = rng.choice(choices)
        template = rng.choice(ctx[op])
        if op == "+":
            b = rng.randint(1, max_operand)
            steps.append(Step("+", cur, ("q", b), _cue(template)))
            value += b
        elif op == "-":
            if value < 3:
                continue
            b = rng.randint(1, min(max_operand, value - 1))
            steps.append(Step("-", cur, ("q", b), _cue(template)))
            value -= b
        elif op == "*":
            b = rng.randint(2, 3)
            if value * b > max_value:
                continue
            steps.append(Step("*", cur, ("q", b), _cue(template)))
            value *= b
        elif op == "/":
            divisors = [d for d in (2, 3, 4, 5) if value % d == 0 and value // d >= 2]
            if not divisors:
                continue
            b = rng.choice(divisors)
            steps.append(Step("/", cur, ("q", b), _cue(template)))
            value //= b
        else:
            b, c = rng.randint(2, 5), rng.randint(2, max(2, min(10, max_operand)))
            steps.append(Step("*", ("q", b), ("q", c), _cue(template).replace("{R}", "{L}").replace("{c}", "{R}")))
            steps.append(Step("+", cur, ("s", len(steps) - 1), "in all"))
            value += b * c
            sentences.append(template.format(b=b, c=c, **fmt))
            cur = ("s", len(steps) - 1)
            continue
        sentences.append(template.format(b=steps[-1].right[1], **fmt))
        cur = ("s", len(steps) - 1)
    sentences.append(ctx["q"].format(**fmt))
    return " ".join(sentences), steps


def _redirect(steps: list[Step], old: int, new: Ref) -> list[Step]:
    """Steps after `old` is removed: refs to it point at `new`, later step refs shift down by one."""

    def fix(r: Ref) -> Ref:
        if r[0] != "s":
            return r
        if r[1] == old:
            return new
        return ("s", r[1] - 1) if r[1] > old else r

    return [Step(s.op, fix(s.left), fix(s.right), s.cue) for j, s in enumerate(steps) if j != old]


@dataclass(frozen=True)
class Planted:
    steps: list[Step]
    slip: dict[int, int]  # step -> what its written result is off by (an arithmetic slip)
    answer_off: int = 0  # what the final `#### N` is off by from the last result (a miscopied answer)


def plant_flaw(steps: list[Step], kind: str, k: int, rng: random.Random) -> Planted | None:
    """The program with one flaw at step k; None if the kind can't apply there."""
    st = steps[k]
    if kind == "arithmetic_slip":
        return Planted(list(steps), {k: rng.choice([1, -1, 2, -2, 10, -10])})
    if kind == "miscopied_answer":
        # Every line right, the `#### N` line not the last result: the slip a tiny prover whose lines
        # are calculator-checked still makes when it copies the answer itself (`prover.calculator_answer`
        # off). Planted at the last step only, so there is one per solution and `step` names the
        # result that was copied wrongly.
        if k != len(steps) - 1:
            return None
        return Planted(list(steps), {}, rng.choice([1, -1, 2, -2, 10, -10]))
    if kind == "wrong_operation":
        swapped = {"+": "-", "-": "+", "*": "+", "/": "-"}[st.op]
        return Planted(steps[:k] + [Step(swapped, st.left, st.right, st.cue)] + steps[k + 1 :], {})
    if kind == "misread_quantity":
        if st.right[0] != "q":
            return None
        b = st.right[1]
        digits = str(b)
        options = [b + 1, b + 2, b - 1] + ([int(digits[::-1])] if len(digits) == 2 and digits[0] != digits[1] else [])
        options = [o for o in options if o > 0 and o != b]
        return Planted(steps[:k] + [Step(st.op, st.left, ("q", rng.choice(options)), st.cue)] + steps[k + 1 :], {})
    if kind == "dropped_step":
        if len(steps) < 2 or st.left[0] != "s" and k != 0:
            return None
        if k == 0 and steps[0].left[0] != "q":
            return None
        if any(s.right == ("s", k) for s in steps):  # dropping a sub-product would orphan its use
            return None
        return Planted(_redirect(steps, k, st.left), {})
    if kind == "stale_value":
        if k == 0 or st.left != ("s", k - 1):
            return None
        prev = steps[k - 1]
        return Planted(steps[:k] + [Step(st.op, prev.left, st.right, st.cue)] + steps[k + 1 :], {})
    if kind == "stale_operand":
        # stale_value's wider family: either operand that is an earlier step's result is replaced by one
        # of that step's own operands, the number it started from. It fits every step that builds on an
        # earlier one (stale_value: the left operand and the step just before, only).
        sides = [side for side in ("left", "right") if getattr(st, side)[0] == "s"]
        if not sides:
            return None
        side = rng.choice(sides)
        source = steps[getattr(st, side)[1]]
        stale = rng.choice([source.left, source.right])
        changed = Step(st.op, stale, st.right, st.cue) if side == "left" else Step(st.op, st.left, stale, st.cue)
        return Planted(steps[:k] + [changed] + steps[k + 1 :], {})
    raise ValueError(f"unknown flaw kind {kind!r}")


def flawed_solutions(
    steps: list[Step], answer: int, kinds: Sequence[str], count: int, rng: random.Random,
    fixed_steps: FixedSteps | None = None,
) -> list[FlawedSolution]:
    out: list[FlawedSolution] = []
    seen: set[tuple[str, int]] = set()
    draw = KindDraw(kinds, rng)
    for _ in range(40):
        if len(out) == count or (kind := draw.next()) is None:
            break
        made = None
        for k in steps_to_try(kind, len(steps), rng, fixed_steps):
            if (kind, k) not in seen and (made := _flawed(steps, answer, kind, k, rng, out)) is not None:
                break
        draw.record(kind, made is not None)
        if made is not None:
            seen.add((kind, made.flaw.step))
            out.append(made)
    return out


def _flawed(steps: list[Step], answer: int, kind: str, k: int, rng: random.Random,
            out: list[FlawedSolution]) -> FlawedSolution | None:
    """One flawed solution with `kind` at step `k`; None if it does not fit there, leaves the answer
    right or out of range, or repeats one in `out` (e.g. dropping either of two identical steps)."""
    planted = plant_flaw(steps, kind, k, rng)
    values = None if planted is None else execute(planted.steps, planted.slip)
    final = None if values is None else values[-1] + planted.answer_off
    compact = None if final is None or final == answer or not 0 <= final <= MAX_VALUE else (
        render(planted.steps, values, "compact", final))
    if compact is None or any(f.compact == compact for f in out):
        return None
    return FlawedSolution(text=render(planted.steps, values, "gsm8k", final), compact=compact, answer=str(final),
                          flaw=Flaw(kind=kind, step=k))


def generate(
    n: int,
    seed: int = 0,
    min_steps: int = 2,
    max_steps: int = 4,
    max_start: int = 30,
    flaws_per_problem: int = 2,
    max_operand: int = 20,
    max_value: int = 200,
    flaw_kinds: Sequence[str] = DEFAULT_FLAW_KINDS,
    fixed_steps: FixedSteps | None = None,
) -> list[Problem]:
    """`n` distinct problems, each with `flaws_per_problem` flawed solutions (fewer only if impossible);
    the kinds of `fixed_steps` at the first or last step they fit (`steps_to_try`)."""
    rng = random.Random(seed)
    problems: list[Problem] = []
    seen: set[str] = set()
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise RuntimeError(f"could only generate {len(problems)} distinct problems of {n}; widen the ranges")
        story = _story(rng, rng.randint(min_steps, max_steps), max_start, max_operand, max_value)
        if story is None:
            continue
        question, steps = story
        values = execute(steps)
        if values is None or question in seen:
            continue
        flawed = flawed_solutions(steps, values[-1], flaw_kinds, flaws_per_problem, rng, fixed_steps)
        if not flawed:
            continue
        seen.add(question)
        numbers = [n for s in steps for kind, n in (s.left, s.right) if kind == "q"] + values
        problems.append(
            Problem(
                id=stable_id("synth", question),
                question=question,
                answer=str(values[-1]),
                reference=render(steps, values, "gsm8k"),
                difficulty=Difficulty(steps=len(steps), magnitude=len(str(max(numbers)))),
                compact_reference=render(steps, values, "compact"),
                flawed=tuple(flawed),
            )
        )
    return problems
