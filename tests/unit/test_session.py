"""The long-lived Session: backends started and closed once, per-run limits, one concurrency
limit across runs (and across the proxy's requests), one retry policy, used roles checked."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

import ponder
from ponder.backends.fake import FakeBackend
from ponder.config import ChainConfig, RetryConfig
from ponder.errors import ConfigError, PonderError, RunTimeout
from ponder.orchestrator.policy import RetryPolicy, RunLimits
from ponder.orchestrator.session import Session
from ponder.protocol import Completion, GenerationRequest
from ponder.serve import ServeConfig, ServerThread
from ponder.strategies.cot import ChainOfThought


class Peak(FakeBackend):
    """A FakeBackend that records how many calls were in flight at once, and its lifetime."""

    def __init__(self, delay_s: float = 0.05) -> None:
        super().__init__(lambda r, i: "so \\boxed{4}", delay_s=delay_s)
        self.now = 0
        self.peak = 0
        self.starts = 0
        self.closes = 0

    async def generate(self, request: GenerationRequest) -> Completion:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            return await super().generate(request)
        finally:
            self.now -= 1

    async def start(self) -> object:
        self.starts += 1
        return self

    async def aclose(self) -> None:
        self.closes += 1


async def test_backends_start_and_close_once_across_runs() -> None:
    backend = Peak(delay_s=0)
    async with Session(backend) as session:
        for _ in range(3):
            assert (await session.run(ChainOfThought(), "q")).answer == "4"
    assert (backend.starts, backend.closes) == (1, 1)


async def test_given_backends_are_started_but_not_closed() -> None:
    backend = Peak(delay_s=0)
    cfg = ChainConfig.from_dict({"strategy": {"name": "cot"}})
    async with cfg.session({"default": backend}) as session:
        await session.run(ChainOfThought(), "q")
    assert (backend.starts, backend.closes) == (1, 0)


async def test_limits_are_per_run() -> None:
    backend = Peak(delay_s=0.2)
    async with Session(backend) as session:
        with pytest.raises(RunTimeout) as exc:
            await session.run(ChainOfThought(), "q", limits=RunLimits(timeout_s=0.01))
        assert isinstance(exc.value, PonderError)
        assert (await session.run(ChainOfThought(), "q")).answer == "4"  # no limit by default
        tight = await session.run(ChainOfThought(), "q", limits=RunLimits(total_tokens=50))
    assert tight.budget_limited


async def test_one_concurrency_limit_across_runs() -> None:
    backend = Peak()
    async with Session(backend, max_concurrency=2) as session:
        await asyncio.gather(*(session.run(ChainOfThought(), "q") for _ in range(6)))
    assert backend.peak == 2


def test_retry_is_settable_in_a_chain_file(tmp_path) -> None:
    path = tmp_path / "chain.yaml"
    path.write_text(
        "backend: {kind: openai, model: m}\nretry: {max_attempts: 2, max_backoff_s: 1}\n"
    )
    cfg = ChainConfig.load(path)
    assert cfg.session().retry == RetryPolicy(max_attempts=2, max_backoff_s=1.0)
    assert RetryConfig().policy() == RetryPolicy()  # one default, the engine's


def test_a_role_the_strategy_never_uses_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as exc:
        ChainConfig.from_dict(
            {
                "strategy": {"name": "sample", "aggregator": {"name": "ssa"}},
                "roles": {"aggregater": {"kind": "openai"}},
            }
        )
    assert exc.value.field == "roles.aggregater"
    assert "aggregator, default" in exc.value.reason  # the roles it does use


def test_a_proxy_chain_role_the_strategy_never_uses_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as exc:
        ServeConfig.from_dict(
            {"chains": {"c": {"strategy": {"name": "cot"}, "roles": {"reward": {"kind": "local"}}}}}
        )
    assert exc.value.field == "chains.c.roles.reward" and "default" in exc.value.reason


def test_a_used_role_not_listed_still_goes_to_the_default_backend() -> None:
    cfg = ChainConfig.from_dict({"strategy": {"name": "sample", "aggregator": {"name": "ssa"}}})
    assert cfg.roles == {}


async def test_arun_runs_through_a_session() -> None:
    backend = Peak(delay_s=0)
    result = await ponder.arun("q", strategy=ChainOfThought(), backends=backend)
    assert result.answer == "4" and (backend.starts, backend.closes) == (1, 0)


def test_the_proxy_concurrency_limit_holds_across_requests() -> None:
    backend = Peak()
    cfg = ServeConfig.from_dict(
        {
            "upstream": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
            "chains": {"cot": {"strategy": {"name": "cot"}, "max_concurrency": 2}},
        }
    )

    async def many(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            body = {"model": "ponder:cot", "messages": [{"role": "user", "content": "q"}]}
            rs = await asyncio.gather(
                *(http.post("/chat/completions", json=body) for _ in range(6))
            )
        return [r.status_code for r in rs]

    with ServerThread(cfg, backend=backend) as srv:
        codes = asyncio.run(many(srv.base_url))
    assert codes == [200] * 6, json.dumps(codes)
    assert backend.peak == 2  # one limit for the chain, not one per request


async def test_what_each_role_reported_it_can_do_is_in_the_result() -> None:
    async with Session(Peak(delay_s=0)) as session:
        result = await session.run(ChainOfThought(), "q")
    caps = result.backends["default"]["capabilities"]
    assert caps["native_n"] is True and caps["exact_token_count"] is True
    [end] = result.trace.of_type("run_end")
    assert end["backends"]["default"]["capabilities"] == caps
