"""``collect``: the sans-I/O strategy that records a reasoner's behaviour on one question.

Use it (through ``ponder collect`` or ``ponder.learning.collect.collector.collect``) to gather
training and replay data for the DRR judge, the learned aggregator and SSA. It draws ``k`` sampled
traces (and optionally the greedy one). Each trace is generated in segments of ``probe_every``
tokens by continuing the partial assistant message (the loop the live DRR strategies drive too,
``ponder.strategies.probed_trace``); after every segment that did not finish, a *probe* continues
the partial trace with an answer cue (``probe_cue`` template, "... so the final answer is \\boxed{")
for a few greedy tokens. The probe shares the trace's prefix, so the server's prompt cache makes it
cheap (the completion's ``cached_prompt_tokens`` are summed per trace). A trace cut at
``max_tokens`` is probed once more at the cut. With ``self_critique`` the reasoner is then asked
whether its answer is right, and P("yes") is read off the logprobs of one token.

Token logprobs (chosen token and the top ``top_logprobs`` alternatives) are kept per generated
token. The strategy only gathers; grading against the gold answer is the driver's job. It needs a
backend with the "continuation" capability (the local default, or llama.cpp with
``apply_template_url``).

With ``thinking`` settings (a reasoner served in the thinking format, ``ponder collect
--thinking-budget N``) each trace is a thinking-format trace (``ponder.strategies.thinking_trace``):
segments and probes inside the thinking, ``max_tokens`` capping the thinking, the answer forced
after it within ``thinking.answer_tokens`` and graded from the answer part only; the
self-critique then reads the answer after an empty, closed thinking.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from ponder.answers import extract_answer
from ponder.prompts import load_template
from ponder.protocol.actions import Flow, Fork, Outcome, Task
from ponder.strategies.cot import PROMPT_VARIABLES, cot_messages
from ponder.strategies.probed_trace import ProbedTraceFields, TraceEnd, TraceLog, critique_flow
from ponder.strategies.registry import register_strategy
from ponder.strategies.thinking_trace import ThinkingLog, ThinkingSettings, thinking_trace


@register_strategy
class BehaviourCollector(ProbedTraceFields):
    """Record k traces of one question, with probes, logprobs and self-critique."""

    name: ClassVar[str] = "collect"

    k: int = Field(8, ge=1, le=64)
    greedy: bool = False
    temperature: float = Field(0.7, gt=0.0, le=2.0)
    self_critique: bool = True
    critique_template: str = "self_critique_user"
    thinking: ThinkingSettings | None = None
    """Record in the thinking format (see the module doc); ``None``: plain traces."""

    @model_serializer(mode="wrap")
    def _omit_plain(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Plain settings are dumped exactly as before ``thinking`` existed."""
        data: dict[str, Any] = handler(self)
        if data.get("thinking") is None:
            data.pop("thinking", None)
        return data

    @model_validator(mode="after")
    def _templates_valid(self) -> BehaviourCollector:
        load_template(self.system_template, allowed=())
        load_template(self.user_template, allowed=PROMPT_VARIABLES)
        load_template(self.cue_template, allowed=())
        load_template(self.critique_template, allowed=())
        return self

    def template_names(self) -> list[str]:
        names = [
            self.system_template,
            self.user_template,
            self.cue_template,
            self.critique_template,
        ]
        if self.thinking is not None:  # the backend's think-first system prompt shapes the traces
            names.append(self.thinking.template)
            if self.thinking.answer_lead is not None:  # it shapes every answer part
                names.append(self.thinking.answer_lead)
        return names

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
        log: TraceLog
        end: TraceEnd[None]
        if self.thinking is not None:
            log = ThinkingLog(seed=seed)
            end = yield from thinking_trace(self, messages, log, temperature, self.thinking)
        else:
            log = TraceLog(seed=seed)
            end = yield from self.probed_trace(messages, log, temperature)
        if end.failure is not None:
            log.error = f"{type(end.failure.error).__name__}: {end.failure.error}"
            return Outcome(
                answer=None,
                text=log.text,
                budget_limited=end.failure.budget,
                data={"trace": log, "exception": end.failure.error},
            )
        if self.self_critique and log.text:
            ask = load_template(self.critique_template, allowed=()).render()
            prefix = self.thinking.empty if self.thinking is not None else None
            log.critique_p_yes = yield from critique_flow(messages, log.text, ask, log, prefix)
        return Outcome(answer=extract_answer(log.text), text=log.text, data={"trace": log})
