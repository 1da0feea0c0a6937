"""Proxy overhead of ``ponder serve`` in pass-through mode, and concurrent clients held.

Run by hand from the repo root::

    python benchmarks/serve_overhead.py --requests 200 --llama-requests 20 --concurrent 32

The proxy runs as its own process (``python -m ponder serve``), as deployed. Arms, measured
side by side (requests alternate direct / via proxy, so both see the same load):
  * stub:  an instant stdlib HTTP upstream, so the figure is the proxy's own cost per request;
  * llama: the embedded llama-server with the default model (max_tokens 8).
Then ``--concurrent`` clients at once through the proxy (pass-through and a ``cot`` chain), checking
every one gets a well-formed, distinct answer. Figures are printed and written to results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai

from ponder.backends.local import LocalBackend
from ponder.backends.local.server import free_port

ROOT = Path(__file__).resolve().parent.parent

MESSAGES = [{"role": "user", "content": "Say hello."}]


class _Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms to every answer

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps(
            {
                "id": f"stub-{time.perf_counter_ns()}",
                "object": "chat.completion",
                "created": 0,
                "model": "stub",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hello"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _StubServer(ThreadingHTTPServer):
    request_queue_size = 256  # the stdlib default (5) drops connections under 32 clients


def run_stub(port: int) -> None:
    server = _StubServer(("127.0.0.1", port), _Stub)
    server.daemon_threads = True
    server.serve_forever()


def wait_http(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(cmd: list[str], ready_url: str) -> Iterator[None]:
    """A separate process (own interpreter, so no GIL shared with the measuring client)."""
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_http(ready_url)
        yield
    finally:
        proc.terminate()
        proc.wait(30)


def stub_process() -> tuple[Any, str]:
    port = free_port()
    cmd = [sys.executable, __file__, "--stub-port", str(port)]
    return process(cmd, f"http://127.0.0.1:{port}/"), f"http://127.0.0.1:{port}/v1"


def proxy_process(upstream_url: str, model: str) -> tuple[Any, str]:
    port = free_port()
    cfg = {
        "upstream": {"kind": "openai", "base_url": upstream_url, "model": model},
        "chains": {"cot": {"strategy": {"name": "cot", "max_tokens": 16}}},
        "limits": {"max_concurrent_runs": 64},
        "port": port,
    }
    path = Path(tempfile.mkdtemp()) / "serve.json"
    path.write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "ponder", "serve", "-c", str(path), "--log-level", "warning"]
    return process(cmd, f"http://127.0.0.1:{port}/health"), f"http://127.0.0.1:{port}/v1"


async def side_by_side(direct_url: str, proxy_url: str, model: str, n: int) -> dict[str, Any]:
    direct = openai.AsyncOpenAI(base_url=direct_url, api_key="x", max_retries=0)
    proxy = openai.AsyncOpenAI(base_url=proxy_url, api_key="x", max_retries=0)
    kw = {"model": model, "messages": MESSAGES, "max_tokens": 8, "temperature": 0}
    for c in (direct, proxy):  # warm connections and the prompt cache
        await c.chat.completions.create(**kw)
    d_times, p_times = [], []
    for i in range(n):
        order = [(direct, d_times), (proxy, p_times)]
        if i % 2:
            order.reverse()
        for client, times in order:
            t0 = time.perf_counter()
            await client.chat.completions.create(**kw)
            times.append(time.perf_counter() - t0)
    await direct.close()
    await proxy.close()
    d, p = statistics.median(d_times), statistics.median(p_times)
    return {
        "requests": n,
        "direct_median_ms": round(d * 1000, 2),
        "proxy_median_ms": round(p * 1000, 2),
        "overhead_median_ms": round(
            statistics.median(b - a for a, b in zip(d_times, p_times, strict=True)) * 1000, 2
        ),
        "ratio": round(p / d, 3),
    }


async def concurrent(proxy_url: str, model: str, k: int, max_tokens: int) -> dict[str, Any]:
    client = openai.AsyncOpenAI(base_url=proxy_url, api_key="x", max_retries=0, timeout=600)
    t0 = time.perf_counter()
    results = await asyncio.gather(
        *(
            client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": f"What is {i} + {i}?"}],
                max_tokens=max_tokens,
            )
            for i in range(k)
        ),
        return_exceptions=True,
    )
    wall = time.perf_counter() - t0
    await client.close()
    ok = [
        r
        for r in results
        if not isinstance(r, BaseException) and r.choices and r.choices[0].message.content
    ]
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return {
        "model": model,
        "clients": k,
        "ok": len(ok),
        "distinct_ids": len({r.id for r in ok}),
        "errors": errors[:3],
        "wall_s": round(wall, 2),
        "tokens": sum(r.usage.total_tokens for r in ok if r.usage),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--llama-requests", type=int, default=20)
    ap.add_argument("--concurrent", type=int, default=32)
    ap.add_argument("--skip-llama", action="store_true", help="only the stub upstream")
    ap.add_argument("--stub-port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stub_port:
        run_stub(args.stub_port)
        return
    report: dict[str, Any] = {}

    stub, stub_url = stub_process()
    with stub:
        proxy, proxy_url = proxy_process(stub_url, "stub")
        with proxy:
            report["stub_passthrough"] = await side_by_side(
                stub_url, proxy_url, "stub", args.requests
            )
            report["stub_concurrent"] = await concurrent(proxy_url, "stub", args.concurrent, 8)
    print(
        json.dumps({k: report[k] for k in ("stub_passthrough", "stub_concurrent")}, indent=1),
        flush=True,
    )

    if args.skip_llama:
        _write(report)
        return
    local = LocalBackend(quiet=True, n_parallel=8, ctx_per_slot=2048)
    await local.start()
    try:
        assert local.server is not None
        url = local.server.base_url
        proxy, proxy_url = proxy_process(url, "local")
        with proxy:
            report["llama_passthrough"] = await side_by_side(
                url, proxy_url, "local", args.llama_requests
            )
            report["llama_concurrent_passthrough"] = await concurrent(
                proxy_url, "local", args.concurrent, 8
            )
            report["llama_concurrent_chain"] = await concurrent(
                proxy_url, "ponder:cot", args.concurrent, 16
            )
    finally:
        await local.aclose()
    _write(report)


def _write(report: dict[str, Any]) -> None:
    print(json.dumps(report, indent=1))
    out = Path("results/serve_overhead.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"written to {out}")


if __name__ == "__main__":
    asyncio.run(main())
