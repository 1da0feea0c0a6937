"""The stop-thinking policies' test numbers: each against full thinking, with intervals.

Use ``rows_on_test(policies, traces, groups, margin)`` on held-out scored traces (``groups``: each
trace's question) for one ``Row`` per policy: accuracy with a 95% interval (Wilson with one trace
per question; else a bootstrap that resamples questions), the difference from full (the first
policy) with a question-bootstrap interval and its non-inferiority at ``margin``, won/lost traces
and the McNemar p, and mean thinking/generated tokens. The policies: ``think_policies``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ponder.behaviour.stats import paired, wilson
from ponder.learning.drr.replay import ScoredTrace
from ponder.learning.drr.think_policies import Policy, mean_of


@dataclass
class Row:
    """One policy's test numbers (see the module doc)."""

    policy: str
    traces: int
    accuracy: float
    ci95: tuple[float, float]
    diff: float
    diff_ci95: tuple[float, float]
    non_inferior: bool
    won: int
    lost: int
    mcnemar_p: float
    thinking: float
    thinking_saved: float
    generated: float


def _cluster_ci(
    values: Sequence[float], groups: Sequence[str], resamples: int, seed: int
) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of ``values``, resampling whole groups."""
    import numpy as np

    keys = sorted(set(groups))
    index = {g: i for i, g in enumerate(keys)}
    sums, counts = np.zeros(len(keys)), np.zeros(len(keys))
    for v, g in zip(values, groups, strict=True):
        sums[index[g]] += v
        counts[index[g]] += 1
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(keys), (resamples, len(keys)))
    means = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def rows_on_test(
    policies: Sequence[tuple[str, Policy]],
    traces: Sequence[ScoredTrace],
    groups: Sequence[str],
    margin: float,
    resamples: int = 2000,
    seed: int = 0,
) -> list[Row]:
    """Each policy against ``full`` (the first of ``policies``) on the test traces."""
    runs = [(name, [run(t) for t in traces]) for name, run in policies]
    base = runs[0][1]
    base_thinking = mean_of([s.thinking for s in base])
    one_each = len(set(groups)) == len(groups)
    rows = []
    for name, stops in runs:
        right = [s.correct for s in stops]
        n, k = len(right), sum(right)
        if one_each:
            ci = wilson(k, n)
        else:
            ci = _cluster_ci([float(x) for x in right], groups, resamples, seed)
        delta = [float(a.correct) - float(b.correct) for a, b in zip(stops, base, strict=True)]
        dci = _cluster_ci(delta, groups, resamples, seed)
        pr = paired(right, [s.correct for s in base])
        mean_thinking = mean_of([s.thinking for s in stops])
        rows.append(
            Row(
                policy=name,
                traces=n,
                accuracy=k / n if n else 0.0,
                ci95=ci,
                diff=mean_of(delta),
                diff_ci95=dci,
                non_inferior=dci[0] > -margin,
                won=pr.won,
                lost=pr.lost,
                mcnemar_p=pr.p_value,
                thinking=mean_thinking,
                thinking_saved=1 - mean_thinking / base_thinking if base_thinking else 0.0,
                generated=mean_of([s.generated for s in stops]),
            )
        )
    return rows


__all__ = ["Row", "rows_on_test"]
