"""``collect``: the sans-I/O strategy that records a reasoner's behaviour on one question.

Use it (through ``ponder collect`` or ``ponder.learning.collector.collect``) to gather training
and replay data for the DRR judge, the learned aggregator and SSA. It draws ``k`` sampled traces
(and optionally the greedy one). Each trace is generated in segments of ``probe_every`` tokens
by continuing the partial assistant message; after every segment that did not finish, a *probe*
continues the partial trace with an answer cue (``probe_cue`` template, "... so the final answer
is \\boxed{") for a few greedy tokens. The probe shares the trace's prefix, so the server's prompt
cache makes it cheap (the completion's ``cached_prompt_tokens`` are summed per trace). A trace
cut at ``max_tokens`` is probed once more at the cut. With ``self_critique`` the reasoner is then
asked whether its answer is right, and P("yes") is read off the logprobs of one token.

Token logprobs (chosen token and the top ``top_logprobs`` alternatives) are kept per generated
token. The strategy only gathers; grading against the gold answer is the driver's job. It needs a
backend with the "continuation" capability (the local default, or llama.cpp with
``apply_template_url``).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field, model_validator

from ponder.answers import extract_answer
from ponder.confidence import token_confidence
from ponder.orchestrator.requests import Choice, Completion, GenerationRequest, SamplingParams
from ponder.prompts import load_template
from ponder.strategies.base import Flow, Fork, Generate, Outcome, Strategy, Task
from ponder.strategies.cot import PROMPT_VARIABLES, cot_messages
from ponder.strategies.registry import register_strategy

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


@register_strategy
class BehaviourCollector(ProbedTraceFields):
    """Record k traces of one question, with probes, logprobs and self-critique."""

    name: ClassVar[str] = "collect"

    k: int = Field(8, ge=1, le=64)
    greedy: bool = False
    temperature: float = Field(0.7, gt=0.0, le=2.0)
    self_critique: bool = True
    critique_template: str = "self_critique_user"

    @model_validator(mode="after")
    def _templates_valid(self) -> BehaviourCollector:
        load_template(self.system_template, allowed=())
        load_template(self.user_template, allowed=PROMPT_VARIABLES)
        load_template(self.cue_template, allowed=())
        load_template(self.critique_template, allowed=())
        return self

    def template_names(self) -> list[str]:
        return [self.system_template, self.user_template, self.cue_template, self.critique_template]

    def flow(self, task: Task) -> Flow:
        flows = [self.trace_flow(task, self.seed + i, self.temperature) for i in range(self.k)]
        if self.greedy:
            flows.append(self.trace_flow(task, None, 0.0))
        results = yield Fork(flows, label="collect")
        outcomes: list[Outcome] = []
        for r in results:
            if isinstance(r, Outcome):
                outcomes.append(r)
            else:  # an unexpected exception in a trace flow: keep the cause, typed
                log = TraceLog(seed=None, error=f"{type(r).__name__}: {r}")
                outcomes.append(Outcome(answer=None, text="", data={"trace": log, "exception": r}))
        greedy = outcomes.pop() if self.greedy else None
        return Outcome(
            answer=None,
            text="",
            samples=outcomes,
            data={"greedy": greedy} if greedy is not None else {},
        )

    def trace_flow(self, task: Task, seed: int | None, temperature: float) -> Flow:
        """One trace in segments, probed after each unfinished segment (sans-I/O)."""
        messages = cot_messages(task, self.system_template, self.user_template)
        cue = load_template(self.cue_template, allowed=()).render()
        log = TraceLog(seed=seed)
        want_tops = max(self.top_logprobs, 1)
        while True:
            size = min(self.probe_every, self.max_tokens - log.tokens)
            [res] = yield Generate.of(
                GenerationRequest(
                    messages=messages,
                    assistant_prefix=log.text,
                    params=SamplingParams(
                        temperature=temperature,
                        top_p=self.top_p,
                        max_tokens=size,
                        seed=seed,
                        logprobs=True,
                        top_logprobs=want_tops,
                    ),
                    purpose="reason",
                )
            )
            if not isinstance(res, Completion):
                log.error = f"{type(res.error).__name__}: {res.error}"
                return Outcome(
                    answer=None,
                    text=log.text,
                    budget_limited=res.budget,
                    data={"trace": log, "exception": res.error},
                )
            log.charge(res)
            log.add_segment(res.choices[0])
            cut = log.finish_reason == "length" and log.tokens >= self.max_tokens
            finished = log.finish_reason != "length" or res.choices[0].completion_tokens == 0
            if finished and not cut:
                break
            yield from self._probe(messages, cue, log)
            if cut:
                break
        if self.self_critique and log.text:
            yield from self._critique(messages, log)
        return Outcome(answer=extract_answer(log.text), text=log.text, data={"trace": log})

    def _probe(self, messages: tuple[Any, ...], cue: str, log: TraceLog) -> Flow:
        yield from probe_flow(messages, cue, log, self.probe_max_tokens, self.probe_stop)
        return Outcome(answer=None, text="")

    def _critique(self, messages: tuple[Any, ...], log: TraceLog) -> Flow:
        ask = load_template(self.critique_template, allowed=()).render()
        [res] = yield Generate.of(
            GenerationRequest(
                messages=(
                    *messages,
                    {"role": "assistant", "content": log.text},
                    {"role": "user", "content": ask},
                ),
                params=SamplingParams(
                    temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=20
                ),
                purpose="critique",
            )
        )
        if isinstance(res, Completion):
            log.charge(res)
            tops = res.choices[0].top_logprobs
            log.critique_p_yes = p_yes(tops[0]) if tops else None
        return Outcome(answer=None, text="")


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
