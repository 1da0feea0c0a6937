"""Train collections pooled into one question list, and that list split into folds by question.

Use ``pool_collections([(manifest, records), ...])`` to train on several collections of one
reasoner at once (a sealed corpus plus the live directory still growing beside it: a question
in both is kept once), and ``question_folds(n, k, seed)`` for grouped cross-validation: every
sample and checkpoint of a question lands in the same fold, so a judge is never scored on a
question it was trained on.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from ponder.behaviour.records import Manifest, QuestionRecord
from ponder.errors import InputError
from ponder.learning.drr.coarsen import coarsen

MATCHED_SETTINGS = ("max_tokens", "probe_every", "k", "temperature")
"""Settings the pooled collections must share (what the states, costs and replay depend on)."""


def pool_collections(
    collections: Sequence[tuple[Manifest, Sequence[QuestionRecord]]],
    say: Callable[[str], None] | None = None,
) -> tuple[Manifest, list[QuestionRecord], int]:
    """One manifest and the questions of all, each once (by dataset and id, the first
    collection's copy kept); also returns how many repeats were dropped.

    Collections probed at different intervals pool at the coarsest one (a multiple of the
    others): the finer ones' questions are read as it would have recorded them (``coarsen``:
    their extra probes, and self-critique where the coarse one has none, left out), and the
    manifest is the first coarse collection's. ``say`` is told when that happens."""
    if not collections:
        raise InputError("no train collection given")
    first = collections[0][0]
    every = [_every(m) for m, _ in collections]
    coarse = max(every)
    base = next(m for (m, _), e in zip(collections, every, strict=True) if e == coarse)
    critique = bool(base.settings.get("self_critique", False))
    if any(coarse % e for e in every):
        raise InputError(
            "the train collections differ in probe_every ("
            + ", ".join(map(str, every))
            + f"): each must divide the largest, {coarse}, to read them all at it"
        )
    seen: set[tuple[str, str]] = set()
    out: list[QuestionRecord] = []
    dropped = 0
    for i, ((m, records), e) in enumerate(zip(collections, every, strict=True)):
        if not first.same_reasoner(m):
            diffs = "; ".join(first.reasoner_differences(m, ("first", f"collection {i + 1}")))
            raise InputError(f"the train collections come from different reasoners: {diffs}")
        for key in MATCHED_SETTINGS:
            a, b = first.settings.get(key), m.settings.get(key)
            if a != b and key != "probe_every":
                raise InputError(
                    f"the train collections differ in {key} ({a} vs {b} in collection {i + 1})"
                )
        thin = e != coarse or (not critique and bool(m.settings.get("self_critique", False)))
        if thin and say is not None:
            say(
                f"collection {i + 1} (probes every {e}) read as probed every {coarse}"
                + ("" if critique else ", without self-critique")
            )
        for q in records:
            ident = (m.dataset.sha256, q.id)
            if ident in seen:
                dropped += 1
                continue
            seen.add(ident)
            out.append(coarsen(q, e, coarse, critique=critique) if thin else q)
    return base, out, dropped


def _every(m: Manifest) -> int:
    return int(m.settings.get("probe_every", 64))


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
