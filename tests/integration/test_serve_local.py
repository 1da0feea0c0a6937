"""``ponder serve`` in front of the real llama-server, driven by the official openai client."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from ponder.orchestrator.trace import read_trace
from ponder.serve import ServeConfig, ServerThread
from tests.unit.serve_helpers import PickLongest  # noqa: F401  (registers test_pick_longest)

pytestmark = pytest.mark.integration

QUESTION = [{"role": "user", "content": "What is 12 + 30?"}]


@pytest.fixture(scope="module")
def proxy(local_backend, tmp_path_factory):
    trace_dir = tmp_path_factory.mktemp("traces")
    cfg = ServeConfig.from_dict(
        {
            "upstream": {
                "kind": "openai",
                "base_url": local_backend.server.base_url,
                "model": "local",
            },
            "chains": {
                "cot": {"strategy": {"name": "cot", "max_tokens": 160}},
                "pick3": {"strategy": {"name": "test_pick_longest", "max_tokens": 40}},
            },
            "trace_dir": str(trace_dir),
            "keepalive_s": 0.5,
        }
    )
    with ServerThread(cfg) as srv:
        yield srv, trace_dir


def sync_client(srv):
    return openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0)


def async_client(srv):
    return openai.AsyncOpenAI(base_url=srv.base_url, api_key="unused", max_retries=0)


async def test_sync_chain_answers_and_counts_every_upstream_token(proxy):
    srv, trace_dir = proxy
    raw = await asyncio.to_thread(
        sync_client(srv).chat.completions.with_raw_response.create,
        model="ponder:pick3/local",
        messages=QUESTION,
    )
    resp = raw.parse()
    run_id = raw.headers["x-ponder-trace-id"]
    events = read_trace(trace_dir / f"{run_id}.jsonl")
    done = [e for e in events if e["type"] == "completion"]
    assert len(done) == 3
    assert resp.usage.prompt_tokens == sum(e["prompt_tokens"] for e in done)
    assert resp.usage.completion_tokens == sum(e["completion_tokens"] for e in done)
    # three identical prompts, each counted by llama-server itself
    assert len({e["prompt_tokens"] for e in done}) == 1 and done[0]["prompt_tokens"] > 0
    assert resp.choices[0].message.content in [e["choices"][0]["text"] for e in done]


async def test_async_chain_streams_the_answer(proxy):
    srv, _ = proxy
    stream = await async_client(srv).chat.completions.create(
        model="ponder:cot", messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "42" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].model_extra["ponder"]["answers"] == ["42"]


async def test_sync_chain_non_streaming_cot(proxy):
    srv, _ = proxy
    resp = await asyncio.to_thread(
        sync_client(srv).chat.completions.create, model="ponder:cot", messages=QUESTION
    )
    assert resp.model_extra["ponder"]["answers"] == ["42"]
    assert resp.choices[0].finish_reason == "stop"
    assert 0 < resp.usage.completion_tokens <= 160


async def test_passthrough_sync_and_streaming_match_the_upstream(proxy, local_backend):
    srv, _ = proxy
    direct = openai.OpenAI(base_url=local_backend.server.base_url, api_key="x", max_retries=0)
    kw = {"model": "local", "messages": QUESTION, "max_tokens": 12, "temperature": 0}
    via = await asyncio.to_thread(sync_client(srv).chat.completions.create, **kw)
    ref = await asyncio.to_thread(direct.chat.completions.create, **kw)
    assert via.usage.prompt_tokens == ref.usage.prompt_tokens
    assert via.usage.completion_tokens <= 12 and via.choices[0].message.content
    stream = await async_client(srv).chat.completions.create(stream=True, **kw)
    pieces = [
        c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) >= 2  # the upstream's own token-by-token stream, relayed


async def test_concurrent_passthrough_clients_nothing_lost(proxy):
    srv, _ = proxy
    client = async_client(srv)
    prompts = [f"Say the number {i}." for i in range(12)]
    resps = await asyncio.gather(
        *(
            client.chat.completions.create(
                model="local", messages=[{"role": "user", "content": p}], max_tokens=8
            )
            for p in prompts
        )
    )
    assert len(resps) == 12 and all(r.choices[0].message.content for r in resps)
    assert len({r.id for r in resps}) == 12
    json.dumps([r.model_dump() for r in resps])  # every answer is well-formed
