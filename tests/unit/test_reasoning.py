"""Reasoning models: thinking read apart from the answer in each dialect (``reasoning_content``,
``reasoning``, inline ``<think>``), whole and streamed, its tokens counted apart, and returned by
``ponder serve`` the way clients read it (chains and pass-through), with earlier turns' thinking
kept from the upstream. Real HTTP: the loopback upstream of ``tests.unit.fault_upstream`` speaks
each dialect; the official ``openai`` client talks to a real proxy."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from ponder.answers import extract_answer
from ponder.backends.openai_compat import OpenAICompatibleBackend
from ponder.backends.openai_wire import StreamedChoice
from ponder.errors import ConfigError
from ponder.protocol.actions import Outcome
from ponder.protocol.requests import GenerationRequest, SamplingParams
from ponder.protocol.thinking import DEFAULT_MARKERS
from ponder.serve import ServeConfig, ServerThread
from ponder.serve.reasoning import ReasoningConfig, chosen_thinking, thinking_fields
from tests.unit.fault_upstream import DIALECTS, HIDDEN, Faults, FaultUpstream, fake_tokens

MSG = [{"role": "user", "content": "What is 2+2?"}]
INNER = {"name": "cot", "temperature": 0.7, "max_tokens": 400}
CHAINS = {
    "cot": {"strategy": {"name": "cot", "max_tokens": 400}},
    "sc3": {
        "strategy": {
            "name": "sample",
            "k": 3,
            "seed": 0,
            "inner": INNER,
            "aggregator": {"name": "majority"},
        }
    },
}


def chat(**params: Any) -> GenerationRequest:
    return GenerationRequest(messages=tuple(MSG), params=SamplingParams(**params))


def backend(up: FaultUpstream, **kw: Any) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(base_url=up.base_url, model="m", api_key="x", **kw)


# -- backends -----------------------------------------------------------------------------------


@pytest.mark.parametrize("report", [True, False], ids=["reported", "counted"])
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_backend_reads_thinking_apart_in_each_dialect(dialect: str, report: bool) -> None:
    with FaultUpstream(dialect=dialect, report_reasoning=report) as up:
        b = backend(up, tokenize_url=f"{up.url}/tokenize")
        done = await b.generate(chat(max_tokens=400))
        await b.aclose()
    gen = up.log[-1]
    [ch] = done.choices
    assert ch.reasoning == gen.thinking[0] and "让我想想" in ch.reasoning
    assert ch.text == gen.answers[0] and "<think>" not in ch.text
    answer = extract_answer(ch.text)
    assert answer is not None and f"boxed{{{answer}}}" not in ch.reasoning  # the decoy is not it
    assert done.completion_tokens == gen.completion_tokens
    if report or dialect != "think":
        assert ch.reasoning_tokens == done.reasoning_tokens == gen.reasoning_tokens
    else:  # counted on the thinking text (the markers are not in it)
        assert ch.reasoning_tokens == fake_tokens(ch.reasoning) < gen.reasoning_tokens


@pytest.mark.parametrize("tokenize", [True, False], ids=["tokenizer", "no-tokenizer"])
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_native_n_counts_thinking_and_completion_exactly(
    dialect: str, tokenize: bool
) -> None:
    with FaultUpstream(dialect=dialect) as up:
        b = backend(up, tokenize_url=f"{up.url}/tokenize" if tokenize else None)
        done = await b.generate(chat(n=3, max_tokens=400, temperature=0.7))
        await b.aclose()
    gen = up.log[-1]
    assert gen.n == 3 and len(done.choices) == 3
    assert [c.reasoning for c in done.choices] == gen.thinking
    assert [c.text for c in done.choices] == gen.answers
    assert done.completion_tokens == gen.completion_tokens
    assert done.reasoning_tokens == gen.reasoning_tokens
    assert all(0 < c.reasoning_tokens <= c.completion_tokens for c in done.choices)


@pytest.mark.parametrize("n", [1, 3])
async def test_hidden_thinking_is_counted_from_the_reported_tokens(n: int) -> None:
    with FaultUpstream(dialect=HIDDEN) as up:
        b = backend(up)
        done = await b.generate(chat(n=n, max_tokens=400, temperature=0.7))
        await b.aclose()
    gen = up.log[-1]
    assert all(c.reasoning is None for c in done.choices)
    assert [c.text for c in done.choices] == gen.answers
    assert done.reasoning_tokens == gen.reasoning_tokens > 0
    assert done.completion_tokens == gen.completion_tokens
    assert all(0 < c.reasoning_tokens < c.completion_tokens for c in done.choices)


async def test_thinking_cut_at_max_tokens_is_thinking_with_no_answer() -> None:
    with FaultUpstream(dialect="think", faults=Faults(words=(8, 8))) as up:
        b = backend(up)
        done = await b.generate(chat(max_tokens=12))
        await b.aclose()
    [ch] = done.choices
    assert ch.finish_reason == "length" and ch.text == "" and ch.reasoning
    assert ch.reasoning_tokens == ch.completion_tokens == up.log[-1].completion_tokens <= 12


async def test_no_thinking_changes_nothing_and_markers_can_be_turned_off() -> None:
    with FaultUpstream() as up:
        b = backend(up)
        done = await b.generate(chat())
        await b.aclose()
    [ch] = done.choices
    assert (ch.reasoning, ch.reasoning_tokens, ch.text) == (None, 0, up.log[-1].answers[0])
    with FaultUpstream(dialect="think") as up:
        b = backend(up, thinking_markers=None)
        [ch] = (await b.generate(chat())).choices
        await b.aclose()
    assert ch.reasoning is None and ch.text.startswith("<think>")
    with pytest.raises(ConfigError, match="thinking_markers"):
        backend(up, thinking_markers=("<t>", "<t>"))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_streamed_deltas_of_each_dialect_read_apart(dialect: str) -> None:
    with FaultUpstream(dialect=dialect) as up:
        body = {"model": "m", "messages": MSG, "stream": True, "n": 2}
        resp = httpx.post(f"{up.base_url}/chat/completions", json=body, timeout=10)
    gen = up.log[-1]
    choices = [StreamedChoice(DEFAULT_MARKERS), StreamedChoice(DEFAULT_MARKERS)]
    contents = ["", ""]
    for line in resp.text.splitlines():
        if not line.startswith("data: {"):
            continue
        for c in json.loads(line[6:])["choices"]:
            choices[c["index"]].add(c["delta"])
            contents[c["index"]] += c["delta"].get("content") or ""
    for ch in choices:
        ch.finish()
    assert [c.reasoning for c in choices] == gen.thinking
    assert [c.text for c in choices] == gen.answers
    if dialect == "think":  # the markers came cut across chunks
        assert contents[0].startswith("<think>") and "</think>" in contents[0]


# -- what the proxy returns ---------------------------------------------------------------------


def serve_cfg(up: FaultUpstream, **kw: Any) -> ServeConfig:
    return ServeConfig.from_dict(
        {
            "upstream": {"kind": "openai", "base_url": up.base_url, "model": "m"},
            "chains": CHAINS,
            **kw,
        }
    )


def client(srv: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)


def extra(obj: Any, name: str) -> Any:
    return (obj.model_extra or {}).get(name)


def read_stream(stream: Any, markers: Any = None) -> tuple[StreamedChoice, Any, list[Any]]:
    got = StreamedChoice(markers)
    usage = None
    chunks = []
    for part in stream:
        chunks.append(part)
        if part.usage is not None:
            usage = part.usage
        for c in part.choices:
            got.add(c.delta.model_dump(exclude_none=True) | (c.delta.model_extra or {}))
    got.finish()
    return got, usage, chunks


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("chain", ["cot", "sc3"])
def test_a_chain_answers_with_the_chosen_samples_thinking_and_exact_usage(
    chain: str, dialect: str
) -> None:
    with FaultUpstream(dialect=dialect) as up, ServerThread(serve_cfg(up)) as srv:
        resp = client(srv).chat.completions.create(model=f"ponder:{chain}", messages=MSG)
        with client(srv).chat.completions.create(
            model=f"ponder:{chain}",
            messages=MSG,
            stream=True,
            stream_options={"include_usage": True},
        ) as stream:
            streamed, s_usage, _ = read_stream(stream)
    first, second = up.log[0], up.log[-1]
    assert len(up.log) == 2 and first.n == (3 if chain == "sc3" else 1)
    msg = resp.choices[0].message
    # the majority's representative is sample 0: its thinking and answer
    assert extra(msg, "reasoning_content") == extra(msg, "reasoning") == first.thinking[0]
    assert msg.content == first.answers[0]
    answer = extract_answer(first.answers[0])
    assert resp.model_extra["ponder"]["answers"] == [answer]
    assert f"boxed{{{answer}}}" not in first.thinking[0]  # the thinking's decoy was not graded
    u = resp.usage
    assert u is not None and u.completion_tokens_details is not None
    assert (u.prompt_tokens, u.completion_tokens) == (first.prompt_tokens, first.completion_tokens)
    assert u.completion_tokens_details.reasoning_tokens == first.reasoning_tokens > 0
    # streamed: thinking deltas, then the answer, then the same usage
    assert (streamed.reasoning, streamed.text) == (second.thinking[0], second.answers[0])
    assert s_usage.completion_tokens == second.completion_tokens
    assert s_usage.completion_tokens_details.reasoning_tokens == second.reasoning_tokens


def test_settings_choose_the_fields_or_no_thinking() -> None:
    with FaultUpstream(dialect="reasoning_content") as up:
        with ServerThread(serve_cfg(up, reasoning={"fields": ["reasoning"]})) as srv:
            msg = client(srv).chat.completions.create(model="ponder:cot", messages=MSG)
            with client(srv).chat.completions.create(
                model="ponder:cot", messages=MSG, stream=True
            ) as stream:
                _, _, chunks = read_stream(stream)
        assert extra(msg.choices[0].message, "reasoning") == up.log[0].thinking[0]
        assert extra(msg.choices[0].message, "reasoning_content") is None
        deltas = [c.delta.model_extra or {} for p in chunks for c in p.choices]
        assert any("reasoning" in d for d in deltas)
        assert not any("reasoning_content" in d for d in deltas)
        with ServerThread(serve_cfg(up, reasoning={"chain_thinking": False})) as srv:
            resp = client(srv).chat.completions.create(model="ponder:cot", messages=MSG)
        m = resp.choices[0].message
        assert extra(m, "reasoning") is None and extra(m, "reasoning_content") is None
        assert m.content == up.log[-1].answers[0]
        assert resp.usage.completion_tokens_details.reasoning_tokens > 0  # still counted
    with pytest.raises(ConfigError):
        serve_cfg(up, reasoning={"fields": ["thinking"]})


def test_no_thinking_adds_no_fields() -> None:
    with FaultUpstream() as up, ServerThread(serve_cfg(up)) as srv:
        raw = httpx.post(
            f"{srv.base_url}/chat/completions",
            json={"model": "ponder:sc3", "messages": MSG},
            timeout=30,
        ).json()
    message = raw["choices"][0]["message"]
    assert set(message) == {"role", "content"}
    assert "completion_tokens_details" not in raw["usage"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_pass_through_relays_thinking_unchanged(dialect: str) -> None:
    with FaultUpstream(dialect=dialect) as up, ServerThread(serve_cfg(up)) as srv:
        resp = client(srv).chat.completions.create(model="m", messages=MSG)
        with client(srv).chat.completions.create(
            model="m", messages=MSG, stream=True, stream_options={"include_usage": True}
        ) as stream:
            markers = DEFAULT_MARKERS if dialect == "think" else None
            streamed, s_usage, _ = read_stream(stream, markers)
    first, second = up.log
    msg = resp.choices[0].message
    if dialect == "think":  # inline: the content as the upstream sent it
        assert msg.content.startswith("<think>") and msg.content.endswith(first.answers[0])
    else:
        assert extra(msg, dialect) == first.thinking[0] and msg.content == first.answers[0]
        other = "reasoning" if dialect == "reasoning_content" else "reasoning_content"
        assert extra(msg, other) is None
    assert resp.usage.completion_tokens_details.reasoning_tokens == first.reasoning_tokens
    assert (streamed.reasoning, streamed.text) == (second.thinking[0], second.answers[0])
    assert s_usage.completion_tokens_details.reasoning_tokens == second.reasoning_tokens


TOOLS = [{"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}]


def test_pass_through_converting_tools_streams_the_thinking_as_deltas() -> None:
    with FaultUpstream(dialect="reasoning_content") as up, ServerThread(serve_cfg(up)) as srv:
        stream = client(srv).chat.completions.create(
            model="m",
            messages=MSG,
            tools=TOOLS,  # type: ignore[arg-type]
            stream=True,
        )
        streamed, _, _ = read_stream(stream)
    [gen] = up.log
    assert gen.stream is False  # asked whole, to convert text tool calls, then streamed
    assert (streamed.reasoning, streamed.text) == (gen.thinking[0], gen.answers[0])


HISTORY = [
    {"role": "user", "content": "What is 1+1?"},
    {
        "role": "assistant",
        "content": "\\boxed{2}",
        "reasoning_content": "一加一",
        "reasoning": "一加一",
    },
    {"role": "user", "content": "And 2+2?"},
]


def test_earlier_turns_thinking_is_not_sent_upstream_unless_kept() -> None:
    with FaultUpstream(dialect="reasoning_content") as up:
        with ServerThread(serve_cfg(up)) as srv:
            c = client(srv)
            c.chat.completions.create(model="m", messages=HISTORY)  # type: ignore[arg-type]
            c.chat.completions.create(
                model="ponder:cot",
                messages=HISTORY,  # type: ignore[arg-type]
                tools=TOOLS,  # type: ignore[arg-type]
            )
        with ServerThread(serve_cfg(up, reasoning={"keep_history": True})) as srv:
            client(srv).chat.completions.create(model="m", messages=HISTORY)  # type: ignore[arg-type]
    passed, chained, kept = up.seen
    for body in (passed, chained):
        [turn] = [m for m in body["messages"] if m["role"] == "assistant"]
        assert turn == {"role": "assistant", "content": "\\boxed{2}"}
    assert kept["messages"] == HISTORY


# -- which thinking a chain's answer carries ----------------------------------------------------


def test_chosen_thinking_follows_the_aggregators_choice() -> None:
    a = Outcome(answer="4", text="A", data={"reasoning": "ta"})
    b = Outcome(answer="4", text="B", data={"reasoning": "tb"})
    assert chosen_thinking(a) == "ta"
    assert chosen_thinking(Outcome("4", "B", samples=[a, b], data={"chosen": 1})) == "tb"
    assert chosen_thinking(Outcome("4", "B", samples=[a, b])) == "tb"  # same text
    assert chosen_thinking(Outcome("4", "new text", samples=[a, b])) is None  # e.g. SSA's
    assert chosen_thinking(Outcome("4", "A", data={"reasoning": ""})) is None
    cfg = ReasoningConfig(fields=["reasoning"])
    assert thinking_fields("t", cfg) == {"reasoning": "t"}
    assert thinking_fields(None, cfg) == {}
    assert thinking_fields("t", ReasoningConfig(chain_thinking=False)) == {}
