"""Agents through the proxy: the official openai client sends ``tools`` to ``ponder serve`` in
front of a scripted loopback upstream (a weak model that writes its tool calls as JSON text, or
sometimes as real ``tool_calls``), pass-through and a ``ponder:`` sampling chain, streamed and
not, and a multi-turn loop in which the client runs the tool and sends the result back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest

from ponder.serve import ServeConfig, ServerThread
from tests.unit.loopback import Server, start_loopback

MULTIPLY = {
    "type": "function",
    "function": {
        "name": "multiply",
        "description": "Multiply two numbers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}
QUESTION = [{"role": "user", "content": "What is 17 * 23? Use the tool."}]
TEXT_CALL = '```json\n{"name": "multiply", "arguments": {"a": 17, "b": 23}}\n```'
COMPLETION_TOKENS = 100  # what the upstream reports for a whole answer (all choices)


def real_call(args: dict[str, Any], i: int) -> dict[str, Any]:
    return {
        "id": f"up_{i}",
        "type": "function",
        "function": {"name": "multiply", "arguments": json.dumps(args)},
    }


# the k=4 candidates of a first turn: two agree (one as text, one real, 17.0 vs 17), one
# differs, one answers in prose
CANDIDATES: list[dict[str, Any]] = [
    {"content": TEXT_CALL},
    {"content": None, "tool_calls": [real_call({"b": 23.0, "a": 17}, 1)]},
    {"content": None, "tool_calls": [real_call({"a": 17, "b": 32}, 2)]},
    {"content": "I think it is 390."},
]


def upstream(body: dict[str, Any], path: str, count: int) -> tuple[int, dict[str, Any]]:
    last = body["messages"][-1]
    n = int(body.get("n") or 1)
    if last["role"] == "tool":  # the tool ran: answer in text
        messages = [{"content": f"17 * 23 = {last['content']}. \\boxed{{{last['content']}}}"}] * n
    elif body.get("tools"):
        messages = [CANDIDATES[i % len(CANDIDATES)] for i in range(n)]
    else:
        messages = [{"content": "No tools offered, so: \\boxed{391}"}] * n
    choices = []
    for i, m in enumerate(messages):
        finish = "tool_calls" if m.get("tool_calls") else "stop"
        choices.append({"index": i, "message": {"role": "assistant", **m}, "finish_reason": finish})
    usage = {"prompt_tokens": 10, "completion_tokens": COMPLETION_TOKENS, "total_tokens": 110}
    return 200, {
        "id": f"up-{count}",
        "object": "chat.completion",
        "created": 1,
        "model": body.get("model", "m"),
        "choices": choices,
        "usage": usage,
    }


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Server]]:
    traces = tmp_path_factory.mktemp("traces")
    servers: list[ThreadingHTTPServer] = []
    up = start_loopback(upstream, servers)
    cfg = ServeConfig.from_dict(
        {
            "upstream": {"kind": "openai", "base_url": f"{up.url}/v1", "model": "m"},
            "chains": {
                "sc4": {
                    "strategy": {
                        "name": "sample",
                        "k": 4,
                        "seed": 7,
                        "inner": {"name": "cot", "temperature": 0.7, "max_tokens": 64},
                    }
                },
                "cot": {"strategy": {"name": "cot", "max_tokens": 64}},
                "loop": {"strategy": {"name": "tool_loop"}},
                "ssa4": {"strategy": {"name": "sample", "k": 4, "aggregator": {"name": "ssa"}}},
            },
            "retry": {"max_attempts": 1},
            "trace_dir": str(traces),
        }
    )
    try:
        with ServerThread(cfg) as srv:
            srv.config_trace_dir = traces  # type: ignore[attr-defined]
            yield srv, up
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def client(srv: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)


def assert_multiply_call(calls: Any) -> None:
    assert calls and len(calls) == 1
    call = calls[0]
    assert call.type == "function" and call.id
    assert call.function.name == "multiply"
    assert json.loads(call.function.arguments) == {"a": 17, "b": 23}


# -- pass-through ------------------------------------------------------------------------------


def test_passthrough_turns_a_text_tool_call_into_tool_calls(proxy):
    srv, up = proxy
    raw = client(srv).chat.completions.with_raw_response.create(
        model="m", messages=QUESTION, tools=[MULTIPLY], tool_choice="auto"
    )
    resp = raw.parse()
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert_multiply_call(choice.message.tool_calls)
    assert raw.headers["x-ponder-text-tool-calls"] == "1"
    assert resp.model_extra["ponder"] == {"text_tool_calls": [0]}
    sent = up.seen[-1]
    assert sent["tools"] == [MULTIPLY] and sent["tool_choice"] == "auto"


def test_passthrough_with_tool_choice_none_keeps_the_text(proxy):
    srv, _ = proxy
    resp = client(srv).chat.completions.create(
        model="m", messages=QUESTION, tools=[MULTIPLY], tool_choice="none"
    )
    assert resp.choices[0].message.tool_calls is None
    assert resp.choices[0].message.content == TEXT_CALL


def test_passthrough_without_tools_is_untouched(proxy):
    srv, _ = proxy
    raw = client(srv).chat.completions.with_raw_response.create(model="m", messages=QUESTION)
    assert "x-ponder-text-tool-calls" not in raw.headers
    resp = raw.parse()
    assert resp.choices[0].message.content.endswith("\\boxed{391}")
    assert resp.model_extra is None or "ponder" not in resp.model_extra


def test_passthrough_stream_with_tools_streams_tool_call_chunks(proxy):
    srv, up = proxy
    stream = client(srv).chat.completions.create(
        model="m",
        messages=QUESTION,
        tools=[MULTIPLY],
        stream=True,
        stream_options={"include_usage": True},
    )
    calls, finish, usage = collect(stream)
    assert finish == "tool_calls"
    assert calls == {
        0: {"id": calls[0]["id"], "name": "multiply", "arguments": calls[0]["arguments"]}
    }
    assert json.loads(calls[0]["arguments"]) == {"a": 17, "b": 23}
    assert usage is not None and usage.total_tokens == 110
    assert "stream" not in up.seen[-1]  # asked whole, then streamed


def collect(stream: Any) -> tuple[dict[int, dict[str, str]], str | None, Any]:
    """Accumulate tool-call deltas as an agent framework does (by index)."""
    calls: dict[int, dict[str, str]] = {}
    finish, usage = None, None
    for chunk in stream:
        usage = chunk.usage or usage
        for ch in chunk.choices:
            finish = ch.finish_reason or finish
            for tc in ch.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
    return calls, finish, usage


# -- a sampling chain --------------------------------------------------------------------------


def test_sampling_chain_votes_over_tool_calls(proxy):
    srv, up = proxy
    before = len(up.seen)
    resp = client(srv).chat.completions.create(
        model="ponder:sc4", messages=QUESTION, tools=[MULTIPLY], tool_choice="auto"
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert_multiply_call(choice.message.tool_calls)
    [sent] = up.seen[before:]  # one native n=4 request, with the tools
    assert sent["n"] == 4 and sent["tools"] == [MULTIPLY] and sent["tool_choice"] == "auto"
    assert sent["messages"][-1] == QUESTION[-1]
    extra = resp.model_extra["ponder"]
    assert extra["answers"] == ['tool_call:multiply({"a":17,"b":23})']
    assert resp.usage.prompt_tokens == 10
    assert resp.usage.completion_tokens == COMPLETION_TOKENS  # every sample counted
    trace = srv.config_trace_dir / f"{extra['run_ids'][0]}.jsonl"  # type: ignore[attr-defined]
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    [done] = [e for e in events if e["type"] == "completion"]
    assert [c.get("tool_calls_from_text", False) for c in done["choices"]] == [
        True,
        False,
        False,
        False,
    ]


def test_sampling_chain_streams_the_winning_tool_call(proxy):
    srv, _ = proxy
    stream = client(srv).chat.completions.create(
        model="ponder:sc4",
        messages=QUESTION,
        tools=[MULTIPLY],
        stream=True,
        stream_options={"include_usage": True},
    )
    calls, finish, usage = collect(stream)
    assert finish == "tool_calls"
    assert list(calls) == [0] and calls[0]["name"] == "multiply" and calls[0]["id"]
    assert json.loads(calls[0]["arguments"]) == {"a": 17, "b": 23}
    assert usage.completion_tokens == COMPLETION_TOKENS


def test_the_openai_stream_helper_accumulates_the_chain_tool_call(proxy):
    srv, _ = proxy
    with client(srv).beta.chat.completions.stream(
        model="ponder:sc4", messages=QUESTION, tools=[MULTIPLY]
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    assert_multiply_call(final.choices[0].message.tool_calls)


@pytest.mark.parametrize(
    "chain, says",
    [
        ("loop", "chain 'loop' cannot take tools: strategy 'tool_loop'"),
        ("ssa4", "chain 'ssa4' cannot take tools: strategy 'sample' aggregates with 'ssa'"),
    ],
)
def test_a_chain_that_cannot_take_tools_is_a_400_naming_it(proxy, chain, says):
    srv, up = proxy
    before = len(up.seen)
    with pytest.raises(openai.BadRequestError) as e:
        client(srv).chat.completions.create(
            model=f"ponder:{chain}", messages=QUESTION, tools=[MULTIPLY]
        )
    assert says in e.value.body["message"]
    assert e.value.body["code"] == "tools_unsupported" and e.value.body["param"] == "tools"
    assert len(up.seen) == before  # nothing was sent upstream


def test_a_chain_request_with_bad_tools_is_a_400(proxy):
    srv, _ = proxy
    with httpx.Client(base_url=srv.base_url) as h:
        r = h.post(
            "/chat/completions",
            json={"model": "ponder:sc4", "messages": QUESTION, "tools": [{"type": "function"}]},
        )
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools"


# -- the agent loop: the client runs the tool and sends the result back ------------------------


def multiply(a: float, b: float) -> float:
    return a * b


@pytest.mark.parametrize("model", ["m", "ponder:sc4", "ponder:cot"])
def test_agent_loop_runs_the_tool_and_gets_a_final_answer(proxy, model):
    srv, up = proxy
    c = client(srv)
    messages: list[Any] = list(QUESTION)
    turns = 0
    for turns in range(1, 5):  # noqa: B007
        resp = c.chat.completions.create(model=model, messages=messages, tools=[MULTIPLY])
        msg = resp.choices[0].message
        if not msg.tool_calls:
            break
        assert resp.choices[0].finish_reason == "tool_calls"
        messages.append(msg.model_dump(exclude_none=True))
        for call in msg.tool_calls:
            args = json.loads(call.function.arguments)
            result = multiply(**args)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": str(int(result))})
    assert turns == 2
    assert msg.content is not None and "391" in msg.content
    sent = up.seen[-1]["messages"]
    assert sent[-2]["role"] == "assistant" and sent[-2]["tool_calls"][0]["function"]["name"]
    assert sent[-1] == {
        "role": "tool",
        "tool_call_id": messages[-1]["tool_call_id"],
        "content": "391",
    }
    if model.startswith("ponder:"):
        assert resp.model_extra["ponder"]["answers"] == ["391"]
