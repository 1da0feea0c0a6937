"""What the DRR judge costs at serving time: the stop decision's own compute, per probe.

A live ``drr_*`` policy, at each probe, builds the checkpoint features of the trace so far and
scores them with the DM (``dm.p_checkpoint``); ``drr_sample`` then scores the samples so far
(``dm.p_majority``). This times both on the states of a recorded collection (default: the small
fixture collection in tests/fixtures/behaviour/test), with the packaged DM unless ``--dm`` names
another, and prints medians and 99th percentiles in microseconds. Goal (issue 30): ≤ 1 ms per
probe. The model calls themselves (the probe, a hidden-state embedding call) are not counted
here: they are the upstream's time, measured by ``ponder eval`` reports.

Run by hand:  python benchmarks/judge_cost.py [--collection DIR] [--dm default] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from ponder.behaviour.records import read_collection
from ponder.learning.drr.states import trace_states
from ponder.stopping.model import load_dm

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "behaviour" / "test"


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collection", type=Path, default=FIXTURE)
    ap.add_argument("--dm", default="default")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    dm = load_dm(args.dm)
    manifest, records = read_collection(args.collection)
    max_tokens = int(manifest.settings.get("max_tokens", 320))
    states = [st.state for r in records for s in r.samples for st in trace_states(s, max_tokens)]
    per_probe: list[float] = []
    for _ in range(args.repeat):
        for st in states:
            t = time.perf_counter()
            dm.p_checkpoint(st)
            per_probe.append((time.perf_counter() - t) * 1e6)

    per_sampling: list[float] = []
    for _ in range(args.repeat):
        for r in records:
            answers = [s.answer for s in r.samples]
            scores = [0.5] * len(answers)
            for n in range(1, len(answers) + 1):
                t = time.perf_counter()
                dm.p_majority(answers[:n], scores[:n])
                per_sampling.append((time.perf_counter() - t) * 1e6)

    print(f"collection: {args.collection} ({len(records)} questions, {len(states)} states)")
    print(f"DM: {args.dm}")
    for name, xs in (
        ("p_checkpoint (per probe)", per_probe),
        ("p_majority (per sample)", per_sampling),
    ):
        print(
            f"{name:28s} median {statistics.median(xs):8.1f} µs   "
            f"p99 {percentile(xs, 0.99):8.1f} µs   n={len(xs)}"
        )
    total = statistics.median(per_probe) + statistics.median(per_sampling)
    print(f"stop decision, both scorers: {total / 1000:.3f} ms (goal ≤ 1 ms)")


if __name__ == "__main__":
    main()
