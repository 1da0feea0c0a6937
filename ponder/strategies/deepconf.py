"""``deepconf``: parallel sampling that stops weak traces early (DeepConf online, Fu et al. 2025).

Use it instead of ``sample`` + ``confidence_filter`` to spend fewer tokens for the same vote::

    strategy: {name: deepconf, k: 8, warmup: 4, percentile: 10, segment: 32, consensus: 0.95}

1. **Warm-up**: ``warmup`` full traces (one request, ``n=warmup``, with top-k logprobs). The
   stop threshold is the ``percentile``-th percentile of their lowest-group confidences
   (``percentile: 10`` is DeepConf-high, which would keep about 90% of traces; ``90`` is
   DeepConf-low, which keeps about 10%).
2. **Later traces**, ``batch`` at a time, are generated in continued segments of ``segment``
   tokens (each segment continues the partial assistant message with ``assistant_prefix``;
   the server's prompt cache re-reads the prefix cheaply: the probed-trace loop of
   ``ponder.strategies.probed_trace``, without probes). After every segment the strategy
   checks each newly completed sliding window of ``window`` tokens; the first whose mean
   confidence is below the threshold stops that trace: no further segment is asked for, so at
   most one segment's tokens are spent past the drop. A stopped trace never votes.
3. **Consensus**: after the warm-up and after each batch, if the confidence-weighted share of
   the leading answer is at least ``consensus``, no more traces are drawn.

The answer is the confidence-weighted vote (``confidence_filter`` with ``keep``) over the traces
that ran to the end. The rule itself is pure (``threshold_of``, ``stop_point``,
``consensus_share``) and shared with the replay over a behaviour collection
(``ponder.evaluation.early_stop_replay``), so it can be measured without a model. Needs a
backend with logprobs and the "continuation" capability (the local default, llama.cpp).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from typing import Any, ClassVar

from pydantic import Field, model_validator

from ponder.aggregator.base import valid
from ponder.aggregator.confidence_filter import (
    ConfidenceFiltered,
    Measure,
    confidence_groups,
)
from ponder.answers import extract_answer
from ponder.confidence import (
    DEFAULT_WINDOW,
    choice_confidences,
    first_window_below,
    lowest_group,
    percentile,
    trace_confidence,
)
from ponder.errors import CapabilityMissing
from ponder.prompts import load_template
from ponder.protocol.actions import Flow, Fork, Generate, Note, Outcome, Task
from ponder.protocol.requests import Completion, GenerationRequest, SamplingParams
from ponder.protocol.strategy import Strategy
from ponder.strategies.cot import PROMPT_VARIABLES, cot_messages
from ponder.strategies.parallel import resolve_seed
from ponder.strategies.probed_trace import Checkpoint, TraceLog, probed_trace
from ponder.strategies.registry import register_strategy
from ponder.strategies.sampling import describe, ensure_some_answer


def _no_logprobs(model: str) -> CapabilityMissing:
    return CapabilityMissing(
        f"the backend (model {model!r}) lacks capability 'logprobs' (per-token log-probabilities),"
        " which deepconf needs to judge traces as they are generated"
    )


@register_strategy
class DeepConfSample(Strategy):
    """Warm-up traces set a confidence threshold; later traces stop when a window falls below."""

    name: ClassVar[str] = "deepconf"

    k: int = Field(8, ge=1, le=256)
    warmup: int = Field(4, ge=1)
    percentile: float = Field(10.0, ge=0.0, le=100.0)
    window: int = Field(DEFAULT_WINDOW, ge=1)
    segment: int = Field(32, ge=1)
    batch: int = Field(2, ge=1)
    consensus: float | None = Field(0.95, gt=0.0, le=1.0)
    """Stop drawing traces once the leading answer's weighted share reaches this (None: never)."""
    threshold: float | None = None
    """A fixed stop threshold instead of the warm-up's percentile (the warm-up still votes)."""
    measure: Measure = "lowest_group"
    keep: float = Field(1.0, gt=0.0, le=1.0)
    temperature: float = Field(0.7, gt=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(320, gt=0)
    top_logprobs: int = Field(5, ge=0, le=20)
    seed: int | None = None
    system_template: str = "cot_system"
    user_template: str = "cot_user"

    @model_validator(mode="after")
    def _valid(self) -> DeepConfSample:
        if self.warmup > self.k:
            raise ValueError(f"warmup ({self.warmup}) must be at most k ({self.k})")
        load_template(self.system_template, allowed=())
        load_template(self.user_template, allowed=PROMPT_VARIABLES)
        return self

    # -- the rule (pure; the replay uses the same methods) ------------------------------------
    def threshold_of(self, warmup_conf: Sequence[Sequence[float]]) -> float | None:
        """The stop threshold from the warm-up traces' per-token confidences."""
        lows = [v for c in warmup_conf if (v := lowest_group(c, self.window)) is not None]
        return percentile(lows, self.percentile) if lows else None

    def stop_point(self, conf: Sequence[float], threshold: float | None) -> int | None:
        """Tokens after which a trace with these confidences is stopped (``None``: never).

        The drop is seen at the end of the segment it falls in, so that is what was generated."""
        if threshold is None:
            return None
        at = first_window_below(conf, threshold, self.window)
        if at is None:
            return None
        return min(len(conf), math.ceil(at / self.segment) * self.segment)

    def consensus_share(self, samples: Sequence[Outcome]) -> tuple[str | None, float]:
        """The leading answer and its confidence-weighted share among answered samples."""
        idx = [i for i, _ in valid(samples)]
        if not idx:
            return None, 0.0
        groups = confidence_groups(samples, idx, self.measure)
        total = sum(g.weight for g in groups)
        best = max(groups, key=lambda g: g.weight)
        return best.answer, (best.weight / total if total > 0 else 0.0)

    def agreed(self, share: float) -> bool:
        return self.consensus is not None and share >= self.consensus

    def final_vote(self) -> ConfidenceFiltered:
        return ConfidenceFiltered(measure=self.measure, keep=self.keep)

    # -- the flow -----------------------------------------------------------------------------
    def params(self, max_tokens: int, seed: int | None, n: int = 1) -> SamplingParams:
        return SamplingParams(
            n=n,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=max_tokens,
            seed=seed,
            logprobs=True,
            top_logprobs=self.top_logprobs,
        )

    def finished(
        self, text: str, conf: list[float], lps: list[float], source: str, data: dict[str, Any]
    ) -> Outcome:
        tc = trace_confidence(conf, self.window)
        return Outcome(
            answer=extract_answer(text),
            text=text,
            confidence=sum(lps) / len(lps) if lps else None,
            data={**data, "trace_confidence": tc.to_dict(), "confidence_source": source},
        )

    def flow(self, task: Task) -> Flow:
        base = resolve_seed(self.seed)
        messages = cot_messages(task, self.system_template, self.user_template)
        yield Note("sampling", {"k": self.k, "base_seed": base, "warmup": self.warmup})
        [res] = yield Generate.of(
            GenerationRequest(
                messages=messages, params=self.params(self.max_tokens, base, n=self.warmup)
            )
        )
        if not isinstance(res, Completion):
            if not res.budget:
                raise res.error
            return Outcome(answer=None, text="", budget_limited=True)
        samples: list[Outcome] = []
        confs: list[list[float]] = []
        for i, ch in enumerate(res.choices):
            conf, source = choice_confidences(ch.token_logprobs, ch.top_logprobs)
            if source is None and ch.completion_tokens:
                raise _no_logprobs(res.model)
            confs.append(conf)
            data = {
                "seed": ch.seed if ch.seed is not None else base + i,
                "finish_reason": ch.finish_reason,
                "tokens": ch.completion_tokens,
                "warmup": True,
            }
            samples.append(
                self.finished(ch.text, conf, ch.token_logprobs or [], source or "", data)
            )
        threshold = self.threshold if self.threshold is not None else self.threshold_of(confs)
        leader, share = self.consensus_share(samples)
        yield Note(
            "deepconf_threshold",
            {"threshold": threshold, "percentile": self.percentile, "share": round(share, 4)},
        )
        while len(samples) < self.k and not self.agreed(share):
            start = len(samples)
            count = min(self.batch, self.k - start)
            flows = [
                self.trace_flow(messages, start + j, base + start + j, threshold)
                for j in range(count)
            ]
            results = yield Fork(flows, label="deepconf")
            for j, r in enumerate(results):
                if isinstance(r, CapabilityMissing):
                    raise r  # every later trace would fail the same way: say so
                if isinstance(r, BaseException):  # one failed trace: the others still vote
                    why = describe(r)
                    yield Note("sample_failed", {"sample": start + j, "why": why})
                    r = Outcome(answer=None, text="", data={"error": why}, error=r)
                samples.append(r)
            leader, share = self.consensus_share(samples)
            yield Note(
                "deepconf_round",
                {"drawn": len(samples), "leader": leader, "share": round(share, 4)},
            )
        empty = ensure_some_answer(samples)
        if empty is not None:
            return empty
        out = self.final_vote().choose(task, samples)
        out.samples = samples
        stopped = [s for s in samples if s.data.get("stopped_at") is not None]
        out.data.update(
            {
                "base_seed": base,
                "threshold": threshold,
                "drawn": len(samples),
                "stopped": len(stopped),
                "generated_tokens": sum(int(s.data.get("tokens", 0)) for s in samples),
                "consensus": round(share, 4),
            }
        )
        out.budget_limited = out.budget_limited or any(s.budget_limited for s in samples)
        return out

    def trace_flow(
        self, messages: tuple[Any, ...], index: int, seed: int, threshold: float | None
    ) -> Flow:
        """One later trace in segments (the shared probed-trace loop, without probes), stopped at
        the first window below ``threshold``.

        The window is read from the full-precision confidences of ``choice_confidences`` (with
        its fallback to the chosen tokens' logprobs when the backend gives no alternatives), not
        from ``TraceLog``'s rounded ones, so they are kept here beside the log."""
        log = TraceLog(seed=seed)
        conf: list[float] = []
        lps: list[float] = []
        source = ""
        data: dict[str, Any] = {"seed": seed}

        def watch(at: Checkpoint) -> Generator[Any, Any, int | None]:
            nonlocal source
            ch = at.choice
            seg_conf, seg_source = choice_confidences(ch.token_logprobs, ch.top_logprobs)
            if seg_source is None and ch.completion_tokens:
                raise _no_logprobs(at.completion.model)
            checked = len(conf)
            conf.extend(seg_conf)
            lps.extend(ch.token_logprobs or [])
            source = seg_source or source
            data.update({"tokens": log.tokens, "finish_reason": ch.finish_reason})
            if threshold is None:
                return None
            drop = first_window_below(conf, threshold, self.window, after=checked)
            if drop is None:
                return None
            low = sum(conf[drop - self.window : drop]) / self.window
            yield Note(
                "trace_stopped",
                {"sample": index, "at": drop, "tokens": log.tokens, "window_confidence": low},
            )
            return drop

        def segment(prefix: str, size: int) -> GenerationRequest:
            return GenerationRequest(
                messages=messages, assistant_prefix=prefix or None, params=self.params(size, seed)
            )

        end = yield from probed_trace(
            log, segment, every=self.segment, max_tokens=self.max_tokens, checkpoint=watch
        )
        if end.failure is not None:
            if not end.failure.budget:
                raise end.failure.error
            return Outcome(answer=None, text=log.text, budget_limited=True, data=data)
        if end.stop is not None:
            return Outcome(answer=None, text=log.text, data={**data, "stopped_at": end.stop})
        return self.finished(log.text, conf, lps, source, data)
