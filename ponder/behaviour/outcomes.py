"""Behaviour-collection samples as ``Outcome``s, so aggregators can be replayed on them.

Use ``sample_outcomes(record, manifest)`` to hand a collected question's samples to any
aggregator (majority, weighted, confidence_filter, learned) exactly as a live ``sample`` run would,
plus what only the collector records: ``critique_p_yes`` and the probes' answers. Each outcome's
``data["reasoner"]`` names the collection's model (``ModelInfo.id``: its sha256, else its name),
which the learned aggregator checks against its artifact. With ``hidden`` (a collection's
sidecar, ``ponder.behaviour.hidden.read_hidden``) each outcome also carries ``data["hidden"]``,
its reduced last-token hidden state, when the sidecar has it.
"""

from __future__ import annotations

from ponder.behaviour.hidden import HiddenStates
from ponder.behaviour.records import Manifest, QuestionRecord, SampleRecord
from ponder.confidence import DEFAULT_WINDOW, trace_confidence
from ponder.protocol.actions import Outcome


def sample_outcome(
    s: SampleRecord, reasoner: str | None = None, window: int = DEFAULT_WINDOW
) -> Outcome:
    """One collected trace as the outcome ``cot`` with ``logprobs: true`` would have returned."""
    conf, source = (s.conf, "top_logprobs") if s.conf else (s.lp, "chosen")
    data: dict[str, object] = {
        "seed": s.seed,
        "finish_reason": s.finish_reason,
        "tokens": s.tokens,
        "probes": [p.answer for p in s.probes],
    }
    if conf:
        data["trace_confidence"] = trace_confidence(conf, window).to_dict()
        data["confidence_source"] = source
    if s.critique_p_yes is not None:
        data["critique_p_yes"] = s.critique_p_yes
    if reasoner is not None:
        data["reasoner"] = reasoner
    if s.error:
        data["error"] = s.error
    return Outcome(
        answer=s.answer,
        text=s.text,
        confidence=sum(s.lp) / len(s.lp) if s.lp else None,
        data=data,
    )


def sample_outcomes(
    record: QuestionRecord,
    manifest: Manifest | None = None,
    window: int = DEFAULT_WINDOW,
    hidden: HiddenStates | None = None,
) -> list[Outcome]:
    rid = manifest.model.id if manifest is not None else None
    out = [sample_outcome(s, rid, window) for s in record.samples]
    if hidden is not None:
        for s, o in zip(record.samples, out, strict=True):
            vec = hidden.vector(record.id, s.seed)
            if vec is not None:
                o.data["hidden"] = list(vec)
    return out
