"""Evaluation datasets: GSM8K, MATH-500 and any JSONL with a question and an answer field.

``load_items(path)`` detects the format (GSM8K: ``question`` + ``answer`` ending in ``#### n``;
MATH-500: ``problem`` + ``answer``); ``fmt="jsonl"`` with ``question_field``/``answer_field``
reads anything else. ``select(items, n, seed)`` takes the first ``n``, or a seeded random ``n``.
The data is read where it lies; Ponder never copies it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ponder.errors import InputError
from ponder.grading import gold_from_gsm8k

Format = Literal["auto", "gsm8k", "math500", "jsonl"]
FORMATS = ("auto", "gsm8k", "math500", "jsonl")


@dataclass(frozen=True)
class Item:
    """One evaluation question. ``id`` is stable across runs (used to resume)."""

    id: str
    question: str
    gold: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"dataset file {p} does not exist")
    rows = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{p} line {n} is not JSON: {exc.msg}") from None
    return rows


def detect_format(row: dict[str, Any]) -> Format:
    if "problem" in row and "answer" in row:
        return "math500"
    if "question" in row and "#### " in str(row.get("answer", "")):
        return "gsm8k"
    return "jsonl"


def load_items(
    path: str | Path,
    fmt: Format = "auto",
    question_field: str | None = None,
    answer_field: str | None = None,
) -> list[Item]:
    """Read a dataset file into ``Item``s (see the module docstring for the formats)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown dataset format {fmt!r}; valid choices: {', '.join(FORMATS)}")
    rows = read_jsonl(path)
    if not rows:
        raise InputError(f"dataset file {path} has no rows")
    if fmt == "auto":
        fmt = "jsonl" if question_field or answer_field else detect_format(rows[0])
    qf = question_field or ("problem" if fmt == "math500" else "question")
    af = answer_field or "answer"
    items = []
    for i, row in enumerate(rows):
        if qf not in row or af not in row:
            raise InputError(
                f"{path} row {i + 1} lacks field {qf if qf not in row else af!r}; "
                f"fields present: {', '.join(sorted(row))} (use --question-field/--answer-field)"
            )
        gold = str(row[af])
        if fmt == "gsm8k":
            gold = gold_from_gsm8k(gold)
        rid = row.get("id", row.get("idx", i))
        extra = {k: v for k, v in row.items() if k not in (qf, af)}
        items.append(Item(str(rid), str(row[qf]), gold, extra))
    return items


def select(items: list[Item], n: int | None, seed: int | None = None) -> list[Item]:
    """The first ``n`` items, or ``n`` drawn at random with ``seed`` (order kept stable)."""
    if n is None or n >= len(items):
        return list(items)
    if seed is None:
        return items[:n]
    picked = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in picked]
