"""The OpenAI-compatible backend against small real HTTP servers started on loopback."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ponder import ChainOfThought, Orchestrator
from ponder.backends import OpenAICompatibleBackend
from ponder.backends.local.server import free_port
from ponder.errors import (
    AuthenticationFailed,
    BadRequestError,
    EndpointUnreachable,
    UpstreamServerError,
)
from ponder.orchestrator import RetryPolicy
from ponder.protocol.requests import GenerationRequest, SamplingParams

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.001, max_backoff_s=0.002, jitter_s=0)

Handler = Callable[[dict], tuple[int, dict]]


def chat_response(texts: list[str], completion_tokens: int = 5) -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
            for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": completion_tokens, "total_tokens": 16},
    }


@pytest.fixture
def upstream(rm) -> Callable[[Handler], tuple[str, list[dict]]]:
    """``upstream(handler)`` -> (base URL ending in /v1, bodies seen, each with ``_auth``)."""

    def start(handler: Handler) -> tuple[str, list[dict]]:
        seen: list[dict] = []

        def reply(body: dict, path: str, n: int) -> tuple[int, dict]:
            headers = {k.lower(): v for k, v in server.headers[n - 1].items()}
            seen.append({**body, "_auth": headers.get("authorization")})
            return handler(body)

        server = rm(reply)
        return f"{server.url}/v1", seen

    return start


def _req(n: int = 1) -> GenerationRequest:
    return GenerationRequest(
        messages=({"role": "user", "content": "hi"},),
        params=SamplingParams(n=n, max_tokens=8, seed=1),
    )


async def test_unreachable_endpoint_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAICompatibleBackend(base_url=url, model="m")
    with pytest.raises(EndpointUnreachable, match=url.replace(".", r"\.")):
        await Orchestrator(backend, retry=FAST_RETRY).run(ChainOfThought(), "q")


async def test_wrong_key_is_401_not_retried(upstream):
    url, seen = upstream(lambda body: (401, {"error": {"message": "Incorrect API key"}}))
    backend = OpenAICompatibleBackend(base_url=url, model="m", api_key="sk-wrong")
    with pytest.raises(AuthenticationFailed, match="Incorrect API key"):
        await Orchestrator(backend, retry=FAST_RETRY).run(ChainOfThought(), "q")
    assert len(seen) == 1
    assert seen[0]["_auth"] == "Bearer sk-wrong"


async def test_5xx_is_retried_by_the_orchestrator_only(upstream):
    url, seen = upstream(lambda body: (503, {"error": {"message": "overloaded"}}))
    backend = OpenAICompatibleBackend(base_url=url, model="m")
    with pytest.raises(UpstreamServerError):
        await Orchestrator(backend, retry=FAST_RETRY).run(ChainOfThought(), "q")
    assert len(seen) == 3  # our policy's 3 attempts; the SDK's own retries are off


async def test_native_n_refused_falls_back_to_fanout_with_seeds(upstream):
    def handler(body: dict) -> tuple[int, dict]:
        if body.get("n", 1) > 1:
            return 400, {"error": {"message": "n > 1 not supported"}}
        return 200, chat_response([f"seed {body['seed']}"], completion_tokens=3)

    url, seen = upstream(handler)
    backend = OpenAICompatibleBackend(base_url=url, model="m")
    completion = await backend.generate(_req(n=3))
    assert [c.text for c in completion.choices] == ["seed 1", "seed 2", "seed 3"]
    assert completion.calls == 3 and completion.prompt_tokens == 33
    assert completion.completion_tokens == 9
    await backend.generate(_req(n=2))
    assert sum(1 for b in seen if b.get("n", 1) > 1) == 1  # refusal remembered


async def test_native_n_counts_tokens_per_choice(upstream):
    # llama.cpp-style: usage.completion_tokens covers only one choice
    url, _ = upstream(
        lambda body: (200, chat_response(["a b c", "d e f g h"], completion_tokens=3))
    )
    backend = OpenAICompatibleBackend(base_url=url, model="m", n_mode="native")
    completion = await backend.generate(_req(n=2))
    assert completion.calls == 1
    assert [c.completion_tokens for c in completion.choices][0] >= 1
    assert completion.completion_tokens > 3


async def test_bad_request_is_not_retried(upstream):
    url, seen = upstream(lambda body: (422, {"error": {"message": "max_tokens too large"}}))
    with pytest.raises(BadRequestError, match="max_tokens too large"):
        await Orchestrator(OpenAICompatibleBackend(base_url=url, model="m"), retry=FAST_RETRY).run(
            ChainOfThought(), "q"
        )
    assert len(seen) == 1


def test_missing_model_is_a_config_error(monkeypatch):
    from ponder.errors import ConfigError

    monkeypatch.delenv("PONDER_MODEL", raising=False)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    with pytest.raises(ConfigError, match="backend.model"):
        OpenAICompatibleBackend(base_url="http://x/v1")


async def test_tokenize_url_gives_exact_counts_per_choice_from_a_vllm_style_tokenizer(upstream):
    """vLLM's ``/tokenize`` reads ``prompt`` (llama.cpp's reads ``content``); usage for n > 1 is
    not split per choice, so each choice is counted there."""

    def handler(body: dict) -> tuple[int, dict]:
        if body["_path"] == "/tokenize":
            if "prompt" not in body:
                return 422, {"detail": "prompt: field required"}
            ids = list(range(len(body["prompt"].split())))
            return 200, {"count": len(ids), "max_model_len": 2048, "tokens": ids}
        return 200, chat_response(["a b c", "d e f g h"], completion_tokens=8)

    url, seen = upstream(handler)
    backend = OpenAICompatibleBackend(
        base_url=url, model="m", n_mode="native", tokenize_url=url.removesuffix("/v1") + "/tokenize"
    )
    completion = await backend.generate(_req(n=2))
    assert [c.completion_tokens for c in completion.choices] == [3, 5]
    tok = [b for b in seen if b["_path"] == "/tokenize"]
    assert tok and tok[0]["add_special_tokens"] is False and tok[0]["model"] == "m"
    assert (await backend.capabilities()).exact_token_count
