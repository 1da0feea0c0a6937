"""Grading predictions against gold answers.

``is_equivalent`` decides whether two answers are the same (``1/2``, ``0.5`` and ``\\frac{1}{2}``
are), using math-verify with a fast numeric path first. ``gold_from_gsm8k`` reads GSM8K's
``#### n`` gold format.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from functools import lru_cache

from ponder.answers import normalize_answer


class _NoTimeoutNotice(logging.Filter):
    """math-verify warns once that timeouts are off; we turn them off on purpose (its signal-based
    timeouts fail outside the main thread), so that one notice is noise for our users."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.grader", "math_verify.parser"):
    logging.getLogger(_name).addFilter(_NoTimeoutNotice())


def gold_from_gsm8k(solution: str) -> str:
    """The number after ``####`` in a GSM8K solution."""
    m = re.search(r"####\s*(.+)\s*$", solution.strip())
    if not m:
        raise ValueError("GSM8K answer has no '#### <number>' line")
    return m.group(1).replace(",", "").strip()


def _as_number(s: str) -> Fraction | None:
    s = s.replace(",", "").replace("$", "").strip()
    s = re.sub(r"\\(?:d|t)?frac\{(-?\d+)\}\{(-?\d+)\}", r"\1/\2", s)
    s = s.rstrip("%").strip()
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


@lru_cache(maxsize=4096)
def is_equivalent(prediction: str | None, gold: str | None) -> bool:
    """True if ``prediction`` and ``gold`` denote the same answer."""
    if prediction is None or gold is None:
        return False
    p, g = normalize_answer(prediction), normalize_answer(gold)
    if p is None or g is None:
        return False
    if p == g:
        return True
    pn, gn = _as_number(p), _as_number(g)
    if pn is not None and gn is not None:
        return pn == gn
    return _math_verify(prediction, gold)


def _math_verify(prediction: str, gold: str) -> bool:
    try:
        from math_verify import parse, verify

        def _parse(s: str) -> list[object]:
            wrapped = s if "$" in s or "\\boxed" in s else f"${s}$"
            return list(parse(wrapped, parsing_timeout=None))

        g, p = _parse(gold), _parse(prediction)
        if not g or not p:
            return False
        return bool(verify(g, p, timeout_seconds=None))
    except Exception:
        return False
