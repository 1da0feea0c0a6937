"""Drawing samples of an inner strategy: the shared machinery of ``sample`` and ``adaptive``.

``draw`` is a sans-I/O sub-flow (use it with ``yield from``). A single-call inner strategy (one
that declares ``SingleCall``, like ``cot``) is drawn as ONE request with ``n=count``, so the backend
uses native ``n`` where it works and concurrent requests where it does not; any other inner
strategy is forked ``count`` times. Either way sample ``i`` gets seed ``base_seed + i`` (fan-out
and forks; a native-``n`` call carries only the base seed), recorded on each outcome.

Failed samples (errors, timeouts, no extractable answer) come back as outcomes with
``answer=None``, the typed exception in ``error`` (``NoAnswer`` when the sample finished without
an answer) and its text in ``data["error"]``, and are noted in the trace; the caller decides.

Under a token budget the one ``n=count`` request takes fewer samples (``min_n=1``): when ``count``
do not fit, the engine draws the most that do, and the samples it could not draw come back as
budget-limited failures (``BudgetExhausted``), noted as ``budget_fewer_samples``; ``budget_data``
is what the caller adds to its outcome.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

from ponder.errors import AllSamplesFailed, BackendError, BudgetExhausted, BudgetTooSmall, NoAnswer
from ponder.protocol.actions import Fork, Generate, Note, Outcome, Task, failure_of
from ponder.protocol.requests import Completion, GenerationFailure, GenerationRequest
from ponder.protocol.strategy import SingleCall, Strategy

SampleFlow = Generator[Any, Any, list[Outcome]]


def seeded(inner: Strategy, seed: int) -> Strategy:
    """``inner`` with its ``seed`` set (a copy), through ``Strategy.with_seed``."""
    return inner.with_seed(seed)


def _failed(error: BaseException, seed: int) -> Outcome:
    return Outcome(
        answer=None,
        text="",
        budget_limited=isinstance(error, BudgetExhausted),
        data={"error": describe(error), "seed": seed},
        error=error,
    )


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def draw(
    inner: Strategy, task: Task, start: int, count: int, base_seed: int, mode: str
) -> SampleFlow:
    """Draw samples ``start .. start+count-1``; returns one ``Outcome`` per sample."""
    seeds = [base_seed + start + i for i in range(count)]
    first = seeded(inner, seeds[0])
    if mode in ("auto", "n") and isinstance(first, SingleCall):
        req: GenerationRequest = first.request(task)
        many = replace(req, min_n=1) if count > 1 else req  # under a budget: the most that fit
        [result] = yield Generate.of(many.with_params(n=count, seed=seeds[0]))
        outcomes = _from_completion(result, seeds, req)
        if isinstance(result, Completion) and result.asked_n is not None:
            yield Note("budget_fewer_samples", {"asked": count, "drawn": len(result.choices)})
        confs = [
            (i, o.data["trace_confidence"])
            for i, o in enumerate(outcomes)
            if "trace_confidence" in o.data
        ]
        if confs:
            yield Note(
                "trace_confidence", {"samples": [{"sample": start + i, **c} for i, c in confs]}
            )
    else:
        flows = [seeded(inner, s).flow(task) for s in seeds]
        results = yield Fork(flows, label="sample")
        outcomes = []
        for seed, r in zip(seeds, results, strict=True):
            if isinstance(r, Outcome):
                r.data.setdefault("seed", seed)
                outcomes.append(r)
            else:
                outcomes.append(_failed(r, seed))
    for i, o in enumerate(outcomes):
        if o.answer is None:
            if o.error is None and "error" not in o.data:
                o.error = NoAnswer(o.data.get("finish_reason"))
            why = o.data.get("error") or "no extractable answer"
            o.data.setdefault("error", why)
            yield Note(
                "sample_failed", {"sample": start + i, "seed": o.data.get("seed"), "why": why}
            )
    return outcomes


def _from_completion(
    result: Completion | GenerationFailure, seeds: list[int], req: GenerationRequest
) -> list[Outcome]:
    if not isinstance(result, Completion):
        return [_failed(result.error, s) for s in seeds]
    from ponder.strategies.cot import choice_outcome  # one outcome shape for cot and its samples

    outcomes = []
    for i, ch in enumerate(result.choices):
        seed = ch.seed if ch.seed is not None else seeds[i]
        outcomes.append(choice_outcome(ch, req.params, seed, result.model, tools=req.tools))
    drawn = len(outcomes)
    for s in seeds[drawn:]:
        if result.asked_n is not None:
            error: Exception = BudgetExhausted(
                f"the token budget fit {drawn} of {result.asked_n} samples"
            )
        else:
            error = BackendError("the backend returned fewer choices than asked")
        outcomes.append(_failed(error, s))
    return outcomes


def budget_data(samples: list[Outcome], asked: int) -> dict[str, int]:
    """``{"samples_asked", "samples_drawn"}`` when the budget left samples undrawn (none drawn
    or cut before an answer), else ``{}`` (an outcome's data says so only when it happened)."""
    cut = sum(1 for s in samples if s.budget_limited and s.answer is None)
    return {"samples_asked": asked, "samples_drawn": len(samples) - cut} if cut else {}


def ensure_some_answer(samples: list[Outcome]) -> Outcome | None:
    """``None`` if a sample has an answer. Otherwise: ``BudgetTooSmall`` raised if the whole
    budget could fit none of them; a budget-limited empty outcome if the budget stopped every
    sample; an answerless outcome, as ``cot`` gives, if every sample finished
    but none had an extractable answer (``finish_reason`` "length" when all were cut off at
    max_tokens); else raises ``AllSamplesFailed`` with every cause as its typed exception."""
    if any(s.answer is not None for s in samples):
        return None
    too_small = [s.error for s in samples if isinstance(s.error, BudgetTooSmall)]
    if samples and len(too_small) == len(samples):
        raise too_small[0]  # the budget cannot fit one sample: say so, not an empty answer
    if samples and all(s.budget_limited for s in samples):
        return Outcome(answer=None, text="", budget_limited=True, samples=samples)
    causes = [failure_of(s) for s in samples]
    if samples and all(isinstance(c, NoAnswer) for c in causes):
        cut = all(s.data.get("finish_reason") == "length" for s in samples)
        longest = max(samples, key=lambda s: len(s.text))
        return Outcome(
            answer=None,
            text=longest.text,
            samples=samples,
            data={"finish_reason": "length" if cut else "stop", "no_answer": len(samples)},
        )
    raise AllSamplesFailed(causes)


VOTING_AGGREGATORS = ("majority", "weighted")


def sampling_tools_unsupported(
    strategy: Strategy, inner: Strategy, aggregator: object
) -> str | None:
    """Why ``sample``/``adaptive`` over ``inner`` cannot take an agent's turn: the inner strategy
    cannot, or the aggregator cannot vote over tool calls (only majority and confidence-weighted
    voting compare them by identity)."""
    why = inner.tools_unsupported()
    if why is not None:
        return f"its inner {why}"
    name = getattr(aggregator, "name", "?")
    if name not in VOTING_AGGREGATORS or getattr(aggregator, "scorer", None) is not None:
        return (
            f"strategy {strategy.name!r} aggregates with {name!r}, which cannot vote over tool "
            "calls (use majority, or weighted by confidence)"
        )
    return None
