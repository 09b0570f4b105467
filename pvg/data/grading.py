"""Answer extraction and grading for GSM-style solutions.

This is the RL reward, so it must be fast (thousands of calls a second), exact (no
float round-off deciding a reward) and total (one odd sample must not crash a step):
a pure-Python `Fraction` fast path, with math-verify only as a guarded LaTeX fallback.

Canonical answers (`extract_answer`): an integer string when integral ("18", "-3"),
else a decimal when it terminates ("0.75", so "3/4" -> "0.75"), else a reduced
fraction ("1/3"). Equal values always give equal strings.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["extract_answer", "is_correct", "parse_number", "states_answer"]

# A solution only counts as answering when it states the answer with a marker;
# guessing "the last number" would reward provers for answers they never committed to.
_MARKERS = [
    re.compile(r"####"),
    None,  # \boxed{...}: needs brace matching, handled separately
    re.compile(r"\banswer\s+is\b\s*:?", re.IGNORECASE),
    re.compile(r"\banswer\s*:", re.IGNORECASE),
    re.compile(r"(?<!\w)a\s*:", re.IGNORECASE),
]
_TAIL_CHARS = 200  # a stated answer is short; bounding the tail bounds the work
_NUM = r"[-+]?\s*(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
_PLAIN = re.compile(rf"({_NUM})(?:\s*/\s*({_NUM}))?")
_FRAC = re.compile(rf"([-+]?)\s*\\frac\s*\{{\s*({_NUM})\s*\}}\s*\{{\s*({_NUM})\s*\}}")
# Decoration that surrounds numbers in model output but never changes their value.
_NOISE = [("\\$", ""), ("$", ""), ("\\%", "%"), ("\\!", ""), ("{,}", ","), ("\\,", ""),
          ("**", ""), ("\\left", ""), ("\\right", ""), ("\\(", ""), ("\\)", ""),
          ("\\[", ""), ("\\]", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"),
          ("\\boxed{", ""), ("\\text{", ""), ("\\mathrm{", ""), ("\u2212", "-")]
# A number followed by one of these is the start of an expression (or a mixed number
# like 2\frac{1}{2}), not a stated answer; reading just its prefix would be wrong.
_EXPR_CONT = ("+", "-", "*", "/", "^", "=", "\u00d7", "\u00b7", "\u00f7", "\\cdot", "\\times", "\\div", "\\frac")


def _to_fraction(num: str) -> Fraction:
    return Fraction(num.replace(",", "").replace(" ", ""))


def parse_number(s: str) -> Fraction | None:
    """Exact value of the number at the start of `s`, ignoring $, %, units and LaTeX noise.

    Exact rationals make 18 == 18.0 == 18.00 and 3/4 == 0.75 hold without tolerances.
    """
    try:
        if not isinstance(s, str):
            return None
        s = s[:_TAIL_CHARS]
        for old, new in _NOISE:
            s = s.replace(old, new)
        s = s.lstrip(" \t\r\n:=*_({[")
        m = _FRAC.match(s)
        if m:
            value = _to_fraction(m.group(2)) / _to_fraction(m.group(3))
            value = -value if m.group(1) == "-" else value
        else:
            m = _PLAIN.match(s)
            if not m:
                return None
            value = _to_fraction(m.group(1))
            value = value / _to_fraction(m.group(2)) if m.group(2) else value
        return None if s[m.end():].lstrip(" \t)}]").startswith(_EXPR_CONT) else value
    except Exception:  # noqa: BLE001 -- e.g. x/0, huge ints; garbage means "no number"
        return None


_MV_SAFE = {"frac", "dfrac", "tfrac", "cdot", "times", "div", "left", "right", "text", "mathrm", *",! %${}"}


def _sympy_to_fraction(expr) -> Fraction | None:
    """math-verify leaves e.g. (3/2)/2 unevaluated; evaluate +, *, 1/x of rationals exactly."""
    if expr.is_Rational or expr.is_Float:
        return Fraction(str(expr)) if expr.is_finite else None
    if expr.is_Pow and expr.exp == -1:
        base = _sympy_to_fraction(expr.base)
        return 1 / base if base else None
    if expr.is_Add or expr.is_Mul:
        values = [_sympy_to_fraction(arg) for arg in expr.args]
        if None in values:
            return None
        total = Fraction(0 if expr.is_Add else 1)
        for value in values:
            total = total + value if expr.is_Add else total * value
        return total
    return None


def _math_verify_number(candidate: str) -> Fraction | None:
    """Fallback for LaTeX arithmetic the fast path cannot read (nested \\frac, \\cdot, ...).

    math-verify's signal-based timeout raises off the main thread, so it runs with
    timeouts disabled; instead only short candidates made of whitelisted commands
    reach it, because sympy evaluates e.g. \\binom or \\Gamma eagerly and can hang.
    """
    if not candidate or "\\" not in candidate or len(candidate) > 80:
        return None
    if any(c in candidate.replace("\\!", "") for c in "^_!*") or re.search(r"\d\s*\\[dt]?frac", candidate):
        return None  # powers, factorials; mixed numbers, which sympy would read as products
    if not set(re.findall(r"\\([a-zA-Z]+|.)", candidate)) <= _MV_SAFE:
        return None
    try:
        from math_verify import parse

        for expr in parse("\\boxed{" + candidate + "}", parsing_timeout=None):
            if not isinstance(expr, str):
                value = _sympy_to_fraction(expr)
                if value is not None:
                    return value
    except Exception:  # noqa: BLE001 -- a fallback must never turn into a crash
        pass
    return None


def _boxed_content(text: str) -> str | None:
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    rest = text[start + 6:start + 8 + _TAIL_CHARS].lstrip()
    if not rest.startswith("{"):
        return None
    depth = 0
    for j, ch in enumerate(rest):
        depth += (ch == "{") - (ch == "}")
        if depth == 0:
            return rest[1:j]
    return rest[1:]


def _extract_fraction(text: str) -> Fraction | None:
    """The highest-priority marker wins; within a marker the last occurrence wins,
    since models restate and correct themselves before the final answer."""
    if not isinstance(text, str):
        return None
    for marker in _MARKERS:
        if marker is None:
            candidate = _boxed_content(text)
        else:
            last = None
            for last in marker.finditer(text):
                pass
            if last is None:
                continue
            candidate = text[last.end():last.end() + _TAIL_CHARS].lstrip().split("\n", 1)[0]
        value = None if candidate is None else parse_number(candidate)
        if value is None and candidate:
            value = _math_verify_number(candidate.strip().rstrip("."))
        if value is not None:
            return value
    return None


def _canonical(value: Fraction) -> str:
    num, den = value.numerator, value.denominator
    if den == 1:
        return str(num)
    for places in range(1, 65):  # terminating decimal iff den divides a power of 10
        if 10**places % den == 0:
            digits = str(abs(num) * 10**places // den).rjust(places + 1, "0")
            return ("-" if num < 0 else "") + digits[:-places] + "." + digits[-places:]
    return f"{num}/{den}"


def extract_answer(text: str) -> str | None:
    """Canonical string of the stated final answer, or None if none is stated."""
    try:
        value = _extract_fraction(text)
        return None if value is None else _canonical(value)
    except Exception:  # noqa: BLE001 -- grading must never crash a training step
        return None


def is_correct(text: str, reference: str) -> bool:
    """Numeric equality with the reference, which may be a bare number or a GSM8K answer."""
    try:
        ref = _extract_fraction(reference)
        ref = parse_number(str(reference) if isinstance(reference, int) else reference) if ref is None else ref
        return ref is not None and _extract_fraction(text) == ref
    except Exception:  # noqa: BLE001 -- a wrong-type input is simply not correct
        return False


def states_answer(text: str) -> bool:
    """Whether the solution commits to a final answer at all. A sneaky solution must, to count as
    wrong: an empty or cut-off text is not a convincing wrong solution, and an attacker that finds
    the verifier scoring such fragments high (measured: docs/results.md#unanswered) has found a
    gap in the verifier's training data, not a sneaky argument."""
    return extract_answer(text) is not None
