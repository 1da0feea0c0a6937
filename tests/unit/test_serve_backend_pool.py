"""One backend per distinct backend config, shared by all chains and roles of a proxy
(``ponder.serve.backend_pool``), with counting fakes: built once, started once, closed once."""

from __future__ import annotations

import asyncio
from typing import Literal

import httpx
import pytest

from ponder.backends.base import Backend
from ponder.backends.fake import FakeBackend
from ponder.config import BackendConfig, LocalBackendConfig, OpenAIBackendConfig
from ponder.serve import ServeConfig, ServerThread
from ponder.serve.backend_pool import BackendPool, config_key
from ponder.serve.replica import REPLICA_HEADER

ANSWER = "The answer is \\boxed{4}."


class CountingBackend(FakeBackend):
    def __init__(self, tag: str) -> None:
        super().__init__(lambda request, i: ANSWER)
        self.tag = tag
        self.starts = 0
        self.closes = 0

    async def start(self) -> CountingBackend:
        self.starts += 1
        await asyncio.sleep(0.01)  # concurrent starters must still start it once
        return self

    async def aclose(self) -> None:
        self.closes += 1


BUILT: list[CountingBackend] = []


class CountingConfig(BackendConfig):
    """Test-only backend kind: each build is recorded in ``BUILT``."""

    __kind__ = "test_counting"
    kind: Literal["test_counting"] = "test_counting"
    tag: str = "x"
    n_parallel: int = 8

    def build(self) -> Backend:
        backend = CountingBackend(self.tag)
        BUILT.append(backend)
        return backend


@pytest.fixture(autouse=True)
def _fresh() -> None:
    BUILT.clear()


def test_equal_configs_share_a_key_and_any_difference_does_not():
    a = LocalBackendConfig.model_validate({"n_parallel": 4})
    assert config_key(a) == config_key(LocalBackendConfig.model_validate({"n_parallel": 4}))
    assert config_key(a) != config_key(LocalBackendConfig.model_validate({"n_parallel": 8}))
    assert config_key(a) != config_key(a.model_copy(update={"runtime": "native"}))
    assert config_key(a) != config_key(a.model_copy(update={"ctx_per_slot": 2048}))
    oa = OpenAIBackendConfig.model_validate({"base_url": "http://h/v1", "model": "m"})
    assert config_key(oa) != config_key(oa.model_copy(update={"model": "n"}))
    assert config_key(oa) != config_key(oa.model_copy(update={"base_url": "http://g/v1"}))


async def test_pool_builds_starts_and_closes_each_config_once():
    pool = BackendPool()
    x1, x2 = pool.acquire(CountingConfig(tag="x")), pool.acquire(CountingConfig(tag="x"))
    y = pool.acquire(CountingConfig(tag="y"))
    assert x1 is x2 and x1 is not y and len(pool) == 2 and len(BUILT) == 2
    await asyncio.gather(pool.start(x1), pool.start(x2), pool.start(y), pool.start(x1))
    assert [b.starts for b in BUILT] == [1, 1]
    await pool.release(x1)
    assert BUILT[0].closes == 0  # still held once
    await pool.release(x2)
    assert BUILT[0].closes == 1 and x1 not in pool
    await pool.aclose()
    await pool.aclose()
    assert [b.closes for b in BUILT] == [1, 1]


def sample_chain(roles: dict[str, object]) -> dict[str, object]:
    return {
        "strategy": {"name": "sample", "k": 2, "aggregator": {"name": "ssa", "max_tokens": 16}},
        "roles": roles,
    }


def test_chains_and_roles_on_one_config_share_one_backend_closed_once():
    cfg = ServeConfig.from_dict(
        {
            "upstream": {"kind": "test_counting", "tag": "x"},
            "chains": {
                "a": sample_chain({"aggregator": {"kind": "test_counting", "tag": "x"}}),
                "b": sample_chain({"aggregator": {"kind": "test_counting", "tag": "x"}}),
                "c": sample_chain({"aggregator": {"kind": "test_counting", "tag": "y"}}),
                "d": sample_chain({"aggregator": {"kind": "test_counting", "n_parallel": 2}}),
            },
        }
    )
    with ServerThread(cfg) as srv:
        for chain in ("a", "b", "c", "d"):
            r = httpx.post(
                f"{srv.base_url}/chat/completions",
                json={
                    "model": f"ponder:{chain}",
                    "messages": [{"role": "user", "content": "2+2?"}],
                },
                timeout=30,
            )
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == ANSWER
            assert REPLICA_HEADER not in r.headers  # an unnamed replica does not say its host
    # the upstream, a's and b's aggregator: one backend; c's and d's (other configs): their own
    roles = [sorted(r.role for r in b.requests) for b in BUILT]
    assert len(BUILT) == 3, roles
    # every chain's samples (one n=2 call each) and a's and b's aggregation on the shared one
    assert sorted(roles) == [["aggregator"], ["aggregator"], ["aggregator"] * 2 + ["default"] * 4]
    assert [b.starts for b in BUILT] == [1, 1, 1]
    assert [b.closes for b in BUILT] == [1, 1, 1]


def test_a_named_replica_says_so_on_every_answer(monkeypatch):
    monkeypatch.setenv("PONDER_REPLICA", "r-7")
    cfg = ServeConfig.from_dict(
        {"upstream": {"kind": "test_counting"}, "chains": {"cot": {"strategy": {"name": "cot"}}}}
    )
    with ServerThread(cfg) as srv:
        chat = httpx.post(
            f"{srv.base_url}/chat/completions",
            json={"model": "ponder:cot", "messages": [{"role": "user", "content": "2+2?"}]},
        )
        ready = httpx.get(f"{srv.base_url.removesuffix('/v1')}/ready")
    assert chat.status_code == 200 and chat.headers[REPLICA_HEADER] == "r-7"
    assert ready.headers[REPLICA_HEADER] == "r-7"
