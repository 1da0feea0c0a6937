"""Drawing samples of an inner strategy: the shared machinery of ``sample`` and ``adaptive``.

``draw`` is a sans-I/O sub-flow (use it with ``yield from``). A single-call inner strategy (one
that has ``request(task)``, like ``cot``) is drawn as ONE request with ``n=count``, so the backend
uses native ``n`` where it works and concurrent requests where it does not; any other inner
strategy is forked ``count`` times. Either way sample ``i`` gets seed ``base_seed + i`` (fan-out
and forks; a native-``n`` call carries only the base seed), recorded on each outcome.

Failed samples (errors, timeouts, no extractable answer) come back as outcomes with
``answer=None`` and ``data["error"]``, and are noted in the trace; the caller decides.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ponder.answers import extract_answer
from ponder.errors import AllSamplesFailed, BudgetExhausted
from ponder.orchestrator.requests import Completion, GenerationFailure, GenerationRequest
from ponder.strategies.base import Fork, Generate, Note, Outcome, Strategy, Task

SampleFlow = Generator[Any, Any, list[Outcome]]


def seeded(inner: Strategy, seed: int) -> Strategy:
    """``inner`` with its ``seed`` set (a copy), when it has a seed field."""
    if "seed" in type(inner).model_fields:
        return inner.model_copy(update={"seed": seed})
    return inner


def _failed(error: str, seed: int, budget: bool = False) -> Outcome:
    return Outcome(answer=None, text="", budget_limited=budget, data={"error": error, "seed": seed})


def draw(
    inner: Strategy, task: Task, start: int, count: int, base_seed: int, mode: str
) -> SampleFlow:
    """Draw samples ``start .. start+count-1``; returns one ``Outcome`` per sample."""
    seeds = [base_seed + start + i for i in range(count)]
    single = mode in ("auto", "n") and callable(getattr(inner, "request", None))
    if single:
        req: GenerationRequest = seeded(inner, seeds[0]).request(task)  # type: ignore[attr-defined]
        [result] = yield Generate.of(req.with_params(n=count, seed=seeds[0]))
        outcomes = _from_completion(result, seeds)
    else:
        flows = [seeded(inner, s).flow(task) for s in seeds]
        results = yield Fork(flows, label="sample")
        outcomes = []
        for seed, r in zip(seeds, results, strict=True):
            if isinstance(r, Outcome):
                r.data.setdefault("seed", seed)
                outcomes.append(r)
            else:
                outcomes.append(
                    _failed(f"{type(r).__name__}: {r}", seed, isinstance(r, BudgetExhausted))
                )
    for i, o in enumerate(outcomes):
        if o.answer is None:
            why = o.data.get("error") or "no extractable answer"
            o.data.setdefault("error", why)
            yield Note(
                "sample_failed", {"sample": start + i, "seed": o.data.get("seed"), "why": why}
            )
    return outcomes


def _from_completion(result: Completion | GenerationFailure, seeds: list[int]) -> list[Outcome]:
    if not isinstance(result, Completion):
        why = f"{type(result.error).__name__}: {result.error}"
        return [_failed(why, s, result.budget) for s in seeds]
    outcomes = []
    for i, ch in enumerate(result.choices):
        seed = ch.seed if ch.seed is not None else seeds[i]
        outcomes.append(
            Outcome(
                answer=extract_answer(ch.text),
                text=ch.text,
                confidence=ch.mean_logprob,
                data={
                    "seed": seed,
                    "finish_reason": ch.finish_reason,
                    "tokens": ch.completion_tokens,
                },
            )
        )
    for s in seeds[len(outcomes) :]:
        outcomes.append(_failed("the backend returned fewer choices than asked", s))
    return outcomes


def ensure_some_answer(samples: list[Outcome]) -> Outcome | None:
    """``None`` if a sample has an answer; a budget-limited empty outcome if the budget stopped
    every sample; otherwise raises ``AllSamplesFailed`` carrying every cause."""
    if any(s.answer is not None for s in samples):
        return None
    if samples and all(s.budget_limited for s in samples):
        return Outcome(answer=None, text="", budget_limited=True, samples=samples)
    raise AllSamplesFailed([RuntimeError(str(s.data.get("error"))) for s in samples])
