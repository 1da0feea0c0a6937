"""What a behaviour collection recorded beyond its traces: probes and self-critique.

Use ``collection_signals(manifest, records)`` before replaying a policy or training a judge that
needs probes (the DM with probes, ``dm_sample``/``bayes`` with probes): a plain collection
(``--probe-every`` at least ``max_tokens``, or pooled at that interval) has none, and those are
then left out, with ``why``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ponder.behaviour.records import Manifest, QuestionRecord
from ponder.learning.drr.train import max_tokens_of


@dataclass(frozen=True)
class Signals:
    """What a collection recorded beyond the traces: probes (``why``: why not) and critique."""

    probes: bool
    critique: bool
    why: str = ""


def collection_signals(manifest: Manifest, records: Sequence[QuestionRecord]) -> Signals:
    """Probes and self-critique: from the manifest's settings and the records themselves."""
    every = int(manifest.settings.get("probe_every", 64))
    mt = max_tokens_of(manifest)
    why = ""
    if every >= mt:
        why = f"probe_every {every} >= max_tokens {mt}"
    elif not any(s.probes for q in records for s in q.samples):
        why = "no sample has probes"
    critique = any(s.critique_p_yes is not None for q in records for s in q.samples)
    return Signals(probes=not why, critique=critique, why=why)
