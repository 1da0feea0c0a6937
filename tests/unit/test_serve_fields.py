"""What a chain does with each field of a chat request: ``stop`` on every call, ``response_format``
on ``cot``'s one call, and a 400 naming the field or content part for what a chain cannot honour
(never a 200 that silently dropped it). The official ``openai`` client through a real
``ponder serve``, against the fault-injecting upstream, which cuts replies at ``stop`` and logs
what each call asked."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from ponder.serve import ServeConfig, ServerThread
from tests.unit.fault_upstream import FaultUpstream

KEY = "sk-upstream-fields-1234567890"
INNER = {"name": "cot", "temperature": 0.7, "max_tokens": 200}
CHAINS = {
    "cot": {"strategy": {"name": "cot", "max_tokens": 200}},
    "sc4": {"strategy": {"name": "sample", "k": 4, "seed": 0, "inner": INNER}},
    "ssa3": {
        "strategy": {
            "name": "sample",
            "k": 3,
            "seed": 0,
            "inner": INNER,
            "aggregator": {"name": "ssa", "max_tokens": 100},
        }
    },
}
MSG = [{"role": "user", "content": "What is 2+2?"}]
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


@pytest.fixture(scope="module")
def proxy():
    mp = pytest.MonkeyPatch()
    mp.setenv("PONDER_TEST_FIELDS_KEY", KEY)
    with FaultUpstream() as up:
        cfg = ServeConfig.from_dict(
            {
                "upstream": {
                    "kind": "openai",
                    "base_url": up.base_url,
                    "model": "m",
                    "api_key_env": "PONDER_TEST_FIELDS_KEY",
                    "timeout_s": 5.0,
                },
                "chains": CHAINS,
            }
        )
        with ServerThread(cfg) as srv:
            yield srv, up
    mp.undo()


def client(srv: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)


def refused(srv: ServerThread, up: FaultUpstream, **kw: Any) -> dict[str, Any]:
    """The error body of a request the proxy must refuse before calling the upstream."""
    calls = len(up.log)
    with pytest.raises(openai.BadRequestError) as exc:
        client(srv).chat.completions.create(**kw)
    assert len(up.log) == calls, "a refused request reached the upstream"
    body = exc.value.body
    assert isinstance(body, dict)
    return body


@pytest.mark.parametrize(
    "messages,param,part",
    [
        (
            [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}],
            "messages[0].content[1]",
            "image_url",
        ),
        (
            [{"role": "user", "content": [AUDIO, {"type": "text", "text": "Transcribe it."}]}],
            "messages[0].content[0]",
            "input_audio",
        ),
        ([{"role": "system", "content": [IMAGE]}, *MSG], "messages[0].content[0]", "image_url"),
        (
            [
                {"role": "user", "content": [IMAGE]},
                {"role": "assistant", "content": "A cat."},
                *MSG,
            ],
            "messages[0].content[0]",
            "image_url",
        ),
    ],
    ids=["image", "audio", "system-image", "earlier-turn-image"],
)
@pytest.mark.parametrize("chain", ["cot", "sc4"])
def test_content_a_chain_cannot_read_is_a_400_naming_the_part(proxy, chain, messages, param, part):
    srv, up = proxy
    body = refused(srv, up, model=f"ponder:{chain}", messages=messages)
    assert body["code"] == "unsupported_content", body
    assert body["param"] == param and part in body["message"], body


@pytest.mark.parametrize(
    "chain,fields,param",
    [
        ("cot", {"logit_bias": {"50256": -100}}, "logit_bias"),
        ("sc4", {"logit_bias": {"50256": -100}}, "logit_bias"),
        ("sc4", {"response_format": {"type": "json_object"}}, "response_format"),
        ("ssa3", {"response_format": {"type": "json_object"}}, "response_format"),
        ("cot", {"logprobs": True}, "logprobs"),
        ("cot", {"presence_penalty": 0.5}, "presence_penalty"),
        ("sc4", {"frequency_penalty": 1.0}, "frequency_penalty"),
        ("cot", {"modalities": ["text", "audio"]}, "modalities"),
        ("cot", {"stop": 7}, "stop"),
    ],
)
def test_a_field_a_chain_cannot_honour_is_a_400_naming_it(proxy, chain, fields, param):
    srv, up = proxy
    body = refused(srv, up, model=f"ponder:{chain}", messages=MSG, extra_body=fields)
    assert body["param"] == param, body
    assert body["code"] == ("unsupported_parameter" if param != "stop" else None), body


@pytest.mark.parametrize(
    "fields",
    [
        {"logit_bias": {}, "presence_penalty": 0, "frequency_penalty": 0.0, "logprobs": False},
        {"response_format": {"type": "text"}, "modalities": ["text"]},
        {"user": "u-1", "metadata": {"k": "v"}, "store": False},
    ],
    ids=["neutral-values", "text-format", "informational"],
)
def test_neutral_and_informational_fields_are_accepted(proxy, fields):
    srv, _ = proxy
    out = client(srv).chat.completions.create(model="ponder:sc4", messages=MSG, extra_body=fields)
    assert out.choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("chain", ["cot", "sc4", "ssa3"])
def test_stop_is_honoured_on_every_call_of_a_chain(proxy, chain, stream):
    srv, up = proxy
    first = len(up.log)
    c = client(srv)
    if stream:
        text = "".join(
            ch.choices[0].delta.content or ""
            for ch in c.chat.completions.create(
                model=f"ponder:{chain}", messages=MSG, stop=["."], stream=True
            )
            if ch.choices
        )
    else:
        out = c.chat.completions.create(model=f"ponder:{chain}", messages=MSG, stop=["."])
        text = out.choices[0].message.content or ""
        assert out.choices[0].finish_reason == "stop"
    calls = up.log[first:]
    assert calls and all(g.stop == (".",) for g in calls), [(g.stop, g.n) for g in calls]
    if chain == "ssa3":
        assert len(calls) == 2  # the samples' call and the aggregator's: both cut
    assert text and "." not in text, text


def test_response_format_reaches_cots_one_call(proxy):
    srv, up = proxy
    fmt = {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": {"type": "object", "properties": {"answer": {"type": "integer"}}},
        },
    }
    first = len(up.log)
    out = client(srv).chat.completions.create(
        model="ponder:cot",
        messages=MSG,
        response_format=fmt,  # type: ignore[arg-type]
    )
    assert out.choices[0].message.content
    [call] = up.log[first:]
    assert call.response_format == fmt
