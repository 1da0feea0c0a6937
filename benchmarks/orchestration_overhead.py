"""Per-call orchestration overhead: Ponder's orchestrator vs the openai client, same endpoint.

Starts the embedded llama-server (default model) and times, interleaved, one chat call made
  A) directly with ``openai.AsyncOpenAI`` and
  B) through ``Orchestrator(...).run(ChainOfThought(...))`` (prompt rendering, tracing, usage,
     retries wrapper) — without and with a token budget (which adds exact prompt counting).
Prints medians and ratios. Run by hand:  python benchmarks/orchestration_overhead.py [--calls 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import openai

from ponder import ChainOfThought, Orchestrator, Task
from ponder.backends.local import LocalBackend


async def main(calls: int, max_tokens: int) -> None:
    backend = LocalBackend(quiet=True, n_parallel=1)
    inner = await backend.start()
    assert backend.server is not None
    client = openai.AsyncOpenAI(base_url=backend.server.base_url, api_key="x", max_retries=0)
    cot = ChainOfThought(max_tokens=max_tokens)
    messages = list(cot.request(Task("What is 2 + 2?")).messages or ())
    plain = Orchestrator(backend)
    budgeted = Orchestrator(backend, budget_tokens=100_000)

    async def direct() -> None:
        await client.chat.completions.create(
            model="local",
            messages=messages,
            max_tokens=max_tokens,
            temperature=0.0,  # type: ignore[arg-type]
        )

    async def via(orch: Orchestrator) -> None:
        await orch.run(cot, "What is 2 + 2?")

    arms = {
        "direct openai": direct,
        "ponder": lambda: via(plain),
        "ponder+budget": lambda: via(budgeted),
    }
    times: dict[str, list[float]] = {k: [] for k in arms}
    for fn in arms.values():  # warm-up (prompt cache, connections)
        await fn()
    for _ in range(calls):
        for name, fn in arms.items():
            t0 = time.perf_counter()
            await fn()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["direct openai"])
    print(f"calls per arm: {calls}, max_tokens: {max_tokens}, interleaved")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(
            f"{name:15s} median {med * 1000:8.1f} ms   ratio {med / base:5.3f}   "
            f"(+{(med - base) * 1000:.1f} ms)"
        )
    await client.close()
    await inner.aclose()
    await backend.aclose()


async def fake_overhead(runs: int = 2000) -> None:
    """Pure orchestration cost per run (no model, no network): FakeBackend answers instantly."""
    from ponder import FakeBackend

    orch = Orchestrator(FakeBackend(lambda req, i: "\\boxed{4}"))
    cot = ChainOfThought(max_tokens=8)
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(runs):
            await orch.run(cot, "What is 2 + 2?")
        samples.append((time.perf_counter() - t0) / runs)
    print(
        "orchestrator + CoT with FakeBackend: "
        f"median {statistics.median(samples) * 1e6:.0f} us per run"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--max-tokens", type=int, default=1)
    ap.add_argument("--fake-only", action="store_true", help="only the no-model overhead")
    args = ap.parse_args()
    asyncio.run(fake_overhead())
    if not args.fake_only:
        asyncio.run(main(args.calls, args.max_tokens))
