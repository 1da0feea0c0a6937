"""Tool calls as data: argument normalization, the vote over tool calls, the text-call parser."""

from __future__ import annotations

import json

import pytest

from ponder import FakeBackend, Orchestrator
from ponder.aggregator.voting import Majority, group_answers
from ponder.errors import ToolNotOffered
from ponder.protocol.actions import Outcome, Task
from ponder.protocol.requests import Choice, SamplingParams
from ponder.protocol.tool_calls import (
    is_tool_answer,
    normalize_arguments,
    parse_text_tool_calls,
    tool_call_answer,
)
from ponder.serve.responses import winning_tool_calls
from ponder.strategies import build_strategy
from ponder.strategies.cot import choice_outcome

MULTIPLY = {
    "type": "function",
    "function": {
        "name": "multiply",
        "description": "a * b",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}
TOOLS = (MULTIPLY,)


def fn_call(name: str, arguments: str | dict, id_: str = "c1") -> dict:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}


def tool_choice(name: str, arguments: str | dict, from_text: bool = False) -> Choice:
    return Choice(
        text="",
        finish_reason="tool_calls",
        completion_tokens=7,
        tool_calls=[fn_call(name, arguments)],
        tool_calls_from_text=from_text,
    )


# -- normalization -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b",
    [
        ('{"a": 17, "b": 23}', '{"b":23,"a":17}'),  # key order, whitespace
        ('{"a": 17, "b": 23}', '{"a": 17.0, "b": 23.00}'),  # 17 vs 17.0
        ('{"a": 17, "b": 23}', {"b": 23, "a": 17}),  # a dict, not a string
        ('{"x": {"q": [1.0, 2], "p": "s"}}', '{ "x" : { "p": "s", "q": [1, 2.0] } }'),  # nested
        ("", "{}"),
    ],
)
def test_equal_arguments_normalize_the_same(a, b):
    assert normalize_arguments(a) == normalize_arguments(b)


@pytest.mark.parametrize(
    "a, b",
    [
        ('{"a": 17, "b": 23}', '{"a": 17, "b": 32}'),
        ('{"a": 17.5}', '{"a": 17}'),
        ('{"a": "17"}', '{"a": 17}'),  # a string is not a number
        ('{"a": true}', '{"a": 1}'),  # a bool is not a number
    ],
)
def test_different_arguments_stay_different(a, b):
    assert normalize_arguments(a) != normalize_arguments(b)


def test_arguments_that_are_not_json_are_kept_as_text():
    assert normalize_arguments("  not json ") == "not json"


def test_tool_call_identity_is_name_plus_arguments_and_order_free():
    one = tool_call_answer([fn_call("multiply", '{"a": 17, "b": 23}')])
    assert one == 'tool_call:multiply({"a":17,"b":23})'
    assert is_tool_answer(one) and not is_tool_answer("391")
    assert tool_call_answer([fn_call("add", {"a": 1})]) != tool_call_answer(
        [fn_call("multiply", {"a": 1})]
    )
    x, y = fn_call("f", {"a": 1}), fn_call("g", {"b": 2})
    assert tool_call_answer([x, y]) == tool_call_answer([y, x])


# -- the text tool-call parser -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "multiply", "arguments": {"a": 17, "b": 23}}',
        '  {"name": "multiply", "parameters": {"a": 17, "b": 23}}\n',
        '```json\n{"name": "multiply", "arguments": {"a": 17, "b": 23}}\n```',
        '```\n{"name": "multiply", "arguments": "{\\"a\\": 17, \\"b\\": 23}"}\n```',
        '<tool_call>\n{"name": "multiply", "arguments": {"a": 17, "b": 23}}\n</tool_call>',
        '<tool_call>{"name": "multiply", "arguments": {"a": 17, "b": 23}}',  # unclosed tag
        '[{"name": "multiply", "arguments": {"a": 17, "b": 23}}]',
        '{"type": "function", "function": {"name": "multiply", "arguments": {"a": 17, "b": 23}}}',
    ],
)
def test_text_tool_calls_parse(text):
    [call] = parse_text_tool_calls(text, {"multiply"})
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "multiply"
    assert json.loads(call["function"]["arguments"]) == {"a": 17, "b": 23}


def test_several_tagged_calls_parse_in_order():
    text = (
        '<tool_call>{"name": "multiply", "arguments": {"a": 1, "b": 2}}</tool_call>\n'
        '<tool_call>{"name": "multiply", "arguments": {"a": 3, "b": 4}}</tool_call>'
    )
    calls = parse_text_tool_calls(text, {"multiply"})
    assert [json.loads(c["function"]["arguments"])["a"] for c in calls] == [1, 3]
    assert len({c["id"] for c in calls}) == 2


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 391.",
        '{"name": "divide", "arguments": {"a": 1}}',  # a tool not offered
        'Let me call it: {"name": "multiply", "arguments": {"a": 1, "b": 2}}',  # prose around it
        '{"name": "multiply", "arguments": [1, 2]}',  # arguments not an object
        '{"name": "multiply", "arguments": "not json"}',
        '<tool_call>{"name": "multiply", "arguments": {}}</tool_call> and then some words',
        '[{"name": "multiply", "arguments": {}}, {"name": "divide", "arguments": {}}]',
        '{"answer": 391}',
        "",
    ],
)
def test_not_a_text_tool_call(text):
    assert parse_text_tool_calls(text, {"multiply"}) == []


def test_nothing_parses_when_no_tool_is_offered():
    assert parse_text_tool_calls('{"name": "multiply", "arguments": {}}', set()) == []


def test_tool_loop_uses_the_shared_parser():
    from ponder.strategies.tool_loop import text_tool_calls
    from ponder.tools import get_tool

    [call] = text_tool_calls(
        '```json\n{"name": "calculator", "arguments": {"expression": "2+2"}}\n```',
        {"calculator": get_tool("calculator")},
    )
    assert call["function"]["name"] == "calculator"


# -- a sample's outcome and the vote -----------------------------------------------------------


def outcome_of(choice: Choice) -> Outcome:
    return choice_outcome(choice, SamplingParams(), tools=TOOLS)


def test_a_tool_call_choice_votes_by_its_identity():
    out = outcome_of(tool_choice("multiply", '{"b": 23.0, "a": 17}', from_text=True))
    assert out.answer == 'tool_call:multiply({"a":17,"b":23})'
    assert out.data["finish_reason"] == "tool_calls"
    assert out.data["tool_calls_from_text"] is True
    assert out.data["tool_calls"][0]["function"]["arguments"] == '{"a":17,"b":23}'


def test_a_tool_not_offered_casts_no_vote():
    out = outcome_of(tool_choice("divide", {"a": 1, "b": 2}))
    assert out.answer is None
    assert isinstance(out.error, ToolNotOffered)
    assert "'divide'" in str(out.error) and "multiply" in str(out.error)


def test_a_text_answer_of_an_agent_turn_votes_as_a_final_answer():
    out = outcome_of(Choice(text="17 * 23 = 391", finish_reason="stop", completion_tokens=5))
    assert out.answer == "391"
    chat = outcome_of(Choice(text="Hello there!", finish_reason="stop", completion_tokens=2))
    assert chat.answer == "Hello there!"  # no number: the whole text votes
    plain = choice_outcome(Choice("Hello there!", "stop", 2), SamplingParams())
    assert plain.answer is None  # a plain question is unchanged


def vote(choices: list[Choice]) -> Outcome:
    samples = [outcome_of(c) for c in choices]
    out = Majority().choose(Task("q"), samples)
    out.samples = samples
    return out


def text(t: str) -> Choice:
    return Choice(text=t, finish_reason="stop", completion_tokens=3)


def test_vote_equal_calls_win_over_a_different_call_and_text():
    out = vote(
        [
            tool_choice("multiply", {"a": 17, "b": 32}),
            tool_choice("multiply", '{"a":17,"b":23}'),
            text("The answer is 391"),
            tool_choice("multiply", '{"b": 23, "a": 17.0}'),
        ]
    )
    assert out.answer == 'tool_call:multiply({"a":17,"b":23})'
    assert out.data["votes"][out.answer] == 2
    [call] = winning_tool_calls(out) or []
    assert json.loads(call["function"]["arguments"]) == {"a": 17, "b": 23}


def test_vote_text_majority_beats_tool_calls():
    out = vote(
        [tool_choice("multiply", {"a": 17, "b": 23}), text("\\boxed{391}"), text("It is 391.")]
    )
    assert out.answer == "391"
    assert winning_tool_calls(out) is None


def test_vote_ties_go_to_the_first_seen():
    first_call = vote([tool_choice("multiply", {"a": 1, "b": 2}), text("\\boxed{2}")])
    assert is_tool_answer(first_call.answer)
    first_text = vote([text("\\boxed{2}"), tool_choice("multiply", {"a": 1, "b": 2})])
    assert first_text.answer == "2"


def test_a_tool_call_never_equals_a_text_answer():
    samples = [outcome_of(tool_choice("multiply", {"a": 1, "b": 2})), outcome_of(text("x"))]
    assert len(group_answers(samples)) == 2


def test_calls_to_tools_not_offered_are_left_out_of_the_vote():
    out = vote(
        [
            tool_choice("divide", {"a": 17, "b": 23}),
            tool_choice("divide", {"a": 17, "b": 23}),
            tool_choice("multiply", {"a": 17, "b": 23}),
        ]
    )
    assert out.answer == 'tool_call:multiply({"a":17,"b":23})'


# -- strategies over an agent's turn -----------------------------------------------------------


AGENT_TASK = Task(
    question="What is 17 * 23?",
    messages=({"role": "user", "content": "What is 17 * 23?"},),
    tools=TOOLS,
    tool_choice="auto",
)


async def test_sample_draws_k_turns_with_the_tools_and_votes():
    script = [
        tool_choice("multiply", {"a": 17, "b": 23}),
        text("I think it is 390"),
        tool_choice("multiply", {"b": 23, "a": 17.0}),
        tool_choice("multiply", {"a": 17, "b": 32}),
    ]
    backend = FakeBackend(lambda request, i: script[i])
    strategy = build_strategy(
        {"name": "sample", "k": 4, "seed": 1, "inner": {"name": "cot", "temperature": 0.7}}
    )
    result = await Orchestrator({"default": backend}).run(strategy, AGENT_TASK)
    [req] = backend.requests
    assert req.tools == TOOLS and req.tool_choice == "auto" and req.params.n == 4
    assert req.messages is not None and AGENT_TASK.messages is not None
    assert req.messages[0]["role"] == "system" and req.messages[1:] == AGENT_TASK.messages
    [call] = winning_tool_calls(result.outcome) or []
    assert json.loads(call["function"]["arguments"]) == {"a": 17, "b": 23}
    assert result.usage.completion_tokens == 7 * 3 + 3  # every sample counts


async def test_a_plain_question_sends_no_tools():
    backend = FakeBackend(["\\boxed{4}"])
    await Orchestrator({"default": backend}).run(build_strategy({"name": "cot"}), Task("2+2?"))
    assert backend.requests[0].tools is None and backend.requests[0].tool_choice is None


@pytest.mark.parametrize(
    "config, says",
    [
        ({"name": "tool_loop"}, "strategy 'tool_loop' does not send the client's tools"),
        (
            {"name": "sample", "k": 2, "aggregator": {"name": "ssa"}},
            "aggregates with 'ssa', which cannot vote over tool calls",
        ),
        (
            {"name": "adaptive", "k": 4, "inner": {"name": "tool_loop"}},
            "its inner strategy 'tool_loop'",
        ),
    ],
)
def test_strategies_that_cannot_take_tools_say_why(config, says):
    why = build_strategy(config).tools_unsupported()
    assert why is not None and says in why


@pytest.mark.parametrize(
    "config",
    [
        {"name": "cot"},
        {"name": "sample", "k": 4},
        {"name": "adaptive", "k": 4},
        {"name": "sample", "k": 4, "aggregator": {"name": "weighted"}},
    ],
)
def test_cot_and_voting_over_cot_take_tools(config):
    assert build_strategy(config).tools_unsupported() is None


def test_the_safe_prompt_bound_counts_an_agents_tool_turns():
    from ponder.protocol.tokens import bound_chat_tokens

    plain = [{"role": "user", "content": "q"}, {"role": "assistant", "content": None}]
    call = fn_call("multiply", {"a": 17, "b": 23}, id_="call_abcdefghijklmnop")
    agent = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
    ]
    assert bound_chat_tokens(agent) - bound_chat_tokens(plain) > len(json.dumps(call))


async def test_adaptive_stops_once_the_tool_calls_agree():
    backend = FakeBackend(lambda request, i: tool_choice("multiply", {"a": 17, "b": 23 + 0.0 * i}))
    strategy = build_strategy(
        {"name": "adaptive", "k": 8, "seed": 3, "threshold": 1.0, "inner": {"name": "cot"}}
    )
    result = await Orchestrator({"default": backend}).run(strategy, AGENT_TASK)
    assert [r.params.n for r in backend.requests] == [2]  # the first round agreed: stop
    assert all(r.tools == TOOLS for r in backend.requests)
    assert winning_tool_calls(result.outcome) is not None
    assert result.outcome.data["drawn"] == 2
