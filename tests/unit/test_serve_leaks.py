"""``ponder serve`` leaks nothing through its upstream URL and changes nothing silently: no
credentials (``user:pass@``, a secret query parameter) in what a client gets, in traces or in
logs; no internal address in a chain's error; the Bearer key (never Basic auth from the URL)
authenticates; duplicate JSON keys are refused. Real HTTP, the official ``openai`` client, and the
fault-injecting upstream of ``tests.unit.fault_upstream``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import openai
import pytest

from ponder.secrets import redact
from ponder.serve import ServeConfig, ServerThread
from tests.unit.fault_upstream import Faults, FaultUpstream

KEY = "sk-upstream-SECRET-abcdef7890"
PASSWORD = "hunter2-PASSWORD"
QUERY_SECRET = "QSECRET-0123456789"
INNER = {"name": "cot", "temperature": 0.7, "max_tokens": 200}
CHAINS = {
    "cot": {"strategy": {"name": "cot", "max_tokens": 200}},
    "sc4": {"strategy": {"name": "sample", "k": 4, "seed": 0, "inner": INNER}},
}
MSG = [{"role": "user", "content": "What is 2+2?"}]


@pytest.fixture(autouse=True)
def upstream_key(monkeypatch):
    monkeypatch.setenv("PONDER_TEST_LEAK_KEY", KEY)


def credentialed(up: FaultUpstream) -> str:
    """The upstream's URL with a user:password and a secret query parameter in it."""
    netloc = up.url.removeprefix("http://")
    return f"http://alice:{PASSWORD}@{netloc}/v1?api-key={QUERY_SECRET}"


def serve_cfg(base_url: str, **kw) -> ServeConfig:
    data = {
        "upstream": {
            "kind": "openai",
            "base_url": base_url,
            "model": "m",
            "api_key_env": "PONDER_TEST_LEAK_KEY",
            "timeout_s": 2.0,
        },
        "chains": CHAINS,
        "retry": {"max_attempts": 2, "initial_backoff_s": 0.01, "max_backoff_s": 0.02},
        **kw,
    }
    return ServeConfig.from_dict(data)


def client_sees(srv: ServerThread, model: str, stream: bool) -> str:
    """Everything the official client got for one request (answer, error body, stream)."""
    c = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
    try:
        if stream:
            return "".join(
                json.dumps(ch.model_dump())
                for ch in c.chat.completions.create(model=model, messages=MSG, stream=True)  # type: ignore[arg-type]
            )
        r = c.chat.completions.create(model=model, messages=MSG)  # type: ignore[arg-type]
        return json.dumps(r.model_dump())
    except openai.APIError as exc:
        return json.dumps(exc.body) + str(exc)


@pytest.mark.parametrize(
    "faults", [Faults(http_500=1.0), Faults(drop=1.0), Faults()], ids=["500", "drop", "ok"]
)
def test_url_credentials_reach_no_client_trace_or_log(faults, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with FaultUpstream(faults) as up:
        cfg = serve_cfg(credentialed(up), trace_dir=str(tmp_path))
        with ServerThread(cfg) as srv:
            seen = {
                (model, stream): client_sees(srv, model, stream)
                for model in ("ponder:cot", "ponder:sc4", "m")
                for stream in (False, True)
            }
        internal = up.url.removeprefix("http://")  # 127.0.0.1:<port>
    traces = "".join(p.read_text() for p in Path(tmp_path).glob("*.jsonl"))
    assert traces, "no trace was written"
    for where, text in [*seen.items(), ("traces", traces), ("logs", caplog.text)]:
        assert PASSWORD not in text and QUERY_SECRET not in text, (where, text[:2000])
        assert KEY not in text, where
    for (model, _), text in seen.items():
        if model.startswith("ponder:"):  # a chain's answer or error names no internal address
            assert internal not in text, (model, text)


def test_the_bearer_key_authenticates_not_the_urls_userinfo():
    with FaultUpstream() as up, ServerThread(serve_cfg(credentialed(up))) as srv:
        for model in ("ponder:cot", "m"):
            r = httpx.post(
                f"{srv.base_url}/chat/completions", json={"model": model, "messages": MSG}
            )
            assert r.status_code == 200, r.text
    assert up.auth_seen and set(up.auth_seen) == {f"Bearer {KEY}"}


def test_a_query_in_the_upstream_url_is_sent_as_a_query(rm):
    srv_up = rm(
        lambda body, path, i: (
            200,
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "\\boxed{4}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            },
        )
    )
    base = f"http://bob:{PASSWORD}@{srv_up.url.removeprefix('http://')}/v1?api-version=7"
    with ServerThread(serve_cfg(base)) as srv:
        for model in ("ponder:cot", "m"):
            r = httpx.post(
                f"{srv.base_url}/chat/completions", json={"model": model, "messages": MSG}
            )
            assert r.status_code == 200, r.text
    assert [b["_path"] for b in srv_up.seen] == ["/v1/chat/completions?api-version=7"] * 2
    auth = [{k.lower(): v for k, v in h.items()}.get("authorization") for h in srv_up.headers]
    assert set(auth) == {f"Bearer {KEY}"}


def test_the_redactor_scrubs_url_credentials():
    from ponder.secrets import url_secrets, without_userinfo

    url = f"https://alice:{PASSWORD}@api.example/v1?api-version=2&api_key={QUERY_SECRET}&x=1"
    out = redact(f"cannot reach {url}: refused", [])
    assert PASSWORD not in out and QUERY_SECRET not in out
    assert "api-version=2" in out and "&x=1" in out and "api.example/v1" in out
    assert set(url_secrets(url)) >= {PASSWORD, QUERY_SECRET}
    assert without_userinfo(url) == url.replace(f"alice:{PASSWORD}@", "")
    # a text that merely mentions a key is left alone; literal secrets go anywhere they appear
    assert redact("the key to success", []) == "the key to success"
    assert PASSWORD not in redact(f"echo {PASSWORD}", url_secrets(url))


@pytest.mark.parametrize(
    "raw,param",
    [
        (
            b'{"model": "m", "n": 1000, "n": 1, "messages": [{"role": "user", "content": "hi"}]}',
            "n",
        ),
        (
            b'{"model": "ponder:cot", "max_tokens": 100000, "max_tokens": 10, '
            b'"messages": [{"role": "user", "content": "hi"}]}',
            "max_tokens",
        ),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "a", "content": "b"}]}',
            "messages[0].content",
        ),
        (
            b'{"model": "m", "max_completion_tokens": 10, "max_tokens": 100000, '
            b'"messages": [{"role": "user", "content": "hi"}]}',
            "max_tokens",
        ),
    ],
    ids=["pass-through-n", "chain-max_tokens", "nested", "max_tokens-beside-max_completion"],
)
def test_a_body_the_upstream_could_read_otherwise_is_a_400(raw, param):
    """Duplicate keys (the proxy reads the last, an upstream may keep the first) and a
    ``max_tokens`` beside a smaller ``max_completion_tokens`` never get past the limits."""
    with FaultUpstream() as up:
        cfg = serve_cfg(up.base_url, limits={"max_n": 8, "max_tokens": 4096})
        with ServerThread(cfg) as srv:
            r = httpx.post(
                f"{srv.base_url}/chat/completions",
                content=raw,
                headers={"content-type": "application/json"},
            )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param, r.text
        assert up.log == [], "the request reached the upstream"
