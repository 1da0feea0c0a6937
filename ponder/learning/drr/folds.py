"""Train collections pooled into one question list, and that list split into folds by question.

Use ``pool_collections([(manifest, records), ...])`` to train on several collections of one
reasoner at once (a sealed corpus plus the live directory still growing beside it: a question
in both is kept once), and ``question_folds(n, k, seed)`` for grouped cross-validation: every
sample and checkpoint of a question lands in the same fold, so a judge is never scored on a
question it was trained on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ponder.behaviour.records import Manifest, QuestionRecord
from ponder.errors import InputError

MATCHED_SETTINGS = ("max_tokens", "probe_every", "k", "temperature")
"""Settings the pooled collections must share (what the states, costs and replay depend on)."""


def pool_collections(
    collections: Sequence[tuple[Manifest, Sequence[QuestionRecord]]],
) -> tuple[Manifest, list[QuestionRecord], int]:
    """One manifest (the first's) and the questions of all, each once (by dataset and id, the
    first collection's copy kept); also returns how many repeats were dropped."""
    if not collections:
        raise InputError("no train collection given")
    first = collections[0][0]
    seen: set[tuple[str, str]] = set()
    out: list[QuestionRecord] = []
    dropped = 0
    for i, (m, records) in enumerate(collections):
        if not first.same_reasoner(m):
            diffs = "; ".join(first.reasoner_differences(m, ("first", f"collection {i + 1}")))
            raise InputError(f"the train collections come from different reasoners: {diffs}")
        for key in MATCHED_SETTINGS:
            a, b = first.settings.get(key), m.settings.get(key)
            if a != b:
                raise InputError(
                    f"the train collections differ in {key} ({a} vs {b} in collection {i + 1})"
                )
        for q in records:
            ident = (m.dataset.sha256, q.id)
            if ident in seen:
                dropped += 1
                continue
            seen.add(ident)
            out.append(q)
    return first, out, dropped


def question_folds(n: int, k: int, seed: int = 0) -> list[int]:
    """Fold of each of ``n`` questions (0..k-1): a seeded shuffle dealt round-robin, so fold
    sizes differ by at most one."""
    if n < 2:
        raise InputError("cross-validation needs at least 2 questions")
    k = max(2, min(k, n))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    fold = [0] * n
    for rank, i in enumerate(order):
        fold[i] = rank % k
    return fold
