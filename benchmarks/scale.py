"""Questions per minute: today's ``--concurrency`` runner vs Ray with 1, 2, 4 actors, and Ray's
overhead per question. SIMULATED: the upstream is a loopback stub with a fixed latency
(``tests/unit/steady_upstream.py``, its own process), so the numbers show how throughput grows
when the engine is not the bottleneck, on this machine's 2 cores, not what a fleet serves.

Each arm evaluates the same N questions (one ``cot`` call each) through ``ponder.evaluation``:
``plain C`` is ``evaluate(concurrency=C)`` in this process; ``ray A×P`` is ``--ray`` with A actors
of P questions in flight (a local Ray started here, the endpoint gate on unless ``no gate``).
Reported per arm: wall time, questions/minute over the whole run and in the steady state
(first to last result: actor start-up excluded), start-up time, and the overhead per question:
the time a question holds one of the ``slots`` (C, or A×P) beyond the upstream's latency,
``steady_wall / N × slots − latency`` (the engine's and the machine's cost, plain or not), and
for Ray, its cost against the plain runner with as many slots: the steady wall time per question
minus the plain run's (``vs_plain_ms_per_q``; Ray's own overhead per question). With
``--local``, a tiny real-model arm too (plain vs one Ray actor, the embedded default model, 3
questions of 48 tokens).

Run: python benchmarks/scale.py [--questions 400] [--latency 0.2] [--per-actor 8] [--local]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ponder.behaviour.datasets import Item  # noqa: E402
from ponder.config import ChainConfig  # noqa: E402
from ponder.evaluation.driver import Failed, Write  # noqa: E402
from ponder.evaluation.runner import EvalJob, evaluate  # noqa: E402


class Timed:
    """A ``Remote`` that notes when each result came back."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.times: list[float] = []

    def in_flight(self) -> int:
        return int(self.inner.in_flight())

    async def results(
        self, pending: Mapping[str, Any]
    ) -> AsyncIterator[tuple[str, Write | Failed]]:
        async for r in self.inner.results(pending):
            self.times.append(time.perf_counter())
            yield r


def chain_for(base_url: str, local: bool = False) -> ChainConfig:
    backend = (
        {"kind": "local", "threads": 1, "n_parallel": 2, "ctx_per_slot": 1024}
        if local
        else {"kind": "openai", "base_url": base_url, "model": "steady-1", "max_concurrency": 64}
    )
    strategy = {"name": "cot", "max_tokens": 48 if local else 64, "temperature": 0.0}
    return ChainConfig.from_dict({"backend": backend, "strategy": strategy, "max_concurrency": 64})


def items(n: int) -> list[Item]:
    return [Item(str(i), f"What is {i} + {i}?", str(2 * i)) for i in range(n)]


async def plain_arm(chain: ChainConfig, qs: list[Item], c: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        await evaluate([EvalJob("arm", chain)], qs, d, concurrency=c, progress=False)
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "steady_s": wall, "startup_s": 0.0, "slots": c}


async def ray_arm(
    chain: ChainConfig, qs: list[Item], actors: int, per: int, gate: bool
) -> dict[str, Any]:
    from ponder.scale.ray_pool import RayPlacement

    where = RayPlacement(None, actors=actors, per_actor=per, endpoint_cap=None if gate else 0)
    timed: list[Timed] = []

    def elsewhere(work: Any, c: ChainConfig) -> Timed:
        timed.append(Timed(where.remote(work, c)))
        return timed[-1]

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        await evaluate([EvalJob("arm", chain)], qs, d, progress=False, elsewhere=elsewhere)
        wall = time.perf_counter() - t0
    times = timed[0].times
    steady = (times[-1] - times[0]) * len(times) / max(1, len(times) - 1)
    return {
        "wall_s": wall,
        "steady_s": steady,
        "startup_s": times[0] - t0,
        "slots": actors * per,
        "nodes": len(where.nodes()),
    }


def report(name: str, r: dict[str, Any], n: int, latency: float) -> dict[str, Any]:
    r = {"arm": name, "questions": n, **r}
    r["q_per_min"] = 60 * n / r["wall_s"]
    r["steady_q_per_min"] = 60 * n / r["steady_s"]
    r["overhead_ms_per_q"] = 1000 * (r["steady_s"] / n * r["slots"] - latency)
    print(
        f"{name:<22} wall {r['wall_s']:6.1f}s  start {r['startup_s']:5.1f}s  "
        f"{r['q_per_min']:7.0f} q/min  steady {r['steady_q_per_min']:7.0f} q/min  "
        f"overhead {r['overhead_ms_per_q']:6.1f} ms/q",
        flush=True,
    )
    return r


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from ponder.scale import ray_env

    stub = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.steady_upstream", "--latency", str(args.latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    out: list[dict[str, Any]] = []
    try:
        assert stub.stdout is not None
        chain = chain_for(stub.stdout.readline().strip())
        qs = items(args.questions)
        n, lat, per = args.questions, args.latency, args.per_actor
        plain: dict[int, dict[str, Any]] = {}
        for c in sorted({a * per for a in args.actors}):
            plain[c] = report(f"plain {c}", await plain_arm(chain, qs, c), n, lat)
            out.append(plain[c])
        ray_env.connect(None)
        for a in args.actors:
            r = report(f"ray {a}x{per}", await ray_arm(chain, qs, a, per, True), n, lat)
            r["vs_plain_ms_per_q"] = 1000 * (r["steady_s"] - plain[a * per]["wall_s"]) / n
            print(f"{'':<22} Ray's cost vs plain {a * per}: {r['vs_plain_ms_per_q']:+.1f} ms/q")
            out.append(r)
        if args.no_gate:
            r = await ray_arm(chain, qs, max(args.actors), per, False)
            out.append(report(f"ray {max(args.actors)}x{per} no gate", r, n, lat))
        if args.local:
            local, few = chain_for("", local=True), items(3)
            out.append(report("local plain 2", await plain_arm(local, few, 2), 3, 0.0))
            r = await ray_arm(local, few, 1, 2, False)
            out.append(report("local ray 1x2", r, 3, 0.0))
    finally:
        ray_env.shutdown()
        stub.terminate()
        stub.wait(10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=400)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--per-actor", type=int, default=8)
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--no-gate", action="store_true", help="also the largest pool without gate")
    ap.add_argument("--local", action="store_true", help="also a tiny real local-model arm")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    rows = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
