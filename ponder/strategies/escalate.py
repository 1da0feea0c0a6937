"""``escalate``: below a confidence, spend more instead of abstaining.

Use it around any strategy that puts a confidence on its outcome (the ``drr_*`` strategies'
P(correct), ``learned``'s, ``drr_bayes``'s posterior): when that confidence is under ``below``
(or the inner strategy abstained, or answered nothing), run ``then``, and answer with it::

    strategy:
      name: escalate
      below: 0.4
      inner: {name: drr_sample, dm: default, k: 4, threshold: 0.5}
      then: {name: sample, k: 8, inner: {name: cot, temperature: 0.7, max_tokens: 320}}
      role: escalate            # then's requests go to roles.escalate (e.g. the 1.5B model)
    roles:
      escalate: {kind: local, model: qwen2.5-coder-1.5b-instruct, threads: 2}

``then``'s requests to the default role are sent to ``role`` (``escalate`` by default: a larger
model; ``role: default`` keeps the same model, so ``then`` just draws more samples). With
``pool: true`` and samples on both sides the answer is the majority over all of them (the first
draw is not wasted). If ``then`` fails or answers nothing, the first outcome stands as it was
(an abstention stays one), marked ``escalation_failed``.
The outcome's ``data`` says whether it escalated, and the first answer and confidence.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from pydantic import Field

from ponder.aggregator.voting import Majority
from ponder.protocol.actions import Action, Flow, FlowSteps, Fork, Generate, Note, Outcome, Task
from ponder.protocol.requirements import Requirement
from ponder.protocol.strategy import Strategy
from ponder.strategies.registry import StrategyField, register_strategy


def _reroute(action: Action, role: str) -> Action:
    if isinstance(action, Generate):
        reqs = tuple(
            dataclasses.replace(r, role=role) if r.role == "default" else r for r in action.requests
        )
        return Generate(reqs)
    if isinstance(action, Fork):
        return Fork([rerouted(f, role) for f in action.flows], action.label)
    return action


def rerouted(flow: Flow, role: str) -> Flow:
    """``flow`` with its requests to the default role sent to ``role`` (sub-flows too)."""
    if role == "default":
        return (yield from flow)
    with FlowSteps(flow) as steps:
        for action in steps:
            steps.reply = yield _reroute(action, role)
    return steps.outcome


@register_strategy
class Escalate(Strategy):
    """Run ``inner``; below ``below`` confidence, run ``then`` instead (see the module doc)."""

    name: ClassVar[str] = "escalate"

    inner: StrategyField
    then: StrategyField
    below: float = Field(0.5, ge=0.0, le=1.0)
    role: str = "escalate"
    pool: bool = False

    def requires(self) -> tuple[Requirement, ...]:
        """``then``'s requirements on the role its requests go to (the capability check also
        walks ``then`` itself, against the roles it names)."""
        from ponder.orchestrator.capabilities import requirements

        if self.role == "default":
            return ()
        return tuple(
            Requirement(r.any_of, self.role if r.role == "default" else r.role, r.why)
            for _, _, r in requirements(self.then)
        )

    def roles(self) -> set[str]:
        then = {self.role if r == "default" else r for r in self.then.roles()}
        return self.inner.roles() | then

    def flow(self, task: Task) -> Flow:
        first = yield from self.inner.flow(task)
        conf = first.confidence
        answer = first.answer if first.answer is not None else first.data.get("withheld_answer")
        why = None
        if first.answer is None:
            why = "abstained" if first.data.get("abstained") else "no answer"
        elif conf is None:
            why = "no confidence"
        elif conf < self.below:
            why = f"confidence {conf:.3f} < {self.below}"
        yield Note(
            "escalate",
            {"confidence": conf, "answer": answer, "escalate": why is not None, "why": why},
        )
        if why is None:
            first.data["escalated"] = False
            return first
        try:
            second = yield from rerouted(self.then.flow(task), self.role)
        except Exception as exc:  # a failed escalation keeps the first answer
            second = Outcome(answer=None, text="", error=exc, data={"error": str(exc)})
        if second.answer is None:  # the first outcome stands, as it was (an abstention too)
            why_failed = str(second.data.get("error") or "no answer")
            first.data.update({"escalated": True, "escalation_failed": why_failed})
            return first
        if self.pool and first.samples and second.samples:
            pooled = [*first.samples, *second.samples]
            vote = Majority().choose(task, pooled)
            second = Outcome(
                answer=vote.answer,
                text=vote.text,
                samples=pooled,
                budget_limited=second.budget_limited,
                data={**second.data, "pooled": len(pooled)},
            )
        second.data.update(
            {"escalated": True, "why": why, "first_answer": answer, "first_confidence": conf}
        )
        return second
