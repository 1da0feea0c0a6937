"""Final-answer extraction from model text, and normalization for voting.

Use ``extract_answer`` on any reasoning text: it prefers the last ``\\boxed{...}`` (balanced
braces), then an "answer is ..." / "#### ..." line, then the last number in the text.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*[:\s]*\$?([^\n$]+?)\$?\s*(?:\.\s|\.$|$|\n)",
    re.IGNORECASE,
)
_HASHES = re.compile(r"####\s*([^\n]+)")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}``, with nested braces kept."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    i = text.find("{", idx)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


def extract_answer(text: str) -> str | None:
    """The final answer stated in ``text``, or ``None`` if it states none."""
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed:
        return boxed
    m = _HASHES.findall(text)
    if m:
        return m[-1].strip()
    m2 = _ANSWER_IS.findall(text)
    if m2:
        cand = m2[-1].strip().rstrip(".")
        if _NUMBER.fullmatch(cand):
            return cand.replace(",", "")
        nums = _NUMBER.findall(cand)
        return nums[-1].replace(",", "") if nums and len(cand) > 12 else cand
    nums = _NUMBER.findall(text)
    if nums:
        return nums[-1].replace(",", "").rstrip(".")
    return None


def normalize_answer(answer: str | None) -> str | None:
    """A cheap canonical form for exact-match grouping (equivalence proper lives in grading)."""
    if answer is None:
        return None
    a = answer.strip().strip("$").strip()
    a = re.sub(r"\\text\{([^}]*)\}", r"\1", a)
    a = re.sub(r"\\(?:dfrac|tfrac)", r"\\frac", a)
    a = a.replace("\\!", "").replace("\\,", "").replace("\\left", "").replace("\\right", "")
    a = re.sub(r"\s+", "", a)
    a = a.rstrip(".")
    if re.fullmatch(r"-?[\d,]+(\.\d+)?", a):
        a = a.replace(",", "")
        if "." in a:
            a = a.rstrip("0").rstrip(".")
    return a or None
