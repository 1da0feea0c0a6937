"""Measure a llama.cpp runtime's generation speed on this machine: one stream and parallel slots.

Use ``measure_runtime(runtime, model)`` to compare the prebuilt wheel with the native build
(``ponder setup --native`` does, to decide which ``auto`` prefers; ``benchmarks/runtime_compare.py``
does with larger settings). Each measurement starts its own server, so runs do not share state,
and generates exactly ``tokens`` tokens per stream (``ignore_eos``) from fixed prompts.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from ponder.backends.local.runtime import Runtime, RuntimeSpeed
from ponder.backends.local.server import LlamaServer
from ponder.errors import ServerStartError

TOPICS = (
    "the history of bread",
    "how rivers form",
    "a day in a lighthouse",
    "why the sky is blue",
    "the rules of chess",
    "building a wooden boat",
    "the life of a honeybee",
    "how a bicycle works",
    "a trip to the moon",
    "the water cycle",
    "how volcanoes erupt",
    "a recipe for soup",
    "the first computers",
    "how trees grow",
    "a storm at sea",
    "the invention of paper",
)


def _prompt(i: int) -> list[dict[str, str]]:
    topic = TOPICS[i % len(TOPICS)]
    return [{"role": "user", "content": f"Write a long, detailed essay about {topic}."}]


def _generate(client: httpx.Client, url: str, i: int, tokens: int) -> int:
    body = {
        "model": "local",
        "messages": _prompt(i),
        "max_tokens": tokens,
        "temperature": 0.0,
        "ignore_eos": True,  # llama.cpp: always generate exactly max_tokens
        "cache_prompt": False,
    }
    r = client.post(f"{url}/v1/chat/completions", json=body)
    r.raise_for_status()
    return int(r.json()["usage"]["completion_tokens"])


def measure_server(url: str, *, tokens: int, slots: int) -> tuple[float, float]:
    """``(one stream tok/s, summed tok/s over slots)`` against a running server at ``url``."""
    with httpx.Client(timeout=600.0) as client:
        _generate(client, url, 0, 4)  # warm-up
        t = time.perf_counter()
        single = _generate(client, url, 1, tokens) / (time.perf_counter() - t)
        with ThreadPoolExecutor(slots) as pool:
            t = time.perf_counter()
            counts = list(pool.map(lambda i: _generate(client, url, i, tokens), range(slots)))
            parallel = sum(counts) / (time.perf_counter() - t)
    return single, parallel


def measure_runtime(
    runtime: Runtime,
    model: Path,
    *,
    tokens: int = 48,
    slots: int = 8,
    threads: int | None = None,
    ctx_per_slot: int = 1024,
) -> RuntimeSpeed:
    """Start ``runtime`` on ``model`` with ``slots`` slots, measure, stop; return its speeds."""
    server = LlamaServer(
        runtime, model, n_parallel=slots, ctx_per_slot=ctx_per_slot, threads=threads
    )
    try:
        t = time.perf_counter()
        server.start()
        start_s = time.perf_counter() - t
        single, parallel = measure_server(server.url, tokens=tokens, slots=slots)
        peak = server.peak_rss_mb()
    except httpx.HTTPError as exc:
        raise ServerStartError(
            f"measuring the {runtime.name} runtime failed: {exc}; last log lines:\n"
            f"{server.log_tail()}"
        ) from exc
    finally:
        server.stop()
    return RuntimeSpeed(
        name=runtime.name,
        version=runtime.version,
        single_tok_s=round(single, 2),
        parallel_tok_s=round(parallel, 2),
        parallel_slots=slots,
        peak_rss_mb=None if peak is None else round(peak, 1),
        start_s=round(start_s, 2),
    )
