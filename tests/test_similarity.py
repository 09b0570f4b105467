"""CAPA similarity (pvg.eval.similarity): hand-computed values, its defining properties
(independent models score ≈ 0 at any accuracy, shared mistakes score > 0) and input checks."""

import math
from fractions import Fraction as F

import numpy as np
import pytest

from pvg.eval.similarity import capa, capa_binary, capa_exact_match

N = 20_000  # questions per simulation; κp of independent models then has a spread of ~0.005
ACCURACIES = [0.3, 0.6, 0.9]

# ---------------------------------------------------------------- hand-computed


def test_capa_hand_computed_mixed_option_counts():
    a = [[0.5, 0.25, 0.25], [0.25, 0.75]]
    b = [[0.25, 0.5, 0.25], [0.5, 0.5]]
    gold = [0, 1]
    # c_obs: q0 1/8 + 1/8 + 1/16 = 5/16, q1 1/8 + 3/8 = 1/2  -> mean 13/32
    # p̄a = (1/2 + 3/4)/2 = 5/8, p̄b = (1/4 + 1/2)/2 = 3/8, mean 1/(|O|-1) = (1/2 + 1)/2 = 3/4
    # c_exp = 15/64 + 3/4 * 3/8 * 5/8 = 60/256 + 45/256 = 105/256
    # κp = (104/256 - 105/256) / (151/256) = -1/151
    c_obs, c_exp = F(13, 32), F(105, 256)
    assert (c_obs - c_exp) / (1 - c_exp) == F(-1, 151)
    assert capa(a, b, gold) == pytest.approx(-1 / 151)


def test_capa_hand_computed_one_hot():
    # 4 questions, 3 options each, gold 0 everywhere; a answers 0,0,1,2 and b answers 0,1,1,1.
    a = [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    b = [[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0]]
    # c_obs = 2/4 (q0, q2); p̄a = 1/2, p̄b = 1/4; c_exp = 1/8 + 1/2 * 1/2 * 3/4 = 1/8 + 3/16 = 5/16
    # κp = (8/16 - 5/16) / (11/16) = 3/11
    assert capa(a, b, [0, 0, 0, 0]) == pytest.approx(3 / 11)


def test_capa_binary_hand_computed():
    # vectors: q0 (gold 0) a [.9,.1], b [.8,.2]; q1 (gold 1) a [.2,.8], b [.4,.6]
    # c_obs: (.72 + .02 + .08 + .48)/2 = .65; p̄a = (.9 + .8)/2 = .85, p̄b = (.8 + .6)/2 = .7
    # c_exp = .595 + 1 * .15 * .3 = .64; κp = .01/.36 = 1/36
    assert capa_binary([0.9, 0.2], [0.8, 0.4], [True, False]) == pytest.approx(1 / 36)


def test_capa_exact_match_hand_computed():
    a = ["18", "$5", None, "7", "abc"]
    b = [18, "5.0", None, "8", " ABC "]
    gold = [18, 6, 3, "7", "abc"]
    # agree: q0 (18), q1 (5), q4 (abc); q2 None never matches  -> c_obs 3/5
    # acc_a: q0, q3, q4 = 3/5; acc_b: q0, q4 = 2/5; c_exp = 6/25
    # κ = (15/25 - 6/25) / (19/25) = 9/19
    assert capa_exact_match(a, b, gold) == pytest.approx(9 / 19)


def test_exact_match_normalises_numbers_by_value():
    same = ["18", "18.0", "$18", "18 apples", 18, 18.0, F(18), np.int64(18), " 18 "]
    for x in same:
        for y in same:
            # both always right and agreeing: κ is 0/0; one wrong question makes it defined
            assert capa_exact_match([x, "1"], [y, "1"], [18, 2]) == pytest.approx(1.0), (x, y)
    assert capa_exact_match(["0.75", 0.1], ["3/4", "0.1"], [0, 0]) == pytest.approx(1.0)
    assert capa_exact_match(["18"], ["19"], [20]) == 0.0


def test_none_never_matches():
    # Both silent everywhere: c_obs 0, c_exp 0 -> 0, not "identical".
    assert capa_exact_match([None, None], [None, None], [1, 2]) == 0.0
    assert capa_exact_match(["", "  "], [None, ""], [1, 2]) == 0.0


# ---------------------------------------------------------------- identical, opposite, undefined


def test_identical_confident_models_score_one():
    # one-hot and identical, 2 of 5 wrong: c_obs = 1, c_exp < 1, so κp = (1 - c_exp)/(1 - c_exp) = 1
    a = [[1, 0, 0], [0, 1, 0], [0, 0, 1, 0], [1, 0], [0, 0, 0, 1]]
    gold = [0, 1, 0, 1, 3]
    assert capa(a, a, gold) == 1.0
    assert capa_binary([1, 0, 1, 0], [1, 0, 1, 0], [True, True, False, False]) == 1.0
    assert capa_exact_match(["3", "4", "x"], [3, "4.0", "X"], [3, 5, "y"]) == 1.0


def test_identical_unsure_models_score_below_one():
    # κp rewards shared confidence too: Σ p² < 1 for a soft vector, so c_obs < 1.
    a = [[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.5, 0.5, 0.0]]
    kappa = capa(a, a, [0, 0, 1])
    assert 0.0 < kappa < 1.0


def test_opposite_binary_models_score_negative():
    p = [0.9, 0.8, 0.3, 0.1, 0.6, 0.2]
    labels = [True, True, False, False, True, False]
    assert capa_binary(p, [1 - x for x in p], labels) < 0
    # confident opposites: c_obs = 0, p̄a = 1/2, p̄b = 1/2, c_exp = 1/4 + 1/4 = 1/2 -> κp = -1
    assert capa_binary([1, 0, 1, 0], [0, 1, 0, 1], [True, True, False, False]) == pytest.approx(-1.0)


def test_undefined_when_chance_explains_everything():
    # Both always fully right: c_exp = 1 and κp = 0/0.
    assert math.isnan(capa([[1, 0, 0], [0, 1]], [[1, 0, 0], [0, 1]], [0, 1]))
    # Two options everywhere and both always fully wrong: c_exp = 0 + 1 * 1 * 1 = 1.
    assert math.isnan(capa_binary([0, 1], [0, 1], [True, False]))
    assert math.isnan(capa_exact_match(["1", 2], [1, "2.0"], [1, 2]))


def test_capa_binary_equals_capa_on_equivalent_vectors():
    rng = np.random.default_rng(0)
    p_a, p_b = rng.random(500), rng.random(500)
    labels = rng.random(500) < 0.6
    expected = capa([[p, 1 - p] for p in p_a], [[p, 1 - p] for p in p_b], [0 if y else 1 for y in labels])
    assert capa_binary(p_a, p_b, labels) == expected
    assert capa_binary(list(p_a), list(p_b), [bool(y) for y in labels]) == expected


# ---------------------------------------------------------------- simulated models


def _one_hot_model(rng, gold, n_options, acc):
    """Right with probability `acc`, independently per question; else a uniform wrong option."""
    right = rng.random(len(gold)) < acc
    wrong = (gold + rng.integers(1, n_options)) % n_options  # integers(1, k) draws 1..k-1
    return np.where(right, gold, wrong)


def _vectors(choice, n_options, softness=None):
    """One-hot vectors, or with `softness[q]` of the mass spread evenly over the other options."""
    rows = []
    for q, (c, k) in enumerate(zip(choice, n_options)):
        row = np.zeros(k) if softness is None else np.full(k, softness[q] / (k - 1))
        row[c] = 1.0 if softness is None else 1.0 - softness[q]
        rows.append(row)
    return rows


def _agreement(a, b):
    return float(np.mean([np.dot(x, y) for x, y in zip(a, b)]))


@pytest.mark.parametrize("acc", ACCURACIES)
def test_independent_models_score_zero_one_hot(acc):
    rng = np.random.default_rng(1)
    k = np.full(N, 4)
    gold = rng.integers(0, 4, N)
    a = _vectors(_one_hot_model(rng, gold, k, acc), k)
    b = _vectors(_one_hot_model(rng, gold, k, acc), k)
    assert abs(capa(a, b, gold)) < 0.02
    # ... while raw agreement is about acc² + (1 - acc)²/3: large for accurate models
    assert _agreement(a, b) == pytest.approx(acc**2 + (1 - acc) ** 2 / 3, abs=0.02)
    if acc == 0.9:
        assert _agreement(a, b) > 0.5


@pytest.mark.parametrize("acc", ACCURACIES)
def test_independent_models_score_zero_soft(acc):
    rng = np.random.default_rng(2)
    k = np.full(N, 4)
    gold = rng.integers(0, 4, N)
    a = _vectors(_one_hot_model(rng, gold, k, acc), k, softness=rng.uniform(0, 0.4, N))
    b = _vectors(_one_hot_model(rng, gold, k, acc), k, softness=rng.uniform(0, 0.4, N))
    assert abs(capa(a, b, gold)) < 0.02
    assert _agreement(a, b) > (0.5 if acc == 0.9 else 0.1)


@pytest.mark.parametrize("acc", ACCURACIES)
def test_independent_models_score_zero_varying_option_counts(acc):
    rng = np.random.default_rng(3)
    k = rng.integers(2, 6, N)  # 2..5 options
    gold = rng.integers(0, k)
    a = _vectors(_one_hot_model(rng, gold, k, acc), k)
    b = _vectors(_one_hot_model(rng, gold, k, acc), k)
    assert abs(capa(a, b, gold)) < 0.02
    assert _agreement(a, b) > (0.5 if acc == 0.9 else 0.1)


def _free_form_model(rng, gold, acc):
    """Right with probability `acc`; else a wrong number from a pool of 1000 (or, 5%, no answer).

    Returns the answers, in mixed spellings ("18", "18.0", "$18", 18) that must compare equal,
    and their values (None for no answer)."""
    n = len(gold)
    right = rng.random(n) < acc
    offset = rng.integers(1, 501, n) * rng.choice([-1, 1], n)
    values = np.where(right, gold, gold + offset).tolist()
    values = [None if quiet else v for v, quiet in zip(values, (~right & (rng.random(n) < 0.05)).tolist())]
    spelling = rng.integers(0, 4, n).tolist()
    answers = [None if v is None else (str(v), f"{v}.0", f"${v}", v)[s] for v, s in zip(values, spelling)]
    return answers, values


@pytest.mark.parametrize("acc", ACCURACIES)
def test_independent_free_form_models_score_zero(acc):
    rng = np.random.default_rng(4)
    gold = rng.integers(0, 10_000, N)
    (a, values_a), (b, values_b) = _free_form_model(rng, gold, acc), _free_form_model(rng, gold, acc)
    assert abs(capa_exact_match(a, b, gold.tolist())) < 0.02
    agree = np.mean([x is not None and x == y for x, y in zip(values_a, values_b)])
    assert agree == pytest.approx(acc**2, abs=0.02)
    if acc == 0.9:
        assert agree > 0.5


def test_shared_mistakes_score_positive():
    # b copies a's wrong option on half of the questions where both are wrong.
    rng = np.random.default_rng(5)
    acc, n_opt = 0.6, 4
    k = np.full(N, n_opt)
    gold = rng.integers(0, n_opt, N)
    choice_a = _one_hot_model(rng, gold, k, acc)
    choice_b = _one_hot_model(rng, gold, k, acc)
    copy = (choice_a != gold) & (choice_b != gold) & (rng.random(N) < 0.5)
    choice_b = np.where(copy, choice_a, choice_b)
    kappa = capa(_vectors(choice_a, k), _vectors(choice_b, k), gold)
    # extra agreement over chance: P(both wrong) * 1/2 * (1 - 1/3) = .16 * 1/3;
    # c_exp = .36 + .16/3, so κp ≈ (.16/3) / (1 - .36 - .16/3) = 1/11 ≈ 0.091
    assert kappa > 0.05
    assert kappa == pytest.approx(1 / 11, abs=0.02)


def test_shared_free_form_mistakes_score_positive():
    # b copies a's wrong answer (in a's spelling) on half of the questions where both are wrong.
    rng = np.random.default_rng(6)
    gold = rng.integers(0, 10_000, N)
    (a, values_a), (b, values_b) = _free_form_model(rng, gold, 0.6), _free_form_model(rng, gold, 0.6)
    copy = (rng.random(N) < 0.5).tolist()
    b = [x if va != g and vb != g and c else y
         for x, y, va, vb, g, c in zip(a, b, values_a, values_b, gold.tolist(), copy)]
    # extra agreement ≈ .16 * 1/2 = .08 over c_exp = .36 (minus a's 5% silent mistakes)
    assert capa_exact_match(a, b, gold.tolist()) > 0.05


# ---------------------------------------------------------------- input validation


@pytest.mark.parametrize(
    ("a", "b", "gold", "match"),
    [
        ([], [], [], "no questions"),
        ([[0.5, 0.5]], [[0.5, 0.5], [1, 0]], [0], r"probs_b has 2 entries, probs_a has 1"),
        ([[0.5, 0.5]], [[0.5, 0.5]], [0, 1], r"gold has 2 entries, probs_a has 1"),
        ([[0.5, 0.5], [1, 0, 0]], [[0.5, 0.5], [1, 0]], [0, 0], r"question 1: probs_a has 3 options, probs_b has 2"),
        ([[1.0]], [[1.0]], [0], r"question 0: needs at least 2 options"),
        ([[0.5, 0.5], [0.5, 0.4]], [[0.5, 0.5], [0.5, 0.5]], [0, 0], r"question 1: probs_a sums to 0.9"),
        ([[0.5, 0.5], [1.2, -0.2]], [[0.5, 0.5], [0.5, 0.5]], [0, 0], r"question 1: probs_a has a negative entry"),
        ([[0.5, 0.5]], [[math.nan, 1.0]], [0], r"question 0: probs_b has a non-finite entry"),
        ([[0.5, 0.5], [0.2, 0.3, 0.5]], [[0.5, 0.5], [0.2, 0.3, 0.5]], [0, 3], r"question 1: gold 3 is out of range"),
        ([[0.5, 0.5]], [[0.5, 0.5]], [-1], r"question 0: gold -1 is out of range for 2 options"),
        ([[0.5, 0.5]], [[0.5, 0.5]], [0.5], r"question 0: gold must be an integer option index"),
        ([[0.5, "x"]], [[0.5, 0.5]], [0], r"question 0: probs_a is not a vector of numbers"),
    ],
)
def test_capa_rejects_bad_input(a, b, gold, match):
    with pytest.raises(ValueError, match=match):
        capa(a, b, gold)


def test_capa_accepts_small_round_off():
    assert np.isfinite(capa([[0.5, 0.5 + 5e-7], [1, 0]], [[0.5, 0.5], [0, 1]], [0, 0]))


def test_capa_binary_rejects_bad_input():
    with pytest.raises(ValueError, match="no questions"):
        capa_binary([], [], [])
    with pytest.raises(ValueError, match=r"labels has 1 entries, p_a has 2"):
        capa_binary([0.5, 0.5], [0.5, 0.5], [True])
    with pytest.raises(ValueError, match=r"question 1: p_b = 1.5 is not a probability"):
        capa_binary([0.5, 0.5], [0.5, 1.5], [True, False])
    with pytest.raises(ValueError, match=r"question 0: p_a = nan is not a probability"):
        capa_binary([math.nan], [0.5], [True])


def test_capa_exact_match_rejects_bad_input():
    with pytest.raises(ValueError, match="no questions"):
        capa_exact_match([], [], [])
    with pytest.raises(ValueError, match=r"answers_b has 1 entries, answers_a has 2"):
        capa_exact_match(["1", "2"], ["1"], [1, 2])
    with pytest.raises(ValueError, match=r"question 1: gold answer is missing"):
        capa_exact_match(["1", "2"], ["1", "2"], [1, None])
    with pytest.raises(ValueError, match=r"question 0: answers_a must be a string, a number or None"):
        capa_exact_match([[1]], ["1"], [1])
