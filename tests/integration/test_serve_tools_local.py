"""An agent loop through ``ponder serve`` in front of the real llama-server and default model:
the official openai client offers a ``multiply(a, b)`` tool, runs any call it gets back and sends
the result, pass-through and a k=4 sampling chain.

The 0.5B default model does not call tools reliably, so the assertions are about the protocol,
not the model: every request is accepted; any tool call that comes back is well formed (an id,
type ``function``, the offered name, JSON object arguments with ``a`` and ``b``) with
``finish_reason: tool_calls``; the loop ends with a text answer within ``MAX_TURNS``; usage counts
every sample; and the proxy never answers in prose to a turn the model wrote as a tool call."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from ponder.protocol.tool_calls import parse_text_tool_calls
from ponder.serve import ServeConfig, ServerThread

pytestmark = pytest.mark.integration

MAX_TURNS = 4
MAX_TOKENS = 96
MULTIPLY = {
    "type": "function",
    "function": {
        "name": "multiply",
        "description": "Multiply two numbers and return the product.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}
SYSTEM = (
    "You can call the tool multiply(a, b). To call it, reply with only "
    '{"name": "multiply", "arguments": {"a": <number>, "b": <number>}}. '
    "After you get the result, give the final answer in words."
)
QUESTION = "What is 17 times 23? Use the multiply tool."


@pytest.fixture(scope="module")
def proxy(local_backend):
    cfg = ServeConfig.from_dict(
        {
            "upstream": {
                "kind": "openai",
                "base_url": local_backend.server.base_url,
                "model": "local",
            },
            "chains": {
                "sc4": {
                    "strategy": {
                        "name": "sample",
                        "k": 4,
                        "seed": 11,
                        "inner": {"name": "cot", "temperature": 0.7, "max_tokens": MAX_TOKENS},
                    },
                    "budget": {"total_tokens": 6000},
                }
            },
        }
    )
    with ServerThread(cfg) as srv:
        yield srv


def check_call(call: Any) -> dict[str, Any]:
    assert call.id and call.type == "function"
    assert call.function.name == "multiply"
    args = json.loads(call.function.arguments)
    assert isinstance(args, dict)
    return args


def run_loop(srv: ServerThread, model: str) -> tuple[list[Any], list[Any]]:
    """The client's agent loop: returns every response and the final message list."""
    client = openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=600)
    messages: list[Any] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": QUESTION},
    ]
    responses = []
    for _ in range(MAX_TURNS):
        resp = client.chat.completions.create(
            model=model,
            messages=messages,
            tools=[MULTIPLY],
            tool_choice="auto",
            max_tokens=MAX_TOKENS,
            temperature=0,
        )
        responses.append(resp)
        choice = resp.choices[0]
        msg = choice.message
        if not msg.tool_calls:
            # never a tool call left in the text: the proxy would have converted it
            assert parse_text_tool_calls(msg.content or "", {"multiply"}) == []
            break
        assert choice.finish_reason == "tool_calls"
        messages.append(msg.model_dump(exclude_none=True))
        for call in msg.tool_calls:
            args = check_call(call)
            try:
                result = str(float(args["a"]) * float(args["b"])).removesuffix(".0")
            except (KeyError, TypeError, ValueError) as exc:
                result = f"error: {exc}"
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return responses, messages


@pytest.mark.parametrize("model", ["local", "ponder:sc4"])
async def test_agent_loop_through_the_proxy(proxy, model):
    responses, messages = await asyncio.to_thread(run_loop, proxy, model)
    assert responses, "no response"
    final = responses[-1].choices[0]
    called = [r for r in responses if r.choices[0].message.tool_calls]
    print(
        f"{model}: {len(responses)} turn(s), {len(called)} with tool calls; "
        f"final: {final.message.content!r}"
    )
    if called and len(responses) < MAX_TURNS:
        # a round trip: the tool result went back and the model answered in text
        assert any(m.get("role") == "tool" for m in messages if isinstance(m, dict))
        assert final.message.tool_calls is None and final.message.content
    if not final.message.tool_calls:
        assert final.finish_reason in ("stop", "length")
    for r in responses:
        assert r.usage.total_tokens > 0
        if model.startswith("ponder:"):
            extra = r.model_extra["ponder"]
            assert extra["calls"] >= 1
            assert r.usage.completion_tokens > 0  # all four samples' tokens


async def test_streamed_chain_turn_with_tools_is_well_formed(proxy):
    def go() -> tuple[dict[int, dict[str, str]], str | None, str]:
        client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
        stream = client.chat.completions.create(
            model="ponder:sc4",
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": QUESTION},
            ],
            tools=[MULTIPLY],
            stream=True,
            max_tokens=MAX_TOKENS,
        )
        calls: dict[int, dict[str, str]] = {}
        finish, text = None, ""
        for chunk in stream:
            for ch in chunk.choices:
                finish = ch.finish_reason or finish
                text += ch.delta.content or ""
                for tc in ch.delta.tool_calls or []:
                    slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] = tc.id or slot["id"]
                    if tc.function:
                        slot["name"] = tc.function.name or slot["name"]
                        slot["arguments"] += tc.function.arguments or ""
        return calls, finish, text

    calls, finish, text = await asyncio.to_thread(go)
    if calls:
        assert finish == "tool_calls"
        for slot in calls.values():
            assert slot["id"] and slot["name"] == "multiply"
            assert isinstance(json.loads(slot["arguments"]), dict)
    else:
        assert finish in ("stop", "length", "budget_exhausted") and text
