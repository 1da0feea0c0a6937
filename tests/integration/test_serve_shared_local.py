"""``ponder serve`` shares one backend per backend config: two chains, each sampling on the
upstream (role ``default``) and aggregating with SSA on a role backend (``aggregator``), all on
the same local model config, start ONE llama-server. Generations are kept tiny."""

from __future__ import annotations

import asyncio

import openai
import pytest

from ponder.backends.local.server import LlamaServer
from ponder.serve import ServeConfig, ServerThread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

LOCAL = {"kind": "local", "n_parallel": 4, "ctx_per_slot": 2048}
QUESTION = [{"role": "user", "content": "What is 2 + 2? Reply with only \\boxed{the number}."}]


def chain(k: int) -> dict[str, object]:
    return {
        "strategy": {
            "name": "sample",
            "k": k,
            "inner": {"name": "cot", "temperature": 0.7, "max_tokens": 48},
            "aggregator": {"name": "ssa", "max_tokens": 32},
        },
        "roles": {"aggregator": dict(LOCAL)},
    }


def test_two_chains_and_two_roles_on_the_local_model_start_one_llama_server(monkeypatch):
    started: list[LlamaServer] = []
    real_start = LlamaServer.start

    def counting_start(self: LlamaServer, *args: object, **kwargs: object) -> LlamaServer:
        server = real_start(self, *args, **kwargs)  # type: ignore[arg-type]
        started.append(self)  # only servers that really started (not a refused runtime)
        return server

    monkeypatch.setattr(LlamaServer, "start", counting_start)
    cfg = ServeConfig.from_dict({"upstream": dict(LOCAL), "chains": {"a": chain(2), "b": chain(3)}})
    with ServerThread(cfg) as srv:
        assert len(started) == 1  # the upstream and both chains' aggregators: one server
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="unused", max_retries=0)

        async def both() -> list[object]:
            return await asyncio.gather(
                *(
                    client.chat.completions.create(model=m, messages=QUESTION)
                    for m in ("ponder:a", "ponder:b")
                )
            )

        answers = asyncio.run(both())
        assert len(started) == 1
        for name, resp in zip("ab", answers, strict=True):
            extra = resp.model_extra["ponder"]  # type: ignore[attr-defined]
            assert extra["chain"] == name
            assert resp.usage.completion_tokens > 0  # type: ignore[attr-defined]
            calls = extra["usage_by_purpose"]
            assert sum(v["calls"] for v in calls.values()) >= 2, calls
        server = started[0]
        assert server.alive()
    assert not server.alive()  # closing the app closed the shared server (once)
