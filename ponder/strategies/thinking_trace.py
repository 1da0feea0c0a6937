"""A probed trace in the thinking format: segments and probes inside the thinking, the thinking
capped, then the answer.

Use ``thinking_trace`` where a probed trace is recorded from a reasoner served in the thinking
format (``backend: {kind: local, thinking: true}``, docs/reasoning.md): the collector does with
``thinking`` settings (``ponder collect --thinking-budget N``), and where one is watched live
(``drr_think`` with ``thinking``: its stop rule is the ``checkpoint`` hook). The trace is
``probed_trace``'s loop with every segment continuing the opened thinking (``<think>\\n`` + the
thinking so far) and ending at the closing marker, so ``max_tokens`` caps the *thinking*; each
probe continues the same prefix with the answer cue, so it is made inside the thinking
(Dynasor-CoT). When the thinking ends (the model closed it, stopped without closing it, or reached
the cap), the answer is asked for as budget forcing asks for it in live runs
(``ponder.protocol.forcing``: the thinking closed by the closing marker, the model answers within
``answer_tokens``). The log's ``text`` is then the answer part only (what is graded),
``thinking``/``thinking_tokens``/``thinking_cut`` the thinking. A thinking the model left empty has
nothing to close: the trace then has no answer.
Sans-I/O, like every strategy.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ponder.backends.thinking_format import (
    DEFAULT_TEMPLATE,
    answer_lead_text,
    check_answer_lead,
    check_template,
)
from ponder.protocol.actions import Generate
from ponder.protocol.forcing import forced_choice, forcing_step
from ponder.protocol.requests import Choice, Completion, GenerationRequest, Message, SamplingParams
from ponder.protocol.thinking import DEFAULT_MARKERS, Markers, check_markers
from ponder.protocol.thinking_budget import DEFAULT_ANSWER_TOKENS
from ponder.strategies.probed_trace import (
    CheckpointHook,
    ProbedTraceFields,
    S,
    TraceEnd,
    TraceLog,
)


class ThinkingSettings(BaseModel):
    """How a trace is recorded in the thinking format: the answer's allowance after the
    thinking, the backend's think-first system template (named so a collection's manifest hashes
    it), the thinking markers, and the answer lead written after the closing marker when the
    thinking is closed for the answer (``answer_lead``: a template name, none by default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    answer_tokens: int = Field(DEFAULT_ANSWER_TOKENS, gt=0)
    template: str = DEFAULT_TEMPLATE
    markers: tuple[str, str] = DEFAULT_MARKERS
    answer_lead: str | None = None

    @field_validator("answer_lead")
    @classmethod
    def _answer_lead(cls, v: str | None) -> str | None:
        return check_answer_lead(v, "strategy.thinking.answer_lead")

    @field_validator("template")
    @classmethod
    def _template(cls, v: str) -> str:
        return check_template(v)

    @field_validator("markers")
    @classmethod
    def _markers(cls, v: tuple[str, str]) -> tuple[str, str]:
        return check_markers(v)

    @property
    def opening(self) -> str:
        """What starts every assistant prefix: the opened thinking (the format's prefill)."""
        return f"{self.markers[0]}\n"

    @property
    def lead(self) -> str:
        """The answer lead's text (``""``: none), written after the closing marker."""
        return answer_lead_text(self.answer_lead)

    @property
    def empty(self) -> str:
        """An empty, closed thinking: the prefix of a reply that answers at once."""
        return f"{self.markers[0]}\n\n{self.markers[1]}\n\n"


@dataclass
class ThinkingLog(TraceLog):
    """A thinking-format trace's log: ``TraceLog`` (whose ``text`` is, once the thinking ended,
    the answer part) plus the thinking, its tokens and whether it was cut at the cap."""

    thinking: str | None = None
    thinking_tokens: int | None = None
    thinking_cut: bool | None = None


def thinking_trace(
    fields: ProbedTraceFields,
    messages: tuple[Message, ...],
    log: ThinkingLog,
    temperature: float,
    thinking: ThinkingSettings,
    checkpoint: CheckpointHook[S] | None = None,
) -> Generator[Any, Any, TraceEnd[S]]:
    """One thinking-format trace into ``log`` (see the module doc); ``fields.max_tokens`` caps the
    thinking. Returns how the *thinking* ended (``finished``: the model ended it, ``cut``: at the
    cap, ``stopped``: ``checkpoint`` stopped it, ``failed``: a call failed and the log keeps what
    came before). ``checkpoint`` sees every probed checkpoint inside the thinking (the live
    ``drr_think``'s stop rule); a thinking it stops is closed and answered like one cut."""
    markers: Markers = thinking.markers
    end: TraceEnd[S] = yield from fields.probed_trace(
        messages, log, temperature, lead=thinking.opening, stop=(markers[1],), checkpoint=checkpoint
    )
    if end.failure is not None:
        return end
    think, answer = log.text, ""
    if markers[1] in think:  # a backend that ignored the stop string: the rest is answer text
        think, answer = think.split(markers[1], 1)
    first = Choice(
        text=answer.lstrip(),
        reasoning=think.strip() or None,
        finish_reason=log.finish_reason,
        completion_tokens=log.tokens,
        seed=log.seed,
    )
    params = SamplingParams(
        temperature=temperature,
        top_p=fields.top_p,
        max_tokens=log.tokens + thinking.answer_tokens,  # the answer gets ``answer_tokens``
        seed=log.seed,
        logprobs=True,
        top_logprobs=max(fields.top_logprobs, 1),
    )
    request = GenerationRequest(messages=messages, params=params, purpose="answer")
    lead = thinking.lead
    step = forcing_step(request, first, params.max_tokens, markers, lead)
    log.thinking, log.thinking_tokens = first.reasoning or "", log.tokens
    log.thinking_cut = end.how == "cut"
    log.text = ""
    if step is None:  # nothing to continue (an empty thinking), or an answer already complete
        log.text = forced_choice(first, None, log.thinking_cut, markers).text
        return end
    [res] = yield Generate.of(step.request)
    if not isinstance(res, Completion):
        return TraceEnd(log, "failed", stop=end.stop, failure=res)
    log.charge(res)
    if not res.choices:
        return end
    rest = res.choices[0]
    log.add_segment(rest)  # its tokens, logprobs and finish reason
    log.text = forced_choice(first, rest, step.cut, markers, lead).text
    return end
