"""Bounding thinking with fakes: the effort table, the thinking's share of a call, budget forcing
(a budget crossed by one token, the marker closed, the answer's allowance, the hard bound never
passed), the native knob, config errors naming the field and the valid choices, and the refusal
of a budget no backend mechanism can hold. No network: ``FakeBackend`` answers as a reasoning
model whose thinking comes apart (a reasoning parser), one token per word."""

from __future__ import annotations

from typing import Any

import pytest

from ponder.backends.base import Capabilities
from ponder.backends.fake import FakeBackend
from ponder.backends.openai_compat import OpenAICompatibleBackend
from ponder.backends.openai_request import call_kwargs, native_thinking
from ponder.config import ChainConfig, OpenAIBackendConfig
from ponder.errors import CapabilityMissing, ConfigError
from ponder.orchestrator.capabilities import missing_capabilities
from ponder.orchestrator.policy import RunLimits
from ponder.orchestrator.session import Session
from ponder.protocol.forcing import forced_choice, forcing_step
from ponder.protocol.requests import Choice, GenerationRequest
from ponder.protocol.thinking_budget import (
    DEFAULT_EFFORT_BUDGETS,
    ThinkingBudget,
    budget_for,
    effort_for,
    think_tokens,
)
from ponder.strategies.cot import ChainOfThought
from ponder.strategies.parallel import ParallelSample

ANSWER = "so the answer is \\boxed{42}"
CLOSE = "\n</think>\n\n"


class Thinker:
    """A reasoning model: ``think`` words of thinking (one token each), then ``ANSWER``; a
    request that continues a closed thinking (``assistant_prefix`` with ``</think>``) writes the
    rest of the answer. Every request is kept in ``seen``."""

    def __init__(self, think: int | list[int], hidden: bool = False) -> None:
        self.think = think
        self.hidden = hidden
        self.seen: list[GenerationRequest] = []

    def __call__(self, request: GenerationRequest, i: int) -> Choice:
        if i == 0:
            self.seen.append(request)
        cap = request.params.max_tokens
        answer = ANSWER.split()
        prefix = request.assistant_prefix
        if prefix is not None and CLOSE in prefix:  # the answer, from where it stands
            done = prefix.split(CLOSE, 1)[1].split()
            words = answer[len(done) :][:cap]
            finish = "stop" if len(done) + len(words) == len(answer) else "length"
            return Choice((" " if done else "") + " ".join(words), finish, len(words))
        think = self.think[i] if isinstance(self.think, list) else self.think
        thought = [f"t{j}" for j in range(think)]
        if think >= cap:
            kept = thought[:cap]
            text = "" if self.hidden else None
            return Choice("", "length", cap, reasoning=text or " ".join(kept), reasoning_tokens=cap)
        words = answer[: cap - think]
        finish = "stop" if len(words) == len(answer) else "length"
        return Choice(
            " ".join(words),
            finish,
            think + len(words),
            reasoning=None if self.hidden else " ".join(thought) or None,
            reasoning_tokens=think,
        )


def limits(tokens: int, answer: int = 8, total: int | None = None) -> RunLimits:
    return RunLimits(total_tokens=total, thinking=ThinkingBudget(tokens, answer_tokens=answer))


async def run_cot(
    model: Thinker, budget: RunLimits, max_tokens: int = 200, caps: Capabilities | None = None
) -> Any:
    backend = FakeBackend(model, capabilities=caps)
    async with Session(backend) as s:
        return await s.run(ChainOfThought(max_tokens=max_tokens), "Q?", limits=budget)


# -- the effort table and the thinking's share --------------------------------------------------


def test_efforts_map_to_documented_budgets_and_tokens_win() -> None:
    assert DEFAULT_EFFORT_BUDGETS == {"low": 512, "medium": 2048, "high": 8192}
    assert budget_for(None, "low") == ThinkingBudget(512, "low")
    assert budget_for(None, "high", {"high": 99}) == ThinkingBudget(99, "high")
    assert budget_for(64, "high") == ThinkingBudget(64, "high")  # explicit tokens win
    assert budget_for(None, None) is None
    with pytest.raises(ValueError, match="valid: low, medium, high"):
        budget_for(None, "extreme")
    assert [effort_for(t) for t in (1, 512, 513, 2048, 9000)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
    ]
    assert ThinkingBudget(600).effort_name == "medium"
    assert ThinkingBudget(600, effort="low").effort_name == "low"


@pytest.mark.parametrize(
    ("max_tokens", "tokens", "answer", "share"),
    [(512, 48, 256, 48), (300, 1000, 64, 236), (100, 1000, 256, 50), (1, 5, 8, 1)],
)
def test_the_thinking_share_keeps_the_answer_allowance(max_tokens, tokens, answer, share) -> None:
    assert think_tokens(max_tokens, ThinkingBudget(tokens, answer_tokens=answer)) == share


def test_forcing_step_closes_an_unclosed_thinking_with_the_marker() -> None:
    req = GenerationRequest(messages=({"role": "user", "content": "Q"},))
    cut = Choice("", "length", 5, reasoning="a b c d e", reasoning_tokens=5, seed=7)
    step = forcing_step(req, cut, 20)
    assert step is not None and step.cut
    assert step.request.assistant_prefix == "<think>\na b c d e" + CLOSE
    assert (step.request.params.max_tokens, step.request.params.seed) == (15, 7)
    answering = Choice("so the", "length", 7, reasoning="a b c d e", reasoning_tokens=5)
    step = forcing_step(req, answering, 20)  # the answer was under way: it just continues
    assert step is not None and not step.cut
    assert step.request.assistant_prefix == "<think>\na b c d e" + CLOSE + "so the"
    assert forcing_step(req, Choice("x", "stop", 3), 20) is None  # finished by itself
    assert forcing_step(req, Choice("", "length", 20, reasoning="a"), 20) is None  # nothing left
    hidden = Choice("", "length", 5, reasoning_tokens=5)
    assert forcing_step(req, hidden, 20) is None  # hidden thinking: no text to continue
    ended = Choice("", "stop", 5, reasoning="a b \\boxed{3}", reasoning_tokens=5)
    step = forcing_step(req, ended, 20)  # the model ended inside its thinking: closed too
    assert step is not None and not step.cut and step.request.assistant_prefix.endswith(CLOSE)


def test_an_answer_after_a_second_closing_marker_is_what_follows_it() -> None:
    first = Choice("", "length", 5, reasoning="a b", reasoning_tokens=5)
    rest = Choice("more steps\n</think>\n\nso \\boxed{4}", "stop", 6)
    got = forced_choice(first, rest, True)
    assert got.text == "so \\boxed{4}" and got.completion_tokens == 11
    assert got.reasoning == "a b" and got.reasoning_tokens == 5 and got.thinking_cut
    assert forced_choice(first, Choice("</think>", "stop", 1), True).text == "</think>"


# -- budget forcing through the engine ----------------------------------------------------------


async def test_a_budget_crossed_by_one_token_is_forced_to_answer() -> None:
    model = Thinker(think=49)
    r = await run_cot(model, limits(48))
    first, rest = model.seen
    assert first.params.max_tokens == 48 and first.assistant_prefix is None
    assert rest.assistant_prefix is not None and rest.assistant_prefix.endswith(CLOSE)
    assert rest.params.max_tokens == 200 - 48
    assert r.answer == "42" and r.text == ANSWER
    data = r.outcome.data
    assert data["thinking_bound"] == "forcing" and data["thinking_cut"] is True
    assert data["reasoning_tokens"] == 48
    assert r.usage.reasoning_tokens == 48
    assert r.usage.completion_tokens == 48 + len(ANSWER.split()) == data["tokens"]
    assert r.usage.calls == 2
    [event] = r.trace.of_type("thinking_bound")
    assert event["mechanism"] == "forcing" and event["choices"][0]["cut"] is True
    assert event["choices"][0]["closed"] is True and event["continuations"] == 1


async def test_a_thinking_that_closes_inside_the_budget_is_not_cut() -> None:
    model = Thinker(think=10)
    r = await run_cot(model, limits(48, answer=8), max_tokens=200)
    [only] = model.seen  # thinking and answer fit in the thinking's share: one call
    assert only.params.max_tokens == 48
    assert r.outcome.data["thinking_cut"] is False and r.usage.calls == 1
    assert r.usage.reasoning_tokens == 10 and r.answer == "42"
    model = Thinker(think=47)  # closed inside the share, the answer cut there: it continues
    r = await run_cot(model, limits(48, answer=8), max_tokens=200)
    first, rest = model.seen
    assert rest.assistant_prefix is not None and rest.assistant_prefix.endswith(CLOSE + "so")
    assert r.outcome.data["thinking_cut"] is False and r.text == ANSWER and r.answer == "42"
    assert r.usage.reasoning_tokens == 47


async def test_the_answer_gets_its_allowance_inside_the_hard_bound() -> None:
    model = Thinker(think=1000)
    r = await run_cot(model, limits(1000, answer=64), max_tokens=300)
    first, rest = model.seen
    assert first.params.max_tokens == 236 and rest.params.max_tokens == 64
    assert r.answer == "42" and r.outcome.data["tokens"] <= 300


@pytest.mark.parametrize("think", [0, 1, 10, 23, 24, 25, 60, 199, 200, 500])
@pytest.mark.parametrize(("max_tokens", "budget"), [(200, 24), (40, 24), (30, 100)])
async def test_the_hard_bound_and_the_budget_are_never_passed(think, max_tokens, budget) -> None:
    model = Thinker(think=think)
    r = await run_cot(model, limits(budget, answer=8), max_tokens=max_tokens)
    data = r.outcome.data
    assert data["tokens"] <= max_tokens
    assert data.get("reasoning_tokens", 0) <= budget
    assert r.usage.completion_tokens == data["tokens"]
    if think >= think_tokens(max_tokens, ThinkingBudget(budget, answer_tokens=8)):
        assert data["thinking_cut"] is True and r.answer == "42"


async def test_without_a_budget_requests_are_as_before() -> None:
    model = Thinker(think=30)
    r = await run_cot(model, RunLimits())
    [only] = model.seen
    assert only.params.max_tokens == 200 and only.thinking is None
    assert "thinking_bound" not in r.outcome.data
    assert not r.trace.of_type("thinking_bound")


async def test_sample_forces_each_cut_choice_of_one_n_call() -> None:
    model = Thinker(think=[5, 40, 100])
    backend = FakeBackend(model)
    strategy = ParallelSample(k=3, inner=ChainOfThought(temperature=0.7, max_tokens=200))
    async with Session(backend) as s:
        r = await s.run(strategy, "Q?", limits=limits(24))
    first, *rests = model.seen
    assert first.params.n == 3 and first.params.max_tokens == 24
    assert len(rests) == 2 and all(q.assistant_prefix.endswith(CLOSE) for q in rests)
    assert r.answer == "42"
    cuts = sorted(s.data["thinking_cut"] for s in r.outcome.samples)
    assert cuts == [False, True, True]
    assert r.usage.reasoning_tokens == 5 + 24 + 24


async def test_a_run_budget_that_refuses_the_continuation_keeps_the_first_call() -> None:
    model = Thinker(think=100)
    r = await run_cot(model, limits(48, total=48 + 10))  # prompt ~2 tokens; no room to answer
    assert len(model.seen) == 1
    assert r.answer is None and r.outcome.data["thinking_cut"] is True
    assert r.usage.total_tokens <= 58


async def test_continuations_a_strategy_asks_for_are_not_bounded() -> None:
    from ponder.orchestrator.thinking_bound import bounded

    chat = GenerationRequest(messages=({"role": "user", "content": "Q"},))
    assert bounded(chat)
    assert not bounded(GenerationRequest(messages=chat.messages, assistant_prefix="so"))
    assert not bounded(GenerationRequest(prompt="raw"))
    prefilled = (*chat.messages, {"role": "assistant", "content": "so"})
    assert not bounded(GenerationRequest(messages=prefilled))


# -- the native knob ----------------------------------------------------------------------------


@pytest.mark.parametrize(("think", "cut"), [(20, False), (700, True)])
async def test_a_native_knob_gets_the_budget_and_reports_hidden_thinking(think, cut) -> None:
    model = Thinker(think=think, hidden=True)
    caps = Capabilities(thinking_budget=True, continuation=False)
    r = await run_cot(model, RunLimits(thinking=ThinkingBudget(512, "low")), 1000, caps)
    [only] = model.seen
    assert only.thinking == ThinkingBudget(512, "low") and only.params.max_tokens == 1000
    data = r.outcome.data
    assert data["thinking_bound"] == "native" and data["thinking_cut"] is cut
    assert data["reasoning_tokens"] == min(think, 1000)


@pytest.mark.parametrize(
    ("knob", "field", "value"),
    [
        ("reasoning_effort", "reasoning_effort", "low"),
        ("thinking_token_budget", "thinking_token_budget", 300),
        ("thinking_budget_tokens", "thinking_budget_tokens", 300),
    ],
)
def test_each_native_knob_is_sent_as_the_upstream_reads_it(knob, field, value) -> None:
    req = GenerationRequest(
        messages=({"role": "user", "content": "Q"},), thinking=ThinkingBudget(300)
    )
    kw = call_kwargs("m", req, {"continue_final_message": True})
    native_thinking(kw, ThinkingBudget(300), knob)
    assert kw["extra_body"] == {"continue_final_message": True, field: value}
    assert req.describe()["thinking_budget"] == {"tokens": 300, "answer_tokens": 256}
    plain = GenerationRequest(messages=req.messages)
    assert "thinking_budget" not in plain.describe()
    assert "extra_body" not in call_kwargs("m", plain)


async def test_the_backend_setting_says_which_mechanism() -> None:
    b = OpenAICompatibleBackend(base_url="http://127.0.0.1:9/v1", model="m", continuation="prefill")
    assert (await b.capabilities()).budget_forcing is True  # auto: forcing
    b = OpenAICompatibleBackend(base_url="http://127.0.0.1:9/v1", model="m")
    got = await b.capabilities()
    assert got.budget_forcing is False and got.thinking_budget is False  # auto: none
    b = OpenAICompatibleBackend(
        base_url="http://127.0.0.1:9/v1", model="m", thinking_budget="thinking_token_budget"
    )
    assert (await b.capabilities()).thinking_budget is True


# -- config errors and the refusal --------------------------------------------------------------


def test_config_errors_name_the_field_and_the_valid_choices() -> None:
    with pytest.raises(ConfigError) as info:
        ChainConfig.from_dict({"reasoning_effort": "extreme"})
    assert info.value.field == "reasoning_effort" and "low, medium, high" in str(info.value)
    with pytest.raises(ConfigError) as info:
        ChainConfig.from_dict({"thinking_budget": 0})
    assert "thinking_budget" in str(info.value)
    with pytest.raises(ConfigError) as info:
        ChainConfig.from_dict({"backend": {"kind": "openai", "thinking_budget": "lots"}})
    msg = str(info.value)
    assert "thinking_budget" in msg and "forcing" in msg and "thinking_token_budget" in msg
    with pytest.raises(ConfigError) as info:
        OpenAIBackendConfig(model="m", thinking_budget="forcing").build()
    assert info.value.field == "backend.thinking_budget" and "continuation" in str(info.value)
    with pytest.raises(ConfigError, match="valid choices: auto, forcing, none"):
        OpenAICompatibleBackend(model="m", thinking_budget="sometimes")
    cfg = ChainConfig.from_dict(
        {"reasoning_effort": "minimal", "thinking": {"efforts": {"minimal": 64}}}
    )
    assert cfg.limits().thinking == ThinkingBudget(64, "minimal")
    assert ChainConfig.from_dict({"thinking_budget": 48}).limits().thinking == ThinkingBudget(48)
    assert ChainConfig.from_dict({}).limits().thinking is None


async def test_a_budget_no_mechanism_can_hold_is_refused_naming_role_and_capability() -> None:
    strategy = ParallelSample(k=2, inner=ChainOfThought())
    none = FakeBackend(["x"], capabilities=Capabilities(continuation=False, thinking_budget=False))
    missing = await missing_capabilities(strategy, {"default": none}, ThinkingBudget(64))
    [m] = missing
    msg = m.message()
    assert msg.startswith("the thinking budget needs capability 'thinking_budget' or ")
    assert "'budget_forcing'" in msg and "role 'default'" in msg and "64 tokens" in msg
    assert "continuation: prefill" in msg  # how to get it
    forced = FakeBackend(["x"], capabilities=Capabilities(continuation=True, thinking_budget=False))
    assert await missing_capabilities(strategy, {"default": forced}, ThinkingBudget(64)) == []
    off = FakeBackend(
        ["x"],
        capabilities=Capabilities(continuation=True, budget_forcing=False, thinking_budget=False),
    )
    assert await missing_capabilities(strategy, {"default": off}, ThinkingBudget(64))
    assert await missing_capabilities(strategy, {"default": none}) == []  # no budget: nothing
    async with Session(none) as s:
        with pytest.raises(CapabilityMissing, match="thinking budget"):
            await s.run(ChainOfThought(), "Q?", limits=limits(64))
    assert none.requests == []  # refused before any call
