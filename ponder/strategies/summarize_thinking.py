"""ReSum in the thinking format: windows of thinking, summaries of the thinking, then the answer.

Use it through ``SummarizingReasoner(thinking=True)`` (config ``thinking: true``) where the
backend serves the thinking format (``backend: {kind: local, thinking: true}``) or is a reasoning
model that continues a ``<think>`` prefix, and the thinking may be longer than the context one call
should hold. Every call continues an assistant prefix, so it needs the capability "continuation":

- a window thinks inside the markers: each call continues ``<think>\\n`` + the window's thinking so
  far and stops at the closing marker. Its first call is short (``min_window_tokens``) so that the
  backend's exact count of the prompt (the format's own system prompt included) sizes the rest;
- at a checkpoint (the working context reaches ``checkpoint_tokens``, the summary call's room
  reserved as in plain mode, or ``summarize_every`` thinking tokens) the window's *thinking* is
  summarized. The summary call continues an empty, closed thinking, so the summary is written as
  an answer, not thought;
- the next window opens a new thinking from question + summary (``resum_restart_user``);
- the thinking ends when the model ends it (it closes it or stops), when all windows together
  thought ``thinking_tokens``, or after ``max_summaries`` summaries. Then the thinking is closed
  (``<think>\\n…\\n</think>\\n\\n``, as budget forcing closes it) and the model answers in at most
  ``answer_tokens``; the window that ends in the answer keeps that room under
  ``checkpoint_tokens``, so every call holds the limit. The answer is graded from the answer
  part only, never from the thinking.

The engine's per-call thinking budget (a chain's ``thinking_budget``) bounds fresh calls; every
call here continues an assistant prefix, so it leaves them alone (as it leaves deepconf segments
and DRR probes): ``thinking_tokens`` is this strategy's bound on its total thinking. Sans-I/O.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ponder.answers import extract_answer
from ponder.backends.thinking_format import answer_lead_text
from ponder.protocol.actions import Action, Flow, Generate, Note, Outcome, Task
from ponder.protocol.requests import (
    Completion,
    GenerationFailure,
    GenerationRequest,
    Message,
    Result,
    SamplingParams,
)
from ponder.protocol.thinking import joined
from ponder.protocol.tokens import estimate_chat_tokens, estimate_tokens
from ponder.strategies.summarize_limits import CLOSE_SLACK_TOKENS, MIN_CONTINUATION_TOKENS

_SubFlow = Generator[Action, Any, Any]


class SummarizingReasoner(Protocol):
    """What the thinking flow reads of ``ponder.strategies.summarize.SummarizingReasoner`` (a
    protocol, so this module does not import the strategy that imports it)."""

    @property
    def checkpoint_tokens(self) -> int | None: ...
    @property
    def summarize_every(self) -> int | None: ...
    @property
    def max_summaries(self) -> int: ...
    @property
    def min_window_tokens(self) -> int: ...
    @property
    def thinking_tokens(self) -> int | None: ...
    @property
    def answer_tokens(self) -> int: ...
    @property
    def answer_lead(self) -> str | None: ...
    @property
    def thinking_markers(self) -> tuple[str, str]: ...

    def _messages(self, task: Task, summary: str | None) -> tuple[Message, ...]: ...
    def _params(self, max_tokens: int, purpose_seed: int) -> SamplingParams: ...
    def _summary_overhead(self, task: Task, summary: str | None, index: int) -> int | None: ...
    def _reasoning_budget(self, overhead: int | None, scale: float) -> int | None: ...
    def _summarize(
        self, task: Task, summary: str | None, reasoning: str, index: int, prefix: str | None = None
    ) -> Generator[Action, Any, Result]: ...


ENDS = {"ended": "answered", "thinking_budget": "thinking_budget", "checkpoint": "max_summaries"}
"""How a run's last window ended -> the outcome's ``stop_reason``."""


@dataclass
class _Window:
    """One stretch of thinking between (re)starts."""

    thinking: str = ""
    generated: int = 0
    context: int = 0
    calls: int = 0
    end: str | None = None  # "ended" (by the model), "checkpoint", "thinking_budget"
    failure: GenerationFailure | None = None


@dataclass
class _Run:
    summaries: list[str] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)
    spent: int = 0  # thinking tokens of all windows so far


def _opening(s: SummarizingReasoner) -> str:
    return f"{s.thinking_markers[0]}\n"


def _closed(s: SummarizingReasoner, thinking: str) -> str:
    """The assistant prefix of an answer after ``thinking`` (empty: an empty, closed thinking)."""
    markers = s.thinking_markers
    return joined(thinking.strip(), "", markers) or f"{markers[0]}\n\n{markers[1]}\n\n"


def _after_close(s: SummarizingReasoner, text: str) -> str:
    """A reply after a closed thinking, from after the last closing marker if it wrote one."""
    close = s.thinking_markers[1]
    return (text.rsplit(close, 1)[1].lstrip() or text) if close in text else text


def _room(
    s: SummarizingReasoner, w: _Window, budget: int | None, left: int | None, last: bool
) -> tuple[int, bool, bool]:
    """After a window's first call: (tokens the next call may think, whether the window ends in
    the answer, whether the thinking budget ``left`` is what binds). A window thinks to its
    checkpoint (``budget``: the summary call's reserve), unless it is the last one or the budget
    would leave less than ``min_window_tokens`` after it: then it ends in the answer, whose room
    it keeps under ``checkpoint_tokens``."""
    answer = s.answer_tokens + CLOSE_SLACK_TOKENS
    context = None if s.checkpoint_tokens is None else s.checkpoint_tokens - w.context
    rooms: list[int] = []
    if context is not None:
        rooms.append(context - answer if last else context)
        if budget is not None and not last:
            rooms.append(budget - w.generated)
    if s.summarize_every is not None:
        rooms.append(s.summarize_every - w.generated)
    room = min(rooms)
    if left is None:
        return room, last, False
    spare = left - w.generated
    if last:
        return min(room, spare), True, spare <= room
    if spare > room + s.min_window_tokens:
        return room, False, False
    cap = spare if context is None else context - answer
    return min(spare, cap), True, spare <= cap


def _window(
    s: SummarizingReasoner, task: Task, summary: str | None, index: int, left: int | None
) -> _SubFlow:
    """Think from question (+ summary) until the model ends it, a checkpoint or the budget."""
    messages = s._messages(task, summary)
    last = index >= s.max_summaries
    overhead = s._summary_overhead(task, summary, index)
    if overhead is not None:
        overhead += estimate_tokens(_closed(s, ""))
    budget = s._reasoning_budget(overhead, 1.0)
    w = _Window()
    while True:
        if w.calls:
            room, final, by_budget = _room(s, w, budget, left, last)
            if room < MIN_CONTINUATION_TOKENS:  # a window the budget ends gets the answer
                w.end = "thinking_budget" if final and (by_budget or not last) else "checkpoint"
                return w
        else:  # short, so that the exact prompt sizes the rest of the window
            room = s.min_window_tokens if left is None else min(s.min_window_tokens, left)
        request = GenerationRequest(
            messages=messages,
            assistant_prefix=_opening(s) + w.thinking,
            params=s._params(room, index * 100 + w.calls).with_(stop=(s.thinking_markers[1],)),
            purpose="reason",
        )
        [result] = yield Generate.of(request)
        if not isinstance(result, Completion):
            w.failure = result
            return w
        choice = result.choices[0]
        close = s.thinking_markers[1]
        ended = close in choice.text or choice.finish_reason != "length"
        w.thinking += choice.text.split(close, 1)[0]
        w.generated += choice.completion_tokens
        w.context = result.prompt_tokens + choice.completion_tokens
        if not w.calls and result.prompt_tokens > 0:
            scale = result.prompt_tokens / estimate_chat_tokens(messages)
            budget = s._reasoning_budget(overhead, scale)
            if budget is not None and budget < s.min_window_tokens:
                yield Note(
                    "summary_may_exceed_limit",
                    {"window": index, "reasoning_budget": budget,
                     "min_window_tokens": s.min_window_tokens},
                )  # fmt: skip
        w.calls += 1
        if ended:
            w.end = "ended"
            return w


def _answer(
    s: SummarizingReasoner, task: Task, summary: str | None, w: _Window, index: int, lead: str
) -> _SubFlow:
    """Close the window's thinking, write ``lead`` and let the model answer after it."""
    room = s.answer_tokens
    if s.checkpoint_tokens is not None:  # the closing marker and the lead are prompt too
        fits = s.checkpoint_tokens - w.context - CLOSE_SLACK_TOKENS - estimate_tokens(lead)
        if fits < MIN_CONTINUATION_TOKENS:
            yield Note("answer_may_exceed_limit", {"context_tokens": w.context, "room": fits})
        room = max(MIN_CONTINUATION_TOKENS, min(room, fits))
    request = GenerationRequest(
        messages=s._messages(task, summary),
        assistant_prefix=_closed(s, w.thinking) + lead,
        params=s._params(room, index * 100 + 98),
        purpose="answer",
    )
    [result] = yield Generate.of(request)
    return result


def thinking_flow(s: SummarizingReasoner, task: Task) -> Flow:
    """``SummarizingReasoner.flow`` with ``thinking=True`` (see the module doc)."""
    run = _Run()
    summary: str | None = None
    w = _Window()
    for index in range(s.max_summaries + 1):
        left = None if s.thinking_tokens is None else s.thinking_tokens - run.spent
        w = yield from _window(s, task, summary, index, left)
        run.spent += w.generated
        run.windows.append(
            {"index": index, "thinking_tokens": w.generated, "context_tokens": w.context,
             "calls": w.calls, "end": w.end}
        )  # fmt: skip
        if w.failure is not None:
            return _failed(w.failure, w, run)
        if w.end != "checkpoint" or index == s.max_summaries:
            break
        result = yield from s._summarize(task, summary, w.thinking.strip(), index, _closed(s, ""))
        if not isinstance(result, Completion):
            return _failed(result, w, run)
        new_summary = _after_close(s, result.choices[0].text).strip()
        yield Note(
            "checkpoint",
            {"window": index, "context_tokens": w.context, "generated_tokens": w.generated,
             "dropped_reasoning": w.thinking, "summary": new_summary},
        )  # fmt: skip
        summary = new_summary
        run.summaries.append(summary)
    stop_reason = ENDS[w.end or "checkpoint"]
    if stop_reason == "max_summaries":
        yield Note("max_summaries_reached", {"max_summaries": s.max_summaries})
    lead = answer_lead_text(s.answer_lead)
    result = yield from _answer(s, task, summary, w, len(run.windows) - 1, lead)
    if not isinstance(result, Completion):
        return _failed(result, w, run)
    choice = result.choices[0]
    text = _after_close(s, lead + choice.text)  # the lead starts the answer
    return _outcome(s, text, w, run, stop_reason, choice.completion_tokens)


def _outcome(
    s: SummarizingReasoner, text: str, w: _Window, run: _Run, stop_reason: str, answer_tokens: int
) -> Outcome:
    return Outcome(
        answer=extract_answer(text),
        text=text,
        data={
            "stop_reason": stop_reason,
            "summaries": run.summaries,
            "windows": run.windows,
            "reasoning": w.thinking.strip() or None,  # the thinking the answer followed
            "reasoning_tokens": run.spent,  # all windows' thinking
            "answer_tokens": answer_tokens,
        },
    )


def _failed(failure: Result, w: _Window, run: _Run) -> Outcome:
    """The run cut by its token budget before an answer: none (the thinking is never graded)."""
    assert isinstance(failure, GenerationFailure)
    if not failure.budget:
        raise failure.error
    return Outcome(
        answer=None,
        text="",
        budget_limited=True,
        error=failure.error,
        data={
            "stop_reason": "budget",
            "summaries": run.summaries,
            "windows": run.windows,
            "reasoning": w.thinking.strip() or None,
            "reasoning_tokens": run.spent,
            "error": f"{type(failure.error).__name__}: {failure.error}",
        },
    )
