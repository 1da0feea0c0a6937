"""A probed record seen as a coarser collection would have recorded it, so collections made with
different probe intervals can be pooled for training.

Use ``coarsen(record, every_from, every_to)`` when a corpus was grown in a second directory with
sparser probes (``ponder collect --skip ... --probe-every 320 --no-self-critique``): the finer
collection's questions are read as if probed every ``every_to`` tokens -- only the probes at
multiples of ``every_to`` kept (a probe at a cut trace's last token is one of them when
``every_to`` is ``max_tokens``), self-critique dropped when the coarse collection has none, and
the ``by_purpose`` usage re-estimated for those calls from the question's prompt and cue lengths
(``costs.prompt_and_cue``), so replayed costs are what the coarse collector would have spent.
"""

from __future__ import annotations

from typing import Any

from ponder.behaviour.records import QuestionRecord, SampleRecord
from ponder.learning.drr.costs import prompt_and_cue, segment_calls


def coarsen(
    q: QuestionRecord, every_from: int, every_to: int, *, critique: bool = False
) -> QuestionRecord:
    """``q`` (probed every ``every_from`` tokens) as if probed every ``every_to``, a multiple of
    it; ``critique``: keep the self-critique answers (module doc)."""
    if every_to % every_from:
        raise ValueError(f"probe interval {every_to} is not a multiple of {every_from}")
    prompt, cue = prompt_and_cue(q, every_from)
    samples = [_sample(s, every_to, critique, prompt, cue) for s in q.samples]
    usage: dict[str, Any] = {k: v for k, v in q.usage.items() if k != "by_purpose"}
    if prompt is not None:
        usage["by_purpose"] = _usage(samples, every_to, prompt, cue)
        if critique and "critique" in (q.usage.get("by_purpose") or {}):
            usage["by_purpose"]["critique"] = q.usage["by_purpose"]["critique"]
        old = float(q.usage.get("prompt_tokens") or 0)
        new = sum(float(d.get("prompt_tokens", 0)) for d in usage["by_purpose"].values())
        if old > 0:  # the cache hit rate as recorded, on the calls that remain
            usage["cached_prompt_tokens"] = round(
                float(q.usage.get("cached_prompt_tokens") or 0) * new / old
            )
            usage["prompt_tokens"] = round(new)
    return q.model_copy(update={"samples": samples, "usage": usage})


def _sample(
    s: SampleRecord, every: int, critique: bool, prompt: float | None, cue: float
) -> SampleRecord:
    probes = [p for p in s.probes if p.at % every == 0]
    update: dict[str, Any] = {
        "probes": probes,
        "critique_p_yes": s.critique_p_yes if critique else None,
    }
    if prompt is not None and s.usage:
        calls = segment_calls(s, every)
        p_tok = sum(prompt + min(j * every, s.tokens) for j in range(calls))
        p_tok += sum(prompt + p.at + cue for p in probes)
        old = s.usage.get("prompt", 0)
        update["usage"] = {
            "prompt": round(p_tok),
            "cached": round(s.usage.get("cached", 0) * p_tok / old) if old else 0,
            "completion": s.tokens + sum(p.tokens for p in probes),
            "calls": calls + len(probes),
        }
    return s.model_copy(update=update)


def _usage(
    samples: list[SampleRecord], every: int, prompt: float, cue: float
) -> dict[str, dict[str, float]]:
    ok = [s for s in samples if not s.error]
    reason_prompt = sum(
        prompt + min(j * every, s.tokens) for s in ok for j in range(segment_calls(s, every))
    )
    probes = [p for s in ok for p in s.probes]
    return {
        "reason": {
            "calls": float(sum(segment_calls(s, every) for s in ok)),
            "prompt_tokens": float(round(reason_prompt)),
            "completion_tokens": float(sum(s.tokens for s in ok)),
        },
        "probe": {
            "calls": float(len(probes)),
            "prompt_tokens": float(round(sum(prompt + p.at + cue for p in probes))),
            "completion_tokens": float(sum(p.tokens for p in probes)),
        },
    }
