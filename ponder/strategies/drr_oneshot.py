"""Probe-free samples for ``drr_sample``/``drr_bayes`` with ``probes: false``: one call each.

Use ``one_call_samples(cot, task, seeds, dm)`` (a sans-I/O sub-flow, ``yield from``) to draw a
round of samples the way ``sample`` over ``cot`` draws them: ONE request with ``n`` = the round's
size and the round's first seed (the backend uses native ``n`` or parallel requests, and the
prompt is the plain question, so a server's prompt cache and parallel slots work), no segments,
no probes. Each finished trace is judged at its end by a probe-free DM (``DM.probe_free``:
trained by ``ponder drr train --no-probes`` on the same one-call state,
``ponder.learning.drr.states.one_call_state``), so replay of a collection scores exactly what is
scored here.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

from ponder.answers import extract_answer
from ponder.errors import BackendError, BudgetExhausted
from ponder.protocol.actions import Generate, Note, Outcome, Task
from ponder.protocol.requests import Choice, Completion, GenerationRequest
from ponder.stopping.features import CheckpointState
from ponder.stopping.model import DM
from ponder.strategies.cot import ChainOfThought
from ponder.strategies.probed_trace import TraceLog


def judged(choice: Choice, seed: int, dm: DM) -> Outcome:
    """One finished one-call trace as a sample: its answer, and the DM's P(correct) at its end
    in ``data["p"]`` (with ``tokens``, ``probes`` 0, ``seed``, ``finish_reason``)."""
    log = TraceLog(seed=seed)
    log.add_segment(choice)
    log.usage["completion"] = choice.completion_tokens
    cut = choice.finish_reason == "length"
    answer = extract_answer(log.text)
    state = CheckpointState.ended(log, (), answer, cut=cut, max_tokens=dm.max_tokens)
    p = dm.p_checkpoint(state)
    data: dict[str, Any] = {
        "seed": seed,
        "p": p,
        "early": False,
        "stopped_at": log.tokens,
        "finish_reason": choice.finish_reason,
        "tokens": log.tokens,
        "probes": 0,
    }
    return Outcome(answer=answer, text=log.text, data=data)


def one_call_samples(
    cot: ChainOfThought, task: Task, seeds: list[int], dm: DM
) -> Generator[Any, Any, list[Outcome]]:
    """Draw ``len(seeds)`` samples in one request (module doc); one ``Outcome`` per seed, a
    failed one (``error`` set, ``answer`` None) where the call failed or drew fewer."""
    req = cot.request(task)
    many = replace(req, min_n=1) if len(seeds) > 1 else req  # under a budget: the most that fit
    [res] = yield Generate.of(many.with_params(n=len(seeds), seed=seeds[0]))
    if not isinstance(res, Completion):
        return [_failed(res.error, s, res.budget) for s in seeds]
    out = []
    for i, choice in enumerate(res.choices[: len(seeds)]):
        seed = choice.seed if choice.seed is not None else seeds[i]
        o = judged(choice, seed, dm)
        yield final_note(o)
        out.append(o)
    for s in seeds[len(out) :]:
        short = res.asked_n is not None
        error: Exception = (
            BudgetExhausted(f"the token budget fit {len(out)} of {res.asked_n} samples")
            if short
            else BackendError("the backend returned fewer choices than asked")
        )
        out.append(_failed(error, s, short))
    return out


def one_call_trace(req: GenerationRequest, seed: int, dm: DM) -> Generator[Any, Any, Outcome]:
    """``req`` (any conversation, e.g. a solution sent back to be re-examined) sent once with
    ``seed``, its trace judged at its end by a probe-free DM like ``one_call_samples``' samples;
    a failed call gives a failed ``Outcome``."""
    [res] = yield Generate.of(req.with_params(seed=seed))
    if not isinstance(res, Completion):
        return _failed(res.error, seed, res.budget)
    o = judged(res.choices[0], seed, dm)
    o.data["usage"] = {"completion": res.choices[0].completion_tokens}
    yield final_note(o)
    return o


def final_note(o: Outcome) -> Note:
    """The trace event of a judged one-call trace: where it ended, its answer and P."""
    event = {"at": o.data["tokens"], "answer": o.answer, "p": round(o.data["p"], 4)}
    return Note("drr_final", event)


def _failed(error: BaseException, seed: int, budget: bool) -> Outcome:
    why = f"{type(error).__name__}: {error}"
    return Outcome(
        answer=None,
        text="",
        budget_limited=budget,
        data={"error": why, "seed": seed, "p": None},
        error=error,
    )
