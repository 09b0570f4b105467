"""CAPA: how alike two models are beyond what their accuracies alone would make them.

After Goel et al. (2025), "Great Models Think Alike and this Undermines AI Oversight" (κp).

Raw agreement is a poor similarity measure: two models that are each right 90% of the time agree
on at least 81% of questions by chance alone, however independently they were built. CAPA is
a Cohen's-kappa-style score: observed agreement `c_obs` minus the agreement `c_exp` that two
*independent* models with the same accuracies would reach, scaled so that

    κp = (c_obs − c_exp) / (1 − c_exp)

is 0 for independent models (at any accuracy), 1 for identical and confident ones, and negative
for models that disagree more than chance (e.g. one answers "accept" where the other rejects).
What remains above 0 is shared *mistakes* (and shared confidence), which is what matters when
one model is meant to oversee another.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from fractions import Fraction

from pvg.data.grading import parse_number

__all__ = ["accept_probability", "capa", "capa_binary", "capa_exact_match"]

_SUM_TOL = 1e-6  # probability vectors from softmax in float32 are off by ~1e-7
_UNDEFINED_TOL = 1e-12  # 1 − c_exp at or below this is round-off of an exact 0


def capa(probs_a: Sequence[Sequence[float]], probs_b: Sequence[Sequence[float]],
         gold: Sequence[int]) -> float:
    """Probabilistic CAPA κp of two models' option distributions on the same questions.

    `probs_a[q]`, `probs_b[q]`: each model's probability vector over question q's options
    (questions may differ in their number of options, at least 2); `gold[q]`: the index of the
    correct option.

    - `c_obs = mean_q Σ_o pa(o)·pb(o)`: the chance that two independent draws, one from each
      model, pick the same option. It uses the probabilities rather than the argmax, so only
      identical *and confident* models reach κp = 1; two equally unsure ones score less.
    - `c_exp = p̄a·p̄b + mean_q(1/(|O_q|−1))·(1−p̄a)(1−p̄b)`, with `p̄` a model's mean probability
      on the correct option: two independent models agree when both are right, or when both are
      wrong and happen to pick the same wrong option (taken as uniform over the wrong ones).

    Returns float('nan') when `c_exp` is 1: both models put all their mass on the correct option
    of every question (or, where every question has two options, both always on the wrong one).
    Then chance alone explains all the agreement there is and κp is 0/0; such a pair tells
    nothing about shared mistakes, and a nan keeps it from passing as "similar" or "independent".
    """
    rows_a, rows_b, gold = _rows(probs_a, "probs_a"), _rows(probs_b, "probs_b"), list(gold)
    _same_length(probs_a=rows_a, probs_b=rows_b, gold=gold)
    overlap, on_gold_a, on_gold_b, inv_wrong = [], [], [], []
    for q, (pa, pb, g) in enumerate(zip(rows_a, rows_b, gold)):
        n_options = len(pa)
        if n_options != len(pb):
            raise ValueError(f"question {q}: probs_a has {n_options} options, probs_b has {len(pb)}")
        if n_options < 2:
            raise ValueError(f"question {q}: needs at least 2 options, got {n_options}")
        _check_distribution(pa, q, "probs_a")
        _check_distribution(pb, q, "probs_b")
        try:
            g = operator.index(g)
        except TypeError:
            raise ValueError(f"question {q}: gold must be an integer option index, got {g!r}") from None
        if not 0 <= g < n_options:
            raise ValueError(f"question {q}: gold {g} is out of range for {n_options} options")
        overlap.append(math.fsum(x * y for x, y in zip(pa, pb)))
        on_gold_a.append(pa[g])
        on_gold_b.append(pb[g])
        inv_wrong.append(1.0 / (n_options - 1))
    c_obs = _mean(overlap)
    acc_a, acc_b = _mean(on_gold_a), _mean(on_gold_b)
    c_exp = acc_a * acc_b + _mean(inv_wrong) * (1.0 - acc_a) * (1.0 - acc_b)
    return _kappa(c_obs, c_exp)


def capa_binary(p_a: Sequence[float], p_b: Sequence[float], labels: Sequence[bool]) -> float:
    """κp of two binary judges, e.g. a verifier's and an independent judge's accept probabilities.

    `p_a[i]`, `p_b[i]`: each model's probability that item i is correct ("accept");
    `labels[i]`: whether it truly is. This is `capa` with option vectors `[p, 1 − p]` and the
    correct option 0 ("accept") for correct items, 1 ("reject") for incorrect ones. With two
    options a wrong model can only pick the one wrong option, so chance agreement on mistakes is
    `(1−p̄a)(1−p̄b)` in full.
    """
    p_a, p_b, labels = _floats(p_a, "p_a"), _floats(p_b, "p_b"), list(labels)
    _same_length(p_a=p_a, p_b=p_b, labels=labels)
    return capa([[p, 1.0 - p] for p in p_a], [[p, 1.0 - p] for p in p_b],
                [0 if label else 1 for label in labels])


def capa_exact_match(answers_a: Sequence[object], answers_b: Sequence[object],
                     gold: Sequence[object]) -> float:
    """κ of two models' free-form final answers, compared by exact match after normalisation.

    `c_obs`: the share of questions on which both give the same answer; `c_exp = acc_a·acc_b`,
    their accuracies against `gold`. With free-form answers two independent wrong models almost
    never land on the same wrong answer, so unlike `capa` there is no chance term for mistakes.

    Answers are strings, numbers or None. A number, or a string that states one as
    `pvg.data.grading.parse_number` reads it ("18", "18.0", "$18", "18 apples"), compares by exact
    value, so 18 == "18.0" == "$18"; other strings compare case- and whitespace-insensitively.
    None, and a blank string, mean "no answer": it matches nothing, not even another None, since
    two models that both failed to answer did not agree on anything; so does a nan or infinite
    number. A gold answer must be given.

    Returns float('nan') when both models are always right (`c_exp` = 1, κ is 0/0).
    """
    answers_a, answers_b, gold = list(answers_a), list(answers_b), list(gold)
    _same_length(answers_a=answers_a, answers_b=answers_b, gold=gold)
    agree = right_a = right_b = 0
    for q, (a, b, g) in enumerate(zip(answers_a, answers_b, gold)):
        a, b, g = _answer(a, q, "answers_a"), _answer(b, q, "answers_b"), _answer(g, q, "gold")
        if g is None:
            raise ValueError(f"question {q}: gold answer is missing")
        agree += a is not None and a == b
        right_a += a == g
        right_b += b == g
    n = len(gold)
    return _kappa(agree / n, (right_a / n) * (right_b / n))


# ---------------------------------------------------------------- helpers


def _kappa(c_obs: float, c_exp: float) -> float:
    if 1.0 - c_exp <= _UNDEFINED_TOL:
        return float("nan")
    return (c_obs - c_exp) / (1.0 - c_exp)


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _same_length(**named: list) -> None:
    (first, ref), *rest = named.items()
    for name, values in rest:
        if len(values) != len(ref):
            raise ValueError(f"{name} has {len(values)} entries, {first} has {len(ref)}")
    if not ref:
        raise ValueError("no questions: CAPA needs at least one")


def _rows(probs, name: str) -> list[list[float]]:
    """Each question's vector as a list of floats (numpy arrays converted in one go)."""
    probs = probs.tolist() if hasattr(probs, "tolist") else list(probs)
    rows = []
    for q, row in enumerate(probs):
        try:
            rows.append([float(x) for x in (row.tolist() if hasattr(row, "tolist") else row)])
        except (TypeError, ValueError):
            raise ValueError(f"question {q}: {name} is not a vector of numbers: {row!r}") from None
    return rows


def _floats(values, name: str) -> list[float]:
    values = values.tolist() if hasattr(values, "tolist") else list(values)
    out = []
    for i, p in enumerate(values):
        try:
            p = float(p)
        except (TypeError, ValueError):
            raise ValueError(f"question {i}: {name} is not a number: {p!r}") from None
        if not 0.0 <= p <= 1.0:  # also rejects nan
            raise ValueError(f"question {i}: {name} = {p!r} is not a probability in [0, 1]")
        out.append(p)
    return out


def _check_distribution(row: list[float], q: int, name: str) -> None:
    if not all(math.isfinite(x) for x in row):
        raise ValueError(f"question {q}: {name} has a non-finite entry: {row}")
    if min(row) < 0.0:
        raise ValueError(f"question {q}: {name} has a negative entry: {row}")
    total = math.fsum(row)
    if abs(total - 1.0) > _SUM_TOL:
        raise ValueError(f"question {q}: {name} sums to {total!r}, not 1")


def _answer(value: object, q: int, name: str) -> Fraction | str | None:
    """Comparable form of one answer: a Fraction for numbers, folded text otherwise, or None."""
    if value is None:
        return None
    if isinstance(value, str):
        number = parse_number(value)
        if number is not None:
            return number
        text = " ".join(value.split()).casefold()
        return text or None
    if isinstance(value, numbers.Number) and not isinstance(value, (bool, complex)):
        if isinstance(value, numbers.Integral):
            return Fraction(int(value))
        try:
            # Through the shortest repr, so that 0.1 equals "0.1" rather than its binary value.
            return Fraction(str(value)) if math.isfinite(value) else None
        except (TypeError, ValueError):
            return Fraction(value) if math.isfinite(value) else None
    raise ValueError(f"question {q}: {name} must be a string, a number or None, got {value!r}")


def accept_probability(score: float, threshold: float) -> float:
    """A checker's score as the probability it accepts: `sigmoid(score − threshold)`, 1/2 at its
    threshold, so `capa_binary` can compare checkers whose scores live on different scales."""
    x = max(-60.0, min(60.0, score - threshold))
    return 1 / (1 + math.exp(-x))
