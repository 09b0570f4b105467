"""Where a solution goes wrong, read off its lines: a wrong calculation, or a departure from the reference.

The game only needs a yes/no (`grading.is_correct`). Diagnosing *how* a solution is wrong is what
tells us what the verifier can and cannot check (a wrong `64 + 13 = 78` needs arithmetic, a misread
number needs reading), and what the report highlights for a reader. Lines are the compact ones the
tiny models write (`buys 5 more: 12 + 5 = 17`) or any text with `a op b = c` in it.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Literal

_NUM = r"-?\d+(?:\.\d+)?"
CALC = re.compile(rf"({_NUM})\s*([-+*/×x÷])\s*({_NUM})\s*=\s*({_NUM})")
_OPS = {"+": "+", "-": "-", "*": "*", "×": "*", "x": "*", "/": "/", "÷": "/"}

ErrorKind = Literal["correct", "arithmetic", "structural"]


def calc_value(op: str, a: Fraction, b: Fraction) -> Fraction | None:
    op = _OPS[op]
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b if b != 0 else None


def wrong_calculations(text: str) -> list[int]:
    """Indices of the lines whose `a op b = c` is false (`c` is not what `a op b` makes)."""
    wrong = []
    for i, line in enumerate(text.splitlines()):
        for m in CALC.finditer(line):
            a, op, b, c = Fraction(m.group(1)), m.group(2), Fraction(m.group(3)), Fraction(m.group(4))
            if calc_value(op, a, b) != c:
                wrong.append(i)
                break
    return wrong


def first_departure(text: str, reference: str) -> int | None:
    """Index of the first line that differs from the reference solution's line; None if none does."""
    ours, ref = text.strip().splitlines(), reference.strip().splitlines()
    for i, line in enumerate(ours):
        if i >= len(ref) or line.strip() != ref[i].strip():
            return i
    return None if len(ours) == len(ref) else len(ours)


def error_kind(text: str, correct: bool) -> ErrorKind:
    """`arithmetic` if some line computes wrongly, else `structural` (a misread number, a wrong op, a
    dropped or stale step: every line is right on its own, the chain is wrong)."""
    if correct:
        return "correct"
    return "arithmetic" if wrong_calculations(text) else "structural"


def departure_kind(text: str, reference: str) -> str:
    """How a wrong solution departs from the reference, by its calculations:

    `dropped` (fewer calculations), `extra` (more), `wrong_op` (an operation differs), `operand`
    (one operand differs: a misread number or a stale value), `operands` (both differ), or
    `answer_line` (every calculation matches: only the final `#### N` is off).
    """
    ours = [m for line in text.splitlines() for m in [CALC.search(line)] if m]
    ref = [m for line in reference.splitlines() for m in [CALC.search(line)] if m]
    if len(ours) < len(ref):
        return "dropped"
    if len(ours) > len(ref):
        return "extra"
    for a, b in zip(ours, ref):
        if _OPS[a.group(2)] != _OPS[b.group(2)]:
            return "wrong_op"
        if (Fraction(a.group(1)), Fraction(a.group(3))) != (Fraction(b.group(1)), Fraction(b.group(3))):
            same_one = Fraction(a.group(1)) == Fraction(b.group(1)) or Fraction(a.group(3)) == Fraction(b.group(3))
            return "operand" if same_one else "operands"
    return "answer_line"
