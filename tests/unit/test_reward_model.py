"""The ``reward_model`` scorer against a real loopback server speaking vLLM's pooling wire format.

The server scores a conversation by whether the assistant turn states the right answer (``9``):
a deliberately simple "reward model" whose preferences the tests can predict.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ponder import ChainConfig, FakeBackend, Orchestrator
from ponder.aggregator import BestOfN, Scorer, build_aggregator
from ponder.backends import RewardModelBackend
from ponder.backends.local.server import free_port
from ponder.errors import (
    AuthenticationFailed,
    CapabilityMissing,
    ConfigError,
    EndpointUnreachable,
    UpstreamServerError,
)
from ponder.evaluation.offline import Replay
from ponder.orchestrator import RetryPolicy
from ponder.protocol.actions import Outcome
from tests.unit.loopback import Reply

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.001, max_backoff_s=0.002, jitter_s=0)
RIGHT = "\\boxed{9}"


def reward_of(body: dict[str, Any]) -> float:
    """The toy reward model: high for the right answer, low otherwise."""
    return 2.0 if RIGHT in body["messages"][-1]["content"] else 0.5


def pooling_reply(score: float, per_token: bool = False) -> dict[str, Any]:
    data: Any = [[0.0], [0.1], [score]] if per_token else [score]
    return {
        "id": "pool-1",
        "object": "list",
        "created": 0,
        "model": "toy-rm",
        "data": [{"index": 0, "object": "pooling", "data": data}],
        "usage": {"prompt_tokens": 7, "total_tokens": 7, "completion_tokens": 0},
    }


def classify_reply(score: float) -> dict[str, Any]:
    p = score / 2.0
    item = {"index": 0, "label": "LABEL_1", "probs": [1 - p, p], "num_classes": 2}
    return {"id": "classify-1", "object": "list", "created": 0, "model": "toy-rm", "data": [item]}


def vllm_pooling(body: dict[str, Any], path: str, n: int) -> Reply:
    if path != "/pooling":
        return 404, {"detail": "Not Found"}
    return 200, pooling_reply(reward_of(body))


def candidates(*answers: str | None) -> tuple[Outcome, ...]:
    return tuple(
        Outcome(answer=a, text=f"Reasoning {i}. \\boxed{{{a}}}" if a else f"Reasoning {i}.")
        for i, a in enumerate(answers)
    )


def best_of_n_replay(*answers: str | None, **scorer: Any) -> Replay:
    agg = build_aggregator({"name": "best_of_n", "scorer": {"kind": "reward_model", **scorer}})
    return Replay(aggregator=agg, samples=candidates(*answers))


async def test_best_of_n_picks_the_highest_reward_from_a_yaml_chain(rm, tmp_path: Path) -> None:
    server = rm(vllm_pooling)
    cfg = tmp_path / "chain.yaml"
    cfg.write_text(
        f"""
backend: {{kind: openai, base_url: "http://127.0.0.1:1/v1", model: sampler}}
roles:
  reward: {{kind: reward_model, base_url: "{server.url}", model: toy-rm, api_format: vllm_pooling}}
strategy:
  name: sample
  k: 4
  seed: 1
  inner: {{name: cot, temperature: 0.7}}
  aggregator: {{name: best_of_n, scorer: {{kind: reward_model}}}}
"""
    )
    chain = ChainConfig.load(cfg)
    assert chain.strategy.roles() == {"default", "reward"}
    sampler = FakeBackend(
        ["It is \\boxed{5}.", "It is \\boxed{5}.", f"Careful: {RIGHT}.", "I cannot tell."]
    )
    backends = {"default": sampler, "reward": chain.roles["reward"].build()}
    orch = chain.build_orchestrator(backends)
    try:
        result = await orch.run(chain.strategy, "What is 4 + 5?")
    finally:
        await backends["reward"].aclose()

    assert result.answer == "9"  # majority would say 5; the reward model prefers 9
    assert result.outcome.data["scores"] == [0.5, 0.5, 2.0, None]  # unanswered: no score
    assert len(server.seen) == 3  # the unanswered candidate is never sent
    first = server.seen[0]
    assert first["_path"] == "/pooling" and first["model"] == "toy-rm"
    assert first["messages"][0] == {"role": "user", "content": "What is 4 + 5?"}
    assert first["messages"][1]["role"] == "assistant"
    assert result.usage.by_purpose["score"].calls == 3
    assert result.usage.by_purpose["score"].prompt_tokens == 21  # the server's usage, 7 each
    assert sorted(e["score"] for e in result.trace.of_type("reward")) == [0.5, 0.5, 2.0]


async def test_weighted_vote_by_reward_scores_overrules_the_majority(rm) -> None:
    server = rm(vllm_pooling)
    agg = build_aggregator({"name": "weighted", "by": "score", "scorer": {"kind": "reward_model"}})
    assert agg.roles() == {"reward"}
    strat = Replay(aggregator=agg, samples=candidates("5", "5", "9"))
    reward = RewardModelBackend(base_url=server.url)
    result = await Orchestrator({"default": FakeBackend([]), "reward": reward}).run(strat, "q")
    await reward.aclose()
    assert result.answer == "9"  # 2.0 > 0.5 + 0.5
    assert result.outcome.data["votes"] == {"5": 1.0, "9": 2.0}
    assert "model" not in server.seen[0]  # no model configured: the server's own is used


@pytest.mark.parametrize(
    ("api_format", "reply", "path", "expected"),
    [
        ("vllm_pooling", lambda s: pooling_reply(s, per_token=True), "/pooling", [0.5, 2.0]),
        ("vllm_classify", classify_reply, "/classify", [0.25, 1.0]),
    ],
)
async def test_wire_formats_and_system_message(rm, api_format, reply, path, expected) -> None:
    server = rm(lambda body, p, n: (200, reply(reward_of(body))))
    reward = RewardModelBackend(base_url=server.url + "/", api_format=api_format)
    strat = best_of_n_replay("5", "9", system="Judge the solution.")
    result = await Orchestrator({"default": FakeBackend([]), "reward": reward}).run(strat, "q")
    await reward.aclose()
    assert result.answer == "9"
    assert result.outcome.data["scores"] == pytest.approx(expected)
    assert {b["_path"] for b in server.seen} == {path}
    assert server.seen[0]["messages"][0] == {"role": "system", "content": "Judge the solution."}


async def test_a_500_is_retried_and_then_surfaces_translated(rm) -> None:
    server = rm(lambda body, p, n: (500, {"error": {"message": "rm exploded"}}))
    reward = RewardModelBackend(base_url=server.url)
    orch = Orchestrator({"default": FakeBackend([]), "reward": reward}, retry=FAST_RETRY)
    with pytest.raises(UpstreamServerError) as exc:
        await orch.run(best_of_n_replay("5", "9"), "q")
    await reward.aclose()
    assert exc.value.status == 500 and exc.value.url == f"{server.url}/pooling"
    assert f"{server.url}/pooling" in str(exc.value) and "rm exploded" in str(exc.value)
    assert len(server.seen) == 2 * FAST_RETRY.max_attempts  # every candidate, every attempt


async def test_a_transient_500_is_retried_to_success(rm) -> None:
    server = rm(lambda body, p, n: (503, {}) if n == 1 else vllm_pooling(body, p, n))
    reward = RewardModelBackend(base_url=server.url)
    orch = Orchestrator({"default": FakeBackend([]), "reward": reward}, retry=FAST_RETRY)
    result = await orch.run(best_of_n_replay("9", "5"), "q")
    await reward.aclose()
    assert result.answer == "9"
    assert result.outcome.data["scores"] == [2.0, 0.5]
    assert len(result.trace.of_type("retry")) == 1 and len(server.seen) == 3


async def test_one_refused_candidate_is_unscored_and_the_rest_still_decide(rm) -> None:
    def handler(body: dict[str, Any], path: str, n: int) -> Reply:
        if RIGHT in body["messages"][-1]["content"]:
            return 400, {"error": {"message": "too long"}}
        return vllm_pooling(body, path, n)

    reward = RewardModelBackend(base_url=rm(handler).url)
    orch = Orchestrator({"default": FakeBackend([]), "reward": reward}, retry=FAST_RETRY)
    result = await orch.run(best_of_n_replay("9", "5"), "q")
    await reward.aclose()
    assert result.answer == "5"  # the refused candidate never wins
    assert result.outcome.data["scores"] == [None, 0.5]
    [failure] = result.trace.of_type("failure")
    assert "BadRequestError" in failure["error"] and "too long" in failure["error"]
    assert result.usage.failed_calls == 1


async def test_unreachable_reward_model_error_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    reward = RewardModelBackend(base_url=url)
    orch = Orchestrator({"default": FakeBackend([]), "reward": reward}, retry=FAST_RETRY)
    with pytest.raises(EndpointUnreachable) as exc:
        await orch.run(best_of_n_replay("5", "9"), "q")
    await reward.aclose()
    assert f"{url}/pooling" in str(exc.value) and exc.value.url == f"{url}/pooling"


async def test_api_key_is_sent_and_never_echoed_and_401_is_not_retried(rm, monkeypatch) -> None:
    secret = "rm-SECRET-key-123"
    monkeypatch.setenv("RM_KEY", secret)
    server = rm(lambda body, p, n: (401, {"error": {"message": f"bad key {secret}"}}))
    chain = ChainConfig.from_dict(
        {
            "strategy": {  # a chain that uses the role (an unused one is a config error)
                "name": "sample",
                "aggregator": {"name": "best_of_n", "scorer": {"kind": "reward_model"}},
            },
            "roles": {
                "reward": {"kind": "reward_model", "base_url": server.url, "api_key_env": "RM_KEY"}
            },
        }
    )
    reward = chain.roles["reward"].build()
    orch = Orchestrator({"default": FakeBackend([]), "reward": reward}, retry=FAST_RETRY)
    with pytest.raises(AuthenticationFailed) as exc:
        await orch.run(best_of_n_replay("9"), "q")
    await reward.aclose()
    assert server.headers[0]["Authorization"] == f"Bearer {secret}"
    assert secret not in str(exc.value) and "[redacted]" in str(exc.value)
    assert len(server.seen) == 1


async def test_no_reward_backend_for_the_role_is_a_clear_error() -> None:
    orch = Orchestrator(FakeBackend([]), retry=FAST_RETRY)
    with pytest.raises(CapabilityMissing, match="lacks capability 'reward'.*kind: reward_model"):
        await orch.run(best_of_n_replay("5", "9"), "q")


async def test_reward_calls_obey_the_budget(rm) -> None:
    server = rm(vllm_pooling)
    reward = RewardModelBackend(base_url=server.url)
    orch = Orchestrator({"default": FakeBackend([]), "reward": reward}, budget_tokens=3)
    result = await orch.run(best_of_n_replay("5", "5", "9"), "q")
    await reward.aclose()
    assert server.seen == []  # no room for any prompt: nothing was sent
    assert result.budget_limited
    assert result.answer == "5" and "fallback" in result.outcome.data  # majority of what is left


def test_scorer_roles() -> None:
    assert BestOfN(scorer=Scorer(kind="reward_model")).roles() == {"reward"}
    assert BestOfN(scorer=Scorer(kind="reward_model", role="rm")).roles() == {"rm"}
    assert BestOfN(scorer=Scorer(kind="judge")).roles() == {"aggregator"}
    assert BestOfN(scorer=Scorer(kind="precomputed", role="rm")).roles() == set()


@pytest.mark.parametrize(
    ("reward", "field", "says"),
    [
        (
            {"base_url": "http://x", "api_format": "openai"},
            "roles.reward.api_format",
            "vllm_pooling",
        ),
        ({"model": "m"}, "roles.reward.base_url", "Field required"),
        ({"base_url": "http://x", "timeout_s": 0}, "roles.reward.timeout_s", "greater than 0"),
        ({"base_url": "http://x", "labels": 1}, "roles.reward.labels", "unknown field"),
    ],
)
def test_bad_reward_backend_config_names_the_field(reward, field, says) -> None:
    with pytest.raises(ConfigError) as exc:
        ChainConfig.from_dict({"roles": {"reward": {"kind": "reward_model", **reward}}})
    assert exc.value.field == field and says in exc.value.reason


def test_bad_scorer_kind_and_api_format_list_the_choices() -> None:
    with pytest.raises(ConfigError) as exc:
        build_aggregator({"name": "best_of_n", "scorer": {"kind": "rm"}})
    assert exc.value.field == "aggregator.scorer.kind" and "'reward_model'" in exc.value.reason
    with pytest.raises(ConfigError) as exc:
        RewardModelBackend(base_url="http://x", api_format="tgi")
    assert exc.value.field == "backend.api_format"
    assert "valid choices: vllm_pooling, vllm_classify" in exc.value.reason


def test_example_best_of_n_chain_routes_scores_to_the_reward_role() -> None:
    chain = ChainConfig.load(Path(__file__).resolve().parents[2] / "examples/chains/bon_rm8.yaml")
    assert chain.strategy.roles() == {"default", "reward"}
    reward = chain.roles["reward"]
    assert reward.kind == "reward_model" and reward.base_url == "http://localhost:8001"
    backend = reward.build()
    assert isinstance(backend, RewardModelBackend) and backend.url.endswith(":8001/pooling")
    asyncio.run(backend.aclose())
