"""Trace confidence from token logprobs (DeepConf, Fu et al. 2025), shared by aggregators and
stop policies.

Use ``trace_confidence(conf)`` on a trace's per-token confidences to get every score at once, or
the single measures. *Token confidence* is minus the mean logprob of the top-k alternatives at a
position (high = the model was sure; ``token_confidence``); pass the chosen token's logprobs
instead where top-k is not available (``mean_logprob`` is then the usual mean). *Group
confidence* is the mean over a sliding window of ``window`` tokens; a trace is scored by its
lowest group, the mean of its bottom 10% of groups, or its tail (the last ``tail`` tokens).
DeepConf uses a 2,048-token window on long traces; GSM8K traces of a 0.5B model are ~300 tokens,
so the default window is 64 and the tail 64.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

DEFAULT_WINDOW = 64
DEFAULT_TAIL = 64
MEASURES = ("mean", "lowest_group", "bottom10", "tail")


def token_confidence(top: Mapping[str, float]) -> float:
    """Minus the mean logprob of one position's top-k alternatives (0.0 if none)."""
    if not top:
        return 0.0
    return -sum(top.values()) / len(top)


def group_confidences(conf: Sequence[float], window: int = DEFAULT_WINDOW) -> list[float]:
    """Mean confidence of every sliding window of ``window`` tokens (one group if shorter)."""
    n = len(conf)
    if n == 0:
        return []
    if n <= window:
        return [sum(conf) / n]
    out = []
    s = sum(conf[:window])
    out.append(s / window)
    for i in range(window, n):
        s += conf[i] - conf[i - window]
        out.append(s / window)
    return out


def lowest_group(conf: Sequence[float], window: int = DEFAULT_WINDOW) -> float | None:
    groups = group_confidences(conf, window)
    return min(groups) if groups else None


def bottom_fraction(
    conf: Sequence[float], window: int = DEFAULT_WINDOW, fraction: float = 0.1
) -> float | None:
    """Mean of the lowest ``fraction`` of group confidences (at least one group)."""
    groups = sorted(group_confidences(conf, window))
    if not groups:
        return None
    k = max(1, int(len(groups) * fraction))
    return sum(groups[:k]) / k


def tail_confidence(conf: Sequence[float], tail: int = DEFAULT_TAIL) -> float | None:
    if not conf:
        return None
    part = conf[-tail:]
    return sum(part) / len(part)


def mean_confidence(conf: Sequence[float]) -> float | None:
    return sum(conf) / len(conf) if conf else None


@dataclass(frozen=True)
class TraceConfidence:
    """Every DeepConf score of one trace (``None`` when it has no tokens)."""

    mean: float | None
    lowest_group: float | None
    bottom10: float | None
    tail: float | None

    def get(self, measure: str) -> float | None:
        if measure not in MEASURES:
            raise ValueError(
                f"unknown confidence measure {measure!r}; valid: {', '.join(MEASURES)}"
            )
        return getattr(self, measure)  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


def trace_confidence(
    conf: Sequence[float], window: int = DEFAULT_WINDOW, tail: int = DEFAULT_TAIL
) -> TraceConfidence:
    return TraceConfidence(
        mean=mean_confidence(conf),
        lowest_group=lowest_group(conf, window),
        bottom10=bottom_fraction(conf, window, 0.1),
        tail=tail_confidence(conf, tail),
    )


CONFIDENCE_SOURCES = ("top_logprobs", "chosen")
"""Where token confidences came from: DeepConf's top-k definition, or (when a backend returns only
the chosen token's logprob) that logprob itself. Both are "higher = surer", on different scales,
so never mix them in one vote."""


def choice_confidences(
    token_logprobs: Sequence[float] | None, top_logprobs: Sequence[Mapping[str, float]] | None
) -> tuple[list[float], str | None]:
    """Per-token confidences of one generation and their source (``None`` if it has neither)."""
    if top_logprobs:
        return [token_confidence(t) for t in top_logprobs], "top_logprobs"
    if token_logprobs:
        return [float(x) for x in token_logprobs], "chosen"
    return [], None


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of ``values``, linearly interpolated (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def first_window_below(
    conf: Sequence[float], threshold: float, window: int = DEFAULT_WINDOW, after: int = 0
) -> int | None:
    """Where DeepConf's online rule stops a trace: the token count at which the first *full*
    window of ``window`` tokens has mean confidence below ``threshold`` (``None`` if none does).

    Only windows ending after token ``after`` are examined, so a generator that checks after each
    segment passes the length it had already checked. A trace shorter than one window is never
    stopped by this rule (its confidence is judged as a whole once it ends).
    """
    n = len(conf)
    if n < window:
        return None
    first_end = max(window, after + 1)
    s = sum(conf[first_end - window : first_end])
    for end in range(first_end, n + 1):
        if end > first_end:
            s += conf[end - 1] - conf[end - 1 - window]
        if s / window < threshold:
            return end
    return None
