"""The thinking format (``ponder.backends.thinking_format``): what is sent (the think-first system
prompt around the request's own, the ``<think>`` prefill), how the reply is read (it starts
inside the thinking), what is left alone, and the template checked when the config loads. The
backend path is checked over real HTTP with the loopback upstream: a prefilled continuation
comes back split, its thinking tokens counted by the tokenizer endpoint."""

from __future__ import annotations

import pytest

from ponder.backends.openai_compat import OpenAICompatibleBackend
from ponder.backends.thinking_format import ThinkingFormat
from ponder.config import ChainConfig
from ponder.errors import ConfigError, PromptError
from ponder.prompts import load_template
from ponder.protocol.requests import Choice, GenerationRequest, SamplingParams
from ponder.protocol.thinking import DEFAULT_MARKERS
from tests.unit.thinking_upstream import ThinkingUpstream

SYSTEM = {"role": "system", "content": "Solve it."}
USER = {"role": "user", "content": "What is 2+2?"}
FMT = ThinkingFormat(DEFAULT_MARKERS)


def test_a_fresh_request_gets_the_system_prompt_and_the_prefill() -> None:
    sent, split = FMT.request(GenerationRequest(messages=(SYSTEM, USER)))
    assert split and sent.assistant_prefix == "<think>\n"
    system, user = sent.messages or ()
    assert system["role"] == "system" and system["content"].startswith("Solve it.\n\n")
    assert "<think>" in system["content"] and "</think>" in system["content"]
    assert user == USER
    sent, _ = FMT.request(GenerationRequest(messages=(USER,)))  # no system prompt of its own
    assert sent.messages and sent.messages[0]["content"].startswith("Think before you answer.")


def test_continuations_raw_prompts_and_tools_keep_their_own_prefix() -> None:
    cont = GenerationRequest(messages=(SYSTEM, USER), assistant_prefix="<think>\nso\n</think>\n\n")
    sent, split = FMT.request(cont)
    assert not split and sent.assistant_prefix == cont.assistant_prefix
    assert sent.messages and "</think>" in sent.messages[0]["content"]  # the same system prompt
    raw = GenerationRequest(prompt="2+2=")
    assert FMT.request(raw) == (raw, False)
    tools = ({"type": "function", "function": {"name": "calc"}},)
    with_tools = GenerationRequest(messages=(USER,), tools=tools)
    assert FMT.request(with_tools) == (with_tools, False)


def test_the_reply_is_read_as_starting_inside_the_thinking() -> None:
    closed = Choice("add them: 4\n</think>\n\n\\boxed{4}", "stop", 9)
    cut = Choice("add them", "length", 2)
    FMT.split([closed, cut])
    assert (closed.reasoning, closed.text) == ("add them: 4", "\\boxed{4}")
    assert (cut.reasoning, cut.text) == ("add them", "")


def test_the_template_is_checked_when_the_config_loads(tmp_path) -> None:
    assert load_template("think_first_system", allowed={"system"}).variables == {"system"}
    bad = tmp_path / "bad.j2"
    bad.write_text("{{ system }} {{ question }}")
    ChainConfig.from_dict({"backend": {"kind": "local", "thinking_template": str(bad)}})  # off
    with pytest.raises(PromptError, match="question"):
        ChainConfig.from_dict(
            {"backend": {"kind": "local", "thinking": True, "thinking_template": str(bad)}}
        )
    cfg = ChainConfig.from_dict({"backend": {"kind": "local", "thinking": True}})
    assert cfg.backend.thinking is True  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as info:
        OpenAICompatibleBackend(base_url="http://127.0.0.1:9/v1", model="m", thinking_format=True)
    assert info.value.field == "backend.thinking" and "continuation" in str(info.value)


async def test_the_backend_sends_the_format_and_splits_the_continuation() -> None:
    with ThinkingUpstream([5]) as up:
        b = OpenAICompatibleBackend(
            base_url=f"{up.url}/v1",
            model="m",
            continuation="prefill",
            tokenize_url=f"{up.url}/tokenize",
            thinking_format=True,
        )
        req = GenerationRequest(messages=(SYSTEM, USER), params=SamplingParams(max_tokens=50))
        counted = await b.count_prompt_tokens(req)
        done = await b.generate(req)
        await b.aclose()
    [call] = up.log
    last = call.body["messages"][-1]
    assert last == {"role": "assistant", "content": "<think>\n"} and call.continued
    assert call.body["messages"][0]["content"].startswith("Solve it.")
    assert counted >= call.prompt_tokens  # the budget reserves the prompt as sent
    [ch] = done.choices  # "hmm0 … hmm4 </think> So 2 + 2 …": split, the thinking counted
    assert ch.reasoning == "hmm0 hmm1 hmm2 hmm3 hmm4" and ch.text.endswith("\\boxed{4}.")
    assert ch.reasoning_tokens == 5 and ch.completion_tokens == call.completion_tokens


async def test_in_process_vllm_continues_an_assistant_prefix(tmp_path) -> None:
    """Budget forcing on the in-process engine: the chat template rendered, the prefix after it
    (it used to be dropped: the continuation was a fresh answer)."""
    from ponder.backends.vllm_engine import VLLMBackend
    from tests.unit.test_vllm_adapter import FakeEngine, fake_api

    (tmp_path / "config.json").write_text("{}")
    engine = FakeEngine()
    b = VLLMBackend(tmp_path, quiet=True, api=fake_api(engine))
    req = GenerationRequest(messages=(USER,), assistant_prefix="<think>\nso\n</think>\n\n")
    done = await b.generate(req)
    assert "".join(map(chr, engine.calls[0][0])).endswith("<assistant><think>\nso\n</think>\n\n")
    assert done.prompt_tokens == await b.count_prompt_tokens(req)
    assert done.choices[0].reasoning is None  # a continuation is not split
    assert (await b.capabilities()).continuation is True
    await b.aclose()
