"""DeepConf early termination against the real llama-server: a stopped trace really stops.

Tiny on purpose (two short runs of the default model). A fixed threshold above any window makes
the later trace stop at its first window; the same run with a threshold below every window lets
it finish. The server's own completion-token counts (the backend's usage) must show the saving.
"""

from __future__ import annotations

import pytest

from ponder import Orchestrator
from ponder.strategies.deepconf import DeepConfSample

pytestmark = pytest.mark.integration

QUESTION = "A shop sells pens at 3 dollars each. Tom buys 7 pens. How much does he pay?"


def _rule(threshold: float) -> DeepConfSample:
    return DeepConfSample(
        k=2,
        warmup=1,
        window=16,
        segment=16,
        max_tokens=96,
        seed=11,
        consensus=None,
        threshold=threshold,
        temperature=0.7,
    )


async def test_a_stopped_trace_generates_fewer_tokens(local_backend):
    orch = Orchestrator(local_backend)
    full = await orch.run(_rule(-1e9), QUESTION)
    cut = await orch.run(_rule(1e9), QUESTION)

    def later_segments(result):
        return [e for e in result.trace.of_type("completion") if e["span"] not in ("",)]

    [stopped] = [s for s in cut.outcome.samples if s.data.get("stopped_at") is not None]
    assert stopped.data["stopped_at"] == 16 and stopped.data["tokens"] == 16
    # the server counted exactly one 16-token segment for the stopped trace
    segs = later_segments(cut)
    assert len(segs) == 1 and segs[0]["completion_tokens"] == 16
    finished = [s for s in full.outcome.samples if not s.data.get("warmup")]
    assert finished[0].data.get("stopped_at") is None
    assert finished[0].data["tokens"] > 16
    full_later = sum(e["completion_tokens"] for e in later_segments(full))
    assert full_later == finished[0].data["tokens"]
    assert sum(e["completion_tokens"] for e in segs) < full_later
