import pytest

from ponder.answers import extract_answer, last_boxed, normalize_answer
from ponder.grading import gold_from_gsm8k, is_equivalent


@pytest.mark.parametrize(
    "text,expected",
    [
        ("so \\boxed{72}.", "72"),
        ("nested \\boxed{\\frac{1}{2}} end", "\\frac{1}{2}"),
        ("first \\boxed{1} then \\boxed{2}", "2"),
        ("The answer is 1,234.", "1234"),
        ("#### 18", "18"),
        ("we get 3 apples and then 5 apples", "5"),
        ("no numbers here", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_last_boxed_unbalanced_is_none():
    assert last_boxed("\\boxed{1 + {2}") is None


@pytest.mark.parametrize(
    "a,b",
    [
        ("1/2", "0.5"),
        ("\\frac{1}{2}", "0.5"),
        ("\\dfrac{1}{2}", "1/2"),
        ("72", "72.0"),
        ("1,000", "1000"),
        ("\\text{(C)}", "(C)"),
        ("x^2+1", "1+x^2"),
    ],
)
def test_equivalent(a, b):
    assert is_equivalent(a, b)


@pytest.mark.parametrize("a,b", [("1/2", "0.51"), ("72", "27"), (None, "1"), ("x+1", "x+2")])
def test_not_equivalent(a, b):
    assert not is_equivalent(a, b)


def test_gsm8k_gold():
    assert gold_from_gsm8k("Natalia sold 48/2 = 24 clips.\n#### 1,072") == "1072"
    with pytest.raises(ValueError):
        gold_from_gsm8k("no marker")


def test_normalize():
    assert normalize_answer(" $72$ ") == "72"
    assert normalize_answer("3.50") == "3.5"
