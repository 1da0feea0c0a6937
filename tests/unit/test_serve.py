"""The proxy with the official openai client against a FakeBackend and failing real upstreams."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from ponder.backends.fake import FakeBackend
from ponder.errors import ConfigError
from ponder.serve import ServeConfig, ServerThread
from ponder.serve.responses import FINISH_BUDGET
from tests.unit.serve_helpers import UPSTREAM_SECRET, fake_upstream

CHAINS = {
    "cot": {"strategy": {"name": "cot", "max_tokens": 50}},
    "pick3": {"strategy": {"name": "test_pick_longest"}},
    "tight": {"strategy": {"name": "cot", "max_tokens": 50}, "budget": {"total_tokens": 60}},
}


def cfg(**kw):
    data = {
        "chains": CHAINS,
        "upstream": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
    }
    data["retry"] = {"max_attempts": 2, "initial_backoff_s": 0.01, "max_backoff_s": 0.02}
    data.update(kw)
    return ServeConfig.from_dict(data)


def replies(request, i):
    content = request.messages[-1]["content"]
    return f"reply {len(content)} " + "word " * (request.params.temperature > 0) * 3 + "\\boxed{4}"


@pytest.fixture(scope="module")
def fake_server():
    backend = FakeBackend(replies)
    with ServerThread(cfg(), backend=backend) as srv:
        yield srv, backend


def client(srv, **kw):
    return openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0, **kw)


def test_chain_by_model_name_counts_every_call(fake_server):
    srv, backend = fake_server
    before = len(backend.requests)
    raw = client(srv).chat.completions.with_raw_response.create(
        model="ponder:pick3", messages=[{"role": "user", "content": "What is 2+2?"}]
    )
    resp = raw.parse()
    assert len(backend.requests) - before == 3
    # FakeBackend counts words: 3 prompts of 3 words + 3 completions of 6 words
    assert resp.usage.prompt_tokens == 9
    assert resp.usage.completion_tokens == 18
    assert resp.usage.total_tokens == 27
    assert resp.choices[0].message.content.endswith("\\boxed{4}")
    extra = resp.model_extra["ponder"]
    assert extra["calls"] == 3 and extra["answers"] == ["4"]
    assert raw.headers["x-ponder-trace-id"] == extra["run_ids"][0]


def test_chain_by_extra_body_and_n(fake_server):
    srv, _ = fake_server
    resp = client(srv).chat.completions.create(
        model="m",
        n=2,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        extra_body={"ponder": {"chain": "cot"}},
    )
    assert len(resp.choices) == 2
    assert resp.model_extra["ponder"]["calls"] == 2
    assert resp.choices[1].index == 1


def test_unknown_chain_is_400_listing_valid_names(fake_server):
    srv, _ = fake_server
    with pytest.raises(openai.BadRequestError) as e:
        client(srv).chat.completions.create(
            model="ponder:nope", messages=[{"role": "user", "content": "Hi"}]
        )
    msg = e.value.body["message"]
    assert "unknown chain 'nope'" in msg and "cot, pick3, tight" in msg


def test_budget_exceeded_is_200_with_finish_reason(fake_server):
    srv, _ = fake_server
    resp = client(srv).chat.completions.create(
        model="ponder:tight", messages=[{"role": "user", "content": "one two three four"}]
    )
    assert resp.choices[0].finish_reason == FINISH_BUDGET
    assert resp.model_extra["ponder"]["budget_limited"] is True
    assert resp.usage.total_tokens <= 60


def test_limits_and_malformed_json(fake_server):
    srv, _ = fake_server
    with httpx.Client(base_url=srv.base_url) as h:
        r = h.post(
            "/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
        r = h.post(
            "/chat/completions",
            json={"model": "ponder:cot", "n": 99, "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.status_code == 400 and r.json()["error"]["param"] == "n"
        r = h.post(
            "/chat/completions",
            json={
                "model": "ponder:cot",
                "max_tokens": 10**6,
                "messages": [{"role": "user", "content": "x"}],
            },
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "max_tokens_too_large"
        r = h.post("/chat/completions", content=b"x" * 1_000_001)
        assert r.status_code == 413
        r = h.post(
            "/chat/completions",
            json={"model": "ponder:cot", "messages": [{"role": "assistant", "content": "x"}]},
        )
        assert r.status_code == 400 and "end with a user message" in r.json()["error"]["message"]
        assert h.get("/nope").json()["error"]["code"] == "not_found"


def test_models_and_health(fake_server):
    srv, _ = fake_server
    ids = [m.id for m in client(srv).models.list()]
    assert ids == ["ponder:cot", "ponder:pick3", "ponder:tight"]
    assert httpx.get(f"{srv.url}/health").json()["status"] == "ok"


def test_streaming_sync_and_async(fake_server):
    srv, _ = fake_server
    stream = client(srv).chat.completions.create(
        model="ponder:pick3",
        messages=[{"role": "user", "content": "What is 2+2?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith("\\boxed{4}")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.total_tokens == 27

    async def go():
        aclient = openai.AsyncOpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        s = await aclient.chat.completions.create(
            model="ponder:cot", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in s if c.choices])

    assert asyncio.run(go()).endswith("\\boxed{4}")


def test_stream_carries_progress_and_keepalive_comments():
    backend = FakeBackend(replies, delay_s=0.3)
    with ServerThread(cfg(keepalive_s=0.1), backend=backend) as srv:
        body = {
            "model": "ponder:pick3",
            "stream": True,
            "messages": [{"role": "user", "content": "Q"}],
        }
        with httpx.stream("POST", f"{srv.base_url}/chat/completions", json=body) as r:
            lines = [line for line in r.iter_lines() if line]
    assert ": keep-alive" in lines
    progress = [json.loads(x.split(" ", 2)[2]) for x in lines if x.startswith(": ponder-progress")]
    assert [p["calls_done"] for p in progress if p["type"] == "completion"] == [1, 2, 3]
    assert any(p["type"] == "decision" and p["consensus"] == "4" for p in progress)
    assert lines[-1] == "data: [DONE]"


def test_proxy_api_key(monkeypatch):
    monkeypatch.setenv("PONDER_TEST_PROXY_KEY", "proxy-key-abc")
    with ServerThread(
        cfg(api_key_env="PONDER_TEST_PROXY_KEY"), backend=FakeBackend(replies)
    ) as srv:
        with pytest.raises(openai.AuthenticationError):
            client(srv).chat.completions.create(
                model="ponder:cot", messages=[{"role": "user", "content": "Hi"}]
            )
        ok = openai.OpenAI(base_url=srv.base_url, api_key="proxy-key-abc", max_retries=0)
        assert ok.chat.completions.create(
            model="ponder:cot", messages=[{"role": "user", "content": "Hi"}]
        ).choices


def test_remote_host_needs_opt_in():
    with pytest.raises(ConfigError, match="host"):
        cfg(host="0.0.0.0")
    assert cfg(host="0.0.0.0", allow_remote=True).host == "0.0.0.0"


# -- a deliberately failing upstream, reached over real HTTP ---------------------------------------


def upstream_cfg(url, timeout_s=1.0, **kw):
    return cfg(
        upstream={
            "kind": "openai",
            "base_url": url,
            "model": "m",
            "api_key_env": "PONDER_TEST_UPSTREAM_KEY",
            "timeout_s": timeout_s,
        },
        **kw,
    )


@pytest.fixture
def upstream_key(monkeypatch):
    monkeypatch.setenv("PONDER_TEST_UPSTREAM_KEY", UPSTREAM_SECRET)


@pytest.mark.parametrize(
    "mode,status,code",
    [
        ("500", 502, "upstream_server_error"),
        ("401", 502, "upstream_auth_failed"),
        ("hang", 504, "upstream_timeout"),
        ("close", 502, None),
    ],
)
@pytest.mark.parametrize("model", ["ponder:cot", "m"])  # a chain, and pass-through
def test_failing_upstream(upstream_key, mode, status, code, model, tmp_path):
    with (
        fake_upstream(mode, hang_s=5) as url,
        ServerThread(upstream_cfg(url, trace_dir=str(tmp_path))) as srv,
    ):
        r = httpx.post(
            f"{srv.base_url}/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "Hi"}]},
            timeout=30,
        )
        assert r.status_code == status, r.text
        err = r.json()["error"]
        if code:
            assert err["code"] == code
        assert UPSTREAM_SECRET not in r.text and "SECRET" not in r.text
        for f in tmp_path.glob("*.jsonl"):
            assert UPSTREAM_SECRET not in f.read_text()
        if model.startswith("ponder:"):
            assert list(tmp_path.glob("*.jsonl")), "the failed run's trace is written"


def test_upstream_down_is_502_and_stream_error_raises(upstream_key):
    with ServerThread(upstream_cfg("http://127.0.0.1:9/v1")) as srv:
        with pytest.raises(openai.APIStatusError) as e:
            client(srv).chat.completions.create(
                model="ponder:cot", messages=[{"role": "user", "content": "Hi"}]
            )
        assert e.value.status_code == 502
        with pytest.raises(openai.APIError, match="unreachable"):
            list(
                client(srv).chat.completions.create(
                    model="ponder:cot", messages=[{"role": "user", "content": "Hi"}], stream=True
                )
            )


def test_passthrough_forwards_upstream_key_and_model(upstream_key):
    from tests.unit.serve_helpers import _Handler

    with fake_upstream("ok") as url, ServerThread(upstream_cfg(url)) as srv:
        resp = client(srv).chat.completions.create(
            model="other-model", messages=[{"role": "user", "content": "Hi"}]
        )
        assert resp.model == "other-model" and resp.usage.total_tokens == 15
        assert _Handler.seen_auth[-1] == f"Bearer {UPSTREAM_SECRET}"
        chain = client(srv).chat.completions.create(
            model="ponder:cot/other-model", messages=[{"role": "user", "content": "Hi"}]
        )
        assert chain.model_extra["ponder"]["answers"] == ["4"]
        ids = [m.id for m in client(srv).models.list()]
        assert "ponder:pick3/m" in ids and "m" in ids


def test_concurrent_run_limit_is_429():
    backend = FakeBackend(replies, delay_s=1.0)
    with ServerThread(cfg(limits={"max_concurrent_runs": 2}), backend=backend) as srv:

        async def go():
            async with httpx.AsyncClient(base_url=srv.base_url, timeout=30) as h:
                body = {"model": "ponder:cot", "messages": [{"role": "user", "content": "Hi"}]}
                return await asyncio.gather(
                    *(h.post("/chat/completions", json=body) for _ in range(4))
                )

        codes = sorted(r.status_code for r in asyncio.run(go()))
    assert codes == [200, 200, 429, 429]


def test_graceful_shutdown_lets_inflight_runs_finish(upstream_key):
    with fake_upstream("slow_ok") as url:
        srv = ServerThread(upstream_cfg(url, timeout_s=10, shutdown_grace_s=10)).start()

        async def go():
            async with httpx.AsyncClient(base_url=srv.base_url, timeout=30) as h:
                body = {"model": "ponder:cot", "messages": [{"role": "user", "content": "Hi"}]}
                task = asyncio.create_task(h.post("/chat/completions", json=body))
                await asyncio.sleep(0.5)
                srv.server.should_exit = True  # what SIGTERM does
                return await task

        r = asyncio.run(go())
        srv.stop()
    assert r.status_code == 200 and r.json()["ponder"]["answers"] == ["4"]
    assert not srv._thread.is_alive()


def test_cli_builds_config_from_flags(monkeypatch):
    from ponder.cli import build_parser
    from ponder.cli.serve import build_config

    args = build_parser().parse_args(
        [
            "serve",
            "--upstream-url",
            "http://127.0.0.1:1/v1",
            "--upstream-model",
            "big",
            "--port",
            "8123",
            "--trace-dir",
            "t",
        ]
    )
    c = build_config(args)
    assert c.upstream.kind == "openai" and c.upstream.model == "big" and c.port == 8123
    assert c.trace_dir == "t" and c.chain_names() == ["cot"]
    with pytest.raises(ConfigError, match="upstream-model"):
        build_config(build_parser().parse_args(["serve", "--upstream-model", "x"]))


def test_chain_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"chains\.bad\.strategy\.name.*valid choices"):
        cfg(chains={"bad": {"strategy": {"name": "nope"}}})
    with pytest.raises(ConfigError, match=r"chains\.a/b"):
        cfg(chains={"a/b": {"strategy": {"name": "cot"}}})


def test_multi_turn_messages_become_one_task():
    from ponder.serve.chain_request import task_from_request
    from ponder.serve.parsing import parse_chat_request

    messages = [
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
    ]
    body = json.dumps({"model": "m", "messages": messages}).encode()
    t = task_from_request(parse_chat_request(body))
    assert t.messages is None and t.tools is None
    assert t.system == "Sys."
    assert t.question.startswith("Conversation so far:\nUser: Hi\n\nAssistant: Hello")
    assert t.question.endswith("User: What is 2+2?")


def test_example_serve_config_is_valid():
    from pathlib import Path

    c = ServeConfig.load(Path(__file__).resolve().parents[2] / "examples" / "serve.yaml")
    assert c.upstream.kind == "local" and c.chains["cot-budget"].budget.total_tokens == 300


def test_client_can_lower_a_chains_budget(fake_server):
    srv, _ = fake_server
    resp = client(srv).chat.completions.create(
        model="ponder:cot",
        messages=[{"role": "user", "content": "Hi"}],
        extra_body={"ponder": {"budget_tokens": 50}},  # under the chain's: max_tokens is cut
    )
    assert resp.choices[0].finish_reason == FINISH_BUDGET
    with pytest.raises(openai.BadRequestError, match="budget_tokens"):
        client(srv).chat.completions.create(
            model="ponder:cot",
            messages=[{"role": "user", "content": "Hi"}],
            extra_body={"ponder": {"budget_tokens": -1}},
        )


def test_a_chains_own_roles_score_its_samples_on_another_backend(rm):
    """Per-chain roles: samples from the upstream, best-of-n scored by the chain's reward model."""

    def reward(body, path, n):
        right = "\\boxed{9}" in body["messages"][-1]["content"]
        data = [{"index": 0, "object": "pooling", "data": [2.0 if right else 0.5]}]
        return 200, {"data": data, "usage": {"prompt_tokens": 7, "total_tokens": 7}}

    scorer = rm(reward)
    answers = ["It is \\boxed{5}.", "It is \\boxed{5}.", "Careful: \\boxed{9}."]
    upstream = FakeBackend(lambda req, i: answers[i])
    chains = {
        "bon3": {
            "strategy": {
                "name": "sample",
                "k": 3,
                "inner": {"name": "cot", "temperature": 0.7},
                "aggregator": {"name": "best_of_n", "scorer": {"kind": "reward_model"}},
            },
            "roles": {"reward": {"kind": "reward_model", "base_url": scorer.url, "model": "rm"}},
        },
        "sc3": {"strategy": {"name": "sample", "k": 3, "inner": {"name": "cot"}}},
    }
    with ServerThread(cfg(chains=chains), backend=upstream) as srv:
        ask = [{"role": "user", "content": "What is 4 + 5?"}]
        best = client(srv).chat.completions.create(model="ponder:bon3", messages=ask)
        assert "\\boxed{9}" in best.choices[0].message.content  # majority would say 5
        assert len(scorer.seen) == 3 and {b["model"] for b in scorer.seen} == {"rm"}
        vote = client(srv).chat.completions.create(model="ponder:sc3", messages=ask)
        assert "\\boxed{5}" in vote.choices[0].message.content
        assert len(scorer.seen) == 3  # the other chain has no reward role and never calls it


@pytest.mark.parametrize(
    ("roles", "field", "says"),
    [
        ({"reward": {"kind": "nope"}}, "chains.c.roles.reward.kind", "reward_model"),
        ({"default": {"kind": "local"}}, "chains.c.roles.default", "upstream"),
    ],
)
def test_bad_chain_roles_name_the_field(roles, field, says):
    with pytest.raises(ConfigError) as exc:
        cfg(chains={"c": {"strategy": {"name": "cot"}, "roles": roles}})
    assert exc.value.field == field and says in str(exc.value)
