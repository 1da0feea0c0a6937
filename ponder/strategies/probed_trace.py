"""The probed trace: a reasoning trace generated in segments, watched at every checkpoint.

Use it wherever a trace must be watched while it grows: the collector (``collect``) records one,
the DRR stop policies (``drr_think``, ``drr_sample``, ``drr_feedback``) judge one at every
checkpoint, DeepConf's online early termination (``deepconf``) checks its confidence window.
``probed_trace`` is the one loop all of them drive: ask for ``every`` tokens at a time by
continuing the partial assistant message, optionally *probe* after every unfinished segment
(continue the partial trace with the answer cue, ``probe_cue``, "... the final answer is
\\boxed{", for a few greedy tokens: Dynasor-CoT; the probe shares the trace's prefix, so a
server's prompt cache makes it cheap), then hand the checkpoint to a hook that may stop the
trace. ``TraceLog`` keeps what a trace did (text, per-token logprobs and confidence, probes,
usage) as plain data; ``ProbedTraceFields`` are the settings, shared so a judge trained on a
collection is used with the same segmentation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import Field

from ponder.confidence import token_confidence
from ponder.prompts import load_template
from ponder.protocol.actions import Generate
from ponder.protocol.requests import (
    Choice,
    Completion,
    GenerationFailure,
    GenerationRequest,
    Message,
    SamplingParams,
)
from ponder.protocol.strategy import Requirement, Strategy

CUE_SEPARATOR = "\n\n"
"""Put between the partial trace and the answer cue of a probe."""


def p_yes(top: dict[str, float]) -> float | None:
    """P("yes") among the yes/no tokens of one position's alternatives (``None`` if neither)."""
    yes = sum(math.exp(v) for k, v in top.items() if k.strip().lower() == "yes")
    no = sum(math.exp(v) for k, v in top.items() if k.strip().lower() == "no")
    return yes / (yes + no) if yes + no > 0 else None


def probe_answer(text: str) -> str | None:
    """The answer a probe wrote after the cue's opening ``\\boxed{`` (up to its closing brace)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return text[:i].strip() or None
            depth -= 1
    return text.strip() or None  # the probe stopped at its "}" stop string


@dataclass
class TraceLog:
    """What one trace did, as plain data (the driver turns it into a ``SampleRecord``)."""

    seed: int | None
    text: str = ""
    tokens: int = 0
    finish_reason: str | None = None
    lp: list[float] = field(default_factory=list)
    conf: list[float] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    critique_p_yes: float | None = None
    error: str | None = None
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt": 0, "cached": 0, "completion": 0, "calls": 0}
    )

    def charge(self, completion: Completion) -> None:
        self.usage["prompt"] += completion.prompt_tokens
        self.usage["cached"] += completion.cached_prompt_tokens
        self.usage["completion"] += completion.completion_tokens
        self.usage["calls"] += completion.calls

    def add_segment(self, choice: Choice) -> None:
        self.text += choice.text
        self.tokens += choice.completion_tokens
        self.finish_reason = choice.finish_reason
        if choice.token_logprobs:
            self.lp.extend(round(x, 4) for x in choice.token_logprobs)
        if choice.top_logprobs:
            self.conf.extend(round(token_confidence(t), 4) for t in choice.top_logprobs)


def probe_flow(
    messages: tuple[Any, ...],
    cue: str,
    log: TraceLog,
    max_tokens: int,
    stop: tuple[str, ...],
    lead: str = "",
) -> Generator[Any, Any, str | None]:
    """Probe the partial trace in ``log`` (sans-I/O): continue it with the answer cue for a few
    greedy tokens, record the probe on ``log`` and return its answer (``None`` if it failed).
    The probe of ``probed_trace``, so the collector (replay) and the live strategies ask alike.
    ``lead`` goes before the trace in the prefix (a thinking trace's opening marker, so the probe
    is made inside the thinking)."""
    [res] = yield Generate.of(
        GenerationRequest(
            messages=messages,
            assistant_prefix=lead + log.text.rstrip() + CUE_SEPARATOR + cue,
            params=SamplingParams(temperature=0.0, max_tokens=max_tokens, stop=stop),
            purpose="probe",
        )
    )
    if not isinstance(res, Completion):
        return None
    log.charge(res)
    text = res.choices[0].text
    answer = probe_answer(text)
    log.probes.append(
        {
            "at": log.tokens,
            "text": text,
            "answer": answer,
            "tokens": res.choices[0].completion_tokens,
        }
    )
    return answer


def critique_flow(
    messages: tuple[Any, ...],
    text: str,
    ask: str,
    log: TraceLog | None = None,
    prefix: str | None = None,
) -> Generator[Any, Any, float | None]:
    """Ask the reasoner whether its finished ``text`` is right (sans-I/O): one greedy token after
    the ``ask`` turn, P("yes") read off its alternatives (``None`` if the call failed or neither
    word is there). Charges the call to ``log`` when given. ``prefix`` starts the reply (a
    thinking-format reasoner gets an empty, closed thinking, so the token read is the answer's)."""
    [res] = yield Generate.of(
        GenerationRequest(
            messages=(
                *messages,
                {"role": "assistant", "content": text},
                {"role": "user", "content": ask},
            ),
            assistant_prefix=prefix,
            params=SamplingParams(temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=20),
            purpose="critique",
        )
    )
    if not isinstance(res, Completion):
        return None
    if log is not None:
        log.charge(res)
    tops = res.choices[0].top_logprobs
    return p_yes(tops[0]) if tops else None


# -- the loop ------------------------------------------------------------------------------------

S = TypeVar("S")
"""What a checkpoint hook returns to stop a trace (DRR: the DM's P; DeepConf: the window's end)."""

SegmentRequest = Callable[[str, int], GenerationRequest]
"""How a trace asks for its next segment: (the trace so far, tokens to ask for) -> the request."""


@dataclass(frozen=True)
class Probe:
    """How to probe a trace: continue ``messages``' partial trace with ``cue`` (``probe_flow``)."""

    messages: tuple[Any, ...]
    cue: str
    max_tokens: int
    stop: tuple[str, ...]
    lead: str = ""
    """Put before the trace in the probe's prefix (a thinking trace's opening marker)."""


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint hook sees after each segment: the trace so far (``log``, the segment
    already added), the segment's completion, the probe's answer (``None`` when the segment was
    not probed -- probing off, or the trace finished -- or the probe failed), and how the segment
    ended: ``finished`` (the reasoner ended on its own) or ``cut`` (at ``max_tokens``)."""

    log: TraceLog
    completion: Completion
    answer: str | None
    finished: bool
    cut: bool

    @property
    def choice(self) -> Choice:
        return self.completion.choices[0]


CheckpointHook = Callable[[Checkpoint], Generator[Any, Any, S | None]]
"""A sub-flow run after every segment (it may yield ``Note``s); a value other than ``None`` stops
the trace there and becomes ``TraceEnd.stop``."""


@dataclass
class TraceEnd(Generic[S]):
    """How a probed trace ended: ``finished`` (the reasoner ended), ``cut`` (at ``max_tokens``),
    ``stopped`` (the hook returned ``stop``) or ``failed`` (a segment call failed: ``failure``).
    The caller turns it into its own ``Outcome``."""

    log: TraceLog
    how: Literal["finished", "cut", "stopped", "failed"]
    stop: S | None = None
    failure: GenerationFailure | None = None


def probed_trace(
    log: TraceLog,
    segment: SegmentRequest,
    *,
    every: int,
    max_tokens: int,
    probe: Probe | None = None,
    checkpoint: CheckpointHook[S] | None = None,
) -> Generator[Any, Any, TraceEnd[S]]:
    """Generate one trace into ``log`` in segments of ``every`` tokens (sans-I/O, ``yield from``).

    After each segment: a segment that did not finish (cut at ``max_tokens`` included) is probed
    when ``probe`` is given; then ``checkpoint`` (if any) sees it and may stop the trace. The
    trace ends when the reasoner finishes (or a segment comes back empty), at ``max_tokens``, when
    the hook stops it, or when a segment call fails (the log keeps what came before)."""
    while True:
        [res] = yield Generate.of(segment(log.text, min(every, max_tokens - log.tokens)))
        if not isinstance(res, Completion):
            return TraceEnd(log, "failed", failure=res)
        log.charge(res)
        log.add_segment(res.choices[0])
        cut = log.finish_reason == "length" and log.tokens >= max_tokens
        finished = not cut and (
            log.finish_reason != "length" or res.choices[0].completion_tokens == 0
        )
        answer = None
        if probe is not None and not finished:
            answer = yield from probe_flow(
                probe.messages, probe.cue, log, probe.max_tokens, probe.stop, probe.lead
            )
        if checkpoint is not None:
            stop = yield from checkpoint(Checkpoint(log, res, answer, finished, cut))
            if stop is not None:
                return TraceEnd(log, "stopped", stop=stop)
        if finished or cut:
            return TraceEnd(log, "finished" if finished else "cut")


class ProbedTraceFields(Strategy):
    """The trace and probe settings shared by the collector and the live DRR strategies, so a
    judge trained on a collection is used with the same segmentation (not registered); their
    ``probed_trace`` asks for segments and probes alike."""

    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(320, gt=0)
    probe_every: int = Field(64, gt=0)
    probe_max_tokens: int = Field(12, gt=0)
    probe_stop: tuple[str, ...] = ("}",)
    top_logprobs: int = Field(5, ge=0, le=20)
    seed: int = 0
    system_template: str = "cot_system"
    user_template: str = "cot_user"
    cue_template: str = "probe_cue"

    def cue(self) -> str:
        return load_template(self.cue_template, allowed=()).render()

    def requires(self) -> tuple[Requirement, ...]:
        """Every segment and probe continues the partial assistant message."""
        why = "its trace is generated in segments, each continuing the partial assistant message"
        return (Requirement.of("continuation", why=why),)

    def probed_trace(
        self,
        messages: tuple[Message, ...],
        log: TraceLog,
        temperature: float,
        *,
        probes: bool = True,
        checkpoint: CheckpointHook[S] | None = None,
        lead: str = "",
        stop: tuple[str, ...] = (),
    ) -> Generator[Any, Any, TraceEnd[S]]:
        """``probed_trace`` with these settings: the collector's segment and probe requests.
        ``lead`` opens every segment's and probe's prefix before the trace so far and ``stop``
        ends a segment (a thinking trace: the opening marker, and the closing one;
        ``ponder.strategies.thinking_trace``)."""

        def segment(prefix: str, size: int) -> GenerationRequest:
            params = SamplingParams(
                temperature=temperature,
                top_p=self.top_p,
                max_tokens=size,
                seed=log.seed,
                logprobs=True,
                top_logprobs=max(self.top_logprobs, 1),
                stop=stop,
            )
            return GenerationRequest(
                messages=messages, assistant_prefix=lead + prefix, params=params, purpose="reason"
            )

        probe = Probe(messages, self.cue(), self.probe_max_tokens, self.probe_stop, lead)
        return (
            yield from probed_trace(
                log,
                segment,
                every=self.probe_every,
                max_tokens=self.max_tokens,
                probe=probe if probes else None,
                checkpoint=checkpoint,
            )
        )
