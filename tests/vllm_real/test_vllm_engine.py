"""The in-process vLLM backend against the real CPU engine and the converted default model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ponder.backends.vllm_engine import VLLMBackend
from ponder.backends.vllm_model import MARKER, check_converted, prepare_hf_model
from ponder.config import ChainConfig
from ponder.protocol.requests import GenerationRequest, SamplingParams

from .conftest import ENGINE_KW

pytestmark = pytest.mark.integration


def ask(question: str, **params: object) -> GenerationRequest:
    return GenerationRequest(
        messages=({"role": "user", "content": question},),
        params=SamplingParams(**params),  # type: ignore[arg-type]
    )


def test_conversion_is_verified_and_reused(vllm_model_dir: str) -> None:
    marker = json.loads((Path(vllm_model_dir) / MARKER).read_text())
    assert check_converted(Path(vllm_model_dir), marker["source_sha256"])
    assert any(name.endswith(".safetensors") for name in marker["files"])
    assert str(prepare_hf_model(quiet=True)) == vllm_model_dir  # second call: no conversion


async def test_chat_greedy(vllm_backend: VLLMBackend) -> None:
    req = ask("What is 2 + 3? Reply with only the number.", max_tokens=16)
    c = await vllm_backend.generate(req)
    assert "5" in c.text
    assert c.prompt_tokens == await vllm_backend.count_prompt_tokens(req) > 10
    assert 0 < c.choices[0].completion_tokens <= 16
    assert c.choices[0].finish_reason in ("stop", "length")


async def test_n8_with_seeds(vllm_backend: VLLMBackend) -> None:
    req = ask("Name a random fruit.", n=8, temperature=1.0, max_tokens=12, seed=1234)
    first = await vllm_backend.generate(req)
    assert len(first.choices) == 8
    assert [ch.seed for ch in first.choices] == list(range(1234, 1242))
    assert len({ch.text for ch in first.choices}) > 1  # sampled, not 8 copies
    again = await vllm_backend.generate(req)
    same = sum(a.text == b.text for a, b in zip(first.choices, again.choices, strict=True))
    assert same >= 6, [(a.text, b.text) for a, b in zip(first.choices, again.choices, strict=True)]


async def test_concurrent_long_seeded_prompts_keep_the_engine_alive(
    vllm_backend: VLLMBackend,
) -> None:
    """Several long seeded prompts at once: with chunked prefill the CPU worker died here
    ("CPU Generator does not use offset"); the CPU defaults prefill whole prompts."""
    filler = " ".join(f"item {i} costs {i % 7} dollars;" for i in range(120))
    reqs = [
        ask(f"{filler} Question {j}: what does item 3 cost?", n=4, temperature=0.8, max_tokens=4,
            seed=50 + j)
        for j in range(4)
    ]  # fmt: skip
    counts = [await vllm_backend.count_prompt_tokens(r) for r in reqs]
    assert min(counts) > 600, counts
    outs = await asyncio.gather(*(vllm_backend.generate(r) for r in reqs))
    assert [len(c.choices) for c in outs] == [4, 4, 4, 4]
    after = await vllm_backend.generate(ask("What is 2 + 3? Reply with only the number.",
                                            max_tokens=8))  # fmt: skip
    assert "5" in after.text


async def test_logprobs(vllm_backend: VLLMBackend) -> None:
    c = await vllm_backend.generate(ask("Say hello.", max_tokens=10, logprobs=True))
    lps = c.choices[0].token_logprobs
    assert lps is not None and len(lps) == c.choices[0].completion_tokens
    assert all(lp <= 0.0 for lp in lps)
    assert c.choices[0].mean_logprob is not None and c.choices[0].mean_logprob > -3.0


async def test_stop_string_on_raw_continuation(vllm_backend: VLLMBackend) -> None:
    req = GenerationRequest(
        prompt="Counting: 1, 2, 3, 4, 5,",
        params=SamplingParams(max_tokens=40, stop=(" 8",)),
    )
    c = await vllm_backend.generate(req)
    assert c.choices[0].finish_reason == "stop"
    assert "8" not in c.text and "6" in c.text


async def test_cancellation_aborts_and_engine_keeps_serving(vllm_backend: VLLMBackend) -> None:
    long = ask(
        "Write a long story about a lighthouse keeper.", max_tokens=200, temperature=0.7, seed=1
    )
    task = asyncio.create_task(vllm_backend.generate(long))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(vllm_backend.aborted) == 1
    engine = vllm_backend._shared.engine  # type: ignore[union-attr]
    for _ in range(50):
        if not engine.output_processor.has_unfinished_requests():
            break
        await asyncio.sleep(0.1)
    assert not engine.output_processor.has_unfinished_requests()
    c = await vllm_backend.generate(ask("What is 1 + 1? Reply with only the number.", max_tokens=8))
    assert "2" in c.text


async def test_chain_from_config_end_to_end(vllm_backend: VLLMBackend, vllm_model_dir: str) -> None:
    cfg = ChainConfig.from_dict(
        {
            "backend": {"kind": "vllm", "model": vllm_model_dir, **ENGINE_KW},
            "strategy": {"name": "cot", "max_tokens": 200},
        }
    )
    backends = cfg.build_backends()
    try:
        orch = cfg.build_orchestrator(backends)
        result = await orch.run(cfg.strategy, "Tom has 3 apples and buys 4 more. How many apples?")
    finally:
        for b in backends.values():
            await b.aclose()
    # same settings as the session fixture: the config's backend shared its engine (no reload)
    assert backends["default"].settings == vllm_backend.settings  # type: ignore[attr-defined]
    assert result.answer is not None and "7" in result.answer
    assert result.usage.completion_tokens > 0 and result.usage.calls == 1
