"""Self-summarization checkpoints (ReSum): reason past a fixed working context.

Use ``SummarizingReasoner`` when a reasoning trace may be longer than the context you want any
single call to hold. The model reasons in a *window*; at a checkpoint (the working context, prompt
plus reasoning so far, reaches ``checkpoint_tokens``, or ``summarize_every`` tokens were generated
in the window) it is asked to summarize its progress with a jinja2 template, and reasoning restarts
from the question plus that summary, not from the raw trace. At most ``max_summaries`` summaries
are written (a window always gets at least ``min_window_tokens``); raise it at test time
(``strategy.model_copy(update={"max_summaries": 8})``) to let a config tuned for fewer rounds
think longer. The final answer is extracted as usual.

``checkpoint_tokens`` is a limit on *every* call's working context, summary calls included: with
``reserve_for_summary`` (the default) a window that will be summarized stops early enough that the
summary call (its instructions, the window's reasoning and ``summary_max_tokens``) fits under it
too; the last window, which no summary follows, may use the whole limit. Compare it with plain CoT
under the same limit. Turn the reserve off to let summary calls exceed the limit.

Token counts come from the backend's own usage numbers (its tokenizer where it has one); only the
first call of a window is sized with a tiktoken estimate of its prompt. If that call stops short of
the checkpoint, the partial answer is *continued* (``GenerationRequest.assistant_prefix``), which
needs the backend capability "continuation" (llama.cpp and the local default have it); set
``continuation=False`` to size each window with the estimate alone and never continue.

With ``thinking=True`` (a backend serving the thinking format, ``backend: {kind: local,
thinking: true}``, or a reasoning model that continues a ``<think>`` prefix) each window *thinks*
inside the markers, each summary is made of a window's thinking, each restart thinks afresh from
question + summary, ``thinking_tokens`` bounds the thinking of all windows together, and the answer
is written after the thinking is closed (``ponder.strategies.summarize_thinking``).

Every raw window and every summary stays in the trace (``decision`` events ``checkpoint``), so a
user can audit what was dropped. It is an ordinary sans-I/O strategy, so parallel sampling can
``Fork`` several of them.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import Field, field_validator, model_validator

from ponder.answers import extract_answer, last_boxed
from ponder.backends.thinking_format import check_answer_lead
from ponder.prompts import load_template
from ponder.protocol.actions import Action, Flow, Generate, Note, Outcome, Task
from ponder.protocol.requests import (
    Completion,
    GenerationFailure,
    GenerationRequest,
    Message,
    Result,
    SamplingParams,
)
from ponder.protocol.requirements import Requirement
from ponder.protocol.strategy import Strategy
from ponder.protocol.thinking import DEFAULT_MARKERS, check_markers
from ponder.protocol.thinking_budget import DEFAULT_ANSWER_TOKENS
from ponder.protocol.tokens import estimate_chat_tokens
from ponder.strategies.cot import (
    PROMPT_VARIABLES,
    RESTART_VARIABLES,
    cot_messages,
    restart_messages,
)
from ponder.strategies.registry import register_strategy
from ponder.strategies.summarize_limits import CLOSE_SLACK_TOKENS, MIN_CONTINUATION_TOKENS
from ponder.strategies.summarize_thinking import thinking_flow

SUMMARY_VARIABLES = {"question", "summary", "reasoning"}
SUMMARY_MARGIN_TOKENS = 8
"""Slack left for the reasoning re-tokenizing slightly differently inside the summary prompt."""

T = TypeVar("T")
_SubFlow = Generator[Action, Any, T]


@dataclass
class _Window:
    """One stretch of reasoning between (re)starts."""

    text: str = ""
    generated: int = 0
    context: int = 0
    calls: int = 0
    finish_reason: str | None = None
    failure: GenerationFailure | None = None


@dataclass
class _Progress:
    summaries: list[str] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)


@register_strategy
class SummarizingReasoner(Strategy):
    """Chain-of-thought with self-summarization checkpoints (ReSum-style)."""

    name: ClassVar[str] = "summarize"

    checkpoint_tokens: int | None = Field(1024, gt=0)
    summarize_every: int | None = Field(None, gt=0)
    max_summaries: int = Field(4, ge=0)
    summary_max_tokens: int = Field(256, gt=0)
    min_window_tokens: int = Field(64, gt=0)
    continuation: bool = True
    reserve_for_summary: bool = True
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None
    system_template: str = "cot_system"
    user_template: str = "cot_user"
    restart_template: str = "resum_restart_user"
    summary_system_template: str = "resum_summary_system"
    summary_template: str = "resum_summary_user"
    thinking: bool = False
    """Think inside the thinking markers (the thinking format); see the module doc."""
    thinking_tokens: int | None = Field(None, gt=0)
    """Thinking mode: the most thinking tokens of all windows together; ``None``: as many as
    ``max_summaries + 1`` windows hold."""
    answer_tokens: int = Field(DEFAULT_ANSWER_TOKENS, gt=0)
    """Thinking mode: the answer's allowance after the thinking is closed (kept inside
    ``checkpoint_tokens`` by the window that ends in the answer)."""
    thinking_markers: tuple[str, str] = DEFAULT_MARKERS
    answer_lead: str | None = None
    """Thinking mode: a template written after the closing marker before the answer (as budget
    forcing's ``thinking.answer_lead``; ``answer_lead`` ships ``The final answer is \\boxed{``);
    ``None``: the model answers after the bare marker."""

    @field_validator("answer_lead")
    @classmethod
    def _answer_lead(cls, v: str | None) -> str | None:
        return check_answer_lead(v, "strategy.answer_lead")

    @model_validator(mode="after")
    def _valid(self) -> SummarizingReasoner:
        if self.checkpoint_tokens is None and self.summarize_every is None:
            raise ValueError("set checkpoint_tokens, summarize_every, or both")
        check_markers(self.thinking_markers)
        if self.thinking_tokens is not None and not self.thinking:
            raise ValueError("thinking_tokens bounds the thinking of thinking: true; set both")
        if (
            self.thinking
            and self.checkpoint_tokens is not None
            and self.answer_tokens + self.min_window_tokens + CLOSE_SLACK_TOKENS
            >= self.checkpoint_tokens
        ):
            raise ValueError(
                f"answer_tokens ({self.answer_tokens}) + min_window_tokens "
                f"({self.min_window_tokens}) must be well below checkpoint_tokens "
                f"({self.checkpoint_tokens}) so that the last window's thinking and the answer "
                "both fit; lower them or raise checkpoint_tokens"
            )
        if (
            self.reserve_for_summary
            and self.checkpoint_tokens is not None
            and self.max_summaries > 0
            and self.summary_max_tokens + self.min_window_tokens >= self.checkpoint_tokens
        ):
            raise ValueError(
                f"summary_max_tokens ({self.summary_max_tokens}) + min_window_tokens "
                f"({self.min_window_tokens}) must be below checkpoint_tokens "
                f"({self.checkpoint_tokens}) so that a window and its summary call both fit; "
                "lower them, raise checkpoint_tokens, or set reserve_for_summary: false"
            )
        load_template(self.system_template, allowed=())
        load_template(self.user_template, allowed=PROMPT_VARIABLES)
        load_template(self.restart_template, allowed=RESTART_VARIABLES)
        load_template(self.summary_system_template, allowed=())
        load_template(self.summary_template, allowed=SUMMARY_VARIABLES)
        return self

    def requires(self) -> tuple[Requirement, ...]:
        """Thinking mode continues the opened thinking in every call."""
        if not self.thinking:
            return ()
        why = "with thinking: true every call continues the opened thinking (an assistant prefix)"
        return (Requirement.of("continuation", why=why),)

    # -- prompts ----------------------------------------------------------------------------------

    def _messages(self, task: Task, summary: str | None) -> tuple[Message, ...]:
        if summary is None:
            return cot_messages(task, self.system_template, self.user_template)
        return restart_messages(task, self.system_template, self.restart_template, summary)

    def _params(self, max_tokens: int, purpose_seed: int) -> SamplingParams:
        seed = None if self.seed is None else self.seed + purpose_seed
        return SamplingParams(
            temperature=self.temperature, top_p=self.top_p, max_tokens=max_tokens, seed=seed
        )

    def _summary_overhead(self, task: Task, summary: str | None, index: int) -> int | None:
        """Estimated tokens the summary call needs besides the window's reasoning, or None."""
        if (
            self.checkpoint_tokens is None
            or not self.reserve_for_summary
            or index >= self.max_summaries  # the last window is never summarized
        ):
            return None
        return estimate_chat_tokens(self._summary_messages(task, summary, ""))

    def _reasoning_budget(self, overhead: int | None, scale: float) -> int | None:
        """Most reasoning tokens a window may hold so that its summary call fits the limit.

        ``scale`` calibrates the (rough, offline) estimate against the backend's exact count of
        the window's own prompt, once the first call has reported it.
        """
        if overhead is None or self.checkpoint_tokens is None:
            return None
        needed = math.ceil(overhead * scale) + self.summary_max_tokens + SUMMARY_MARGIN_TOKENS
        return self.checkpoint_tokens - needed

    def _room(self, messages: tuple[Message, ...], w: _Window, budget: int | None) -> int:
        """Tokens the next call of window ``w`` may generate before the checkpoint."""
        rooms: list[int] = []
        if self.checkpoint_tokens is not None:
            if w.calls:
                rooms.append(self.checkpoint_tokens - w.context)
                if budget is not None:
                    rooms.append(budget - w.generated)
            else:  # a window always reasons a little, even after a long summary
                estimate = estimate_chat_tokens(messages)
                room = self.checkpoint_tokens - estimate
                if budget is not None:
                    room = min(room, budget)
                rooms.append(max(room, self.min_window_tokens))
        if self.summarize_every is not None:
            rooms.append(self.summarize_every - w.generated)
        return min(rooms)

    # -- flow -------------------------------------------------------------------------------------

    def _window(self, task: Task, summary: str | None, index: int) -> _SubFlow[_Window]:
        """Reason from question (+ summary) until done, a checkpoint, or a failure."""
        messages = self._messages(task, summary)
        overhead = self._summary_overhead(task, summary, index)
        budget = self._reasoning_budget(overhead, 1.0)
        w = _Window()
        while True:
            room = self._room(messages, w, budget)
            if w.calls and room < MIN_CONTINUATION_TOKENS:
                w.finish_reason = "checkpoint"
                return w
            request = GenerationRequest(
                messages=messages,
                assistant_prefix=w.text if w.calls else None,
                params=self._params(room, index * 100 + w.calls),
                purpose="reason",
            )
            [result] = yield Generate.of(request)
            if not isinstance(result, Completion):
                w.failure = result
                return w
            choice = result.choices[0]
            if choice.reasoning and choice.finish_reason == "length" and not choice.text:
                raise ValueError(  # continuing choice.text would drop the thinking
                    "summarize got a reply that is all thinking (the backend serves the thinking "
                    "format or a reasoning model); set the strategy's thinking: true"
                )
            w.text += choice.text
            w.generated += choice.completion_tokens
            w.context = result.prompt_tokens + choice.completion_tokens
            if not w.calls and result.prompt_tokens > 0:
                scale = result.prompt_tokens / estimate_chat_tokens(messages)
                budget = self._reasoning_budget(overhead, scale)
                if budget is not None and budget < self.min_window_tokens:
                    yield Note(  # question (+ summary) nearly fill the limit on their own
                        "summary_may_exceed_limit",
                        {"window": index, "reasoning_budget": budget,
                         "min_window_tokens": self.min_window_tokens},
                    )  # fmt: skip
            w.calls += 1
            if choice.finish_reason != "length":
                w.finish_reason = choice.finish_reason or "stop"
                return w
            if not self.continuation:
                w.finish_reason = "checkpoint"
                return w

    def _summary_messages(
        self, task: Task, summary: str | None, reasoning: str
    ) -> tuple[Message, ...]:
        system = load_template(self.summary_system_template, allowed=()).render()
        user = load_template(self.summary_template, allowed=SUMMARY_VARIABLES).render(
            question=task.question, summary=summary or "", reasoning=reasoning
        )
        return ({"role": "system", "content": system}, {"role": "user", "content": user})

    def _summarize(
        self, task: Task, summary: str | None, reasoning: str, index: int, prefix: str | None = None
    ) -> _SubFlow[Result]:
        request = GenerationRequest(
            messages=self._summary_messages(task, summary, reasoning),
            assistant_prefix=prefix,
            params=self._params(self.summary_max_tokens, index * 100 + 99),
            purpose="summarize",
        )
        [result] = yield Generate.of(request)
        return result

    def flow(self, task: Task) -> Flow:
        if self.thinking:
            return (yield from thinking_flow(self, task))
        progress = _Progress()
        summary: str | None = None
        w = _Window()
        for index in range(self.max_summaries + 1):
            w = yield from self._window(task, summary, index)
            progress.windows.append(
                {
                    "index": index,
                    "generated_tokens": w.generated,
                    "context_tokens": w.context,
                    "calls": w.calls,
                    "finish_reason": w.finish_reason,
                }
            )
            if w.failure is not None:
                return self._failed(w, summary, progress)
            if w.finish_reason != "checkpoint":
                return self._outcome(w.text, summary, progress, "answered")
            if index == self.max_summaries:
                break
            result = yield from self._summarize(task, summary, w.text, index)
            if not isinstance(result, Completion):
                w.failure = result
                return self._failed(w, summary, progress)
            new_summary = result.choices[0].text.strip()
            yield Note(
                "checkpoint",
                {
                    "window": index,
                    "context_tokens": w.context,
                    "generated_tokens": w.generated,
                    "dropped_reasoning": w.text,
                    "summary": new_summary,
                },
            )
            summary = new_summary
            progress.summaries.append(summary)
        yield Note("max_summaries_reached", {"max_summaries": self.max_summaries})
        return self._outcome(w.text, summary, progress, "max_summaries")

    # -- outcomes ---------------------------------------------------------------------------------

    def _outcome(
        self, text: str, summary: str | None, progress: _Progress, stop_reason: str
    ) -> Outcome:
        if stop_reason == "answered":
            answer = extract_answer(text)
        else:  # cut off: prefer a stated answer over the last number of a truncated trace
            answer = last_boxed(text) or (last_boxed(summary) if summary else None)
            answer = answer or extract_answer(text)
        return Outcome(
            answer=answer,
            text=text,
            data={
                "stop_reason": stop_reason,
                "summaries": progress.summaries,
                "windows": progress.windows,
            },
        )

    def _failed(self, w: _Window, summary: str | None, progress: _Progress) -> Outcome:
        assert w.failure is not None
        if not w.failure.budget:
            raise w.failure.error
        outcome = self._outcome(w.text, summary, progress, "budget")
        outcome.budget_limited = True
        outcome.data["error"] = f"{type(w.failure.error).__name__}: {w.failure.error}"
        outcome.error = w.failure.error
        return outcome
