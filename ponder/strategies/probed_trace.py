"""The probed trace: a reasoning trace generated in segments, with an answer probe after each.

Use it wherever a trace must be watched while it grows: the collector (``collect``) records one,
the DRR stop policies (``drr_think``, ``drr_sample``) judge one at every checkpoint. Every
``probe_every`` tokens the partial assistant message is continued with the answer cue
(``probe_cue``, "... the final answer is \\boxed{") for a few greedy tokens (Dynasor-CoT); the
probe shares the trace's prefix, so a server's prompt cache makes it cheap. ``TraceLog`` keeps
what a trace did (text, per-token logprobs and confidence, probes, usage) as plain data;
``ProbedTraceFields`` are the settings, shared so a judge trained on a collection is used with
the same segmentation.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from ponder.confidence import token_confidence
from ponder.protocol.actions import Generate
from ponder.protocol.requests import Choice, Completion, GenerationRequest, SamplingParams
from ponder.protocol.strategy import Strategy

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


class ProbedTraceFields(Strategy):
    """The trace and probe settings shared by the collector and the live DRR strategies, so a
    judge trained on a collection is used with the same segmentation (not registered)."""

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


def probe_flow(
    messages: tuple[Any, ...],
    cue: str,
    log: TraceLog,
    max_tokens: int,
    stop: tuple[str, ...],
) -> Generator[Any, Any, str | None]:
    """Probe the partial trace in ``log`` (sans-I/O): continue it with the answer cue for a few
    greedy tokens, record the probe on ``log`` and return its answer (``None`` if it failed).
    Shared by the collector and the live DRR strategies, so replay and live ask alike."""
    [res] = yield Generate.of(
        GenerationRequest(
            messages=messages,
            assistant_prefix=log.text.rstrip() + CUE_SEPARATOR + cue,
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
