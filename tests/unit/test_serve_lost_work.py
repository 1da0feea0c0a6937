"""``ponder serve`` loses no work (issue 29, "Failures that lose work"): a DRR feedback chain
keeps its finished answer when a later feedback call fails; a chain whose strategies need a
capability the upstream lacks is refused at startup; pass-through requests are drained like
chains and cancelled upstream when their client leaves; trace files rotate under a cap; load
balancers get ``HEAD /health`` and ``/ready``. Real HTTP, the official ``openai`` client, loopback
upstreams."""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from ponder.backends.fake import FakeBackend
from ponder.backends.local.server import free_port
from ponder.errors import ConfigError
from ponder.serve import ServeConfig, ServerThread
from tests.unit.drr_helpers import agree_dm, manifest
from tests.unit.fault_upstream import Faults, FaultUpstream

ROOT = Path(__file__).resolve().parents[2]
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


# -- one startup capability check ---------------------------------------------------------------


def test_a_chain_needing_continuation_is_refused_at_startup_naming_chain_and_capability(
    rm, dm_path
):
    up = rm(lambda body, path, n: (200, ok()))
    cfg = ServeConfig.from_dict(
        {
            "upstream": upstream_cfg(f"{up.url}/v1"),  # no apply_template_url: no continuation
            "chains": {"cot": {"strategy": {"name": "cot"}}, "fb": feedback_chain(dm_path)},
        }
    )
    with pytest.raises(ConfigError) as info:
        ServerThread(cfg).start().stop()
    msg = str(info.value)
    assert "chains.fb" in msg and "'continuation'" in msg and "drr_feedback" in msg
    assert "prefill" in msg  # says how to give the upstream the capability
    assert up.seen == []


def test_the_same_chain_starts_where_the_upstream_can_continue(rm, dm_path):
    up = rm(lambda body, path, n: (200, ok()))
    cfg = ServeConfig.from_dict(
        {
            "upstream": upstream_cfg(f"{up.url}/v1", continuation="prefill"),
            "chains": {"fb": feedback_chain(dm_path)},
        }
    )
    with ServerThread(cfg) as srv:
        assert httpx.get(f"{srv.url}/health").status_code == 200


def test_ponder_serve_refuses_it_with_one_line_and_exit_2(rm, dm_path, tmp_path):
    up = rm(lambda body, path, n: (200, ok()))
    path = tmp_path / "serve.json"
    path.write_text(
        json.dumps(
            {"upstream": upstream_cfg(f"{up.url}/v1"), "chains": {"fb": feedback_chain(dm_path)}}
        )
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ponder", "serve", "-c", str(path), "--port", str(free_port())]
    try:
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("ponder serve started a chain its upstream cannot run")
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ponder: error: chains.fb") and "continuation" in last
    assert "Traceback" not in done.stderr


def test_ponder_run_refuses_it_before_the_first_call_naming_the_strategy(capsys, rm):
    from ponder.cli import main

    up = rm(lambda body, path, n: (200, ok()))
    code = main(
        ["run", "q?", "--base-url", f"{up.url}/v1", "--model", "m", "--strategy", "drr_think"]
    )
    err = capsys.readouterr().err
    assert code != 0 and "drr_think" in err and "'continuation'" in err and "role 'default'" in err
    assert up.seen == []


# -- pass-through: drained like chains, cancelled upstream when the client leaves ---------------


class Watchful:
    """A loopback upstream that holds each chat request open (``hold_s``) and notes when the
    proxy closed the connection (``closed``: seconds after the request came), so a test can see
    the upstream call cancelled. ``stream_first`` sends an SSE head and one chunk first."""

    def __init__(self, hold_s: float = 8.0, stream_first: bool = False) -> None:
        self.hold_s = hold_s
        self.stream_first = stream_first
        self.closed: list[float] = []
        self.requests = 0
        watch = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", 0)))
                watch.requests += 1
                t0 = time.monotonic()
                if watch.stream_first:
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("connection", "close")
                    self.end_headers()
                    delta = {"index": 0, "delta": {"content": "Two"}, "finish_reason": None}
                    first = {"id": "c", "object": "chat.completion.chunk", "choices": [delta]}
                    self.wfile.write(f"data: {json.dumps(first)}\n\n".encode())
                    self.wfile.flush()
                    self.close_connection = True
                sock = self.connection
                while time.monotonic() - t0 < watch.hold_s:
                    readable, _, _ = select.select([sock], [], [], 0.05)
                    if readable and sock.recv(1, socket.MSG_PEEK) == b"":
                        watch.closed.append(time.monotonic() - t0)
                        return
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> Watchful:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]


def pass_cfg(base_url: str, **kw: Any) -> ServeConfig:
    return ServeConfig.from_dict(
        {
            "upstream": upstream_cfg(base_url, timeout_s=30),
            "chains": {"cot": {"strategy": {"name": "cot"}}},
            **kw,
        }
    )


@pytest.mark.parametrize(
    "extra", [{}, {"stream": True, "tools": TOOLS}], ids=["plain", "stream_with_tools"]
)
def test_a_client_leaving_a_pass_through_request_cancels_the_upstream_call(extra):
    with Watchful() as up, ServerThread(pass_cfg(up.base_url)) as srv:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
        with (
            pytest.raises(httpx.ReadTimeout),
            httpx.stream("POST", f"{srv.base_url}/chat/completions", json=body, timeout=0.5) as r,
        ):
            r.read()
        deadline = time.monotonic() + 5
        while not up.closed and time.monotonic() < deadline:
            time.sleep(0.05)
    assert up.requests == 1
    assert up.closed and up.closed[0] < 3, "the upstream kept generating for a client that left"


def test_pass_through_requests_at_shutdown_are_json_503_like_chains():
    with FaultUpstream(Faults(hang=1.0, hang_s=20.0)) as up:
        srv = ServerThread(pass_cfg(up.base_url, shutdown_grace_s=0.3)).start()
        out: dict[str, Any] = {}

        def ask(key: str, **extra: Any) -> None:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
            out[key] = httpx.post(f"{srv.base_url}/chat/completions", json=body, timeout=30)

        threads = [
            threading.Thread(target=ask, args=("plain",)),
            threading.Thread(target=ask, args=("stream",), kwargs={"stream": True}),
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 15
        while len(up.log) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        t0 = time.monotonic()
        srv.stop()
        for t in threads:
            t.join(15)
        took = time.monotonic() - t0
    for key in ("plain", "stream"):
        r = out[key]
        assert r.status_code == 503 and r.headers["content-type"].startswith("application/json")
        assert r.json()["error"]["code"] == "shutting_down", r.text
    assert took < 4  # answered when the grace ran out, not when uvicorn gave up on them


def test_a_pass_through_stream_still_relaying_at_shutdown_ends_with_an_error_event():
    with Watchful(stream_first=True) as up:
        srv = ServerThread(pass_cfg(up.base_url, shutdown_grace_s=0.3)).start()
        lines: list[str] = []

        def relay() -> None:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            with httpx.stream(
                "POST", f"{srv.base_url}/chat/completions", json=body, timeout=30
            ) as r:
                lines.extend(line for line in r.iter_lines() if line.startswith("data:"))

        t = threading.Thread(target=relay)
        t.start()
        deadline = time.monotonic() + 10
        while not up.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        srv.stop()
        t.join(15)
    assert lines and "Two" in lines[0]
    assert json.loads(lines[-1][len("data:") :])["error"]["code"] == "shutting_down"
    assert up.closed  # the upstream stream was closed too


# -- liveness and readiness -----------------------------------------------------------------------


class SlowStart(FakeBackend):
    """A backend whose start takes ``start_s`` (a model loading)."""

    def __init__(self, start_s: float) -> None:
        super().__init__(["The answer is \\boxed{4}."] * 10)
        self.start_s = start_s

    async def start(self) -> SlowStart:
        await asyncio.sleep(self.start_s)
        return self


def test_head_health_is_200_and_ready_says_ready():
    cfg = ServeConfig.from_dict({"chains": {"cot": {"strategy": {"name": "cot"}}}})
    with ServerThread(cfg, backend=FakeBackend(["x"])) as srv:
        head = httpx.head(f"{srv.url}/health")
        assert head.status_code == 200 and head.content == b""
        assert httpx.head(f"{srv.url}/ready").status_code == 200
        r = httpx.get(f"{srv.url}/ready")
        assert r.status_code == 200 and r.json()["status"] == "ready"
        assert httpx.get(f"{srv.url}/health").json()["ready"] is True


def test_ready_is_503_while_the_backends_start_and_requests_wait_for_them():
    cfg = ServeConfig.from_dict({"chains": {"cot": {"strategy": {"name": "cot"}}}})
    srv = ServerThread(cfg, backend=SlowStart(2.0))
    starter = threading.Thread(target=srv.start)
    starter.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{srv.url}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.02)
        assert health.status_code == 200  # alive while starting
        ready = httpx.get(f"{srv.url}/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "starting"
        body = {"model": "ponder:cot", "messages": [{"role": "user", "content": "2+2?"}]}
        r = httpx.post(f"{srv.base_url}/chat/completions", json=body, timeout=10)
        assert r.status_code == 200  # waited for the start, not refused
        assert httpx.get(f"{srv.url}/ready").status_code == 200
    finally:
        starter.join(10)
        srv.stop()


def test_ready_is_503_while_draining():
    with FaultUpstream(Faults(hang=1.0, hang_s=20.0)) as up:
        srv = ServerThread(pass_cfg(up.base_url, shutdown_grace_s=3)).start()
        body = {"model": "ponder:cot", "messages": [{"role": "user", "content": "hi"}]}
        t = threading.Thread(
            target=lambda: httpx.post(f"{srv.base_url}/chat/completions", json=body, timeout=30)
        )
        t.start()
        deadline = time.monotonic() + 10
        while not up.log and time.monotonic() < deadline:
            time.sleep(0.05)
        stopper = threading.Thread(target=srv.stop)
        stopper.start()
        seen = []
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{srv.url}/ready", timeout=1)
            except httpx.TransportError:
                break
            seen.append((r.status_code, r.json()["status"]))
            if r.status_code == 503:
                break
            time.sleep(0.05)
        stopper.join(15)
        t.join(15)
    assert (503, "draining") in seen, seen


# -- trace_dir: rotated under a cap ---------------------------------------------------------------


def ask_chain(srv: ServerThread) -> str:
    body = {"model": "ponder:cot", "messages": [{"role": "user", "content": "2+2?"}]}
    r = httpx.post(f"{srv.base_url}/chat/completions", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.headers["x-ponder-trace-id"]


def test_trace_dir_keeps_the_newest_traces_under_its_file_cap(tmp_path):
    traces = tmp_path / "traces"
    traces.mkdir()
    for i in range(3):  # left by an earlier run of the proxy: the oldest, rotated out first
        (traces / f"old{i}.jsonl").write_text("{}\n")
        os.utime(traces / f"old{i}.jsonl", (1_000_000 + i, 1_000_000 + i))
    cfg = ServeConfig.from_dict(
        {
            "chains": {"cot": {"strategy": {"name": "cot"}}},
            "trace_dir": str(traces),
            "trace_max_files": 4,
        }
    )
    with ServerThread(cfg, backend=FakeBackend(lambda r, i: "so \\boxed{4}")) as srv:
        ids = [ask_chain(srv) for _ in range(6)]
    assert sorted(p.stem for p in traces.glob("*.jsonl")) == sorted(ids[-4:])


def test_trace_dir_stays_under_its_size_cap(tmp_path):
    traces = tmp_path / "traces"
    cfg = ServeConfig.from_dict(
        {
            "chains": {"cot": {"strategy": {"name": "cot"}}},
            "trace_dir": str(traces),
            "trace_max_mb": 0.01,  # 10 kB: a few traces
        }
    )
    with ServerThread(cfg, backend=FakeBackend(lambda r, i: "so \\boxed{4}")) as srv:
        ids = [ask_chain(srv) for _ in range(20)]
    files = list(traces.glob("*.jsonl"))
    assert 0 < len(files) < 20 and sum(f.stat().st_size for f in files) <= 10_000
    assert (traces / f"{ids[-1]}.jsonl").exists()  # the newest is always kept
