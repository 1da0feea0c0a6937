"""A thinking budget through a real ``ponder serve``: the official ``openai`` client sends
``reasoning_effort`` or ``extra_body={"ponder": {"thinking_budget": N}}`` to ``cot`` and
``sample`` chains; the loopback upstream (``tests.unit.thinking_upstream``) thinks past the budget,
Ponder cuts the thinking, closes it and the model answers (budget forcing), or the upstream's
native knob bounds it; usage is exactly what the upstream generated; what no mechanism can hold
is refused at startup (a chain's budget) or answered 400 (a request's)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from ponder.errors import ConfigError
from ponder.serve import ServeConfig, ServerThread
from tests.unit.thinking_upstream import ANSWER, CLOSE, ThinkingUpstream

MSG = [{"role": "user", "content": "What is 2+2?"}]
EFFORTS = {"efforts": {"low": 16, "medium": 64, "high": 256}, "answer_tokens": 32}
CHAINS: dict[str, Any] = {
    "cot": {"strategy": {"name": "cot", "max_tokens": 200}, "thinking": EFFORTS},
    "sc3": {
        "strategy": {
            "name": "sample",
            "k": 3,
            "seed": 0,
            "inner": {"name": "cot", "temperature": 0.7, "max_tokens": 200},
            "aggregator": {"name": "majority"},
        },
        "thinking": EFFORTS,
    },
}


def serve_cfg(up: ThinkingUpstream, chains: dict[str, Any] | None = None, **kw: Any) -> Any:
    upstream = {
        "kind": "openai",
        "base_url": f"{up.url}/v1",
        "model": "m",
        "tokenize_url": f"{up.url}/tokenize",
        "continuation": "prefill",
        **kw,
    }
    return ServeConfig.from_dict({"upstream": upstream, "chains": chains or CHAINS})


def client(srv: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)


def thinking_of(message: Any) -> str | None:
    return (message.model_extra or {}).get("reasoning_content")


def assert_usage_exact(usage: Any, up: ThinkingUpstream) -> None:
    prompt, completion, thinking = up.totals()
    assert (usage.prompt_tokens, usage.completion_tokens) == (prompt, completion)
    assert usage.completion_tokens_details.reasoning_tokens == thinking


@pytest.mark.parametrize("dialect", ["reasoning_content", "think"])
@pytest.mark.parametrize(
    "ask",
    [{"extra_body": {"ponder": {"thinking_budget": 16}}}, {"reasoning_effort": "low"}],
    ids=["extra_body", "reasoning_effort"],
)
def test_cot_cut_mid_thought_answers_with_exact_usage(dialect: str, ask: dict[str, Any]) -> None:
    with ThinkingUpstream([40], dialect) as up, ServerThread(serve_cfg(up)) as srv:
        resp = client(srv).chat.completions.create(model="ponder:cot", messages=MSG, **ask)
    first, rest = up.log
    assert first.body["max_tokens"] == 16 and not first.continued
    assert rest.continued and rest.body["messages"][-1]["content"].endswith(f"{CLOSE}\n\n")
    assert rest.body["max_tokens"] == 200 - 16
    message = resp.choices[0].message
    assert message.content == ANSWER.replace("  ", " ")  # an answer, not an empty reply
    assert resp.choices[0].finish_reason == "stop"
    thought = thinking_of(message)
    assert thought is not None and thought == first.thinking[0]
    assert len(thought.split()) <= 16
    assert_usage_exact(resp.usage, up)
    assert resp.usage.completion_tokens_details.reasoning_tokens <= 16


def test_sample_forces_each_cut_sample_and_votes_on_answers() -> None:
    with ThinkingUpstream([5, 40, 100]) as up, ServerThread(serve_cfg(up)) as srv:
        resp = client(srv).chat.completions.create(
            model="ponder:sc3", messages=MSG, reasoning_effort="low"
        )
    first, *rests = up.log
    assert first.body["n"] == 3 and first.body["max_tokens"] == 16
    assert len(rests) == 2 and all(r.continued for r in rests)
    assert "\\boxed{4}" in (resp.choices[0].message.content or "")
    ponder = (resp.model_extra or {})["ponder"]
    assert ponder["answers"] == ["4"] and ponder["calls"] == 3  # one n=3 call, 2 continuations
    assert_usage_exact(resp.usage, up)
    assert resp.usage.completion_tokens_details.reasoning_tokens == 5 + 16 + 16


def test_streamed_cot_streams_the_forced_answer() -> None:
    with ThinkingUpstream([40]) as up, ServerThread(serve_cfg(up)) as srv:
        stream = client(srv).chat.completions.create(
            model="ponder:cot",
            messages=MSG,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ponder": {"thinking_budget": 16}},
        )
        chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "\\boxed{4}" in content
    [usage] = [c.usage for c in chunks if c.usage is not None]
    assert_usage_exact(usage, up)


def test_a_chain_budget_holds_and_a_request_may_only_lower_it() -> None:
    chains = {"cot": {**CHAINS["cot"], "thinking_budget": 24}}
    with ThinkingUpstream([40]) as up, ServerThread(serve_cfg(up, chains)) as srv:
        c = client(srv)
        c.chat.completions.create(model="ponder:cot", messages=MSG)  # the chain's own: 24
        c.chat.completions.create(model="ponder:cot", messages=MSG, reasoning_effort="high")
        c.chat.completions.create(
            model="ponder:cot", messages=MSG, extra_body={"ponder": {"thinking_budget": 8}}
        )
    firsts = [call.body["max_tokens"] for call in up.log if not call.continued]
    assert firsts == [24, 24, 8]


def test_a_native_knob_is_sent_and_nothing_is_forced() -> None:
    with (
        ThinkingUpstream([40]) as up,
        ServerThread(serve_cfg(up, thinking_budget="thinking_token_budget")) as srv,
    ):
        resp = client(srv).chat.completions.create(
            model="ponder:cot", messages=MSG, extra_body={"ponder": {"thinking_budget": 16}}
        )
    [only] = up.log
    assert only.body["thinking_token_budget"] == 16 and only.body["max_tokens"] == 200
    assert resp.choices[0].message.content == ANSWER
    assert_usage_exact(resp.usage, up)


def test_without_a_budget_the_request_is_as_before() -> None:
    with ThinkingUpstream([40]) as up, ServerThread(serve_cfg(up)) as srv:
        resp = client(srv).chat.completions.create(model="ponder:cot", messages=MSG)
    [only] = up.log
    assert only.body["max_tokens"] == 200
    assert "thinking_token_budget" not in only.body and "reasoning_effort" not in only.body
    assert resp.choices[0].message.content == ANSWER


def test_bad_values_are_400s_naming_the_field() -> None:
    with ThinkingUpstream([40]) as up, ServerThread(serve_cfg(up)) as srv:
        c = client(srv)
        with pytest.raises(openai.BadRequestError) as info:
            c.chat.completions.create(model="ponder:cot", messages=MSG, reasoning_effort="max")
        assert "reasoning_effort" in str(info.value) and "low, medium, high" in str(info.value)
        with pytest.raises(openai.BadRequestError, match="ponder.thinking_budget"):
            c.chat.completions.create(
                model="ponder:cot", messages=MSG, extra_body={"ponder": {"thinking_budget": 0}}
            )
    assert up.log == []


def test_no_mechanism_refuses_the_chain_at_startup_and_the_request_with_400() -> None:
    with ThinkingUpstream([40]) as up:
        chains = {"cot": {**CHAINS["cot"], "reasoning_effort": "low"}}
        with pytest.raises(ConfigError) as info:
            ServerThread(serve_cfg(up, chains, continuation="none")).start().stop()
        msg = str(info.value)
        assert "chains.cot" in msg and "thinking budget" in msg and "'budget_forcing'" in msg
        with ServerThread(serve_cfg(up, continuation="none")) as srv:
            with pytest.raises(openai.BadRequestError) as bad:
                client(srv).chat.completions.create(
                    model="ponder:cot", messages=MSG, reasoning_effort="low"
                )
            assert "capability_missing" in str(bad.value) or "thinking" in str(bad.value)
    assert up.log == []


def test_passthrough_sends_a_token_budget_in_the_upstreams_knob() -> None:
    with (
        ThinkingUpstream([40, 40]) as up,
        ServerThread(serve_cfg(up, thinking_budget="thinking_budget_tokens")) as srv,
    ):
        c = client(srv)
        resp = c.chat.completions.create(
            model="m", messages=MSG, extra_body={"ponder": {"thinking_budget": 16}}
        )
        c.chat.completions.create(  # the client's own smaller value stands
            model="m",
            messages=MSG,
            extra_body={"thinking_budget_tokens": 8, "ponder": {"thinking_budget": 16}},
        )
    first, second = up.log
    assert first.body["thinking_budget_tokens"] == 16 and "ponder" not in first.body
    assert second.body["thinking_budget_tokens"] == 8 and "ponder" not in second.body
    assert resp.choices[0].message.content is not None


def test_passthrough_refuses_a_token_budget_it_cannot_hold() -> None:
    with ThinkingUpstream([40]) as up, ServerThread(serve_cfg(up)) as srv:
        c = client(srv)
        with pytest.raises(openai.BadRequestError) as info:
            c.chat.completions.create(
                model="m", messages=MSG, extra_body={"ponder": {"thinking_budget": 16}}
            )
        body = info.value.body
        assert isinstance(body, dict)
        assert body.get("code") == "capability_missing"
        assert body.get("param") == "ponder.thinking_budget"
        assert "ponder:<chain>" in str(body.get("message"))
        with pytest.raises(openai.BadRequestError, match="positive integer"):
            c.chat.completions.create(
                model="m", messages=MSG, extra_body={"ponder": {"thinking_budget": "lots"}}
            )
    assert up.log == []
