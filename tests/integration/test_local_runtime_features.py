"""Every llama.cpp feature Ponder relies on, against the runtime that serves the suite.

The suite runs on the default runtime (the prebuilt xllamacpp wheel); CI reruns this file with
``PONDER_LOCAL_RUNTIME=native`` on the native build. Together with test_local_model.py and
test_summarize_tools_local.py (continuation) this covers n > 1, logprobs, /tokenize,
/apply-template, the prompt cache and which runtime is reported.
"""

from __future__ import annotations

import os

import pytest

from ponder.backends.local.runtime import RUNTIME_ENV, auto_order
from ponder.backends.openai_compat import OpenAICompatibleBackend
from ponder.protocol.requests import GenerationRequest, SamplingParams

pytestmark = pytest.mark.integration

LONG_SYSTEM = "You are a careful assistant. " * 40  # long enough that the cache matters


def _native_n_backend(local_backend) -> OpenAICompatibleBackend:
    server = local_backend.server
    return OpenAICompatibleBackend(
        base_url=server.base_url,
        model="local",
        api_key="x",
        n_mode="native",
        max_native_n=server.n_parallel,
        tokenize_url=f"{server.url}/tokenize",
    )


async def test_the_serving_runtime_is_the_one_asked_for(local_backend):
    info = local_backend.describe()
    wanted = os.environ.get(RUNTIME_ENV)
    expected = wanted if wanted in ("prebuilt", "native") else auto_order()[0]
    assert info["runtime"] == expected, info
    assert info["model"] == "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    assert local_backend.server.alive()


async def test_native_n_returns_n_choices_each_counted(local_backend):
    backend = _native_n_backend(local_backend)
    try:
        req = GenerationRequest(
            messages=({"role": "user", "content": "Name a random animal."},),
            params=SamplingParams(n=3, temperature=1.0, max_tokens=12, seed=11),
        )
        completion = await backend.generate(req)
    finally:
        await backend.aclose()
    assert len(completion.choices) == 3
    assert completion.calls == 1  # one request with n=3, served by three slots
    for choice in completion.choices:
        assert 0 < choice.completion_tokens <= 12
        assert abs(choice.completion_tokens - await local_backend.count_tokens(choice.text)) <= 1


async def test_logprobs_and_top_logprobs_per_token(local_backend):
    req = GenerationRequest(
        messages=({"role": "user", "content": "What is 2 + 2? Answer with one number."},),
        params=SamplingParams(max_tokens=6, logprobs=True, top_logprobs=3),
    )
    choice = (await local_backend.generate(req)).choices[0]
    assert choice.token_logprobs is not None and choice.top_logprobs is not None
    assert len(choice.token_logprobs) == choice.completion_tokens == len(choice.top_logprobs)
    assert all(lp <= 0.0 for lp in choice.token_logprobs)
    assert all(1 <= len(alts) <= 3 for alts in choice.top_logprobs)
    greedy_first = max(choice.top_logprobs[0].values())
    assert choice.token_logprobs[0] == pytest.approx(greedy_first, abs=1e-4)  # greedy = top-1


async def test_tokenize_counts_exactly(local_backend):
    assert await local_backend.count_tokens("hello world") == 2  # Qwen2.5: "hello", " world"


async def test_prompt_cache_reuse_is_reported(local_backend):
    msgs = (
        {"role": "system", "content": LONG_SYSTEM},
        {"role": "user", "content": "Say one word."},
    )
    req = GenerationRequest(messages=msgs, params=SamplingParams(max_tokens=2, seed=1))
    first = await local_backend.generate(req)
    second = await local_backend.generate(req)
    assert first.prompt_tokens == second.prompt_tokens > 200
    assert second.cached_prompt_tokens >= first.prompt_tokens - 8  # all but the last few reused
