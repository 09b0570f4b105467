import json
from fractions import Fraction
from pathlib import Path

import pytest

from pvg.data.grading import extract_answer, is_correct, parse_number

GSM8K = Path(__file__).resolve().parents[2] / "shared/data/gsm8k"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("She has 3 + 15 = 18 apples.\n#### 18", "18"),
        ("#### 5\nactually\n#### 7", "7"),
        ("So the total is \\boxed{18}.", "18"),
        ("\\boxed{1} then \\boxed{\\frac{3}{4}}", "0.75"),
        ("The answer is 18", "18"),
        ("THE ANSWER IS: 18.", "18"),
        ("The final answer is $\\boxed{42}$", "42"),
        ("Answer: 12", "12"),
        ("answer:-3", "-3"),
        ("Q: how many?\nA: 9", "9"),
        ("a: 9", "9"),
        ("#### 1,234", "1234"),
        ("The answer is $1,234,567.", "1234567"),
        ("The answer is 50%.", "50"),
        ("The answer is \\$18.00", "18"),
        ("#### 18 dollars", "18"),
        ("The answer is 5 apples.", "5"),
        ("#### -3", "-3"),
        ("The answer is \u22123", "-3"),
        ("The answer is -$4.50", "-4.5"),
        ("#### 18.0", "18"),
        ("#### 18.00", "18"),
        ("#### 0.5", "0.5"),
        ("#### .25", "0.25"),
        ("#### 3/4", "0.75"),
        ("#### 6/8", "0.75"),
        ("#### 1/3", "1/3"),
        ("The answer is \\frac{3}{4}", "0.75"),
        ("The answer is -\\dfrac{2}{6}", "-1/3"),
        ("The answer is **$1,000**", "1000"),
        ("Answer: 1{,}000", "1000"),
    ],
)
def test_extract_formats(text, expected):
    assert extract_answer(text) == expected


def test_priority_order():
    # #### beats \boxed beats "the answer is" beats "Answer:" beats "A:".
    assert extract_answer("A: 1\nAnswer: 2\nThe answer is 3\n\\boxed{4}\n#### 5") == "5"
    assert extract_answer("#### 5\n\\boxed{4}") == "5"
    assert extract_answer("\\boxed{4}\nThe answer is 3") == "4"
    assert extract_answer("The answer is 3\nAnswer: 2") == "3"
    assert extract_answer("Answer: 2\nA: 1") == "2"


def test_math_verify_fallback_for_nested_latex():
    assert extract_answer("\\boxed{\\frac{\\frac{3}{2}}{2}}") == "0.75"
    assert extract_answer("The answer is \\frac{1}{2} + \\frac{1}{4}.") == "0.75"
    assert extract_answer("\\boxed{\\frac{1}{2} + \\frac{1}{4}}") == "0.75"
    assert extract_answer("\\boxed{\\left(\\frac{1}{2}\\right) \\cdot 3}") == "1.5"
    assert extract_answer("\\boxed{2\\frac{1}{2}}") is None  # mixed number: ambiguous, refused
    assert extract_answer("The answer is 5 + 3 = 8") is None  # an expression, not a stated answer
    assert extract_answer("\\boxed{\\text{18}}") == "18"


@pytest.mark.parametrize(
    "text",
    ["\\boxed{\\binom{100000000}{50000000}}", "\\boxed{\\Gamma(1000000)}", "\\boxed{\\sqrt{2}}",
     "\\boxed{\\frac{1}{0}}", "\\boxed{\\frac{1}{2} \\cdot 2**99999999}", "\\boxed{\\frac{1}{2}^{99999999}}"],
)
def test_math_verify_fallback_is_bounded(text):
    # sympy would evaluate these eagerly (hang / huge numbers); they must be refused.
    assert extract_answer(text) is None


@pytest.mark.parametrize(
    "text",
    ["", "no answer here, just 18 apples", "The total is 18.", "#### ", "\\boxed{}",
     "The answer is unknown", "#### x/0", "#### 5/0"],
)
def test_no_answer(text):
    assert extract_answer(text) is None
    assert is_correct(text, "18") is False


def test_equal_values():
    for a in ["18", "18.0", "18.00", "18 dollars", "$18", "18%"]:
        for b in ["18", "18.0", "18.00", "#### 18", "x\n#### 18.000"]:
            assert is_correct(f"#### {a}", b), (a, b)
    assert is_correct("#### 3/4", "0.75")
    assert is_correct("The answer is 0.75", "3/4")
    assert is_correct("\\boxed{\\frac{3}{4}}", "#### 0.75")
    assert is_correct("#### 1000", "1,000")
    assert not is_correct("#### 19", "18")
    assert not is_correct("#### 0.7", "3/4")
    assert not is_correct("#### 18", "no number")


def test_parse_number():
    assert parse_number("1,234.50") == Fraction(246_9, 2)
    assert parse_number("-3/4") == Fraction(-3, 4)
    assert parse_number("\\frac{3}{4}") == Fraction(3, 4)
    assert parse_number("$18.") == 18
    assert parse_number("abc") is None
    assert parse_number(None) is None


@pytest.mark.parametrize(
    "text",
    [None, 123, b"#### 18", object(), "\x00" * 100, "#### " + "9" * 10_000,
     "\\boxed{" * 1000, "}" * 1000 + "\\boxed{", "The answer is \\frac{1}{0}",
     "\\boxed{10^{10^{10^{10}}}}", "\\boxed{\\sqrt{" + "{" * 500 + "}",
     "####" * 10_000, "A:" * 10_000, ("The answer is 5 " * 70_000)[:1_000_000],
     "x" * 1_000_000 + "#### 7"],
)
def test_garbage_never_raises(text):
    extract_answer(text)
    assert is_correct(text, "18") in (True, False)
    assert is_correct("#### 18", text) in (True, False)


def _load(name):
    path = GSM8K / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    with path.open() as f:
        return [json.loads(line)["answer"] for line in f if line.strip()]


@pytest.mark.parametrize("name", ["train.jsonl", "test.jsonl"])
def test_gsm8k_references_grade_against_themselves(name):
    answers = _load(name)
    assert answers
    for answer in answers:
        assert is_correct(answer, answer), answer
        final = answer.rsplit("####", 1)[1].strip()
        bumped = answer.rsplit("####", 1)[0] + f"#### {int(final.replace(',', '')) + 1}"
        assert not is_correct(bumped, answer), bumped
        assert is_correct(answer, final), answer
