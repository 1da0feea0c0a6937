"""Requests/s of ``ponder serve`` as 1 plain process vs Ray Serve with 1 and 2 replicas.

Run by hand from the repo root (needs ``ponder[ray]``)::

    PYTHONPATH=. python benchmarks/serve_replicas.py --requests 600 --concurrency 64 \
        --latency-ms 100

SIMULATED: the upstream is the loopback OpenAI-compatible stub of ``tests/unit/fault_upstream.py``
(no faults) in its own process, answering every call after a fixed latency, so the figure is what
the proxy itself sustains when the model is not the bottleneck (no fleet can be measured here).
Arms, each warmed up then timed over the same load (``--concurrency`` clients at once, a ``cot``
chain: one upstream call per request, or pass-through with ``--model stub``; the chain's
``max_concurrency`` is ``--chain-concurrency`` per replica, so a low one shows the per-replica
limit adding up over replicas):
  * plain: ``python -m ponder serve`` (uvicorn, one process);
  * ray-N: ``ponder.serve.ray_serve.deployment(cfg, replicas=N)`` behind Ray's HTTP proxy.
Prints one JSON line per arm (requests/s, p50/p95 latency, errors, requests per replica).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from ponder.backends.local.server import free_port
from ponder.serve import ServeConfig

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]
STUB = """
import sys, time
sys.path.insert(0, {root!r})
from tests.unit.fault_upstream import Faults, FaultUpstream
up = FaultUpstream(Faults(latency_s={latency}, words=(8, 16))).start()
print(up.base_url, flush=True)
while True:
    time.sleep(3600)
"""


def start_stub(latency_s: float) -> tuple[subprocess.Popen[str], str]:
    code = STUB.format(root=str(ROOT), latency=latency_s)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def wait_ready(base: str, timeout_s: float = 180.0) -> None:
    deadline, ok = time.monotonic() + timeout_s, 0
    while ok < 4:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base} did not become ready")
        try:
            ok = ok + 1 if httpx.get(f"{base}/ready", timeout=5).status_code == 200 else 0
        except httpx.HTTPError:
            ok = 0
        time.sleep(0.2)


async def load(base: str, model: str, requests: int, concurrency: int) -> dict[str, Any]:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    replicas: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one() -> None:
            async with sem:
                t0 = time.perf_counter()
                try:
                    r = await client.post(
                        f"{base}/v1/chat/completions", json={"model": model, "messages": MESSAGES}
                    )
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    return
                if r.status_code != 200:
                    errors[str(r.status_code)] += 1
                    return
                latencies.append(time.perf_counter() - t0)
                replicas[r.headers.get("x-ponder-replica", "-")] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else [0.0] * 19
    return {
        "answered": len(latencies),
        "errors": dict(errors),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p95_ms": round(q[18] * 1000, 1),
        "per_replica": dict(replicas),
    }


def measure(base: str, args: argparse.Namespace) -> dict[str, Any]:
    asyncio.run(load(base, args.model, min(100, args.requests), args.concurrency))  # warm up
    return asyncio.run(load(base, args.model, args.requests, args.concurrency))


def serve_config(upstream: str, args: argparse.Namespace) -> dict[str, Any]:
    """The same proxy config for every arm."""
    return {
        "upstream": {"kind": "openai", "base_url": upstream, "model": "stub"},
        "chains": {
            "cot": {
                "strategy": {"name": "cot", "max_tokens": 64},
                "max_concurrency": args.chain_concurrency,
            }
        },
        "limits": {"max_concurrent_runs": 256},
    }


def plain_arm(upstream: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "PONDER_REPLICA": "plain"}
    config = Path(tempfile.mkdtemp(prefix="ponder-bench-")) / "serve.json"
    config.write_text(json.dumps(serve_config(upstream, args)))
    cmd = [sys.executable, "-m", "ponder", "serve", "-c", str(config)]
    cmd += ["--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        return measure(f"http://127.0.0.1:{port}", args)
    finally:
        proc.terminate()
        proc.wait(60)


def ray_arms(upstream: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    import ray
    from ray import serve

    from ponder.serve.ray_serve import deployment

    cfg = ServeConfig.from_dict(serve_config(upstream, args))
    temp = tempfile.mkdtemp(prefix="ponder-ray-")
    port = free_port()
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False
    )
    out = []
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        for n in args.replicas:
            app = deployment(cfg, replicas=n, num_cpus=args.replica_cpus)
            serve.run(app, name="ponder", route_prefix="/")
            wait_ready(f"http://127.0.0.1:{port}")
            out.append({"arm": f"ray-{n}", **measure(f"http://127.0.0.1:{port}", args)})
            print(json.dumps(out[-1]), flush=True)
            serve.delete("ponder")
    finally:
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=600)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--model", default="ponder:cot", help="ponder:cot, or stub (pass-through)")
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    p.add_argument("--replica-cpus", type=float, default=0.5)
    p.add_argument(
        "--chain-concurrency",
        type=int,
        default=16,
        help="the chain's max_concurrency (upstream calls in flight, per replica)",
    )
    p.add_argument("--skip-plain", action="store_true")
    args = p.parse_args()
    stub, upstream = start_stub(args.latency_ms / 1000)
    try:
        print(json.dumps({"simulated": True, **{k: v for k, v in vars(args).items()}}))
        if not args.skip_plain:
            print(json.dumps({"arm": "plain", **plain_arm(upstream, args)}), flush=True)
        ray_arms(upstream, args)
    finally:
        stub.terminate()
        stub.wait(10)


if __name__ == "__main__":
    main()
