"""What each recorded signal costs, and what a replayed policy would have spent live.

Use ``question_costs(record, probe_every)`` for one question's per-sample costs in the two ways a
live policy can draw a sample -- ``one_call`` (one plain request, as ``sample``, ``adaptive`` and
``drr_sample`` with ``probes: false`` send it) and ``probed`` (segments of ``probe_every`` tokens,
a probe after each: ``drr_sample`` with probes) -- and ``signal_costs(records)`` /
``format_signal_costs`` for the collection's cost per question of each signal it recorded
(``usage.by_purpose``: reasoning, probes, self-critique).

A collection is generated in segments, so the cost of one plain call is estimated from its
usage: the question's prompt ``P`` (system + user turns) solves
``reason prompt tokens = sum over segment calls of (P + the trace so far)``, the probe cue's
length ``C`` solves ``probe prompt tokens = sum over probes of (P + the trace so far + C)``
(the trace so far counted as ``probe_every`` tokens a segment). Prompt tokens are counted per
sample (what a server bills for ``n`` parallel samples; its prompt cache makes repeats cheap but
not free). A collection without ``by_purpose`` usage gets no prompt estimates (``None``).

``Cost.path_tokens``/``path_calls`` are a wall-time proxy: a sample's tokens and calls one after
the other (probes included); a policy's proxy is the sum over its rounds of the round's longest
sample, assuming the server runs one round's samples in parallel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ponder.behaviour.records import QuestionRecord, SampleRecord

PURPOSES = ("reason", "probe", "critique")


@dataclass(frozen=True)
class Cost:
    """One sample's (or a policy's) completion and prompt tokens and calls, and its critical
    path (tokens and calls one after the other)."""

    completion: float = 0.0
    prompt: float = 0.0
    calls: float = 0.0
    path_tokens: float = 0.0
    path_calls: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.completion + other.completion,
            self.prompt + other.prompt,
            self.calls + other.calls,
            self.path_tokens + other.path_tokens,
            self.path_calls + other.path_calls,
        )


@dataclass(frozen=True)
class QuestionCosts:
    """Per sample (the samples without ``error``, in order) what each way of drawing it costs."""

    one_call: list[Cost]
    probed: list[Cost]
    prompt: float | None  # the question's estimated prompt tokens (None: no usage recorded)

    def drawn(self, n: int, round_size: int | None, probed: bool) -> Cost:
        """The first ``n`` samples drawn in rounds of ``round_size`` (``None``: one round)."""
        costs = (self.probed if probed else self.one_call)[:n]
        size = round_size or max(n, 1)
        return _rounds(costs, [min(i, n) for i in range(size, n + size, size)])

    def drawn_in(self, ends: Sequence[int], probed: bool = False) -> Cost:
        """The samples drawn in rounds that end at ``ends`` (e.g. 2, 4, 8: ``adaptive``)."""
        return _rounds((self.probed if probed else self.one_call)[: ends[-1]], ends)


def _rounds(costs: Sequence[Cost], ends: Sequence[int]) -> Cost:
    total = sum(costs, Cost())
    path_t = path_c = 0.0
    start = 0
    for end in ends:
        part = costs[start:end]
        if part:
            path_t += max(c.path_tokens for c in part)
            path_c += max(c.path_calls for c in part)
        start = end
    return Cost(total.completion, total.prompt, total.calls, path_t, path_c)


def segment_calls(s: SampleRecord, every: int) -> int:
    """How many segment calls generated the trace (``every`` tokens each)."""
    return max(1, math.ceil(s.tokens / every))


def _by_purpose(q: QuestionRecord) -> dict[str, dict[str, float]]:
    raw = q.usage.get("by_purpose") or {}
    return {k: {m: float(v) for m, v in d.items()} for k, d in raw.items() if isinstance(d, dict)}


def prompt_and_cue(q: QuestionRecord, every: int) -> tuple[float | None, float]:
    """The question's estimated prompt tokens ``P`` (``None``: no usage recorded) and the probe
    cue's ``C``, solved from its ``by_purpose`` usage (module doc)."""
    samples = [s for s in q.samples if not s.error]
    bp = _by_purpose(q)
    reason, probe = bp.get("reason"), bp.get("probe")
    prompt: float | None = None
    cue = 0.0
    if reason and reason.get("calls"):
        prefix = sum(
            min(j * every, s.tokens) for s in samples for j in range(segment_calls(s, every))
        )
        prompt = max(0.0, (reason.get("prompt_tokens", 0.0) - prefix) / reason["calls"])
        if probe and probe.get("calls"):
            at = sum(p.at for s in samples for p in s.probes)
            cue = max(0.0, (probe.get("prompt_tokens", 0.0) - at) / probe["calls"] - prompt)
    return prompt, cue


def question_costs(q: QuestionRecord, every: int) -> QuestionCosts:
    """One question's per-sample costs, both ways (module doc)."""
    samples = [s for s in q.samples if not s.error]
    prompt, cue = prompt_and_cue(q, every)
    one, probed = [], []
    for s in samples:
        calls = segment_calls(s, every)
        ptok = sum(p.tokens for p in s.probes)
        one.append(Cost(s.tokens, prompt or 0.0, 1, s.tokens, 1))
        p_prompt = 0.0
        if prompt is not None:
            p_prompt = sum(prompt + min(j * every, s.tokens) for j in range(calls))
            p_prompt += sum(prompt + p.at + cue for p in s.probes)
        n = calls + len(s.probes)
        probed.append(Cost(s.tokens + ptok, p_prompt, n, s.tokens + ptok, n))
    return QuestionCosts(one, probed, prompt)


@dataclass(frozen=True)
class SignalCost:
    """Mean cost per question of one recorded signal."""

    signal: str
    prompt: float
    completion: float
    calls: float
    cached: float | None = None


def signal_costs(records: Sequence[QuestionRecord], every: int) -> list[SignalCost]:
    """Per question, on average: each purpose's usage as recorded (reasoning in segments, the
    probes, self-critique), and the same samples' reasoning as one plain call each (estimated)."""
    with_usage = [q for q in records if _by_purpose(q)]
    n = len(with_usage)
    if not n:
        return []
    out = []
    for purpose in PURPOSES:
        rows = [_by_purpose(q).get(purpose, {}) for q in with_usage]
        out.append(
            SignalCost(
                purpose,
                sum(r.get("prompt_tokens", 0.0) for r in rows) / n,
                sum(r.get("completion_tokens", 0.0) for r in rows) / n,
                sum(r.get("calls", 0.0) for r in rows) / n,
            )
        )
    one = [c for q in with_usage for c in question_costs(q, every).one_call]
    out.append(
        SignalCost(
            "reason, one call each (estimated)",
            sum(c.prompt for c in one) / n,
            sum(c.completion for c in one) / n,
            sum(c.calls for c in one) / n,
        )
    )
    cached = [float(q.usage.get("cached_prompt_tokens", 0)) for q in with_usage]
    total = [float(q.usage.get("prompt_tokens", 0)) for q in with_usage]
    if sum(total):
        out.append(SignalCost("all (recorded)", sum(total) / n, 0.0, 0.0, sum(cached) / n))
    return out


def format_signal_costs(costs: Sequence[SignalCost], questions: int) -> str:
    """A markdown table of ``signal_costs``."""
    if not costs:
        return "(no by_purpose usage recorded: signal costs unknown)"
    lines = [
        f"cost per question of each recorded signal (mean over {questions} questions)",
        "",
        "| signal | prompt tokens | completion tokens | calls |",
        "|---|---|---|---|",
    ]
    for c in costs:
        if c.cached is not None:
            lines.append(
                f"| {c.signal} | {c.prompt:,.0f} ({c.cached:,.0f} served from the prompt "
                "cache) | – | – |"
            )
            continue
        lines.append(f"| {c.signal} | {c.prompt:,.0f} | {c.completion:,.0f} | {c.calls:.1f} |")
    return "\n".join(lines)
