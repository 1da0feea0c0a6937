"""Model-free scorers for the golden replay of ``best_of_n`` (``scorer: {kind: function}``).

Imported by name (``tests.unit.golden_scorers:shortest``) from a ``ponder eval`` subprocess run in
the repository root; keep the module free of imports from ``ponder``.
"""

from __future__ import annotations


def shortest(question: str, text: str, answer: str | None) -> float:
    """Prefer the shortest solution (a deterministic, model-free score)."""
    return -float(len(text))
