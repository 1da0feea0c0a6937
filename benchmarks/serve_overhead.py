"""Proxy overhead of ``ponder serve`` in pass-through mode, and concurrent clients held.

Run by hand from the repo root::

    python benchmarks/serve_overhead.py --requests 40 --concurrent 32

Arms, measured side by side (requests alternate direct / via proxy, so both see the same load):
  * stub:  an instant stdlib HTTP upstream, so the figure is the proxy's own cost per request;
  * llama: the embedded llama-server with the default model (max_tokens 8).
Then ``--concurrent`` clients at once through the proxy (pass-through and a ``cot`` chain), checking
every one gets a well-formed, distinct answer. Figures are printed and written to results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai

from ponder.orchestrator.backends.local import LocalBackend
from ponder.serve import ServeConfig, ServerThread

MESSAGES = [{"role": "user", "content": "Say hello."}]


class _Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps(
            {
                "id": f"stub-{time.perf_counter_ns()}",
                "object": "chat.completion",
                "created": 0,
                "model": "stub",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def start_stub() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


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
        "overhead_median_ms": round(statistics.median(b - a for a, b in zip(d_times, p_times)) * 1000, 2),
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
    ok = [r for r in results if not isinstance(r, BaseException) and r.choices and r.choices[0].message.content]
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


def proxy_config(url: str, model: str) -> ServeConfig:
    return ServeConfig.from_dict(
        {
            "upstream": {"kind": "openai", "base_url": url, "model": model},
            "chains": {"cot": {"strategy": {"name": "cot", "max_tokens": 32}}},
            "limits": {"max_concurrent_runs": 64},
        }
    )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--concurrent", type=int, default=32)
    args = ap.parse_args()
    report: dict[str, Any] = {}

    stub, stub_url = start_stub()
    with ServerThread(proxy_config(stub_url, "stub")) as srv:
        report["stub_passthrough"] = await side_by_side(stub_url, srv.base_url, "stub", args.requests)
        report["stub_concurrent"] = await concurrent(srv.base_url, "stub", args.concurrent, 8)
    stub.shutdown()
    print(json.dumps({k: report[k] for k in ("stub_passthrough", "stub_concurrent")}, indent=1), flush=True)

    local = LocalBackend(quiet=True, n_parallel=8, ctx_per_slot=2048)
    await local.start()
    try:
        assert local.server is not None
        url = local.server.base_url
        with ServerThread(proxy_config(url, "local")) as srv:
            report["llama_passthrough"] = await side_by_side(url, srv.base_url, "local", args.requests // 2)
            report["llama_concurrent_passthrough"] = await concurrent(srv.base_url, "local", args.concurrent, 8)
            report["llama_concurrent_chain"] = await concurrent(srv.base_url, "ponder:cot", args.concurrent, 32)
    finally:
        await local.aclose()
    print(json.dumps(report, indent=1))
    out = Path("results/serve_overhead.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"written to {out}")


if __name__ == "__main__":
    asyncio.run(main())
