"""Planted flaws in GSM8K's own solutions, exactly as `pvg.data.synth` plants them in synthetic ones.

A GSM8K solution carries its calculations as `<<a op b=c>>` annotations (Cobbe et al. 2021), so it
is a small program too: each annotation computes from numbers of the question and results of
earlier annotations. We read that program back (an operand equal to an earlier result is that
result), change one step (`arithmetic_slip`, `wrong_operation`, `misread_quantity`,
`dropped_step`, `stale_value`, or `miscopied_answer`: the final `#### N` alone), execute every
later annotation again with what changed, and write the new numbers into the text, so the
solution stays self-consistent after its one flaw and ends in a wrong answer. This is what the
sneaky role of a hub prover is fine-tuned on before the game (`pvg.game.hub_warmstart`).

A solution whose annotations do not check out (a few GSM8K ones) or whose final answer is not its
last result gets no planted flaw rather than a doubtful one.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Sequence

from pvg.data.flaw_draw import FixedSteps, KindDraw, steps_to_try
from pvg.data.problems import Flaw, FlawedSolution, Problem

ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>=]+)>>")
EXPR_TOKEN = re.compile(r"\d*\.\d+|\d+|[-+*/()]")
EXPR_CHARS = re.compile(r"^[\d.+\-*/()\s]+$")
SWAP = {"+": "-", "-": "+", "*": "+", "/": "-"}  # synth's wrong operation
OFFSETS = (1, -1, 2, -2, 10, -10)  # synth's slips


@dataclass(frozen=True)
class Calc:
    tokens: tuple[str, ...]  # the annotation's expression: numbers, operators, parentheses
    result: str  # as written
    start: int  # the annotation's span in the text
    end: int
    line: int


def parse_number(s: str) -> Fraction | None:
    s = s.strip().replace(",", "")
    if not re.fullmatch(r"-?\d*\.?\d+", s):
        return None
    return Fraction(s)


def evaluate(tokens: Sequence[str]) -> Fraction | None:
    """The expression's exact value; None when it divides by zero or does not parse."""
    expr = "".join(f"Fraction('{t}')" if t[0].isdigit() or t[0] == "." else t for t in tokens)
    try:
        value = eval(expr, {"__builtins__": {}, "Fraction": Fraction})  # noqa: S307 -- tokens are digits and + - * / ( ) only
    except (ZeroDivisionError, SyntaxError, TypeError):
        return None
    return value if isinstance(value, Fraction) else None  # `(2)` alone is an int; `**` cannot be written


def fmt(x: Fraction) -> str | None:
    """A number as GSM8K writes it: whole, or a short decimal; None for what has no short form."""
    if x.denominator == 1:
        return str(x.numerator)
    for places in range(1, 5):
        scaled = x * 10**places
        if scaled.denominator == 1:
            return f"{float(x):.{places}f}"
    return None


def read_program(text: str) -> list[Calc] | None:
    """The solution's annotations in order; None if any does not parse or does not compute its result."""
    calcs = []
    for m in ANNOTATION.finditer(text):
        expr, result = m.group(1), m.group(2)
        if not EXPR_CHARS.match(expr) or parse_number(result) is None:
            return None
        tokens = tuple(EXPR_TOKEN.findall(expr))
        if evaluate(tokens) != parse_number(result):
            return None
        calcs.append(Calc(tokens, result.strip(), m.start(), m.end(), text.count("\n", 0, m.start())))
    return calcs or None


def links(calcs: list[Calc]) -> list[list[int | None]]:
    """Per annotation, per token: the earlier annotation whose result that operand is (the latest one
    with that value), or None for a number of the question (or a constant) and for operators."""
    out = []
    for k, c in enumerate(calcs):
        row = []
        for t in c.tokens:
            v = parse_number(t) if t[0].isdigit() or t[0] == "." else None
            row.append(next((j for j in range(k - 1, -1, -1) if parse_number(calcs[j].result) == v), None)
                       if v is not None else None)
        out.append(row)
    return out


def _is_number(t: str) -> bool:
    return t[0].isdigit() or t[0] == "."


def _whole(number: str) -> re.Pattern:
    return re.compile(r"(?<![\d.])" + re.escape(number) + r"(?![\d]|\.\d)")


def _replace_last(segment: str, old: str, new: str) -> str:
    hits = list(_whole(old).finditer(segment))
    if not hits:
        return segment
    h = hits[-1]
    return segment[: h.start()] + new + segment[h.end():]


def _first_number_of(tokens: Sequence[str], link: Sequence[int | None], values: list[Fraction]) -> Fraction | None:
    """The step's first operand, as the running value it starts from (an earlier result where linked)."""
    for t, j in zip(tokens, link):
        if _is_number(t):
            return values[j] if j is not None else parse_number(t)
    return None


def plant(problem: Problem, kind: str, k: int, rng: random.Random,
          calcs: list[Calc] | None = None) -> FlawedSolution | None:
    """`problem`'s reference with one flaw of `kind` at annotation `k`, recomputed after it; None when
    the kind cannot apply there or the answer would not change. `calcs`: the reference's program, when
    already read."""
    text = problem.reference or ""
    calcs = calcs or read_program(text)
    if calcs is None or not 0 <= k < len(calcs):
        return None
    last_result = parse_number(calcs[-1].result)
    if last_result is None or parse_number(problem.answer) != last_result:
        return None
    link = links(calcs)
    old = [parse_number(c.result) for c in calcs]
    tokens = [list(c.tokens) for c in calcs]
    drop = None  # an annotation whose line is removed
    slip = 0
    answer_off = 0
    prefix_edits: list[tuple[str, str]] = []  # (old, new) numbers in the text just before annotation k
    st = tokens[k]
    numbers = [i for i, t in enumerate(st) if _is_number(t)]
    if kind == "arithmetic_slip":
        slip = rng.choice(OFFSETS)
    elif kind == "miscopied_answer":
        if k != len(calcs) - 1:
            return None
        answer_off = rng.choice(OFFSETS)
    elif kind == "wrong_operation":
        ops = [i for i, t in enumerate(st) if t in SWAP and i > 0 and (_is_number(st[i - 1]) or st[i - 1] == ")")]
        if not ops:
            return None
        i = rng.choice(ops)
        prefix_edits.append((st[i], SWAP[st[i]]))
        st[i] = SWAP[st[i]]
    elif kind == "misread_quantity":
        literal = [i for i in numbers if link[k][i] is None and _whole(st[i]).search(problem.question)]
        if not literal:
            return None
        i = rng.choice(literal)
        b = parse_number(st[i])
        options = [b + 1, b + 2, b - 1]
        digits = st[i]
        if len(digits) == 2 and digits.isdigit() and digits[0] != digits[1] and digits[1] != "0":
            options.append(Fraction(digits[::-1]))
        options = [o for o in options if o > 0 and o != b and fmt(o)]
        if not options:
            return None
        new = fmt(rng.choice(options))
        prefix_edits.append((st[i], new))
        st[i] = new
    elif kind == "dropped_step":
        if len(calcs) < 2 or sum(c.line == calcs[k].line for c in calcs) > 1:
            return None
        drop = k
    elif kind == "stale_value":
        uses = [i for i in numbers if link[k][i] == k - 1] if k > 0 else []
        if not uses:
            return None
        prev = _first_number_of(tokens[k - 1], link[k - 1], old)
        if prev is None or fmt(prev) is None:
            return None
        i = uses[0]
        prefix_edits.append((st[i], fmt(prev)))
        st[i] = fmt(prev)
        link[k][i] = None
    elif kind == "stale_operand":  # any operand that is an earlier result: one of that step's own numbers
        uses = [i for i in numbers if link[k][i] is not None]
        if not uses:
            return None
        i = rng.choice(uses)
        j = link[k][i]
        sources = [old[link[j][t]] if link[j][t] is not None else parse_number(tok)
                   for t, tok in enumerate(tokens[j]) if _is_number(tok)]
        sources = [v for v in sources if v is not None and fmt(v)]
        if not sources:
            return None
        stale = fmt(rng.choice(sources))
        prefix_edits.append((st[i], stale))
        st[i] = stale
        link[k][i] = None
    else:
        raise ValueError(f"unknown flaw kind {kind!r}")

    # execute again: every operand that was an earlier result takes that result's new value
    new = list(old)
    for j in range(len(calcs)):
        if j == drop:
            new[j] = _first_number_of(tokens[j], link[j], new)
            if new[j] is None:
                return None
            continue
        for i, t in enumerate(tokens[j]):
            if link[j][i] is not None:
                tokens[j][i] = fmt(new[link[j][i]]) or ""
                if not tokens[j][i]:
                    return None
        value = evaluate(tokens[j])
        if value is None:
            return None
        new[j] = value + (slip if j == k else 0)
        if fmt(new[j]) is None:
            return None
    final = new[-1] + answer_off
    if final == old[-1] or final < 0 or fmt(final) is None:
        return None

    # write it: each annotation (and its visible result) anew, changed results renamed in the text after them
    pieces, pos = [], 0
    changed: list[tuple[str, str]] = []  # (old result, new result) of the steps before the current piece
    for j, c in enumerate(calcs):
        plain = text[pos : c.start]
        for o, n in changed:
            plain = _whole(o).sub(n, plain)
        if j == k:
            line_start = plain.rfind("\n") + 1
            head, tail = plain[:line_start], plain[line_start:]
            for o, n in prefix_edits:
                tail = _replace_last(tail, o, n) if _is_number(o) else _swap_visible_op(tail, o, n)
            plain = head + tail
        pieces.append(plain)
        res = fmt(new[j])
        if j != drop:
            pieces.append(f"<<{''.join(tokens[j])}={res}>>")
        if new[j] != old[j] or j == drop:
            changed.append((c.result, res))
        pos = c.end
    rest = text[pos:]
    for o, n in changed:
        rest = _whole(o).sub(n, rest)
    body, _, _ = rest.rpartition("####")
    out = "".join(pieces) + body + f"#### {fmt(final)}"
    if drop is not None:
        lines = out.split("\n")
        del lines[calcs[drop].line]
        out = "\n".join(lines)
    if "####" not in rest:
        return None
    return FlawedSolution(text=out, compact=out, answer=fmt(final), flaw=Flaw(kind=kind, step=k))


def _swap_visible_op(segment: str, old: str, new: str) -> str:
    """The operator in the visible calculation just before the annotation (`48/2 = <<48/2=24>>`), when
    the text writes one; `x` and `×` stand for `*` in GSM8K's prose."""
    m = re.search(r"[\d.$,\s()+\-*/x×]*=\s*\$?\s*$", segment)
    if not m:
        return segment
    visible = m.group(0)
    forms = {"*": ("*", "x", "×"), "/": ("/",), "+": ("+",), "-": ("-",)}[old]
    for i in range(len(visible) - 1, -1, -1):
        if visible[i] in forms and i > 0 and (visible[i - 1].isdigit() or visible[i - 1] in " )"):
            return segment[: m.start()] + visible[:i] + new + visible[i + 1 :]
    return segment


def planted_flaws(problem: Problem, kinds: Sequence[str], count: int, rng: random.Random,
                  fixed_steps: FixedSteps | None = None) -> tuple[FlawedSolution, ...]:
    """Up to `count` distinct flawed solutions of one GSM8K problem, drawn as synth draws them."""
    calcs = read_program(problem.reference or "")
    if calcs is None:
        return ()
    out: list[FlawedSolution] = []
    seen: set[tuple[str, int]] = set()
    draw = KindDraw(kinds, rng)
    for _ in range(40):
        if len(out) == count or (kind := draw.next()) is None:
            break
        f = None
        for k in steps_to_try(kind, len(calcs), rng, fixed_steps):
            if (kind, k) in seen:
                continue
            f = plant(problem, kind, k, rng, calcs)
            if f is not None and all(f.text != g.text for g in out):
                break
            f = None
            if kind not in (fixed_steps or {}):  # a failed random step is not drawn again; a fixed one is, up to its draws
                seen.add((kind, k))
        draw.record(kind, f is not None)
        if f is not None:
            seen.add((kind, k))
            out.append(f)
    return tuple(out)


def with_planted_flaws(problems: Sequence[Problem], kinds: Sequence[str], count: int, seed: int,
                       fixed_steps: FixedSteps | None = None) -> list[Problem]:
    """Every problem that has none yet gets its planted flaws; seeded by the problem's id, so a problem
    gets the same flaws whatever else the file holds."""
    out = []
    for p in problems:
        if p.flawed or not p.reference:
            out.append(p)
            continue
        rng = random.Random(f"{seed}:{p.id}")
        out.append(replace(p, flawed=planted_flaws(p, kinds, count, rng, fixed_steps)))
    return out
