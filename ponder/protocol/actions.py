"""What a flow yields and what it returns: the actions, ``Task`` and ``Outcome``.

A flow is a generator that *yields actions* and *receives their results*; the engine performs
every action::

    def flow(self, task):
        [result] = yield Generate.of(request)       # -> list[Completion | GenerationFailure]
        outcomes = yield Fork([inner.flow(task) for _ in range(k)])  # -> list[Outcome | Exception]
        yield Note("decision", {"why": ...})        # -> None, recorded in the trace
        rewards = yield Score.of(reward_request)    # -> list[Reward | RewardFailure]
        [out] = yield CallTool.of(ToolCall("calculator", '{"expression": "2+2"}', run))
        return Outcome(answer=..., text=...)        #    -> list[ToolResult]

Failures arrive as values (``GenerationFailure``, ``RewardFailure``, a ``ToolResult`` with an
``error``, or the exception of a forked flow), never thrown into the flow, so the flow decides
what a failure means. Because nothing here does I/O, a flow can be stepped by hand with
``next``/``send`` (see tests/unit/test_flow_stepping.py), or with ``FlowSteps``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from ponder.errors import NoAnswer
from ponder.protocol.requests import GenerationRequest, Message, Result, RewardRequest


@dataclass(frozen=True)
class Task:
    """What a run is asked: the question, and optionally a system prompt override.

    An agent's turn (the proxy given ``tools``, or a transcript with tool results) also carries
    ``messages``, the conversation so far as OpenAI messages (user, assistant with
    ``tool_calls``, ``tool``; no system messages: those are ``system``), and ``tools``, the
    function schemas offered (``()`` when none are but the transcript has tool turns), with the
    client's ``tool_choice``. Strategies that take tools (``cot``, and ``sample``/``adaptive``
    over it) send the transcript and tools as they are; ``question`` is then the last user
    message. A plain question leaves all three unset.
    """

    question: str
    system: str | None = None
    messages: tuple[Message, ...] | None = field(default=None, hash=False)
    tools: tuple[dict[str, Any], ...] | None = field(default=None, hash=False)
    tool_choice: Any = field(default=None, hash=False)

    @property
    def is_agent_turn(self) -> bool:
        """Whether this task is an agent's turn (tools offered or tool turns in the transcript)."""
        return self.tools is not None


@dataclass
class Outcome:
    """What a strategy returns.

    ``answer`` is the extracted final answer (``None`` if none could be found); ``text`` the
    model's final response; ``samples`` the per-sample outcomes a parallel strategy aggregated;
    ``budget_limited`` is true when the token budget cut the work short. ``error`` is the typed
    exception of a failed sample (``data["error"]`` keeps its text for traces); failures travel as
    these objects, never as strings, so the proxy answers each as its cause would. ``score`` is
    what a scorer (reward model, judge, function, an offline set) gave the sample, read by
    best-of-n and score-weighted voting; a ``data["score"]`` given at construction is taken as it
    (and kept in ``data`` for records). ``data`` is for information, not protocol.
    """

    answer: str | None
    text: str
    budget_limited: bool = False
    samples: list[Outcome] = field(default_factory=list)
    confidence: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = field(default=None, compare=False, repr=False)
    score: float | None = None

    def __post_init__(self) -> None:
        if self.score is None and self.data.get("score") is not None:
            with contextlib.suppress(TypeError, ValueError):
                self.score = float(self.data["score"])

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "answer": self.answer,
            "text": self.text,
            "budget_limited": self.budget_limited,
        }
        if self.confidence is not None:
            d["confidence"] = self.confidence
        if self.samples:
            d["samples"] = [s.to_dict() for s in self.samples]
        if self.data:
            d["data"] = self.data
        return d


@dataclass(frozen=True)
class Generate:
    """Perform these requests concurrently; the flow receives one result per request."""

    requests: tuple[GenerationRequest, ...]

    @classmethod
    def of(cls, *requests: GenerationRequest) -> Generate:
        return cls(tuple(requests))


@dataclass(frozen=True)
class Score:
    """Score these conversations with reward models, concurrently; the flow receives one
    ``Reward`` or ``RewardFailure`` per request."""

    requests: tuple[RewardRequest, ...]

    @classmethod
    def of(cls, *requests: RewardRequest) -> Score:
        return cls(tuple(requests))


@dataclass(frozen=True)
class Fork:
    """Run these sub-flows concurrently; the flow receives one ``Outcome`` or exception each."""

    flows: tuple[Flow, ...]
    label: str = "fork"

    def __init__(self, flows: Any, label: str = "fork") -> None:
        object.__setattr__(self, "flows", tuple(flows))
        object.__setattr__(self, "label", label)


@dataclass(frozen=True)
class Note:
    """Record a decision in the trace."""

    event: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolCall:
    """One tool call a flow wants made: ``run(arguments)`` returns the text the model reads.

    ``run`` is a plain (blocking) function, e.g. ``Tool.call``; the engine runs it off the event
    loop, with a timeout, and records it in the trace. ``name`` is for the trace and usage."""

    name: str
    arguments: Any
    run: Callable[[Any], str]


@dataclass(frozen=True)
class ToolResult:
    """What a ``ToolCall`` gave: the text for the model (on failure, an ``"error: ..."`` text
    too, so the model can read it) and, when it failed, the typed ``error``."""

    call: ToolCall
    text: str
    latency_s: float = 0.0
    error: BaseException | None = field(default=None, compare=False)


@dataclass(frozen=True)
class CallTool:
    """Perform these tool calls concurrently; the flow receives one ``ToolResult`` each."""

    calls: tuple[ToolCall, ...]

    @classmethod
    def of(cls, *calls: ToolCall) -> CallTool:
        return cls(tuple(calls))


Action = Generate | Fork | Note | Score | CallTool
Flow = Generator[Action, Any, Outcome]
GenerateResults = list[Result]


class FlowSteps:
    """Step a flow: iterate for the actions it yields, set ``reply`` to each one's result before
    asking for the next, and read ``outcome`` (what the flow returned) once the iteration ends;
    leaving the ``with`` block closes the flow, however the stepping ended. The engine's
    ``drive`` performs the actions; the proxy's ``WithClientOptions`` yields them on, rewritten::

        with FlowSteps(flow) as steps:
            for action in steps:
                steps.reply = perform(action)
        return steps.outcome
    """

    outcome: Outcome
    """What the flow returned (set when the iteration ends)."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.reply: Any = None

    def __iter__(self) -> FlowSteps:
        return self

    def __next__(self) -> Action:
        value, self.reply = self.reply, None
        try:
            return self.flow.send(value)
        except StopIteration as stop:
            self.outcome = stop.value
            raise StopIteration from None

    def __enter__(self) -> FlowSteps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flow.close()


def failure_of(sample: Outcome) -> BaseException:
    """The typed reason a sample has no answer."""
    if sample.error is not None:
        return sample.error
    return NoAnswer(sample.data.get("finish_reason"))
