"""Search over a small local document collection: worked GSM8K-train problems, ranked by BM25.

Use the ``search_problems`` tool to let a model look up a solved problem similar to its question.
The collection is read at first use from ``$PONDER_DATA_DIR/gsm8k/train.jsonl`` (default: the
first of ``./shared/data``, ``../shared/data`` that exists) — the data is never copied into the
package. ``DocumentIndex`` is the reusable part: BM25 over any list of texts.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from ponder.errors import InputError
from ponder.tools.base import tool

DEFAULT_DOCS = 500
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "and",
        "in",
        "is",
        "are",
        "was",
        "were",
        "for",
        "on",
        "at",
        "by",
        "with",
        "how",
        "many",
        "much",
        "what",
        "does",
        "did",
        "do",
        "it",
        "he",
        "she",
        "they",
        "her",
        "his",
        "their",
        "has",
        "have",
        "had",
        "be",
        "if",
        "each",
        "then",
        "than",
        "this",
        "that",
        "from",
        "as",
    ]
)


def tokenize(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


@dataclass
class DocumentIndex:
    """Okapi BM25 (k1=1.5, b=0.75) over ``texts``; ``search`` returns (index, score) pairs."""

    texts: list[str]
    k1: float = 1.5
    b: float = 0.75
    _tf: list[Counter[str]] = field(init=False, repr=False)
    _idf: dict[str, float] = field(init=False, repr=False)
    _avg: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._tf = [Counter(tokenize(t)) for t in self.texts]
        df: Counter[str] = Counter()
        for tf in self._tf:
            df.update(tf.keys())
        n = max(len(self.texts), 1)
        self._idf = {w: math.log(1 + (n - d + 0.5) / (d + 0.5)) for w, d in df.items()}
        self._avg = sum(sum(tf.values()) for tf in self._tf) / n or 1.0

    def search(self, query: str, k: int = 3) -> list[tuple[int, float]]:
        terms = tokenize(query)
        scores: list[tuple[int, float]] = []
        for i, tf in enumerate(self._tf):
            length = sum(tf.values())
            s = 0.0
            for w in terms:
                f = tf.get(w, 0)
                if f:
                    norm = f + self.k1 * (1 - self.b + self.b * length / self._avg)
                    s += self._idf[w] * f * (self.k1 + 1) / norm
            if s > 0:
                scores.append((i, s))
        scores.sort(key=lambda p: -p[1])
        return scores[:k]


def data_dir() -> Path:
    env = os.environ.get("PONDER_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path.cwd() / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "data")
    for c in candidates:
        if (c / "gsm8k" / "train.jsonl").is_file():
            return c
    tried = ", ".join(str(c) for c in candidates)
    raise InputError(f"no GSM8K data for search_problems (set PONDER_DATA_DIR); tried {tried}")


@lru_cache(maxsize=2)
def gsm8k_index(limit: int = DEFAULT_DOCS) -> tuple[DocumentIndex, list[dict[str, str]]]:
    docs: list[dict[str, str]] = []
    with (data_dir() / "gsm8k" / "train.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if len(docs) >= limit:
                break
            row = json.loads(line)
            solution, _, final = row["answer"].rpartition("####")
            solution = re.sub(r"<<[^>]*>>", "", solution).strip()
            docs.append(
                {"question": row["question"], "solution": solution, "answer": final.strip()}
            )
    return DocumentIndex([d["question"] for d in docs]), docs


@tool
def search_problems(
    query: Annotated[str, "words describing the problem, e.g. the question itself"],
    k: Annotated[int, "how many problems to return (1-5)"] = 2,
) -> list[dict[str, Any]]:
    """Find solved math word problems similar to the query, with their worked solutions."""
    if not 1 <= k <= 5:
        raise ValueError(f"k must be between 1 and 5, got {k}")
    index, docs = gsm8k_index()
    return [{**docs[i], "score": round(s, 2)} for i, s in index.search(query, k)]
