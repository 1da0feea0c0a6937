"""``ponder serve`` loses no work (issue 29, "Failures that lose work"): a DRR feedback chain
keeps its finished answer when a later feedback call fails; a chain whose strategies need a
capability the upstream lacks is refused at startup; pass-through requests are drained like
chains and cancelled upstream when their client leaves; trace files rotate under a cap; load
balancers get ``HEAD /health`` and ``/ready``. Real HTTP, the official ``openai`` client, loopback
upstreams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from ponder.serve import ServeConfig, ServerThread
from tests.unit.drr_helpers import agree_dm, manifest

REPLY = "Two and two make four. The answer is \\boxed{4}."


def ok(text: str = REPLY) -> dict[str, Any]:
    return {
        "id": "chatcmpl-loop",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def upstream_cfg(base_url: str, **kw: Any) -> dict[str, Any]:
    return {"kind": "openai", "base_url": base_url, "model": "m", "timeout_s": 5, **kw}


@pytest.fixture
def dm_path(tmp_path: Path) -> str:
    return str(agree_dm(manifest(probe_every=4, max_tokens=12, k=4)).save(tmp_path / "dm.json"))


def feedback_chain(dm_path: str) -> dict[str, Any]:
    # the DM scores a lone final answer 0.12, so the judge always asks for a re-examination
    return {
        "strategy": {
            "name": "drr_feedback",
            "dm": dm_path,
            "threshold": 0.5,
            "rounds": 2,
            "probe_every": 4,
            "max_tokens": 12,
        },
        "retry": {"max_attempts": 2, "initial_backoff_s": 0.01, "max_backoff_s": 0.02},
    }


def test_drr_feedback_keeps_its_answer_when_a_later_feedback_call_fails(rm, dm_path):
    def upstream(body: dict[str, Any], path: str, n: int) -> tuple[int, dict[str, Any]]:
        if any("Re-examine" in str(m.get("content")) for m in body["messages"]):
            return 500, {"error": {"message": "upstream exploded"}}
        return 200, ok()

    up = rm(upstream)
    cfg = ServeConfig.from_dict(
        {
            "upstream": upstream_cfg(f"{up.url}/v1", continuation="prefill"),
            "chains": {"fb": feedback_chain(dm_path)},
        }
    )
    with ServerThread(cfg) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        r = c.chat.completions.create(
            model="ponder:fb", messages=[{"role": "user", "content": "What is 2+2?"}]
        )
    assert any("Re-examine" in str(m.get("content")) for b in up.seen for m in b["messages"])
    assert r.choices[0].message.content and "\\boxed{4}" in r.choices[0].message.content
    extra = r.model_extra or {}
    assert extra["ponder"]["answers"] == ["4"]
    assert extra["ponder"]["failed_calls"] >= 1  # the failed feedback round shows
