"""``ponder serve`` under faults: every chain answers a cause as ``cot`` does, a request's ``n``
cannot multiply the operator's budget, no key leaks through pass-through, bad input is a JSON 400,
and shutdown / disconnects end runs cleanly. Real HTTP, the official ``openai`` client, and the
fault-injecting upstream of ``tests.unit.fault_upstream``."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import openai
import pytest

from ponder.serve import ServeConfig, ServerThread
from ponder.serve import upstream as upstream_mod
from tests.unit.fault_upstream import Faults, FaultUpstream

KEY = "sk-upstream-SECRET-abcdef7890"
INNER = {"name": "cot", "temperature": 0.7, "max_tokens": 200}
CHAINS = {
    "cot": {"strategy": {"name": "cot", "max_tokens": 200}},
    "sc4": {"strategy": {"name": "sample", "k": 4, "seed": 0, "inner": INNER}},
    "ad4": {"strategy": {"name": "adaptive", "k": 4, "seed": 0, "inner": INNER}},
    "short": {
        "strategy": {
            "name": "sample",
            "k": 3,
            "seed": 0,
            "inner": {**INNER, "max_tokens": 10},
        }
    },
    "b600": {"strategy": {"name": "cot", "max_tokens": 400}, "budget": {"total_tokens": 600}},
}
MSG = [{"role": "user", "content": "What is 2+2?"}]


@pytest.fixture(autouse=True)
def upstream_key(monkeypatch):
    monkeypatch.setenv("PONDER_TEST_FAULT_KEY", KEY)


def serve_cfg(up: FaultUpstream, timeout_s: float = 5.0, **kw) -> ServeConfig:
    data = {
        "upstream": {
            "kind": "openai",
            "base_url": up.base_url,
            "model": "m",
            "api_key_env": "PONDER_TEST_FAULT_KEY",
            "timeout_s": timeout_s,
        },
        "chains": CHAINS,
        "retry": {"max_attempts": 2, "initial_backoff_s": 0.01, "max_backoff_s": 0.02},
        **kw,
    }
    return ServeConfig.from_dict(data)


def post(srv: ServerThread, body: dict, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{srv.base_url}/chat/completions", json=body, timeout=timeout)


@pytest.mark.parametrize(
    "faults,status,code",
    [
        (Faults(http_401=1.0), 502, "upstream_auth_failed"),
        (Faults(http_500=1.0), 502, "upstream_server_error"),
        (Faults(http_429=1.0), 503, "upstream_rate_limited"),
        (Faults(hang=1.0, hang_s=3.0), 504, "upstream_timeout"),
        (Faults(malformed=1.0), 502, "upstream_server_error"),
        (Faults(drop=1.0), 502, "upstream_unreachable"),
    ],
    ids=["401", "500", "429", "timeout", "malformed", "drop"],
)
def test_every_chain_answers_a_failure_as_cot_does(faults, status, code):
    with FaultUpstream(faults) as up, ServerThread(serve_cfg(up, timeout_s=0.5)) as srv:
        for chain in ("cot", "sc4", "ad4"):
            r = post(srv, {"model": f"ponder:{chain}", "messages": MSG})
            assert r.status_code == status, (chain, r.text)
            err = r.json()["error"]
            assert err["code"] == code, (chain, err)
            assert "SECRET" not in r.text and "****" not in r.text


def test_retry_after_is_relayed_from_chains_and_pass_through():
    with (
        FaultUpstream(Faults(http_429=1.0, retry_after="120")) as up,
        ServerThread(serve_cfg(up)) as srv,
    ):
        for model in ("ponder:sc4", "m"):
            r = post(srv, {"model": model, "messages": MSG})
            assert r.status_code in (429, 503) and r.headers["retry-after"] == "120", r.text


def test_samples_all_cut_at_max_tokens_answer_200_with_length():
    with FaultUpstream(Faults(words=(100, 100))) as up, ServerThread(serve_cfg(up)) as srv:
        resp = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        out = resp.chat.completions.create(model="ponder:short", messages=MSG)
    assert out.choices[0].finish_reason == "length"


def test_a_requests_n_does_not_multiply_the_chain_budget():
    with FaultUpstream(Faults(words=(300, 300))) as up, ServerThread(serve_cfg(up)) as srv:
        r = post(srv, {"model": "ponder:b600", "messages": MSG, "n": 2})  # 300 tokens each
        assert r.status_code == 200, r.text
        assert up.generated() <= 600
        assert r.json()["usage"]["total_tokens"] == up.delivered()


def test_n_above_max_concurrent_runs_is_400_and_busy_429_has_retry_after():
    with (
        FaultUpstream() as up,
        ServerThread(serve_cfg(up, limits={"max_concurrent_runs": 2})) as srv,
    ):
        r = post(srv, {"model": "ponder:cot", "messages": MSG, "n": 3})
        assert r.status_code == 400 and r.json()["error"]["param"] == "n"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "m", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"model": "m", "n": ' + b"9" * 5000 + b', "messages": []}',
        b'{"model": "ponder:cot", "messages": [{"role": "user", "content": "\\ud800"}]}',
        b'{"model": "ponder:cot\\ud800", "messages": [{"role": "user", "content": "hi"}]}',
        b'{"model": "ponder:cot/a\\u0000b", "messages": [{"role": "user", "content": "hi"}]}',
    ],
    ids=["deep", "huge-int", "surrogate-content", "surrogate-model", "control-char-model"],
)
def test_inputs_that_crashed_the_proxy_are_json_400s(raw):
    with (
        FaultUpstream() as up,
        ServerThread(serve_cfg(up, limits={"max_body_bytes": 10**6})) as srv,
    ):
        r = httpx.post(
            f"{srv.base_url}/chat/completions",
            content=raw,
            headers={"content-type": "application/json"},
            timeout=30,
        )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["message"]


def test_more_model_names_than_the_cap_evict_the_least_recently_used(monkeypatch):
    monkeypatch.setattr(upstream_mod, "MAX_UPSTREAM_MODELS", 3)
    with FaultUpstream() as up, ServerThread(serve_cfg(up)) as srv:
        for i in range(6):
            r = post(srv, {"model": f"ponder:cot/model-{i}", "messages": MSG})
            assert r.status_code == 200, r.text


def test_pass_through_scrubs_the_key_from_relayed_bodies_and_headers():
    with FaultUpstream(Faults(echo_key_400=1.0)) as up, ServerThread(serve_cfg(up)) as srv:
        r = post(srv, {"model": "m", "messages": MSG})
    assert r.status_code == 400
    assert KEY not in r.text and "SECRET" not in r.text
    assert all(KEY not in v for v in r.headers.values())
    assert up.auth_seen[-1] == f"Bearer {KEY}"


def test_client_disconnect_cancels_a_non_streaming_run():
    with (
        FaultUpstream(Faults(hang=1.0, hang_s=20.0)) as up,
        ServerThread(serve_cfg(up, timeout_s=30)) as srv,
    ):
        with pytest.raises(httpx.ReadTimeout):
            post(srv, {"model": "ponder:sc4", "messages": MSG}, timeout=0.5)
        deadline = time.monotonic() + 5
        while httpx.get(f"{srv.url}/health").json()["runs_in_flight"]:
            assert time.monotonic() < deadline, "the run outlived its client"
            time.sleep(0.05)


def test_shutdown_answers_json_503_and_ends_streams_with_an_error_event():
    with FaultUpstream(Faults(hang=1.0, hang_s=20.0)) as up:
        srv = ServerThread(serve_cfg(up, timeout_s=30, shutdown_grace_s=0.3)).start()
        out: dict[str, object] = {}

        def plain() -> None:
            out["plain"] = post(srv, {"model": "ponder:cot", "messages": MSG})

        def streamed() -> None:
            body = {"model": "ponder:cot", "messages": MSG, "stream": True}
            with httpx.stream(
                "POST", f"{srv.base_url}/chat/completions", json=body, timeout=30
            ) as r:
                out["stream"] = [line for line in r.iter_lines() if line.startswith("data:")]

        threads = [threading.Thread(target=plain), threading.Thread(target=streamed)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 15  # both runs reach the (hanging) upstream, even on a
        while len(up.log) < 2 and time.monotonic() < deadline:  # loaded machine
            time.sleep(0.05)
        time.sleep(0.2)
        srv.stop()  # what SIGTERM does
        for t in threads:
            t.join(15)
    r = out["plain"]
    assert isinstance(r, httpx.Response) and r.status_code == 503, r
    assert r.json()["error"]["code"] == "shutting_down"
    last = json.loads(out["stream"][-1][len("data:") :])  # type: ignore[index]
    assert last["error"]["code"] == "shutting_down"


def test_concurrent_openai_clients_through_faults_nothing_lost_or_unclear():
    faults = Faults(http_500=0.15, http_503=0.15, drop=0.05, http_429=0.05, malformed=0.03, seed=3)
    with FaultUpstream(faults) as up, ServerThread(serve_cfg(up)) as srv:

        async def go() -> list[object]:
            c = openai.AsyncOpenAI(base_url=srv.base_url, api_key="x", max_retries=0)

            async def one(i: int) -> object:
                try:
                    return await c.chat.completions.create(
                        model="ponder:sc4" if i % 2 else "ponder:cot",
                        messages=[{"role": "user", "content": f"[req-{i}] What is 2+2?"}],
                    )
                except openai.APIStatusError as exc:
                    return exc

            return list(await asyncio.gather(*(one(i) for i in range(16))))

        results = asyncio.run(go())
    for r in results:
        if isinstance(r, openai.APIStatusError):
            assert r.status_code in (502, 503, 504), r
            assert r.body and r.body.get("code"), r.body  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", [1, 2])  # text/html, truncated JSON
def test_pass_through_of_a_malformed_200_is_a_clear_502(seed):
    with (
        FaultUpstream(Faults(malformed=1.0, seed=seed)) as up,
        ServerThread(serve_cfg(up)) as srv,
    ):
        r = post(srv, {"model": "m", "messages": MSG})
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_bad_response"
